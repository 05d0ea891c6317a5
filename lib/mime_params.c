#include "lib/mime_params.h"

#include <stdbool.h>
#include <string.h>

#include "lib/hex.h"
#include "lib/message_charset.h"
#include "lib/rfc822_header.h"

/* RFC 2231 section numbers above this are ignored (real ones are < 20). */
#define SECTION_MAX 999

static bool is_token_char(unsigned char ch)
{
	return ch > ' ' && ch < 0x7f && strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

static bool is_lenient_value_char(unsigned char ch)
{
	return ch != ';' && ch != '"' && ch != '(' && !rfc822_is_wsp(ch) && ch != '\r' &&
	       ch != '\n';
}

static char lower(unsigned char ch)
{
	return (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
}

/* Reads a token into buf (lowercased). Returns its length, 0 if none or
 * longer than MESSAGE_TOKEN_MAX (then the token is still skipped). */
static size_t read_token(struct rfc822_cursor *c, char buf[MESSAGE_TOKEN_MAX + 1])
{
	size_t n = 0;
	bool too_long = false;
	while (c->p < c->end && is_token_char(*c->p)) {
		if (n < MESSAGE_TOKEN_MAX)
			buf[n++] = lower(*c->p);
		else
			too_long = true;
		c->p++;
	}
	buf[n] = '\0';
	return too_long ? 0 : n;
}

/* Skips to the next ';' outside quoted strings and comments. */
static void skip_to_semicolon(struct rfc822_cursor *c)
{
	while (c->p < c->end && *c->p != ';') {
		if (*c->p == '"') {
			struct textbuf junk = TEXTBUF_INIT;
			rfc822_read_quoted(c, &junk);
			textbuf_free(&junk);
		} else if (*c->p == '(') {
			rfc822_skip_cfws(c, NULL);
		} else {
			c->p++;
		}
	}
}

struct raw_param {
	char base[MESSAGE_TOKEN_MAX + 1];
	int section;		     /* -1: none */
	bool extended;		     /* value is charset'lang'%XX (first section) or %XX */
	size_t value_off, value_len; /* in the value buffer */
	bool used;
};

struct raw_params {
	struct raw_param p[MESSAGE_PARAMS_MAX];
	size_t count;
	struct textbuf values;
};

/* Splits "name*N*" into base, section and extended flag. */
static void raw_param_name(struct raw_param *rp, const char *name, size_t len)
{
	const char *star = memchr(name, '*', len);
	rp->section = -1;
	rp->extended = false;
	if (star != NULL && star > name) {
		size_t base_len = (size_t)(star - name);
		const char *s = star + 1, *e = name + len;
		int section = -1;
		bool ok = true, extended = false;
		if (s < e && *s >= '0' && *s <= '9') {
			section = 0;
			if (*s == '0' && s + 1 < e && s[1] >= '0' && s[1] <= '9')
				ok = false; /* leading zero */
			while (s < e && *s >= '0' && *s <= '9') {
				section = section * 10 + (*s - '0');
				if (section > SECTION_MAX) {
					ok = false;
					break;
				}
				s++;
			}
			if (ok && s < e && *s == '*') {
				extended = true;
				s++;
			}
		} else if (s < e && *s == '*') {
			ok = false;
		} else {
			extended = true; /* "name*" */
		}
		if (ok && s == e) {
			memcpy(rp->base, name, base_len);
			rp->base[base_len] = '\0';
			rp->section = section;
			rp->extended = extended;
			return;
		}
	}
	memcpy(rp->base, name, len);
	rp->base[len] = '\0';
}

static void params_read(struct rfc822_cursor *c, struct raw_params *rps)
{
	while (c->p < c->end) {
		rfc822_skip_cfws(c, NULL);
		if (c->p >= c->end)
			break;
		if (*c->p != ';') {
			skip_to_semicolon(c);
			continue;
		}
		c->p++;
		rfc822_skip_cfws(c, NULL);
		char name[MESSAGE_TOKEN_MAX + 1];
		size_t name_len = read_token(c, name);
		rfc822_skip_cfws(c, NULL);
		if (name_len == 0 || c->p >= c->end || *c->p != '=') {
			skip_to_semicolon(c);
			continue;
		}
		c->p++;
		rfc822_skip_cfws(c, NULL);
		size_t off = rps->values.len;
		if (c->p < c->end && *c->p == '"') {
			rfc822_read_quoted(c, &rps->values);
		} else {
			const unsigned char *v = c->p;
			while (c->p < c->end && is_lenient_value_char(*c->p))
				c->p++;
			textbuf_append(&rps->values, v, (size_t)(c->p - v));
		}
		if (rps->count >= MESSAGE_PARAMS_MAX)
			break;
		struct raw_param *rp = &rps->p[rps->count++];
		raw_param_name(rp, name, name_len);
		rp->value_off = off;
		rp->value_len = rps->values.len - off;
		rp->used = false;
	}
}

/* Splits "charset'lang'rest": sets charset (may be empty) and returns the
 * start of rest; with no two quotes, charset is empty and rest is all. */
static const unsigned char *split_charset(const unsigned char *v, size_t len,
					  const unsigned char **cs, size_t *cs_len)
{
	const unsigned char *q1 = memchr(v, '\'', len);
	*cs = v;
	*cs_len = 0;
	if (q1 == NULL)
		return v;
	const unsigned char *q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - v));
	if (q2 == NULL)
		return v;
	*cs_len = (size_t)(q1 - v);
	return q2 + 1;
}

