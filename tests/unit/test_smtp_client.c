/*
 * SMTP client engine tests: golden transcripts (server bytes in, exact
 * client bytes out, the engine's want after each step, every recipient's
 * verdict at the end), each run with the server's bytes fed whole and
 * one byte per call; the body encoder (CRLF, dot-stuffing) at every
 * split of its input; reply parsing limits.
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

#include "lib/textbuf.h"
#include "proto/smtp/smtp.h"
#include "proto/smtp/smtp_client.h"
#include "proto/smtp/smtp_client_private.h"

static void out_write(void *ctx, const void *d, size_t n)
{
	textbuf_append(ctx, d, n);
}

static const struct smtp_client_backend backend = { out_write };

enum step_kind { IN, TLS_OK, TLS_FAIL, BODY, BODY_END, ABORT };

struct step {
	enum step_kind kind;
	const char *data;   /* IN: server bytes; BODY: message bytes; ABORT: text */
	const char *client; /* exactly what the client writes during the step */
	enum smtp_client_want want;
};

#define W_IN SMTP_CLIENT_WANT_INPUT
#define W_TLS SMTP_CLIENT_WANT_TLS
#define W_BODY SMTP_CLIENT_WANT_BODY
#define W_DONE SMTP_CLIENT_WANT_DONE

static const struct smtp_client_rcpt two_rcpts[] = {
	{ "a@example.net", 0, NULL },
	{ "b@example.net", 0, NULL },
};

static struct smtp_client_settings base_settings(void)
{
	return (struct smtp_client_settings){
		.helo_name = "mx.us.test",
		.sender = "s@us.test",
		.rcpts = two_rcpts,
		.nrcpt = 2,
		.message_size = 1000,
	};
}

static enum smtp_client_want run_step(struct smtp_client *c, const struct step *st, bool bytewise)
{
	enum smtp_client_want want = SMTP_CLIENT_WANT_INPUT;
	size_t len = st->data ? strlen(st->data) : 0;

	switch (st->kind) {
	case IN:
		if (!bytewise || len == 0)
			return smtp_client_input(c, st->data, len);
		for (size_t i = 0; i < len; i++)
			want = smtp_client_input(c, st->data + i, 1);
		return want;
	case TLS_OK:
		return smtp_client_tls_started(c);
	case TLS_FAIL:
		return smtp_client_tls_failed(c);
	case BODY:
		if (!bytewise) {
			smtp_client_body(c, st->data, len);
		} else {
			for (size_t i = 0; i < len; i++)
				smtp_client_body(c, st->data + i, 1);
		}
		return SMTP_CLIENT_WANT_BODY;
	case BODY_END:
		return smtp_client_body_end(c);
	case ABORT:
		return smtp_client_abort(c, 421, "4.4.2", st->data);
	}
	return want;
}

/* verdicts: one "code enhanced text" string per recipient. */
static void run_script_mode(const struct smtp_client_settings *set, const struct step *steps,
			    size_t nsteps, const char *const *verdicts, const char *stage, bool bytewise)
{
	struct textbuf out = TEXTBUF_INIT;
	struct smtp_client *c = smtp_client_new(set, &backend, &out);
	assert_non_null(c);

	for (size_t i = 0; i < nsteps; i++) {
		textbuf_truncate(&out, 0);
		enum smtp_client_want want = run_step(c, &steps[i], bytewise);
		if (strcmp(textbuf_str(&out), steps[i].client) != 0 || want != steps[i].want)
			fail_msg("step %zu (%s): got \"%s\" want %d, want \"%s\" want %d", i,
				 bytewise ? "bytewise" : "whole", textbuf_str(&out), want, steps[i].client,
				 steps[i].want);
	}
	for (size_t i = 0; i < set->nrcpt; i++) {
		const struct smtp_client_reply *r = smtp_client_rcpt_reply(c, i);
		char got[700];
		snprintf(got, sizeof(got), "%d %s %s", r->code, r->enhanced, r->text);
		if (strcmp(got, verdicts[i]) != 0)
			fail_msg("rcpt %zu (%s): got \"%s\", want \"%s\"", i, bytewise ? "bytewise" : "whole",
				 got, verdicts[i]);
	}
	if (stage != NULL && strcmp(smtp_client_stage(c), stage) != 0)
		fail_msg("stage: got \"%s\", want \"%s\"", smtp_client_stage(c), stage);
	assert_null(smtp_client_rcpt_reply(c, set->nrcpt));
	smtp_client_free(&c);
	assert_null(c);
	textbuf_free(&out);
}

