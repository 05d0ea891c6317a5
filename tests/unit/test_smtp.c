/*
 * SMTP engine tests: golden transcripts (client bytes in, exact replies
 * out) against a fake backend, fed whole and one byte at a time; the
 * message bytes the backend receives; the DATA decoder at every split;
 * RFC 5321 path parsing.
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
#include "proto/smtp/smtp_data.h"
#include "proto/smtp/smtp_path.h"

struct fake {
	struct textbuf out;      /* replies */
	struct textbuf message;  /* bytes of the current message */
	struct textbuf log;      /* backend calls, for envelope checks */
	struct smtp_session *s;
	int commits_ok, commits_dropped;
	char refusal[64]; /* the last dropped message's refusal, "" for none */
	int fail_data_begin;     /* data_begin refuses this many times */
	struct smtp_auth_request last;
	char last_resp[128];
	bool abort_seen;
};

static void f_write(void *ctx, const void *d, size_t n)
{
	textbuf_append(&((struct fake *)ctx)->out, d, n);
}

static void f_auth(void *ctx, const struct smtp_auth_request *req)
{
	struct fake *f = ctx;
	f->last = *req;
	snprintf(f->last_resp, sizeof(f->last_resp), "%s", req->response ? req->response : "(none)");
}

static void f_mail(void *ctx, const char *rp, const struct smtp_mail_params *p, struct smtp_reply *r)
{
	struct fake *f = ctx;
	textbuf_printf(&f->log, "MAIL<%s> size=%llu 8bit=%d ret=%s envid=%s|", rp, (unsigned long long)p->size,
		       p->body_8bit, p->ret_full ? "FULL" : p->ret_hdrs ? "HDRS" : "-", p->envid ? p->envid : "-");
	if (strcmp(rp, "blocked@spam.test") == 0)
		*r = (struct smtp_reply){ 554, "5.7.1", "Sender rejected" };
}

static void f_rcpt(void *ctx, const char *fp, const struct smtp_rcpt_params *p, struct smtp_reply *r)
{
	struct fake *f = ctx;
	textbuf_printf(&f->log, "RCPT<%s> notify=%u orcpt=%s|", fp, p->notify, p->orcpt ? p->orcpt : "-");
	if (strncmp(fp, "nobody@", 7) == 0)
		*r = (struct smtp_reply){ 550, "5.1.1", "<nobody@example.test>: Recipient address rejected: User unknown" };
}

static void f_data_begin(void *ctx, struct smtp_reply *r)
{
	struct fake *f = ctx;
	textbuf_truncate(&f->message, 0);
	if (f->fail_data_begin > 0) {
		f->fail_data_begin--;
		*r = (struct smtp_reply){ 451, "4.3.0", "Spool unavailable" };
	}
}

static int f_data_write(void *ctx, const void *d, size_t n)
{
	textbuf_append(&((struct fake *)ctx)->message, d, n);
	return 0;
}

static void f_commit(void *ctx, bool accepted, const struct smtp_reply *refusal)
{
	struct fake *f = ctx;
	if (accepted)
		f->commits_ok++;
	else
		f->commits_dropped++;
	snprintf(f->refusal, sizeof(f->refusal), "%s",
		 refusal == NULL ? "" : refusal->enhanced);
}

static void f_reset(void *ctx)
{
	textbuf_puts(&((struct fake *)ctx)->log, "RESET|");
}

static const struct smtp_backend fake_backend = {
	f_write, f_auth, f_mail, f_rcpt, f_data_begin, f_data_write, f_commit, f_reset,
};

static struct smtp_settings settings(void)
{
	return (struct smtp_settings){
		.hostname = "mx.example.test",
		.sasl_mechanisms = "PLAIN LOGIN",
		.max_message_size = 1000,
		.max_recipients = 3,
		.starttls_available = true,
		.plaintext_auth_allowed = true,
		.chunking = true,
		.dsn = true,
	};
}

