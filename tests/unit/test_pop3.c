/*
 * POP3 engine tests: golden transcripts (client bytes in, exact server
 * bytes out) against an in-memory fake backend, each transcript fed all at
 * once and one byte at a time; plus the RETR/TOP encoder at every chunk
 * split.
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
#include "proto/pop3/pop3.h"
#include "proto/pop3/pop3_stream.h"

/* ---- fake backend ---- */

struct fake {
	struct textbuf out;
	struct pop3_message msgs[3];
	const char *bodies[3];
	bool gone[3];
	size_t count;
	int open_rc;
	int commit_rc;
	size_t committed[8];
	size_t ncommitted;
	bool commit_called;
	bool open_requested;
	bool closed;
	int sasl_steps;
	struct pop3_session *s;
};

static void fake_write(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;
	textbuf_append(&f->out, data, len);
}

/* Remembered until the driver answers it. */
static struct pop3_auth_request last_req;
static char last_user[64], last_secret[64], last_mech[32], last_resp[128];
static bool have_req;

static void keep(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "(null)");
}

static void fake_auth_begin(void *ctx, const struct pop3_auth_request *req)
{
	(void)ctx;
	last_req = *req;
	keep(last_user, sizeof(last_user), req->user);
	keep(last_secret, sizeof(last_secret), req->secret);
	keep(last_mech, sizeof(last_mech), req->mechanism);
	keep(last_resp, sizeof(last_resp), req->response);
	have_req = true;
}

static enum pop3_want fake_answer_auth(struct fake *f)
{
	have_req = false;
	switch (last_req.kind) {
	case POP3_AUTH_PASS:
		if (strcmp(last_user, "alice") == 0 && strcmp(last_secret, "secret pw") == 0)
			return pop3_session_auth_result(f->s, POP3_AUTH_OK, "alice@example.test", NULL);
		if (strcmp(last_user, "tmp") == 0)
			return pop3_session_auth_result(f->s, POP3_AUTH_TEMPFAIL, NULL, NULL);
		return pop3_session_auth_result(f->s, POP3_AUTH_FAILED, NULL, NULL);
	case POP3_AUTH_APOP:
		if (strcmp(last_secret, "c4c9334bac560ecc979e58001b3e22fb") == 0)
			return pop3_session_auth_result(f->s, POP3_AUTH_OK, "alice@example.test", NULL);
		return pop3_session_auth_result(f->s, POP3_AUTH_FAILED, NULL, NULL);
	case POP3_AUTH_SASL_START:
		if (strcmp(last_resp, "(null)") == 0)
			return pop3_session_auth_result(f->s, POP3_AUTH_CONTINUE, NULL, "");
		/* an initial response is checked like a step */
		__attribute__((fallthrough));
	case POP3_AUTH_SASL_STEP:
		if (strcmp(last_resp, "AGFsaWNlAHNlY3JldCBwdw==") == 0)
			return pop3_session_auth_result(f->s, POP3_AUTH_OK, "alice@example.test", NULL);
		return pop3_session_auth_result(f->s, POP3_AUTH_FAILED, NULL, NULL);
	case POP3_AUTH_SASL_ABORT:
	default:
		return pop3_session_auth_result(f->s, POP3_AUTH_FAILED, NULL, NULL);
	}
}

static void fake_open(void *ctx, const char *user)
{
	struct fake *f = ctx;
	assert_string_equal(user, "alice@example.test");
	f->open_requested = true;
}

static ssize_t fake_read(void *ctx, size_t index, uint64_t offset, void *buf, size_t len)
{
	struct fake *f = ctx;
	assert_true(index < f->count);
	if (f->gone[index])
		return POP3_READ_GONE;
	size_t total = strlen(f->bodies[index]);
	if (offset >= total)
		return 0;
	size_t n = total - offset < len ? total - offset : len;
	/* hand out small pieces to exercise chunk boundaries */
	if (n > 7)
		n = 7;
	memcpy(buf, f->bodies[index] + offset, n);
	return (ssize_t)n;
}

