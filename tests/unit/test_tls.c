/*
 * Unit tests for TLS certificates and contexts (node/tls.h, tls_cert.h,
 * tls_store.h): name lists, expiry arithmetic, generation and inspection,
 * the import checks (key mismatch, chain order, expiry, weak and
 * encrypted keys), the store layout and its file modes, the assignment
 * file, context creation from good and bad files, SNI selection, and
 * session resumption by ticket across servers sharing a ticket secret.
 *
 * Handshakes run in memory: a client SSL and a server SSL joined by two
 * memory BIOs, stepped in turn until both are done, so no socket or
 * thread is involved. The test builds its own CA chains with OpenSSL
 * directly; that code is test fixture, not product.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "node/node_config.h"
#include "node/tls.h"
#include "node/tls_cert.h"
#include "node/tls_store.h"

/* ---- fixtures ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_store(void)
{
	char tmpl[] = "/tmp/cm-tls-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	return strdup(dir);
}

/* A self-signed certificate through the product code. */
static void gen_cert(const char *names_csv, enum tls_key_type type, unsigned days, time_t now,
		     struct textbuf *crt, struct textbuf *key)
{
	struct tls_names names;
	const char *error = NULL;
	assert_int_equal(tls_names_parse(names_csv, &names, &error), 0);
	if (tls_cert_generate(&names, type, days, now, crt, key, &error) < 0)
		fail_msg("generate %s: %s", names_csv, error);
	tls_names_free(&names);
}

static void store_cert(const char *store, const char *name, const char *names_csv)
{
	struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT;
	const char *error = NULL;
	gen_cert(names_csv, TLS_KEY_P256, 30, time(NULL), &crt, &key);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, name, crt.data, crt.len, &error),
			 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_KEY, name, key.data, key.len, &error), 0);
	textbuf_free(&crt);
	tls_wipe(&key);
}

static void write_assignments(const char *store, const char *text)
{
	struct tls_assignments a = { 0 };
	struct textbuf errors = TEXTBUF_INIT;
	const char *error = NULL;
	if (tls_assignments_parse(text, strlen(text), &a, &errors) < 0)
		fail_msg("assignments: %s", textbuf_str(&errors));
	assert_int_equal(tls_assignments_save(store, &a, &error), 0);
	tls_assignments_free(&a);
	textbuf_free(&errors);
}

/* A CA-style certificate signed by issuer (or self-signed), for chains. */
static X509 *make_x509(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
		       long not_before_off, long not_after_off)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff) + 1);
	X509_gmtime_adj(X509_getm_notBefore(x), not_before_off);
	X509_gmtime_adj(X509_getm_notAfter(x), not_after_off);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x));
	X509_set_pubkey(x, key);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
						  ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ca) {
		char san[128];
		snprintf(san, sizeof(san), "DNS:%s", cn);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void x509_pem(X509 *x, struct textbuf *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, x);
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	textbuf_append(out, data, (size_t)n);
	BIO_free(bio);
}

static void key_pem(EVP_PKEY *key, struct textbuf *out, const char *passphrase)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (passphrase != NULL)
		PEM_write_bio_PrivateKey(bio, key, EVP_aes_256_cbc(), NULL, 0, NULL,
					 (void *)passphrase);
	else
		PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	textbuf_append(out, data, (size_t)n);
	BIO_free(bio);
}

/* ---- in-memory handshakes ---- */

struct pair {
	SSL *client, *server;
};