static void param_finish(struct message_arena *arena, struct message_param *out, const char *base,
			 const unsigned char *charset, size_t charset_len,
			 const struct textbuf *value)
{
	out->name = message_arena_strndup(arena, base, strlen(base));
	out->charset = NULL;
	if (charset_len > 0) {
		struct textbuf utf8 = TEXTBUF_INIT;
		if (message_charset_to_utf8((const char *)charset, charset_len, value->data,
					    value->len, &utf8) == 0) {
			out->value = message_arena_strndup(arena, textbuf_str(&utf8), utf8.len);
			out->charset = "utf-8";
			textbuf_free(&utf8);
			return;
		}
		textbuf_free(&utf8);
		char *cs = message_arena_strndup(arena, charset, charset_len);
		for (char *p = cs; *p != '\0'; p++)
			*p = lower((unsigned char)*p);
		out->charset = cs;
	}
	out->value = message_arena_strndup(arena, textbuf_str(value), value->len);
}

static void params_merge(struct message_arena *arena, struct raw_params *rps,
			 struct message_param **params_r, uint32_t *count_r)
{
	struct message_param *out = NULL;
	uint32_t n = 0;
	struct textbuf value = TEXTBUF_INIT;

	if (rps->count > 0)
		out = message_arena_alloc(arena, rps->count * sizeof(*out));
	for (size_t i = 0; i < rps->count; i++) {
		struct raw_param *first = &rps->p[i];
		if (first->used)
			continue;
		const char *base = first->base;
		struct raw_param *plain = NULL, *star = NULL;
		bool have_sections = false;
		for (size_t j = i; j < rps->count; j++) {
			struct raw_param *rp = &rps->p[j];
			if (rp->used || strcmp(rp->base, base) != 0)
				continue;
			rp->used = true;
			if (rp->section >= 0)
				have_sections = true;
			else if (rp->extended && star == NULL)
				star = rp;
			else if (!rp->extended && plain == NULL)
				plain = rp;
		}
		const unsigned char *vals = (const unsigned char *)textbuf_str(&rps->values);
		const unsigned char *cs = NULL;
		size_t cs_len = 0;
		textbuf_truncate(&value, 0);
		bool done = false;
		if (have_sections) {
			/* Join sections 0, 1, ... up to the first missing one. */
			for (int sec = 0; sec <= SECTION_MAX; sec++) {
				struct raw_param *rp = NULL;
				for (size_t j = i; j < rps->count && rp == NULL; j++) {
					if (rps->p[j].section == sec &&
					    strcmp(rps->p[j].base, base) == 0)
						rp = &rps->p[j];
				}
				if (rp == NULL)
					break;
				const unsigned char *v = vals + rp->value_off;
				size_t vlen = rp->value_len;
				if (rp->extended) {
					if (sec == 0) {
						const unsigned char *rest =
						    split_charset(v, vlen, &cs, &cs_len);
						vlen -= (size_t)(rest - v);
						v = rest;
					}
					hex_unescape(v, vlen, '%', &value);
				} else {
					textbuf_append(&value, v, vlen);
				}
				done = true;
			}
		}
		if (!done && star != NULL) {
			const unsigned char *v = vals + star->value_off;
			const unsigned char *rest = split_charset(v, star->value_len, &cs, &cs_len);
			hex_unescape(rest, star->value_len - (size_t)(rest - v), '%', &value);
			done = true;
		}
		if (!done && plain != NULL) {
			textbuf_append(&value, vals + plain->value_off, plain->value_len);
			cs_len = 0;
			done = true;
		}
		if (!done)
			continue; /* only sections without a section 0 */
		param_finish(arena, &out[n++], base, cs, cs_len, &value);
	}
	textbuf_free(&value);
	*params_r = n > 0 ? out : NULL;
	*count_r = n;
}

