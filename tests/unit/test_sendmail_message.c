/* Unit tests for node/sendmail_message.c, the filter between sendmail's
 * input and the maildrop: table-driven, each input fed whole and one byte
 * at a time, with the same output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "node/sendmail.h"

#define RECEIVED "Received: by mx.test (clustermail, from userid 1000)\r\n\tid Q1; "

struct sink {
	struct textbuf out, rcpts;
	int fail_rcpt;
};

static int sink_write(void *ctx, const void *data, size_t len)
{
	textbuf_append(&((struct sink *)ctx)->out, data, len);
	return 0;
}

static int sink_rcpt(void *ctx, const char *mailbox, const char *host)
{
	struct sink *s = ctx;
	textbuf_printf(&s->rcpts, "%s@%s;", mailbox, host);
	return strcmp(mailbox, "refused") == 0 ? -1 : 0;
}

static int filter(const char *in, size_t len, size_t step, bool dot_ends, bool extract,
		  uint64_t max_size, struct sink *s)
{
	struct sendmail_message m;
	struct sendmail_message_settings set = {
		.hostname = "mx.test", .queue_id = "Q1", .now = 0, .uid = 1000,
		.from_header = "me@mx.test", .dot_ends = dot_ends, .skip_from_line = true,
		.extract = extract, .max_size = max_size, .write = sink_write, .rcpt = sink_rcpt,
		.ctx = s,
	};
	sendmail_message_init(&m, &set);
	int ret = SENDMAIL_MSG_OK;
	for (size_t off = 0; off < len && ret == SENDMAIL_MSG_OK;) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		ret = sendmail_message_feed(&m, in + off, n);
		off += n;
	}
	if (ret >= 0)
		ret = sendmail_message_finish(&m);
	sendmail_message_free(&m);
	return ret;
}

/* The output after the Received field (its date varies with the zone). */
static const char *after_received(const struct sink *s)
{
	const char *o = textbuf_str(&s->out);
	if (strncmp(o, RECEIVED, strlen(RECEIVED)) != 0)
		return "(no Received field first)";
	const char *eol = strstr(o + strlen(RECEIVED), "\r\n");
	return eol != NULL ? eol + 2 : "(unterminated Received)";
}