static SSL_CTX *client_ctx(int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

/* Runs a handshake; returns 1 when both sides finished, 0 if one failed. */
static int handshake(struct tls_server *ts, const char *service, SSL_CTX *cctx, const char *sni,
		     SSL_SESSION *resume, struct pair *p)
{
	const char *error = NULL;
	assert_int_equal(tls_server_new_session(ts, service, &p->server, &error), 0);
	p->client = SSL_new(cctx);
	assert_non_null(p->client);
	if (sni != NULL)
		SSL_set_tlsext_host_name(p->client, sni);
	if (resume != NULL)
		SSL_set_session(p->client, resume);
	BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(c2s, -1);
	BIO_set_mem_eof_return(s2c, -1);
	BIO_up_ref(c2s);
	BIO_up_ref(s2c);
	SSL_set_bio(p->server, c2s, s2c);
	SSL_set_bio(p->client, s2c, c2s);
	SSL_set_accept_state(p->server);
	SSL_set_connect_state(p->client);
	int cdone = 0, sdone = 0;
	for (int i = 0; i < 50 && !(cdone == 1 && sdone == 1); i++) {
		if (cdone != 1) {
			int r = SSL_do_handshake(p->client);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(p->client, r) != SSL_ERROR_WANT_READ)
				break;
		}
		if (sdone != 1) {
			int r = SSL_do_handshake(p->server);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(p->server, r) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	ERR_clear_error();
	if (cdone != 1 || sdone != 1)
		return 0;
	/* TLS 1.3 tickets come after the handshake: let the client read them */
	char byte = 'x', got;
	assert_int_equal(SSL_write(p->server, &byte, 1), 1);
	assert_int_equal(SSL_read(p->client, &got, 1), 1);
	return 1;
}

/* A clean end on both sides (close_notify): OpenSSL marks a session freed
 * without one as not resumable. */
static void pair_free(struct pair *p)
{
	if (p->client != NULL && SSL_is_init_finished(p->client))
		SSL_shutdown(p->client);
	if (p->server != NULL && SSL_is_init_finished(p->server))
		SSL_shutdown(p->server);
	ERR_clear_error();
	SSL_free(p->client);
	SSL_free(p->server);
	p->client = p->server = NULL;
}

static struct tls_server *server_for(const char *store, const struct tls_settings *s)
{
	struct tls_server *ts = NULL;
	struct tls_settings defaults;
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	const char *error = NULL;
	if (s == NULL) {
		tls_settings_defaults(&defaults);
		s = &defaults;
	}
	assert_int_equal(tls_server_create(s, store, &ts, &error), 0);
	if (tls_server_reload(ts, &summary, &errors) < 0)
		fail_msg("reload: %s", textbuf_str(&errors));
	textbuf_free(&summary);
	textbuf_free(&errors);
	return ts;
}

/* ---- tests ---- */

static void test_names_parse(void **unused)
{
	static const struct {
		const char *in;
		const char *want; /* joined, or NULL for an error */
	} cases[] = {
		{ "mail.example.test", "mail.example.test" },
		{ "A.Example.TEST, b.example.test", "a.example.test, b.example.test" },
		{ "*.example.test,example.test", "*.example.test, example.test" },
		{ "localhost,127.0.0.1,::1", "localhost, 127.0.0.1, ::1" },
		{ "x.test,x.test,X.TEST", "x.test" },
		{ "", NULL },
		{ "a,,b", NULL },
		{ "bad_name.test", NULL },
		{ "*.test.*", NULL },
		{ "*.", NULL },
		{ "*.com", NULL },
		{ "a b.test", NULL },
		{ "DNS:x.test", NULL },
		{ "x.test,IP:1.2.3.4", NULL },
	};
	(void)unused;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tls_names names;
		const char *error = NULL;
		int rc = tls_names_parse(cases[i].in, &names, &error);
		if (cases[i].want == NULL) {
			if (rc == 0)
				fail_msg("'%s': accepted, want an error", cases[i].in);
			continue;
		}
		if (rc < 0)
			fail_msg("'%s': %s", cases[i].in, error);
		struct textbuf got = TEXTBUF_INIT;
		tls_names_join(&names, &got);
		if (strcmp(got.data, cases[i].want) != 0)
			fail_msg("'%s': got '%s', want '%s'", cases[i].in, got.data, cases[i].want);
		textbuf_free(&got);
		tls_names_free(&names);
	}
}

static void test_days_left(void **unused)
{
	static const struct {
		long long after_minus_now;
		long want;
	} cases[] = {
		{ 0, 0 },
		{ 1, 0 },
		{ 86399, 0 },
		{ 86400, 1 },
		{ 30 * 86400 - 1, 29 },
		{ 30 * 86400, 30 },
		{ -1, -1 },
		{ -86400, -1 },
		{ -86401, -2 },
		{ 365LL * 86400, 365 },
	};
	(void)unused;
	time_t now = 1700000000;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long got = tls_days_left(now + (time_t)cases[i].after_minus_now, now);
		if (got != cases[i].want)
			fail_msg("after-now=%lld: got %ld, want %ld", cases[i].after_minus_now, got,
				 cases[i].want);
	}
}

static void test_generate_inspect(void **unused)
{
	(void)unused;
	time_t now = time(NULL);
	static const struct {
		enum tls_key_type type;
		const char *key;
	} kinds[] = { {TLS_KEY_RSA2048, "RSA 2048" }, {TLS_KEY_P256, "EC prime256v1"} };
	for (size_t k = 0; k < 2; k++) {
		struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT;
		struct tls_cert_info info;
		const char *error = NULL;
		gen_cert("mail.example.test,localhost,127.0.0.1", kinds[k].type, 90, now, &crt,
			 &key);
		assert_non_null(strstr(crt.data, "BEGIN CERTIFICATE"));
		assert_non_null(strstr(key.data, "BEGIN PRIVATE KEY"));
		assert_int_equal(tls_cert_inspect(crt.data, crt.len, now, &info, &error), 0);
		assert_string_equal(info.subject, "CN=mail.example.test");
		assert_string_equal(info.issuer, "CN=mail.example.test");
		assert_true(info.self_signed);
		assert_string_equal(info.key, kinds[k].key);
		assert_int_equal(info.names.n, 3);
		assert_string_equal(info.names.v[2], "127.0.0.1");
		assert_int_equal(info.not_before, now - 3600);
		assert_int_equal(info.not_after, now + 90 * 86400);
		assert_int_equal(info.days_left, 90);
		struct tls_cert_info later;
		assert_int_equal(tls_cert_inspect(crt.data, crt.len, now + 60, &later, &error), 0);
		assert_int_equal(later.days_left, 89);
		tls_cert_info_free(&later);
		assert_int_equal(strlen(info.sha256), 95);
		assert_int_equal(tls_cert_covers_domain(&info, "example.test"), 1);
		assert_int_equal(tls_cert_covers_domain(&info, "other.test"), 0);
		assert_int_equal(tls_pem_count_certs(crt.data, crt.len), 1);
		tls_cert_info_free(&info);
		textbuf_free(&crt);
		tls_wipe(&key);
	}
	/* garbage and empty input */
	struct tls_cert_info info;
	const char *error = NULL;
	assert_int_equal(tls_cert_inspect("junk", 4, now, &info, &error), -1);
	assert_non_null(strstr(error, "no certificate"));
	assert_int_equal(tls_pem_count_certs("", 0), 0);
}

