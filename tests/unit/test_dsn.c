/*
 * DSN tests: each generated report is parsed back with the repository's
 * MIME parser (lib/message_parser.h) and its structure and fields are
 * checked: three parts and their types, the delivery-status fields,
 * header-only returns, cutting at a line boundary, hostile diagnostics,
 * xtext decoding, a boundary planted in the original, and feeding the
 * original whole or byte by byte.
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

#include "lib/dsn.h"
#include "lib/hex.h"
#include "lib/message_parser.h"
#include "lib/textbuf.h"

static const char original[] = "Received: from a by b\r\n"
			       "From: sender@us.test\r\n"
			       "Subject: the original\r\n"
			       "\r\n"
			       "line one\r\n"
			       "line two\r\n"
			       "line three\r\n";

static const struct dsn_rcpt rcpts[] = {
	{ .address = "a@example.net",
	  .orcpt = "rfc822;a+2Bb+3Dc@example.org",
	  .status = "5.1.1",
	  .remote_mta = "mx.example.net",
	  .remote_said = "mx.example.net[192.0.2.1]:25",
	  .diagnostic = "550 5.1.1 <a@example.net>: user unknown",
	  .last_attempt = 1764109743 },
	{ .address = "b@example.net", .status = "5.4.7", .diagnostic = "delivery time expired" },
};

static struct dsn_report base_report(void)
{
	return (struct dsn_report){
		.kind = DSN_FAILURE,
		.reporting_mta = "mx.us.test",
		.from = "MAILER-DAEMON@mx.us.test",
		.to = "sender@us.test",
		.queue_id = "Q1234",
		.envid = "ENV+2B42",
		.received_from_mta = "client.example [192.0.2.7]",
		.arrival = 1764100000,
		.now = 1764109743,
		.rcpts = rcpts,
		.nrcpt = 2,
		.max_original = 1 << 20,
		.message_id_domain = "us.test",
	};
}

/* step 0: whole; otherwise that many bytes per call. */
static void generate(const struct dsn_report *r, const char *orig, size_t len, size_t step,
		     struct textbuf *out)
{
	struct dsn_writer *w = dsn_begin(r, out);
	assert_non_null(w);
	if (step == 0) {
		dsn_original(w, orig, len, out);
	} else {
		for (size_t i = 0; i < len; i += step)
			dsn_original(w, orig + i, len - i < step ? len - i : step, out);
	}
	dsn_end(&w, out);
	assert_null(w);
}

struct parsed {
	struct message_result *res;
	const struct message_part *part[3];
	const char *text;
};

static void parse(const struct textbuf *msg, struct parsed *p)
{
	assert_int_equal(message_parse(msg->data, msg->len, &p->res), 0);
	const struct message_part *root = &p->res->parts[0];
	p->text = msg->data;
	assert_string_equal(root->type, "multipart");
	assert_string_equal(root->subtype, "report");
	const struct message_param *rt = message_param_find(root->params, root->param_count, "report-type");
	assert_non_null(rt);
	assert_string_equal(rt->value, "delivery-status");
	assert_true(root->flags & MESSAGE_PART_FLAG_MULTIPART);
	assert_false(root->flags & MESSAGE_PART_FLAG_UNTERMINATED);
	if (root->children != 3)
		fail_msg("got %u parts, want 3:\n%s", root->children, msg->data);
	for (uint32_t i = 0; i < 3; i++)
		p->part[i] = message_part_child(p->res, root, i + 1);
	assert_string_equal(p->part[0]->type, "text");
	assert_string_equal(p->part[0]->subtype, "plain");
	assert_string_equal(p->part[1]->type, "message");
	assert_string_equal(p->part[1]->subtype, "delivery-status");
}

static char *part_body(const struct parsed *p, int i)
{
	const struct message_part *part = p->part[i];
	size_t n = (size_t)message_part_body_size(part);
	char *s = malloc(n + 1);
	memcpy(s, p->text + part->body_offset, n);
	s[n] = '\0';
	return s;
}

/* Generates the report for orig (see generate()), parses it back and
 * returns the body of its third part, the returned message; free() it. */
