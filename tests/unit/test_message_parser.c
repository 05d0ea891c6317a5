/*
 * Unit tests for lib/message_parser.c: the part tree and byte offsets of
 * well-formed and malformed messages, table-driven. Every message in the
 * tables is also fed one byte at a time, split at every point, and in
 * uneven chunks (each must equal the all-at-once result), checked for the
 * offset invariants the store relies on, and round-tripped through the
 * cache encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_cache.h"
#include "lib/message_imap.h"
#include "lib/message_parser.h"

#define MSG(lit) lit, sizeof(lit) - 1
#define ANY_LINES (-1)

struct part_want {
	const char *section; /* "" = the root */
	const char *type;    /* "type/subtype" */
	const char *header;  /* exact header bytes, or NULL to skip */
	const char *body;    /* exact body bytes, or NULL to skip */
	int64_t lines;	     /* or ANY_LINES */
	uint32_t flags;	     /* flags that must be set */
};

struct message_case {
	const char *name;
	const char *msg;
	size_t len;
	uint32_t part_count;
	uint32_t result_flags;
	struct part_want parts[8];
};

/* --- generic checks ------------------------------------------------- */

static struct message_result *parse_chunked(const char *msg, size_t len, size_t chunk)
{
	struct message_parser *p = message_parser_init();
	struct message_result *r;
	for (size_t off = 0; off < len; off += chunk)
		message_parser_feed(p, msg + off, len - off < chunk ? len - off : chunk);
	assert_int_equal(message_parser_finish(&p, &r), 0);
	assert_null(p);
	return r;
}

static void check_invariants(const char *name, const struct message_result *r, const char *msg)
{
	if (r->parts[0].header_offset != 0 || r->parts[0].body_end != r->size)
		fail_msg("%s: root spans %" PRIu64 "..%" PRIu64 " want 0..%" PRIu64, name,
			 r->parts[0].header_offset, r->parts[0].body_end, r->size);
	for (uint32_t i = 0; i < r->part_count; i++) {
		const struct message_part *p = &r->parts[i];
		if (!(p->header_offset <= p->body_offset && p->body_offset <= p->body_end &&
		      p->body_end <= r->size))
			fail_msg("%s: part %u offsets %" PRIu64 " %" PRIu64 " %" PRIu64, name, i,
				 p->header_offset, p->body_offset, p->body_end);
		uint64_t lines = 0;
		for (uint64_t k = p->body_offset; k < p->body_end; k++)
			lines += msg[k] == '\n';
		if (p->body_end > p->body_offset && msg[p->body_end - 1] != '\n')
			lines++;
		if (lines != p->body_lines)
			fail_msg("%s: part %u got %" PRIu64 " lines want %" PRIu64, name, i,
				 p->body_lines, lines);
		if (p->parent != MESSAGE_PART_NONE) {
			const struct message_part *parent = &r->parts[p->parent];
			if (p->header_offset < parent->body_offset ||
			    p->body_end > parent->body_end)
				fail_msg("%s: part %u outside its parent", name, i);
			if (p->depth != parent->depth + 1)
				fail_msg("%s: part %u depth %u", name, i, p->depth);
		}
		if (p->next != MESSAGE_PART_NONE && r->parts[p->next].header_offset < p->body_end)
			fail_msg("%s: part %u overlaps its next sibling", name, i);
		/* A part closed by a delimiter ends right before the line
		 * break that precedes it (or, holding an empty last child that
		 * the line before opened, at the delimiter line itself). */
		if (p->parent != MESSAGE_PART_NONE &&
		    (r->parts[p->parent].flags & MESSAGE_PART_FLAG_MULTIPART) != 0 &&
		    p->body_end < r->size && p->body_end > p->body_offset) {
			const char *e = msg + p->body_end;
			if (!(strncmp(e, "\r\n--", 4) == 0 || strncmp(e, "\n--", 3) == 0 ||
			      (e[-1] == '\n' && strncmp(e, "--", 2) == 0)))
				fail_msg("%s: part %u does not end before a delimiter", name, i);
		}
	}
}

/* Every chunking must give the all-at-once result. */
static void check_chunkings(const char *name, const char *msg, size_t len,
			    const struct message_result *want)
{
	static const size_t chunks[] = {1, 2, 3, 7, 64, 1000};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct message_result *r = parse_chunked(msg, len, chunks[i]);
		if (!message_result_equal(r, want))
			fail_msg("%s: %zu-byte chunks give another result", name, chunks[i]);
		message_result_free(&r);
	}
	if (len > 4096)
		return;
	for (size_t split = 0; split <= len; split++) {
		struct message_parser *p = message_parser_init();
		struct message_result *r;
		message_parser_feed(p, msg, split);
		message_parser_feed(p, msg + split, len - split);
		message_parser_finish(&p, &r);
		if (!message_result_equal(r, want))
			fail_msg("%s: split at %zu gives another result", name, split);
		message_result_free(&r);
	}
}

static void check_cache_roundtrip(const char *name, const struct message_result *r)
{
	struct textbuf buf = TEXTBUF_INIT, again = TEXTBUF_INIT;
	struct message_result *d = NULL;
	const char *error = NULL;

	message_cache_encode(r, &buf);
	if (message_cache_decode(buf.data, buf.len, &d, &error) != 0)
		fail_msg("%s: decode(encode(x)) failed: %s", name, error);
	if (!message_result_equal(r, d))
		fail_msg("%s: decode(encode(x)) != x", name);
	message_cache_encode(d, &again);
	if (again.len != buf.len || memcmp(again.data, buf.data, buf.len) != 0)
		fail_msg("%s: encoding is not canonical", name);
	/* Renderers must agree on the decoded copy too. */
	struct textbuf b1 = TEXTBUF_INIT, b2 = TEXTBUF_INIT;
	message_imap_bodystructure(r, &r->parts[0], true, &b1);
	message_imap_bodystructure(d, &d->parts[0], true, &b2);
	if (strcmp(textbuf_str(&b1), textbuf_str(&b2)) != 0)
		fail_msg("%s: BODYSTRUCTURE differs after the cache", name);
	textbuf_free(&b1);
	textbuf_free(&b2);
	message_result_free(&d);
	textbuf_free(&buf);
	textbuf_free(&again);
}

