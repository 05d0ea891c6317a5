/*
 * sasl_server: the libsasl2 server side (see node/sasl_server.h for what
 * libsasl2 is told and why). Every sasl_* server call of the program is
 * in this file.
 *
 * The callbacks libsasl2 makes during a step (canonicalise a name, fetch
 * a secret through our auxprop plugin, check a plaintext password,
 * authorize) find their session through the context of the session's
 * SASL_CB_CANON_USER callback, which libsasl2 hands to plugins with
 * utils->getcallback; no global or thread-local state is involved.
 */
#include "node/sasl_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "node/log.h"

#define SASL_AUXPROP_NAME "clustermail"
#define SASL_NAME_MAX 1024 /* canonical names: addresses are far shorter */
/* libsasl2 stores every callback as int (*)(void); void (*)(void) is the
 * type C compilers accept any function pointer through. */
#define SASL_CB(fn) ((int (*)(void))(void (*)(void))(fn))

struct sasl_server_session {
	sasl_conn_t *conn;
	char service[32];
	char hostname[256];
	char mech_list[256];
	const struct sasl_server_hooks *hooks;
	void *hooks_ctx;
	sasl_callback_t callbacks[6];
	char user[SASL_NAME_MAX]; /* after OK */
	bool authz_refused;
};

/* ---- process-wide setup ---- */

static pthread_once_t sasl_once = PTHREAD_ONCE_INIT;
static int sasl_init_result;
static bool sasl_ready; /* set once, by the pthread_once routine */
static const char *sasl_init_error;
static char sasl_keytab[1024];

static void *sasl_mutex_new(void)
{
	pthread_mutex_t *m = malloc(sizeof(*m));
	if (m != NULL)
		pthread_mutex_init(m, NULL);
	return m;
}

static int sasl_mutex_do_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int sasl_mutex_do_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void sasl_mutex_destroy(void *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(m);
	free(m);
}

/* libsasl2's messages: errors and warnings are ours to see; failures are
 * logged by auth.c in its own words (once per attempt), so libsasl2's own
 * failure lines go to debug. SASL_LOG_PASS (which may carry passwords) is
 * never passed on, and log_level keeps libsasl2 from producing it. */
static int sasl_log_cb(void *ctx, int level, const char *message)
{
	(void)ctx;
	int prio;
	switch (level) {
	case SASL_LOG_ERR:
		prio = LOG_ERR;
		break;
	case SASL_LOG_WARN:
		prio = LOG_WARNING;
		break;
	case SASL_LOG_NOTE:
		prio = LOG_INFO;
		break;
	case SASL_LOG_FAIL:
	case SASL_LOG_DEBUG:
	case SASL_LOG_TRACE:
		prio = LOG_DEBUG;
		break;
	default:
		return SASL_OK;
	}
	log_msg(prio, "sasl", "%s", message != NULL ? message : "");
	return SASL_OK;
}

/* Options shared by every session; a session's own getopt adds its own. */
static const char *sasl_common_option(const char *plugin, const char *option)
{
	(void)plugin;
	if (strcmp(option, "auxprop_plugin") == 0)
		return SASL_AUXPROP_NAME;
	if (strcmp(option, "pwcheck_method") == 0)
		return "auxprop"; /* only reached after our checkpass said no */
	if (strcmp(option, "log_level") == 0)
		return "4"; /* SASL_LOG_NOTE: never SASL_LOG_PASS */
	if (strcmp(option, "reauth_timeout") == 0)
		return "0"; /* DIGEST-MD5: no cross-connection cache */
	if (strcmp(option, "keytab") == 0 && sasl_keytab[0] != '\0')
		return sasl_keytab;
	if (strcmp(option, "auto_transition") == 0)
		return "no";
	return NULL;
}