static char *returned_part(const struct dsn_report *r, const char *orig, size_t len, size_t step)
{
	struct textbuf out = TEXTBUF_INIT;
	struct parsed p;
	generate(r, orig, len, step, &out);
	parse(&out, &p);
	char *body = part_body(&p, 2);
	message_result_free(&p.res);
	textbuf_free(&out);
	return body;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" not found in:\n%s", needle, hay);
}

static void root_header(const struct parsed *p, const char *name, const char *want)
{
	struct textbuf v = TEXTBUF_INIT;
	assert_int_equal(message_part_header_get(&p->res->parts[0], name, 0, &v), 1);
	if (strcmp(textbuf_str(&v), want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", name, textbuf_str(&v), want);
	textbuf_free(&v);
}

static void test_failure_structure(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	struct textbuf out = TEXTBUF_INIT;
	generate(&r, original, strlen(original), 0, &out);
	struct parsed p;
	parse(&out, &p);

	root_header(&p, "From", "\"Mail Delivery System\" <MAILER-DAEMON@mx.us.test>");
	root_header(&p, "To", "<sender@us.test>");
	root_header(&p, "Subject", "Undelivered Mail Returned to Sender");
	root_header(&p, "Date", "Tue, 25 Nov 2025 22:29:03 +0000");
	root_header(&p, "Auto-Submitted", "auto-replied");
	root_header(&p, "MIME-Version", "1.0");
	struct textbuf id = TEXTBUF_INIT;
	assert_int_equal(message_part_header_get(&p.res->parts[0], "Message-ID", 0, &id), 1);
	assert_true(strncmp(id.data, "<20251125222903.Q1234.", 22) == 0);
	assert_non_null(strstr(id.data, "@us.test>"));
	textbuf_free(&id);
	assert_true(p.res->parts[0].envelope->date_valid);
	assert_int_equal(p.res->parts[0].envelope->date, 1764109743);

	char *human = part_body(&p, 0);
	assert_contains(human, "This is the mail system at host mx.us.test.");
	assert_contains(human, "I'm sorry to have to inform you that your message could not");
	assert_contains(human, "<a@example.net>: host mx.example.net[192.0.2.1]:25 said: 550 5.1.1");
	assert_contains(human, "<b@example.net>: delivery time expired");
	free(human);

	char *ds = part_body(&p, 1);
	assert_contains(ds, "Reporting-MTA: dns; mx.us.test\r\n");
	assert_contains(ds, "X-Clustermail-Queue-ID: Q1234\r\n");
	assert_contains(ds, "Original-Envelope-Id: ENV+42\r\n");
	assert_contains(ds, "Received-From-MTA: dns; client.example [192.0.2.7]\r\n");
	assert_contains(ds, "Arrival-Date: Tue, 25 Nov 2025 19:46:40 +0000\r\n");
	assert_contains(ds, "\r\n\r\nOriginal-Recipient: rfc822; a+b=c@example.org\r\n"
			    "Final-Recipient: rfc822; a@example.net\r\n"
			    "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\n"
			    "Diagnostic-Code: smtp; 550 5.1.1 <a@example.net>: user unknown\r\n"
			    "Last-Attempt-Date: Tue, 25 Nov 2025 22:29:03 +0000\r\n");
	assert_contains(ds, "\r\n\r\nFinal-Recipient: rfc822; b@example.net\r\nAction: failed\r\n"
			    "Status: 5.4.7\r\nDiagnostic-Code: X-Clustermail; delivery time expired\r\n");
	assert_null(strstr(ds, "Will-Retry-Until"));
	free(ds);

	const struct message_part *orig = p.part[2];
	assert_string_equal(orig->type, "message");
	assert_string_equal(orig->subtype, "rfc822");
	assert_true(orig->flags & MESSAGE_PART_FLAG_RFC822);
	char *body = part_body(&p, 2);
	assert_string_equal(body, original);
	free(body);
	struct textbuf subj = TEXTBUF_INIT;
	assert_int_equal(message_part_header_get(orig + 1, "Subject", 0, &subj), 1);
	assert_string_equal(subj.data, "the original");
	textbuf_free(&subj);

	message_result_free(&p.res);
	textbuf_free(&out);
}

/* The original part is the same whatever the chunking. */
static void test_chunking(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	char *want = returned_part(&r, original, strlen(original), 0);
	for (size_t step = 1; step < 8; step++) {
		char *got = returned_part(&r, original, strlen(original), step);
		assert_string_equal(got, want);
		free(got);
	}
	free(want);
}

static void test_headers_only(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	r.headers_only = true;
	for (size_t step = 0; step < 4; step++) {
		struct textbuf out = TEXTBUF_INIT;
		generate(&r, original, strlen(original), step, &out);
		struct parsed p;
		parse(&out, &p);
		assert_string_equal(p.part[2]->type, "text");
		assert_string_equal(p.part[2]->subtype, "rfc822-headers");
		char *body = part_body(&p, 2);
		assert_string_equal(body, "Received: from a by b\r\nFrom: sender@us.test\r\nSubject: the original\r\n");
		free(body);
		message_result_free(&p.res);
		textbuf_free(&out);
	}
	/* LF-only original, header without a body: its lines end in CRLF in
	 * the report */
	static const char lf[] = "From: x@y\nSubject: s\n";
	char *body = returned_part(&r, lf, strlen(lf), 0);
	assert_string_equal(body, "From: x@y\r\nSubject: s\r\n");
	free(body);
}

static void test_truncation(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	size_t full = strlen(original);
	/* every bound: the part holds the longest prefix of whole lines that fits */
	for (size_t max = 0; max <= full + 1; max++) {
		r.max_original = max;
		size_t want = 0;
		for (size_t i = 0; i < full; i++)
			if (original[i] == '\n' && i + 1 <= max)
				want = i + 1;
		/* cut inside the header: the empty line that ends it is added */
		size_t header_end = (size_t)(strstr(original, "\r\n\r\n") - original) + 4;
		char want_text[sizeof(original) + 2];
		memcpy(want_text, original, want);
		if (want > 0 && want < header_end) {
			memcpy(want_text + want, "\r\n", 2);
			want += 2;
		}
		for (size_t step = 0; step < 3; step++) {
			char *body = returned_part(&r, original, full, step);
			/* An empty message/rfc822 part: the parser counts the
			 * CRLF before the delimiter as the empty header's end. */
			if (want == 0 && strcmp(body, "\r\n") == 0)
				body[0] = '\0';
			if (strlen(body) != want || memcmp(body, want_text, want) != 0)
				fail_msg("max %zu step %zu: got \"%s\" (%zu bytes), want %zu", max, step, body,
					 strlen(body), want);
			free(body);
		}
	}

	/* A line longer than the writer holds, cut inside: the part still
	 * ends with a line break and the structure holds. */
	struct textbuf big = TEXTBUF_INIT;
	textbuf_puts(&big, "Subject: long\r\n\r\n");
	for (int i = 0; i < 5000; i++)
		textbuf_putc(&big, 'x');
	textbuf_puts(&big, "\r\nend\r\n");
	r.max_original = 3000;
	char *body = returned_part(&r, big.data, big.len, 0);
	assert_true(strlen(body) <= 3000 + 2);
	assert_true(strlen(body) >= 2 && strcmp(body + strlen(body) - 2, "\r\n") == 0);
	assert_null(strstr(body, "end"));
	free(body);

	/* An original without a final line break gets one. */
	r.max_original = 1000;
	static const char no_eol[] = "Subject: x\r\n\r\nlast";
	body = returned_part(&r, no_eol, strlen(no_eol), 0);
	assert_string_equal(body, "Subject: x\r\n\r\nlast\r\n");
	free(body);
	textbuf_free(&big);
}

static void test_hostile_values(void **state)
{
	(void)state;
	struct textbuf longdiag = TEXTBUF_INIT;
	textbuf_puts(&longdiag, "550 5.7.1 ");
	for (int i = 0; i < 300; i++)
		textbuf_puts(&longdiag, "word ");
	for (int i = 0; i < 1500; i++)
		textbuf_putc(&longdiag, 'z');
	const struct dsn_rcpt evil[] = {
		{ .address = "a@example.net\r\nBcc: victim@example.org",
		  .orcpt = "rfc822;x+0D+0ASubject:+20injected@example.org",
		  .status = "5.1.1\r\nX-Evil: 1",
		  .remote_mta = "mx\r\n\r\n--",
		  .diagnostic = "550 bad\r\nSubject: injected\r\n\r\n--boundary\x01\x7f\xff" },
		{ .address = "b@example.net", .diagnostic = longdiag.data },
		/* one word as long as a value may be, after a short address */
		{ .address = "", .diagnostic = longdiag.data + longdiag.len - 1200 },
	};
	struct dsn_report r = base_report();
	r.rcpts = evil;
	r.nrcpt = sizeof(evil) / sizeof(evil[0]);
	r.to = "s@us.test>\r\nSubject: injected";
	r.envid = "x+0D+0AX-Evil:+201";
	r.reporting_mta = "host\r\nX-Evil: 1";
	struct textbuf out = TEXTBUF_INIT;
	generate(&r, original, strlen(original), 0, &out);
	struct parsed p;
	parse(&out, &p);

	/* No injected line starts anywhere, and no line is too long. */
	const char *s = out.data;
	for (const char *line = s; line != NULL && *line != '\0';) {
		const char *eol = strstr(line, "\r\n");
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		assert_true(n <= 998);
		if (strncmp(line, "Subject: injected", 17) == 0 || strncmp(line, "X-Evil", 6) == 0 ||
		    strncmp(line, "Bcc:", 4) == 0)
			fail_msg("injected line: %.*s", (int)n, line);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)line[i] >= 0x80 || ((unsigned char)line[i] < 0x20 && line[i] != '\t'))
				if (line < s + p.part[2]->body_offset)
					fail_msg("control or 8-bit byte in generated text: %.*s", (int)n, line);
		line = eol ? eol + 2 : NULL;
	}
	struct textbuf v = TEXTBUF_INIT;
	assert_int_equal(message_part_header_get(&p.res->parts[0], "Subject", 1, &v), 0);
	char *ds = part_body(&p, 1);
	assert_contains(ds, "Status: 5.0.0\r\n"); /* an invalid status is replaced */
	assert_contains(ds, "Original-Recipient: rfc822; x Subject: injected@example.org\r\n");
	assert_contains(ds, "Diagnostic-Code: smtp; 550 bad Subject: injected --boundary ?\r\n");
	assert_contains(ds, "Diagnostic-Code: smtp; 550 5.7.1 word word");
	assert_contains(ds, "word\r\n word word");
	free(ds);
	textbuf_free(&v);
	message_result_free(&p.res);
	textbuf_free(&out);
	textbuf_free(&longdiag);
}