static void test_import_checks(void **unused)
{
	(void)unused;
	time_t now = time(NULL);
	struct textbuf crt_a = TEXTBUF_INIT, key_a = TEXTBUF_INIT, crt_b = TEXTBUF_INIT,
		       key_b = TEXTBUF_INIT;
	gen_cert("a.example.test", TLS_KEY_P256, 365, now, &crt_a, &key_a);
	gen_cert("b.example.test", TLS_KEY_RSA2048, 10, now, &crt_b, &key_b);

	/* a CA, an intermediate, a leaf, each signed by the one before */
	EVP_PKEY *root_key = EVP_EC_gen("P-256"), *inter_key = EVP_EC_gen("P-256"),
		 *leaf_key = EVP_EC_gen("P-256"), *weak_key = EVP_RSA_gen(1024);
	X509 *root = make_x509("Test Root", root_key, NULL, NULL, true, -3600, 86400 * 100);
	X509 *inter =
	    make_x509("Test Intermediate", inter_key, root, root_key, true, -3600, 86400 * 100);
	X509 *leaf =
	    make_x509("leaf.example.test", leaf_key, inter, inter_key, false, -3600, 86400 * 100);
	X509 *expired =
	    make_x509("old.example.test", leaf_key, inter, inter_key, false, -86400 * 10, -86400);
	X509 *weak = make_x509("weak.example.test", weak_key, NULL, NULL, false, -3600, 86400);
	struct textbuf root_pem = TEXTBUF_INIT, inter_pem = TEXTBUF_INIT, leaf_pem = TEXTBUF_INIT,
		       leaf_key_pem = TEXTBUF_INIT, expired_pem = TEXTBUF_INIT,
		       weak_pem = TEXTBUF_INIT, weak_key_pem = TEXTBUF_INIT,
		       enc_key_pem = TEXTBUF_INIT, full = TEXTBUF_INIT, wrong_order = TEXTBUF_INIT;
	x509_pem(root, &root_pem);
	x509_pem(inter, &inter_pem);
	x509_pem(leaf, &leaf_pem);
	x509_pem(expired, &expired_pem);
	x509_pem(weak, &weak_pem);
	key_pem(leaf_key, &leaf_key_pem, NULL);
	key_pem(weak_key, &weak_key_pem, NULL);
	key_pem(leaf_key, &enc_key_pem, "secret");
	textbuf_puts(&full, leaf_pem.data);
	textbuf_puts(&full, inter_pem.data);
	textbuf_puts(&wrong_order, root_pem.data);
	textbuf_puts(&wrong_order, inter_pem.data);

	static const char *const ok = NULL;
	const struct {
		const char *name;
		const struct textbuf *cert, *key, *chain;
		const char *want_error; /* substring; NULL = accepted */
		size_t want_chain;
		const char *want_note;
	} cases[] = {
		{ "self-signed", &crt_a, &key_a, NULL, ok, 0, NULL },
		{ "key of another certificate", &crt_a, &key_b, NULL, "does not match", 0, NULL },
		{ "leaf + chain file", &leaf_pem, &leaf_key_pem, &inter_pem, ok, 1, NULL },
		{ "full chain in the certificate file", &full, &leaf_key_pem, NULL, ok, 1, NULL },
		{ "chain with its root", &full, &leaf_key_pem, &root_pem, ok, 2, "self-signed root" },
		{ "chain out of order", &leaf_pem, &leaf_key_pem, &wrong_order, "out of order", 0, NULL },
		{ "chain of another issuer", &leaf_pem, &leaf_key_pem, &root_pem, "out of order", 0,
		  NULL },
		{ "expired", &expired_pem, &leaf_key_pem, &inter_pem, "expired", 0, NULL },
		{ "expiring soon", &crt_b, &key_b, NULL, ok, 0, "expires in" },
		{ "weak key", &weak_pem, &weak_key_pem, NULL, "too weak", 0, NULL },
		{ "encrypted key", &leaf_pem, &enc_key_pem, &inter_pem, "encrypted", 0, NULL },
		{ "no key", &crt_a, &root_pem, NULL, "no private key", 0, NULL },
		{ "no certificate", &key_a, &key_a, NULL, "no certificate", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf leaf_r = TEXTBUF_INIT, chain_r = TEXTBUF_INIT, key_r = TEXTBUF_INIT,
			       notes = TEXTBUF_INIT;
		const char *error = NULL;
		const struct textbuf *ch = cases[i].chain;
		int rc = tls_cert_check_import(
		    cases[i].cert->data, cases[i].cert->len, cases[i].key->data, cases[i].key->len,
		    ch != NULL ? ch->data : NULL, ch != NULL ? ch->len : 0, now, &leaf_r, &chain_r,
		    &key_r, &notes, &error);
		if (cases[i].want_error != NULL) {
			if (rc == 0 || strstr(error, cases[i].want_error) == NULL)
				fail_msg("%s: got rc=%d \"%s\", want an error with \"%s\"",
					 cases[i].name, rc, rc < 0 ? error : "",
					 cases[i].want_error);
		} else {
			if (rc < 0)
				fail_msg("%s: refused: %s", cases[i].name, error);
			size_t n = tls_pem_count_certs(chain_r.data, chain_r.len);
			if (n != cases[i].want_chain)
				fail_msg("%s: chain of %zu, want %zu", cases[i].name, n,
					 cases[i].want_chain);
			assert_int_equal(tls_pem_count_certs(leaf_r.data, leaf_r.len), 1);
			assert_non_null(strstr(key_r.data, "BEGIN PRIVATE KEY"));
			if (cases[i].want_note != NULL &&
			    strstr(textbuf_str(&notes), cases[i].want_note) == NULL)
				fail_msg("%s: notes \"%s\", want \"%s\"", cases[i].name,
					 textbuf_str(&notes), cases[i].want_note);
		}
		textbuf_free(&leaf_r);
		textbuf_free(&chain_r);
		tls_wipe(&key_r);
		textbuf_free(&notes);
	}
	X509_free(root);
	X509_free(inter);
	X509_free(leaf);
	X509_free(expired);
	X509_free(weak);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(inter_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(weak_key);
	struct textbuf *bufs[] = {
		&crt_a, &key_a, &crt_b, &key_b, &root_pem, &inter_pem, &leaf_pem,
		&leaf_key_pem, &expired_pem, &weak_pem, &weak_key_pem, &enc_key_pem, &full,
		&wrong_order,
	};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		textbuf_free(bufs[i]);
}

static int collect_name(const char *name, void *ctx)
{
	struct textbuf *out = ctx;
	textbuf_printf(out, "%s;", name);
	return 0;
}

static void test_store_layout(void **unused)
{
	(void)unused;
	static const struct {
		const char *name;
		bool valid;
	} names[] = {
		{ "default", true },
		{ "mail.example.test", true },
		{ "a_b-c.1", true },
		{ "", false },
		{ ".hidden", false },
		{ "../etc", false },
		{ "a/b", false },
		{ "-dash", false },
		{ "sp ace", false },
		{ "x\nline", false },
		{ "a1234567890123456789012345678901234567890123456789012345678901234", false },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (tls_store_name_valid(names[i].name) != names[i].valid)
			fail_msg("name '%s': got %d, want %d", names[i].name, !names[i].valid,
				 names[i].valid);

	char *store = make_store();
	const char *error = NULL;
	struct textbuf data = TEXTBUF_INIT;
	assert_int_equal(tls_store_read(store, TLS_STORE_CERT, "x", &data, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, "x", "cert", 4, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_KEY, "x", "key", 3, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_PENDING_KEY, "y", "pk", 2, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, "../x", "no", 2, &error), -1);
	assert_non_null(strstr(error, "not a certificate name"));
	static const struct {
		enum tls_store_kind kind;
		const char *name;
		const char *path;
		mode_t mode;
	} files[] = {
		{ TLS_STORE_CERT, "x", "/tls/certs/x.crt", 0640 },
		{ TLS_STORE_KEY, "x", "/tls/certs/x.key", 0600 },
		{ TLS_STORE_PENDING_KEY, "y", "/tls/pending/y.key", 0600 },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[1200], want[1200];
		struct stat st;
		assert_int_equal(
		    tls_store_path(store, files[i].kind, files[i].name, path, sizeof(path)), 0);
		snprintf(want, sizeof(want), "%s%s", store, files[i].path);
		assert_string_equal(path, want);
		assert_int_equal(stat(path, &st), 0);
		if ((st.st_mode & 07777) != files[i].mode)
			fail_msg("%s: mode %o, want %o", path, st.st_mode & 07777, files[i].mode);
	}
	assert_int_equal(tls_store_read(store, TLS_STORE_KEY, "x", &data, &error), 1);
	assert_string_equal(data.data, "key");
	/* rewriting replaces; no temporary file is left behind */
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, "x", "cert2", 5, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, "w", "c", 1, &error), 0);
	struct textbuf listed = TEXTBUF_INIT;
	assert_int_equal(tls_store_list(store, TLS_STORE_CERT, collect_name, &listed, &error), 0);
	assert_string_equal(listed.data, "w;x;");
	textbuf_truncate(&listed, 0);
	assert_int_equal(tls_store_list(store, TLS_STORE_KEY, collect_name, &listed, &error), 0);
	assert_string_equal(listed.data, "x;");
	/* staged: invisible (old contents, not listed) until installed, with
	 * its mode from the start; discarded: gone */
	struct tls_store_staged st, gone, none = {0};
	struct stat tst;
	assert_int_equal(tls_store_stage(store, TLS_STORE_KEY, "x", "key2", 4, &st, &error), 0);
	assert_int_equal(tls_store_stage(store, TLS_STORE_CERT, "v", "c", 1, &gone, &error), 0);
	assert_int_equal(stat(st.tmp, &tst), 0);
	assert_int_equal(tst.st_mode & 07777, 0600);
	assert_int_equal(tls_store_read(store, TLS_STORE_KEY, "x", &data, &error), 1);
	assert_string_equal(data.data, "key");
	textbuf_truncate(&listed, 0);
	assert_int_equal(tls_store_list(store, TLS_STORE_CERT, collect_name, &listed, &error), 0);
	assert_string_equal(listed.data, "w;x;");
	char gone_tmp[sizeof(gone.tmp)];
	snprintf(gone_tmp, sizeof(gone_tmp), "%s", gone.tmp);
	tls_store_discard(&gone);
	assert_int_equal(stat(gone_tmp, &tst), -1);
	assert_int_equal(tls_store_install(&gone, &error), 0); /* holds nothing */
	assert_int_equal(tls_store_install(&none, &error), 0);
	assert_int_equal(tls_store_install(&st, &error), 0);
	assert_int_equal(tls_store_read(store, TLS_STORE_KEY, "x", &data, &error), 1);
	assert_string_equal(data.data, "key2");
	assert_int_equal(tls_store_read(store, TLS_STORE_CERT, "v", &data, &error), 0);
	assert_int_equal(tls_store_stage(store, TLS_STORE_CERT, "../v", "c", 1, &st, &error), -1);
	tls_store_discard(&st);
	/* a pending key moves into place */
	assert_int_equal(tls_store_adopt_pending_key(store, "y", &error), 0);
	assert_int_equal(tls_store_read(store, TLS_STORE_KEY, "y", &data, &error), 1);
	assert_string_equal(data.data, "pk");
	assert_int_equal(tls_store_read(store, TLS_STORE_PENDING_KEY, "y", &data, &error), 0);
	assert_int_equal(tls_store_remove(store, TLS_STORE_CERT, "w", &error), 1);
	assert_int_equal(tls_store_remove(store, TLS_STORE_CERT, "w", &error), 0);
	textbuf_free(&listed);
	textbuf_free(&data);
	rm_tree(store);
	free(store);
}

static void test_assignments(void **unused)
{
	(void)unused;
	static const struct {
		const char *text;
		const char *want; /* formatted back (without the comment line), or error text */
		bool ok;
	} cases[] = {
		{ "", "", true },
		{ "# nothing\n\n", "", true },
		{ "default d\n", "default d\n", true },
		{ "domain Example.ORG cert1\r\ndefault d\nservice imaps s\n",
		  "default d\nservice imaps s\ndomain example.org cert1\n", true },
		{ "  domain   b.test  x  \n\tdomain a.test y", "domain a.test y\ndomain b.test x\n",
		  true },
		{ "default\n", "line 1: expected", false },
		{ "default a b\n", "line 1: expected", false },
		{ "default d\ndefault e\n", "line 2: assigned twice", false },
		{ "domain bad_domain x\n", "line 1:", false },
		{ "service IMAPS x\n", "line 1: not a service name", false },
		{ "domain a.test ../x\n", "line 1: not a certificate name", false },
		{ "host a.test x\n", "line 1: expected", false },
		{ "default d\n\ndomain a.test x y\n", "line 3: expected", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tls_assignments a = { 0 };
		struct textbuf errors = TEXTBUF_INIT, out = TEXTBUF_INIT;
		int rc = tls_assignments_parse(cases[i].text, strlen(cases[i].text), &a, &errors);
		if (cases[i].ok) {
			if (rc < 0)
				fail_msg("case %zu: %s", i, textbuf_str(&errors));
			tls_assignments_format(&a, &out);
			const char *body = strchr(out.data, '\n') + 1; /* past the comment */
			if (strcmp(body, cases[i].want) != 0)
				fail_msg("case %zu: got \"%s\", want \"%s\"", i, body,
					 cases[i].want);
			/* the formatted file parses back to itself */
			struct tls_assignments again = { 0 };
			assert_int_equal(tls_assignments_parse(out.data, out.len, &again, &errors),
					 0);
			assert_int_equal(again.n, a.n);
			tls_assignments_free(&again);
		} else if (rc == 0 || strstr(textbuf_str(&errors), cases[i].want) == NULL) {
			fail_msg("case %zu: got rc=%d \"%s\", want \"%s\"", i, rc,
				 textbuf_str(&errors), cases[i].want);
		}
		tls_assignments_free(&a);
		textbuf_free(&errors);
		textbuf_free(&out);
	}
	/* set, replace, remove */
	struct tls_assignments a = { 0 };
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DOMAIN, "a.test", "x"), 1);
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DOMAIN, "a.test", "x"), 0);
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DOMAIN, "a.test", "y"), 1);
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DEFAULT, "ignored", "y"), 1);
	assert_string_equal(tls_assignments_get(&a, TLS_ASSIGN_DEFAULT, ""), "y");
	assert_int_equal(tls_assignments_uses(&a, "y"), 2);
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DOMAIN, "a.test", NULL), 1);
	assert_int_equal(tls_assignments_set(&a, TLS_ASSIGN_DOMAIN, "a.test", NULL), 0);
	assert_null(tls_assignments_get(&a, TLS_ASSIGN_DOMAIN, "a.test"));
	tls_assignments_free(&a);
}

