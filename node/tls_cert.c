/*
 * Certificates and keys with OpenSSL 3 (see tls_cert.h): parsing PEM,
 * inspecting, generating self-signed certificates and CSRs, and the
 * import checks. This file and tls_context.c are the only users of the
 * OpenSSL API (tls_private.h).
 *
 * Key PEM is produced through secure-memory BIOs and handed over in a
 * textbuf the caller wipes; parsed keys live in EVP_PKEY objects freed by
 * OpenSSL, which clears key material on free.
 */
#include "node/tls_cert.h"
#include "node/tls_private.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "lib/address.h"
#include "node/tls_store.h"

static _Thread_local char tls_error[512];

int tls_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tls_error, sizeof(tls_error), fmt, ap);
	va_end(ap);
	unsigned long code = ERR_peek_last_error();
	if (code != 0 && n >= 0 && (size_t)n < sizeof(tls_error) - 4) {
		const char *reason = ERR_reason_error_string(code);
		if (reason != NULL)
			snprintf(tls_error + n, sizeof(tls_error) - (size_t)n, " (%s)", reason);
	}
	ERR_clear_error();
	*error_r = tls_error;
	return -1;
}

void tls_wipe(struct textbuf *buf)
{
	if (buf->data != NULL)
		explicit_bzero(buf->data, buf->cap);
	textbuf_free(buf);
}

/* ---- names ---- */

int tls_key_type_parse(const char *text, enum tls_key_type *type_r)
{
	if (strcmp(text, "rsa2048") == 0 || strcmp(text, "rsa") == 0)
		*type_r = TLS_KEY_RSA2048;
	else if (strcmp(text, "p256") == 0 || strcmp(text, "ec") == 0)
		*type_r = TLS_KEY_P256;
	else
		return -1;
	return 0;
}

void tls_names_free(struct tls_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	names->v = NULL;
	names->n = 0;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void names_add(struct tls_names *names, const char *name)
{
	for (size_t i = 0; i < names->n; i++)
		if (strcmp(names->v[i], name) == 0)
			return;
	char **grown = realloc(names->v, (names->n + 1) * sizeof(*grown));
	char *copy = strdup(name);
	if (grown == NULL || copy == NULL)
		abort();
	names->v = grown;
	names->v[names->n++] = copy;
}

/* One name, normalised into out (TLS_DOMAIN_MAX + 3 bytes). */
static int name_normalize(const char *in, char *out, size_t size, const char **error_r)
{
	const char *why = NULL;
	if (is_ip(in)) {
		snprintf(out, size, "%s", in);
		return 0;
	}
	bool wildcard = strncmp(in, "*.", 2) == 0;
	char domain[TLS_DOMAIN_MAX + 1];
	if (domain_normalize(wildcard ? in + 2 : in, domain, sizeof(domain), &why) < 0 ||
	    (wildcard && strchr(domain, '.') == NULL))
		return tls_fail(error_r, "'%s' is not a DNS name or IP address%s%s", in,
				why != NULL ? ": " : "", why != NULL ? why : "");
	snprintf(out, size, "%s%s", wildcard ? "*." : "", domain);
	return 0;
}

int tls_names_parse(const char *list, struct tls_names *names_r, const char **error_r)
{
	memset(names_r, 0, sizeof(*names_r));
	const char *p = list;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char raw[TLS_DOMAIN_MAX + 3], name[TLS_DOMAIN_MAX + 3];
		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0 || len >= sizeof(raw)) {
			tls_names_free(names_r);
			return tls_fail(error_r, "empty or overlong name in '%s'", list);
		}
		memcpy(raw, p, len);
		raw[len] = '\0';
		if (name_normalize(raw, name, sizeof(name), error_r) < 0) {
			tls_names_free(names_r);
			return -1;
		}
		names_add(names_r, name);
		if (names_r->n > TLS_NAMES_MAX) {
			tls_names_free(names_r);
			return tls_fail(error_r, "more than %d names", TLS_NAMES_MAX);
		}
		p += len;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
	}
	if (names_r->n == 0)
		return tls_fail(error_r, "no names given");
	return 0;
}

void tls_names_join(const struct tls_names *names, struct textbuf *out)
{
	for (size_t i = 0; i < names->n; i++)
		textbuf_printf(out, "%s%s", i > 0 ? ", " : "", names->v[i]);
}

/* ---- PEM ---- */