/* A value of one long word is folded within 998 columns even when it is
 * the first word of its field, after a long field name. */
static void test_long_first_word(void **state)
{
	(void)state;
	char word[1001];
	memset(word, 'E', 1000);
	word[1000] = '\0';
	struct dsn_report r = base_report();
	r.envid = word;
	struct textbuf out = TEXTBUF_INIT;
	generate(&r, original, strlen(original), 0, &out);
	for (const char *line = out.data; line != NULL && *line != '\0';) {
		const char *eol = strstr(line, "\r\n");
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		if (n > 998)
			fail_msg("got a line of %zu bytes, want at most 998: %.40s...", n, line);
		line = eol ? eol + 2 : NULL;
	}
	assert_non_null(strstr(out.data, "Original-Envelope-Id: EEEE"));
	textbuf_free(&out);
}

/* A line of the original that is the report's own delimiter cannot end
 * the report early. */
static void test_boundary_in_original(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	struct textbuf out = TEXTBUF_INIT;
	struct dsn_writer *w = dsn_begin(&r, &out);
	const char *b = strstr(out.data, "boundary=\"");
	assert_non_null(b);
	b += 10;
	size_t blen = strcspn(b, "\"");
	struct textbuf evil = TEXTBUF_INIT;
	textbuf_printf(&evil, "Subject: x\r\n\r\nbefore\r\n--%.*s--\r\n--%.*s\r\nafter\r\n", (int)blen, b, (int)blen, b);
	for (size_t i = 0; i < evil.len; i++)
		dsn_original(w, evil.data + i, 1, &out);
	dsn_end(&w, &out);
	struct parsed p;
	parse(&out, &p);
	char *body = part_body(&p, 2);
	assert_contains(body, "after\r\n");
	assert_contains(body, "\r\n --");
	free(body);
	message_result_free(&p.res);
	textbuf_free(&out);
	textbuf_free(&evil);
}