static void test_contexts_and_sni(void **unused)
{
	(void)unused;
	char *store = make_store();
	store_cert(store, "fallback", "default.example.test");
	store_cert(store, "dom", "mail.dom.test,dom.test");
	store_cert(store, "sub", "deep.sub.dom.test");
	store_cert(store, "svc", "imaps.example.test");
	write_assignments(store, "default fallback\ndomain dom.test dom\n"
				 "domain sub.dom.test sub\nservice imaps svc\n");
	struct tls_server *ts = server_for(store, NULL);
	SSL_CTX *cctx = client_ctx(0);
	static const struct {
		const char *service;
		const char *sni;
		const char *want_cert;
	} cases[] = {
		{ "imap", NULL, "fallback" },
		{ "imap", "unknown.test", "fallback" },
		{ "imap", "dom.test", "dom" },
		{ "imap", "mail.dom.test", "dom" },
		{ "imap", "MAIL.DOM.TEST", "dom" },
		{ "imap", "mail.dom.test.", "dom" },
		{ "imap", "sub.dom.test", "sub" }, /* the longest assigned domain wins */
		{ "imap", "x.deep.sub.dom.test", "sub" },
		{ "imap", "notdom.test", "fallback" }, /* a suffix, not a subdomain */
		{ "imaps", NULL, "svc" },
		{ "imaps", "other.test", "svc" },
		{ "imaps", "mail.dom.test", "dom" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pair p;
		struct tls_session_info ti;
		if (!handshake(ts, cases[i].service, cctx, cases[i].sni, NULL, &p))
			fail_msg("case %zu: handshake failed", i);
		tls_session_describe(p.server, &ti);
		if (strcmp(ti.certificate, cases[i].want_cert) != 0)
			fail_msg("service %s sni %s: served %s, want %s", cases[i].service,
				 cases[i].sni ? cases[i].sni : "-", ti.certificate,
				 cases[i].want_cert);
		/* and the client really got that certificate */
		char cn[128] = "";
		X509_NAME_get_text_by_NID(
		    X509_get_subject_name(SSL_get0_peer_certificate(p.client)), NID_commonName, cn,
		    sizeof(cn));
		assert_true(cn[0] != '\0');
		assert_string_equal(ti.protocol, "TLSv1.3");
		assert_false(ti.resumed);
		pair_free(&p);
	}
	assert_int_equal(tls_server_has_certificate(ts, "smtp"), 1);

	/* without a default, a service without its own certificate has none */
	write_assignments(store, "service imaps svc\n");
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	assert_int_equal(tls_server_reload(ts, &summary, &errors), 0);
	assert_non_null(strstr(summary.data, "certificates=1 default=none services=1 domains=0"));
	assert_int_equal(tls_server_has_certificate(ts, "smtp"), 0);
	assert_int_equal(tls_server_has_certificate(ts, "imaps"), 1);
	SSL *ssl = NULL;
	const char *error = NULL;
	assert_int_equal(tls_server_new_session(ts, "smtp", &ssl, &error), -1);
	assert_non_null(strstr(error, "no certificate for service smtp"));
	textbuf_free(&summary);
	textbuf_free(&errors);
	SSL_CTX_free(cctx);
	tls_server_destroy(&ts);
	assert_null(ts);
	rm_tree(store);
	free(store);
}

static void test_bad_files_keep_the_running_set(void **unused)
{
	(void)unused;
	char *store = make_store();
	const char *error = NULL;
	store_cert(store, "good", "good.test");
	write_assignments(store, "default good\n");
	struct tls_server *ts = server_for(store, NULL);

	struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT, other_crt = TEXTBUF_INIT,
		       other_key = TEXTBUF_INIT;
	gen_cert("mismatch.test", TLS_KEY_P256, 30, time(NULL), &crt, &key);
	gen_cert("other.test", TLS_KEY_P256, 30, time(NULL), &other_crt, &other_key);
	static const struct {
		const char *what;
		const char *assignments;
		const char *want;
	} cases[] = {
		{ "missing certificate", "default nothere\n", "nothere.crt or nothere.key is missing" },
		{ "key mismatch", "default mismatch\n", "cannot be used" },
		{ "garbage certificate", "default garbage\n", "no certificate" },
		{ "broken assignment file", "default good\ndefault good\n", "assigned twice" },
	};
	assert_int_equal(
	    tls_store_write(store, TLS_STORE_CERT, "mismatch", crt.data, crt.len, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_KEY, "mismatch", other_key.data,
					 other_key.len, &error),
			 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, "garbage", "junk\n", 5, &error), 0);
	assert_int_equal(
	    tls_store_write(store, TLS_STORE_KEY, "garbage", key.data, key.len, &error), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/tls/assignments", store);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(cases[i].assignments, f);
		fclose(f);
		struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
		assert_int_equal(tls_server_reload(ts, &summary, &errors), -1);
		if (strstr(textbuf_str(&errors), cases[i].want) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].what, textbuf_str(&errors),
				 cases[i].want);
		/* still serving the good certificate */
		assert_int_equal(tls_server_has_certificate(ts, "imaps"), 1);
		textbuf_free(&summary);
		textbuf_free(&errors);
	}
	SSL_CTX *cctx = client_ctx(0);
	struct pair p;
	struct tls_session_info ti;
	assert_true(handshake(ts, "imaps", cctx, NULL, NULL, &p));
	tls_session_describe(p.server, &ti);
	assert_string_equal(ti.certificate, "good");
	pair_free(&p);
	SSL_CTX_free(cctx);

	/* bad settings are refused before any file is read */
	struct tls_settings s;
	tls_settings_defaults(&s);
	snprintf(s.ciphers, sizeof(s.ciphers), "NOT-A-CIPHER");
	assert_int_equal(tls_settings_check(&s, &error), -1);
	assert_non_null(strstr(error, "tls.ciphers"));
	tls_settings_defaults(&s);
	snprintf(s.groups, sizeof(s.groups), "nosuchgroup");
	assert_int_equal(tls_settings_check(&s, &error), -1);
	textbuf_free(&crt);
	textbuf_free(&other_crt);
	tls_wipe(&key);
	tls_wipe(&other_key);
	tls_server_destroy(&ts);
	rm_tree(store);
	free(store);
}

