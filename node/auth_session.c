/*
 * auth_session: one connection's authentication (see node/auth.h): the
 * SASL exchanges (through node/sasl_server.c, whose hooks are here), the
 * plaintext password and APOP checks, and the final checks every success
 * passes (the user exists and is enabled).
 *
 * Every path that verifies something spends the same work whether the
 * user exists or not (a password hash against a dummy hash of the site's
 * cost, an MD5 against a dummy secret), and reports an unknown user, a
 * wrong password and a missing secret alike to the client
 * (AUTH_REASON_CREDENTIALS); only the log's detail tells them apart.
 */
#include "node/auth_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/cidr.h"
#include "lib/password.h"
#include "node/log.h"

/* ---- directory lookups (one cached per attempt) ---- */

static void cache_clear(struct auth_session *s)
{
	explicit_bzero(&s->cached, sizeof(s->cached));
	s->cached_name[0] = '\0';
	s->cached_ret = 0;
}

/* 1 found (s->cached), 0 no such user, -1 directory error. */
static int session_lookup(struct auth_session *s, const char *name)
{
	const char *error = NULL;

	if (s->cached_name[0] != '\0' && strcmp(s->cached_name, name) == 0)
		return s->cached_ret;
	cache_clear(s);
	int ret = directory_user_get(s->auth->dir, name, &s->cached, &error);
	if (ret == DIRECTORY_OK)
		s->cached_ret = 1;
	else if (ret == DIRECTORY_E_NOTFOUND || ret == DIRECTORY_E_INVALID ||
		 ret == DIRECTORY_E_NODOMAIN)
		s->cached_ret = 0;
	else {
		log_warning("auth", "directory lookup failed: %s",
			    error ? error : directory_strerror(ret));
		s->cached_ret = -1;
	}
	snprintf(s->cached_name, sizeof(s->cached_name), "%s", name);
	return s->cached_ret;
}

void auth_session_forget(struct auth_session *s)
{
	cache_clear(s);
	sasl_server_session_free(&s->sasl);
}

static void hook_fail(struct auth_session *s, enum auth_reason reason, const char *detail)
{
	/* The first explanation wins: libsasl2 may call hooks again while
	 * unwinding (its fallback password check). */
	if (s->hook_reason == AUTH_REASON_NONE) {
		s->hook_reason = reason;
		s->hook_detail = detail;
	}
}

/* Starts a new attempt: forgets what the last one learned. */
static void attempt_reset(struct auth_session *s, int mech)
{
	s->mech = mech;
	s->active = false;
	s->steps = 0;
	s->claimed[0] = '\0';
	s->user[0] = '\0';
	s->hook_reason = AUTH_REASON_NONE;
	s->hook_detail = NULL;
	s->dummy_detail = NULL;
	textbuf_truncate(&s->challenge, 0);
	cache_clear(s);
}

/* The credentials were proven for name: the last checks, then OK. */
static void finish_verified(struct auth_session *s, int mech, const char *name,
			    struct auth_outcome *out)
{
	int ret = session_lookup(s, name);
	if (ret < 0)
		auth_finish_fail(s, mech, AUTH_REASON_TEMPORARY, "directory error", out);
	else if (ret == 0)
		auth_finish_fail(s, mech, AUTH_REASON_CREDENTIALS, "unknown user", out);
	else if (!s->cached.enabled)
		auth_finish_fail(s, mech, AUTH_REASON_DISABLED, "account disabled", out);
	else
		auth_finish_ok(s, mech, s->cached.address, out);
	/* Ending the attempt forgot the cached record (auth_session_forget). */
}

/* 1 right, 0 wrong (reason recorded), -1 directory error. pw is a
 * NUL-terminated copy. The same hash work happens in every case. */
