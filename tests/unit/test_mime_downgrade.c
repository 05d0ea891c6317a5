/*
 * 8BITMIME downgrade tests: exact output for small messages, and for
 * every case the invariants: the output parses to the same MIME
 * structure, holds no byte >= 0x80 (when it says so), parts that were
 * 7-bit are byte-identical, and decoding each re-encoded part's
 * quoted-printable gives back the original bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_parser.h"
#include "lib/mime_downgrade.h"
#include "lib/rfc2047.h"
#include "lib/textbuf.h"

/* RFC 2045 6.7 decoding, keeping hard line breaks as they are. */
static void qp_decode(const char *p, size_t n, struct textbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '=') {
			textbuf_putc(out, p[i]);
		} else if (i + 1 < n && p[i + 1] == '\n') {
			i += 1;
		} else if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
			i += 2;
		} else {
			assert_true(i + 2 < n);
			unsigned v;
			assert_int_equal(sscanf(p + i + 1, "%2X", &v), 1);
			textbuf_putc(out, (char)v);
			i += 2;
		}
	}
}

static void check_qp_lines(const char *p, size_t n)
{
	size_t col = 0;
	bool after_soft = false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			after_soft = i > 0 && (p[i - 1] == '=' || (p[i - 1] == '\r' && i > 1 && p[i - 2] == '='));
			col = 0;
			continue;
		}
		if (col == 0 && after_soft && p[i] == '-')
			fail_msg("soft-broken line starts with '-'");
		if (p[i] != '\r')
			col++;
		if (col > 76)
			fail_msg("quoted-printable line longer than 76");
	}
}

/* Downgrades msg and checks the invariants; returns the output. */
static char *downgrade_checked(const char *msg, size_t len, int want_rc, struct mime_downgrade_stats *st)
{
	struct textbuf out = TEXTBUF_INIT;
	int rc = mime_downgrade(msg, len, &out, st);
	assert_int_equal(rc, want_rc);
	if (rc == 0)
		assert_false(mime_has_8bit(out.data, out.len));

	struct message_result *a, *b;
	message_parse(msg, len, &a);
	message_parse(textbuf_str(&out), out.len, &b);
	if (a->part_count != b->part_count)
		fail_msg("parts: got %u, want %u\n%s", b->part_count, a->part_count, textbuf_str(&out));
	for (uint32_t i = 0; i < a->part_count; i++) {
		const struct message_part *pa = &a->parts[i], *pb = &b->parts[i];
		assert_string_equal(pa->type, pb->type);
		assert_string_equal(pa->subtype, pb->subtype);
		assert_int_equal(pa->flags & ~MESSAGE_PART_FLAG_FIELDS_TRUNCATED,
				 pb->flags & ~MESSAGE_PART_FLAG_FIELDS_TRUNCATED);
		assert_int_equal(pa->children, pb->children);
		if (pa->flags & (MESSAGE_PART_FLAG_MULTIPART | MESSAGE_PART_FLAG_RFC822))
			continue;
		const char *ba = msg + pa->body_offset, *bb = out.data + pb->body_offset;
		size_t na = message_part_body_size(pa), nb = message_part_body_size(pb);
		bool was_identity = pa->encoding == NULL || strcmp(pa->encoding, "7bit") == 0 ||
				    strcmp(pa->encoding, "8bit") == 0 || strcmp(pa->encoding, "binary") == 0;
		if (pb->encoding != NULL && strcmp(pb->encoding, "quoted-printable") == 0 && was_identity) {
			struct textbuf dec = TEXTBUF_INIT;
			check_qp_lines(bb, nb);
			qp_decode(bb, nb, &dec);
			if (dec.len != na || memcmp(textbuf_str(&dec), ba, na) != 0)
				fail_msg("part %u: decoded \"%s\", want \"%.*s\"", i, textbuf_str(&dec), (int)na, ba);
			textbuf_free(&dec);
		} else {
			if (na != nb || memcmp(ba, bb, na) != 0)
				fail_msg("part %u changed: \"%.*s\" -> \"%.*s\"", i, (int)na, ba, (int)nb, bb);
		}
	}
	message_result_free(&a);
	message_result_free(&b);
	return out.data ? out.data : calloc(1, 1);
}