static const struct {
	const char *in;
	bool dot_ends, extract;
	const char *want;  /* after Received:, with Date: and Message-ID: values replaced */
	const char *rcpts; /* -t */
} cases[] = {
	{ "Subject: a\n\nbody\n", true, false,
	  "Subject: a\r\nFrom: me@mx.test\r\nDate: D\r\nMessage-ID: M\r\n\r\nbody\r\n", "" },
	{ "From: x@y\r\nDate: d\r\nMessage-ID: <i@d>\r\n\r\nb\r\n", true, false,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i@d>\r\n\r\nb\r\n", "" },
	{ "From sender Mon Jan 1\nFrom: x@y\nDate: d\nMessage-id: <i>\n\nb", true, false,
	  "From: x@y\r\nDate: d\r\nMessage-id: <i>\r\n\r\nb\r\n", "" },
	{ "From: x@y\nDate: d\nMessage-ID: <i>\n\nb\n.\nafter\n", true, false,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\n\r\nb\r\n", "" },
	{ "From: x@y\nDate: d\nMessage-ID: <i>\n\nb\n.\nafter\n", false, false,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\n\r\nb\r\n.\r\nafter\r\n", "" },
	{ "From: x@y\nDate: d\nMessage-ID: <i>\nBcc: h@x,\n  h2@x\nTo: t@x\n\nb\n", true, true,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\nTo: t@x\r\n\r\nb\r\n", "h@x;h2@x;t@x;" },
	/* obsolete syntax: whitespace before the colon (RFC 5322 4.5.3) */
	{ "From: x@y\nDate: d\nMessage-ID: <i>\nBcc : h@x\nTo\t: t@x\n\nb\n", true, true,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\nTo\t: t@x\r\n\r\nb\r\n", "h@x;t@x;" },
	{ "From: x@y\nDate: d\nMessage-ID: <i>\nTo: t@x\nResent-To: r@x\nCc: \"A, B\" <c@x>, u\n\n", true, true,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\nTo: t@x\r\nResent-To: r@x\r\nCc: \"A, B\" <c@x>, u\r\n\r\n",
	  "r@x;" },
	{ "From: x@y\nDate: d\nMessage-ID: <i>\nTo: undisclosed-recipients:;\n\n", true, true,
	  "From: x@y\r\nDate: d\r\nMessage-ID: <i>\r\nTo: undisclosed-recipients:;\r\n\r\n", "" },
	/* no header: the added fields, then an empty line, then the text */
	{ "just text\n", true, false,
	  "From: me@mx.test\r\nDate: D\r\nMessage-ID: M\r\n\r\njust text\r\n", "" },
	{ "", true, false, "From: me@mx.test\r\nDate: D\r\nMessage-ID: M\r\n\r\n", "" },
	{ ".\n", true, false, "From: me@mx.test\r\nDate: D\r\nMessage-ID: M\r\n\r\n", "" },
	{ "Subject: s\n.\nlost\n", true, false,
	  "Subject: s\r\nFrom: me@mx.test\r\nDate: D\r\nMessage-ID: M\r\n\r\n", "" },
};

/* Date: and Message-ID: values added by the filter become D and M. */
static void normalise(const char *in, struct textbuf *out)
{
	while (*in != '\0') {
		const char *eol = strstr(in, "\r\n");
		size_t n = eol ? (size_t)(eol - in) + 2 : strlen(in);
		if (strncmp(in, "Date: ", 6) == 0 && strchr(in, ',') != NULL && strchr(in, ',') < in + n)
			textbuf_puts(out, "Date: D\r\n");
		else if (strncmp(in, "Message-ID: <19700101000000.Q1@mx.test>\r\n", n) == 0)
			textbuf_puts(out, "Message-ID: M\r\n");
		else
			textbuf_append(out, in, n);
		in += n;
	}
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 0; step <= 1; step++) {
			struct sink s = { TEXTBUF_INIT, TEXTBUF_INIT, 0 };
			struct textbuf got = TEXTBUF_INIT;
			int ret = filter(cases[i].in, strlen(cases[i].in), step, cases[i].dot_ends,
					 cases[i].extract, 0, &s);
			if (ret != SENDMAIL_MSG_OK)
				fail_msg("case %zu step %zu: got status %d", i, step, ret);
			normalise(after_received(&s), &got);
			if (strcmp(textbuf_str(&got), cases[i].want) != 0)
				fail_msg("case %zu step %zu: got\n%s\nwant\n%s", i, step, textbuf_str(&got),
					 cases[i].want);
			if (strcmp(textbuf_str(&s.rcpts), cases[i].rcpts) != 0)
				fail_msg("case %zu step %zu: rcpts %s, want %s", i, step,
					 textbuf_str(&s.rcpts), cases[i].rcpts);
			textbuf_free(&got);
			textbuf_free(&s.out);
			textbuf_free(&s.rcpts);
		}
	}
}

static void test_limits(void **state)
{
	(void)state;
	struct sink s = { TEXTBUF_INIT, TEXTBUF_INIT, 0 };
	struct textbuf in = TEXTBUF_INIT;

	/* over max_size */
	textbuf_puts(&in, "Subject: x\n\n");
	for (int i = 0; i < 2000; i++)
		textbuf_puts(&in, "0123456789\n");
	assert_int_equal(filter(in.data, in.len, 0, true, false, 10000, &s), SENDMAIL_MSG_TOO_BIG);
	textbuf_free(&s.out);

	/* a header beyond SENDMAIL_HEADER_MAX */
	textbuf_truncate(&in, 0);
	textbuf_puts(&in, "X-Long: a\n");
	for (int i = 0; i < SENDMAIL_HEADER_MAX / 100 + 1; i++) {
		textbuf_putc(&in, ' ');
		for (int k = 0; k < 99; k++)
			textbuf_putc(&in, 'h');
		textbuf_putc(&in, '\n');
	}
	assert_int_equal(filter(in.data, in.len, 0, true, false, 0, &s), SENDMAIL_MSG_HEADER_TOO_BIG);
	textbuf_free(&s.out);

	/* a long body line is written in pieces, whole */
	textbuf_truncate(&in, 0);
	textbuf_puts(&in, "From: a@b\nDate: d\nMessage-ID: <i>\n\n");
	for (int i = 0; i < 3 * SENDMAIL_LINE_PIECE; i++)
		textbuf_putc(&in, 'b');
	textbuf_puts(&in, "\r\n.\n");
	assert_int_equal(filter(in.data, in.len, 0, true, false, 0, &s), SENDMAIL_MSG_OK);
	const char *body = strstr(after_received(&s), "\r\n\r\n") + 4;
	assert_int_equal(strlen(body), 3 * SENDMAIL_LINE_PIECE + 2);
	assert_int_equal(strspn(body, "b"), 3 * SENDMAIL_LINE_PIECE);
	textbuf_free(&s.out);

	/* a refused -t recipient fails the message */
	assert_int_equal(filter("To: refused@x\n\nb\n", 17, 0, true, true, 0, &s), SENDMAIL_MSG_RCPT);
	textbuf_free(&s.out);
	textbuf_free(&s.rcpts);
	textbuf_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
