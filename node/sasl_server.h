/*
 * sasl_server: Cyrus SASL (libsasl2) on the server side, the only file
 * that calls the libsasl2 server API (CONVENTIONS 13). node/auth.c drives
 * it; it never touches the directory itself: user names, secrets and
 * password checks come back to auth.c through struct sasl_server_hooks.
 *
 * What libsasl2 is told (per session, through its getopt callback):
 *  - mech_list: the mechanisms auth.c allows;
 *  - auxprop_plugin "clustermail": an in-process auxiliary-property plugin
 *    (registered with sasl_auxprop_add_plugin) that answers
 *    "*userPassword" from hooks->secret, and only while a shared-secret
 *    mechanism (CRAM-MD5, DIGEST-MD5, SCRAM-*) runs. PLAIN and LOGIN go
 *    through the SASL_CB_SERVER_USERDB_CHECKPASS callback (hooks->checkpass,
 *    i.e. our crypt(3) hash), so a plaintext secret can never be compared
 *    against a typed password by libsasl2's own fallback verifier;
 *  - no sasldb, no saslauthd, no config file (appname NULL), DIGEST-MD5's
 *    shared reauthentication cache off, no security layers (max_ssf 0:
 *    the protocols use TLS, not SASL layers).
 * Authorization: an authorization identity different from the
 * authentication identity (after canonicalisation) is refused.
 *
 * Threads: sasl_server_process_init() runs once per process (pthread_once;
 * it installs pthread mutexes through sasl_set_mutex first, which the
 * DIGEST-MD5 and GSSAPI plugins use for their global state). A session
 * may then be used from any thread, by one thread at a time.
 */
#ifndef CM_NODE_SASL_SERVER_H
#define CM_NODE_SASL_SERVER_H

#include <stdbool.h>
#include <stddef.h>

/* Calls back into node/auth.c; ctx is the hooks_ctx of the session. */
struct sasl_server_hooks {
	/* The canonical identity for a name the client (or, for GSSAPI, the
	 * Kerberos ticket: authid = true) presented. 0 with out filled (a
	 * NUL-terminated string), -1 to refuse the name. */
	int (*canon)(void *ctx, const char *mech, const char *in, size_t inlen, bool authid,
		     char *out, size_t out_size);
	/* The recoverable secret of canonical user: 1 with *secret_r (valid
	 * until the session's next hook call), 0 when there is none, -1 on a
	 * temporary error. */
	int (*secret)(void *ctx, const char *user, const char **secret_r);
	/* A plaintext password check for PLAIN and LOGIN: 1 right, 0 wrong,
	 * -1 temporary error. user is as the client sent it. */
	int (*checkpass)(void *ctx, const char *user, const char *pass, size_t passlen);
	/* The authorization identity differed from the authentication one. */
	void (*authz_refused)(void *ctx, const char *authcid, const char *authzid);
};

struct sasl_server_config {
	const char *service;   /* "imap", "smtp", "pop": the GSSAPI service name */
	const char *hostname;  /* server name for GSSAPI principals and DIGEST-MD5's realm */
	const char *mech_list; /* space-separated mechanisms libsasl2 may use */
};

/* Once per process, before threads that use SASL start; later calls
 * return the first call's result. keytab: the Kerberos keytab for GSSAPI
 * ("" or NULL: the library's default, KRB5_KTNAME); fixed for the life of
 * the process. 0, or -1 with error_r. */
int sasl_server_process_init(const char *keytab, const char **error_r);
/* 1 when libsasl2 loaded a plugin for mech, 0 if not. */
int sasl_server_mech_loaded(const char *mech);

enum sasl_server_result {
	SASL_SERVER_CONTINUE,
	SASL_SERVER_OK,
	SASL_SERVER_FAIL,
};

enum sasl_server_failure {
	SASL_FAILURE_CREDENTIALS, /* wrong password, unknown user, bad token */
	SASL_FAILURE_MALFORMED,	  /* the client's data does not follow the mechanism */
	SASL_FAILURE_AUTHZ,	  /* authorization identity refused */
	SASL_FAILURE_TEMPORARY,	  /* out of memory, a backend unavailable */
	SASL_FAILURE_MECHANISM,	  /* unknown or unavailable mechanism */
	SASL_FAILURE_TOO_WEAK,	  /* refused by security properties */
};

struct sasl_server_session;

/* 0, or -1 with error_r (then *s_r is NULL). */
int sasl_server_session_new(const struct sasl_server_config *cfg,
			    const struct sasl_server_hooks *hooks, void *hooks_ctx,
			    struct sasl_server_session **s_r, const char **error_r);
void sasl_server_session_free(struct sasl_server_session **s);

/* One exchange per session at a time; start may be called again after an
 * exchange ends (OK or FAIL) to begin a new one. has_in: the client sent
 * an initial response (possibly empty). out and outlen: the challenge for
 * CONTINUE, valid until the next call on the session. On FAIL, *why_r and
 * *detail_r (libsasl2's explanation, for logs) are set. */
enum sasl_server_result sasl_server_session_start(struct sasl_server_session *s, const char *mech,
						  const void *in, size_t len, bool has_in,
						  const unsigned char **out, size_t *outlen,
						  enum sasl_server_failure *why_r,
						  const char **detail_r);
enum sasl_server_result sasl_server_session_step(struct sasl_server_session *s, const void *in,
						 size_t len, const unsigned char **out,
						 size_t *outlen, enum sasl_server_failure *why_r,
						 const char **detail_r);
/* After OK: the authenticated (and authorized: they are equal) identity,
 * canonical; NULL otherwise. */
const char *sasl_server_session_user(struct sasl_server_session *s);

#endif