static int verify_password(struct auth_session *s, const char *name, const char *pw)
{
	int ret = name != NULL ? session_lookup(s, name) : 0;

	if (ret <= 0 || s->cached.password_hash[0] == '\0') {
		char dummy[256];
		auth_dummy_hash(s->auth, dummy);
		(void)password_verify(pw, dummy);
		if (ret < 0)
			hook_fail(s, AUTH_REASON_TEMPORARY, "directory error");
		else
			hook_fail(s, AUTH_REASON_CREDENTIALS,
				  name == NULL ? "user name is not an address"
				  : ret == 0   ? "unknown user"
					       : "no password set");
		return ret < 0 ? -1 : 0;
	}
	if (password_verify(pw, s->cached.password_hash) != 1) {
		hook_fail(s, AUTH_REASON_CREDENTIALS, "wrong password");
		return 0;
	}
	return 1;
}

/* ---- hooks for sasl_server.c ---- */

/* A Kerberos principal local[@REALM] -> local@domain of the realm. */
static int canon_principal(struct auth_session *s, const char *in, size_t inlen, char *out,
			   size_t size)
{
	char principal[DIRECTORY_ADDRESS_MAX + DIRECTORY_REALM_MAX], domain[DIRECTORY_DOMAIN_MAX];
	char address[DIRECTORY_ADDRESS_MAX + DIRECTORY_DOMAIN_MAX];
	const char *realm;

	if (inlen >= sizeof(principal) || memchr(in, '\0', inlen) != NULL) {
		hook_fail(s, AUTH_REASON_CREDENTIALS, "Kerberos principal too long");
		return -1;
	}
	memcpy(principal, in, inlen);
	principal[inlen] = '\0';
	char *at = strrchr(principal, '@');
	if (at != NULL) {
		*at = '\0';
		realm = at + 1;
	} else {
		realm = s->auth->default_realm;
	}
	if (realm[0] == '\0') {
		hook_fail(s, AUTH_REASON_CREDENTIALS,
			  "principal without a realm and no auth.kerberos_default_realm");
		return -1;
	}
	int ret = directory_domain_by_realm(s->auth->dir, realm, domain, NULL);
	if (ret < 0) {
		bool temp = ret != DIRECTORY_E_NOTFOUND && ret != DIRECTORY_E_INVALID;
		hook_fail(s, temp ? AUTH_REASON_TEMPORARY : AUTH_REASON_CREDENTIALS,
			  temp ? "directory error" : "no domain maps the principal's realm");
		return -1;
	}
	int n = snprintf(address, sizeof(address), "%s@%s", principal, domain);
	if (n < 0 || auth_canon_address(address, (size_t)n, out, size) < 0) {
		hook_fail(s, AUTH_REASON_CREDENTIALS, "principal does not map to an address");
		return -1;
	}
	snprintf(s->claimed, sizeof(s->claimed), "%s", out);
	return 0;
}

static int hook_canon(void *ctx, const char *mech, const char *in, size_t inlen, bool authid,
		      char *out, size_t out_size)
{
	struct auth_session *s = ctx;

	if (authid)
		auth_claim(s, in, inlen);
	if (authid && strcasecmp(mech, "GSSAPI") == 0)
		return canon_principal(s, in, inlen, out, out_size);
	if (auth_canon_address(in, inlen, out, out_size) < 0) {
		hook_fail(s, AUTH_REASON_CREDENTIALS, "user name is not an address");
		return -1;
	}
	return 0;
}

static int hook_secret(void *ctx, const char *user, const char **secret_r)
{
	struct auth_session *s = ctx;
	int ret = session_lookup(s, user);

	if (ret < 0) {
		hook_fail(s, AUTH_REASON_TEMPORARY, "directory error");
		return -1;
	}
	if (ret == 0 || s->cached.secret[0] == '\0') {
		hook_fail(s, AUTH_REASON_CREDENTIALS,
			  ret == 0 ? "unknown user"
				   : "no stored secret (set the password again, shared-secret-auth on)");
		*secret_r = s->auth->dummy_secret; /* the exchange goes on, and fails */
		s->dummy_detail = s->hook_detail;
		return 1;
	}
	*secret_r = s->cached.secret;
	return 1;
}

