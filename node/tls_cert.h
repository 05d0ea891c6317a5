/*
 * Certificates as objects: name lists, inspection (subject, names, issuer,
 * validity, days left, key), self-signed generation, certificate signing
 * requests, and the checks an imported certificate must pass (the key
 * matches, the chain is in order and signed, nothing has expired, keys are
 * strong enough for our contexts). Input and output are PEM text; what is
 * stored where is node/tls_store.h, serving them is node/tls.h.
 *
 * Security stance: private keys leave these functions only as PEM in a
 * caller's buffer, which the caller wipes (tls_wipe) when done. Encrypted
 * keys are refused with a clear message instead of prompting. Nothing here
 * logs. Keys are generated from OpenSSL's CSPRNG: RSA 2048 or ECDSA P-256.
 *
 * Return values: 0 ok (1 where stated), -1 error with *error_r pointing at
 * a message valid until the next tls_* call on the same thread.
 */
#ifndef CM_NODE_TLS_CERT_H
#define CM_NODE_TLS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/textbuf.h"

#define TLS_NAMES_MAX 100
#define TLS_EXPIRY_WARN_DAYS 30

enum tls_key_type {
	TLS_KEY_RSA2048,
	TLS_KEY_P256,
};

/* "rsa2048" (or "rsa"), "p256" (or "ec"). 0 or -1. */
int tls_key_type_parse(const char *text, enum tls_key_type *type_r);

/* A list of certificate names: DNS names (lowercase, "*." allowed as the
 * first label) and IP addresses, without duplicates. */
struct tls_names {
	size_t n;
	char **v;
};

/* Parses "a.example,b.example,192.0.2.1". 0, or -1 (names_r left empty). */
int tls_names_parse(const char *list, struct tls_names *names_r, const char **error_r);
/* Joins with ", " into out. */
void tls_names_join(const struct tls_names *names, struct textbuf *out);
void tls_names_free(struct tls_names *names);

struct tls_cert_info {
	char subject[256]; /* RFC 2253 */
	char issuer[256];
	struct tls_names names; /* subjectAltName DNS and IP entries */
	time_t not_before, not_after;
	long days_left; /* whole days until not_after; < 0 once expired */
	bool self_signed;
	char key[32];	 /* "RSA 2048", "EC prime256v1" */
	char sha256[96]; /* fingerprint, colon-separated hex */
};

/* Whole days from now until not_after, rounded down (so 0 on the last
 * day and -1 from the first second after expiry). */
long tls_days_left(time_t not_after, time_t now);
/* Inspects the first certificate of pem. 0 or -1. Free with tls_cert_info_free. */
int tls_cert_inspect(const char *pem, size_t len, time_t now, struct tls_cert_info *info_r,
		     const char **error_r);
void tls_cert_info_free(struct tls_cert_info *info);
/* Number of certificates in pem (0 for none or garbage). */
size_t tls_pem_count_certs(const char *pem, size_t len);
/* 1 when one of the certificate's names is domain, a subdomain of it, or
 * a wildcard for its subdomains; 0 if not. */
int tls_cert_covers_domain(const struct tls_cert_info *info, const char *domain);

/* A self-signed certificate for names (CN = the first name that fits),
 * valid from an hour before now for `days` days, SHA-256, serverAuth.
 * Appends the certificate and the key (PKCS#8) as PEM. 0 or -1. */
int tls_cert_generate(const struct tls_names *names, enum tls_key_type type, unsigned days,
		      time_t now, struct textbuf *cert_pem, struct textbuf *key_pem,
		      const char **error_r);
/* A new key and a CSR for names (subjectAltName requested). 0 or -1. */
int tls_cert_request(const struct tls_names *names, enum tls_key_type type, struct textbuf *csr_pem,
		     struct textbuf *key_pem, const char **error_r);

/* The checks for `cert import`. cert_pem holds the certificate, optionally
 * followed by its chain; chain_pem (may be NULL) holds more of the chain.
 * Refuses: no certificate, an unreadable or encrypted key, a key that does
 * not match, a weak key (RSA < 2048, EC < 256 bits), an expired
 * certificate anywhere, a chain whose certificate i+1 did not sign
 * certificate i. On success appends the normalised leaf, chain (may stay
 * empty) and key as PEM, and one line per warning to notes (not yet
 * valid, expires within TLS_EXPIRY_WARN_DAYS, chain ends in a root). */
int tls_cert_check_import(const char *cert_pem, size_t cert_len, const char *key_pem,
			  size_t key_len, const char *chain_pem, size_t chain_len, time_t now,
			  struct textbuf *leaf_r, struct textbuf *chain_r, struct textbuf *key_r,
			  struct textbuf *notes, const char **error_r);

/* Wipes a buffer that held key material, then frees it. */
void tls_wipe(struct textbuf *buf);

#endif
