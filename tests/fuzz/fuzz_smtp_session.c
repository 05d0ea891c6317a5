/*
 * libFuzzer harness for the SMTP engine: arbitrary client bytes, split at
 * a fuzzer-chosen point, against a backend that accepts every envelope,
 * answers AUTH alternately with a challenge and success, and commits
 * every message. Exercises commands, paths, parameters, DATA and BDAT.
 */
#include <stdint.h>
#include <string.h>

#include "proto/smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_session *session;
static size_t message_bytes;

static void w(void *ctx, const void *d, size_t n) { (void)ctx; (void)d; (void)n; }
static void auth(void *ctx, const struct smtp_auth_request *r) { (void)ctx; (void)r; }
static void mail(void *ctx, const char *p, const struct smtp_mail_params *m, struct smtp_reply *r)
{
	(void)ctx; (void)m;
	if (p[0] == 'x')
		*r = (struct smtp_reply){ 550, NULL, "no" };
}
static void rcpt(void *ctx, const char *p, const struct smtp_rcpt_params *m, struct smtp_reply *r)
{
	(void)ctx; (void)m;
	if (p[0] == 'x')
		*r = (struct smtp_reply){ 550, "5.1.1", "unknown" };
}
static void begin(void *ctx, struct smtp_reply *r) { (void)ctx; (void)r; message_bytes = 0; }
static int dw(void *ctx, const void *d, size_t n) { (void)ctx; (void)d; message_bytes += n; return 0; }
static void commit(void *ctx, bool ok, const struct smtp_reply *refusal)
{
	(void)ctx;
	(void)ok;
	(void)refusal;
}
static void reset(void *ctx) { (void)ctx; }

static const struct smtp_backend be = { w, auth, mail, rcpt, begin, dw, commit, reset };

static enum smtp_want settle(enum smtp_want want, unsigned *round)
{
	for (int guard = 0; guard < 1000; guard++) {
		if (want == SMTP_WANT_AUTH)
			want = smtp_session_auth_result(session, (*round)++ % 2 ? SMTP_AUTH_OK : SMTP_AUTH_CONTINUE,
							"u@example.test", "");
		else if (want == SMTP_WANT_COMMIT)
			want = smtp_session_commit_result(session, NULL, "Q1");
		else if (want == SMTP_WANT_TLS)
			want = smtp_session_tls_started(session, NULL);
		else
			break;
	}
	return want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_settings set = { .hostname = "h", .sasl_mechanisms = "PLAIN LOGIN", .max_message_size = 4096,
				     .max_recipients = 5, .starttls_available = true,
				     .plaintext_auth_allowed = true, .chunking = true, .dsn = true,
				     .auth_required = size > 0 && (data[0] & 1) };
	unsigned round = 0;
	size_t split = size ? data[0] % (size + 1) : 0;

	session = smtp_session_new(&set, &be, NULL);
	if (session == NULL)
		return 0;
	enum smtp_want want = settle(smtp_session_input(session, data, split), &round);
	if (want != SMTP_WANT_CLOSE)
		settle(smtp_session_input(session, data + split, size - split), &round);
	smtp_session_shutdown(session);
	smtp_session_free(&session);
	return 0;
}
