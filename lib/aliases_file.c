/*
 * The aliases(5) parser (lib/aliases_file.h is the manual). Physical lines
 * come from a linebuf; an entry is its first line plus the continuation
 * lines after it, joined with one space in a bounded textbuf, and parsed
 * in place once the next entry (or the end of input) shows it complete.
 */
#include "lib/aliases_file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int aliases_parser_init(struct aliases_parser *p, aliases_entry_cb *entry_cb,
			aliases_error_cb *error_cb, void *ctx)
{
	memset(p, 0, sizeof(*p));
	if (linebuf_init(&p->lines, ALIASES_LINE_MAX) < 0)
		return -1;
	p->targets = calloc(ALIASES_TARGETS_MAX, sizeof(*p->targets));
	if (p->targets == NULL) {
		linebuf_free(&p->lines);
		return -1;
	}
	p->entry_cb = entry_cb;
	p->error_cb = error_cb;
	p->ctx = ctx;
	return 0;
}

void aliases_parser_free(struct aliases_parser *p)
{
	linebuf_free(&p->lines);
	textbuf_free(&p->entry);
	free(p->targets);
	p->targets = NULL;
}

const char *aliases_target_kind_name(enum aliases_target_kind kind)
{
	switch (kind) {
	case ALIASES_TARGET_ADDRESS:
		return "address";
	case ALIASES_TARGET_LOCAL:
		return "local name";
	case ALIASES_TARGET_FILE:
		return "file";
	case ALIASES_TARGET_COMMAND:
		return "command";
	case ALIASES_TARGET_INCLUDE:
		return ":include:";
	}
	return "?";
}

static void parse_error(struct aliases_parser *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void parse_error(struct aliases_parser *p, unsigned line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->error_cb != NULL)
		p->error_cb(line, msg, p->ctx);
}

