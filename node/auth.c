/*
 * auth: the authentication context (see node/auth.h): settings, the
 * mechanisms offered per connection, counters, the failure throttle, and
 * the one place where an attempt ends (counted, delayed, logged).
 * Sessions and the verification paths are in auth_session.c, APOP in
 * auth_apop.c, libsasl2 in sasl_server.c.
 */
#include "node/auth_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/address.h"
#include "lib/password.h"
#include "node/log.h"

const struct auth_mech_info auth_mechs[AUTH_MECH_COUNT] = {
    [AUTH_MECH_PLAIN] = {"PLAIN", true, true, false},
    [AUTH_MECH_LOGIN] = {"LOGIN", true, true, false},
    [AUTH_MECH_CRAM_MD5] = {"CRAM-MD5", true, false, true},
    [AUTH_MECH_DIGEST_MD5] = {"DIGEST-MD5", true, false, true},
    [AUTH_MECH_SCRAM_SHA_1] = {"SCRAM-SHA-1", true, false, true},
    [AUTH_MECH_SCRAM_SHA_256] = {"SCRAM-SHA-256", true, false, true},
    [AUTH_MECH_GSSAPI] = {"GSSAPI", true, false, false},
    [AUTH_MECH_APOP] = {"APOP", false, false, true},
    [AUTH_MECH_PASSWORD] = {"PASSWORD", false, true, false},
};

static const char *const reason_names[AUTH_REASON_COUNT] = {
    [AUTH_REASON_NONE] = "none",
    [AUTH_REASON_CREDENTIALS] = "bad-credentials",
    [AUTH_REASON_DISABLED] = "disabled",
    [AUTH_REASON_AUTHZ] = "authz-refused",
    [AUTH_REASON_TEMPORARY] = "temporary",
    [AUTH_REASON_MECHANISM] = "unknown-mechanism",
    [AUTH_REASON_TOO_WEAK] = "plaintext-without-tls",
    [AUTH_REASON_ABORTED] = "aborted",
    [AUTH_REASON_MALFORMED] = "malformed",
};

const char *auth_reason_name(enum auth_reason reason)
{
	return (unsigned)reason < AUTH_REASON_COUNT ? reason_names[reason] : "?";
}

const char *auth_mech_name(enum auth_mech mech)
{
	return (unsigned)mech < AUTH_MECH_COUNT ? auth_mechs[mech].name : "?";
}

void auth_settings_default(struct auth_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->failure_delay_initial_ms = 500;
	set->failure_delay_max_ms = 15000;
	set->failure_forget_sec = 60;
	set->failure_table_size = 65536;
	snprintf(set->mechanisms, sizeof(set->mechanisms), "%s",
		 "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 GSSAPI");
	set->password_scheme = PASSWORD_YESCRYPT;
	set->password_cost = 2;
}

int auth_mechanism_list_check(const char *list, const char **bad_r)
{
	static _Thread_local char bad[64];
	char copy[256], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int m;
		for (m = 0; m < AUTH_MECH_COUNT; m++)
			if (auth_mechs[m].sasl && strcasecmp(tok, auth_mechs[m].name) == 0)
				break;
		if (m == AUTH_MECH_COUNT) {
			snprintf(bad, sizeof(bad), "%s", tok);
			*bad_r = bad;
			return -1;
		}
	}
	return 0;
}

/* What the dummy hash hashes: nobody's password. */
#define DUMMY_PASSWORD "unknown user"

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t auth_now_ms(struct auth *auth)
{
	return auth->now_ms != NULL ? auth->now_ms() : monotonic_ms();
}

static void throttle_settings(const struct auth_settings *set, struct auth_throttle_settings *t)
{
	*t = (struct auth_throttle_settings){
	    .initial_ms = set->failure_delay_initial_ms,
	    .max_ms = set->failure_delay_max_ms,
	    .forget_sec = set->failure_forget_sec,
	    .slots = set->failure_table_size,
	};
}