/* A session from one server resumed on another: tickets need a shared
 * secret; TLS 1.2 session IDs need the same process (cache). */
static void test_resumption(void **unused)
{
	(void)unused;
	char *store = make_store();
	store_cert(store, "c", "c.test");
	write_assignments(store, "default c\n");
	char secret_path[1000];
	snprintf(secret_path, sizeof(secret_path), "%s/ticket.secret", store);
	unsigned char secret[48];
	RAND_bytes(secret, sizeof(secret));
	FILE *f = fopen(secret_path, "wb");
	fwrite(secret, 1, sizeof(secret), f);
	fclose(f);
	chmod(secret_path, 0600);

	struct tls_settings shared;
	tls_settings_defaults(&shared);
	snprintf(shared.ticket_key_file, sizeof(shared.ticket_key_file), "%s", secret_path);
	struct tls_server *a = server_for(store, &shared);
	struct tls_server *b = server_for(store, &shared);
	struct tls_server *lone = server_for(store, NULL);
	struct tls_settings no_tickets;
	tls_settings_defaults(&no_tickets);
	no_tickets.ticket_key_rotation = 0;
	struct tls_server *cache_only = server_for(store, &no_tickets);

	static const struct {
		int version;
		int first, second; /* 0 a, 1 b, 2 lone, 3 cache_only */
		bool want_resumed;
	} cases[] = {
		{ TLS1_3_VERSION, 0, 0, true },
		{ TLS1_3_VERSION, 0, 1, true },
		{ TLS1_3_VERSION, 0, 2, false },
		{ TLS1_2_VERSION, 0, 1, true },
		{ TLS1_2_VERSION, 3, 3, true },
		{ TLS1_3_VERSION, 3, 3, true },
		{ TLS1_2_VERSION, 2, 0, false },
	};
	struct tls_server *servers[] = { a, b, lone, cache_only };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *cctx = client_ctx(cases[i].version);
		struct pair p;
		assert_true(handshake(servers[cases[i].first], "imaps", cctx, "c.test", NULL, &p));
		SSL_SESSION *sess = SSL_get1_session(p.client);
		assert_non_null(sess);
		pair_free(&p);
		assert_true(handshake(servers[cases[i].second], "imaps", cctx, "c.test", sess, &p));
		struct tls_session_info ti;
		tls_session_describe(p.server, &ti);
		if (ti.resumed != cases[i].want_resumed ||
		    (SSL_session_reused(p.client) == 1) != cases[i].want_resumed)
			fail_msg("case %zu (%s, server %d then %d): resumed=%d, want %d", i,
				 ti.protocol, cases[i].first, cases[i].second, ti.resumed,
				 cases[i].want_resumed);
		pair_free(&p);
		SSL_SESSION_free(sess);
		SSL_CTX_free(cctx);
	}

	/* tickets survive a certificate reload */
	SSL_CTX *cctx = client_ctx(TLS1_3_VERSION);
	struct pair p;
	assert_true(handshake(lone, "imaps", cctx, NULL, NULL, &p));
	SSL_SESSION *sess = SSL_get1_session(p.client);
	pair_free(&p);
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	assert_int_equal(tls_server_reload(lone, &summary, &errors), 0);
	assert_true(handshake(lone, "imaps", cctx, NULL, sess, &p));
	assert_int_equal(SSL_session_reused(p.client), 1);
	pair_free(&p);
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);

	/* a secret file others can read is refused */
	chmod(secret_path, 0644);
	textbuf_truncate(&errors, 0);
	assert_int_equal(tls_server_reload(a, &summary, &errors), -1);
	assert_non_null(strstr(errors.data, "others cannot read"));
	textbuf_free(&summary);
	textbuf_free(&errors);
	for (size_t i = 0; i < 4; i++)
		tls_server_destroy(&servers[i]);
	rm_tree(store);
	free(store);
}

