/*
 * pop3_auth: the POP3 engine's authentication requests (USER/PASS, APOP,
 * AUTH with its challenges and "*") carried out through node/auth.h's
 * asynchronous auth_iface, and the outcomes mapped to the engine's
 * answers as auth.h's table says: CREDENTIALS, DISABLED, AUTHZ,
 * TOO_WEAK, ABORTED and MALFORMED become -ERR [AUTH] (the engine has one
 * failure reply), TEMPORARY -ERR [SYS/TEMP], MECHANISM "unsupported".
 *
 * The auth handle is made at the first request, not at accept, so an
 * idle or unauthenticated connection costs no SASL state. SASL data is
 * base64 on the wire and raw bytes for the auth layer: responses are
 * decoded here (strictly, lib/base64.h; undecodable data ends the
 * exchange like a failure, RFC 5034 section 4) and wiped after use;
 * challenges are encoded here. The auth layer logs every attempt
 * ("[auth] login ..." / "[auth] login failed ... reason=..."), so this
 * file logs only its own failures.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "node/log.h"
#include "node/pop3_service_private.h"

static void auth_done(const struct auth_outcome *out, void *arg)
{
	struct pop3_conn *pc = arg;
	enum pop3_auth_status st = POP3_AUTH_FAILED;
	const char *user = NULL;
	char *challenge = NULL;

	if (pc->closing)
		return;
	switch (out->status) {
	case AUTH_OK:
		st = POP3_AUTH_OK;
		user = out->user;
		conn_set_user(pc->c, user);
		break;
	case AUTH_CONTINUE: {
		size_t size = BASE64_ENCODED_LEN(out->challenge_len) + 1;
		challenge = malloc(size);
		if (challenge != NULL &&
		    base64_encode(out->challenge, out->challenge_len, challenge, size) >= 0) {
			st = POP3_AUTH_CONTINUE;
		} else {
			log_error("pop3", "out of memory user=%s peer=%s conn=%llu",
				  pop3_service_user(pc), pop3_service_peer(pc),
				  pop3_service_id(pc));
			st = POP3_AUTH_TEMPFAIL;
		}
		break;
	}
	case AUTH_FAIL:
	default:
		if (out->reason == AUTH_REASON_TEMPORARY)
			st = POP3_AUTH_TEMPFAIL;
		else if (out->reason == AUTH_REASON_MECHANISM)
			st = POP3_AUTH_UNSUPPORTED;
		else
			st = POP3_AUTH_FAILED;
		break;
	}
	pc->want = pop3_session_auth_result(pc->s, st, user, challenge);
	free(challenge);
	pop3_service_pump(pc);
}

/* Decodes a base64 SASL response into a fresh buffer (*out_r, NULL when
 * empty). 0, or -1 when it is not valid base64 or memory is short. */
static int auth_decode(const char *text, unsigned char **out_r, size_t *len_r)
{
	size_t tlen = strlen(text);
	const char *error;

	*out_r = NULL;
	*len_r = 0;
	if (tlen == 0)
		return 0;
	size_t size = BASE64_DECODED_MAX(tlen) + 1;
	unsigned char *buf = malloc(size);
	if (buf == NULL)
		return -1;
	if (base64_decode(text, tlen, buf, size, len_r, &error) < 0) {
		free(buf);
		return -1;
	}
	*out_r = buf;
	return 0;
}

void pop3_auth_begin(void *ctx, const struct pop3_auth_request *req)
{
	struct pop3_conn *pc = ctx;
	const struct auth_iface *a = pc->env->auth;

	if (pc->auth == NULL) {
		const struct conn_info *info = conn_info(pc->c);
		struct auth_session_params p = {
		    .service = "pop",
		    .peer = info->peer,
		    .conn_id = info->id,
		    .tls = conn_is_tls(pc->c),
		    .plaintext_allowed = conn_plaintext_auth_allowed(pc->c),
		};
		pc->auth = a->handle_new(pc->env->auth_ctx, conn_base(pc->c), &p);
		if (pc->auth == NULL) {
			log_error("pop3", "out of memory starting authentication peer=%s conn=%llu",
				  pop3_service_peer(pc), pop3_service_id(pc));
			pc->local = POP3_LOCAL_AUTH_TEMPFAIL;
			return;
		}
	}
	switch (req->kind) {
	case POP3_AUTH_PASS:
		a->password(pc->auth, req->user, req->secret, auth_done, pc);
		return;
	case POP3_AUTH_APOP:
		a->apop(pc->auth, req->user, req->timestamp, req->secret, auth_done, pc);
		return;
	case POP3_AUTH_SASL_ABORT:
		a->abort(pc->auth, auth_done, pc);
		return;
	case POP3_AUTH_SASL_START:
	case POP3_AUTH_SASL_STEP:
		break;
	}
	unsigned char *data = NULL;
	size_t len = 0;
	if (req->response != NULL && auth_decode(req->response, &data, &len) < 0) {
		/* not base64: the exchange ends like a failed one (RFC 5034 §4) */
		if (req->kind == POP3_AUTH_SASL_STEP) {
			a->abort(pc->auth, auth_done, pc);
		} else {
			log_info(
			    "pop3",
			    "AUTH %s refused: initial response is not base64 peer=%s conn=%llu",
			    req->mechanism, pop3_service_peer(pc), pop3_service_id(pc));
			pc->local = POP3_LOCAL_AUTH_FAILED;
		}
		return;
	}
	/* an empty response ("=" or an empty line) is zero bytes, not NULL */
	const void *bytes = data != NULL ? (const void *)data : "";
	if (req->kind == POP3_AUTH_SASL_START)
		a->start(pc->auth, req->mechanism, bytes, len, req->response != NULL, auth_done,
			 pc);
	else
		a->step(pc->auth, bytes, len, auth_done, pc);
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
}
