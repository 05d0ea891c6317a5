/*
 * auth_apop: POP3 APOP (RFC 1939 section 7): the banner timestamp and the
 * digest MD5(timestamp + secret). MD5 comes from OpenSSL's EVP interface
 * (the one digest here; TLS owns the rest of OpenSSL in node/tls*.c).
 *
 * The timestamp is "<pid.clock.random@host>": RFC 1939 asks for a unique
 * one per connection, and the 64 random bits make it unpredictable, so a
 * recorded APOP exchange cannot be replayed against another connection.
 */
#include "node/auth_private.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

int auth_apop_timestamp(struct auth *auth, char *out, size_t size)
{
	uint64_t r;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n =
	    snprintf(out, size, "<%ld.%lld%03ld.%016llx@%s>", (long)getpid(), (long long)ts.tv_sec,
		     ts.tv_nsec / 1000000, (unsigned long long)r, auth->hostname);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

int auth_apop_digest(const char *timestamp, const char *secret, char hex[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
		 EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
		 EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
		 EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;

	EVP_MD_CTX_free(ctx);
	if (!ok) {
		hex[0] = '\0';
		return -1;
	}
	for (unsigned i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
	return 0;
}

bool auth_equal_ct(const char *a, const char *b, size_t len)
{
	volatile unsigned char diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}