int tls_pem_read_certs(const char *pem, size_t len, STACK_OF(X509) * *certs_r, const char **error_r)
{
	if (len > INT32_MAX)
		return tls_fail(error_r, "certificate file too large");
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	STACK_OF(X509) *certs = sk_X509_new_null();
	if (bio == NULL || certs == NULL) {
		BIO_free(bio);
		sk_X509_free(certs);
		return tls_fail(error_r, "out of memory");
	}
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(certs, x) <= 0) {
			X509_free(x);
			break;
		}
	}
	/* the loop ends with "no start line" at the end of the input */
	unsigned long err = ERR_peek_last_error();
	bool clean_end = ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
	BIO_free(bio);
	if (sk_X509_num(certs) == 0 || !clean_end) {
		sk_X509_pop_free(certs, X509_free);
		if (!clean_end)
			return tls_fail(error_r, "cannot read a certificate (PEM)");
		ERR_clear_error();
		return tls_fail(error_r, "no certificate (PEM \"BEGIN CERTIFICATE\") found");
	}
	ERR_clear_error();
	*certs_r = certs;
	return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int tls_pem_read_key(const char *pem, size_t len, EVP_PKEY **key_r, const char **error_r)
{
	if (len > INT32_MAX)
		return tls_fail(error_r, "key file too large");
	if (memmem(pem, len, "ENCRYPTED", 9) != NULL) {
		ERR_clear_error();
		return tls_fail(error_r, "the private key is encrypted; decrypt it first "
					 "(openssl pkey -in KEY -out PLAIN.key)");
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return tls_fail(error_r, "out of memory");
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (key == NULL)
		return tls_fail(error_r, "no private key (PEM) found");
	ERR_clear_error();
	*key_r = key;
	return 0;
}

int tls_key_check_strength(EVP_PKEY *key, const char **error_r)
{
	int bits = EVP_PKEY_get_bits(key);
	int id = EVP_PKEY_get_base_id(key);
	if ((id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) && bits < 2048)
		return tls_fail(error_r, "RSA key of %d bits is too weak (at least 2048)", bits);
	if (id == EVP_PKEY_EC && bits < 256)
		return tls_fail(error_r, "EC key of %d bits is too weak (at least 256)", bits);
	if (id == EVP_PKEY_DSA || id == EVP_PKEY_DH)
		return tls_fail(error_r, "DSA/DH keys cannot serve TLS here");
	return 0;
}

/* Appends the contents of a memory BIO. */
static void bio_append(BIO *bio, struct textbuf *out)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n > 0)
		textbuf_append(out, data, (size_t)n);
}

static int pem_key(EVP_PKEY *key, struct textbuf *out, const char **error_r)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		return tls_fail(error_r, "cannot encode the private key");
	}
	bio_append(bio, out);
	BIO_free(bio);
	return 0;
}

static int pem_cert(X509 *x, struct textbuf *out, const char **error_r)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) {
		BIO_free(bio);
		return tls_fail(error_r, "cannot encode a certificate");
	}
	bio_append(bio, out);
	BIO_free(bio);
	return 0;
}

/* ---- inspection ---- */

long tls_days_left(time_t not_after, time_t now)
{
	long long diff = (long long)not_after - (long long)now;
	long long days = diff / 86400;
	if (diff % 86400 != 0 && diff < 0)
		days--; /* round toward minus infinity */
	return (long)days;
}

static void name_text(const X509_NAME *name, char *out, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	out[0] = '\0';
	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		char *data = NULL;
		long n = BIO_get_mem_data(bio, &data);
		if (n > 0)
			snprintf(out, size, "%.*s", (int)n, data);
	}
	BIO_free(bio);
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void san_names(X509 *x, struct tls_names *names)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char text[INET6_ADDRSTRLEN + TLS_DOMAIN_MAX];
		if (g->type == GEN_DNS) {
			const ASN1_IA5STRING *s = g->d.dNSName;
			snprintf(text, sizeof(text), "%.*s", ASN1_STRING_length(s),
				 (const char *)ASN1_STRING_get0_data(s));
			if (strlen(text) != (size_t)ASN1_STRING_length(s))
				continue; /* embedded NUL: not a name anyone can match */
			names_add(names, text);
		} else if (g->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *s = g->d.iPAddress;
			int len = ASN1_STRING_length(s);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
			if (af != 0 && inet_ntop(af, ASN1_STRING_get0_data(s), text, sizeof(text)))
				names_add(names, text);
		}
	}
	GENERAL_NAMES_free(gens);
}