static void answer(struct fake *f, enum smtp_want *w)
{
	while (*w == SMTP_WANT_AUTH || *w == SMTP_WANT_COMMIT) {
		if (*w == SMTP_WANT_COMMIT) {
			*w = smtp_session_commit_result(f->s, NULL, "4AbC9");
		} else if (f->last.kind == SMTP_AUTH_START && strcmp(f->last_resp, "(none)") == 0) {
			*w = smtp_session_auth_result(f->s, SMTP_AUTH_CONTINUE, NULL, "");
		} else if (f->last.kind == SMTP_AUTH_ABORT) {
			*w = smtp_session_auth_result(f->s, SMTP_AUTH_FAILED, NULL, NULL);
		} else if (strcmp(f->last_resp, "!!!") == 0) {
			*w = smtp_session_auth_result(f->s, SMTP_AUTH_MALFORMED, NULL, NULL);
		} else if (strcmp(f->last_resp, "weak") == 0) {
			*w = smtp_session_auth_result(f->s, SMTP_AUTH_TOO_WEAK, NULL, NULL);
		} else {
			bool ok = strcmp(f->last_resp, "AGFsaWNlAHB3") == 0; /* \0alice\0pw */
			*w = smtp_session_auth_result(f->s, ok ? SMTP_AUTH_OK : SMTP_AUTH_FAILED,
						      "alice@example.test", NULL);
		}
	}
}

static enum smtp_want drive(struct fake *f, const char *in, size_t len, bool byte_by_byte)
{
	enum smtp_want w = SMTP_WANT_INPUT;
	size_t step = byte_by_byte ? 1 : (len ? len : 1);
	for (size_t i = 0; i < len && w != SMTP_WANT_CLOSE && w != SMTP_WANT_TLS; i += step) {
		w = smtp_session_input(f->s, in + i, step);
		answer(f, &w);
	}
	return w;
}

static enum smtp_want drives(struct fake *f, const char *in)
{
	return drive(f, in, strlen(in), false);
}

/* n unknown commands, or fewer if the session closes first. */
static enum smtp_want bad_commands(struct fake *f, int n)
{
	enum smtp_want w = SMTP_WANT_INPUT;
	for (int i = 0; i < n && w == SMTP_WANT_INPUT; i++)
		w = drives(f, "BOGUS\r\n");
	return w;
}

static void start(struct fake *f, const struct smtp_settings *set)
{
	memset(f, 0, sizeof(*f));
	f->s = smtp_session_new(set, &fake_backend, f);
	assert_non_null(f->s);
}

static void finish(struct fake *f)
{
	smtp_session_free(&f->s);
	textbuf_free(&f->out);
	textbuf_free(&f->message);
	textbuf_free(&f->log);
}

struct transcript {
	const char *name;
	const char *client;
	const char *server;
	const char *message; /* bytes the backend must have, or NULL */
};

#define X60 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X600 X60 X60 X60 X60 X60 X60 X60 X60 X60 X60
#define GREETING "220 mx.example.test ESMTP clustermail\r\n"
#define EHLO_REPLY "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-DSN\r\n250 CHUNKING\r\n"