#define RUN(set, steps, verdicts, stage)                                                            \
	do {                                                                                        \
		run_script_mode(set, steps, sizeof(steps) / sizeof(steps[0]), verdicts, stage, false); \
		run_script_mode(set, steps, sizeof(steps) / sizeof(steps[0]), verdicts, stage, true);  \
	} while (0)

#define GREETING "220 mx.example.net ESMTP\r\n"
#define EHLO_CMD "EHLO mx.us.test\r\n"
/* The first step against a server that offers nothing, or only PIPELINING
 * (then MAIL, both RCPTs of base_settings() and DATA go in one go). */
#define OPEN_SERIAL { IN, GREETING "250 mx\r\n", EHLO_CMD "MAIL FROM:<s@us.test>\r\n", W_IN }
#define OPEN_PIPELINED                                                                             \
	{ IN, GREETING "250-mx\r\n250 PIPELINING\r\n",                                             \
	  EHLO_CMD "MAIL FROM:<s@us.test>\r\nRCPT TO:<a@example.net>\r\n"                          \
		   "RCPT TO:<b@example.net>\r\nDATA\r\n",                                          \
	  W_IN }

static void test_pipelined_ok(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250 ENHANCEDSTATUSCODES\r\n",
		  "MAIL FROM:<s@us.test> SIZE=1000\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
		  W_IN },
		{ IN, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", "", W_IN },
		{ IN, "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n", "", W_BODY },
		{ BODY, "Subject: x\n\n.hidden\nbody\n", "Subject: x\r\n\r\n..hidden\r\nbody\r\n", W_BODY },
		{ BODY_END, NULL, ".\r\n", W_IN },
		{ IN, "250 2.0.0 Ok: queued as 12345\r\n", "QUIT\r\n", W_DONE },
		{ IN, "221 2.0.0 Bye\r\n", "", W_DONE },
	};
	const char *const verdicts[] = { "250 2.0.0 Ok: queued as 12345", "250 2.0.0 Ok: queued as 12345" };
	RUN(&set, steps, verdicts, "QUIT");
}