static void fake_commit(void *ctx, const size_t *idx, size_t n)
{
	struct fake *f = ctx;
	f->commit_called = true;
	for (size_t i = 0; i < n && i < 8; i++)
		f->committed[i] = idx[i];
	f->ncommitted = n;
}

/* What node/ does when the store work is done: answer the engine. */
static enum pop3_want fake_answer_store(struct fake *f)
{
	if (f->open_requested) {
		f->open_requested = false;
		return pop3_session_maildrop_opened(f->s, f->open_rc, f->msgs, f->count);
	}
	return pop3_session_commit_done(f->s, f->commit_rc);
}

static void fake_close(void *ctx)
{
	struct fake *f = ctx;
	f->closed = true;
}

static const struct pop3_backend fake_backend = {
	.write = fake_write,
	.auth_begin = fake_auth_begin,
	.maildrop_open = fake_open,
	.message_read = fake_read,
	.maildrop_commit = fake_commit,
	.maildrop_close = fake_close,
};

static const char msg1[] = "Subject: one\r\n\r\nHello\r\n.hidden dot\r\n";
static const char msg2[] = "Subject: two\nX: y\n\nline1\nline2\nline3"; /* bare LF, no final EOL */

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->count = 2;
	f->bodies[0] = msg1;
	f->bodies[1] = msg2;
	f->msgs[0] = (struct pop3_message){ .size = sizeof(msg1) - 1, .uid = "5f0a.1" };
	f->msgs[1] = (struct pop3_message){ .size = sizeof(msg2) - 1 + 6, .uid = "5f0a.2" };
}

static struct pop3_settings default_settings(void)
{
	return (struct pop3_settings){
		.hostname = "mx.example.test",
		.implementation = "clustermail",
		.apop_timestamp = "<1896.697170952@dbc.mtview.ca.us>",
		.sasl_mechanisms = "PLAIN SCRAM-SHA-256",
		.stls_available = true,
		.plaintext_auth_allowed = true,
	};
}

/* Feeds input (all at once, or byte by byte), resolving every want the way
 * node/ would. Returns the final want. */
static enum pop3_want drive(struct fake *f, const char *input, bool byte_by_byte)
{
	enum pop3_want w = POP3_WANT_INPUT;
	size_t len = strlen(input), step = byte_by_byte ? 1 : len;

	for (size_t i = 0; i < len && w != POP3_WANT_CLOSE; i += step) {
		w = pop3_session_input(f->s, input + i, step);
		for (int guard = 0; guard < 100000 && w != POP3_WANT_INPUT && w != POP3_WANT_CLOSE; guard++) {
			if (w == POP3_WANT_AUTH)
				w = fake_answer_auth(f);
			else if (w == POP3_WANT_STORE)
				w = fake_answer_store(f);
			else if (w == POP3_WANT_OUTPUT)
				w = pop3_session_resume(f->s);
			else if (w == POP3_WANT_TLS)
				break; /* the transcript decides when TLS is up */
		}
		if (w == POP3_WANT_TLS)
			break;
	}
	return w;
}

struct transcript {
	const char *name;
	const char *client;
	const char *server;
	bool plaintext_allowed;
};

