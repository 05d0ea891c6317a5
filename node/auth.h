/*
 * auth: the one authentication layer of every protocol (SMTP AUTH, IMAP
 * AUTHENTICATE and LOGIN, POP3 AUTH, USER/PASS and APOP, later HTTP).
 * Protocol-neutral: engines say "run this SASL exchange" or "check this
 * password" and get an outcome; they base64-decode client data and encode
 * challenges themselves (lib/base64.h) and map outcomes to their replies.
 *
 * Three layers:
 *  - this file, synchronous: auth_start/step/abort/password/apop. They
 *    block for a password hash (~3 ms at yescrypt cost 2), a PBKDF2 (SCRAM)
 *    or a directory read, so they must not run on an event-loop thread;
 *  - node/auth_pool.h: the same calls run on a small thread pool, with the
 *    outcome delivered back on the connection's event loop after the
 *    failure delay (never a sleep on a loop thread);
 *  - struct auth_iface (below): the narrow asynchronous interface the
 *    protocol wiring uses, filled by auth_pool.c, or by auth_fake.c in
 *    tests (CONVENTIONS 6).
 *
 * Identities: every authenticated identity is a normalised directory
 * address (local@domain, lowercase). SASL authentication identities are
 * addresses too (e.g. PLAIN's authcid "Alice@Example.org" becomes
 * "alice@example.org"); an authorization identity other than the
 * authentication identity is refused. Kerberos principals (GSSAPI) map
 * through the domain's kerberos-realm setting: local@REALM ->
 * local@domain; a principal GSSAPI reports without a realm (the default
 * realm of krb5.conf) uses auth.kerberos_default_realm.
 *
 * Security stance: plaintext mechanisms (PLAIN, LOGIN, passwords) are
 * refused without TLS unless the protocol allows plaintext; shared-secret
 * mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM-*, APOP) work only for users of
 * domains with shared-secret-auth on, and fail like bad credentials for
 * others; "disabled" is only ever reported after the credentials were
 * proven right; unknown users cost the same password hash as known ones.
 * Failures earn a progressive delay per client address and per account
 * (node/auth_throttle.h), returned in the outcome for the caller to wait
 * before replying; there is no lockout. Each attempt is logged once:
 *   [auth] login user=U peer=P mech=M service=S conn=N
 *   [auth] login failed user=U peer=P mech=M reason=R delay_ms=D detail="..." service=S conn=N
 * with the user name as the client sent it, escaped and cut at 64 bytes.
 * Secrets are never logged, and are wiped from memory after use.
 *
 * Thread safety: one struct auth serves every thread; a session is used by
 * one thread at a time (the pool hands it from thread to thread).
 */
#ifndef CM_NODE_AUTH_H
#define CM_NODE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/password.h"
#include "lib/textbuf.h"

struct directory;

/* Largest client response the layer accepts (decoded bytes): GSSAPI
 * tickets with a Windows PAC reach ~12 KiB; SCRAM and the others are far
 * smaller. Engines bound their line length before decoding as well. */
#define AUTH_RESPONSE_MAX 65536
/* Challenges/responses in one exchange before it is cut off. */
#define AUTH_STEPS_MAX 10
/* "<pid.clock.random@host>" fits. */
#define AUTH_APOP_TIMESTAMP_MAX 320

enum auth_status {
	AUTH_CONTINUE, /* send outcome.challenge, feed the answer to auth_step */
	AUTH_OK,       /* outcome.user is authenticated */
	AUTH_FAIL,     /* outcome.reason says why; wait outcome.delay_ms first */
};

/* Failure classes, each with its natural reply:
 *                     SMTP            IMAP                       POP3
 *  CREDENTIALS        535 5.7.8       NO [AUTHENTICATIONFAILED]  -ERR [AUTH]
 *  DISABLED           535 5.7.8 (*)   NO [AUTHENTICATIONFAILED]  -ERR [AUTH]
 *  AUTHZ              535 5.7.8       NO [AUTHORIZATIONFAILED]   -ERR [AUTH]
 *  TEMPORARY          454 4.7.0       NO [UNAVAILABLE]           -ERR [SYS/TEMP]
 *  MECHANISM          504 5.5.4       NO                         -ERR
 *  TOO_WEAK           538 5.7.11      NO [PRIVACYREQUIRED]       -ERR [AUTH]
 *  ABORTED            501 5.0.0       BAD                        -ERR
 *  MALFORMED          501 5.5.2       BAD                        -ERR
 * (*) a protocol may say "account disabled" here: the client has proven
 * the credentials, so it learns nothing it could not already know. */
