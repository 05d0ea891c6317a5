#include "lib/message_address.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rfc822_header.h"

enum tok_type { T_WORD, T_LITERAL, T_COMMENT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char special;
	bool gap;        /* white space or a comment came before it */
	size_t off, len; /* text in the lexer buffer */
};

struct lexed {
	struct tok *toks;
	size_t count, cap;
	struct textbuf text;
};

struct out_addr {
	size_t name, adl, mailbox, host; /* offsets in strs; SIZE_MAX = NULL */
};

struct builder {
	struct out_addr *addrs;
	size_t count, cap;
	struct textbuf strs;
};

#define NONE ((size_t)-1)

static void *xrealloc_array(void *p, size_t n, size_t size)
{
	if (n != 0 && size > ((size_t)-1) / n)
		abort();
	void *np = realloc(p, n * size);
	if (np == NULL)
		abort();
	return np;
}

static bool is_special(unsigned char ch)
{
	return ch != '\0' && strchr("()<>[]:;@\\,.\"", ch) != NULL;
}

static void tok_add(struct lexed *lx, enum tok_type type, char special, bool gap, size_t off)
{
	if (lx->count == lx->cap) {
		lx->cap = lx->cap ? lx->cap * 2 : 16;
		lx->toks = xrealloc_array(lx->toks, lx->cap, sizeof(*lx->toks));
	}
	struct tok *t = &lx->toks[lx->count++];
	t->type = type;
	t->special = special;
	t->gap = gap;
	t->off = off;
	t->len = lx->text.len - off;
}

static void lex(struct lexed *lx, const void *value, size_t len)
{
	struct rfc822_cursor c;
	rfc822_cursor_init(&c, value, len);
	bool after_comment = false;
	for (;;) {
		const unsigned char *before = c.p;
		while (c.p < c.end && (rfc822_is_wsp(*c.p) || *c.p == '\r' || *c.p == '\n'))
			c.p++;
		if (c.p >= c.end)
			break;
		bool gap = c.p != before || after_comment;
		after_comment = *c.p == '(';
		size_t off = lx->text.len;
		unsigned char ch = *c.p;
		if (ch == '(') {
			struct textbuf comment = TEXTBUF_INIT;
			/* One comment at a time: stop the cursor after it. */
			struct rfc822_cursor one = {c.p, c.end};
			const unsigned char *p = c.p;
			size_t depth = 0;
			while (p < c.end) {
				if (*p == '\\' && p + 1 < c.end) {
					p += 2;
					continue;
				}
				if (*p == '(')
					depth++;
				else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
				p++;
			}
			one.end = p;
			rfc822_skip_cfws(&one, &comment);
			textbuf_append(&lx->text, textbuf_str(&comment), comment.len);
			textbuf_free(&comment);
			c.p = p;
			tok_add(lx, T_COMMENT, 0, gap, off);
		} else if (ch == '"') {
			rfc822_read_quoted(&c, &lx->text);
			tok_add(lx, T_WORD, 0, gap, off);
		} else if (ch == '[') {
			rfc822_read_domain_literal(&c, &lx->text);
			tok_add(lx, T_LITERAL, 0, gap, off);
		} else if (is_special(ch)) {
			c.p++;
			tok_add(lx, T_SPECIAL, (char)ch, gap, off);
		} else {
			const unsigned char *s = c.p;
			while (c.p < c.end && !is_special(*c.p) && !rfc822_is_wsp(*c.p) &&
			       *c.p != '\r' && *c.p != '\n')
				c.p++;
			textbuf_append(&lx->text, s, (size_t)(c.p - s));
			tok_add(lx, T_WORD, 0, gap, off);
		}
	}
}

struct parser {
	const struct lexed *lx;
	size_t i;
	struct builder *b;
	struct textbuf tmp;
};

static bool at_special(const struct parser *ps, char ch)
{
	return ps->i < ps->lx->count && ps->lx->toks[ps->i].type == T_SPECIAL &&
	       ps->lx->toks[ps->i].special == ch;
}

static const char *tok_text(const struct parser *ps, const struct tok *t)
{
	return textbuf_str(&ps->lx->text) + t->off;
}

static size_t str_add(struct builder *b, const void *s, size_t len)
{
	size_t off = b->strs.len;
	textbuf_append(&b->strs, s, len);
	textbuf_putc(&b->strs, '\0');
	return off;
}

static void emit(struct builder *b, size_t name, size_t adl, size_t mailbox, size_t host)
{
	if (b->count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->addrs = xrealloc_array(b->addrs, b->cap, sizeof(*b->addrs));
	}
	b->addrs[b->count++] = (struct out_addr){name, adl, mailbox, host};
}

/* Words and dots of a phrase as a display name, as written: one space
 * where the field had white space or a comment between them, none
 * elsewhere ("J.R.R. Tolkien" stays so; Dovecot and Cyrus alike). */