static void test_old_protocols_refused(void **unused)
{
	(void)unused;
	char *store = make_store();
	store_cert(store, "c", "c.test");
	write_assignments(store, "default c\n");
	struct tls_server *ts = server_for(store, NULL);
	struct tls_settings only13;
	tls_settings_defaults(&only13);
	only13.min_protocol = TLS_PROTOCOL_1_3;
	struct tls_server *ts13 = server_for(store, &only13);

	static const struct {
		int max_version;
		bool tls13_only;
		bool want_ok;
	} cases[] = {
		{ TLS1_VERSION, false, false },
		{ TLS1_1_VERSION, false, false },
		{ TLS1_2_VERSION, false, true },
		{ TLS1_3_VERSION, false, true },
		{ TLS1_2_VERSION, true, false },
		{ TLS1_3_VERSION, true, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *cctx = client_ctx(cases[i].max_version);
		/* let the client offer what it is asked to, however old */
		SSL_CTX_set_security_level(cctx, 0);
		SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
		SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0");
		struct pair p;
		int ok = handshake(cases[i].tls13_only ? ts13 : ts, "imaps", cctx, NULL, NULL, &p);
		if (ok != cases[i].want_ok)
			fail_msg("case %zu: max 0x%x tls13_only=%d: handshake %s", i,
				 cases[i].max_version, cases[i].tls13_only,
				 ok ? "succeeded" : "failed");
		pair_free(&p);
		SSL_CTX_free(cctx);
	}
	tls_server_destroy(&ts);
	tls_server_destroy(&ts13);
	rm_tree(store);
	free(store);
}

static int load_config(const char *text, struct node_config **cfg_r, struct textbuf *err)
{
	char path[] = "/tmp/cm-tls-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = node_config_load(path, cfg_r, err);
	unlink(path);
	return rc;
}

static void test_config_keys(void **unused)
{
	(void)unused;
	struct node_config *cfg = NULL;
	struct textbuf err = TEXTBUF_INIT;

	/* defaults: require_tls everywhere but on loopback, modes per service */
	assert_int_equal(
	    load_config("services = { smtp = { address = \"0.0.0.0\"; };\n"
			"  imap = { address = \"::1\"; }; pop3 = { address = \"::\"; };\n"
			"  submission = { address = \"127.9.9.9\"; }; };\n",
			&cfg, &err),
	    0);
	static const struct {
		enum node_config_service_id id;
		enum listener_tls_mode mode;
		bool require_tls;
	} want[] = {
		{ SERVICE_SMTP, LISTENER_TLS_STARTTLS, true },
		{ SERVICE_SUBMISSION, LISTENER_TLS_STARTTLS, false },
		{ SERVICE_SMTPS, LISTENER_TLS_IMPLICIT, true },
		{ SERVICE_IMAP, LISTENER_TLS_STARTTLS, false },
		{ SERVICE_IMAPS, LISTENER_TLS_IMPLICIT, true },
		{ SERVICE_POP3, LISTENER_TLS_STARTTLS, true },
		{ SERVICE_POP3S, LISTENER_TLS_IMPLICIT, true },
		{ SERVICE_HTTP, LISTENER_TLS_NONE, false },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct node_config_service *svc = &cfg->services[want[i].id];
		if (svc->tls != want[i].mode || svc->require_tls != want[i].require_tls)
			fail_msg("%s: got mode %s require_tls %d, want %s %d", svc->name,
				 node_config_tls_mode_name(svc->tls), svc->require_tls,
				 node_config_tls_mode_name(want[i].mode), want[i].require_tls);
	}
	assert_int_equal(cfg->tls.min_protocol, TLS_PROTOCOL_1_2);
	assert_string_equal(cfg->tls.ciphers, TLS_INTERMEDIATE_CIPHERS);
	assert_true(cfg->tls.prefer_server_ciphers);
	assert_int_equal(cfg->tls.ticket_key_rotation, 43200);
	node_config_free(&cfg);

	/* every key */
	assert_int_equal(
	    load_config(
		"tls = { min_protocol = \"TLSv1.3\"; ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\";\n"
		"  ciphersuites = \"TLS_AES_256_GCM_SHA384\"; groups = \"X25519\";\n"
		"  prefer_server_ciphers = false; session_cache_size = 0;\n"
		"  session_timeout = 600; ticket_key_rotation = 0;\n"
		"  ticket_key_file = \"/etc/cm/ticket.key\";\n"
		"  request_client_certificate = true; handshake_timeout = 7; };\n"
		"services = { smtp = { tls_mode = \"none\"; require_tls = false;\n"
		"  address = \"0.0.0.0\"; }; imap = { require_tls = true; }; };\n",
		&cfg, &err),
	    0);
	assert_int_equal(cfg->tls.min_protocol, TLS_PROTOCOL_1_3);
	assert_string_equal(cfg->tls.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
	assert_string_equal(cfg->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_string_equal(cfg->tls.groups, "X25519");
	assert_false(cfg->tls.prefer_server_ciphers);
	assert_int_equal(cfg->tls.session_cache_size, 0);
	assert_int_equal(cfg->tls.session_timeout, 600);
	assert_int_equal(cfg->tls.ticket_key_rotation, 0);
	assert_string_equal(cfg->tls.ticket_key_file, "/etc/cm/ticket.key");
	assert_true(cfg->tls.request_client_certificate);
	assert_int_equal(cfg->tls.handshake_timeout, 7);
	assert_int_equal(cfg->services[SERVICE_SMTP].tls, LISTENER_TLS_NONE);
	assert_false(cfg->services[SERVICE_SMTP].require_tls);
	assert_true(cfg->services[SERVICE_IMAP].require_tls);
	node_config_free(&cfg);

	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{ "tls = { min_protocol = \"TLSv1.1\"; };\n", ":1: tls.min_protocol 'TLSv1.1'" },
		{ "tls = { ciphers = \"NOPE\"; };\n", ":1: tls: tls.ciphers 'NOPE'" },
		{ "tls = { groups = \"nosuch\"; };\n", "tls.groups 'nosuch'" },
		{ "tls = { handshake_timeout = 0; };\n", "'handshake_timeout' = 0 is out of range" },
		{ "tls = { cipher = \"x\"; };\n", "unknown key 'cipher' in tls" },
		{ "\nservices = { imaps = { tls_mode = \"starttls\"; }; };\n",
		  ":2: services.imaps.tls_mode = \"starttls\": this service allows only \"implicit\"" },
		{ "services = { smtp = { tls_mode = \"implicit\"; }; };\n",
		  "allows \"starttls\" or \"none\"" },
		{ "services = { http = { tls_mode = \"starttls\"; }; };\n", "only \"none\" for now" },
		{ "services = { imap = { require_tls = \"yes\"; }; };\n", "must be true or false" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		textbuf_truncate(&err, 0);
		if (load_config(bad[i].text, &cfg, &err) != -1 ||
		    strstr(textbuf_str(&err), bad[i].want) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, textbuf_str(&err),
				 bad[i].want);
		assert_null(cfg);
	}
	textbuf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_parse),
	    cmocka_unit_test(test_days_left),
	    cmocka_unit_test(test_generate_inspect),
	    cmocka_unit_test(test_import_checks),
	    cmocka_unit_test(test_store_layout),
	    cmocka_unit_test(test_assignments),
	    cmocka_unit_test(test_contexts_and_sni),
	    cmocka_unit_test(test_bad_files_keep_the_running_set),
	    cmocka_unit_test(test_resumption),
	    cmocka_unit_test(test_old_protocols_refused),
	    cmocka_unit_test(test_config_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
