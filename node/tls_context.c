/*
 * Server TLS contexts (see tls.h): one SSL_CTX per certificate in use,
 * grouped in an immutable, reference-counted generation; the SNI callback
 * that switches a handshake to a domain's context; the session-ticket key
 * callback; and the reload that swaps generations.
 *
 * Lifetimes: the server holds one reference to its current generation;
 * every SSL object made from a generation holds another (released by an
 * SSL ex_data free callback when libevent frees the SSL). A reload drops
 * the server's reference to the old generation, which goes away when its
 * last connection closes. The ticket secret lives in the server and is
 * copied into each generation, so reloading certificates does not
 * invalidate tickets.
 */
#include "node/tls.h"
#include "node/tls_cert.h"
#include "node/tls_private.h"
#include "node/tls_store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define TLS_SECRET_MIN 32
#define TLS_SECRET_MAX 4096
#define TLS_SESSION_ID_CONTEXT "clustermail"

struct tls_cert_ctx {
	char *name; /* its own allocation: the context's app data points at it */
	SSL_CTX *ctx;
};

struct tls_domain_ctx {
	char domain[TLS_DOMAIN_MAX + 1];
	SSL_CTX *ctx;
};

struct tls_service_ctx {
	char service[TLS_DOMAIN_MAX + 1]; /* assignment targets share one size */
	SSL_CTX *ctx;
};

struct tls_generation {
	atomic_uint refs;
	struct tls_cert_ctx *certs; /* owns the contexts */
	size_t n_certs;
	struct tls_domain_ctx *domains; /* sorted by domain */
	size_t n_domains;
	struct tls_service_ctx *services;
	size_t n_services;
	SSL_CTX *default_ctx; /* may be NULL */
	unsigned ticket_rotation;
	unsigned char secret[TLS_SECRET_MAX];
	size_t secret_len;
};

struct tls_server {
	pthread_mutex_t lock;	     /* current and settings */
	pthread_mutex_t reload_lock; /* one reload at a time */
	struct tls_settings settings;
	char store_dir[1024];
	unsigned char random_secret[48];
	struct tls_generation *current;
};

static int ssl_gen_index = -1;
/* the domain's context hello_cb chose for an SSL, NULL for none */
static int ssl_sni_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void generation_unref(struct tls_generation *g);

static void ssl_gen_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL)
		generation_unref(ptr);
}

static void index_init(void)
{
	ssl_gen_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_gen_free);
	ssl_sni_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- settings ---- */

void tls_settings_defaults(struct tls_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->min_protocol = TLS_PROTOCOL_1_2;
	snprintf(s->ciphers, sizeof(s->ciphers), "%s", TLS_INTERMEDIATE_CIPHERS);
	snprintf(s->ciphersuites, sizeof(s->ciphersuites), "%s", TLS_INTERMEDIATE_CIPHERSUITES);
	snprintf(s->groups, sizeof(s->groups), "%s", TLS_INTERMEDIATE_GROUPS);
	s->prefer_server_ciphers = true;
	s->session_cache_size = 20480;
	s->session_timeout = 3600;
	s->ticket_key_rotation = 43200;
	s->handshake_timeout = 30;
}

int tls_protocol_parse(const char *text, enum tls_protocol *p_r)
{
	if (strcmp(text, "TLSv1.2") == 0)
		*p_r = TLS_PROTOCOL_1_2;
	else if (strcmp(text, "TLSv1.3") == 0)
		*p_r = TLS_PROTOCOL_1_3;
	else
		return -1;
	return 0;
}

const char *tls_protocol_name(enum tls_protocol p)
{
	return p == TLS_PROTOCOL_1_3 ? "TLSv1.3" : "TLSv1.2";
}

/* Everything of a context except its certificate. */
static SSL_CTX *ctx_new(const struct tls_settings *s, const char **error_r);