static const struct transcript transcripts[] = {
	{ "one message, pipelined",
	  "EHLO client.test\r\nMAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<u@example.test>\r\n"
	  "RCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	  "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown\r\n"
	  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4AbC9\r\n221 2.0.0 Bye\r\n",
	  "Subject: x\r\n\r\n.dot\r\nline\r\n" },
	{ "HELO, null sender, Postmaster",
	  "HELO old.test\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
	  GREETING "250 mx.example.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4AbC9\r\n221 2.0.0 Bye\r\n",
	  "hi\r\n" },
	{ "sequence errors",
	  "MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<u@example.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n"
	  "MAIL FROM:<a@b.test>\r\nDATA\r\nRCPT TO:<nobody@x.test>\r\nDATA\r\nRSET\r\nQUIT\r\n",
	  GREETING "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_REPLY
	  "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n250 2.1.0 Ok\r\n"
	  "503 5.5.1 Error: nested MAIL command\r\n554 5.5.1 Error: no valid recipients\r\n"
	  "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown\r\n"
	  "554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n", NULL },
	{ "syntax and parameters",
	  "EHLO\r\nEHLO c\r\nMAIL a@b\r\nMAIL FROM:a@b.test\r\nMAIL FROM:<a@b.test> SIZE=5000\r\n"
	  "MAIL FROM:<a@b.test> FOO=1\r\nMAIL FROM:<blocked@spam.test>\r\n"
	  "MAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B1\r\nRCPT TO:<u@example.test> NOTIFY=NEVER,SUCCESS\r\n"
	  "RCPT TO:<u@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.test\r\nRCPT TO:<a@b..c>\r\nQUIT\r\n",
	  GREETING "501 5.5.4 Syntax: EHLO hostname\r\n" EHLO_REPLY "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
	  "501 5.1.7 path must be enclosed in <>\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n"
	  "555 5.5.4 Unsupported option or malformed parameter\r\n554 5.7.1 Sender rejected\r\n"
	  "250 2.1.0 Ok\r\n555 5.5.4 Unsupported option or malformed parameter\r\n250 2.1.5 Ok\r\n"
	  "501 5.1.3 malformed domain\r\n221 2.0.0 Bye\r\n", NULL },
	{ "DSN and size parameters checked strictly",
	  "EHLO c\r\nMAIL FROM:<a@b.test> SIZE=10 SIZE=20\r\nMAIL FROM:<a@b.test> RET=FULL ret=HDRS\r\n"
	  "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test> NOTIFY=SUCCESS,,DELAY\r\n"
	  "RCPT TO:<u@example.test> NOTIFY=DELAY,\r\nRCPT TO:<u@example.test> ORCPT=;u@example.test\r\n"
	  "RCPT TO:<u@example.test> ORCPT=rfc 822;u\r\n"
	  "RCPT TO:<u@example.test> NOTIFY=DELAY NOTIFY=NEVER\r\nRCPT TO:<u@example.test> NOTIFY=DELAY\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "501 5.5.4 Duplicate parameter\r\n501 5.5.4 Duplicate parameter\r\n"
	  "250 2.1.0 Ok\r\n555 5.5.4 Unsupported option or malformed parameter\r\n"
	  "555 5.5.4 Unsupported option or malformed parameter\r\n"
	  "555 5.5.4 Unsupported option or malformed parameter\r\n"
	  "555 5.5.4 Unsupported option or malformed parameter\r\n"
	  "501 5.5.4 Duplicate parameter\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n", NULL },
	{ "recipient limit and misc commands",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u1@example.test>\r\nRCPT TO:<u2@example.test>\r\n"
	  "RCPT TO:<u3@example.test>\r\nRCPT TO:<u4@example.test>\r\nVRFY u1\r\nEXPN list\r\nHELP\r\nNOOP\r\n"
	  "FOO\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	  "452 4.5.3 Error: too many recipients\r\n502 5.5.1 VRFY command is disabled\r\n"
	  "502 5.5.1 EXPN command is disabled\r\n214 2.0.0 See RFC 5321\r\n250 2.0.0 Ok\r\n"
	  "500 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n", NULL },
	{ "bare LF cannot end or smuggle a message",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
	  "one\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	  "550 5.6.11 Message contains a bare CR or LF; use CRLF line endings\r\n221 2.0.0 Bye\r\n", NULL },
	{ "bare CR variants",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\none\r\n.\rtwo\r\n.\r\n"
	  "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nx\ry\r\n.\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	  "550 5.6.11 Message contains a bare CR or LF; use CRLF line endings\r\n"
	  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	  "550 5.6.11 Message contains a bare CR or LF; use CRLF line endings\r\n221 2.0.0 Bye\r\n", NULL },
	{ "message over the size limit",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	  ".\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	  "552 5.3.4 Message size exceeds fixed maximum message size\r\n221 2.0.0 Bye\r\n", NULL },
	{ "BDAT chunks",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nBDAT 7\r\nA\r\n.\r\nBBDAT 0\r\nBDAT 3 LAST\r\nend"
	  "BDAT 4 LAST\r\nlostQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 7 octets received\r\n"
	  "250 2.0.0 Ok: 7 octets received\r\n250 2.0.0 Ok: queued as 4AbC9\r\n"
	  "503 5.5.1 Error: need MAIL command\r\n221 2.0.0 Bye\r\n",
	  "A\r\n.\r\nBend\r\n" /* the last line ended, as DATA's always is */ },
	{ "RCPT between BDAT chunks",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nBDAT 3\r\nabcRCPT TO:<u@example.test>\r\n"
	  "DATA\r\nBDAT 3 LAST\r\ndefQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 3 octets received\r\n"
	  "503 5.5.1 Error: BDAT transfer in progress\r\n503 5.5.1 Error: BDAT transfer in progress\r\n"
	  "250 2.0.0 Ok: queued as 4AbC9\r\n221 2.0.0 Bye\r\n",
	  "abcdef\r\n" },
	{ "BDAT line ends",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nBDAT 7\r\na\nb\r\nc\rBDAT 3 LAST\r\n\nd\n"
	  "QUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 7 octets received\r\n"
	  "250 2.0.0 Ok: queued as 4AbC9\r\n221 2.0.0 Bye\r\n",
	  "a\r\nb\r\nc\r\nd\r\n" /* a bare LF ends a line (stored as CRLF) */ },
	{ "BDAT chunk over the size limit",
	  "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nBDAT 600\r\n" X600 "BDAT 600\r\n" X600
	  "BDAT 3 LAST\r\nabcMAIL FROM:<a@b.test>\r\nQUIT\r\n",
	  GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 600 octets received\r\n"
	  "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
	  "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
	  "250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n", NULL },
	{ "AUTH",
	  "AUTH PLAIN AGFsaWNlAHB3\r\nEHLO c\r\nAUTH CRAM-MD5\r\nAUTH PLAIN AGJhZA==\r\nAUTH PLAIN\r\n*\r\n"
	  "AUTH PLAIN !!!\r\nAUTH PLAIN weak\r\n"
	  "AUTH login\r\nAGFsaWNlAHB3\r\nAUTH PLAIN AGFsaWNlAHB3\r\nQUIT\r\n",
	  GREETING "503 5.5.1 Error: send EHLO first\r\n" EHLO_REPLY
	  "504 5.5.4 Unrecognized authentication type\r\n535 5.7.8 Error: authentication failed\r\n"
	  "334 \r\n501 5.0.0 Authentication cancelled\r\n"
	  "501 5.5.2 Error: malformed authentication response\r\n"
	  "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
	  "334 \r\n235 2.7.0 Authentication successful\r\n"
	  "503 5.5.1 Error: already authenticated\r\n221 2.0.0 Bye\r\n", NULL },
};

static void run_transcript(const struct transcript *t, bool byte_by_byte)
{
	struct fake f;
	struct smtp_settings set = settings();
	start(&f, &set);
	enum smtp_want w = drive(&f, t->client, strlen(t->client), byte_by_byte);
	if (w != SMTP_WANT_CLOSE || strcmp(textbuf_str(&f.out), t->server) != 0)
		fail_msg("%s (%s): got want %d and\n%s\nwant\n%s", t->name, byte_by_byte ? "byte by byte" : "whole",
			 w, textbuf_str(&f.out), t->server);
	if (t->message != NULL && strcmp(textbuf_str(&f.message), t->message) != 0)
		fail_msg("%s: message got \"%s\" want \"%s\"", t->name, textbuf_str(&f.message), t->message);
	finish(&f);
}

static void test_transcripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(transcripts) / sizeof(transcripts[0]); i++) {
		run_transcript(&transcripts[i], false);
		run_transcript(&transcripts[i], true);
	}
}