/* Parses the configured list into offered[] and the libsasl2 list. */
static int parse_mechanisms(struct auth *auth, const char *list, bool offered[AUTH_MECH_COUNT],
			    char *sasl_list, size_t size, const char **error_r)
{
	static _Thread_local char err[128];
	char copy[256], *save = NULL;

	memset(offered, 0, sizeof(bool) * AUTH_MECH_COUNT);
	sasl_list[0] = '\0';
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int m;
		for (m = 0; m < AUTH_MECH_COUNT; m++)
			if (auth_mechs[m].sasl && strcasecmp(tok, auth_mechs[m].name) == 0)
				break;
		if (m == AUTH_MECH_COUNT) {
			snprintf(err, sizeof(err), "unknown SASL mechanism '%s'", tok);
			*error_r = err;
			return -1;
		}
		/* Offered only if libsasl2 has the plugin (GSSAPI also needs
		 * a keytab). */
		if (!sasl_server_mech_loaded(auth_mechs[m].name)) {
			log_warning("auth",
				    "mechanism %s is configured but libsasl2 has no plugin for it",
				    auth_mechs[m].name);
			continue;
		}
		if (m == AUTH_MECH_GSSAPI && !auth->kerberos)
			continue;
		if (offered[m])
			continue;
		offered[m] = true;
		size_t used = strlen(sasl_list);
		snprintf(sasl_list + used, size - used, "%s%s", used > 0 ? " " : "",
			 auth_mechs[m].name);
	}
	return 0;
}

