/*
 * sasl_client: a libsasl2 client driving an auth session (see
 * node/sasl_client.h). Synchronous: it blocks as long as the server side
 * does, so it runs on the control thread or in tests, never on a loop.
 */
#include "node/sasl_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>

#define SASL_CB(fn) ((int (*)(void))(void (*)(void))(fn))

struct client_ctx {
	const struct sasl_client_creds *creds;
	sasl_secret_t *secret;
};

static pthread_once_t client_once = PTHREAD_ONCE_INIT;
static int client_init_rc;

static void client_init(void)
{
	client_init_rc = sasl_client_init(NULL);
}

static int client_simple(void *ctx, int id, const char **result, unsigned *len)
{
	struct client_ctx *c = ctx;
	const char *v = NULL;
	if (id == SASL_CB_AUTHNAME)
		v = c->creds->authcid;
	else if (id == SASL_CB_USER)
		v = c->creds->authzid;
	else
		return SASL_BADPARAM;
	*result = v != NULL ? v : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int client_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
	struct client_ctx *c = ctx;
	(void)conn, (void)id;
	if (c->creds->password == NULL)
		return SASL_FAIL;
	if (c->secret == NULL) {
		size_t len = strlen(c->creds->password);
		c->secret = calloc(1, sizeof(sasl_secret_t) + len + 1);
		if (c->secret == NULL)
			return SASL_NOMEM;
		c->secret->len = len;
		memcpy(c->secret->data, c->creds->password, len);
	}
	*psecret = c->secret;
	return SASL_OK;
}

/* DIGEST-MD5: take the realm the server offers. */
static int client_realm(void *ctx, int id, const char **availrealms, const char **result)
{
	(void)ctx, (void)id;
	*result = availrealms != NULL && availrealms[0] != NULL ? availrealms[0] : "";
	return SASL_OK;
}

int sasl_client_exchange(struct auth_session *s, const char *service, const char *hostname,
			 const char *mech, const struct sasl_client_creds *creds,
			 struct auth_outcome *out, const char **error_r)
{
	static _Thread_local char err[256];
	struct client_ctx c = {.creds = creds};
	sasl_callback_t cbs[] = {
	    {SASL_CB_AUTHNAME, SASL_CB(client_simple), &c},
	    {SASL_CB_USER, SASL_CB(client_simple), &c},
	    {SASL_CB_PASS, SASL_CB(client_pass), &c},
	    {SASL_CB_GETREALM, SASL_CB(client_realm), &c},
	    {SASL_CB_LIST_END, NULL, NULL},
	};
	sasl_security_properties_t props = {.min_ssf = 0, .max_ssf = 0};
	sasl_conn_t *conn = NULL;
	const char *cout = NULL, *chosen = NULL;
	unsigned coutlen = 0;
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	out->status = AUTH_FAIL;
	pthread_once(&client_once, client_init);
	rc = client_init_rc;
	if (rc == SASL_OK)
		rc = sasl_client_new(service, hostname, NULL, NULL, cbs, 0, &conn);
	if (rc == SASL_OK)
		rc = sasl_setprop(conn, SASL_SEC_PROPS, &props);
	if (rc == SASL_OK)
		rc = sasl_client_start(conn, mech, NULL, &cout, &coutlen, &chosen);
	if (rc != SASL_OK && rc != SASL_CONTINUE) {
		snprintf(err, sizeof(err), "SASL client cannot start %s: %s", mech,
			 conn != NULL ? sasl_errdetail(conn) : sasl_errstring(rc, NULL, NULL));
		*error_r = err;
		goto out;
	}
	/* SASL-IR: a client-first mechanism's first message goes with the start. */
	auth_start(s, mech, cout, coutlen, cout != NULL, out);
	while (out->status == AUTH_CONTINUE) {
		rc = sasl_client_step(conn, (const char *)out->challenge,
				      (unsigned)out->challenge_len, NULL, &cout, &coutlen);
		if (rc != SASL_OK && rc != SASL_CONTINUE) {
			snprintf(err, sizeof(err), "SASL client gave up on %s: %s", mech,
				 sasl_errdetail(conn));
			*error_r = err;
			auth_abort(s, out);
			goto out;
		}
		auth_step(s, cout != NULL ? cout : "", cout != NULL ? coutlen : 0, out);
	}
	ret = 0;
out:
	if (conn != NULL)
		sasl_dispose(&conn);
	if (c.secret != NULL) {
		explicit_bzero(c.secret->data, c.secret->len);
		free(c.secret);
	}
	return ret;
}
