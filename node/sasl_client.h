/*
 * sasl_client: the client side of libsasl2, the only file that calls its
 * client API. Used to prove the server side end to end without a
 * protocol: `mailctl user auth-test --mechanism M` and the unit and
 * Kerberos tests run a real SASL client against an auth session
 * in-process, exactly as a mail client's library would (with SASL-IR:
 * the initial response goes with the start when the mechanism has one).
 */
#ifndef CM_NODE_SASL_CLIENT_H
#define CM_NODE_SASL_CLIENT_H

#include "node/auth.h"

struct sasl_client_creds {
	const char *authcid;  /* authentication identity; GSSAPI: unused (the ticket) */
	const char *authzid;  /* NULL or "": none */
	const char *password; /* NULL for GSSAPI */
};

/* Runs a whole exchange of mech against s: service and hostname name the
 * server as the client sees it (GSSAPI asks for service/hostname's
 * ticket; DIGEST-MD5 puts it in digest-uri). Leaves the server's final
 * outcome in *out (valid until the next call on s) and returns 0; or
 * returns -1 with error_r when the client library gave up first (no
 * Kerberos ticket, a server signature that does not verify); the
 * exchange is then aborted and *out says so. Sessions should have tls set: this
 * drives mechanisms, not transport policy. */
int sasl_client_exchange(struct auth_session *s, const char *service, const char *hostname,
			 const char *mech, const struct sasl_client_creds *creds,
			 struct auth_outcome *out, const char **error_r);

#endif
