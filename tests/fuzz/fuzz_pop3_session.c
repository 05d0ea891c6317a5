/*
 * libFuzzer harness for the POP3 engine: arbitrary client bytes, split at
 * a fuzzer-chosen point, against a backend that accepts any credentials
 * (so the TRANSACTION state is reached) and serves two small messages.
 * The engine must never crash, leak, or write past its buffers.
 */
#include <stdint.h>
#include <string.h>

#include "proto/pop3/pop3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pop3_session *session;
static const struct pop3_message msgs[2] = { { 12, "1.1" }, { 0, "1.2" } };
static const char body[] = "A: b\r\n\r\n.x\ny";

static void w(void *ctx, const void *d, size_t n) { (void)ctx; (void)d; (void)n; }
static void auth(void *ctx, const struct pop3_auth_request *req) { (void)ctx; (void)req; }
static void open_md(void *ctx, const char *u) { (void)ctx; (void)u; }
static ssize_t rd(void *ctx, size_t i, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	if (i == 1 || off >= sizeof(body) - 1)
		return 0;
	size_t n = sizeof(body) - 1 - off < len ? sizeof(body) - 1 - off : len;
	memcpy(buf, body + off, n);
	return (ssize_t)n;
}
static size_t committing;
static void commit(void *ctx, const size_t *i, size_t n) { (void)ctx; (void)i; committing = n; }
static void close_md(void *ctx) { (void)ctx; }

static const struct pop3_backend be = { w, auth, open_md, rd, commit, close_md };

static enum pop3_want settle(enum pop3_want want, unsigned *round)
{
	for (int guard = 0; guard < 1000; guard++) {
		if (want == POP3_WANT_AUTH)
			want = pop3_session_auth_result(session, (*round)++ % 3 == 0 ? POP3_AUTH_CONTINUE : POP3_AUTH_OK,
							"u@example.test", "");
		else if (want == POP3_WANT_OUTPUT)
			want = pop3_session_resume(session);
		else if (want == POP3_WANT_TLS)
			want = pop3_session_tls_started(session, NULL);
		else if (want == POP3_WANT_STORE)
			want = committing ? pop3_session_commit_done(session, committing > 1 ? -1 : 0)
					  : pop3_session_maildrop_opened(session, (*round)++ % 5 == 4 ? POP3_MAILDROP_IN_USE : 0,
									 msgs, 2);
		else
			break;
	}
	return want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_settings set = { .hostname = "h", .apop_timestamp = "<1.2@h>",
				     .sasl_mechanisms = "PLAIN", .stls_available = true,
				     .plaintext_auth_allowed = true };
	unsigned round = 0;
	committing = 0;
	size_t split = size ? data[0] % (size + 1) : 0;

	session = pop3_session_new(&set, &be, NULL);
	if (session == NULL)
		return 0;
	enum pop3_want want = settle(pop3_session_input(session, data, split), &round);
	if (want != POP3_WANT_CLOSE)
		settle(pop3_session_input(session, data + split, size - split), &round);
	pop3_session_shutdown(session);
	pop3_session_free(&session);
	return 0;
}