static void key_text(EVP_PKEY *key, char *out, size_t size)
{
	int id = EVP_PKEY_get_base_id(key);
	if (id == EVP_PKEY_EC) {
		char group[24] = "?";
		size_t glen = 0;
		EVP_PKEY_get_group_name(key, group, sizeof(group), &glen);
		snprintf(out, size, "EC %s", group);
	} else if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) {
		snprintf(out, size, "RSA %d", EVP_PKEY_get_bits(key));
	} else {
		snprintf(out, size, "%s %d", OBJ_nid2sn(id), EVP_PKEY_get_bits(key));
	}
}

static void info_fill(X509 *x, time_t now, struct tls_cert_info *info)
{
	memset(info, 0, sizeof(*info));
	name_text(X509_get_subject_name(x), info->subject, sizeof(info->subject));
	name_text(X509_get_issuer_name(x), info->issuer, sizeof(info->issuer));
	san_names(x, &info->names);
	info->not_before = asn1_time(X509_get0_notBefore(x));
	info->not_after = asn1_time(X509_get0_notAfter(x));
	info->days_left = tls_days_left(info->not_after, now);
	info->self_signed = X509_self_signed(x, 1) == 1;
	EVP_PKEY *key = X509_get0_pubkey(x);
	if (key != NULL)
		key_text(key, info->key, sizeof(info->key));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (X509_digest(x, EVP_sha256(), md, &md_len) == 1) {
		size_t off = 0;
		for (unsigned i = 0; i < md_len && off + 3 < sizeof(info->sha256); i++)
			off += (size_t)snprintf(info->sha256 + off, sizeof(info->sha256) - off,
						"%s%02X", i > 0 ? ":" : "", md[i]);
	}
	ERR_clear_error();
}

int tls_cert_inspect(const char *pem, size_t len, time_t now, struct tls_cert_info *info_r,
		     const char **error_r)
{
	STACK_OF(X509) * certs;
	if (tls_pem_read_certs(pem, len, &certs, error_r) < 0)
		return -1;
	info_fill(sk_X509_value(certs, 0), now, info_r);
	sk_X509_pop_free(certs, X509_free);
	return 0;
}

void tls_cert_info_free(struct tls_cert_info *info)
{
	tls_names_free(&info->names);
}

size_t tls_pem_count_certs(const char *pem, size_t len)
{
	STACK_OF(X509) * certs;
	const char *error;
	if (len == 0 || tls_pem_read_certs(pem, len, &certs, &error) < 0)
		return 0;
	size_t n = (size_t)sk_X509_num(certs);
	sk_X509_pop_free(certs, X509_free);
	return n;
}

int tls_cert_covers_domain(const struct tls_cert_info *info, const char *domain)
{
	size_t dlen = strlen(domain);
	for (size_t i = 0; i < info->names.n; i++) {
		const char *name = info->names.v[i];
		if (strncmp(name, "*.", 2) == 0)
			name += 2;
		size_t n = strlen(name);
		if (strcasecmp(name, domain) == 0 || (n > dlen && name[n - dlen - 1] == '.' &&
						      strcasecmp(name + n - dlen, domain) == 0))
			return 1;
	}
	return 0;
}

/* ---- generation ---- */

static EVP_PKEY *key_generate(enum tls_key_type type, const char **error_r)
{
	EVP_PKEY *key = type == TLS_KEY_P256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
	if (key == NULL)
		tls_fail(error_r, "cannot generate a key");
	return key;
}

/* "DNS:a,DNS:b,IP:192.0.2.1" for names that tls_names_parse checked, so
 * they contain no ',' or ':' that could smuggle another entry in (IPv6
 * addresses are the one case with ':', which the IP: syntax expects). */
static void san_value(const struct tls_names *names, struct textbuf *out)
{
	for (size_t i = 0; i < names->n; i++)
		textbuf_printf(out, "%s%s:%s", i > 0 ? "," : "", is_ip(names->v[i]) ? "IP" : "DNS",
			       names->v[i]);
}

static const char *common_name(const struct tls_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		if (strlen(names->v[i]) <= 64 && !is_ip(names->v[i]))
			return names->v[i];
	return NULL;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int random_serial(X509 *x)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40); /* positive, all 16 bytes used */
	BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
	int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