int auth_create(const struct auth_settings *set, struct directory *dir, struct auth **auth_r,
		const char **error_r)
{
	struct auth_throttle_settings ts;
	struct auth *auth;

	*auth_r = NULL;
	if (sasl_server_process_init(set->kerberos_keytab, error_r) < 0)
		return -1;
	auth = calloc(1, sizeof(*auth));
	if (auth == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	auth->dir = dir;
	auth->now_ms = set->now_ms;
	pthread_mutex_init(&auth->settings_lock, NULL);
	atomic_store(&auth->shared_any, -1);
	throttle_settings(set, &ts);
	auth->by_address = auth_throttle_new(&ts);
	auth->by_account = auth_throttle_new(&ts);
	if (auth->by_address == NULL || auth->by_account == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	if (set->hostname[0] != '\0')
		snprintf(auth->hostname, sizeof(auth->hostname), "%s", set->hostname);
	else if (gethostname(auth->hostname, sizeof(auth->hostname) - 1) < 0)
		snprintf(auth->hostname, sizeof(auth->hostname), "localhost");
	snprintf(auth->default_realm, sizeof(auth->default_realm), "%s",
		 set->kerberos_default_realm);
	if (set->kerberos_keytab[0] != '\0') {
		if (access(set->kerberos_keytab, R_OK) < 0)
			log_warning("auth", "kerberos keytab %s is not readable: GSSAPI will fail",
				    set->kerberos_keytab);
		auth->kerberos = sasl_server_mech_loaded("GSSAPI") == 1;
		if (!auth->kerberos)
			log_warning("auth", "a keytab is configured but the SASL GSSAPI plugin is "
					    "missing (libsasl2-modules-gssapi-mit)");
	}
	if (parse_mechanisms(auth, set->mechanisms, auth->offered, auth->sasl_list,
			     sizeof(auth->sasl_list), error_r) < 0)
		goto fail;
	/* Unknown users are checked against a hash of the same cost, so a
	 * timing difference does not tell which users exist. */
	if (password_hash(DUMMY_PASSWORD, set->password_scheme, set->password_cost,
			  auth->dummy_hash, sizeof(auth->dummy_hash), error_r) < 0)
		goto fail;
	auth->dummy_scheme = auth->want_scheme = set->password_scheme;
	auth->dummy_cost = auth->want_cost = set->password_cost;
	/* ... and a shared-secret mechanism (SCRAM, CRAM-MD5) runs its whole
	 * exchange for them against this, failing only at the proof: one that
	 * stops at once tells which users exist. */
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		*error_r = "no random bytes for the dummy secret";
		goto fail;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(auth->dummy_secret + 2 * i, 3, "%02x", rnd[i]);
	*auth_r = auth;
	return 0;
fail:
	auth_destroy(&auth);
	return -1;
}

static void auth_free(struct auth *auth)
{
	auth_throttle_free(&auth->by_address);
	auth_throttle_free(&auth->by_account);
	pthread_mutex_destroy(&auth->settings_lock);
	free(auth);
}

void auth_destroy(struct auth **authp)
{
	struct auth *auth = *authp;
	if (auth == NULL)
		return;
	*authp = NULL;
	/* A hash in progress cannot be interrupted (seconds to minutes at a
	 * high cost): a stop does not wait for it; the thread frees auth when
	 * it ends, or the process exits first. */
	pthread_mutex_lock(&auth->settings_lock);
	bool running = auth->rehash_running;
	auth->abandoned = running;
	pthread_mutex_unlock(&auth->settings_lock);
	if (!running)
		auth_free(auth);
}

void auth_dummy_hash(struct auth *auth, char out[256])
{
	pthread_mutex_lock(&auth->settings_lock);
	memcpy(out, auth->dummy_hash, sizeof(auth->dummy_hash));
	pthread_mutex_unlock(&auth->settings_lock);
}

/* The rehash thread: hashes until the dummy hash is of the wanted scheme
 * and cost (a reload during a hash asks again), then ends. A failure
 * keeps the previous hash and forgets the request, so that a reload with
 * the same settings tries again; the load checks the cost, so it means
 * memory. Abandoned by auth_destroy, it frees auth and ends. */
static void *rehash_main(void *arg)
{
	struct auth *auth = arg;
	char hash[sizeof(auth->dummy_hash)];

	pthread_mutex_lock(&auth->settings_lock);
	while (!auth->abandoned &&
	       (auth->dummy_scheme != auth->want_scheme || auth->dummy_cost != auth->want_cost)) {
		enum password_scheme scheme = auth->want_scheme;
		unsigned long cost = auth->want_cost;
		const char *error = NULL;
		pthread_mutex_unlock(&auth->settings_lock);
		int rc = password_hash(DUMMY_PASSWORD, scheme, cost, hash, sizeof(hash), &error);
		pthread_mutex_lock(&auth->settings_lock);
		if (auth->abandoned)
			break;
		if (rc == 0) {
			memcpy(auth->dummy_hash, hash, sizeof(hash));
			auth->dummy_scheme = scheme;
			auth->dummy_cost = cost;
		} else if (auth->want_scheme == scheme && auth->want_cost == cost) {
			auth->want_scheme = auth->dummy_scheme;
			auth->want_cost = auth->dummy_cost;
		}
		pthread_mutex_unlock(&auth->settings_lock);
		if (rc == 0)
			log_info("auth", "unknown users are now checked at password scheme %s cost %lu",
				 password_scheme_name(scheme), cost);
		else
			log_error("auth", "cannot hash at password scheme %s cost %lu (%s): unknown "
				  "users are still checked at the previous cost",
				  password_scheme_name(scheme), cost, error);
		pthread_mutex_lock(&auth->settings_lock);
	}
	bool abandoned = auth->abandoned;
	auth->rehash_running = false;
	pthread_mutex_unlock(&auth->settings_lock);
	if (abandoned)
		auth_free(auth);
	return NULL;
}

/* A reload changed password.scheme or cost: the rehash thread makes the
 * dummy hash match, while unknown users still get the previous one. */
static void rehash_request(struct auth *auth, enum password_scheme scheme, unsigned long cost)
{
	pthread_mutex_lock(&auth->settings_lock);
	auth->want_scheme = scheme;
	auth->want_cost = cost;
	bool start = !auth->rehash_running &&
		     (auth->dummy_scheme != scheme || auth->dummy_cost != cost);
	auth->rehash_running |= start;
	pthread_mutex_unlock(&auth->settings_lock);
	if (!start)
		return;
	/* detached: rehash_running and abandoned, under settings_lock, say
	 * all that anyone needs to know of it */
	pthread_t thread;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	bool started = pthread_create(&thread, &attr, rehash_main, auth) == 0;
	pthread_attr_destroy(&attr);
	if (!started) {
		pthread_mutex_lock(&auth->settings_lock);
		auth->rehash_running = false;
		pthread_mutex_unlock(&auth->settings_lock);
		log_error("auth", "cannot start a thread for the new password cost: unknown users "
			  "are still checked at the previous cost");
	}
}

void auth_configure(struct auth *auth, const struct auth_settings *set)
{
	struct auth_throttle_settings ts;
	bool offered[AUTH_MECH_COUNT];
	char list[256];
	const char *error = NULL;

	throttle_settings(set, &ts);
	auth_throttle_configure(auth->by_address, &ts);
	auth_throttle_configure(auth->by_account, &ts);
	rehash_request(auth, set->password_scheme, set->password_cost);
	if (parse_mechanisms(auth, set->mechanisms, offered, list, sizeof(list), &error) < 0) {
		log_error("auth", "reload: %s; keeping the mechanism list", error);
		return;
	}
	pthread_mutex_lock(&auth->settings_lock);
	memcpy(auth->offered, offered, sizeof(offered));
	memcpy(auth->sasl_list, list, sizeof(list));
	pthread_mutex_unlock(&auth->settings_lock);
}

bool auth_mech_offered(struct auth *auth, enum auth_mech m)
{
	if (m == AUTH_MECH_PASSWORD)
		return true;
	if (m == AUTH_MECH_APOP)
		return auth_shared_any(auth);
	pthread_mutex_lock(&auth->settings_lock);
	bool on = auth->offered[m];
	pthread_mutex_unlock(&auth->settings_lock);
	return on && (!auth_mechs[m].shared || auth_shared_any(auth));
}

void auth_sasl_list(struct auth *auth, char *out, size_t size)
{
	pthread_mutex_lock(&auth->settings_lock);
	snprintf(out, size, "%s", auth->sasl_list);
	pthread_mutex_unlock(&auth->settings_lock);
}

bool auth_shared_any(struct auth *auth)
{
	uint64_t now = auth_now_ms(auth);
	int cached = atomic_load(&auth->shared_any);

	if (cached >= 0 &&
	    now - atomic_load(&auth->shared_checked_ms) < AUTH_SHARED_SECRET_CACHE_MS)
		return cached == 1;
	int ret = directory_domain_shared_secret_any(auth->dir);
	if (ret < 0) /* keep the last answer; offer nothing new on an error */
		return cached == 1;
	atomic_store(&auth->shared_any, ret);
	atomic_store(&auth->shared_checked_ms, now);
	return ret == 1;
}

const char *auth_hostname(const struct auth *auth)
{
	return auth->hostname;
}

void auth_refresh(struct auth *auth)
{
	atomic_store(&auth->shared_any, -1);
}

size_t auth_mechanisms(struct auth *auth, bool tls, bool plaintext_allowed, char *out, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return 0;
	out[0] = '\0';
	for (int m = 0; m < AUTH_MECH_COUNT; m++) {
		if (!auth_mechs[m].sasl || !auth_mech_offered(auth, (enum auth_mech)m))
			continue;
		if (auth_mechs[m].plaintext && !tls && !plaintext_allowed)
			continue;
		int w = snprintf(out + n, size - n, "%s%s", n > 0 ? " " : "", auth_mechs[m].name);
		if (w < 0 || (size_t)w >= size - n) {
			out[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	return n;
}

bool auth_apop_available(struct auth *auth)
{
	return auth_shared_any(auth);
}

/* ---- names ---- */

int auth_canon_address(const char *in, size_t inlen, char *out, size_t size)
{
	char buf[DIRECTORY_ADDRESS_MAX];
	struct address a;
	const char *why;

	if (inlen == 0 || inlen >= sizeof(buf) || memchr(in, '\0', inlen) != NULL)
		return -1;
	memcpy(buf, in, inlen);
	buf[inlen] = '\0';
	for (size_t i = 0; i < inlen; i++)
		if ((unsigned char)buf[i] < 0x21 || buf[i] == 0x7f)
			return -1;
	if (address_parse(buf, false, &a, &why) < 0)
		return -1;
	return address_format(&a, out, size);
}

void auth_claim(struct auth_session *s, const char *in, size_t inlen)
{
	if (auth_canon_address(in, inlen, s->claimed, sizeof(s->claimed)) == 0)
		return;
	size_t n = inlen < AUTH_LOG_USER_MAX ? inlen : AUTH_LOG_USER_MAX;
	for (size_t i = 0; i < n; i++)
		s->claimed[i] = (char)tolower((unsigned char)in[i]);
	s->claimed[n] = '\0';
}

/* The name for a log line: printable ASCII kept, the rest as \xNN, cut. */
static void log_name(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; in[i] != '\0' && i < AUTH_LOG_USER_MAX && o + 5 < size; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c > 0x20 && c < 0x7f && c != '\\' && c != '"')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, size, "-");
}

/* ---- ending an attempt ---- */

static void outcome_common(struct auth_session *s, int mech, struct auth_outcome *out)
{
	out->challenge = NULL;
	out->challenge_len = 0;
	out->mechanism = mech >= 0 && mech < AUTH_MECH_COUNT ? auth_mechs[mech].name : "";
	s->active = false;
	s->steps = 0;
	auth_session_forget(s);
}

void auth_finish_ok(struct auth_session *s, int mech, const char *user, struct auth_outcome *out)
{
	struct auth *auth = s->auth;
	char name[4 * AUTH_LOG_USER_MAX + 8];

	snprintf(s->user, sizeof(s->user), "%s",
		 user); /* user may live in what is forgotten next */
	outcome_common(s, mech, out);
	out->status = AUTH_OK;
	out->reason = AUTH_REASON_NONE;
	out->detail = NULL;
	out->user = s->user;
	/* While the address or the account has recent failures, the right
	 * password waits as long as a wrong one would: otherwise a guesser
	 * that hangs up after the hash time is never slowed, and a quick
	 * answer tells it it guessed right. */
	uint64_t now = auth_now_ms(auth);
	unsigned by_address = auth_throttle_penalty(auth->by_address, s->peer_key, now);
	unsigned by_account = auth_throttle_penalty(auth->by_account, s->user, now);
	out->delay_ms = by_address > by_account ? by_address : by_account;
	if (mech >= 0 && mech < AUTH_MECH_COUNT)
		atomic_fetch_add(&auth->success[mech], 1);
	/* The account's failures are forgotten; the address's are not (one
	 * valid login must not wash away a spraying client's record). */
	auth_throttle_forget(auth->by_account, s->user);
	log_name(s->user, name, sizeof(name));
	if (out->delay_ms > 0)
		log_info("auth", "login user=%s peer=%s mech=%s service=%s conn=%llu delay_ms=%u",
			 name, s->peer, out->mechanism, s->service, (unsigned long long)s->conn_id,
			 out->delay_ms);
	else
		log_info("auth", "login user=%s peer=%s mech=%s service=%s conn=%llu", name, s->peer,
			 out->mechanism, s->service, (unsigned long long)s->conn_id);
}

void auth_finish_fail(struct auth_session *s, int mech, enum auth_reason reason, const char *detail,
		      struct auth_outcome *out)
{
	struct auth *auth = s->auth;
	char name[4 * AUTH_LOG_USER_MAX + 8];
	unsigned delay = 0;

	outcome_common(s, mech, out);
	out->status = AUTH_FAIL;
	out->reason = reason;
	out->detail = detail != NULL ? detail : auth_reason_name(reason);
	out->user = NULL;
	/* Guessing earns a delay: per address for anything that looked like
	 * an attempt, per account for wrong credentials. */
	/* A disabled account or a refused authorization identity comes after
	 * the right credentials: answered at once, it would tell a guesser so. */
	bool guess = reason == AUTH_REASON_CREDENTIALS || reason == AUTH_REASON_DISABLED ||
		     reason == AUTH_REASON_AUTHZ;
	if (guess || reason == AUTH_REASON_MALFORMED) {
		uint64_t now = auth_now_ms(auth);
		delay = auth_throttle_failure(auth->by_address, s->peer_key, now);
		if (guess && s->claimed[0] != '\0') {
			unsigned d = auth_throttle_failure(auth->by_account, s->claimed, now);
			delay = d > delay ? d : delay;
		}
	}
	out->delay_ms = delay;
	if (delay > 0)
		atomic_fetch_add(&auth->delayed, 1);
	if (mech >= 0 && mech < AUTH_MECH_COUNT)
		atomic_fetch_add(&auth->failure[mech], 1);
	if ((unsigned)reason < AUTH_REASON_COUNT)
		atomic_fetch_add(&auth->by_reason[reason], 1);
	log_name(s->claimed, name, sizeof(name));
	log_notice("auth",
		   "login failed user=%s peer=%s mech=%s reason=%s delay_ms=%u detail=\"%s\" "
		   "service=%s conn=%llu",
		   name, s->peer, out->mechanism[0] != '\0' ? out->mechanism : "-",
		   auth_reason_name(reason), delay, out->detail, s->service,
		   (unsigned long long)s->conn_id);
	explicit_bzero(s->claimed, sizeof(s->claimed));
}

/* ---- counters ---- */

void auth_stats_get(struct auth *auth, struct auth_stats *st)
{
	uint64_t now = auth_now_ms(auth);
	memset(st, 0, sizeof(*st));
	for (int m = 0; m < AUTH_MECH_COUNT; m++) {
		st->success[m] = atomic_load(&auth->success[m]);
		st->failure[m] = atomic_load(&auth->failure[m]);
	}
	for (int r = 0; r < AUTH_REASON_COUNT; r++)
		st->by_reason[r] = atomic_load(&auth->by_reason[r]);
	st->delayed = atomic_load(&auth->delayed);
	st->tracked_addresses = auth_throttle_tracked(auth->by_address, now);
	st->tracked_accounts = auth_throttle_tracked(auth->by_account, now);
}

void auth_stats_format(struct auth *auth, struct textbuf *out)
{
	struct auth_stats st;
	char list[256];

	auth_stats_get(auth, &st);
	auth_mechanisms(auth, true, true, list, sizeof(list));
	textbuf_printf(out, "auth:\n  mechanisms (with TLS): %s%s\n", list[0] ? list : "(none)",
		       auth_apop_available(auth) ? " (+APOP)" : "");
	for (int m = 0; m < AUTH_MECH_COUNT; m++)
		if (st.success[m] != 0 || st.failure[m] != 0)
			textbuf_printf(out, "  %-14s ok=%lu failed=%lu\n", auth_mechs[m].name,
				       st.success[m], st.failure[m]);
	textbuf_puts(out, "  failures:");
	for (int r = 1; r < AUTH_REASON_COUNT; r++)
		textbuf_printf(out, " %s=%lu", reason_names[r], st.by_reason[r]);
	textbuf_printf(out, "\n  delayed=%lu tracked_addresses=%zu tracked_accounts=%zu\n",
		       st.delayed, st.tracked_addresses, st.tracked_accounts);
}