static void phrase_text(const struct parser *ps, size_t from, size_t to, struct textbuf *out)
{
	for (size_t k = from; k < to; k++) {
		const struct tok *t = &ps->lx->toks[k];
		bool dot = t->type == T_SPECIAL && t->special == '.';
		if (t->type != T_WORD && !dot)
			continue;
		if (t->gap && out->len > 0)
			textbuf_putc(out, ' ');
		if (dot)
			textbuf_putc(out, '.');
		else
			textbuf_append(out, tok_text(ps, t), t->len);
	}
}

/* Words and dots concatenated as they are (a local part or domain). */
static void dotted_text(const struct parser *ps, size_t from, size_t to, struct textbuf *out)
{
	for (size_t k = from; k < to; k++) {
		const struct tok *t = &ps->lx->toks[k];
		if (t->type == T_WORD || t->type == T_LITERAL)
			textbuf_append(out, tok_text(ps, t), t->len);
		else if (t->type == T_SPECIAL && t->special == '.')
			textbuf_putc(out, '.');
	}
}

/* Skips words, dots and comments; returns the last comment's token index
 * or NONE. */
static size_t skip_phrase(struct parser *ps, size_t *last_comment)
{
	size_t start = ps->i;
	while (ps->i < ps->lx->count) {
		const struct tok *t = &ps->lx->toks[ps->i];
		if (t->type == T_COMMENT)
			*last_comment = ps->i;
		else if (!(t->type == T_WORD || (t->type == T_SPECIAL && t->special == '.')))
			break;
		ps->i++;
	}
	return start;
}

/* A domain: words, dots, literals and comments up to anything else. */
static size_t parse_domain(struct parser *ps, size_t *last_comment)
{
	size_t from = ps->i;
	while (ps->i < ps->lx->count) {
		const struct tok *t = &ps->lx->toks[ps->i];
		if (t->type == T_COMMENT)
			*last_comment = ps->i;
		else if (!(t->type == T_WORD || t->type == T_LITERAL ||
			   (t->type == T_SPECIAL && t->special == '.')))
			break;
		ps->i++;
	}
	textbuf_truncate(&ps->tmp, 0);
	dotted_text(ps, from, ps->i, &ps->tmp);
	return str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
}

static size_t comment_or_none(struct parser *ps, size_t comment)
{
	if (comment == NONE)
		return NONE;
	const struct tok *t = &ps->lx->toks[comment];
	textbuf_truncate(&ps->tmp, 0);
	rfc822_unfold(tok_text(ps, t), t->len, &ps->tmp);
	if (ps->tmp.len == 0)
		return NONE;
	return str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
}

/* After "<": [route ":"] local ["@" domain] [">"] */
static void parse_angle(struct parser *ps, size_t name, size_t *last_comment)
{
	size_t adl = NONE;
	ps->i++; /* '<' */
	if (at_special(ps, '@')) {
		size_t from = ps->i;
		/* A route holds no '<' or ';': stopping there keeps a list of
		 * "<@," from rescanning the rest of the field per address. */
		while (ps->i < ps->lx->count && !at_special(ps, ':') && !at_special(ps, '>') &&
		       !at_special(ps, '<') && !at_special(ps, ';'))
			ps->i++;
		if (at_special(ps, ':')) {
			textbuf_truncate(&ps->tmp, 0);
			for (size_t k = from; k < ps->i; k++) {
				const struct tok *t = &ps->lx->toks[k];
				if (t->type == T_WORD || t->type == T_LITERAL)
					textbuf_append(&ps->tmp, tok_text(ps, t), t->len);
				else if (t->type == T_SPECIAL)
					textbuf_putc(&ps->tmp, t->special);
			}
			adl = str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
			ps->i++;
		} else {
			ps->i = from; /* no route after all */
		}
	}
	size_t from = skip_phrase(ps, last_comment);
	textbuf_truncate(&ps->tmp, 0);
	dotted_text(ps, from, ps->i, &ps->tmp);
	size_t mailbox = str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
	size_t host;
	if (at_special(ps, '@')) {
		ps->i++;
		host = parse_domain(ps, last_comment);
	} else {
		host = str_add(ps->b, "", 0);
	}
	/* Anything else up to '>' is junk. */
	while (ps->i < ps->lx->count && !at_special(ps, '>') && !at_special(ps, ',') &&
	       !at_special(ps, ';'))
		ps->i++;
	if (at_special(ps, '>'))
		ps->i++;
	/* A comment after the address names it if nothing else does. */
	while (ps->i < ps->lx->count && ps->lx->toks[ps->i].type == T_COMMENT)
		*last_comment = ps->i++;
	if (name == NONE)
		name = comment_or_none(ps, *last_comment);
	emit(ps->b, name, adl, mailbox, host);
}

/* After an address, anything up to the next ',' (or a group's ';') is
 * junk, not another address: "<a@b> Extra Junk" is one address, as in
 * Dovecot, not a second one made of the words. */
static void skip_junk(struct parser *ps, bool in_group)
{
	while (ps->i < ps->lx->count && !at_special(ps, ',') && !(in_group && at_special(ps, ';')))
		ps->i++;
}