int tls_settings_check(const struct tls_settings *s, const char **error_r)
{
	SSL_CTX *ctx = ctx_new(s, error_r);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

/* ---- tickets ---- */

struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

/* The keys of one rotation period: HMAC-SHA256(secret, label || period). */
static int ticket_key_derive(const struct tls_generation *g, uint64_t period, struct ticket_key *k)
{
	static const char *const labels[3] = { "clustermail ticket name", "clustermail ticket aes",
					       "clustermail ticket hmac" };
	unsigned char *outs[3] = { NULL, k->aes, k->hmac };
	unsigned char name_full[32];
	outs[0] = name_full;
	for (int i = 0; i < 3; i++) {
		unsigned char msg[64];
		size_t llen = strlen(labels[i]);
		memcpy(msg, labels[i], llen);
		for (int b = 0; b < 8; b++)
			msg[llen + (size_t)b] = (unsigned char)(period >> (56 - 8 * b));
		unsigned int len = 32;
		if (HMAC(EVP_sha256(), g->secret, (int)g->secret_len, msg, llen + 8, outs[i],
			 &len) == NULL)
			return -1;
	}
	memcpy(k->name, name_full, sizeof(k->name));
	explicit_bzero(name_full, sizeof(name_full));
	return 0;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
	OSSL_PARAM params[3];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

static int ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
		     EVP_MAC_CTX *hctx, int enc)
{
	struct tls_generation *g = SSL_get_ex_data(ssl, ssl_gen_index);
	struct ticket_key k;
	int rc = -1;
	if (g == NULL || g->ticket_rotation == 0)
		return 0;
	uint64_t period = (uint64_t)time(NULL) / g->ticket_rotation;
	if (enc) {
		if (ticket_key_derive(g, period, &k) < 0 || RAND_bytes(iv, 16) != 1)
			goto out;
		memcpy(key_name, k.name, sizeof(k.name));
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    ticket_mac_init(hctx, k.hmac) < 0)
			goto out;
		rc = 1;
		goto out;
	}
	/* this period's key, then the previous one (ask for a fresh ticket) */
	rc = 0;
	for (uint64_t age = 0; age < 2 && age <= period; age++) {
		if (ticket_key_derive(g, period - age, &k) < 0) {
			rc = -1;
			break;
		}
		if (memcmp(key_name, k.name, sizeof(k.name)) != 0)
			continue;
		if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    ticket_mac_init(hctx, k.hmac) < 0) {
			rc = -1;
			break;
		}
		rc = age == 0 ? 1 : 2;
		break;
	}
out:
	explicit_bzero(&k, sizeof(k));
	return rc;
}

/* ---- contexts ---- */

static SSL_CTX *domain_lookup(const struct tls_generation *g, const char *host);

/* The first host_name of a ClientHello's server_name extension into
 * host (at most 255 bytes, no NUL); false when there is none. */
static bool hello_server_name(SSL *ssl, char host[256])
{
	const unsigned char *p;
	size_t len;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2)
		return false;
	size_t list = ((size_t)p[0] << 8) | p[1];
	if (list > len - 2)
		return false;
	for (size_t i = 2; i + 3 <= 2 + list;) {
		unsigned type = p[i];
		size_t n = ((size_t)p[i + 1] << 8) | p[i + 2];
		if (i + 3 + n > 2 + list)
			return false;
		if (type == TLSEXT_NAMETYPE_host_name) {
			if (n == 0 || n > 255 || memchr(p + i + 3, '\0', n) != NULL)
				return false;
			memcpy(host, p + i + 3, n);
			host[n] = '\0';
			return true;
		}
		i += 3 + n;
	}
	return false;
}

/* Chooses the certificate before the ClientHello's extensions are
 * processed, so that a session or ticket is looked up in the chosen
 * certificate's context: each has its own session id context (the
 * certificate's fingerprint), and a session made for one certificate is
 * not resumed under another's name (the servername callback comes too
 * late for that: the PSK extension is already processed). The one
 * lookup of a handshake: its outcome is kept for sni_cb. */