static void test_envelope_reaches_backend(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B1 SIZE=10\r\n"
		  "RCPT TO:<u@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.test\r\n"
		  "RCPT TO:<@relay.test:v@example.test>\r\nRSET\r\n");
	assert_string_equal(textbuf_str(&f.log),
			    "MAIL<a@b.test> size=10 8bit=0 ret=HDRS envid=QQ+2B1|"
			    "RCPT<u@example.test> notify=3 orcpt=rfc822;u@example.test|"
			    "RCPT<v@example.test> notify=0 orcpt=-|RESET|");
	finish(&f);
}

static void test_submission_requires_auth(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	set.auth_required = true;
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN AGFsaWNlAHB3\r\nMAIL FROM:<a@b.test>\r\n");
	assert_non_null(strstr(textbuf_str(&f.out), "530 5.7.0 Authentication required\r\n"
						    "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"));
	assert_string_equal(smtp_session_user(f.s), "alice@example.test");
	finish(&f);
}

static void test_plaintext_auth_refused_before_tls(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	set.plaintext_auth_allowed = false;
	set.sasl_mechanisms = "";
	set.sasl_mechanisms_tls = "PLAIN LOGIN";
	start(&f, &set);
	drives(&f, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHB3\r\nAUTH FOO\r\n");
	const char *o = textbuf_str(&f.out);
	assert_null(strstr(o, "AUTH"));
	/* a mechanism TLS would allow: 538; one that does not exist: 504 */
	assert_non_null(strstr(o, "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
				  "504 5.5.4 Unrecognized authentication type\r\n"));
	finish(&f);
}

static void test_starttls_discards_injection_and_resets(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	start(&f, &set);
	const char *in = "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n";
	assert_int_equal(drive(&f, in, strlen(in), false), SMTP_WANT_TLS);
	assert_int_equal(smtp_session_input(f.s, "RCPT TO:<x@y.test>\r\n", 20), SMTP_WANT_TLS);
	textbuf_truncate(&f.out, 0);
	assert_int_equal(smtp_session_tls_started(f.s, NULL), SMTP_WANT_INPUT);
	assert_string_equal(textbuf_str(&f.out), "");
	assert_null(strstr(textbuf_str(&f.log), "evil"));
	drives(&f, "MAIL FROM:<a@b.test>\r\nEHLO c\r\nSTARTTLS\r\nQUIT\r\n");
	const char *o = textbuf_str(&f.out);
	assert_non_null(strstr(o, "503 5.5.1 Error: send HELO/EHLO first\r\n"));
	assert_null(strstr(o, "250-STARTTLS"));
	assert_non_null(strstr(o, "554 5.5.1 Error: TLS already active\r\n"));
	finish(&f);
}

static void test_dropped_and_refused_messages_are_discarded(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\npartial");
	smtp_session_free(&f.s);
	assert_int_equal(f.commits_dropped, 1);
	assert_int_equal(f.commits_ok, 0);
	assert_string_equal(f.refusal, ""); /* cut short: no reply to log */
	textbuf_free(&f.out);
	textbuf_free(&f.message);
	textbuf_free(&f.log);

	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\npartial");
	assert_int_equal(smtp_session_shutdown(f.s), SMTP_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "421 4.3.2 Service shutting down"));
	assert_int_equal(f.commits_dropped, 1);
	finish(&f);

	start(&f, &set);
	f.fail_data_begin = 1;
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nQUIT\r\n");
	assert_non_null(strstr(textbuf_str(&f.out), "451 4.3.0 Spool unavailable\r\n221 2.0.0 Bye"));
	finish(&f);

	/* A refused first chunk fails the transaction's later chunks too (a
	 * pipelining client sent them already): no truncated message is
	 * taken, and BDAT LAST ends the transaction. */
	start(&f, &set);
	f.fail_data_begin = 1;
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\n"
		   "BDAT 6\r\nHELLO BDAT 5 LAST\r\nWORLDDATA\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n");
	assert_non_null(strstr(textbuf_str(&f.out),
			       "250 2.1.5 Ok\r\n451 4.3.0 Spool unavailable\r\n451 4.3.0 Spool unavailable\r\n"
			       "503 5.5.1 Error: need MAIL command\r\n250 2.1.0 Ok\r\n221 2.0.0 Bye"));
	assert_int_equal(f.commits_ok, 0);
	finish(&f);

	/* The backend hears why a complete message was refused (to log it). */
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nbare\nlf\r\n.\r\n");
	assert_int_equal(f.commits_dropped, 1);
	assert_string_equal(f.refusal, "5.6.11");
	finish(&f);
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nBDAT 1200\r\n" X600 X600);
	assert_int_equal(f.commits_dropped, 1);
	assert_string_equal(f.refusal, "5.3.4");
	finish(&f);
}