int tls_cert_generate(const struct tls_names *names, enum tls_key_type type, unsigned days,
		      time_t now, struct textbuf *cert_pem, struct textbuf *key_pem,
		      const char **error_r)
{
	if (names->n == 0)
		return tls_fail(error_r, "no names given");
	if (days == 0 || days > 3650)
		return tls_fail(error_r, "--days must be 1..3650");
	EVP_PKEY *key = key_generate(type, error_r);
	if (key == NULL)
		return -1;
	X509 *x = X509_new();
	struct textbuf san = TEXTBUF_INIT;
	int rc = -1;
	const char *cn = common_name(names);
	if (x == NULL || X509_set_version(x, 2) != 1 || random_serial(x) < 0 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), now - 3600) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), now + (time_t)days * 86400) == NULL) {
		tls_fail(error_r, "cannot build the certificate");
		goto out;
	}
	X509_NAME *subject = X509_get_subject_name(x);
	if ((cn != NULL && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
						      (const unsigned char *)cn, -1, -1, 0) != 1) ||
	    X509_set_issuer_name(x, subject) != 1 || X509_set_pubkey(x, key) != 1) {
		tls_fail(error_r, "cannot set the certificate's names");
		goto out;
	}
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	san_value(names, &san);
	if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &v3, NID_key_usage,
		    type == TLS_KEY_RSA2048 ? "critical,digitalSignature,keyEncipherment"
					    : "critical,digitalSignature") < 0 ||
	    add_ext(x, &v3, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, &v3, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, &v3, NID_subject_alt_name, textbuf_str(&san)) < 0) {
		tls_fail(error_r, "cannot add the certificate's extensions");
		goto out;
	}
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		tls_fail(error_r, "cannot sign the certificate");
		goto out;
	}
	if (pem_cert(x, cert_pem, error_r) < 0 || pem_key(key, key_pem, error_r) < 0)
		goto out;
	rc = 0;
out:
	textbuf_free(&san);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int tls_cert_request(const struct tls_names *names, enum tls_key_type type, struct textbuf *csr_pem,
		     struct textbuf *key_pem, const char **error_r)
{
	if (names->n == 0)
		return tls_fail(error_r, "no names given");
	EVP_PKEY *key = key_generate(type, error_r);
	if (key == NULL)
		return -1;
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	struct textbuf san = TEXTBUF_INIT;
	BIO *bio = NULL;
	int rc = -1;
	const char *cn = common_name(names);
	if (req == NULL || exts == NULL || X509_REQ_set_version(req, 0) != 1) {
		tls_fail(error_r, "out of memory");
		goto out;
	}
	X509_NAME *subject = X509_REQ_get_subject_name(req);
	if ((cn != NULL && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
						      (const unsigned char *)cn, -1, -1, 0) != 1) ||
	    X509_REQ_set_pubkey(req, key) != 1) {
		tls_fail(error_r, "cannot set the request's names");
		goto out;
	}
	san_value(names, &san);
	X509_EXTENSION *ext =
	    X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, textbuf_str(&san));
	if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0) {
		X509_EXTENSION_free(ext);
		tls_fail(error_r, "cannot build subjectAltName");
		goto out;
	}
	if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		tls_fail(error_r, "cannot sign the request");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		tls_fail(error_r, "cannot encode the request");
		goto out;
	}
	bio_append(bio, csr_pem);
	if (pem_key(key, key_pem, error_r) < 0)
		goto out;
	rc = 0;
out:
	BIO_free(bio);
	textbuf_free(&san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- import checks ---- */

static void subject_short(X509 *x, char *out, size_t size)
{
	name_text(X509_get_subject_name(x), out, size);
	if (out[0] == '\0')
		snprintf(out, size, "(empty subject)");
}

static void time_text(time_t t, char *out, size_t size)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "?");
}

/* Expiry of certificate i of the chain (0 = the server's own). */
static int check_validity(X509 *x, size_t i, time_t now, struct textbuf *notes,
			  const char **error_r)
{
	char subject[256], when[32];
	time_t after = asn1_time(X509_get0_notAfter(x));
	time_t before = asn1_time(X509_get0_notBefore(x));
	subject_short(x, subject, sizeof(subject));
	if (after <= now) {
		time_text(after, when, sizeof(when));
		return tls_fail(error_r, "certificate %zu (%s) expired on %s", i + 1, subject,
				when);
	}
	if (before > now) {
		time_text(before, when, sizeof(when));
		textbuf_printf(notes, "warning: certificate %zu (%s) is not valid before %s\n",
			       i + 1, subject, when);
	}
	long days = tls_days_left(after, now);
	if (days < TLS_EXPIRY_WARN_DAYS)
		textbuf_printf(notes, "warning: certificate %zu (%s) expires in %ld days\n", i + 1,
			       subject, days);
	return 0;
}