/* One mailbox (or a group when allowed). */
static void parse_address(struct parser *ps, bool in_group)
{
	size_t last_comment = NONE;
	size_t from = skip_phrase(ps, &last_comment);
	size_t phrase_end = ps->i;
	bool have_phrase = false;
	for (size_t k = from; k < phrase_end; k++) {
		if (ps->lx->toks[k].type == T_WORD)
			have_phrase = true;
	}

	if (at_special(ps, '<')) {
		size_t name = NONE;
		textbuf_truncate(&ps->tmp, 0);
		phrase_text(ps, from, phrase_end, &ps->tmp);
		if (ps->tmp.len > 0)
			name = str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
		else if (last_comment != NONE)
			name = comment_or_none(ps, last_comment);
		last_comment = NONE;
		parse_angle(ps, name, &last_comment);
		return;
	}
	if (at_special(ps, ':') && !in_group && have_phrase) {
		textbuf_truncate(&ps->tmp, 0);
		phrase_text(ps, from, phrase_end, &ps->tmp);
		emit(ps->b, NONE, NONE, str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len), NONE);
		ps->i++;
		while (ps->i < ps->lx->count && !at_special(ps, ';')) {
			if (at_special(ps, ',')) {
				ps->i++;
				continue;
			}
			size_t before = ps->i;
			parse_address(ps, true);
			if (ps->i == before)
				ps->i++;
			else
				skip_junk(ps, true);
		}
		if (at_special(ps, ';'))
			ps->i++;
		emit(ps->b, NONE, NONE, NONE, NONE);
		return;
	}
	if (at_special(ps, '@')) {
		textbuf_truncate(&ps->tmp, 0);
		dotted_text(ps, from, phrase_end, &ps->tmp);
		size_t mailbox = str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
		ps->i++;
		size_t host = parse_domain(ps, &last_comment);
		while (ps->i < ps->lx->count && ps->lx->toks[ps->i].type == T_COMMENT)
			last_comment = ps->i++;
		emit(ps->b, comment_or_none(ps, last_comment), NONE, mailbox, host);
		return;
	}
	if (have_phrase) {
		/* Bare words without '@': the first (dotted) word is a mailbox
		 * without a domain; what follows it is junk, skipped by the
		 * caller ("undisclosed recipients" names "undisclosed"). */
		size_t word_end = from + 1;
		while (word_end < phrase_end && !ps->lx->toks[word_end].gap &&
		       ps->lx->toks[word_end].type != T_COMMENT)
			word_end++;
		textbuf_truncate(&ps->tmp, 0);
		dotted_text(ps, from, word_end, &ps->tmp);
		size_t mailbox = str_add(ps->b, textbuf_str(&ps->tmp), ps->tmp.len);
		emit(ps->b, NONE, NONE, mailbox, str_add(ps->b, "", 0));
		return;
	}
	/* Nothing usable here: the caller skips one token. */
}

void message_address_list_parse(struct message_arena *arena, const void *value, size_t len,
				struct message_address_list *list_r)
{
	struct lexed lx = {NULL, 0, 0, TEXTBUF_INIT};
	struct builder b = {NULL, 0, 0, TEXTBUF_INIT};
	struct parser ps = {&lx, 0, &b, TEXTBUF_INIT};

	lex(&lx, value, len);
	/* The builder keeps NUL-terminated strings: map NULs now. */
	for (size_t k = 0; k < lx.text.len; k++) {
		if (lx.text.data[k] == '\0')
			lx.text.data[k] = (char)0x80;
	}
	while (ps.i < lx.count) {
		if (at_special(&ps, ',')) {
			ps.i++;
			continue;
		}
		size_t before = ps.i;
		parse_address(&ps, false);
		if (ps.i == before)
			ps.i++;
		else
			skip_junk(&ps, false);
	}

	list_r->count = 0;
	list_r->addrs = NULL;
	if (b.count > 0) {
		list_r->addrs = message_arena_alloc(arena, b.count * sizeof(*list_r->addrs));
		const char *strs = textbuf_str(&b.strs);
		for (size_t k = 0; k < b.count; k++) {
			struct message_address *a = &list_r->addrs[k];
			const struct out_addr *o = &b.addrs[k];
			a->name = o->name == NONE ? NULL
						  : message_arena_strndup(arena, strs + o->name,
									  strlen(strs + o->name));
			a->adl = o->adl == NONE ? NULL
						: message_arena_strndup(arena, strs + o->adl,
									strlen(strs + o->adl));
			a->mailbox = o->mailbox == NONE
					 ? NULL
					 : message_arena_strndup(arena, strs + o->mailbox,
								 strlen(strs + o->mailbox));
			a->host = o->host == NONE ? NULL
						  : message_arena_strndup(arena, strs + o->host,
									  strlen(strs + o->host));
		}
		list_r->count = (uint32_t)b.count;
	}
	free(lx.toks);
	textbuf_free(&lx.text);
	free(b.addrs);
	textbuf_free(&b.strs);
	textbuf_free(&ps.tmp);
}