static int hook_checkpass(void *ctx, const char *user, const char *pass, size_t passlen)
{
	struct auth_session *s = ctx;
	char name[DIRECTORY_ADDRESS_MAX], pw[AUTH_PASSWORD_MAX];
	bool named = auth_canon_address(user, strlen(user), name, sizeof(name)) == 0;

	if (passlen >= sizeof(pw) || memchr(pass, '\0', passlen) != NULL)
		passlen = 0; /* verified against nothing: fails below */
	memcpy(pw, pass, passlen);
	pw[passlen] = '\0';
	int ret = verify_password(s, named ? name : NULL, pw);
	explicit_bzero(pw, sizeof(pw));
	return ret;
}

static void hook_authz_refused(void *ctx, const char *authcid, const char *authzid)
{
	(void)authcid, (void)authzid;
	hook_fail(ctx, AUTH_REASON_AUTHZ, "authorization identity differs");
}

static const struct sasl_server_hooks session_hooks = {
    .canon = hook_canon,
    .secret = hook_secret,
    .checkpass = hook_checkpass,
    .authz_refused = hook_authz_refused,
};

/* ---- sessions ---- */

/* The throttle key of a peer: the client its address stands for
 * (cidr_client), or the peer text itself when it is no address. */
static void peer_key(const char *peer, char *out, size_t size)
{
	struct cidr addr, client;
	if (cidr_peer_parse(peer, &addr) < 0) {
		snprintf(out, size, "%s", peer);
		return;
	}
	cidr_client(&addr, &client);
	cidr_format(&client, out, size);
}

struct auth_session *auth_session_new(struct auth *auth, const struct auth_session_params *p)
{
	struct auth_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->auth = auth;
	snprintf(s->service, sizeof(s->service), "%s", p->service ? p->service : "-");
	snprintf(s->peer, sizeof(s->peer), "%s", p->peer ? p->peer : "-");
	peer_key(s->peer, s->peer_key, sizeof(s->peer_key));
	s->conn_id = p->conn_id;
	s->tls = p->tls;
	s->plaintext_allowed = p->plaintext_allowed;
	s->mech = -1;
	return s;
}

void auth_session_set_tls(struct auth_session *s, bool tls)
{
	s->tls = tls;
}

void auth_session_free(struct auth_session **s)
{
	if (*s == NULL)
		return;
	sasl_server_session_free(&(*s)->sasl);
	cache_clear(*s);
	textbuf_free(&(*s)->challenge);
	free(*s);
	*s = NULL;
}

/* ---- SASL ---- */

static int mech_lookup(const char *name)
{
	for (int m = 0; name != NULL && m < AUTH_MECH_COUNT; m++)
		if (auth_mechs[m].sasl && strcasecmp(name, auth_mechs[m].name) == 0)
			return m;
	return -1;
}