static struct message_result *check_message(const char *name, const char *msg, size_t len)
{
	struct message_result *r;
	assert_int_equal(message_parse(msg, len, &r), 0);
	if (r->size != len)
		fail_msg("%s: got size %" PRIu64 " want %zu", name, r->size, len);
	check_invariants(name, r, msg);
	check_chunkings(name, msg, len, r);
	check_cache_roundtrip(name, r);
	return r;
}

static void check_part(const struct message_case *c, const struct message_result *r,
		       const struct part_want *w)
{
	const struct message_part *p = NULL;
	const char *error = NULL;
	int ret = message_result_find_section(r, w->section, &p, &error);
	if (ret != 1)
		fail_msg("%s: section '%s': got %d (%s) want 1", c->name, w->section, ret,
			 error ? error : "");
	char type[300];
	snprintf(type, sizeof(type), "%s/%s", p->type, p->subtype);
	if (strcmp(type, w->type) != 0)
		fail_msg("%s: section '%s': got type %s want %s", c->name, w->section, type,
			 w->type);
	if (w->header != NULL) {
		size_t hlen = message_part_header_size(p);
		if (hlen != strlen(w->header) ||
		    memcmp(c->msg + p->header_offset, w->header, hlen) != 0)
			fail_msg("%s: section '%s': got header '%.*s' want '%s'", c->name,
				 w->section, (int)hlen, c->msg + p->header_offset, w->header);
	}
	if (w->body != NULL) {
		size_t blen = message_part_body_size(p);
		if (blen != strlen(w->body) || memcmp(c->msg + p->body_offset, w->body, blen) != 0)
			fail_msg("%s: section '%s': got body '%.*s' want '%s'", c->name, w->section,
				 (int)blen, c->msg + p->body_offset, w->body);
	}
	if (w->lines != ANY_LINES && (int64_t)p->body_lines != w->lines)
		fail_msg("%s: section '%s': got %" PRIu64 " lines want %" PRId64, c->name,
			 w->section, p->body_lines, w->lines);
	if ((p->flags & w->flags) != w->flags)
		fail_msg("%s: section '%s': got flags %#x want %#x set", c->name, w->section,
			 p->flags, w->flags);
}

static void run_cases(const struct message_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct message_case *c = &cases[i];
		struct message_result *r = check_message(c->name, c->msg, c->len);
		if (r->part_count != c->part_count)
			fail_msg("%s: got %u parts want %u", c->name, r->part_count, c->part_count);
		if (r->flags != c->result_flags)
			fail_msg("%s: got result flags %#x want %#x", c->name, r->flags,
				 c->result_flags);
		for (size_t k = 0; k < 8 && c->parts[k].section != NULL; k++)
			check_part(c, r, &c->parts[k]);
		message_result_free(&r);
	}
}

/* --- well-formed messages -------------------------------------------- */

#define SIMPLE_HEADER                                                                              \
	"From: Alice <alice@example.com>\r\n"                                                      \
	"To: bob@example.org\r\n"                                                                  \
	"Subject: Hello\r\n"                                                                       \
	"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"                                                 \
	"Message-ID: <a1@example.com>\r\n"                                                         \
	"\r\n"

static const char msg_mixed[] = "From: a@b.c\r\n"
				"Subject: mixed\r\n"
				"MIME-Version: 1.0\r\n"
				"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
				"\r\n"
				"This is a preamble.\r\n"
				"--XX\r\n"
				"Content-Type: text/plain; charset=utf-8\r\n"
				"\r\n"
				"Body text.\r\n"
				"--XX\r\n"
				"Content-Type: image/png; name=\"pic.png\"\r\n"
				"Content-Transfer-Encoding: base64\r\n"
				"Content-Disposition: attachment; filename=\"pic.png\"\r\n"
				"Content-ID: <pic1@x>\r\n"
				"\r\n"
				"iVBORw0KGgo=\r\n"
				"--XX\r\n"
				"Content-Type: application/octet-stream\r\n"
				"\r\n"
				"--XX--\r\n"
				"epilogue\r\n";

static const char msg_mixed_lf[] = "From: a@b.c\n"
				   "Content-Type: multipart/mixed; boundary=\"XX\"\n"
				   "\n"
				   "--XX\n"
				   "Content-Type: text/plain; charset=utf-8\n"
				   "\n"
				   "Body text.\n"
				   "two\n"
				   "--XX\n"
				   "Content-Type: image/png\n"
				   "\n"
				   "iVBORw0KGgo=\n"
				   "--XX--\n";

static const char msg_nested[] = "Content-Type: multipart/mixed; boundary=outer\r\n"
				 "\r\n"
				 "--outer\r\n"
				 "Content-Type: multipart/alternative; boundary=inner\r\n"
				 "\r\n"
				 "--inner\r\n"
				 "Content-Type: text/plain\r\n"
				 "\r\n"
				 "plain\r\n"
				 "--inner\r\n"
				 "Content-Type: text/html\r\n"
				 "\r\n"
				 "<p>html</p>\r\n"
				 "--inner--\r\n"
				 "--outer\r\n"
				 "Content-Type: application/pdf\r\n"
				 "\r\n"
				 "PDF\r\n"
				 "--outer--\r\n";