static int sasl_global_getopt(void *ctx, const char *plugin, const char *option,
			      const char **result, unsigned *len)
{
	(void)ctx;
	const char *v = sasl_common_option(plugin, option);
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

/* ---- the auxprop plugin: secrets from the directory ---- */

static bool mech_uses_secret(const char *mech)
{
	return mech != NULL &&
	       (strcasecmp(mech, "CRAM-MD5") == 0 || strcasecmp(mech, "DIGEST-MD5") == 0 ||
		strcasecmp(mech, "SCRAM-SHA-1") == 0 || strcasecmp(mech, "SCRAM-SHA-256") == 0);
}

static struct sasl_server_session *session_of(const sasl_utils_t *utils)
{
	sasl_callback_ft proc = NULL;
	void *ctx = NULL;
	if (utils == NULL || utils->conn == NULL ||
	    utils->getcallback(utils->conn, SASL_CB_CANON_USER, &proc, &ctx) != SASL_OK)
		return NULL;
	return ctx;
}

static int aux_lookup(void *glob, sasl_server_params_t *sp, unsigned flags, const char *user,
		      unsigned ulen)
{
	struct sasl_server_session *s = session_of(sp->utils);
	const char *mech = NULL, *secret = NULL;
	char name[SASL_NAME_MAX];
	const struct propval *pv;
	(void)glob;

	/* Nothing is looked up for authorization identities, and secrets
	 * only ever go to the mechanisms that need them. */
	if (s == NULL || (flags & SASL_AUXPROP_AUTHZID) != 0)
		return SASL_OK;
	if (sasl_getprop(sp->utils->conn, SASL_MECHNAME, (const void **)&mech) != SASL_OK ||
	    !mech_uses_secret(mech))
		return SASL_OK;
	for (pv = sp->utils->prop_get(sp->propctx); pv != NULL && pv->name != NULL; pv++)
		if (strcmp(pv->name, SASL_AUX_PASSWORD) == 0)
			break;
	if (pv == NULL || pv->name == NULL)
		return SASL_OK;
	if (pv->values != NULL && (flags & SASL_AUXPROP_OVERRIDE) == 0)
		return SASL_OK;
	if (ulen >= sizeof(name))
		return SASL_NOUSER;
	memcpy(name, user, ulen);
	name[ulen] = '\0';
	int ret = s->hooks->secret(s->hooks_ctx, name, &secret);
	if (ret < 0)
		return SASL_UNAVAIL;
	if (pv->values != NULL)
		sp->utils->prop_erase(sp->propctx, pv->name);
	if (ret > 0 && secret[0] != '\0')
		return sp->utils->prop_set(sp->propctx, pv->name, secret, (int)strlen(secret));
	return SASL_OK;
}

static sasl_auxprop_plug_t aux_plugin = {
    .features = 0,
    .auxprop_lookup = aux_lookup,
    .name = SASL_AUXPROP_NAME,
};

static int aux_plugin_init(const sasl_utils_t *utils, int max_version, int *out_version,
			   sasl_auxprop_plug_t **plug, const char *plugname)
{
	(void)utils, (void)plugname;
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &aux_plugin;
	return SASL_OK;
}

static const sasl_callback_t sasl_global_callbacks[] = {
    {SASL_CB_GETOPT, SASL_CB(sasl_global_getopt), NULL},
    {SASL_CB_LOG, SASL_CB(sasl_log_cb), NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};

static void sasl_do_init(void)
{
	int rc;

	sasl_set_mutex(sasl_mutex_new, sasl_mutex_do_lock, sasl_mutex_do_unlock,
		       sasl_mutex_destroy);
	/* appname NULL: libsasl2 reads no configuration file, so nothing
	 * outside our configuration changes how logins are checked. */
	rc = sasl_server_init(sasl_global_callbacks, NULL);
	if (rc != SASL_OK) {
		sasl_init_error = sasl_errstring(rc, NULL, NULL);
		sasl_init_result = -1;
		return;
	}
	rc = sasl_auxprop_add_plugin(SASL_AUXPROP_NAME, aux_plugin_init);
	if (rc != SASL_OK) {
		sasl_init_error = "cannot register the directory auxprop plugin";
		sasl_init_result = -1;
		return;
	}
	sasl_ready = true;
}

int sasl_server_process_init(const char *keytab, const char **error_r)
{
	static pthread_mutex_t keytab_lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&keytab_lock);
	if (keytab != NULL && sasl_keytab[0] == '\0')
		snprintf(sasl_keytab, sizeof(sasl_keytab), "%s", keytab);
	pthread_mutex_unlock(&keytab_lock);
	pthread_once(&sasl_once, sasl_do_init);
	if (sasl_init_result < 0 && error_r != NULL)
		*error_r = sasl_init_error;
	return sasl_init_result;
}

int sasl_server_mech_loaded(const char *mech)
{
	const char **list = sasl_global_listmech();
	for (; list != NULL && *list != NULL; list++)
		if (strcasecmp(*list, mech) == 0)
			return 1;
	return 0;
}

/* ---- per-session callbacks ---- */

static int session_getopt(void *ctx, const char *plugin, const char *option, const char **result,
			  unsigned *len)
{
	struct sasl_server_session *s = ctx;
	const char *v = NULL;
	if (strcmp(option, "mech_list") == 0)
		v = s->mech_list;
	else
		v = sasl_common_option(plugin, option);
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static int session_canon(sasl_conn_t *conn, void *ctx, const char *in, unsigned inlen,
			 unsigned flags, const char *user_realm, char *out, unsigned out_max,
			 unsigned *out_len)
{
	struct sasl_server_session *s = ctx;
	const char *mech = NULL;
	(void)user_realm;

	if (sasl_getprop(conn, SASL_MECHNAME, (const void **)&mech) != SASL_OK)
		mech = "";
	if (s->hooks->canon(s->hooks_ctx, mech, in, inlen, (flags & SASL_CU_AUTHID) != 0, out,
			    out_max) < 0)
		return SASL_BADAUTH;
	*out_len = (unsigned)strlen(out);
	return SASL_OK;
}

static int session_checkpass(sasl_conn_t *conn, void *ctx, const char *user, const char *pass,
			     unsigned passlen, struct propctx *propctx)
{
	struct sasl_server_session *s = ctx;
	(void)conn, (void)propctx;
	int ret = s->hooks->checkpass(s->hooks_ctx, user, pass, passlen);
	return ret > 0 ? SASL_OK : ret == 0 ? SASL_BADAUTH : SASL_UNAVAIL;
}

static int session_authorize(sasl_conn_t *conn, void *ctx, const char *requested_user,
			     unsigned rlen, const char *auth_identity, unsigned alen,
			     const char *def_realm, unsigned urlen, struct propctx *propctx)
{
	struct sasl_server_session *s = ctx;
	(void)conn, (void)def_realm, (void)urlen, (void)propctx;

	/* Both are canonical by now; an empty request means "myself". */
	if (rlen == 0 || (rlen == alen && memcmp(requested_user, auth_identity, alen) == 0))
		return SASL_OK;
	char authc[SASL_NAME_MAX], authz[SASL_NAME_MAX];
	snprintf(authc, sizeof(authc), "%.*s", (int)alen, auth_identity);
	snprintf(authz, sizeof(authz), "%.*s", (int)rlen, requested_user);
	s->authz_refused = true;
	if (s->hooks->authz_refused != NULL)
		s->hooks->authz_refused(s->hooks_ctx, authc, authz);
	sasl_seterror(conn, SASL_NOLOG, "authorization identity differs");
	return SASL_NOAUTHZ;
}

int sasl_server_session_new(const struct sasl_server_config *cfg,
			    const struct sasl_server_hooks *hooks, void *hooks_ctx,
			    struct sasl_server_session **s_r, const char **error_r)
{
	struct sasl_server_session *s;

	*s_r = NULL;
	if (!sasl_ready) {
		*error_r = "libsasl2 is not initialised";
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	snprintf(s->service, sizeof(s->service), "%s", cfg->service);
	snprintf(s->hostname, sizeof(s->hostname), "%s", cfg->hostname);
	snprintf(s->mech_list, sizeof(s->mech_list), "%s", cfg->mech_list);
	s->hooks = hooks;
	s->hooks_ctx = hooks_ctx;
	sasl_callback_t cbs[] = {
	    {SASL_CB_GETOPT, SASL_CB(session_getopt), s},
	    {SASL_CB_CANON_USER, SASL_CB(session_canon), s},
	    {SASL_CB_SERVER_USERDB_CHECKPASS, SASL_CB(session_checkpass), s},
	    {SASL_CB_PROXY_POLICY, SASL_CB(session_authorize), s},
	    {SASL_CB_LOG, SASL_CB(sasl_log_cb), NULL},
	    {SASL_CB_LIST_END, NULL, NULL},
	};
	memcpy(s->callbacks, cbs, sizeof(cbs));
	*s_r = s;
	return 0;
}

void sasl_server_session_free(struct sasl_server_session **s)
{
	if (*s == NULL)
		return;
	if ((*s)->conn != NULL)
		sasl_dispose(&(*s)->conn);
	explicit_bzero((*s)->user, sizeof((*s)->user));
	free(*s);
	*s = NULL;
}

static enum sasl_server_failure sasl_failure_class(int rc)
{
	switch (rc) {
	case SASL_BADPROT:
	case SASL_BADPARAM:
	case SASL_BADSERV:
		return SASL_FAILURE_MALFORMED;
	case SASL_NOAUTHZ:
		return SASL_FAILURE_AUTHZ;
	case SASL_NOMEM:
	case SASL_UNAVAIL:
	case SASL_TRYAGAIN:
		return SASL_FAILURE_TEMPORARY;
	case SASL_NOMECH:
		return SASL_FAILURE_MECHANISM;
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		return SASL_FAILURE_TOO_WEAK;
	default: /* BADAUTH, NOUSER, NOVERIFY, FAIL (a bad token), DISABLED... */
		return SASL_FAILURE_CREDENTIALS;
	}
}

static enum sasl_server_result sasl_result(struct sasl_server_session *s, int rc, const char *sout,
					   unsigned soutlen, const unsigned char **out,
					   size_t *outlen, enum sasl_server_failure *why_r,
					   const char **detail_r)
{
	*out = (const unsigned char *)(sout != NULL ? sout : "");
	*outlen = sout != NULL ? soutlen : 0;
	if (rc == SASL_CONTINUE)
		return SASL_SERVER_CONTINUE;
	if (rc == SASL_OK) {
		const char *authz = NULL, *authc = NULL;
		if (sasl_getprop(s->conn, SASL_USERNAME, (const void **)&authz) != SASL_OK ||
		    sasl_getprop(s->conn, SASL_AUTHUSER, (const void **)&authc) != SASL_OK ||
		    authz == NULL || authc == NULL || strcmp(authz, authc) != 0 ||
		    strlen(authc) >= sizeof(s->user)) {
			/* Belt and braces: session_authorize already refused. */
			*why_r = SASL_FAILURE_AUTHZ;
			*detail_r = "authorization identity differs";
			return SASL_SERVER_FAIL;
		}
		snprintf(s->user, sizeof(s->user), "%s", authc);
		return SASL_SERVER_OK;
	}
	*why_r = s->authz_refused ? SASL_FAILURE_AUTHZ : sasl_failure_class(rc);
	*detail_r = sasl_errdetail(s->conn);
	return SASL_SERVER_FAIL;
}

enum sasl_server_result sasl_server_session_start(struct sasl_server_session *s, const char *mech,
						  const void *in, size_t len, bool has_in,
						  const unsigned char **out, size_t *outlen,
						  enum sasl_server_failure *why_r,
						  const char **detail_r)
{
	/* No security layer: the protocols rely on TLS. */
	sasl_security_properties_t props = {.min_ssf = 0, .max_ssf = 0, .maxbufsize = 0};
	const char *sout = NULL;
	unsigned soutlen = 0;
	int rc;

	*out = (const unsigned char *)"";
	*outlen = 0;
	s->user[0] = '\0';
	s->authz_refused = false;
	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	rc = sasl_server_new(s->service, s->hostname, NULL, NULL, NULL, s->callbacks, 0, &s->conn);
	if (rc == SASL_OK)
		rc = sasl_setprop(s->conn, SASL_SEC_PROPS, &props);
	if (rc != SASL_OK) {
		*why_r = SASL_FAILURE_TEMPORARY;
		*detail_r = sasl_errstring(rc, NULL, NULL);
		if (s->conn != NULL)
			sasl_dispose(&s->conn);
		return SASL_SERVER_FAIL;
	}
	if (len > 0xffffffu) {
		*why_r = SASL_FAILURE_MALFORMED;
		*detail_r = "response too long";
		return SASL_SERVER_FAIL;
	}
	rc = sasl_server_start(s->conn, mech, has_in ? (in != NULL ? in : "") : NULL,
			       has_in ? (unsigned)len : 0, &sout, &soutlen);
	return sasl_result(s, rc, sout, soutlen, out, outlen, why_r, detail_r);
}

enum sasl_server_result sasl_server_session_step(struct sasl_server_session *s, const void *in,
						 size_t len, const unsigned char **out,
						 size_t *outlen, enum sasl_server_failure *why_r,
						 const char **detail_r)
{
	const char *sout = NULL;
	unsigned soutlen = 0;

	*out = (const unsigned char *)"";
	*outlen = 0;
	if (s->conn == NULL) {
		*why_r = SASL_FAILURE_MALFORMED;
		*detail_r = "no exchange in progress";
		return SASL_SERVER_FAIL;
	}
	if (len > 0xffffffu) {
		*why_r = SASL_FAILURE_MALFORMED;
		*detail_r = "response too long";
		return SASL_SERVER_FAIL;
	}
	int rc = sasl_server_step(s->conn, in != NULL ? in : "", (unsigned)len, &sout, &soutlen);
	return sasl_result(s, rc, sout, soutlen, out, outlen, why_r, detail_r);
}

const char *sasl_server_session_user(struct sasl_server_session *s)
{
	return s->user[0] != '\0' ? s->user : NULL;
}
