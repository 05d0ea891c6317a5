/*
 * password: crypt(3) hashing and verification through libcrypt
 * (libxcrypt), see lib/password.h.
 *
 * Thread safety: only the reentrant entry points are used
 * (crypt_gensalt_rn, crypt_rn) with a private struct crypt_data on the
 * heap (32 KiB; too big for small event-loop thread stacks), wiped before
 * it is freed because it held the passphrase.
 * Salts come from libcrypt itself (rbytes NULL: it reads getrandom).
 * Verification compares the whole stored hash in constant time, and an
 * unusable stored hash (libcrypt's "*" failure token, a foreign scheme)
 * never verifies.
 */
#include "lib/password.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	const char *prefix;
	unsigned long cost_min, cost_max;
} password_schemes[] = {
    [PASSWORD_YESCRYPT] = {"yescrypt", "$y$", 1, 11},
    [PASSWORD_SHA512] = {"sha512-crypt", "$6$", 1000, 999999999},
    [PASSWORD_BCRYPT] = {"bcrypt", "$2b$", 4, 31},
};
#define PASSWORD_SCHEME_COUNT (sizeof(password_schemes) / sizeof(password_schemes[0]))

int password_scheme_parse(const char *name, enum password_scheme *scheme_r)
{
	for (size_t i = 0; name != NULL && i < PASSWORD_SCHEME_COUNT; i++) {
		if (strcasecmp(name, password_schemes[i].name) == 0) {
			*scheme_r = (enum password_scheme)i;
			return 0;
		}
	}
	return -1;
}

const char *password_scheme_name(enum password_scheme scheme)
{
	if ((size_t)scheme >= PASSWORD_SCHEME_COUNT)
		return "unknown";
	return password_schemes[scheme].name;
}

int password_cost_range(enum password_scheme scheme, unsigned long *min_r, unsigned long *max_r)
{
	if ((size_t)scheme >= PASSWORD_SCHEME_COUNT)
		return -1;
	*min_r = password_schemes[scheme].cost_min;
	*max_r = password_schemes[scheme].cost_max;
	return 0;
}

/* Runs crypt_rn(plain, setting) into out; 0, or -1 with error_r. */
static int password_crypt(const char *plain, const char *setting, char *out, size_t out_size,
			  const char **error_r)
{
	struct crypt_data *data = calloc(1, sizeof(*data));
	int ret = -1;

	if (data == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	errno = 0;
	const char *res = crypt_rn(plain, setting, data, (int)sizeof(*data));
	if (res == NULL || res[0] == '*') {
		*error_r = errno == ERANGE ? "password too long" : "crypt(3) rejected the setting";
	} else if (strlen(res) + 1 > out_size) {
		*error_r = "hash does not fit the output buffer";
	} else {
		strcpy(out, res);
		ret = 0;
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	return ret;
}

int password_hash(const char *plain, enum password_scheme scheme, unsigned long cost, char *out,
		  size_t out_size, const char **error_r)
{
	const char *dummy;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (error_r == NULL)
		error_r = &dummy;
	if (out_size > 0)
		out[0] = '\0';
	if ((size_t)scheme >= PASSWORD_SCHEME_COUNT) {
		*error_r = "unknown password scheme";
		return -1;
	}
	if (plain == NULL || strlen(plain) >= CRYPT_MAX_PASSPHRASE_SIZE) {
		*error_r = "password missing or too long";
		return -1;
	}
	if (cost != 0 && (cost < password_schemes[scheme].cost_min ||
			  cost > password_schemes[scheme].cost_max)) {
		*error_r = "cost out of range for the scheme";
		return -1;
	}
	if (crypt_gensalt_rn(password_schemes[scheme].prefix, cost, NULL, 0, setting,
			     (int)sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt failed (scheme unsupported by libcrypt?)";
		return -1;
	}
	int ret = password_crypt(plain, setting, out, out_size, error_r);
	explicit_bzero(setting, sizeof(setting));
	return ret;
}

int password_verify(const char *plain, const char *hash)
{
	char computed[CRYPT_OUTPUT_SIZE];
	const char *error;

	if (plain == NULL || hash == NULL || !password_is_hash(hash))
		return 0;
	if (password_crypt(plain, hash, computed, sizeof(computed), &error) < 0)
		return 0;

	/* Walk the whole stored hash whatever differs, so the time taken
	 * says nothing about where the first difference is. */
	size_t hash_len = strlen(hash), computed_len = strlen(computed);
	volatile unsigned char diff = (unsigned char)(hash_len != computed_len);
	for (size_t i = 0; i < hash_len; i++) {
		unsigned char c = i < computed_len ? (unsigned char)computed[i] : 0;
		diff |= (unsigned char)(c ^ (unsigned char)hash[i]);
	}
	explicit_bzero(computed, sizeof(computed));
	return diff == 0 ? 1 : 0;
}

static bool password_hash_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '/' || c == '$' || c == '=' || c == ',';
}

/* bcrypt: "$2b$" two-digit cost 04..31 "$" then 22 salt + 31 hash
 * characters. */
static bool password_is_bcrypt(const char *s, size_t len)
{
	if (len != 60 || s[3] != '$' || s[6] != '$')
		return false;
	if (s[4] < '0' || s[4] > '3' || s[5] < '0' || s[5] > '9')
		return false;
	int cost = (s[4] - '0') * 10 + (s[5] - '0');
	return cost >= 4 && cost <= 31 && strchr(s + 7, '$') == NULL;
}

/* SHA-crypt's optional "rounds=N$" (N 1000..999999999, libxcrypt refuses
 * other values): true when absent or well-formed. */
static bool password_rounds_ok(const char *s)
{
	if (strncmp(s + 3, "rounds=", 7) != 0)
		return true;
	const char *p = s + 10;
	unsigned long n = 0;
	size_t digits = 0;
	for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
		n = n * 10 + (unsigned long)(*p - '0');
	return digits > 0 && *p == '$' && n >= 1000 && n <= 999999999UL;
}

bool password_has_hash_prefix(const char *s)
{
	static const char *const prefixes[] = {"$y$", "$gy$", "$7$",  "$6$",
					       "$5$", "$2b$", "$2y$", "$2a$"};
	if (s == NULL)
		return false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

bool password_is_hash(const char *s)
{
	if (!password_has_hash_prefix(s))
		return false;
	size_t len = strnlen(s, PASSWORD_HASH_MAX);
	if (len >= PASSWORD_HASH_MAX)
		return false;
	for (size_t j = 0; j < len; j++) {
		if (!password_hash_char(s[j]))
			return false;
	}
	if (s[1] == '2')
		return password_is_bcrypt(s, len);

	/* "$id$[params$]salt$hash": the hash part has the exact length its
	 * scheme writes (SHA-512 86 characters of crypt base64, the others
	 * 43), so that a hash cut off (a narrow export column) is refused
	 * rather than stored as a password nobody can ever enter. Verifying
	 * with crypt(3) would cost a full hashing per imported user. */
	size_t dollars = 0;
	for (size_t j = 0; j < len; j++)
		dollars += s[j] == '$';
	const char *last = strrchr(s, '$');
	size_t want = strncmp(s, "$6$", 3) == 0 ? 86 : 43;
	if ((s[1] == '5' || s[1] == '6') && !password_rounds_ok(s))
		return false;
	return dollars >= 3 && strlen(last + 1) == want && strchr(last + 1, '=') == NULL &&
	       strchr(last + 1, ',') == NULL && last[-1] != '$';
}