static const char msg_rfc822[] = "From: outer@x\r\n"
				 "Subject: fwd\r\n"
				 "Content-Type: multipart/mixed; boundary=b\r\n"
				 "\r\n"
				 "--b\r\n"
				 "Content-Type: text/plain\r\n"
				 "\r\n"
				 "see attached\r\n"
				 "--b\r\n"
				 "Content-Type: message/rfc822\r\n"
				 "\r\n"
				 "From: inner@y\r\n"
				 "Subject: inner subject\r\n"
				 "Content-Type: multipart/alternative; boundary=c\r\n"
				 "\r\n"
				 "--c\r\n"
				 "\r\n"
				 "inner plain\r\n"
				 "--c\r\n"
				 "Content-Type: text/html\r\n"
				 "\r\n"
				 "<b>x</b>\r\n"
				 "--c--\r\n"
				 "\r\n"
				 "--b--\r\n";

static const char msg_digest[] = "Content-Type: multipart/digest; boundary=d\r\n"
				 "\r\n"
				 "--d\r\n"
				 "\r\n"
				 "From: one@x\r\n"
				 "Subject: first\r\n"
				 "\r\n"
				 "body one\r\n"
				 "--d\r\n"
				 "Content-Type: text/plain\r\n"
				 "\r\n"
				 "not a message\r\n"
				 "--d--\r\n";