static void test_limits(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	char big[SMTP_COMMAND_LINE_MAX + 100];
	(void)state;

	start(&f, &set);
	memset(big, 'x', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	drive(&f, big, strlen(big), false);
	drives(&f, "NOOP\r\n");
	assert_non_null(strstr(textbuf_str(&f.out), "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"));
	finish(&f);

	/* AUTH with an initial response may be 12,288 octets (RFC 4954) */
	static char auth[SMTP_AUTH_LINE_MAX + 100];
	for (size_t len = 5000; len <= SMTP_AUTH_LINE_MAX + 50; len += SMTP_AUTH_LINE_MAX + 50 - 5000) {
		start(&f, &set);
		drives(&f, "EHLO c\r\n");
		memcpy(auth, "AUTH PLAIN ", 11);
		memset(auth + 11, 'A', len - 11);
		memcpy(auth + len, "\r\n", 3);
		drive(&f, auth, strlen(auth), false);
		drives(&f, "NOOP\r\n");
		bool too_long = strstr(textbuf_str(&f.out), "line too long") != NULL;
		assert_int_equal(too_long, len > SMTP_AUTH_LINE_MAX);
		finish(&f);
	}

	start(&f, &set);
	assert_int_equal(bad_commands(&f, SMTP_MAX_BAD_COMMANDS), SMTP_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "421 4.7.0 Too many errors"));
	finish(&f);

	start(&f, &set);
	assert_int_equal(drives(&f, "EHLO c\r\nBDAT x\r\n"), SMTP_WANT_CLOSE);
	finish(&f);
}