static int hello_cb(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	char host[256];
	struct tls_generation *g = SSL_get_ex_data(ssl, ssl_gen_index);
	SSL_CTX *ctx = NULL;
	if (g != NULL && hello_server_name(ssl, host))
		ctx = domain_lookup(g, host);
	if (SSL_set_ex_data(ssl, ssl_sni_index, ctx) != 1 ||
	    (ctx != NULL && ctx != SSL_get_SSL_CTX(ssl) && SSL_set_SSL_CTX(ssl, ctx) == NULL)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* The server_name extension is acknowledged (and kept in a new session)
 * when hello_cb chose a domain's certificate for it; otherwise the
 * service's or the default certificate serves, without a lookup here. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	(void)alert;
	(void)arg;
	return SSL_get_ex_data(ssl, ssl_sni_index) != NULL ? SSL_TLSEXT_ERR_OK
							   : SSL_TLSEXT_ERR_NOACK;
}

/* Client certificates are recorded, not trusted: accept whatever comes. */
static int verify_any(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

static SSL_CTX *ctx_new(const struct tls_settings *s, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_fail(error_r, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_security_level(ctx, TLS_SECURITY_LEVEL);
	if (SSL_CTX_set_min_proto_version(
		ctx, s->min_protocol == TLS_PROTOCOL_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
		tls_fail(error_r, "cannot set the minimum protocol");
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, s->ciphers) != 1) {
		tls_fail(error_r, "tls.ciphers '%s' names no usable cipher", s->ciphers);
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, s->ciphersuites) != 1) {
		tls_fail(error_r, "tls.ciphersuites '%s' is not usable", s->ciphersuites);
		goto fail;
	}
	if (SSL_CTX_set1_groups_list(ctx, s->groups) != 1) {
		tls_fail(error_r, "tls.groups '%s' is not usable", s->groups);
		goto fail;
	}
	SSL_CTX_set_dh_auto(ctx, 1);
	/* a client that closes without close_notify ends its session like
	 * one that sends it: the mail protocols delimit their own data */
	uint64_t opts =
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
	if (s->prefer_server_ciphers)
		opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
	if (s->ticket_key_rotation == 0)
		opts |= SSL_OP_NO_TICKET;
	SSL_CTX_set_options(ctx, opts);
	/* idle connections (IMAP IDLE) keep no read/write buffers */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
				       sizeof(TLS_SESSION_ID_CONTEXT) - 1);
	if (s->session_cache_size > 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, s->session_cache_size);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	SSL_CTX_set_timeout(ctx, s->session_timeout);
	if (s->ticket_key_rotation > 0)
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	if (s->request_client_certificate)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_any);
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* A context for one stored certificate. */
static SSL_CTX *ctx_for_cert(const struct tls_settings *s, const char *store_dir, const char *name,
			     const char **error_r)
{
	struct textbuf crt = TEXTBUF_INIT, chain = TEXTBUF_INIT, key_pem = TEXTBUF_INIT;
	STACK_OF(X509) *certs = NULL, *more = NULL;
	EVP_PKEY *key = NULL;
	SSL_CTX *ctx = NULL;
	int rc;

	if ((rc = tls_store_read(store_dir, TLS_STORE_CERT, name, &crt, error_r)) <= 0 ||
	    (rc = tls_store_read(store_dir, TLS_STORE_KEY, name, &key_pem, error_r)) <= 0) {
		if (rc == 0)
			tls_fail(error_r,
				 "certificate '%s' is assigned but %s.crt or %s.key is "
				 "missing",
				 name, name, name);
		goto out;
	}
	if (tls_store_read(store_dir, TLS_STORE_CHAIN, name, &chain, error_r) < 0)
		goto out;
	if (tls_pem_read_certs(crt.data, crt.len, &certs, error_r) < 0 ||
	    (chain.len > 0 && tls_pem_read_certs(chain.data, chain.len, &more, error_r) < 0) ||
	    tls_pem_read_key(key_pem.data, key_pem.len, &key, error_r) < 0)
		goto out;
	ctx = ctx_new(s, error_r);
	if (ctx == NULL)
		goto out;
	/* a certificate file that carries its chain, then the chain file */
	int used = tls_ctx_use_cert(ctx, certs, more, key);
	if (used < 0) {
		if (used == -1)
			tls_fail(error_r, "certificate '%s' cannot be used", name);
		else
			tls_fail(error_r, "certificate '%s': cannot use its chain", name);
		goto fail;
	}
	/* Sessions are the certificate's: one resumed under another name
	 * would skip the authentication of that name (hello_cb). */
	unsigned char fp[EVP_MAX_MD_SIZE];
	unsigned int fp_len = 0;
	if (X509_digest(sk_X509_value(certs, 0), EVP_sha256(), fp, &fp_len) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, fp, fp_len) != 1) {
		tls_fail(error_r, "certificate '%s': no session context", name);
		goto fail;
	}
	goto out;
fail:
	SSL_CTX_free(ctx);
	ctx = NULL;
out:
	tls_wipe(&key_pem);
	textbuf_free(&crt);
	textbuf_free(&chain);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(more, X509_free);
	EVP_PKEY_free(key);
	return ctx;
}

/* ---- generations ---- */