static const struct transcript transcripts[] = {
	{ "full session", "CAPA\r\nUSER alice\r\nPASS secret pw\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 2\r\n"
	  "RETR 1\r\nTOP 2 1\r\nTOP 1 0\r\nDELE 1\r\nLIST\r\nRETR 1\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	  "USER\r\nSASL PLAIN SCRAM-SHA-256\r\nSTLS\r\nIMPLEMENTATION clustermail\r\n.\r\n"
	  "+OK\r\n+OK Logged in, 2 messages\r\n+OK 2 78\r\n+OK\r\n1 36\r\n2 42\r\n.\r\n"
	  "+OK\r\n1 5f0a.1\r\n2 5f0a.2\r\n.\r\n+OK 2 42\r\n"
	  "+OK 36 octets\r\nSubject: one\r\n\r\nHello\r\n..hidden dot\r\n.\r\n"
	  "+OK\r\nSubject: two\r\nX: y\r\n\r\nline1\r\n.\r\n"
	  "+OK\r\nSubject: one\r\n\r\n.\r\n"
	  "+OK Message 1 deleted\r\n+OK\r\n2 42\r\n.\r\n-ERR Message is deleted\r\n"
	  "+OK 2 messages\r\n+OK Message 2 deleted\r\n+OK\r\n"
	  "+OK mx.example.test POP3 server signing off (1 messages deleted)\r\n", true },
	{ "bad password then good", "USER alice\r\nPASS nope\r\nUSER alice\r\nPASS secret pw\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK\r\n-ERR [AUTH] Authentication failed\r\n+OK\r\n+OK Logged in, 2 messages\r\n"
	  "+OK mx.example.test POP3 server signing off (0 messages deleted)\r\n", true },
	{ "temporary auth failure", "USER tmp\r\nPASS x\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK\r\n-ERR [SYS/TEMP] Authentication is temporarily unavailable\r\n"
	  "+OK mx.example.test POP3 server signing off\r\n", true },
	{ "plaintext refused before TLS", "CAPA\r\nUSER alice\r\nAUTH LOGIN\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	  "SASL PLAIN SCRAM-SHA-256\r\nSTLS\r\nIMPLEMENTATION clustermail\r\n.\r\n"
	  "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use STLS\r\n"
	  "-ERR Unsupported authentication mechanism\r\n"
	  "+OK mx.example.test POP3 server signing off\r\n", false },
	{ "APOP", "APOP alice 00000000000000000000000000000000\r\nAPOP alice c4c9334bac560ecc979e58001b3e22fb\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "-ERR [AUTH] Authentication failed\r\n+OK Logged in, 2 messages\r\n"
	  "+OK mx.example.test POP3 server signing off (0 messages deleted)\r\n", true },
	{ "PASS pairs with the USER just before it", "USER alice\r\nAPOP sam 00000000000000000000000000000000\r\n"
	  "PASS secret pw\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK\r\n-ERR [AUTH] Authentication failed\r\n-ERR USER first\r\n"
	  "+OK mx.example.test POP3 server signing off\r\n", true },
	{ "APOP malformed", "APOP alice short\r\nAPOP\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "-ERR APOP digest must be 32 hex digits\r\n-ERR APOP needs a name and a digest\r\n"
	  "+OK mx.example.test POP3 server signing off\r\n", true },
	{ "SASL with initial response", "AUTH plain AGFsaWNlAHNlY3JldCBwdw==\r\nSTAT\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK Logged in, 2 messages\r\n+OK 2 78\r\n"
	  "+OK mx.example.test POP3 server signing off (0 messages deleted)\r\n", true },
	{ "SASL continuation, abort, retry", "AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldCBwdw==\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+ \r\n-ERR [AUTH] Authentication failed\r\n+ \r\n+OK Logged in, 2 messages\r\n"
	  "+OK mx.example.test POP3 server signing off (0 messages deleted)\r\n", true },
	{ "AUTH listing and unknown mechanism", "AUTH\r\nAUTH X-UNKNOWN\r\nAUTH  PLAIN\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "+OK\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n-ERR Unsupported authentication mechanism\r\n"
	  "-ERR Unsupported authentication mechanism\r\n"
	  "+OK mx.example.test POP3 server signing off\r\n", true },
	{ "state errors", "STAT\r\nPASS x\r\nNOOP\r\nUSER alice\r\nPASS secret pw\r\nUSER bob\r\n"
	  "RETR 9\r\nRETR x\r\nRETR\r\nTOP 1\r\nTOP 1 -1\r\nBOGUSCMD\r\nQUIT\r\n",
	  "+OK mx.example.test POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	  "-ERR Unknown command in AUTHORIZATION state\r\n-ERR USER first\r\n"
	  "-ERR NOOP is for the TRANSACTION state\r\n+OK\r\n+OK Logged in, 2 messages\r\n"
	  "-ERR Unknown command in TRANSACTION state\r\n-ERR No such message\r\n"
	  "-ERR Invalid message number\r\n-ERR Message number required\r\n"
	  "-ERR TOP needs a message number and a line count\r\n-ERR Invalid line count\r\n"
	  "-ERR Unknown command\r\n"
	  "+OK mx.example.test POP3 server signing off (0 messages deleted)\r\n", true },
};