int tls_ctx_use_cert(SSL_CTX *ctx, STACK_OF(X509) *certs, STACK_OF(X509) *more, EVP_PKEY *key)
{
	if (SSL_CTX_use_certificate(ctx, sk_X509_value(certs, 0)) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		return -1;
	for (int i = 1; i < sk_X509_num(certs); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i)) != 1)
			return -2;
	for (int i = 0; more != NULL && i < sk_X509_num(more); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(more, i)) != 1)
			return -2;
	return 0;
}

int tls_cert_check_usable(STACK_OF(X509) *certs, EVP_PKEY *key, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return tls_fail(error_r, "out of memory");
	SSL_CTX_set_security_level(ctx, TLS_SECURITY_LEVEL);
	int used = tls_ctx_use_cert(ctx, certs, NULL, key);
	int rc = used == 0 ? 0
		 : used == -1 ? tls_fail(error_r, "maild could not serve this certificate")
			      : tls_fail(error_r, "maild could not send its chain");
	SSL_CTX_free(ctx);
	return rc;
}

int tls_cert_check_import(const char *cert_pem, size_t cert_len, const char *key_pem,
			  size_t key_len, const char *chain_pem, size_t chain_len, time_t now,
			  struct textbuf *leaf_r, struct textbuf *chain_r, struct textbuf *key_r,
			  struct textbuf *notes, const char **error_r)
{
	STACK_OF(X509) *certs = NULL, *more = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	if (tls_pem_read_certs(cert_pem, cert_len, &certs, error_r) < 0)
		goto out;
	if (chain_pem != NULL && chain_len > 0) {
		if (tls_pem_read_certs(chain_pem, chain_len, &more, error_r) < 0)
			goto out;
		while (sk_X509_num(more) > 0) {
			X509 *x = sk_X509_shift(more);
			if (sk_X509_push(certs, x) <= 0) {
				X509_free(x);
				tls_fail(error_r, "out of memory");
				goto out;
			}
		}
	}
	if (tls_pem_read_key(key_pem, key_len, &key, error_r) < 0)
		goto out;
	X509 *leaf = sk_X509_value(certs, 0);
	if (X509_check_private_key(leaf, key) != 1) {
		char subject[256];
		subject_short(leaf, subject, sizeof(subject));
		tls_fail(error_r, "the private key does not match the certificate (%s)", subject);
		goto out;
	}
	if (tls_key_check_strength(key, error_r) < 0)
		goto out;
	size_t n = (size_t)sk_X509_num(certs);
	for (size_t i = 0; i < n; i++) {
		X509 *x = sk_X509_value(certs, (int)i);
		if (check_validity(x, i, now, notes, error_r) < 0)
			goto out;
		if (i + 1 == n)
			break;
		X509 *issuer = sk_X509_value(certs, (int)i + 1);
		EVP_PKEY *ipub = X509_get0_pubkey(issuer);
		if (X509_check_issued(issuer, x) != X509_V_OK || ipub == NULL ||
		    X509_verify(x, ipub) != 1) {
			char a[256], b[256];
			subject_short(x, a, sizeof(a));
			subject_short(issuer, b, sizeof(b));
			tls_fail(error_r,
				 "chain out of order: certificate %zu (%s) was not issued by "
				 "certificate %zu (%s); give the server's certificate first, then "
				 "each issuer",
				 i + 1, a, i + 2, b);
			goto out;
		}
	}
	if (tls_cert_check_usable(certs, key, error_r) < 0)
		goto out;
	if (n > 1 && X509_self_signed(sk_X509_value(certs, (int)n - 1), 0) == 1)
		textbuf_puts(notes, "note: the chain ends in a self-signed root; clients have "
				    "their own copy, so it is sent but not needed\n");
	if (pem_cert(leaf, leaf_r, error_r) < 0)
		goto out;
	for (size_t i = 1; i < n; i++)
		if (pem_cert(sk_X509_value(certs, (int)i), chain_r, error_r) < 0)
			goto out;
	if (pem_key(key, key_r, error_r) < 0)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(more, X509_free);
	EVP_PKEY_free(key);
	return rc;
}