static const struct {
	const char *in;
	const char *out;
	bool bare;
	size_t consumed; /* where the end marker ends, or strlen(in) when not done */
	bool done;
} decodes[] = {
	{ "a\r\nb\r\n.\r\n", "a\r\nb\r\n", false, 9, true },
	{ ".\r\n", "", false, 3, true },
	{ "..x\r\n.\r\nMORE", ".x\r\n", false, 8, true },
	{ "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", true, 10, true },
	{ "a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", true, 11, true },
	{ "a\n.\r\nstill data\r\n.\r\n", "a\n.\r\nstill data\r\n", true, 20, true },
	{ "no end\r\n", "no end\r\n", false, 8, false },
};

/* Refused recipients count as errors: relay probing and harvesting end
 * after SMTP_MAX_BAD_COMMANDS of them; an accepted message starts the
 * count again. */
static void test_refused_recipients_count(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	start(&f, &set);
	drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
	enum smtp_want w = SMTP_WANT_INPUT;
	int n = 0;
	while (w == SMTP_WANT_INPUT && n < 2 * SMTP_MAX_BAD_COMMANDS) {
		w = drives(&f, "RCPT TO:<nobody@example.test>\r\n");
		n++;
	}
	assert_int_equal(w, SMTP_WANT_CLOSE);
	assert_int_equal(n, SMTP_MAX_BAD_COMMANDS);
	assert_non_null(strstr(textbuf_str(&f.out), "421 4.7.0 Too many errors"));
	finish(&f);
}

/* An accepted message starts the error count again (errors count
 * "without delivering mail", as Postfix's hard error limit); a message
 * the backend refused does not. */