static void run_transcript(const struct transcript *t, bool byte_by_byte)
{
	struct fake f;
	struct pop3_settings set = default_settings();

	fake_init(&f);
	set.plaintext_auth_allowed = t->plaintext_allowed;
	f.s = pop3_session_new(&set, &fake_backend, &f);
	assert_non_null(f.s);
	enum pop3_want w = drive(&f, t->client, byte_by_byte);
	if (strcmp(textbuf_str(&f.out), t->server) != 0 || w != POP3_WANT_CLOSE)
		fail_msg("%s (%s): got want %d and\n%s\nwant\n%s", t->name,
			 byte_by_byte ? "byte by byte" : "all at once", w, textbuf_str(&f.out), t->server);
	pop3_session_free(&f.s);
	textbuf_free(&f.out);
}

static void test_transcripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(transcripts) / sizeof(transcripts[0]); i++) {
		run_transcript(&transcripts[i], false);
		run_transcript(&transcripts[i], true);
	}
}

static void start(struct fake *f, bool plaintext)
{
	struct pop3_settings set = default_settings();
	fake_init(f);
	set.plaintext_auth_allowed = plaintext;
	f->s = pop3_session_new(&set, &fake_backend, f);
	assert_non_null(f->s);
}

static void finish(struct fake *f)
{
	pop3_session_free(&f->s);
	textbuf_free(&f->out);
}

static void test_dropped_connection_deletes_nothing(void **state)
{
	struct fake f;
	(void)state;
	start(&f, true);
	drive(&f, "USER alice\r\nPASS secret pw\r\nDELE 1\r\nDELE 2\r\n", false);
	pop3_session_free(&f.s);
	assert_false(f.commit_called);
	assert_true(f.closed);
	textbuf_free(&f.out);
}

static void test_quit_commits_exactly_the_deleted(void **state)
{
	struct fake f;
	(void)state;
	start(&f, true);
	assert_int_equal(drive(&f, "USER alice\r\nPASS secret pw\r\nDELE 2\r\nQUIT\r\n", false),
			 POP3_WANT_CLOSE);
	assert_true(f.commit_called);
	assert_int_equal(f.ncommitted, 1);
	assert_int_equal(f.committed[0], 1);
	struct pop3_session_stats st;
	pop3_session_stats(f.s, &st);
	assert_true(st.quit);
	assert_int_equal(st.retr, 0);
	finish(&f);

	start(&f, true);
	f.commit_rc = -1;
	drive(&f, "USER alice\r\nPASS secret pw\r\nDELE 1\r\nQUIT\r\n", false);
	assert_non_null(strstr(textbuf_str(&f.out), "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"));
	finish(&f);
}

static void test_stls_discards_injected_commands(void **state)
{
	struct fake f;
	(void)state;
	start(&f, false);
	/* Everything after STLS in the same packet must be thrown away. */
	assert_int_equal(drive(&f, "STLS\r\nUSER alice\r\nPASS secret pw\r\n", false), POP3_WANT_TLS);
	assert_int_equal(pop3_session_input(f.s, "CAPA\r\n", 6), POP3_WANT_TLS);
	textbuf_truncate(&f.out, 0);
	assert_int_equal(pop3_session_tls_started(f.s, NULL), POP3_WANT_INPUT);
	assert_string_equal(textbuf_str(&f.out), "");
	drive(&f, "CAPA\r\nPASS secret pw\r\nUSER alice\r\nPASS secret pw\r\nQUIT\r\n", false);
	const char *o = textbuf_str(&f.out);
	assert_null(strstr(o, "STLS\r\n"));       /* not offered twice */
	assert_non_null(strstr(o, "USER\r\n"));   /* plaintext is fine under TLS */
	assert_non_null(strstr(o, "-ERR USER first\r\n"));
	assert_non_null(strstr(o, "+OK Logged in"));
	finish(&f);

	start(&f, true);
	drive(&f, "STLS\r\n", false);
	pop3_session_tls_started(f.s, NULL);
	textbuf_truncate(&f.out, 0);
	drive(&f, "STLS\r\nQUIT\r\n", false);
	assert_string_equal(textbuf_str(&f.out), "-ERR STLS not available\r\n"
						 "+OK mx.example.test POP3 server signing off\r\n");
	finish(&f);
}