static void params_parse(struct message_arena *arena, struct rfc822_cursor *c,
			 struct message_param **params_r, uint32_t *count_r)
{
	struct raw_params local;
	local.count = 0;
	local.values = (struct textbuf)TEXTBUF_INIT;
	params_read(c, &local);
	params_merge(arena, &local, params_r, count_r);
	textbuf_free(&local.values);
}

int mime_content_type_parse(struct message_arena *arena, const void *value, size_t len,
			    const char **type_r, const char **subtype_r,
			    struct message_param **params_r, uint32_t *count_r)
{
	struct rfc822_cursor c;
	char type[MESSAGE_TOKEN_MAX + 1], subtype[MESSAGE_TOKEN_MAX + 1];

	rfc822_cursor_init(&c, value, len);
	rfc822_skip_cfws(&c, NULL);
	size_t type_len = read_token(&c, type);
	rfc822_skip_cfws(&c, NULL);
	if (type_len == 0 || c.p >= c.end || *c.p != '/')
		return -1;
	c.p++;
	rfc822_skip_cfws(&c, NULL);
	size_t subtype_len = read_token(&c, subtype);
	if (subtype_len == 0)
		return -1;
	*type_r = message_arena_strndup(arena, type, type_len);
	*subtype_r = message_arena_strndup(arena, subtype, subtype_len);
	params_parse(arena, &c, params_r, count_r);
	return 0;
}

int mime_disposition_parse(struct message_arena *arena, const void *value, size_t len,
			   const char **disposition_r, struct message_param **params_r,
			   uint32_t *count_r)
{
	struct rfc822_cursor c;
	char type[MESSAGE_TOKEN_MAX + 1];

	rfc822_cursor_init(&c, value, len);
	rfc822_skip_cfws(&c, NULL);
	size_t type_len = read_token(&c, type);
	if (type_len == 0)
		return -1;
	*disposition_r = message_arena_strndup(arena, type, type_len);
	params_parse(arena, &c, params_r, count_r);
	return 0;
}

const char *mime_token_parse(struct message_arena *arena, const void *value, size_t len)
{
	struct rfc822_cursor c;
	char token[MESSAGE_TOKEN_MAX + 1];

	rfc822_cursor_init(&c, value, len);
	rfc822_skip_cfws(&c, NULL);
	size_t n = read_token(&c, token);
	return n == 0 ? NULL : message_arena_strndup(arena, token, n);
}

const char *mime_language_parse(struct message_arena *arena, const void *value, size_t len)
{
	struct rfc822_cursor c;
	struct textbuf out = TEXTBUF_INIT;

	rfc822_cursor_init(&c, value, len);
	while (c.p < c.end) {
		rfc822_skip_cfws(&c, NULL);
		const unsigned char *t = c.p;
		while (c.p < c.end && is_token_char(*c.p) && *c.p != ',')
			c.p++;
		if (c.p > t) {
			if (out.len > 0)
				textbuf_putc(&out, ',');
			textbuf_append(&out, t, (size_t)(c.p - t));
		} else if (c.p < c.end) {
			c.p++; /* ',' or a stray special */
		}
	}
	const char *ret = out.len > 0 ? message_arena_strndup(arena, out.data, out.len) : NULL;
	textbuf_free(&out);
	return ret;
}

void mime_param_encode_2231(const char *charset, const char *value, struct textbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	textbuf_puts(out, charset != NULL ? charset : "");
	textbuf_puts(out, "''");
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("!#$&+-.^_`|~", *p) != NULL) {
			textbuf_putc(out, (char)*p);
		} else {
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			textbuf_append(out, esc, 3);
		}
	}
}