static void test_bad_commands_reset_by_a_message(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	start(&f, &set);
	drives(&f, "EHLO c\r\n");
	assert_int_equal(bad_commands(&f, SMTP_MAX_BAD_COMMANDS - 1), SMTP_WANT_INPUT);
	drives(&f, "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\n");
	drives(&f, "DATA\r\n");
	assert_int_equal(drives(&f, "hi\r\n.\r\n"), SMTP_WANT_INPUT);
	assert_int_equal(f.commits_ok, 1);
	assert_int_equal(bad_commands(&f, SMTP_MAX_BAD_COMMANDS - 1), SMTP_WANT_INPUT);
	assert_int_equal(bad_commands(&f, 1), SMTP_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "421 4.7.0 Too many errors"));
	finish(&f);

	start(&f, &set);
	drives(&f, "EHLO c\r\n");
	assert_int_equal(bad_commands(&f, SMTP_MAX_BAD_COMMANDS - 1), SMTP_WANT_INPUT);
	drives(&f, "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n");
	const char body[] = "hi\r\n.\r\n";
	enum smtp_want w = smtp_session_input(f.s, body, sizeof(body) - 1);
	assert_int_equal(w, SMTP_WANT_COMMIT);
	const struct smtp_reply refused = {451, "4.3.0", "Try again later"};
	assert_int_equal(smtp_session_commit_result(f.s, &refused, NULL), SMTP_WANT_INPUT);
	assert_int_equal(bad_commands(&f, 1), SMTP_WANT_CLOSE);
	finish(&f);
}

/* Two RCPTs of one recipient: the union of their NOTIFYs, absent counting
 * as FAILURE,DELAY and NEVER as nothing. */
static void test_notify_merge(void **state)
{
	enum { S = SMTP_NOTIFY_SUCCESS, F = SMTP_NOTIFY_FAILURE, D = SMTP_NOTIFY_DELAY,
	       N = SMTP_NOTIFY_NEVER };
	static const struct {
		unsigned a, b, want;
	} cases[] = {
		{0, 0, 0},     {N, N, N},	  {S, S, S},	 {N, S, S},	{S, N, S},
		{S, F, S | F}, {F | D, S, F | D | S}, {0, S, F | D | S}, {0, N, 0},	{0, F, 0},
		{D, 0, 0},     {N, F | D, F | D},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned got = smtp_notify_merge(cases[i].a, cases[i].b);
		if (got != cases[i].want)
			fail_msg("merge(%u, %u): got %u, want %u", cases[i].a, cases[i].b, got,
				 cases[i].want);
	}
}

/* ORCPT up to what the queue keeps (longer than ENVID's 100), not past it. */
static void test_orcpt_length(void **state)
{
	struct fake f;
	struct smtp_settings set = settings();
	(void)state;
	for (int len = 150; len <= SMTP_ORCPT_VALUE_MAX + 1; len += SMTP_ORCPT_VALUE_MAX + 1 - 150) {
		char line[1024];
		int n = snprintf(line, sizeof(line), "RCPT TO:<u@example.test> ORCPT=rfc822;");
		int local = len - (n - (int)strlen("RCPT TO:<u@example.test> ORCPT=")) - (int)strlen("@x.test");
		memset(line + n, 'o', (size_t)local);
		snprintf(line + n + local, sizeof(line) - (size_t)(n + local), "@x.test\r\n");
		start(&f, &set);
		drives(&f, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
		drives(&f, line);
		bool ok = strstr(textbuf_str(&f.out), "250 2.1.5 Ok\r\n") != NULL;
		assert_int_equal(ok, len <= SMTP_ORCPT_VALUE_MAX);
		finish(&f);
	}
}

static void test_data_decoder_all_splits(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decodes) / sizeof(decodes[0]); i++) {
		size_t len = strlen(decodes[i].in);
		for (size_t split = 0; split <= len; split++) {
			struct smtp_data d;
			char out[64];
			size_t o1 = 0, o2 = 0, used;
			smtp_data_init(&d);
			used = smtp_data_decode(&d, decodes[i].in, split, out, &o1);
			if (!d.done)
				used += smtp_data_decode(&d, decodes[i].in + split, len - split, out + o1, &o2);
			out[o1 + o2] = '\0';
			if (strcmp(out, decodes[i].out) != 0 || d.bare_line_end != decodes[i].bare ||
			    d.done != decodes[i].done || used != decodes[i].consumed)
				fail_msg("decode %zu split %zu: got \"%s\" bare=%d done=%d used=%zu", i, split, out,
					 d.bare_line_end, d.done, used);
		}
	}
}