static void test_message_removed_by_another_session(void **state)
{
	struct fake f;
	(void)state;
	start(&f, true);
	f.gone[0] = true;
	drive(&f, "USER alice\r\nPASS secret pw\r\nRETR 1\r\nTOP 1 3\r\nRETR 2\r\nTOP 2 0\r\nQUIT\r\n", false);
	struct pop3_session_stats st;
	pop3_session_stats(f.s, &st);
	assert_int_equal(st.retr, 1); /* the removed message was not sent */
	assert_int_equal(st.top, 1);
	const char *o = textbuf_str(&f.out);
	assert_non_null(strstr(o, "-ERR Message was removed by another session\r\n-ERR Message was removed"));
	assert_non_null(strstr(o, "line3\r\n.\r\n+OK\r\nSubject: two\r\nX: y\r\n\r\n.\r\n+OK mx.example.test POP3 server signing off"));
	finish(&f);
}

static void test_maildrop_open_failures(void **state)
{
	static const struct {
		int rc;
		const char *want;
	} cases[] = {
		{ POP3_MAILDROP_IN_USE, "-ERR [IN-USE] " },
		{ POP3_MAILDROP_TEMP, "-ERR [SYS/TEMP] " },
		{ POP3_MAILDROP_PERM, "-ERR [SYS/PERM] " },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		start(&f, true);
		f.open_rc = cases[i].rc;
		assert_int_equal(drive(&f, "USER alice\r\nPASS secret pw\r\nSTAT\r\n", false), POP3_WANT_CLOSE);
		if (strstr(textbuf_str(&f.out), cases[i].want) == NULL)
			fail_msg("open rc %d: got %s, want %s", cases[i].rc, textbuf_str(&f.out), cases[i].want);
		assert_null(strstr(textbuf_str(&f.out), "+OK 2"));
		pop3_session_free(&f.s);
		assert_false(f.closed); /* never opened, never closed */
		textbuf_free(&f.out);
	}
}

static void test_limits_and_bad_commands(void **state)
{
	struct fake f;
	char big[POP3_SASL_LINE_MAX * 2];
	(void)state;

	start(&f, true);
	memset(big, 'A', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	assert_int_equal(drive(&f, big, false), POP3_WANT_INPUT);
	assert_int_equal(drive(&f, "USER alice\r\n", false), POP3_WANT_INPUT);
	const char *o = textbuf_str(&f.out);
	assert_non_null(strstr(o, "-ERR Line too long\r\n+OK\r\n"));
	finish(&f);

	start(&f, true);
	assert_int_equal(drive(&f, "USER a\0b\r\n", false), POP3_WANT_INPUT);
	finish(&f);

	start(&f, true);
	enum pop3_want w = POP3_WANT_INPUT;
	for (int i = 0; i < POP3_MAX_BAD_COMMANDS && w == POP3_WANT_INPUT; i++)
		w = drive(&f, "XYZZY\r\n", false);
	assert_int_equal(w, POP3_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "-ERR Too many bad commands, closing\r\n"));
	finish(&f);
}

static void test_shutdown(void **state)
{
	struct fake f;
	(void)state;
	start(&f, true);
	drive(&f, "USER alice\r\nPASS secret pw\r\nDELE 1\r\n", false);
	assert_int_equal(pop3_session_shutdown(f.s), POP3_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "-ERR [SYS/TEMP] Server shutting down\r\n"));
	assert_false(f.commit_called);
	finish(&f);
}

static void test_nul_in_line_refused(void **state)
{
	struct fake f;
	(void)state;
	start(&f, true);
	assert_int_equal(pop3_session_input(f.s, "USER a\0b\r\nQUIT\r\n", 16), POP3_WANT_CLOSE);
	assert_non_null(strstr(textbuf_str(&f.out), "-ERR NUL bytes are not allowed\r\n"));
	finish(&f);
}

/* ---- the RETR/TOP encoder ---- */