static void test_not_pipelined_with_params(void **state)
{
	(void)state;
	static const struct smtp_client_rcpt rcpts[] = {
		{ "a@example.net", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;a+40x@example.org" },
		{ "b@example.net", SMTP_NOTIFY_NEVER, NULL },
	};
	struct smtp_client_settings set = base_settings();
	set.rcpts = rcpts;
	set.body_8bit = true;
	set.envid = "ENV+2B1";
	set.ret = SMTP_CLIENT_RET_HDRS;
	const struct step steps[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "250-mx.example.net\r\n250-size\r\n250-8BITMIME\r\n250 DSN\r\n",
		  "MAIL FROM:<s@us.test> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=ENV+2B1\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40x@example.org\r\n",
		  W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<b@example.net> NOTIFY=NEVER\r\n", W_IN },
		{ IN, "250 ok\r\n", "DATA\r\n", W_IN },
		{ IN, "354 go\r\n", "", W_BODY },
		{ BODY, "x\r\ny", "x\r\ny", W_BODY },
		{ BODY_END, NULL, "\r\n.\r\n", W_IN },
		{ IN, "250 queued\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "250  queued", "250  queued" };
	RUN(&set, steps, verdicts, "QUIT");
}

static void test_params_absent(void **state)
{
	(void)state;
	static const struct smtp_client_rcpt rcpts[] = {
		{ "a@example.net", SMTP_NOTIFY_FAILURE, "rfc822;a@example.org" },
	};
	struct smtp_client_settings set = base_settings();
	set.rcpts = rcpts;
	set.nrcpt = 1;
	set.body_8bit = true;
	set.envid = "E1";
	set.ret = SMTP_CLIENT_RET_FULL;
	const struct step steps[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "250 mx.example.net\r\n", "MAIL FROM:<s@us.test>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "250 ok\r\n", "DATA\r\n", W_IN },
		{ IN, "354 go\r\n", "", W_BODY },
	};
	const char *const verdicts[] = { "0  " };
	RUN(&set, steps, verdicts, "message body");
}

static void test_partial_rcpt_failure_pipelined(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_PIPELINED,
		{ IN, "250 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user here\r\n250 ok\r\n354 go\r\n", "", W_BODY },
		{ BODY_END, NULL, ".\r\n", W_IN },
		{ IN, "451 4.3.0 try later\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "550 5.1.1 no such user here", "451 4.3.0 try later" };
	RUN(&set, steps, verdicts, "QUIT");
}

static void test_partial_rcpt_failure_serial(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_SERIAL,
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<b@example.net>\r\n", W_IN },
		{ IN, "452 4.5.3 too many\r\n", "DATA\r\n", W_IN },
		{ IN, "354 go\r\n", "", W_BODY },
		{ BODY, "", "", W_BODY },
		{ BODY_END, NULL, ".\r\n", W_IN },
		{ IN, "250 2.0.0 done\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "250 2.0.0 done", "452 4.5.3 too many" };
	RUN(&set, steps, verdicts, NULL);
}

static void test_all_rcpt_fail_pipelined_data_refused(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_PIPELINED,
		{ IN, "250 ok\r\n550 5.1.1 a\r\n551 5.1.6 b\r\n554 5.5.1 no valid recipients\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "550 5.1.1 a", "551 5.1.6 b" };
	RUN(&set, steps, verdicts, "QUIT");
}

/* RFC 2920 3.1: a server that says 354 although no RCPT succeeded gets a
 * lone "." and its reply to it means nothing. */
static void test_all_rcpt_fail_pipelined_354(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_PIPELINED,
		{ IN, "250 ok\r\n550 5.1.1 a\r\n550 5.1.1 b\r\n354 go ahead\r\n", ".\r\n", W_IN },
		{ IN, "250 2.0.0 empty message accepted\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "550 5.1.1 a", "550 5.1.1 b" };
	RUN(&set, steps, verdicts, "QUIT");
}

static void test_all_rcpt_fail_serial(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_SERIAL,
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "550 5.1.1 a\r\n", "RCPT TO:<b@example.net>\r\n", W_IN },
		{ IN, "450 4.2.0 b busy\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "550 5.1.1 a", "450 4.2.0 b busy" };
	RUN(&set, steps, verdicts, "QUIT");
}

static void test_mail_refused(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step serial[] = {
		OPEN_SERIAL,
		{ IN, "553 5.7.1 sender rejected\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "553 5.7.1 sender rejected", "553 5.7.1 sender rejected" };
	RUN(&set, serial, verdicts, "QUIT");

	/* Pipelined: the RCPT and DATA 503s are consumed and say nothing. */
	const struct step piped[] = {
		OPEN_PIPELINED,
		{ IN, "553 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "", W_IN },
		{ IN, "503 5.5.1 need RCPT\r\n", "QUIT\r\n", W_DONE },
	};
	RUN(&set, piped, verdicts, "QUIT");

	/* Nonsense after the refusal does not replace it. */
	const struct step piped_garbage[] = {
		OPEN_PIPELINED,
		{ IN, "553 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n250 ok\r\n", "", W_IN },
		{ IN, "250 what\r\n", "QUIT\r\n", W_DONE },
	};
	RUN(&set, piped_garbage, verdicts, "QUIT");
}

static void test_greeting_refused(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step s554[] = {
		{ IN, "554-5.7.1 go away\r\n554 5.7.1 you are listed\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const v554[] = { "554 5.7.1 go away you are listed", "554 5.7.1 go away you are listed" };
	RUN(&set, s554, v554, "QUIT");

	const struct step s421[] = {
		{ IN, "421 4.3.2 busy\r\n", "", W_DONE },
		{ IN, "220 late\r\n", "", W_DONE },
	};
	const char *const v421[] = { "421 4.3.2 busy", "421 4.3.2 busy" };
	RUN(&set, s421, v421, "greeting");
}

static void test_helo_fallback(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.nrcpt = 1;
	set.body_8bit = true;
	const struct step steps[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "502 5.5.2 command not recognized\r\n", "HELO mx.us.test\r\n", W_IN },
		{ IN, "250 hello\r\n", "MAIL FROM:<s@us.test>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "250 ok\r\n", "DATA\r\n", W_IN },
		{ IN, "354 go\r\n", "", W_BODY },
		{ BODY_END, NULL, ".\r\n", W_IN },
		{ IN, "250 ok\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const verdicts[] = { "250  ok" };
	RUN(&set, steps, verdicts, "QUIT");

	const struct step refused[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "500 what\r\n", "HELO mx.us.test\r\n", W_IN },
		{ IN, "501 5.5.4 bad name\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const v2[] = { "501 5.5.4 bad name" };
	RUN(&set, refused, v2, "QUIT");
}

static void test_starttls(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.nrcpt = 1;
	set.starttls = true;
	/* The pipelined junk after 220 must not count as the post-TLS EHLO
	 * reply; pre-TLS capabilities (SIZE 10) are forgotten. */
	const struct step ok[] = {
		{ IN, GREETING "250-mx\r\n250-SIZE 10\r\n250 STARTTLS\r\n", EHLO_CMD "STARTTLS\r\n", W_IN },
		{ IN, "220 2.0.0 ready\r\n250-injected\r\n250 PIPELINING\r\n", "", W_TLS },
		{ IN, "250 more junk\r\n", "", W_TLS },
		{ TLS_OK, NULL, EHLO_CMD, W_IN },
		{ IN, "250-mx\r\n250 8BITMIME\r\n", "MAIL FROM:<s@us.test>\r\n", W_IN },
	};
	const char *const v[] = { "0  " };
	RUN(&set, ok, v, "MAIL FROM");

	struct textbuf out = TEXTBUF_INIT;
	struct smtp_client *c = smtp_client_new(&set, &backend, &out);
	const char *s = GREETING "250-mx\r\n250 STARTTLS\r\n220 go\r\n";
	assert_int_equal(smtp_client_input(c, s, strlen(s)), W_TLS);
	assert_false(smtp_client_tls(c));
	assert_int_equal(smtp_client_tls_started(c), W_IN);
	assert_true(smtp_client_tls(c));
	assert_int_equal(smtp_client_extensions(c), 0);
	s = "250-mx\r\n250-starttls\r\n250 pipelining\r\n";
	assert_int_equal(smtp_client_input(c, s, strlen(s)), W_IN);
	assert_int_equal(smtp_client_extensions(c), SMTP_EXT_STARTTLS | SMTP_EXT_PIPELINING);
	/* no second STARTTLS */
	assert_null(strstr(out.data, "STARTTLS\r\nEHLO mx.us.test\r\nSTARTTLS"));
	assert_non_null(strstr(out.data, "MAIL FROM:<s@us.test>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n"));
	smtp_client_free(&c);
	textbuf_free(&out);

	const struct step refused[] = {
		{ IN, GREETING "250-mx\r\n250-SIZE 10000\r\n250 STARTTLS\r\n", EHLO_CMD "STARTTLS\r\n", W_IN },
		{ IN, "454 4.7.0 TLS not available\r\n", "MAIL FROM:<s@us.test> SIZE=1000\r\n", W_IN },
	};
	RUN(&set, refused, v, "MAIL FROM");

	const struct step failed[] = {
		{ IN, GREETING "250-mx\r\n250 STARTTLS\r\n", EHLO_CMD "STARTTLS\r\n", W_IN },
		{ IN, "220 ready\r\n", "", W_TLS },
		{ TLS_FAIL, NULL, "", W_DONE },
	};
	const char *const vf[] = { "451 4.7.5 TLS handshake failed" };
	RUN(&set, failed, vf, "STARTTLS");

	/* Not wanted, or already TLS: no STARTTLS. */
	set.tls_active = true;
	const struct step active[] = {
		{ IN, GREETING "250-mx\r\n250 STARTTLS\r\n", EHLO_CMD "MAIL FROM:<s@us.test>\r\n", W_IN },
	};
	RUN(&set, active, v, "MAIL FROM");
}

static void test_size_too_big(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.message_size = 10001;
	const struct step steps[] = {
		{ IN, GREETING "250-mx\r\n250-PIPELINING\r\n250 SIZE 10000\r\n", EHLO_CMD "QUIT\r\n", W_DONE },
	};
	const char *const v[] = { "552 5.3.4 message size 10001 exceeds the server's size limit of 10000",
				  "552 5.3.4 message size 10001 exceeds the server's size limit of 10000" };
	RUN(&set, steps, v, "QUIT");

	/* SIZE without a limit, or with 0: no limit. */
	const struct step nolimit[] = {
		{ IN, GREETING "250-mx\r\n250 SIZE\r\n", EHLO_CMD "MAIL FROM:<s@us.test> SIZE=10001\r\n", W_IN },
	};
	const char *const v0[] = { "0  ", "0  " };
	RUN(&set, nolimit, v0, "MAIL FROM");
}

static void test_smtputf8_missing(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.smtputf8 = true;
	const struct step steps[] = {
		{ IN, GREETING "250 mx\r\n", EHLO_CMD "QUIT\r\n", W_DONE },
	};
	const char *const v[] = { "550 5.6.7 SMTPUTF8 is required, but was not offered by the server",
				  "550 5.6.7 SMTPUTF8 is required, but was not offered by the server" };
	RUN(&set, steps, v, "QUIT");

	const struct step ok[] = {
		{ IN, GREETING "250-mx\r\n250 SMTPUTF8\r\n", EHLO_CMD "MAIL FROM:<s@us.test> SMTPUTF8\r\n", W_IN },
	};
	const char *const v0[] = { "0  ", "0  " };
	RUN(&set, ok, v0, "MAIL FROM");
}

static void test_multiline_and_codes(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.nrcpt = 1;
	/* A 5.x.x code in a 4xx reply is text; a bare "250" line is valid;
	 * control bytes become '?'. */
	const struct step steps[] = {
		{ IN, "220-first\r\n220-second\r\n220\r\n", EHLO_CMD, W_IN },
		{ IN, "250\r\n", "MAIL FROM:<s@us.test>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "450-5.1.1 mailbox\r\n450-\tbusy\x01\r\n450 4.2.1 later\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const v[] = { "450  5.1.1 mailbox ?busy? later" };
	RUN(&set, steps, v, "QUIT");
}

static void test_garbage_and_limits(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	set.nrcpt = 1;
	const struct step garbage[] = {
		{ IN, "HTTP/1.1 400 Bad Request\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const vg[] = { "451 4.5.0 protocol error: malformed reply (in reply to greeting)" };
	RUN(&set, garbage, vg, "QUIT");

	const struct step changed[] = {
		{ IN, GREETING, EHLO_CMD, W_IN },
		{ IN, "250-mx\r\n251 x\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const vc[] = {
		"451 4.5.0 protocol error: reply code changed within a multiline reply (in reply to EHLO)"
	};
	RUN(&set, changed, vc, "QUIT");

	struct textbuf long_line = TEXTBUF_INIT;
	textbuf_puts(&long_line, "220 ");
	for (int i = 0; i < SMTP_CLIENT_LINE_MAX; i++)
		textbuf_putc(&long_line, 'x');
	textbuf_puts(&long_line, "\r\n");
	const struct step overlong[] = {
		{ IN, long_line.data, "QUIT\r\n", W_DONE },
	};
	const char *const vl[] = { "451 4.5.0 protocol error: reply line too long (in reply to greeting)" };
	RUN(&set, overlong, vl, "QUIT");
	textbuf_free(&long_line);

	struct textbuf many = TEXTBUF_INIT;
	textbuf_puts(&many, GREETING);
	for (int i = 0; i <= SMTP_CLIENT_REPLY_LINES_MAX; i++)
		textbuf_puts(&many, "250-X\r\n");
	const struct step too_many[] = {
		{ IN, many.data, EHLO_CMD "QUIT\r\n", W_DONE },
	};
	const char *const vm[] = { "451 4.5.0 protocol error: too many reply lines (in reply to EHLO)" };
	RUN(&set, too_many, vm, "QUIT");
	textbuf_free(&many);

	struct textbuf out = TEXTBUF_INIT;
	struct smtp_client *c = smtp_client_new(&set, &backend, &out);
	static const char with_nul[] = "220 a\0b\r\n";
	assert_int_equal(smtp_client_input(c, with_nul, sizeof(with_nul) - 1), W_DONE);
	assert_string_equal(smtp_client_rcpt_reply(c, 0)->text, "protocol error: NUL in reply (in reply to greeting)");
	smtp_client_free(&c);
	textbuf_free(&out);

	const struct step unexpected[] = {
		OPEN_SERIAL,
		{ IN, "354 what\r\n", "QUIT\r\n", W_DONE },
	};
	const char *const vu[] = { "451 4.5.0 protocol error: unexpected reply to MAIL FROM (in reply to MAIL FROM)" };
	RUN(&set, unexpected, vu, "QUIT");
}

static void test_abort_and_421(void **state)
{
	(void)state;
	struct smtp_client_settings set = base_settings();
	const struct step steps[] = {
		OPEN_SERIAL,
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "550 5.1.1 no\r\n", "RCPT TO:<b@example.net>\r\n", W_IN },
		{ ABORT, "lost connection with mx.example.net while sending RCPT TO", "", W_DONE },
		{ IN, "250 ok\r\n", "", W_DONE },
	};
	const char *const v[] = { "550 5.1.1 no", "421 4.4.2 lost connection with mx.example.net while sending RCPT TO" };
	RUN(&set, steps, v, "RCPT TO");

	/* Accepted recipients without the final reply get the abort too. */
	const struct step in_body[] = {
		OPEN_PIPELINED,
		{ IN, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "", W_BODY },
		{ BODY, "abc\n", "abc\r\n", W_BODY },
		{ ABORT, "timeout", "", W_DONE },
		{ BODY, "more\n", "", W_BODY },
		{ BODY_END, NULL, "", W_DONE },
	};
	const char *const vb[] = { "421 4.4.2 timeout", "421 4.4.2 timeout" };
	RUN(&set, in_body, vb, "message body");

	const struct step s421[] = {
		OPEN_SERIAL,
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "421 4.4.2 timeout, closing\r\n", "", W_DONE },
	};
	const char *const v421[] = { "421 4.4.2 timeout, closing", "421 4.4.2 timeout, closing" };
	RUN(&set, s421, v421, "RCPT TO");

	/* A refusal in the middle of the body decides the accepted ones. */
	const struct step early[] = {
		OPEN_SERIAL,
		{ IN, "250 ok\r\n", "RCPT TO:<a@example.net>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<b@example.net>\r\n", W_IN },
		{ IN, "250 ok\r\n", "DATA\r\n", W_IN },
		{ IN, "354 go\r\n", "", W_BODY },
		{ IN, "552 5.3.4 too much\r\n", "", W_DONE },
		{ BODY_END, NULL, "", W_DONE },
	};
	const char *const ve[] = { "552 5.3.4 too much", "552 5.3.4 too much" };
	RUN(&set, early, ve, "message body");
}

static void test_unsafe_strings(void **state)
{
	(void)state;
	static const struct smtp_client_rcpt rcpts[] = {
		{ "a@example.net\r\nRSET", 0, NULL },
		{ "b@example.net", SMTP_NOTIFY_DELAY, "rfc822;b@x\r\nQUIT" },
	};
	struct smtp_client_settings set = base_settings();
	set.rcpts = rcpts;
	set.envid = "bad id";
	const struct step steps[] = {
		{ IN, GREETING "250-mx\r\n250 DSN\r\n", EHLO_CMD "MAIL FROM:<s@us.test>\r\n", W_IN },
		{ IN, "250 ok\r\n", "RCPT TO:<b@example.net> NOTIFY=DELAY\r\n", W_IN },
		{ IN, "250 ok\r\n", "DATA\r\n", W_IN },
	};
	const char *const v[] = { "553 5.1.3 invalid recipient address: not sent", "0  " };
	RUN(&set, steps, v, "DATA");

	set.rcpts = two_rcpts;
	set.sender = "s@us.test>\r\nDATA";
	const struct step bad_sender[] = {
		{ IN, GREETING "250 mx\r\n", EHLO_CMD "QUIT\r\n", W_DONE },
	};
	const char *const vs[] = { "553 5.1.7 invalid sender address: not sent",
				   "553 5.1.7 invalid sender address: not sent" };
	RUN(&set, bad_sender, vs, "QUIT");
}

/* ORCPT and ENVID that are not valid xtext ("+" without two uppercase
 * hex digits, "=") are left out: a strict server refuses them with 501
 * and the recipient would bounce. */
static void test_invalid_xtext_left_out(void **state)
{
	(void)state;
	static const struct smtp_client_rcpt rcpts[] = {
		{ "a@example.net", SMTP_NOTIFY_FAILURE, "rfc822;team+ext@example.org" },
		{ "b@example.net", SMTP_NOTIFY_FAILURE, "rfc822;x=y@example.org" },
		{ "c@example.net", SMTP_NOTIFY_FAILURE, "rfc822;team+2Bext@example.org" },
	};
	struct smtp_client_settings set = base_settings();
	set.rcpts = rcpts;
	set.nrcpt = 3;
	set.envid = "id+zz";
	const struct step steps[] = {
		{ IN, GREETING "250-mx\r\n250-PIPELINING\r\n250 DSN\r\n",
		  EHLO_CMD "MAIL FROM:<s@us.test>\r\n"
		  "RCPT TO:<a@example.net> NOTIFY=FAILURE\r\n"
		  "RCPT TO:<b@example.net> NOTIFY=FAILURE\r\n"
		  "RCPT TO:<c@example.net> NOTIFY=FAILURE ORCPT=rfc822;team+2Bext@example.org\r\n"
		  "DATA\r\n",
		  W_IN },
	};
	const char *const v[] = { "0  ", "0  ", "0  " };
	RUN(&set, steps, v, "MAIL FROM");
}

/* ---- the body encoder ---- */

static void encode_all_splits(const char *in, const char *want)
{
	size_t len = strlen(in);
	for (size_t split = 0; split <= len; split++) {
		struct textbuf out = TEXTBUF_INIT;
		struct smtp_client_body_encoder e;
		smtp_client_body_encoder_init(&e);
		smtp_client_body_encode(&e, in, split, out_write, &out);
		smtp_client_body_encode(&e, in + split, len - split, out_write, &out);
		smtp_client_body_encode_end(&e, out_write, &out);
		if (strcmp(textbuf_str(&out), want) != 0)
			fail_msg("encode \"%s\" split %zu: got \"%s\", want \"%s\"", in, split, textbuf_str(&out), want);
		textbuf_free(&out);
	}
}

static void test_body_encoding(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "a\n", "a\r\n.\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a\nb\r\nc", "a\r\nb\r\nc\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ ".\n", "..\r\n.\r\n" },
		{ "x\n.\n..\n.x\r\n", "x\r\n..\r\n...\r\n..x\r\n.\r\n" },
		{ "a.b\n", "a.b\r\n.\r\n" },
		{ "a\rb", "a\r\nb\r\n.\r\n" },
		{ "a\r", "a\r\n.\r\n" },
		{ "a\r\r\n.", "a\r\n\r\n..\r\n.\r\n" },
		{ "\n\n", "\r\n\r\n.\r\n" },
		{ "\r\n.\r\n", "\r\n..\r\n.\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		encode_all_splits(cases[i].in, cases[i].want);
}

/* Large bodies go out in pieces; nothing bare, nothing lost. */
static void test_body_large(void **state)
{
	(void)state;
	size_t n = 100000;
	char *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = i % 7 == 0 ? '\n' : i % 11 == 0 ? '\r' : i % 13 == 0 ? '.' : 'a';
	struct textbuf out = TEXTBUF_INIT;
	struct smtp_client_body_encoder e;
	smtp_client_body_encoder_init(&e);
	smtp_client_body_encode(&e, in, n, out_write, &out);
	smtp_client_body_encode_end(&e, out_write, &out);
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '\r')
			assert_true(i + 1 < out.len && out.data[i + 1] == '\n');
		if (out.data[i] == '\n')
			assert_true(i > 0 && out.data[i - 1] == '\r');
	}
	assert_true(out.len >= 5 && memcmp(out.data + out.len - 5, "\r\n.\r\n", 5) == 0);
	free(in);
	textbuf_free(&out);
}

static void test_reply_parser(void **state)
{
	(void)state;
	static const struct {
		const char *cls_text;
		size_t want;
	} codes[] = {
		{ "5.1.1 x", 5 }, { "5.1.1", 5 }, { "5.123.456 x", 9 }, { "5.1234.1 x", 0 },
		{ "5.1.1x", 0 },  { "4.1.1", 0 }, { "5..1", 0 },	{ "5.1.", 0 },
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		size_t got = smtp_client_enhanced_code(codes[i].cls_text, '5');
		if (got != codes[i].want)
			fail_msg("enhanced \"%s\": got %zu, want %zu", codes[i].cls_text, got, codes[i].want);
	}
	static const char *const bad[] = { "", "25", "2500 x", "600 x", "160 x", "2x0 x", "260 x", "250x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smtp_client_reply_reader r;
		const char *text, *error = NULL;
		smtp_client_reply_reader_reset(&r);
		if (smtp_client_reply_line(&r, bad[i], &text, &error) != SMTP_CLIENT_LINE_ERROR)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(error);
	}
	/* the text is cut, never overrun */
	struct smtp_client_reply_reader r;
	const char *text, *error;
	smtp_client_reply_reader_reset(&r);
	char line[1000];
	memset(line, 'y', sizeof(line));
	memcpy(line, "250-", 4);
	line[sizeof(line) - 1] = '\0';
	for (int i = 0; i < 5; i++)
		assert_int_equal(smtp_client_reply_line(&r, line, &text, &error), SMTP_CLIENT_LINE_MORE);
	assert_int_equal(strlen(r.reply.text), SMTP_CLIENT_TEXT_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_ok),
		cmocka_unit_test(test_not_pipelined_with_params),
		cmocka_unit_test(test_params_absent),
		cmocka_unit_test(test_partial_rcpt_failure_pipelined),
		cmocka_unit_test(test_partial_rcpt_failure_serial),
		cmocka_unit_test(test_all_rcpt_fail_pipelined_data_refused),
		cmocka_unit_test(test_all_rcpt_fail_pipelined_354),
		cmocka_unit_test(test_all_rcpt_fail_serial),
		cmocka_unit_test(test_mail_refused),
		cmocka_unit_test(test_greeting_refused),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_size_too_big),
		cmocka_unit_test(test_smtputf8_missing),
		cmocka_unit_test(test_multiline_and_codes),
		cmocka_unit_test(test_garbage_and_limits),
		cmocka_unit_test(test_abort_and_421),
		cmocka_unit_test(test_unsafe_strings),
		cmocka_unit_test(test_invalid_xtext_left_out),
		cmocka_unit_test(test_body_encoding),
		cmocka_unit_test(test_body_large),
		cmocka_unit_test(test_reply_parser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
