/*
 * rfc822_header: the lexical layer of RFC 5322 header fields, shared by the
 * message parser, the MIME parameter parser and the address parser:
 * unfolding, a cursor that skips whitespace and (nested) comments, quoted
 * strings and domain literals with their escapes, and lookup of a field in
 * a raw header block (for callers that read a header by byte range).
 *
 * Security stance: input is hostile. Every function is bounded by the end
 * pointer it is given, unterminated quotes, comments and literals run to
 * the end of input instead of failing, comment nesting is counted rather
 * than recursed, and nothing here allocates except by appending to a
 * caller's textbuf (at most the input's length).
 */
#ifndef CM_LIB_RFC822_HEADER_H
#define CM_LIB_RFC822_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"

struct rfc822_cursor {
	const unsigned char *p, *end;
};

static inline void rfc822_cursor_init(struct rfc822_cursor *c, const void *data, size_t len)
{
	c->p = data;
	c->end = c->p + len;
}

static inline bool rfc822_is_wsp(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Appends the unfolded form of a raw field value to out: CRLF and LF are
 * removed (folding keeps the whitespace that follows them), a CR not
 * before LF becomes a space, leading and trailing whitespace is trimmed.
 * Other bytes, 8-bit and NUL included, are copied. */
void rfc822_unfold(const void *value, size_t len, struct textbuf *out);

/* Skips whitespace, line breaks and comments. With comment_r, the last
 * comment's text (outer parentheses removed, quoted-pairs unescaped,
 * inner parentheses kept) replaces its contents. Returns true if anything
 * was skipped. */
bool rfc822_skip_cfws(struct rfc822_cursor *c, struct textbuf *comment_r);

/* At '"': appends the quoted-string's content, quoted-pairs unescaped and
 * folding removed, to out and moves past the closing quote (or to the end
 * if there is none). */
void rfc822_read_quoted(struct rfc822_cursor *c, struct textbuf *out);

/* At '[': appends the domain literal including brackets (quoted-pairs
 * unescaped, whitespace dropped) and moves past ']' (or to the end). */
void rfc822_read_domain_literal(struct rfc822_cursor *c, struct textbuf *out);

/* RFC 5322 atext, plus every 8-bit byte (RFC 6532 and common practice). */
bool rfc822_is_atext(unsigned char ch);

/* Finds the index-th (0-based) field named name (case-insensitive) in a raw
 * header block (from the first field line up to, optionally, the blank
 * line) and appends its unfolded value to value_r. Returns 1 found, 0 not. */
int rfc822_header_find(const void *header, size_t len, const char *name, uint32_t index,
		       struct textbuf *value_r);

/* Case-insensitive comparison of an ASCII name of given length with a C
 * string. */
bool rfc822_name_equals(const void *name, size_t len, const char *want);

#endif