static const struct {
	const char *in;
	bool top;
	unsigned long lines;
	const char *want;
} encodings[] = {
	{ "A: b\r\n\r\nbody\r\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n" },
	{ "A: b\n\n.x\n..y\n.\n", false, 0, "A: b\r\n\r\n..x\r\n...y\r\n..\r\n.\r\n" },
	{ "A: b\r\n\r\nno eol", false, 0, "A: b\r\n\r\nno eol\r\n.\r\n" },
	{ "", false, 0, ".\r\n" },
	{ "A\rB\r\n", false, 0, "A\rB\r\n.\r\n" },
	{ "ends in CR\r", false, 0, "ends in CR\r\r\n.\r\n" },
	{ "H: 1\r\n\r\nl1\r\nl2\r\nl3\r\n", true, 2, "H: 1\r\n\r\nl1\r\nl2\r\n.\r\n" },
	{ "H: 1\r\n\r\nl1\r\nl2\r\n", true, 0, "H: 1\r\n\r\n.\r\n" },
	{ "H: 1\r\n\r\nl1\r\n", true, 10, "H: 1\r\n\r\nl1\r\n.\r\n" },
	{ "H: 1\r\nH: 2", true, 3, "H: 1\r\nH: 2\r\n.\r\n" },
	{ ".H\n\n.b\n", true, 1, "..H\r\n\r\n..b\r\n.\r\n" },
};

static void test_stream_encoding_all_splits(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++) {
		size_t len = strlen(encodings[i].in);
		for (size_t split = 0; split <= len; split++) {
			struct pop3_stream st;
			char out[256];
			size_t o;
			pop3_stream_init(&st, encodings[i].top, encodings[i].lines);
			o = pop3_stream_encode(&st, encodings[i].in, split, out);
			if (!st.done)
				o += pop3_stream_encode(&st, encodings[i].in + split, len - split, out + o);
			o += pop3_stream_finish(&st, out + o);
			out[o] = '\0';
			if (strcmp(out, encodings[i].want) != 0)
				fail_msg("encoding %zu split %zu: got \"%s\", want \"%s\"", i, split, out,
					 encodings[i].want);
		}
	}
}

static void test_large_message_streams_in_chunks(void **state)
{
	struct fake f;
	size_t n = 300000;
	char *big = malloc(n + 1);
	(void)state;

	for (size_t i = 0; i < n; i++)
		big[i] = (i % 80 == 79) ? '\n' : (i % 80 == 0 ? '.' : 'x');
	big[n] = '\0';
	start(&f, true);
	f.bodies[0] = big;
	f.msgs[0].size = n;
	drive(&f, "USER alice\r\nPASS secret pw\r\n", false);
	textbuf_truncate(&f.out, 0);
	enum pop3_want w = pop3_session_input(f.s, "RETR 1\r\nNOOP\r\n", 14);
	int resumes = 0;
	while (w == POP3_WANT_OUTPUT) {
		w = pop3_session_resume(f.s);
		resumes++;
	}
	assert_int_equal(w, POP3_WANT_INPUT);
	assert_true(resumes > 1000); /* 7-byte fake reads: many small steps, never all at once */
	const char *o = textbuf_str(&f.out);
	size_t lines = n / 80;
	/* +OK line, each line grows by a stuffed dot and a CR, then ".\r\n" and NOOP's +OK */
	assert_int_equal(f.out.len, strlen("+OK 300000 octets\r\n") + n + lines * 2 + 3 + 5);
	assert_non_null(strstr(o, "\r\n.\r\n+OK\r\n"));
	finish(&f);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
		cmocka_unit_test(test_dropped_connection_deletes_nothing),
		cmocka_unit_test(test_quit_commits_exactly_the_deleted),
		cmocka_unit_test(test_stls_discards_injected_commands),
		cmocka_unit_test(test_message_removed_by_another_session),
		cmocka_unit_test(test_maildrop_open_failures),
		cmocka_unit_test(test_limits_and_bad_commands),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_nul_in_line_refused),
		cmocka_unit_test(test_stream_encoding_all_splits),
		cmocka_unit_test(test_large_message_streams_in_chunks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