static const struct {
	const char *in;
	int rc;
	const char *mailbox;
	unsigned flags;
	const char *rest;
} paths[] = {
	{ "<a@b.test>", 0, "a@b.test", 0, "" },
	{ " <a.b+c@d-e.test> SIZE=1", 0, "a.b+c@d-e.test", 0, " SIZE=1" },
	{ "<>", 0, "", 0, "" },
	{ "<postmaster>", 0, "postmaster", 0, "" },
	{ "<@r1.test,@r2.test:a@b.test>", 0, "a@b.test", SMTP_PATH_SOURCE_ROUTE, "" },
	{ "<\"john doe\"@b.test>", 0, "\"john doe\"@b.test", SMTP_PATH_QUOTED_LOCAL, "" },
	/* a quoted local part that could be a dot-string is the same mailbox */
	{ "<\"alice\"@b.test>", 0, "alice@b.test", 0, "" },
	{ "<\"a\\.b\"@b.test> SIZE=1", 0, "a.b@b.test", 0, " SIZE=1" },
	{ "<\"a..b\"@b.test>", 0, "\"a..b\"@b.test", SMTP_PATH_QUOTED_LOCAL, "" },
	{ "<\"\"@b.test>", 0, "\"\"@b.test", SMTP_PATH_QUOTED_LOCAL, "" },
	{ "<a@[192.0.2.1]>", 0, "a@[192.0.2.1]", SMTP_PATH_ADDRESS_LITERAL, "" },
	{ "a@b.test", -1, NULL, 0, NULL },
	{ "<a@b..test>", -1, NULL, 0, NULL },
	{ "<a@>", -1, NULL, 0, NULL },
	{ "<@a.test>", -1, NULL, 0, NULL },
	{ "<a b@c.test>", -1, NULL, 0, NULL },
	{ "<a@b.test", -1, NULL, 0, NULL },
	{ "<.a@b.test>", -1, NULL, 0, NULL },
	{ "<a@-b.test>", -1, NULL, 0, NULL },
	{ "<\"unterminated@b.test>", -1, NULL, 0, NULL },
};

static void test_paths(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char mb[SMTP_PATH_MAX + 1];
		const char *rest = NULL, *err = NULL;
		unsigned flags = 99;
		int rc = smtp_path_parse(paths[i].in, true, true, mb, sizeof(mb), &flags, &rest, &err);
		if (rc != paths[i].rc)
			fail_msg("path \"%s\": got rc %d (%s), want %d", paths[i].in, rc, err ? err : "", paths[i].rc);
		if (rc == 0 && (strcmp(mb, paths[i].mailbox) != 0 || flags != paths[i].flags ||
				strcmp(rest, paths[i].rest) != 0))
			fail_msg("path \"%s\": got \"%s\" flags %u rest \"%s\"", paths[i].in, mb, flags, rest);
	}
	char mb[SMTP_PATH_MAX + 1];
	const char *rest, *err;
	unsigned flags;
	assert_int_equal(smtp_path_parse("<>", false, false, mb, sizeof(mb), &flags, &rest, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
		cmocka_unit_test(test_envelope_reaches_backend),
		cmocka_unit_test(test_submission_requires_auth),
		cmocka_unit_test(test_plaintext_auth_refused_before_tls),
		cmocka_unit_test(test_starttls_discards_injection_and_resets),
		cmocka_unit_test(test_dropped_and_refused_messages_are_discarded),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_orcpt_length),
		cmocka_unit_test(test_refused_recipients_count),
		cmocka_unit_test(test_notify_merge),
		cmocka_unit_test(test_bad_commands_reset_by_a_message),
		cmocka_unit_test(test_data_decoder_all_splits),
		cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
