/*
 * SMTP AUTH (RFC 4954) on the asynchronous auth layer (node/auth.h):
 * the engine hands over the mechanism and the client's base64 text; this
 * file decodes it strictly (lib/base64.h), runs the exchange on the
 * connection's auth handle, and gives the engine the outcome when the
 * layer's done callback runs on this loop, after any failure delay.
 *
 * Outcomes map as auth.h's table says for SMTP: CONTINUE -> 334 with the
 * challenge in base64; OK -> 235 (and the connection's user is set for
 * `mailctl who`); CREDENTIALS, DISABLED, AUTHZ, TOO_WEAK, MALFORMED ->
 * 535 5.7.8; TEMPORARY -> 454 4.7.0; MECHANISM -> 504 5.5.4; a client's
 * "*" -> 501 5.0.0 (the engine knows it asked to abort). The engine's
 * outcome set has no separate code for MALFORMED (501 5.5.2) or TOO_WEAK
 * (538, which it answers itself for a plaintext mechanism without TLS),
 * so both are 535 here.
 *
 * A response that is not valid base64 fails at once without reaching the
 * layer (an exchange in progress is aborted there first). Decoded
 * responses carry secrets: they are wiped before their memory is freed.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "node/auth.h"
#include "node/log.h"
#include "node/smtp_service_private.h"

static enum smtp_auth_status smtp_auth_map(const struct auth_outcome *out)
{
	if (out->status == AUTH_OK)
		return SMTP_AUTH_OK;
	if (out->status == AUTH_CONTINUE)
		return SMTP_AUTH_CONTINUE;
	switch (out->reason) {
	case AUTH_REASON_TEMPORARY:
		return SMTP_AUTH_TEMPFAIL;
	case AUTH_REASON_MECHANISM:
		return SMTP_AUTH_UNSUPPORTED;
	case AUTH_REASON_MALFORMED:
		return SMTP_AUTH_MALFORMED;
	case AUTH_REASON_TOO_WEAK:
		return SMTP_AUTH_TOO_WEAK;
	default:
		return SMTP_AUTH_FAILED;
	}
}

static void smtp_auth_done(const struct auth_outcome *out, void *arg)
{
	struct smtp_conn *sc = arg;
	enum smtp_auth_status st = smtp_auth_map(out);
	char *challenge = NULL;

	if (sc->auth_malformed) {
		/* the layer only aborted the exchange; the client sent junk */
		sc->auth_malformed = false;
		st = SMTP_AUTH_MALFORMED;
	}
	if (sc->closing)
		return;
	if (st == SMTP_AUTH_CONTINUE) {
		size_t size = BASE64_ENCODED_LEN(out->challenge_len) + 1;
		challenge = malloc(size);
		if (challenge == NULL ||
		    base64_encode(out->challenge, out->challenge_len, challenge, size) < 0) {
			/* cannot ask: end the exchange as a temporary failure */
			free(challenge);
			challenge = NULL;
			st = SMTP_AUTH_TEMPFAIL;
		}
	}
	if (st == SMTP_AUTH_OK)
		conn_set_user(sc->c, out->user);
	enum smtp_want w = smtp_session_auth_result(sc->sess, st, out->user, challenge);
	free(challenge);
	smtp_conn_want(sc, w);
}

static void smtp_auth_fail_now(struct smtp_conn *sc, enum smtp_auth_status st)
{
	sc->deferred = SMTP_DEFER_AUTH;
	sc->deferred_auth = st;
	smtp_conn_defer(sc);
}

/* Decodes text into a fresh buffer (*buf_r, to wipe and free): 0, or -1
 * when it is not base64. */
static int smtp_auth_decode(const char *text, unsigned char **buf_r, size_t *len_r)
{
	size_t n = strlen(text);
	size_t size = BASE64_DECODED_MAX(n) + 1;
	const char *error;
	unsigned char *buf = malloc(size);

	if (buf == NULL)
		return -1;
	if (base64_decode(text, n, buf, size, len_r, &error) < 0) {
		explicit_bzero(buf, size);
		free(buf);
		return -1;
	}
	*buf_r = buf;
	return 0;
}

static void smtp_auth_wipe(unsigned char *buf, size_t len)
{
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
}

void smtp_auth_begin(void *ctx, const struct smtp_auth_request *req)
{
	struct smtp_conn *sc = ctx;
	const struct auth_iface *iface = sc->env->auth;
	unsigned char *buf = NULL;
	size_t len = 0;

	if (sc->auth == NULL) {
		/* the engine offers no mechanism then; a client may still try */
		smtp_auth_fail_now(sc, SMTP_AUTH_UNSUPPORTED);
		return;
	}
	switch (req->kind) {
	case SMTP_AUTH_START:
		if (req->response != NULL && req->response[0] != '\0' &&
		    smtp_auth_decode(req->response, &buf, &len) < 0) {
			smtp_auth_fail_now(sc, SMTP_AUTH_MALFORMED);
			return;
		}
		iface->start(sc->auth, req->mechanism, buf, len, req->response != NULL,
			     smtp_auth_done, sc);
		break;
	case SMTP_AUTH_STEP:
		if (smtp_auth_decode(req->response, &buf, &len) < 0) {
			sc->auth_malformed = true;
			iface->abort(sc->auth, smtp_auth_done, sc);
			return;
		}
		iface->step(sc->auth, buf, len, smtp_auth_done, sc);
		break;
	case SMTP_AUTH_ABORT:
		iface->abort(sc->auth, smtp_auth_done, sc);
		break;
	}
	smtp_auth_wipe(buf, len);
}
