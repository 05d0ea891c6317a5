/*
 * Internals shared by the files that use the OpenSSL API, and by their
 * unit tests only:
 *   tls_cert.c     certificates and keys: parse, inspect, generate, check
 *   tls_context.c  server contexts, SNI, session cache and tickets
 *
 * Error texts: tls_fail formats into a per-thread buffer, appends the
 * reason of the newest OpenSSL error if there is one, and clears OpenSSL's
 * error queue so that the next operation starts clean.
 */
#ifndef CM_NODE_TLS_PRIVATE_H
#define CM_NODE_TLS_PRIVATE_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Always returns -1. */
int tls_fail(const char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* OpenSSL's security level of every server context: no SHA-1 signatures,
 * RSA and DH of 2048 bits at least, anywhere in a chain. */
#define TLS_SECURITY_LEVEL 2
/* Puts a certificate into ctx: the leaf (certs[0]) with key, then as its
 * chain certs[1..] and more[..] (either may be NULL). 0, -1 when the leaf
 * or key is refused, -2 when a chain certificate is; OpenSSL's reason is
 * left on its error queue for tls_fail. */
int tls_ctx_use_cert(SSL_CTX *ctx, STACK_OF(X509) *certs, STACK_OF(X509) *more, EVP_PKEY *key);
/* Whether a server context at TLS_SECURITY_LEVEL takes leaf, key and
 * chain (certs 1.. of the stack): what an import must know before it
 * stores what maild would then refuse to load. */
int tls_cert_check_usable(STACK_OF(X509) *certs, EVP_PKEY *key, const char **error_r);
/* Every certificate in pem, in order; -1 unless there is at least one.
 * The caller frees with sk_X509_pop_free(certs, X509_free). */
int tls_pem_read_certs(const char *pem, size_t len, STACK_OF(X509) * *certs_r,
		       const char **error_r);
/* The private key in pem; encrypted keys are refused. */
int tls_pem_read_key(const char *pem, size_t len, EVP_PKEY **key_r, const char **error_r);
/* 0 when the key is at least RSA 2048 / EC 256 bits (our security level 2). */
int tls_key_check_strength(EVP_PKEY *key, const char **error_r);

#endif