static void sasl_outcome(struct auth_session *s, enum sasl_server_result r,
			 const unsigned char *data, size_t len, enum sasl_server_failure why,
			 const char *detail, struct auth_outcome *out)
{
	static const enum auth_reason map[] = {
	    [SASL_FAILURE_CREDENTIALS] = AUTH_REASON_CREDENTIALS,
	    [SASL_FAILURE_MALFORMED] = AUTH_REASON_MALFORMED,
	    [SASL_FAILURE_AUTHZ] = AUTH_REASON_AUTHZ,
	    [SASL_FAILURE_TEMPORARY] = AUTH_REASON_TEMPORARY,
	    [SASL_FAILURE_MECHANISM] = AUTH_REASON_MECHANISM,
	    [SASL_FAILURE_TOO_WEAK] = AUTH_REASON_TOO_WEAK,
	};

	if (r == SASL_SERVER_CONTINUE) {
		textbuf_truncate(&s->challenge, 0);
		textbuf_append(&s->challenge, data, len);
		*out = (struct auth_outcome){
		    .status = AUTH_CONTINUE,
		    .challenge = (const unsigned char *)textbuf_str(&s->challenge),
		    .challenge_len = s->challenge.len,
		    .mechanism = auth_mechs[s->mech].name,
		};
		return;
	}
	if (r == SASL_SERVER_OK) {
		char user[DIRECTORY_ADDRESS_MAX];
		snprintf(user, sizeof(user), "%s", sasl_server_session_user(s->sasl));
		finish_verified(s, s->mech, user, out);
		return;
	}
	if (s->hook_reason != AUTH_REASON_NONE) {
		auth_finish_fail(s, s->mech, s->hook_reason, s->hook_detail, out);
	} else if (s->dummy_detail != NULL) { /* an earlier step's lookup said why */
		auth_finish_fail(s, s->mech, AUTH_REASON_CREDENTIALS, s->dummy_detail, out);
	} else {
		/* libsasl2's text lives in its session, which the end of the
		 * attempt frees. */
		snprintf(s->detail, sizeof(s->detail), "%s", detail != NULL ? detail : "");
		auth_finish_fail(s, s->mech, map[why], s->detail, out);
	}
}

void auth_start(struct auth_session *s, const char *mech, const void *ir, size_t ir_len,
		bool has_ir, struct auth_outcome *out)
{
	struct auth *auth = s->auth;
	int m = mech_lookup(mech);
	char list[256];
	const char *error = NULL, *detail = NULL;
	const unsigned char *data;
	size_t len;
	enum sasl_server_failure why = SASL_FAILURE_CREDENTIALS;

	attempt_reset(s, m);
	if (m < 0 || !auth_mech_offered(auth, (enum auth_mech)m)) {
		auth_finish_fail(s, m, AUTH_REASON_MECHANISM, "mechanism not offered", out);
		return;
	}
	if (auth_mechs[m].plaintext && !s->tls && !s->plaintext_allowed) {
		auth_finish_fail(s, m, AUTH_REASON_TOO_WEAK, "plaintext mechanism without TLS",
				 out);
		return;
	}
	if (has_ir && ir_len > AUTH_RESPONSE_MAX) {
		auth_finish_fail(s, m, AUTH_REASON_MALFORMED, "initial response too long", out);
		return;
	}
	/* A fresh libsasl2 session per exchange picks up a reloaded list. */
	sasl_server_session_free(&s->sasl);
	auth_sasl_list(auth, list, sizeof(list));
	struct sasl_server_config cfg = {
	    .service = s->service, .hostname = auth->hostname, .mech_list = list};
	if (sasl_server_session_new(&cfg, &session_hooks, s, &s->sasl, &error) < 0) {
		auth_finish_fail(s, m, AUTH_REASON_TEMPORARY, error, out);
		return;
	}
	s->active = true;
	s->steps = 1;
	enum sasl_server_result r = sasl_server_session_start(
	    s->sasl, auth_mechs[m].name, ir, ir_len, has_ir, &data, &len, &why, &detail);
	sasl_outcome(s, r, data, len, why, detail, out);
}

void auth_step(struct auth_session *s, const void *resp, size_t len, struct auth_outcome *out)
{
	const char *detail = NULL;
	const unsigned char *data;
	size_t dlen;
	enum sasl_server_failure why = SASL_FAILURE_CREDENTIALS;

	if (!s->active || s->sasl == NULL) {
		attempt_reset(s, -1);
		auth_finish_fail(s, -1, AUTH_REASON_MALFORMED, "no exchange in progress", out);
		return;
	}
	s->hook_reason = AUTH_REASON_NONE;
	s->hook_detail = NULL;
	if (++s->steps > AUTH_STEPS_MAX || len > AUTH_RESPONSE_MAX) {
		auth_finish_fail(s, s->mech, AUTH_REASON_MALFORMED,
				 len > AUTH_RESPONSE_MAX ? "response too long" : "too many steps",
				 out);
		return;
	}
	enum sasl_server_result r =
	    sasl_server_session_step(s->sasl, resp, len, &data, &dlen, &why, &detail);
	sasl_outcome(s, r, data, dlen, why, detail, out);
}