static void test_single_part(void **state)
{
	(void)state;
	static const char msg[] = "From: a@b\r\nSubject: hi\r\n\r\nCaf\xc3\xa9 = ok \r\n.\r\n";
	struct mime_downgrade_stats st;
	char *out = downgrade_checked(msg, strlen(msg), 0, &st);
	assert_string_equal(out, "From: a@b\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
				 "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
				 "Caf=C3=A9 =3D ok=20\r\n.\r\n");
	assert_int_equal(st.parts_encoded, 1);
	assert_int_equal(st.fields_encoded, 0);
	free(out);

	/* CTE rewritten in place; LF line ends kept */
	static const char lf[] = "MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nX: y\n\n\xff\n";
	out = downgrade_checked(lf, strlen(lf), 0, NULL);
	assert_string_equal(out, "MIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\nX: y\n\n=FF\n");
	free(out);

	/* 7-bit: untouched */
	static const char plain[] = "Subject: x\r\n\r\nhello\r\n";
	out = downgrade_checked(plain, strlen(plain), 0, &st);
	assert_string_equal(out, plain);
	assert_int_equal(st.parts_encoded, 0);
	free(out);
}

static void test_long_lines(void **state)
{
	(void)state;
	struct textbuf m = TEXTBUF_INIT;
	textbuf_puts(&m, "Subject: long\r\n\r\n");
	for (int i = 0; i < 300; i++)
		textbuf_puts(&m, i % 5 == 0 ? "\xc3\xa9" : i % 7 == 0 ? "--" : "ab ");
	textbuf_puts(&m, "\r\nshort\r\n");
	char *out = downgrade_checked(m.data, m.len, 0, NULL);
	assert_non_null(strstr(out, "=\r\n"));
	free(out);
	textbuf_free(&m);
}

static const char multipart[] =
	"From: a@b\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--outer\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"seven bit\r\n"
	"--outer\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"gr\xc3\xbc\xc3\x9f dich\r\n"
	"--outer\r\n"
	"Content-Type: multipart/alternative; boundary=inner\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"\r\n"
	"d\xe9j\xe0 vu\r\n"
	"--inner\r\n"
	"Content-Type: text/html\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>d=C3=A9j=C3=A0</p>\r\n"
	"--inner--\r\n"
	"--outer\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: inner \xc3\xa9t\xc3\xa9\r\n"
	"From: x@y\r\n"
	"\r\n"
	"\xc3\xa9t\xc3\xa9\r\n"
	"--outer--\r\n"
	"epilogue\r\n";

