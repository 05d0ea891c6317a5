#include "lib/rfc822_header.h"

#include <string.h>

static unsigned char ascii_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

bool rfc822_name_equals(const void *name, size_t len, const char *want)
{
	const unsigned char *n = name;
	size_t wlen = strlen(want);
	if (len != wlen)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (ascii_lower(n[i]) != ascii_lower((unsigned char)want[i]))
			return false;
	}
	return true;
}

void rfc822_unfold(const void *value, size_t len, struct textbuf *out)
{
	const unsigned char *v = value;
	size_t start = out->len;

	while (len > 0 && (rfc822_is_wsp(v[0]) || v[0] == '\r' || v[0] == '\n')) {
		v++;
		len--;
	}
	size_t i = 0;
	while (i < len) {
		/* Copy a run of ordinary bytes in one go. */
		size_t j = i;
		while (j < len && v[j] != '\r' && v[j] != '\n')
			j++;
		if (j > i)
			textbuf_append(out, v + i, j - i);
		if (j >= len)
			break;
		if (v[j] == '\r' && j + 1 < len && v[j + 1] == '\n')
			i = j + 2;
		else if (v[j] == '\n')
			i = j + 1;
		else {
			textbuf_putc(out, ' ');
			i = j + 1;
		}
	}
	size_t end = out->len;
	while (end > start && rfc822_is_wsp((unsigned char)out->data[end - 1]))
		end--;
	if (out->data != NULL)
		textbuf_truncate(out, end);
}

bool rfc822_skip_cfws(struct rfc822_cursor *c, struct textbuf *comment_r)
{
	const unsigned char *start = c->p;
	for (;;) {
		while (c->p < c->end && (rfc822_is_wsp(*c->p) || *c->p == '\r' || *c->p == '\n'))
			c->p++;
		if (c->p >= c->end || *c->p != '(')
			break;
		if (comment_r != NULL)
			textbuf_truncate(comment_r, 0);
		/* Nested comments are counted, not recursed into. */
		size_t depth = 0;
		while (c->p < c->end) {
			unsigned char ch = *c->p++;
			if (ch == '\\' && c->p < c->end) {
				if (comment_r != NULL)
					textbuf_putc(comment_r, (char)*c->p);
				c->p++;
				continue;
			}
			if (ch == '(') {
				if (depth++ == 0)
					continue;
			} else if (ch == ')') {
				if (--depth == 0)
					break;
			} else if (ch == '\r' || ch == '\n') {
				continue;
			}
			if (comment_r != NULL)
				textbuf_putc(comment_r, (char)ch);
		}
	}
	return c->p != start;
}

void rfc822_read_quoted(struct rfc822_cursor *c, struct textbuf *out)
{
	if (c->p < c->end && *c->p == '"')
		c->p++;
	while (c->p < c->end) {
		unsigned char ch = *c->p++;
		if (ch == '"')
			return;
		if (ch == '\\' && c->p < c->end)
			ch = *c->p++;
		else if (ch == '\r' || ch == '\n')
			continue;
		textbuf_putc(out, (char)ch);
	}
}

void rfc822_read_domain_literal(struct rfc822_cursor *c, struct textbuf *out)
{
	if (c->p < c->end && *c->p == '[')
		c->p++;
	textbuf_putc(out, '[');
	while (c->p < c->end) {
		unsigned char ch = *c->p++;
		if (ch == ']')
			break;
		if (ch == '\\' && c->p < c->end)
			ch = *c->p++;
		else if (rfc822_is_wsp(ch) || ch == '\r' || ch == '\n')
			continue;
		textbuf_putc(out, (char)ch);
	}
	textbuf_putc(out, ']');
}

bool rfc822_is_atext(unsigned char ch)
{
	if (ch >= 0x80)
		return true;
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

int rfc822_header_find(const void *header, size_t len, const char *name, uint32_t index,
		       struct textbuf *value_r)
{
	const unsigned char *h = header, *end = h + len;
	const unsigned char *line = h;

	while (line < end) {
		const unsigned char *nl = memchr(line, '\n', (size_t)(end - line));
		const unsigned char *line_end = nl != NULL ? nl + 1 : end;
		size_t content = (size_t)(line_end - line);
		if (nl != NULL)
			content--;
		if (content > 0 && line[content - 1] == '\r')
			content--;
		if (content == 0)
			return 0; /* the blank line ends the header */
		if (rfc822_is_wsp(line[0])) {
			line = line_end; /* continuation of a field we skip */
			continue;
		}
		/* The field runs over following continuation lines. */
		const unsigned char *field_end = line_end;
		while (field_end < end && rfc822_is_wsp(*field_end)) {
			const unsigned char *n2 =
			    memchr(field_end, '\n', (size_t)(end - field_end));
			field_end = n2 != NULL ? n2 + 1 : end;
		}
		const unsigned char *colon = memchr(line, ':', (size_t)(field_end - line));
		if (colon != NULL) {
			const unsigned char *name_end = colon;
			while (name_end > line && rfc822_is_wsp(name_end[-1]))
				name_end--;
			if (rfc822_name_equals(line, (size_t)(name_end - line), name)) {
				if (index == 0) {
					rfc822_unfold(colon + 1, (size_t)(field_end - colon - 1),
						      value_r);
					return 1;
				}
				index--;
			}
		}
		line = field_end;
	}
	return 0;
}