void auth_abort(struct auth_session *s, struct auth_outcome *out)
{
	int mech = s->active ? s->mech : -1;
	auth_finish_fail(s, mech, AUTH_REASON_ABORTED, "client cancelled", out);
}

/* ---- passwords and APOP ---- */

void auth_password(struct auth_session *s, const char *user, const char *password,
		   struct auth_outcome *out)
{
	char name[DIRECTORY_ADDRESS_MAX];
	const int m = AUTH_MECH_PASSWORD;

	attempt_reset(s, m);
	if (user == NULL || password == NULL) {
		auth_finish_fail(s, m, AUTH_REASON_MALFORMED, "missing user or password", out);
		return;
	}
	auth_claim(s, user, strlen(user));
	if (!s->tls && !s->plaintext_allowed) {
		auth_finish_fail(s, m, AUTH_REASON_TOO_WEAK, "password without TLS", out);
		return;
	}
	bool named = auth_canon_address(user, strlen(user), name, sizeof(name)) == 0;
	int ret = strlen(password) < AUTH_PASSWORD_MAX
		      ? verify_password(s, named ? name : NULL, password)
		      : verify_password(s, NULL, "");
	if (ret <= 0)
		auth_finish_fail(s, m, s->hook_reason, s->hook_detail, out);
	else
		finish_verified(s, m, name, out);
}

void auth_apop(struct auth_session *s, const char *user, const char *timestamp, const char *digest,
	       struct auth_outcome *out)
{
	char name[DIRECTORY_ADDRESS_MAX], want[33], got[33];
	const int m = AUTH_MECH_APOP;
	size_t i;

	attempt_reset(s, m);
	if (user == NULL || timestamp == NULL || digest == NULL) {
		auth_finish_fail(s, m, AUTH_REASON_MALFORMED, "missing APOP argument", out);
		return;
	}
	auth_claim(s, user, strlen(user));
	if (!auth_shared_any(s->auth)) {
		auth_finish_fail(s, m, AUTH_REASON_MECHANISM, "APOP not offered", out);
		return;
	}
	for (i = 0; i < 32 && isxdigit((unsigned char)digest[i]); i++)
		got[i] = (char)tolower((unsigned char)digest[i]);
	got[i] = '\0';
	if (i != 32 || digest[32] != '\0' || timestamp[0] != '<' ||
	    strlen(timestamp) >= AUTH_APOP_TIMESTAMP_MAX) {
		auth_finish_fail(s, m, AUTH_REASON_MALFORMED, "malformed APOP digest or timestamp",
				 out);
		return;
	}
	bool named = auth_canon_address(user, strlen(user), name, sizeof(name)) == 0;
	int ret = named ? session_lookup(s, name) : 0;
	bool usable = ret > 0 && s->cached.secret[0] != '\0';
	/* The same digest work whether or not there is a secret to check. */
	if (auth_apop_digest(timestamp, usable ? s->cached.secret : "\x01 no secret", want) < 0) {
		auth_finish_fail(s, m, AUTH_REASON_TEMPORARY, "MD5 unavailable", out);
		return;
	}
	bool match = auth_equal_ct(want, got, 32);
	explicit_bzero(want, sizeof(want));
	if (ret < 0)
		auth_finish_fail(s, m, AUTH_REASON_TEMPORARY, "directory error", out);
	else if (!usable)
		auth_finish_fail(s, m, AUTH_REASON_CREDENTIALS,
				 !named	    ? "user name is not an address"
				 : ret == 0 ? "unknown user"
					    : "no stored secret",
				 out);
	else if (!match)
		auth_finish_fail(s, m, AUTH_REASON_CREDENTIALS, "wrong digest", out);
	else
		finish_verified(s, m, name, out);
}