enum auth_reason {
	AUTH_REASON_NONE = 0,
	AUTH_REASON_CREDENTIALS, /* wrong password, unknown user, no stored secret, bad ticket */
	AUTH_REASON_DISABLED,	 /* right credentials, account disabled */
	AUTH_REASON_AUTHZ,	 /* authorization identity refused */
	AUTH_REASON_TEMPORARY,	 /* directory unreadable, out of memory: try later */
	AUTH_REASON_MECHANISM,	 /* mechanism unknown or not offered */
	AUTH_REASON_TOO_WEAK,	 /* plaintext mechanism without TLS */
	AUTH_REASON_ABORTED,	 /* the client cancelled ("*") */
	AUTH_REASON_MALFORMED,	 /* client data does not follow the mechanism */
	AUTH_REASON_COUNT
};

/* The mechanisms, for counters and lists. PASSWORD is IMAP LOGIN and
 * POP3 USER/PASS (auth_password). */
enum auth_mech {
	AUTH_MECH_PLAIN,
	AUTH_MECH_LOGIN,
	AUTH_MECH_CRAM_MD5,
	AUTH_MECH_DIGEST_MD5,
	AUTH_MECH_SCRAM_SHA_1,
	AUTH_MECH_SCRAM_SHA_256,
	AUTH_MECH_GSSAPI,
	AUTH_MECH_APOP,
	AUTH_MECH_PASSWORD,
	AUTH_MECH_COUNT
};

struct auth_outcome {
	enum auth_status status;
	enum auth_reason reason;	/* AUTH_FAIL */
	const char *detail;		/* AUTH_FAIL: for logs only, never for clients */
	const unsigned char *challenge; /* AUTH_CONTINUE: raw bytes, maybe none */
	size_t challenge_len;
	const char *user;      /* AUTH_OK: normalised address */
	const char *mechanism; /* "PLAIN", ..., "APOP", "PASSWORD"; "" if unknown */
	unsigned delay_ms;     /* AUTH_FAIL: wait this long before replying */
};
/* Pointers in an outcome stay valid until the next call on the session,
 * or its free. */

struct auth_settings {
	unsigned failure_delay_initial_ms; /* 500 */
	unsigned failure_delay_max_ms;	   /* 15000 */
	unsigned failure_forget_sec;	   /* 60: one failure forgotten per quiet minute */
	unsigned failure_table_size;	   /* 65536 entries per table (addresses, accounts) */
	char mechanisms[256];		   /* SASL mechanisms offered, space-separated */
	char hostname[256];	    /* GSSAPI service host, DIGEST-MD5 realm; "" = gethostname() */
	char kerberos_keytab[1024]; /* "" = GSSAPI not offered */
	char kerberos_default_realm[256]; /* realm of principals GSSAPI reports without one */
	/* The site's password hashing (password.scheme/cost): unknown users
	 * are checked against a hash of the same cost. */
	enum password_scheme password_scheme;
	unsigned long password_cost;
	/* Tests: a clock in milliseconds (NULL = CLOCK_MONOTONIC). */
	uint64_t (*now_ms)(void);
};

/* The defaults above. */
void auth_settings_default(struct auth_settings *set);
/* Checks a mechanisms list (names known to this build, any case): 0, or
 * -1 with *bad_r pointing at a static copy of the first unknown name. */
int auth_mechanism_list_check(const char *list, const char **bad_r);

struct auth;

/* Once per process for SASL (the first call's keytab stays). dir must
 * outlive the auth. 0, or -1 with error_r. */
int auth_create(const struct auth_settings *set, struct directory *dir, struct auth **auth_r,
		const char **error_r);
void auth_destroy(struct auth **auth);
/* SIGHUP: delays and the mechanism list change at once; a new password
 * scheme or cost is hashed for unknown users on a thread of its own
 * (this returns at once; until it is done they are checked at the
 * previous cost, and "unknown users are now checked at ..." is logged);
 * hostname, keytab and the table size need a restart. */
void auth_configure(struct auth *auth, const struct auth_settings *set);

/* The SASL mechanisms to advertise on a connection, space-separated, into
 * out (NUL-terminated; "" when none). Plaintext ones only with tls or
 * plaintext_allowed; shared-secret ones only when some domain stores
 * secrets (cached for AUTH_SHARED_SECRET_CACHE_MS, refreshed by
 * auth_refresh). Returns the length written. */
size_t auth_mechanisms(struct auth *auth, bool tls, bool plaintext_allowed, char *out, size_t size);
#define AUTH_SHARED_SECRET_CACHE_MS 5000
/* Forget cached directory facts now (after "domain set"). */
void auth_refresh(struct auth *auth);
/* The server name GSSAPI and DIGEST-MD5 use (auth.hostname or the host's). */
const char *auth_hostname(const struct auth *auth);