static void test_wellformed(void **state)
{
	static const struct message_case cases[] = {
	    {"simple",
	     MSG(SIMPLE_HEADER "Line one\r\nLine two\r\n"),
	     1,
	     0,
	     {{"", "text/plain", SIMPLE_HEADER, "Line one\r\nLine two\r\n", 2,
	       MESSAGE_PART_FLAG_MESSAGE},
	      {"1", "text/plain", NULL, "Line one\r\nLine two\r\n", 2, 0}}},
	    {"simple bare LF, no final newline",
	     MSG("Subject: x\n\nLine one\nLine two"),
	     1,
	     0,
	     {{"", "text/plain", "Subject: x\n\n", "Line one\nLine two", 2, 0}}},
	    {"mixed with attachments",
	     MSG(msg_mixed),
	     4,
	     0,
	     {{"", "multipart/mixed", NULL, NULL, ANY_LINES, MESSAGE_PART_FLAG_MULTIPART},
	      {"1", "text/plain", "Content-Type: text/plain; charset=utf-8\r\n\r\n", "Body text.",
	       1, 0},
	      {"2", "image/png", NULL, "iVBORw0KGgo=", 1, 0},
	      {"3", "application/octet-stream", "Content-Type: application/octet-stream\r\n\r\n",
	       "", 0, 0}}},
	    {"mixed with bare LF",
	     MSG(msg_mixed_lf),
	     3,
	     0,
	     {{"1", "text/plain", "Content-Type: text/plain; charset=utf-8\n\n", "Body text.\ntwo",
	       2, 0},
	      {"2", "image/png", "Content-Type: image/png\n\n", "iVBORw0KGgo=", 1, 0}}},
	    {"alternative inside mixed",
	     MSG(msg_nested),
	     5,
	     0,
	     {{"1", "multipart/alternative",
	       "Content-Type: multipart/alternative; boundary=inner\r\n\r\n",
	       "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\n"
	       "Content-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--",
	       ANY_LINES, MESSAGE_PART_FLAG_MULTIPART},
	      {"1.1", "text/plain", "Content-Type: text/plain\r\n\r\n", "plain", 1, 0},
	      {"1.2", "text/html", NULL, "<p>html</p>", 1, 0},
	      {"2", "application/pdf", NULL, "PDF", 1, 0}}},
	    {"message/rfc822 attachment",
	     MSG(msg_rfc822),
	     6,
	     0,
	     {{"1", "text/plain", NULL, "see attached", 1, 0},
	      {"2", "message/rfc822", "Content-Type: message/rfc822\r\n\r\n",
	       "From: inner@y\r\nSubject: inner subject\r\n"
	       "Content-Type: multipart/alternative; boundary=c\r\n\r\n"
	       "--c\r\n\r\ninner plain\r\n--c\r\nContent-Type: text/html\r\n\r\n"
	       "<b>x</b>\r\n--c--\r\n",
	       12, MESSAGE_PART_FLAG_RFC822},
	      {"2.1", "text/plain", "\r\n", "inner plain", 1, 0},
	      {"2.2", "text/html", NULL, "<b>x</b>", 1, 0}}},
	    {"digest",
	     MSG(msg_digest),
	     4,
	     0,
	     {{"1", "message/rfc822", "\r\n", "From: one@x\r\nSubject: first\r\n\r\nbody one", 4,
	       MESSAGE_PART_FLAG_RFC822},
	      {"1.1", "text/plain", "From: one@x\r\nSubject: first\r\n\r\n", "body one", 1,
	       MESSAGE_PART_FLAG_MESSAGE},
	      {"2", "text/plain", NULL, "not a message", 1, 0}}},
	};
	(void)state;
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* --- malformed messages ---------------------------------------------- */

static void test_malformed(void **state)
{
	static const struct message_case cases[] = {
	    {"empty message", MSG(""), 1, 0, {{"", "text/plain", "", "", 0, 0}}},
	    {"only a blank line", MSG("\r\n"), 1, 0, {{"", "text/plain", "\r\n", "", 0, 0}}},
	    {"header without body",
	     MSG("Subject: no body\r\n"),
	     1,
	     0,
	     {{"", "text/plain", "Subject: no body\r\n", "", 0,
	       MESSAGE_PART_FLAG_HEADER_UNTERMINATED}}},
	    {"header without line break",
	     MSG("Subject: no body"),
	     1,
	     0,
	     {{"", "text/plain", "Subject: no body", "", 0,
	       MESSAGE_PART_FLAG_HEADER_UNTERMINATED}}},
	    {"missing close delimiter",
	     MSG("Content-Type: multipart/mixed; boundary=z\r\n\r\n"
		 "--z\r\n\r\nfirst\r\n--z\r\n\r\nsecond part never closed"),
	     3,
	     0,
	     {{"", "multipart/mixed", NULL, NULL, ANY_LINES, MESSAGE_PART_FLAG_UNTERMINATED},
	      {"1", "text/plain", "\r\n", "first", 1, 0},
	      {"2", "text/plain", "\r\n", "second part never closed", 1, 0}}},
	    {"boundary never appears",
	     MSG("Content-Type: multipart/mixed; boundary=nothere\r\n\r\njust text\r\n"),
	     1,
	     0,
	     {{"", "multipart/mixed", NULL, "just text\r\n", 1,
	       MESSAGE_PART_FLAG_MULTIPART | MESSAGE_PART_FLAG_UNTERMINATED}}},
	    {"multipart without boundary parameter",
	     MSG("Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\ntext\r\n"),
	     1,
	     0,
	     {{"", "multipart/mixed", NULL, "--x\r\n\r\ntext\r\n", 3, 0}}},
	    {"boundary longer than 70",
	     MSG("Content-Type: multipart/mixed; boundary="
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		 "\r\n--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "\r\n\r\nx\r\n"),
	     1,
	     0,
	     {{"", "multipart/mixed", NULL, NULL, 3, 0}}},
	    {"delimiters in the epilogue",
	     MSG("Content-Type: multipart/mixed; boundary=e\r\n\r\n"
		 "--e\r\n\r\none\r\n--e--\r\n--e\r\n\r\nnot a part\r\n"),
	     2,
	     0,
	     {{"1", "text/plain", "\r\n", "one", 1, 0}}},
	    {"preamble that looks like a part",
	     MSG("Content-Type: multipart/mixed; boundary=p\r\n\r\n"
		 "Content-Type: text/html\r\n\r\n-p\r\n--p\r\n\r\nreal\r\n--p--"),
	     2,
	     0,
	     {{"1", "text/plain", "\r\n", "real", 1, 0}}},
	    {"outer delimiter closes the inner multipart",
	     MSG("Content-Type: multipart/mixed; boundary=out\r\n\r\n"
		 "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
		 "--in\r\n\r\ninner one\r\n"
		 "--out\r\n\r\nafter\r\n--out--\r\n"),
	     4,
	     0,
	     {{"1", "multipart/alternative", NULL, "--in\r\n\r\ninner one", 3,
	       MESSAGE_PART_FLAG_UNTERMINATED},
	      {"1.1", "text/plain", "\r\n", "inner one", 1, 0},
	      {"2", "text/plain", "\r\n", "after", 1, 0}}},
	    {"inner boundary extends the outer one",
	     MSG("Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
		 "--ab\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n"
		 "--abc\r\n\r\nx\r\n--abc--\r\n"
		 "--ab\r\n\r\ny\r\n--ab--\r\n"),
	     4,
	     0,
	     {{"1", "multipart/mixed", NULL, "--abc\r\n\r\nx\r\n--abc--", 4, 0},
	      {"1.1", "text/plain", NULL, "x", 1, 0},
	      {"2", "text/plain", NULL, "y", 1, 0}}},
	    {"inner boundary is a prefix of the outer one",
	     MSG("Content-Type: multipart/mixed; boundary=abc\r\n\r\n"
		 "--abc\r\nContent-Type: multipart/mixed; boundary=ab\r\n\r\n"
		 "--ab\r\n\r\nx\r\n--ab--\r\n"
		 "--abc\r\n\r\ny\r\n--abc--\r\n"),
	     4,
	     0,
	     {{"1", "multipart/mixed", NULL, "--ab\r\n\r\nx\r\n--ab--", 4, 0},
	      {"1.1", "text/plain", NULL, "x", 1, 0},
	      {"2", "text/plain", NULL, "y", 1, 0}}},
	    {"transport padding and junk after delimiters",
	     MSG("Content-Type: multipart/mixed; boundary=t\r\n\r\n"
		 "--t   \r\n\r\none\r\n--t\tjunk\r\n\r\ntwo\r\n--t--  \r\n"),
	     3,
	     0,
	     {{"1", "text/plain", NULL, "one", 1, 0}, {"2", "text/plain", NULL, "two", 1, 0}}},
	    {"close delimiter at end of input without line break",
	     MSG("Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nlast\r\n--q--"),
	     2,
	     0,
	     {{"1", "text/plain", NULL, "last", 1, 0}}},
	    {"delimiter at end of input starts an empty part",
	     MSG("Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nlast\r\n--q"),
	     3,
	     0,
	     {{"1", "text/plain", NULL, "last", 1, 0},
	      {"2", "text/plain", "", "", 0, MESSAGE_PART_FLAG_HEADER_UNTERMINATED}}},
	    {"part header ended by a delimiter",
	     MSG("Content-Type: multipart/mixed; boundary=h\r\n\r\n"
		 "--h\r\nContent-Type: text/html\r\n--h\r\n\r\nsecond\r\n--h--\r\n"),
	     3,
	     0,
	     {{"1", "text/html", "Content-Type: text/html", "", 0,
	       MESSAGE_PART_FLAG_HEADER_UNTERMINATED},
	      {"2", "text/plain", "\r\n", "second", 1, 0}}},
	    {"two delimiters in a row",
	     MSG("Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\n--h\r\n\r\nx\r\n--h--"),
	     3,
	     0,
	     {{"1", "text/plain", "", "", 0, MESSAGE_PART_FLAG_HEADER_UNTERMINATED},
	      {"2", "text/plain", "\r\n", "x", 1, 0}}},
	    {"empty part opened right before an outer delimiter (fuzzer)",
	     MSG("Content-Type: multipart/mixed; boundary=out\r\n\r\n"
		 "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
		 "--in\r\n\r\nx\r\n--in\r\n--out--\r\n"),
	     4,
	     0,
	     {{"1", "multipart/alternative", NULL, "--in\r\n\r\nx\r\n--in\r\n", 4,
	       MESSAGE_PART_FLAG_UNTERMINATED},
	      {"1.1", "text/plain", "\r\n", "x", 1, 0},
	      {"1.2", "text/plain", "", "", 0, MESSAGE_PART_FLAG_HEADER_UNTERMINATED}}},
	    {"duplicate Content-Type: the first wins",
	     MSG("Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=x\r\n"
		 "\r\n--x\r\n\r\nnot a part\r\n--x--\r\n"),
	     1,
	     0,
	     {{"", "text/plain", NULL, NULL, 4, 0}}},
	    {"invalid Content-Type falls back to text/plain",
	     MSG("Content-Type: multipart\r\n\r\n--x\r\n"),
	     1,
	     0,
	     {{"", "text/plain", NULL, "--x\r\n", 1, 0}}},
	    {"quoted-string escapes in the boundary",
	     MSG("Content-Type: multipart/mixed; boundary=\"a\\\"b\\\\c\"\r\n\r\n"
		 "--a\"b\\c\r\n\r\nquoted\r\n--a\"b\\c--\r\n"),
	     2,
	     0,
	     {{"1", "text/plain", "\r\n", "quoted", 1, 0}}},
	    {"folded Content-Type with comments",
	     MSG("Content-Type: (c) multipart/mixed;\r\n\tboundary=\"f\" (more)\r\n\r\n"
		 "--f\r\n\r\nfolded\r\n--f--\r\n"),
	     2,
	     0,
	     {{"1", "text/plain", NULL, "folded", 1, 0}}},
	    {"8-bit and NUL bytes in headers",
	     MSG("Subject: caf\xe9 \0 x\r\nX-\xff\0Name: v\0\r\n\r\nbody\0\r\n"),
	     1,
	     0,
	     {{"", "text/plain", NULL, NULL, 1, 0}}},
	    {"lines without colon and leading continuation",
	     MSG(" leading continuation\r\nno colon here\r\nSubject: s\r\n"
		 " folded\r\n\r\nb"),
	     1,
	     0,
	     {{"", "text/plain", NULL, "b", 1, 0}}},
	    {"CR alone in a header and CR CR LF",
	     MSG("Subject: a\rb\r\nX: y\r\r\n\r\nbody"),
	     1,
	     0,
	     {{"", "text/plain", NULL, "body", 1, 0}}},
	    {"base64 message/rfc822 stays opaque",
	     MSG("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		 "U3ViamVjdDogeA0KDQp4\r\n"),
	     1,
	     0,
	     {{"", "message/rfc822", NULL, "U3ViamVjdDogeA0KDQp4\r\n", 1, 0}}},
	    {"message/rfc822 at top level",
	     MSG("Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner body"),
	     2,
	     0,
	     {{"1", "message/rfc822", NULL, "Subject: in\r\n\r\ninner body", 3,
	       MESSAGE_PART_FLAG_RFC822},
	      {"1.1", "text/plain", "Subject: in\r\n\r\n", "inner body", 1,
	       MESSAGE_PART_FLAG_MESSAGE}}},
	    {"truncated message/rfc822 inside a multipart",
	     MSG("Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
		 "Content-Type: message/rfc822\r\n\r\nSubject: cut\r\n--m--\r\n"),
	     3,
	     0,
	     {{"1", "message/rfc822", NULL, "Subject: cut", 1, MESSAGE_PART_FLAG_RFC822},
	      {"1.1", "text/plain", "Subject: cut", "", 0,
	       MESSAGE_PART_FLAG_MESSAGE | MESSAGE_PART_FLAG_HEADER_UNTERMINATED}}},
	};
	(void)state;
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* --- limits ------------------------------------------------------------ */

static void test_huge_header_line(void **state)
{
	struct textbuf msg = TEXTBUF_INIT;
	(void)state;
	textbuf_puts(&msg, "Subject: ");
	for (int i = 0; i < 200000; i++)
		textbuf_putc(&msg, 'a' + i % 26);
	textbuf_puts(&msg, "\r\nTo: x@y\r\n\r\nbody\r\n");

	struct message_result *r = check_message("huge header", msg.data, msg.len);
	const struct message_part *root = &r->parts[0];
	assert_int_equal(root->body_offset, msg.len - 6);
	assert_int_equal(root->field_count, 2);
	const struct message_field *f = &root->fields[0];
	if (f->raw_len != MESSAGE_FIELD_MAX || f->size != 9 + 200000 + 2 || f->offset != 0)
		fail_msg("got raw_len %u size %" PRIu64 " want %d %d", f->raw_len, f->size,
			 MESSAGE_FIELD_MAX, 9 + 200000 + 2);
	assert_true(root->flags & MESSAGE_PART_FLAG_FIELDS_TRUNCATED);
	assert_int_equal(strlen(root->envelope->raw[MESSAGE_ENV_SUBJECT]), MESSAGE_FIELD_MAX - 9);
	assert_int_equal(root->fields[1].offset, 9 + 200000 + 2);
	assert_string_equal(root->envelope->addr[MESSAGE_ENV_TO - MESSAGE_ENV_FROM].addrs[0].host,
			    "y");
	message_result_free(&r);
	textbuf_free(&msg);
}

static void test_deep_nesting(void **state)
{
	const int levels = 5000;
	struct textbuf msg = TEXTBUF_INIT;
	(void)state;
	for (int i = 0; i < levels; i++)
		textbuf_printf(
		    &msg, "Content-Type: multipart/mixed; boundary=b%05d\r\n\r\n--b%05d\r\n", i, i);
	textbuf_puts(&msg, "\r\ndeepest\r\n");
	for (int i = levels - 1; i >= 0; i--)
		textbuf_printf(&msg, "--b%05d--\r\n", i);

	struct message_result *r = check_message("deep nesting", msg.data, msg.len);
	if (r->part_count != MESSAGE_DEPTH_MAX + 1)
		fail_msg("got %u parts want %d", r->part_count, MESSAGE_DEPTH_MAX + 1);
	assert_int_equal(r->flags, MESSAGE_RESULT_FLAG_DEPTH_LIMIT);
	const struct message_part *last = &r->parts[r->part_count - 1];
	assert_int_equal(last->depth, MESSAGE_DEPTH_MAX);
	assert_string_equal(last->type, "multipart");
	assert_int_equal(last->flags & MESSAGE_PART_FLAG_MULTIPART, 0);
	/* Every parsed multipart saw its close delimiter. */
	for (uint32_t i = 0; i + 1 < r->part_count; i++)
		assert_int_equal(r->parts[i].flags & MESSAGE_PART_FLAG_UNTERMINATED, 0);
	struct textbuf bs = TEXTBUF_INIT;
	message_imap_bodystructure(r, &r->parts[0], true, &bs);
	assert_true(bs.len > 0);
	textbuf_free(&bs);
	message_result_free(&r);
	textbuf_free(&msg);
}

static void test_deep_rfc822_nesting(void **state)
{
	struct textbuf msg = TEXTBUF_INIT;
	(void)state;
	for (int i = 0; i < 3000; i++)
		textbuf_puts(&msg, "Content-Type: message/rfc822\r\n\r\n");
	textbuf_puts(&msg, "Subject: bottom\r\n\r\nx");
	struct message_result *r = check_message("deep rfc822", msg.data, msg.len);
	assert_int_equal(r->part_count, MESSAGE_DEPTH_MAX + 1);
	assert_int_equal(r->flags, MESSAGE_RESULT_FLAG_DEPTH_LIMIT);
	message_result_free(&r);
	textbuf_free(&msg);
}

static void test_too_many_parts(void **state)
{
	const int n = MESSAGE_PARTS_MAX + 50;
	struct textbuf msg = TEXTBUF_INIT;
	(void)state;
	textbuf_puts(&msg, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < n; i++)
		textbuf_printf(&msg, "--p\r\n\r\npart %d\r\n", i);
	textbuf_puts(&msg, "--p--\r\n");

	struct message_result *r = check_message("too many parts", msg.data, msg.len);
	assert_int_equal(r->part_count, MESSAGE_PARTS_MAX);
	assert_int_equal(r->flags, MESSAGE_RESULT_FLAG_PARTS_LIMIT);
	assert_int_equal(r->parts[0].children, MESSAGE_PARTS_MAX - 1);
	assert_int_equal(r->parts[0].flags & MESSAGE_PART_FLAG_UNTERMINATED, 0);
	/* The last part that exists still ends at its delimiter. */
	const struct message_part *last = &r->parts[r->part_count - 1];
	char want[32];
	snprintf(want, sizeof(want), "part %d", MESSAGE_PARTS_MAX - 2);
	assert_int_equal(message_part_body_size(last), strlen(want));
	assert_memory_equal(msg.data + last->body_offset, want, strlen(want));
	message_result_free(&r);
	textbuf_free(&msg);
}

static void test_many_fields(void **state)
{
	struct textbuf msg = TEXTBUF_INIT;
	(void)state;
	for (int i = 0; i < MESSAGE_FIELDS_MAX + 100; i++)
		textbuf_printf(&msg, "Received: from h%d\r\n", i);
	textbuf_puts(&msg, "Subject: after the flood\r\n\r\nb");
	struct message_result *r = check_message("many fields", msg.data, msg.len);
	const struct message_part *root = &r->parts[0];
	assert_int_equal(root->field_count, MESSAGE_FIELDS_MAX);
	assert_true(root->flags & MESSAGE_PART_FLAG_FIELDS_TRUNCATED);
	/* Fields past the limit still feed the envelope. */
	assert_string_equal(root->envelope->raw[MESSAGE_ENV_SUBJECT], "after the flood");
	message_result_free(&r);
	textbuf_free(&msg);
}

/* Past MESSAGE_RESULT_MAX, fields and addresses are dropped but the tree,
 * types and offsets stay exact, and memory stays near the budget. */
static void test_budget(void **state)
{
	struct textbuf msg = TEXTBUF_INIT, pad = TEXTBUF_INIT;
	const int parts = 300;
	(void)state;
	for (int i = 0; i < 40000; i++)
		textbuf_putc(&pad, 'a' + i % 26);
	textbuf_puts(&msg, "Content-Type: multipart/mixed; boundary=z\r\n\r\n");
	for (int i = 0; i < parts; i++)
		textbuf_printf(&msg,
			       "--z\r\nContent-Type: message/rfc822\r\n\r\n"
			       "X-Pad: %s\r\nTo: a%d@x\r\nContent-Type: text/html\r\n\r\nb%d\r\n",
			       textbuf_str(&pad), i, i);
	textbuf_puts(&msg, "--z--\r\n");

	struct message_result *r;
	message_parse(msg.data, msg.len, &r);
	check_invariants("budget", r, msg.data);
	check_cache_roundtrip("budget", r);
	assert_int_equal(r->flags, MESSAGE_RESULT_FLAG_BUDGET_LIMIT);
	assert_int_equal(r->part_count, 1 + 2 * parts);
	size_t used = message_arena_used(r->arena);
	if (used > MESSAGE_RESULT_MAX + 4 * MESSAGE_FIELD_MAX)
		fail_msg("got %zu arena bytes want at most %d", used,
			 MESSAGE_RESULT_MAX + 4 * MESSAGE_FIELD_MAX);
	/* The last message lost its fields but not its structure. */
	const struct message_part *last = &r->parts[r->part_count - 1];
	assert_true(last->flags & MESSAGE_PART_FLAG_FIELDS_TRUNCATED);
	assert_int_equal(last->field_count, 0);
	assert_null(last->envelope->raw[MESSAGE_ENV_TO]);
	assert_string_equal(last->type, "text");
	assert_string_equal(last->subtype, "html");
	char want[16];
	snprintf(want, sizeof(want), "b%d", parts - 1);
	assert_int_equal(message_part_body_size(last), strlen(want));
	assert_memory_equal(msg.data + last->body_offset, want, strlen(want));
	/* The first ones kept everything. */
	assert_int_equal(r->parts[2].field_count, 3);
	assert_string_equal(r->parts[2].envelope->raw[MESSAGE_ENV_TO], "a0@x");
	message_result_free(&r);
	textbuf_free(&msg);
	textbuf_free(&pad);
}

/* --- header fields and envelope values ---------------------------------- */

static void test_header_values(void **state)
{
	static const char msg[] =
	    "Received: from a\r\n"
	    "Subject: first\r\n"
	    "  subject line\r\n"
	    "SUBJECT: second\r\n"
	    "X-Empty:\r\n"
	    "To : Group: a@b, \"Q, R\" <q@r>;, (c) solo@host (Solo Name)\r\n"
	    "Date: (comment) Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	    "References: <a@b>\r\n <c@d>\r\n"
	    "Content-Type: text/plain; charset=\"ISO-8859-1\"; format=flowed\r\n"
	    "Content-Transfer-Encoding: Quoted-Printable (qp)\r\n"
	    "Content-Disposition: INLINE; filename*=utf-8''%e2%82%ac.txt\r\n"
	    "Content-Language: en-US (english), fr\r\n"
	    "Content-ID: <id@x>\r\n"
	    "Content-Description: the text\r\n"
	    "Content-Location: http://x/y\r\n"
	    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
	    "\r\n"
	    "body\r\n";
	struct message_result *r = check_message("header values", MSG(msg));
	const struct message_part *root = &r->parts[0];
	struct textbuf v = TEXTBUF_INIT;
	(void)state;

	static const struct {
		const char *name;
		uint32_t index;
		int found;
		const char *value;
	} lookups[] = {
	    {"subject", 0, 1, "first  subject line"},
	    {"Subject", 1, 1, "second"},
	    {"subject", 2, 0, NULL},
	    {"x-empty", 0, 1, ""},
	    {"to", 0, 1, "Group: a@b, \"Q, R\" <q@r>;, (c) solo@host (Solo Name)"},
	    {"references", 0, 1, "<a@b> <c@d>"},
	    {"missing", 0, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		textbuf_truncate(&v, 0);
		int ret = message_part_header_get(root, lookups[i].name, lookups[i].index, &v);
		if (ret != lookups[i].found)
			fail_msg("%s[%u]: got %d want %d", lookups[i].name, lookups[i].index, ret,
				 lookups[i].found);
		if (ret == 1 && strcmp(textbuf_str(&v), lookups[i].value) != 0)
			fail_msg("%s[%u]: got '%s' want '%s'", lookups[i].name, lookups[i].index,
				 textbuf_str(&v), lookups[i].value);
	}
	/* Field offsets point at the field in the message. */
	const struct message_field *f = message_part_field_find(root, "references", 0);
	assert_non_null(f);
	assert_int_equal(f->size, strlen("References: <a@b>\r\n <c@d>\r\n"));
	assert_memory_equal(msg + f->offset, "References: <a@b>\r\n <c@d>\r\n", f->size);
	assert_memory_equal(f->raw, msg + f->offset, f->size);

	const struct message_envelope *env = root->envelope;
	assert_string_equal(env->raw[MESSAGE_ENV_SUBJECT], "first  subject line");
	assert_string_equal(env->raw[MESSAGE_ENV_REFERENCES], "<a@b> <c@d>");
	assert_null(env->raw[MESSAGE_ENV_FROM]);
	assert_true(env->date_valid);
	assert_int_equal(env->date, 1057049557);
	assert_int_equal(env->date_tz, 120);
	const struct message_address_list *to = &env->addr[MESSAGE_ENV_TO - MESSAGE_ENV_FROM];
	assert_int_equal(to->count, 5);

	assert_string_equal(root->type, "text");
	assert_int_equal(root->param_count, 2);
	assert_string_equal(root->params[0].name, "charset");
	assert_string_equal(root->params[0].value, "ISO-8859-1");
	assert_string_equal(root->params[1].name, "format");
	assert_string_equal(root->encoding, "quoted-printable");
	assert_string_equal(root->disposition, "inline");
	assert_int_equal(root->disp_param_count, 1);
	assert_string_equal(root->disp_params[0].value, "\xe2\x82\xac.txt");
	assert_string_equal(root->disp_params[0].charset, "utf-8");
	assert_string_equal(root->language, "en-US,fr");
	assert_string_equal(root->id, "<id@x>");
	assert_string_equal(root->description, "the text");
	assert_string_equal(root->location, "http://x/y");
	assert_string_equal(root->md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
	textbuf_free(&v);
	message_result_free(&r);
}

static void test_defaults(void **state)
{
	static const struct {
		const char *msg;
		const char *type, *subtype, *params; /* params "n=v;n=v" */
	} cases[] = {
	    {"\r\nx", "text", "plain", "charset=us-ascii"},
	    {"Content-Type: text/html\r\n\r\nx", "text", "html", "charset=us-ascii"},
	    {"Content-Type: TEXT/Plain; CHARSET=UTF-8\r\n\r\nx", "text", "plain", "charset=UTF-8"},
	    {"Content-Type: image/gif\r\n\r\nx", "image", "gif", ""},
	    {"Content-Type: /gif; a=b\r\n\r\nx", "text", "plain", "charset=us-ascii"},
	    {"Content-Type: text/plain; ;;; =x; charset ; foo=\"unterminated\r\n\r\nx", "text",
	     "plain", "foo=unterminated;charset=us-ascii"},
	    {"Content-Type: text/plain garbage; a=1; b = \"2\" ; a=3\r\n\r\nx", "text", "plain",
	     "a=1;b=2;charset=us-ascii"},
	    {"Content-Type: application/x; boundary=----=_Part_1; name=a/b.pdf\r\n\r\n",
	     "application", "x", "boundary=----=_Part_1;name=a/b.pdf"},
	    {"Content-Type: application/x; name*0=\"lo\"; name*1=\"ng\"; name*3=\"x\"\r\n\r\n",
	     "application", "x", "name=long"},
	    {"Content-Type: application/x; title=plain; title*=us-ascii'en'%41%42\r\n\r\n",
	     "application", "x", "title=AB"},
	    {"Content-Type: application/x; n*1=b; n*0=a\r\n\r\n", "application", "x", "n=ab"},
	    {"Content-Type: application/x; n*1=b\r\n\r\n", "application", "x", ""},
	    {"Content-Type: application/x; a=\"\\\"q\\\\\"\r\n\r\n", "application", "x", "a=\"q\\"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_result *r;
		message_parse(cases[i].msg, strlen(cases[i].msg), &r);
		const struct message_part *p = &r->parts[0];
		struct textbuf got = TEXTBUF_INIT;
		for (uint32_t k = 0; k < p->param_count; k++)
			textbuf_printf(&got, "%s%s=%s", k ? ";" : "", p->params[k].name,
				       p->params[k].value);
		if (strcmp(p->type, cases[i].type) != 0 ||
		    strcmp(p->subtype, cases[i].subtype) != 0 ||
		    strcmp(textbuf_str(&got), cases[i].params) != 0)
			fail_msg("case %zu: got %s/%s [%s] want %s/%s [%s]", i, p->type, p->subtype,
				 textbuf_str(&got), cases[i].type, cases[i].subtype,
				 cases[i].params);
		textbuf_free(&got);
		message_result_free(&r);
	}
}

/* --- sections ----------------------------------------------------------- */

static void test_sections(void **state)
{
	struct message_result *r;
	(void)state;
	message_parse(msg_rfc822, sizeof(msg_rfc822) - 1, &r);
	static const struct {
		const char *section;
		int want;
		const char *type; /* of the part found */
	} cases[] = {
	    {"", 1, "multipart/mixed"}, {"1", 1, "text/plain"},
	    {"2", 1, "message/rfc822"}, {"2.1", 1, "text/plain"},
	    {"2.2", 1, "text/html"},	{"3", 0, NULL},
	    {"1.1", 0, NULL},		{"2.3", 0, NULL},
	    {"2.1.1", 0, NULL},		{"0", -1, NULL},
	    {"1.", -1, NULL},		{".1", -1, NULL},
	    {"1..2", -1, NULL},		{"01", -1, NULL},
	    {"1.x", -1, NULL},		{"3.0", -1, NULL},
	    {"99999999999", -1, NULL},	{"4294967295", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct message_part *p = NULL;
		const char *error = NULL;
		int ret = message_result_find_section(r, cases[i].section, &p, &error);
		if (ret != cases[i].want)
			fail_msg("'%s': got %d want %d", cases[i].section, ret, cases[i].want);
		if (ret == -1 && error == NULL)
			fail_msg("'%s': no error text", cases[i].section);
		if (ret == 1) {
			char type[300];
			snprintf(type, sizeof(type), "%s/%s", p->type, p->subtype);
			if (strcmp(type, cases[i].type) != 0)
				fail_msg("'%s': got %s want %s", cases[i].section, type,
					 cases[i].type);
		}
	}
	/* HEADER/TEXT of "2" are those of the message it carries. */
	const struct message_part *p2, *m;
	assert_int_equal(message_result_find_section(r, "2", &p2, NULL), 1);
	m = message_part_message(r, p2);
	assert_non_null(m);
	assert_true(m->flags & MESSAGE_PART_FLAG_MESSAGE);
	assert_int_equal(m->header_offset, p2->body_offset);
	assert_string_equal(m->envelope->raw[MESSAGE_ENV_SUBJECT], "inner subject");
	assert_int_equal(m->field_count, 3);
	const struct message_part *p1;
	assert_int_equal(message_result_find_section(r, "1", &p1, NULL), 1);
	assert_null(message_part_message(r, p1));
	assert_ptr_equal(message_part_message(r, &r->parts[0]), &r->parts[0]);
	/* MIME parts keep no fields. */
	assert_int_equal(p1->field_count, 0);
	assert_null(p1->envelope);
	message_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wellformed),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_huge_header_line),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_deep_rfc822_nesting),
	    cmocka_unit_test(test_too_many_parts),
	    cmocka_unit_test(test_many_fields),
	    cmocka_unit_test(test_budget),
	    cmocka_unit_test(test_header_values),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_sections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