static void test_multipart_nested_rfc822(void **state)
{
	(void)state;
	struct mime_downgrade_stats st;
	char *out = downgrade_checked(multipart, strlen(multipart), 0, &st);
	assert_int_equal(st.parts_encoded, 3);
	assert_int_equal(st.fields_encoded, 1);
	assert_int_equal(st.fields_left, 0);
	/* the 7-bit and QP parts and all structure lines are kept */
	assert_non_null(strstr(out, "--outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nseven bit\r\n--outer\r\n"));
	assert_non_null(strstr(out, "Content-Type: text/plain; charset=utf-8\r\n"
				    "Content-Transfer-Encoding: quoted-printable\r\n\r\ngr=C3=BC=C3=9F dich\r\n--outer\r\n"));
	assert_non_null(strstr(out, "Content-Type: text/plain; charset=iso-8859-1\r\n"
				    "Content-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu\r\n--inner\r\n"));
	assert_non_null(strstr(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>d=C3=A9j=C3=A0</p>\r\n"));
	/* the message inside: its Subject as encoded words, its body QP,
	 * MIME-Version added to its header */
	const char *subj = strstr(out, "Subject: =?UTF-8?B?");
	assert_non_null(subj);
	const char *eol = strstr(subj, "\r\n");
	struct textbuf dec = TEXTBUF_INIT;
	rfc2047_decode(subj + 9, (size_t)(eol - subj - 9), &dec);
	assert_string_equal(dec.data, "inner \xc3\xa9t\xc3\xa9");
	textbuf_free(&dec);
	assert_non_null(strstr(out, "From: x@y\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9t=C3=A9\r\n--outer--\r\nepilogue\r\n"));
	assert_true(strncmp(out, multipart, 100) == 0);
	free(out);
}

static void test_headers(void **state)
{
	(void)state;
	/* A long Subject folds into several words, split between characters. */
	struct textbuf m = TEXTBUF_INIT;
	struct textbuf want = TEXTBUF_INIT;
	textbuf_puts(&m, "Subject:  ");
	for (int i = 0; i < 60; i++)
		textbuf_puts(&want, "\xe2\x82\xac x");
	textbuf_puts(&m, want.data);
	textbuf_puts(&m, "\r\n folded\r\nFrom: J\xc3\xb6rg <j@example.org>\r\nComments: \xff\r\n\r\nbody\r\n");
	textbuf_puts(&want, " folded");
	struct mime_downgrade_stats st;
	char *out = downgrade_checked(m.data, m.len, 1, &st);
	assert_int_equal(st.fields_encoded, 1);
	assert_int_equal(st.fields_left, 2); /* From is structured; Comments is not UTF-8 */
	assert_int_equal(st.parts_encoded, 0);
	const char *end = strstr(out, "\r\nFrom:");
	assert_non_null(end);
	for (const char *line = out; line < end;) {
		const char *e = strstr(line, "\r\n");
		assert_true(e - line <= 76);
		line = e + 2;
	}
	struct textbuf dec = TEXTBUF_INIT;
	rfc2047_decode(out + 9, (size_t)(end - out - 9), &dec);
	/* folding between words is dropped by the decoder; compare unfolded */
	assert_string_equal(dec.data, want.data);
	assert_non_null(strstr(out, "\r\nFrom: J\xc3\xb6rg <j@example.org>\r\nComments: \xff\r\n\r\nbody\r\n"));
	textbuf_free(&dec);
	textbuf_free(&m);
	textbuf_free(&want);
	free(out);

	/* an existing encoded word: not simple */
	static const char ew[] = "Subject: =?utf-8?q?a?= \xc3\xa9\r\n\r\nx\r\n";
	out = downgrade_checked(ew, strlen(ew), 1, &st);
	assert_string_equal(out, ew);
	free(out);
}

/* What cannot be made 7-bit without changing its meaning stays. */
static void test_left_alone(void **state)
{
	(void)state;
	static const char raw_qp[] = "Content-Transfer-Encoding: quoted-printable\r\n\r\nraw \xe9\r\n";
	struct mime_downgrade_stats st;
	char *out = downgrade_checked(raw_qp, strlen(raw_qp), 1, &st);
	assert_string_equal(out, raw_qp);
	assert_int_equal(st.parts_encoded, 0);
	free(out);

	static const char preamble[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\n\xe9\r\n--b\r\n\r\nx\r\n--b--\r\n";
	out = downgrade_checked(preamble, strlen(preamble), 1, NULL);
	assert_string_equal(out, preamble);
	free(out);

	/* an opaque multipart (no boundary) is not quoted-printable material */
	static const char opaque[] = "Content-Type: multipart/mixed\r\n\r\n\xe9\r\n";
	out = downgrade_checked(opaque, strlen(opaque), 1, NULL);
	assert_string_equal(out, opaque);
	free(out);
}

/* Soft breaks never make a line that could be a delimiter. */
static void test_no_new_delimiters(void **state)
{
	(void)state;
	struct textbuf m = TEXTBUF_INIT;
	textbuf_puts(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n");
	for (int i = 0; i < 73; i++) /* "=E9" and 72 bytes fill a line */
		textbuf_putc(&m, i == 0 ? '\xe9' : 'x');
	textbuf_puts(&m, "--b--\r\n--b\r\n\r\ntwo\r\n--b--\r\n");
	char *out = downgrade_checked(m.data, m.len, 0, NULL);
	assert_non_null(strstr(out, "=\r\n=2D-b--"));
	free(out);
	textbuf_free(&m);

	/* a boundary with "=XX" in it: the 8-bit byte a hard line holds
	 * becomes just that once encoded */
	textbuf_truncate(&m, 0);
	textbuf_puts(&m, "Content-Type: multipart/mixed; boundary=\"b=E9\"\r\n\r\n--b=E9\r\n\r\n"
			 "--b\xe9 not a delimiter\r\n--b=E9\r\n\r\ntwo\r\n--b=E9--\r\n");
	out = downgrade_checked(m.data, m.len, 0, NULL); /* checks the part tree */
	assert_non_null(strstr(out, "=2D-b=E9 not a delimiter"));
	free(out);
	textbuf_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_part),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_multipart_nested_rfc822),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_left_alone),
		cmocka_unit_test(test_no_new_delimiters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