/* APOP is offered when some domain stores secrets. */
bool auth_apop_available(struct auth *auth);
/* A fresh RFC 1939 banner timestamp "<pid.clock.random@host>" into out
 * (AUTH_APOP_TIMESTAMP_MAX). 0, or -1 if out is too small. */
int auth_apop_timestamp(struct auth *auth, char *out, size_t size);
/* The APOP digest as a client computes it: lowercase hex of
 * MD5(timestamp + secret) into hex. 0, or -1 when MD5 is unavailable. */
int auth_apop_digest(const char *timestamp, const char *secret, char hex[33]);

struct auth_session_params {
	const char *service;	/* "smtp", "imap", "pop" (GSSAPI service name) */
	const char *peer;	/* client "addr:port" / "[v6]:port" */
	uint64_t conn_id;	/* for log lines; 0 if none */
	bool tls;		/* the connection is TLS-protected */
	bool plaintext_allowed; /* plaintext mechanisms allowed without TLS */
};

struct auth_session;
/* NULL on out of memory. */
struct auth_session *auth_session_new(struct auth *auth, const struct auth_session_params *p);
/* TLS came up (STARTTLS): later exchanges may use plaintext mechanisms. */
void auth_session_set_tls(struct auth_session *s, bool tls);
void auth_session_free(struct auth_session **s);

/* Begins a SASL exchange. has_ir: the client sent an initial response
 * (ir/ir_len, possibly empty: SASL-IR's "="). Ends any exchange in
 * progress first. Outcome in *out. */
void auth_start(struct auth_session *s, const char *mech, const void *ir, size_t ir_len,
		bool has_ir, struct auth_outcome *out);
/* The client's (decoded) answer to the last challenge. */
void auth_step(struct auth_session *s, const void *resp, size_t len, struct auth_outcome *out);
/* The client cancelled the exchange: FAIL/ABORTED, no delay. */
void auth_abort(struct auth_session *s, struct auth_outcome *out);
/* IMAP LOGIN, POP3 USER+PASS: a plaintext password. */
void auth_password(struct auth_session *s, const char *user, const char *password,
		   struct auth_outcome *out);
/* POP3 APOP: digest is the client's 32 hex digits of
 * MD5(timestamp + secret), timestamp the banner's "<...>". */
void auth_apop(struct auth_session *s, const char *user, const char *timestamp, const char *digest,
	       struct auth_outcome *out);

const char *auth_reason_name(enum auth_reason reason);
const char *auth_mech_name(enum auth_mech mech);

struct auth_stats {
	unsigned long success[AUTH_MECH_COUNT];
	unsigned long failure[AUTH_MECH_COUNT];
	unsigned long by_reason[AUTH_REASON_COUNT];
	unsigned long delayed;	  /* failures that earned a delay */
	size_t tracked_addresses; /* remembered failures right now */
	size_t tracked_accounts;
};
void auth_stats_get(struct auth *auth, struct auth_stats *st);
/* Human-readable counters (mailctl status, auth stats). */
void auth_stats_format(struct auth *auth, struct textbuf *out);

/*
 * The asynchronous interface used by the protocol wiring in node/, with
 * two implementations: auth_pool_iface() (real, node/auth_pool.h) and
 * auth_fake_iface() (tests, node/auth_fake.h). A handle is one
 * connection's authentication state; one operation is in flight per
 * handle at a time. done runs later, on the thread of the event loop the
 * handle was opened for, never from inside the call that started the
 * operation, and for failures only after the outcome's delay; the
 * outcome and its pointers are valid during done only. handle_free
 * cancels what is in flight (done will not run).
 */
struct event_base;
struct auth_handle;
typedef void auth_done_cb(const struct auth_outcome *out, void *arg);

struct auth_iface {
	size_t (*mechanisms)(void *ctx, bool tls, bool plaintext_allowed, char *out, size_t size);
	/* Fills out with a fresh APOP timestamp: true, or false when APOP
	 * is not offered. */
	bool (*apop_timestamp)(void *ctx, char *out, size_t size);
	struct auth_handle *(*handle_new)(void *ctx, struct event_base *base,
					  const struct auth_session_params *p);
	void (*handle_set_tls)(struct auth_handle *h, bool tls);
	void (*handle_free)(struct auth_handle **h);
	void (*start)(struct auth_handle *h, const char *mech, const void *ir, size_t ir_len,
		      bool has_ir, auth_done_cb *done, void *arg);
	void (*step)(struct auth_handle *h, const void *resp, size_t len, auth_done_cb *done,
		     void *arg);
	void (*abort)(struct auth_handle *h, auth_done_cb *done, void *arg);
	void (*password)(struct auth_handle *h, const char *user, const char *password,
			 auth_done_cb *done, void *arg);
	void (*apop)(struct auth_handle *h, const char *user, const char *timestamp,
		     const char *digest, auth_done_cb *done, void *arg);
};

#endif
