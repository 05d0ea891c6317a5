/*
 * auth_private: what node/auth*.c share and nothing else may use: the
 * context, the session, the mechanism table and the helpers that end an
 * attempt (counting, throttling, logging).
 */
#ifndef CM_NODE_AUTH_PRIVATE_H
#define CM_NODE_AUTH_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "node/auth.h"
#include "node/auth_throttle.h"
#include "node/sasl_server.h"
#include "storage/directory.h"

#define AUTH_LOG_USER_MAX 64 /* bytes of a client-given name in log lines */
#define AUTH_PASSWORD_MAX 1024

struct auth_mech_info {
	const char *name;
	bool sasl;	/* run by libsasl2 */
	bool plaintext; /* the password crosses the wire: TLS or plaintext_allowed */
	bool shared;	/* needs the recoverable secret */
};
extern const struct auth_mech_info auth_mechs[AUTH_MECH_COUNT];

struct auth {
	struct directory *dir;
	struct auth_throttle *by_address, *by_account;
	uint64_t (*now_ms)(void);
	char hostname[256];
	char default_realm[256];
	bool kerberos;	      /* keytab configured and GSSAPI loaded */
	char dummy_secret[33]; /* random: what a shared-secret mechanism is given for them */

	pthread_mutex_t settings_lock; /* guards what follows, up to the counters */
	bool offered[AUTH_MECH_COUNT]; /* configured SASL mechanisms */
	char sasl_list[256];	       /* the same, space-separated, for libsasl2 */
	/* Unknown users are verified against dummy_hash, of the site's scheme
	 * and cost (auth_dummy_hash copies it). A reload that changes them
	 * sets want_*; the rehash thread computes the new hash off every
	 * event loop (seconds at yescrypt cost 11) and swaps it in. */
	char dummy_hash[256];
	enum password_scheme dummy_scheme, want_scheme;
	unsigned long dummy_cost, want_cost;
	bool rehash_running;	/* the thread is computing */
	bool abandoned;		/* auth_destroy left it to the thread to free */

	_Atomic int shared_any; /* -1 unknown, 0, 1 */
	_Atomic uint64_t shared_checked_ms;

	atomic_ulong success[AUTH_MECH_COUNT];
	atomic_ulong failure[AUTH_MECH_COUNT];
	atomic_ulong by_reason[AUTH_REASON_COUNT];
	atomic_ulong delayed;
};

struct auth_session {
	struct auth *auth;
	char service[16];
	char peer[64];
	char peer_key[64]; /* the client's network, cidr_client (IPv6: its /64) */
	uint64_t conn_id;
	bool tls, plaintext_allowed;

	/* The exchange in progress. */
	int mech; /* enum auth_mech, -1 none */
	bool active;
	unsigned steps;
	struct sasl_server_session *sasl;
	struct textbuf challenge;

	/* What this attempt learned, for the outcome and the log. */
	char claimed[DIRECTORY_ADDRESS_MAX]; /* the name tried: canonical when it parses */
	char user[DIRECTORY_ADDRESS_MAX];    /* authenticated */
	enum auth_reason hook_reason;	     /* set by a hook: beats libsasl2's code */
	const char *hook_detail;
	const char *dummy_detail; /* why this attempt was given the dummy secret, for the log */
	char detail[256]; /* a copy of libsasl2's explanation */

	/* The last directory lookup (holds a secret: wiped when replaced). */
	char cached_name[DIRECTORY_ADDRESS_MAX];
	int cached_ret; /* 1 found, 0 absent, <0 error; meaningless if cached_name is "" */
	struct directory_user cached;
};

uint64_t auth_now_ms(struct auth *auth);
/* A copy of the hash unknown users are verified against. */
void auth_dummy_hash(struct auth *auth, char out[256]);
/* 1 when some domain stores secrets (cached), 0 if none. */
bool auth_shared_any(struct auth *auth);
bool auth_mech_offered(struct auth *auth, enum auth_mech m);
/* The SASL mechanism list for libsasl2, copied into out. */
void auth_sasl_list(struct auth *auth, char *out, size_t size);

/* Ends an attempt: counts, throttles, logs, fills *out. */
void auth_finish_ok(struct auth_session *s, int mech, const char *user, struct auth_outcome *out);
void auth_finish_fail(struct auth_session *s, int mech, enum auth_reason reason, const char *detail,
		      struct auth_outcome *out);

/* Canonical address for a client-given name: 0, or -1 when it is not an
 * address (too long, control characters, bad syntax). */
int auth_canon_address(const char *in, size_t inlen, char *out, size_t size);
/* Remembers the name of this attempt for throttling and logs: canonical
 * when it parses, else lowercased and cut. */
void auth_claim(struct auth_session *s, const char *in, size_t inlen);
/* An attempt ended: drops the cached user record (it may hold the secret)
 * and the libsasl2 session (its property context may too). */
void auth_session_forget(struct auth_session *s);

/* Constant-time equality of two NUL-terminated strings of equal length. */
bool auth_equal_ct(const char *a, const char *b, size_t len);

#endif