static void generation_free(struct tls_generation *g)
{
	for (size_t i = 0; i < g->n_certs; i++) {
		SSL_CTX_free(g->certs[i].ctx);
		free(g->certs[i].name);
	}
	free(g->certs);
	free(g->domains);
	free(g->services);
	explicit_bzero(g->secret, sizeof(g->secret));
	free(g);
}

static void generation_unref(struct tls_generation *g)
{
	if (atomic_fetch_sub(&g->refs, 1) == 1)
		generation_free(g);
}

static int compare_domains(const void *a, const void *b)
{
	return strcmp(((const struct tls_domain_ctx *)a)->domain,
		      ((const struct tls_domain_ctx *)b)->domain);
}

static SSL_CTX *domain_find(const struct tls_generation *g, const char *domain)
{
	struct tls_domain_ctx key;
	snprintf(key.domain, sizeof(key.domain), "%s", domain);
	const struct tls_domain_ctx *hit =
	    bsearch(&key, g->domains, g->n_domains, sizeof(*g->domains), compare_domains);
	return hit != NULL ? hit->ctx : NULL;
}

/* The host, then each parent domain: the longest assigned suffix wins. */
static SSL_CTX *domain_lookup(const struct tls_generation *g, const char *host)
{
	char name[TLS_DOMAIN_MAX + 1];
	size_t n = strlen(host);
	if (g->n_domains == 0 || n == 0 || n > TLS_DOMAIN_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		name[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
	name[n] = '\0';
	if (name[n - 1] == '.')
		name[n - 1] = '\0';
	for (const char *p = name; p != NULL && *p != '\0';) {
		SSL_CTX *ctx = domain_find(g, p);
		if (ctx != NULL)
			return ctx;
		p = strchr(p, '.');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static SSL_CTX *generation_cert(struct tls_generation *g, const char *name)
{
	for (size_t i = 0; i < g->n_certs; i++)
		if (strcmp(g->certs[i].name, name) == 0)
			return g->certs[i].ctx;
	return NULL;
}

/* The context that serves a certificate name, built once per generation. */
static SSL_CTX *generation_add_cert(struct tls_generation *g, const struct tls_settings *s,
				    const char *store_dir, const char *name, const char **error_r)
{
	SSL_CTX *ctx = generation_cert(g, name);
	if (ctx != NULL)
		return ctx;
	ctx = ctx_for_cert(s, store_dir, name, error_r);
	if (ctx == NULL)
		return NULL;
	struct tls_cert_ctx *grown = realloc(g->certs, (g->n_certs + 1) * sizeof(*grown));
	char *copy = strdup(name);
	if (grown != NULL)
		g->certs = grown;
	if (grown == NULL || copy == NULL) {
		free(copy);
		SSL_CTX_free(ctx);
		tls_fail(error_r, "out of memory");
		return NULL;
	}
	g->certs[g->n_certs].name = copy;
	g->certs[g->n_certs].ctx = ctx;
	/* names the certificate in tls_session_describe; lives as long as ctx */
	SSL_CTX_set_app_data(ctx, copy);
	g->n_certs++;
	return ctx;
}

/* Reads the shared ticket secret; 0 or -1 (errors). */
static int read_secret(const char *path, struct tls_generation *g, struct textbuf *errors)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		textbuf_printf(errors, "tls.ticket_key_file %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
		textbuf_printf(errors,
			       "tls.ticket_key_file %s: must be a regular file that others "
			       "cannot read (chmod 600 or 640)\n",
			       path);
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, g->secret, sizeof(g->secret));
	close(fd);
	if (n < TLS_SECRET_MIN) {
		textbuf_printf(errors,
			       "tls.ticket_key_file %s: needs at least %d bytes "
			       "(e.g. openssl rand -out FILE 48)\n",
			       path, TLS_SECRET_MIN);
		explicit_bzero(g->secret, sizeof(g->secret));
		return -1;
	}
	g->secret_len = (size_t)n;
	return 0;
}

static struct tls_generation *generation_build(struct tls_server *ts, const struct tls_settings *s,
					       struct textbuf *errors)
{
	struct tls_assignments a;
	const char *error = NULL;
	struct tls_generation *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		textbuf_puts(errors, "out of memory\n");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->ticket_rotation = s->ticket_key_rotation;
	if (s->ticket_key_file[0] != '\0') {
		if (read_secret(s->ticket_key_file, g, errors) < 0) {
			generation_free(g);
			return NULL;
		}
	} else {
		memcpy(g->secret, ts->random_secret, sizeof(ts->random_secret));
		g->secret_len = sizeof(ts->random_secret);
	}
	if (tls_assignments_load(ts->store_dir, &a, errors) < 0) {
		generation_free(g);
		return NULL;
	}
	bool failed = false;
	g->domains = calloc(a.n + 1, sizeof(*g->domains));
	g->services = calloc(a.n + 1, sizeof(*g->services));
	if (g->domains == NULL || g->services == NULL) {
		textbuf_puts(errors, "out of memory\n");
		failed = true;
	}
	for (size_t i = 0; i < a.n && !failed; i++) {
		const struct tls_assignment *it = &a.items[i];
		SSL_CTX *ctx = generation_add_cert(g, s, ts->store_dir, it->cert, &error);
		if (ctx == NULL) {
			textbuf_printf(errors, "%s\n", error);
			failed = true; /* report every broken certificate at once */
			continue;
		}
		if (it->kind == TLS_ASSIGN_DEFAULT) {
			g->default_ctx = ctx;
		} else if (it->kind == TLS_ASSIGN_DOMAIN) {
			struct tls_domain_ctx *d = &g->domains[g->n_domains++];
			snprintf(d->domain, sizeof(d->domain), "%s", it->target);
			d->ctx = ctx;
		} else {
			struct tls_service_ctx *sv = &g->services[g->n_services++];
			snprintf(sv->service, sizeof(sv->service), "%s", it->target);
			sv->ctx = ctx;
		}
	}
	tls_assignments_free(&a);
	if (failed) {
		generation_free(g);
		return NULL;
	}
	if (g->n_domains > 1)
		qsort(g->domains, g->n_domains, sizeof(*g->domains), compare_domains);
	return g;
}

static SSL_CTX *generation_service_ctx(const struct tls_generation *g, const char *service)
{
	for (size_t i = 0; i < g->n_services; i++)
		if (strcmp(g->services[i].service, service) == 0)
			return g->services[i].ctx;
	return g->default_ctx;
}

/* ---- the server ---- */

int tls_server_create(const struct tls_settings *s, const char *store_dir, struct tls_server **ts_r,
		      const char **error_r)
{
	pthread_once(&index_once, index_init);
	if (ssl_gen_index < 0 || ssl_sni_index < 0)
		return tls_fail(error_r, "OpenSSL: no ex_data index");
	if (tls_settings_check(s, error_r) < 0)
		return -1;
	struct tls_server *ts = calloc(1, sizeof(*ts));
	if (ts == NULL)
		return tls_fail(error_r, "out of memory");
	if (RAND_bytes(ts->random_secret, sizeof(ts->random_secret)) != 1) {
		free(ts);
		return tls_fail(error_r, "no randomness for the session ticket secret");
	}
	pthread_mutex_init(&ts->lock, NULL);
	pthread_mutex_init(&ts->reload_lock, NULL);
	ts->settings = *s;
	snprintf(ts->store_dir, sizeof(ts->store_dir), "%s", store_dir);
	*ts_r = ts;
	return 0;
}

void tls_server_set_settings(struct tls_server *ts, const struct tls_settings *s)
{
	pthread_mutex_lock(&ts->lock);
	ts->settings = *s;
	pthread_mutex_unlock(&ts->lock);
}

int tls_server_reload(struct tls_server *ts, struct textbuf *summary, struct textbuf *errors)
{
	const char *error = NULL;
	struct tls_settings s;
	pthread_mutex_lock(&ts->reload_lock);
	pthread_mutex_lock(&ts->lock);
	s = ts->settings;
	pthread_mutex_unlock(&ts->lock);

	struct tls_generation *g = NULL;
	int lock = -1;
	if (tls_settings_check(&s, &error) < 0)
		textbuf_printf(errors, "%s\n", error);
	else if ((lock = tls_store_lock(ts->store_dir, false, &error)) < 0)
		textbuf_printf(errors, "%s\n", error);
	else
		g = generation_build(ts, &s, errors);
	tls_store_unlock(lock);
	if (g == NULL) {
		pthread_mutex_unlock(&ts->reload_lock);
		return -1;
	}
	const char *default_name =
	    g->default_ctx != NULL ? SSL_CTX_get_app_data(g->default_ctx) : "none";
	textbuf_printf(summary,
		       "certificates=%zu default=%s services=%zu domains=%zu min_protocol=%s "
		       "tickets=%s",
		       g->n_certs, default_name, g->n_services, g->n_domains,
		       tls_protocol_name(s.min_protocol),
		       s.ticket_key_rotation == 0     ? "off"
		       : s.ticket_key_file[0] != '\0' ? "shared"
						      : "node");
	pthread_mutex_lock(&ts->lock);
	struct tls_generation *old = ts->current;
	ts->current = g;
	pthread_mutex_unlock(&ts->lock);
	if (old != NULL)
		generation_unref(old);
	pthread_mutex_unlock(&ts->reload_lock);
	return 0;
}

/* The current generation, with a reference for the caller. */
static struct tls_generation *current_ref(struct tls_server *ts)
{
	pthread_mutex_lock(&ts->lock);
	struct tls_generation *g = ts->current;
	if (g != NULL)
		atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&ts->lock);
	return g;
}

int tls_server_has_certificate(struct tls_server *ts, const char *service)
{
	struct tls_generation *g = current_ref(ts);
	int has = g != NULL && generation_service_ctx(g, service) != NULL;
	if (g != NULL)
		generation_unref(g);
	return has;
}

int tls_server_new_session(struct tls_server *ts, const char *service, struct ssl_st **ssl_r,
			   const char **error_r)
{
	struct tls_generation *g = current_ref(ts);
	SSL_CTX *ctx = g != NULL ? generation_service_ctx(g, service) : NULL;
	if (ctx == NULL) {
		if (g != NULL)
			generation_unref(g);
		return tls_fail(error_r, "no certificate for service %s (mailctl cert assign)",
				service);
	}
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		generation_unref(g);
		return tls_fail(error_r, "cannot create a TLS session");
	}
	/* from here the SSL owns the reference (ssl_gen_free) */
	if (SSL_set_ex_data(ssl, ssl_gen_index, g) != 1) {
		generation_unref(g);
		SSL_free(ssl);
		return tls_fail(error_r, "cannot attach the TLS session");
	}
	*ssl_r = ssl;
	return 0;
}

void tls_server_destroy(struct tls_server **tsp)
{
	if (tsp == NULL || *tsp == NULL)
		return;
	struct tls_server *ts = *tsp;
	if (ts->current != NULL)
		generation_unref(ts->current);
	explicit_bzero(ts->random_secret, sizeof(ts->random_secret));
	pthread_mutex_destroy(&ts->lock);
	pthread_mutex_destroy(&ts->reload_lock);
	free(ts);
	*tsp = NULL;
}

/* ---- describing sessions ---- */

void tls_session_describe(struct ssl_st *ssl, struct tls_session_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->protocol, sizeof(info->protocol), "%s", SSL_get_version(ssl));
	const char *cipher = SSL_get_cipher_name(ssl);
	snprintf(info->cipher, sizeof(info->cipher), "%s", cipher != NULL ? cipher : "");
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (sni != NULL) {
		/* a client-chosen string: keep it printable for logs */
		size_t i = 0;
		for (; sni[i] != '\0' && i + 1 < sizeof(info->sni); i++)
			info->sni[i] = (sni[i] > 0x20 && sni[i] < 0x7f) ? sni[i] : '?';
		info->sni[i] = '\0';
	}
	const char *cert = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	snprintf(info->certificate, sizeof(info->certificate), "%s", cert != NULL ? cert : "");
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (peer != NULL) {
		BIO *bio = BIO_new(BIO_s_mem());
		if (bio != NULL &&
		    X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
			char *data = NULL;
			long n = BIO_get_mem_data(bio, &data);
			if (n > 0)
				snprintf(info->client_subject, sizeof(info->client_subject), "%.*s",
					 (int)n, data);
		}
		BIO_free(bio);
	}
	info->resumed = SSL_session_reused(ssl) == 1;
	ERR_clear_error();
}

void tls_session_close(struct ssl_st *ssl)
{
	(void)SSL_shutdown(ssl);
	SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
	ERR_clear_error();
}

void tls_error_text(unsigned long code, char *buf, size_t size)
{
	const char *reason = ERR_reason_error_string(code);
	if (reason != NULL)
		snprintf(buf, size, "%s", reason);
	else
		snprintf(buf, size, "error %lu", code);
}
