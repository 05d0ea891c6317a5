/*
 * libFuzzer harness for the SMTP client engine: arbitrary server bytes.
 * The first input byte picks the settings (STARTTLS wanted, SMTPUTF8,
 * 8-bit body, DSN fields, message size) and how the rest is cut into
 * input calls; the harness answers every want as a real caller would
 * (TLS started or failed, a small body) and checks that the engine ends
 * with a verdict for every recipient once it says WANT_DONE, and that
 * all it wrote is CRLF-ended lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp.h"
#include "proto/smtp/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char last; /* the last byte the engine wrote, '\0' before any */

/* What the engine writes is CRLF lines: no bare CR or LF, whatever the
 * server sent. */
static void w(void *ctx, const void *d, size_t n)
{
	const char *p = d;
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		if ((p[i] == '\n') != (last == '\r'))
			abort();
		last = p[i];
	}
}

static const struct smtp_client_backend be = {w};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode = size > 0 ? data[0] : 0;
	static const struct smtp_client_rcpt rcpts[] = {
	    {"a@example.net", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY, "rfc822;a+40b@example.org"},
	    {"b@example.net", SMTP_NOTIFY_NEVER, NULL},
	    {"c@example.net", 0, NULL},
	};
	struct smtp_client_settings set = {
	    .helo_name = "mx.us.test",
	    .starttls = mode & 1,
	    .sender = mode & 2 ? "" : "s@us.test",
	    .rcpts = rcpts,
	    .nrcpt = 1 + (mode >> 6) % 3,
	    .message_size = mode & 4 ? 100000 : 10,
	    .body_8bit = mode & 8,
	    .smtputf8 = mode & 16,
	    .envid = "ENV1",
	    .ret = SMTP_CLIENT_RET_FULL,
	};
	size_t step = 1 + (mode >> 5);
	if (size > 0) {
		data++;
		size--;
	}
	last = '\0';
	struct smtp_client *c = smtp_client_new(&set, &be, NULL);
	if (c == NULL)
		return 0;
	enum smtp_client_want want = SMTP_CLIENT_WANT_INPUT;
	unsigned tls_round = 0;
	size_t off = 0;
	while (want != SMTP_CLIENT_WANT_DONE) {
		if (want == SMTP_CLIENT_WANT_TLS) {
			want = tls_round++ % 2 == 0 ? smtp_client_tls_started(c)
						    : smtp_client_tls_failed(c);
			continue;
		}
		if (want == SMTP_CLIENT_WANT_BODY) {
			smtp_client_body(c, "Subject: x\n\n.a\r\nb", 17);
			want = smtp_client_body_end(c);
			continue;
		}
		if (off >= size)
			break;
		size_t n = size - off < step ? size - off : step;
		want = smtp_client_input(c, data + off, n);
		off += n;
	}
	if (want != SMTP_CLIENT_WANT_DONE)
		want = smtp_client_abort(c, 421, "4.4.2", "lost connection");
	if (want != SMTP_CLIENT_WANT_DONE)
		abort();
	(void)smtp_client_stage(c);
	for (size_t i = 0; i < set.nrcpt; i++) {
		const struct smtp_client_reply *r = smtp_client_rcpt_reply(c, i);
		if (r->code < 200 || r->code > 599 || strlen(r->text) >= sizeof(r->text))
			abort();
	}
	if (last != '\0' && last != '\n')
		abort();
	smtp_client_free(&c);
	return 0;
}