static void test_delay_and_success(void **state)
{
	(void)state;
	const struct dsn_rcpt delayed[] = {
		{ .address = "a@example.net", .status = "4.4.1", .remote_mta = "mx.example.net",
		  .diagnostic = "connect to mx.example.net: Connection refused", .last_attempt = 1764109743,
		  .will_retry_until = 1764500000 },
	};
	struct dsn_report r = base_report();
	r.kind = DSN_DELAY;
	r.rcpts = delayed;
	r.nrcpt = 1;
	r.envid = NULL;
	r.headers_only = true;
	struct textbuf out = TEXTBUF_INIT;
	generate(&r, original, strlen(original), 0, &out);
	struct parsed p;
	parse(&out, &p);
	root_header(&p, "Subject", "Delayed Mail (still being retried)");
	char *human = part_body(&p, 0);
	assert_contains(human, "THIS IS A WARNING ONLY");
	free(human);
	char *ds = part_body(&p, 1);
	assert_contains(ds, "Action: delayed\r\nStatus: 4.4.1\r\n");
	assert_contains(ds, "Will-Retry-Until: Sun, 30 Nov 2025 10:53:20 +0000\r\n");
	assert_contains(ds, "Diagnostic-Code: X-Clustermail; connect to mx.example.net: Connection refused\r\n");
	assert_null(strstr(ds, "Original-Envelope-Id"));
	free(ds);
	message_result_free(&p.res);
	textbuf_free(&out);

	const struct dsn_rcpt delivered[] = { { .address = "a@example.net", .remote_mta = "mx.example.net",
						.diagnostic = "250 2.0.0 queued as X" } };
	r.kind = DSN_SUCCESS;
	r.rcpts = delivered;
	r.from = NULL;
	generate(&r, original, strlen(original), 0, &out);
	parse(&out, &p);
	root_header(&p, "Subject", "Successful Mail Delivery Report");
	root_header(&p, "From", "\"Mail Delivery System\" <MAILER-DAEMON@mx.us.test>");
	ds = part_body(&p, 1);
	assert_contains(ds, "Action: delivered\r\nStatus: 2.0.0\r\n");
	assert_null(strstr(ds, "Will-Retry-Until"));
	free(ds);
	message_result_free(&p.res);
	textbuf_free(&out);
}