static char *trim(char *s, char *end)
{
	while (s < end && is_space(*s))
		s++;
	while (end > s && is_space(end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Removes one pair of surrounding double quotes, unescaping \x inside. */
static void unquote(char *s)
{
	size_t n = strlen(s);
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return;
	char *w = s;
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[i] == '\\' && i + 2 < n)
			i++;
		*w++ = s[i];
	}
	*w = '\0';
}

static void classify(struct aliases_target *t, char *value)
{
	unquote(value);
	size_t n = strlen(value);
	if (n >= 2 && value[0] == '<' && value[n - 1] == '>') {
		value[n - 1] = '\0';
		value++;
	}
	if (value[0] == '\\')
		value++;
	t->value = value;
	if (value[0] == '|')
		t->kind = ALIASES_TARGET_COMMAND;
	else if (value[0] == '/')
		t->kind = ALIASES_TARGET_FILE;
	else if (strncasecmp(value, ":include:", 9) == 0)
		t->kind = ALIASES_TARGET_INCLUDE;
	else if (strchr(value, '@') != NULL)
		t->kind = ALIASES_TARGET_ADDRESS;
	else
		t->kind = ALIASES_TARGET_LOCAL;
}

/* Splits the target list at commas outside double quotes. Returns the
 * number of targets, or -1 when there are too many. */
static int split_targets(struct aliases_parser *p, char *s, char *end)
{
	size_t n = 0;
	bool quoted = false;
	char *start = s;

	for (char *c = s;; c++) {
		if (c < end && *c == '\\' && quoted && c + 1 < end) {
			c++;
			continue;
		}
		if (c < end && *c == '"')
			quoted = !quoted;
		if (c < end && (*c != ',' || quoted))
			continue;
		char *v = trim(start, c);
		if (v[0] != '\0') {
			if (n == ALIASES_TARGETS_MAX)
				return -1;
			classify(&p->targets[n++], v);
		}
		if (c >= end)
			break;
		start = c + 1;
	}
	return (int)n;
}

/* Parses and hands over the entry assembled so far (if any). */
static int flush_entry(struct aliases_parser *p)
{
	unsigned line = p->entry_line;
	bool bad = p->entry_bad;

	p->entry_line = 0;
	p->entry_bad = false;
	if (line == 0 || bad) {
		textbuf_truncate(&p->entry, 0);
		return 0;
	}
	char *s = p->entry.data, *end = s + p->entry.len, *colon;
	if (*s == '"') {
		char *q = s + 1;
		while (q < end && *q != '"')
			q += *q == '\\' && q + 1 < end ? 2 : 1;
		colon = q < end ? memchr(q, ':', (size_t)(end - q)) : NULL;
	} else {
		colon = memchr(s, ':', (size_t)(end - s));
	}
	int ret = 0;
	if (colon == NULL) {
		parse_error(p, line, "missing ':' after the alias name");
		goto out;
	}
	char *name = trim(s, colon);
	unquote(name);
	if (name[0] == '\0') {
		parse_error(p, line, "empty alias name");
		goto out;
	}
	int n = split_targets(p, colon + 1, end);
	if (n < 0) {
		parse_error(p, line, "alias %s has too many targets", name);
		goto out;
	}
	if (n == 0) {
		parse_error(p, line, "alias %s has no target", name);
		goto out;
	}
	if (p->nentries == ALIASES_ENTRIES_MAX) {
		parse_error(p, line, "too many entries; the rest of the file is ignored");
		p->stopped = true;
		ret = -1;
		goto out;
	}
	p->nentries++;
	struct aliases_entry e = { .line = line, .name = name, .targets = p->targets,
				   .ntargets = (size_t)n };
	ret = p->entry_cb(&e, p->ctx);
	if (ret < 0)
		p->stopped = true;
out:
	textbuf_truncate(&p->entry, 0);
	return ret;
}

static int handle_line(struct aliases_parser *p, const char *line, bool has_nul)
{
	const char *first = line;
	while (is_space(*first))
		first++;
	if (*first == '\0' || *first == '#')
		return 0; /* blank and comment lines neither start nor end an entry */
	if (has_nul) {
		parse_error(p, p->line, "NUL byte in line");
		if (line != first && p->entry_line != 0)
			p->entry_bad = true;
		return 0;
	}
	if (line != first) {
		if (p->entry_line == 0) {
			parse_error(p, p->line, "continuation line without an alias before it");
			return 0;
		}
		if (p->entry_bad)
			return 0;
		if (p->entry.len + 1 + strlen(first) > ALIASES_ENTRY_MAX) {
			parse_error(p, p->entry_line, "alias entry longer than %d bytes",
				    ALIASES_ENTRY_MAX);
			p->entry_bad = true;
			return 0;
		}
		textbuf_putc(&p->entry, ' ');
		textbuf_puts(&p->entry, first);
		return 0;
	}
	int ret = flush_entry(p);
	if (ret < 0)
		return ret;
	p->entry_line = p->line;
	textbuf_puts(&p->entry, line);
	return 0;
}

/* A physical line over ALIASES_LINE_MAX: the linebuf threw its bytes away,
 * but its first byte says whether it continued the entry in progress. */
static int too_long_line(struct aliases_parser *p, bool continuation)
{
	if (continuation) {
		if (p->entry_line == 0)
			parse_error(p, p->line, "line longer than %d bytes", ALIASES_LINE_MAX);
		else if (!p->entry_bad)
			parse_error(p, p->entry_line, "alias entry dropped: a line of it is longer than %d bytes",
				    ALIASES_LINE_MAX);
		p->entry_bad = p->entry_line != 0;
		return 0;
	}
	parse_error(p, p->line, "line longer than %d bytes", ALIASES_LINE_MAX);
	int ret = flush_entry(p);
	p->entry_line = p->line;
	p->entry_bad = true;
	return ret;
}

int aliases_parser_feed(struct aliases_parser *p, const void *data, size_t len)
{
	const char *d = data, *line;
	bool has_nul;

	if (p->stopped)
		return -1;
	while (len > 0) {
		if (linebuf_pending(&p->lines) == 0 && !p->lines.discarding)
			p->line_first = *d;
		enum linebuf_result r = linebuf_feed(&p->lines, &d, &len, &line, &has_nul);
		if (r == LINEBUF_NEED_MORE)
			break;
		p->line++;
		int ret = r == LINEBUF_TOO_LONG ? too_long_line(p, is_space(p->line_first) &&
								   p->line_first != '\r')
						: handle_line(p, line, has_nul);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int aliases_parser_finish(struct aliases_parser *p)
{
	if (p->stopped)
		return -1;
	if (linebuf_pending(&p->lines) > 0) {
		int ret = aliases_parser_feed(p, "\n", 1);
		if (ret < 0)
			return ret;
	}
	return flush_entry(p);
}
