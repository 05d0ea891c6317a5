/*
 * Password hashing through libcrypt (crypt(3)): yescrypt by default,
 * SHA-512-crypt and bcrypt accepted. Hashing is deliberately slow; callers
 * on event loops must not call it there. Pure computation, no I/O other
 * than reading random bytes for salts (getrandom).
 */
#ifndef CM_LIB_PASSWORD_H
#define CM_LIB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_HASH_MAX 256

enum password_scheme {
	PASSWORD_YESCRYPT, /* "$y$" */
	PASSWORD_SHA512,   /* "$6$" */
	PASSWORD_BCRYPT,   /* "$2b$" */
};

/* "yescrypt", "sha512-crypt", "bcrypt" -> scheme; -1 if unknown. */
int password_scheme_parse(const char *name, enum password_scheme *scheme_r);
const char *password_scheme_name(enum password_scheme scheme);
/* The costs password_hash takes for scheme besides 0 (libcrypt's
 * default): yescrypt 1..11, sha512-crypt 1000..999999999 (rounds),
 * bcrypt 4..31. 0, or -1 for an unknown scheme. */
int password_cost_range(enum password_scheme scheme, unsigned long *min_r, unsigned long *max_r);
/* cost 0 = libcrypt's default for the scheme, else within
 * password_cost_range. Returns 0 or -1 (error_r). */
int password_hash(const char *plain, enum password_scheme scheme, unsigned long cost,
		  char *out, size_t out_size, const char **error_r);
/* 1 match, 0 mismatch (or unusable hash); constant-time comparison. */
int password_verify(const char *plain, const char *hash);
/* Whether s starts like a hash of a supported scheme ("$6$", "$y$", ...),
 * usable or not: an import takes such a field for a hash, never for a
 * plaintext password (a cut-off hash must not become a password). */
bool password_has_hash_prefix(const char *s);
/* True when s is a crypt(3) hash we can verify ($y$, $gy$, $7$, $6$, $5$,
 * $2b$, $2y$, $2a$) of the exact shape its scheme writes. */
bool password_is_hash(const char *s);

#endif