/* Two reports made in the same second get different boundaries. */
static void test_boundaries_differ(void **state)
{
	(void)state;
	struct dsn_report r = base_report();
	struct textbuf a = TEXTBUF_INIT, b = TEXTBUF_INIT;
	generate(&r, "", 0, 0, &a);
	generate(&r, "", 0, 0, &b);
	const char *ba = strstr(a.data, "boundary=\""), *bb = strstr(b.data, "boundary=\"");
	assert_non_null(ba);
	assert_non_null(bb);
	size_t la = strcspn(ba + 10, "\""), lb = strcspn(bb + 10, "\"");
	assert_true(la > 0 && la <= 70);
	assert_false(la == lb && memcmp(ba, bb, la + 10) == 0);
	textbuf_free(&a);
	textbuf_free(&b);
}

static void test_orcpt_for(void **state)
{
	(void)state;
	char out[64];
	assert_true(dsn_orcpt_for("team+ext@a.test", out, sizeof(out)));
	assert_string_equal(out, "rfc822;team+2Bext@a.test");
	assert_true(dsn_orcpt_for("\"a b=c\"@a.test", out, sizeof(out)));
	assert_string_equal(out, "rfc822;\"a+20b+3Dc\"@a.test");
	assert_true(hex_xtext_valid(out + 7, false));
	assert_false(dsn_orcpt_for("a-rather-long-local-part-that-will-not-fit@example.test", out, 32));
	assert_string_equal(out, "");
	assert_false(hex_xtext_valid("a+2b", false));
	assert_true(hex_xtext_valid("a+2b", true));
	assert_false(hex_xtext_valid("a+2", true));
	assert_false(hex_xtext_valid("a=b", true));
	assert_true(hex_xtext_valid("a+2B!~", false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failure_structure),
		cmocka_unit_test(test_chunking),
		cmocka_unit_test(test_headers_only),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_long_first_word),
		cmocka_unit_test(test_boundary_in_original),
		cmocka_unit_test(test_delay_and_success),
		cmocka_unit_test(test_boundaries_differ),
		cmocka_unit_test(test_orcpt_for),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
