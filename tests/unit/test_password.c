/*
 * Unit tests for lib/password.c: scheme names, hashing and verification
 * for every scheme (cheapest costs), known vectors, hash shape detection,
 * bad input, and concurrent use from several threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "lib/password.h"

/* Test vectors from the SHA-crypt specification ("Hello world!"). */
#define SHA512_VECTOR                                                                              \
	"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"                                       \
	"O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define SHA256_VECTOR "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"

static void test_scheme_names(void **state)
{
	static const struct {
		const char *name;
		int want;
		enum password_scheme scheme;
	} cases[] = {
	    {"yescrypt", 0, PASSWORD_YESCRYPT},
	    {"SHA512-crypt", 0, PASSWORD_SHA512},
	    {"bcrypt", 0, PASSWORD_BCRYPT},
	    {"md5", -1, 0},
	    {"", -1, 0},
	    {NULL, -1, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum password_scheme s = PASSWORD_YESCRYPT;
		int ret = password_scheme_parse(cases[i].name, &s);
		if (ret != cases[i].want || (ret == 0 && s != cases[i].scheme))
			fail_msg("'%s': got %d/%d want %d/%d",
				 cases[i].name ? cases[i].name : "NULL", ret, s, cases[i].want,
				 cases[i].scheme);
		if (ret == 0 && strcasecmp(password_scheme_name(s), cases[i].name) != 0)
			fail_msg("name of %d: got %s want %s", s, password_scheme_name(s),
				 cases[i].name);
	}
	assert_string_equal(password_scheme_name((enum password_scheme)42), "unknown");
}

static void test_hash_verify(void **state)
{
	static const struct {
		enum password_scheme scheme;
		unsigned long cost;
		const char *prefix;
	} cases[] = {
	    {PASSWORD_YESCRYPT, 1, "$y$"},
	    {PASSWORD_YESCRYPT, 0, "$y$"},
	    {PASSWORD_SHA512, 1000, "$6$rounds=1000$"},
	    {PASSWORD_SHA512, 0, "$6$"},
	    {PASSWORD_BCRYPT, 4, "$2b$04$"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
		const char *error = NULL;
		const char *name = password_scheme_name(cases[i].scheme);
		if (password_hash("s3cret pass", cases[i].scheme, cases[i].cost, h1, sizeof(h1),
				  &error) != 0)
			fail_msg("%s cost %lu: hash failed: %s", name, cases[i].cost, error);
		if (strncmp(h1, cases[i].prefix, strlen(cases[i].prefix)) != 0)
			fail_msg("%s: got hash %s want prefix %s", name, h1, cases[i].prefix);
		if (!password_is_hash(h1))
			fail_msg("%s: password_is_hash(%s) got false want true", name, h1);
		assert_int_equal(password_hash("s3cret pass", cases[i].scheme, cases[i].cost, h2,
					       sizeof(h2), NULL),
				 0);
		if (strcmp(h1, h2) == 0)
			fail_msg("%s: two hashes share a salt: %s", name, h1);
		if (password_verify("s3cret pass", h1) != 1)
			fail_msg("%s: right password: got mismatch want match", name);
		if (password_verify("s3cret pasS", h1) != 0)
			fail_msg("%s: wrong password: got match want mismatch", name);
		if (password_verify("", h1) != 0)
			fail_msg("%s: empty password: got match want mismatch", name);
	}
}

static void test_known_vectors(void **state)
{
	(void)state;
	assert_int_equal(password_verify("Hello world!", SHA512_VECTOR), 1);
	assert_int_equal(password_verify("Hello world?", SHA512_VECTOR), 0);
	assert_int_equal(password_verify("Hello world!", SHA256_VECTOR), 1);
	/* One changed character at the end of the stored hash. */
	char tampered[] = SHA512_VECTOR;
	tampered[sizeof(tampered) - 2] = tampered[sizeof(tampered) - 2] == 'a' ? 'b' : 'a';
	assert_int_equal(password_verify("Hello world!", tampered), 0);
}

static void test_hash_errors(void **state)
{
	static const struct {
		enum password_scheme scheme;
		unsigned long cost;
		size_t out_size;
		const char *want_error;
	} cases[] = {
	    {PASSWORD_YESCRYPT, 12, PASSWORD_HASH_MAX, "cost out of range"},
	    {PASSWORD_SHA512, 999, PASSWORD_HASH_MAX, "cost out of range"},
	    {PASSWORD_BCRYPT, 3, PASSWORD_HASH_MAX, "cost out of range"},
	    {PASSWORD_BCRYPT, 32, PASSWORD_HASH_MAX, "cost out of range"},
	    {(enum password_scheme)7, 0, PASSWORD_HASH_MAX, "unknown password scheme"},
	    {PASSWORD_YESCRYPT, 1, 20, "does not fit"},
	};
	char out[PASSWORD_HASH_MAX];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *error = NULL;
		int ret = password_hash("pw", cases[i].scheme, cases[i].cost, out,
					cases[i].out_size, &error);
		if (ret != -1 || error == NULL || strstr(error, cases[i].want_error) == NULL)
			fail_msg("case %zu: got %d '%s' want -1 '%s'", i, ret, error ? error : "",
				 cases[i].want_error);
		if (out[0] != '\0')
			fail_msg("case %zu: output not cleared", i);
	}
	char longpw[600];
	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	assert_int_equal(password_hash(longpw, PASSWORD_SHA512, 0, out, sizeof(out), NULL), -1);
	assert_int_equal(password_hash(NULL, PASSWORD_SHA512, 0, out, sizeof(out), NULL), -1);
}

static void test_is_hash(void **state)
{
	static const struct {
		const char *s;
		bool want;
	} cases[] = {
	    {SHA512_VECTOR, true},
	    {SHA256_VECTOR, true},
	    {"$6$rounds=5000$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
	     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	     true},
	    {"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", true},
	    {"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", true},
	    {"$2y$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", true},
	    {"", false},
	    {"secret", false},
	    {"*", false},
	    {"!", false},
	    {"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", false}, /* md5-crypt */
	    {"$6$saltstring$short", false},
	    {"$6$saltstring$", false},
	    {"$6$$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
	     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	     false},
	    {"$6svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
	     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	     false},
	    {"$6$salt "
	     "string$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
	     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	     false},
	    {"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMU", false}, /* 59 chars */
	    {"$2b$1$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUWx", false},
	    {"$2b$12$R9h/cIPz0gi.URNNX3kh2O$ST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", false},
	    /* ones crypt(3) can never verify: a SHA-512 hash cut off, a
	     * SHA-512 setting with a SHA-256 length, bcrypt costs out of
	     * 4..31, malformed rounds */
	    {"$6$t2BurI0OaTLzRvYt$SuXXLGMeQ49VV4p5XvUpsAhDFy/lGrk/lUx/SsmrVIO", false},
	    {"$6$saltsalt$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", false},
	    {"$2b$39$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", false},
	    {"$2b$00$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", false},
	    {"$5$rounds=zz$saltsalt$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", false},
	    {"$5$rounds=999$saltsalt$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", false},
	    {"$5$rounds=5000$saltsalt$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", true},
	    {NULL, false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = password_is_hash(cases[i].s);
		if (got != cases[i].want)
			fail_msg("'%s': got %d want %d", cases[i].s ? cases[i].s : "NULL", got,
				 cases[i].want);
	}
	char huge[PASSWORD_HASH_MAX + 10];
	memcpy(huge, "$6$salt$", 8);
	memset(huge + 8, 'A', sizeof(huge) - 9);
	huge[sizeof(huge) - 1] = '\0';
	assert_false(password_is_hash(huge));
	/* Unusable stored hashes never verify. */
	assert_int_equal(password_verify("", ""), 0);
	assert_int_equal(password_verify("x", "*"), 0);
	assert_int_equal(password_verify("x", "x"), 0);
	assert_int_equal(password_verify(NULL, SHA512_VECTOR), 0);
	assert_int_equal(password_verify("x", NULL), 0);
}

struct thread_arg {
	int id;
	int failures;
};

static void *hash_thread(void *p)
{
	struct thread_arg *arg = p;
	char plain[32], other[32], hash[PASSWORD_HASH_MAX];
	for (int i = 0; i < 8; i++) {
		snprintf(plain, sizeof(plain), "pw-%d-%d", arg->id, i);
		snprintf(other, sizeof(other), "pw-%d-%d", arg->id, i + 1);
		if (password_hash(plain, i % 2 ? PASSWORD_SHA512 : PASSWORD_YESCRYPT,
				  i % 2 ? 1000 : 1, hash, sizeof(hash), NULL) != 0 ||
		    password_verify(plain, hash) != 1 || password_verify(other, hash) != 0)
			arg->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t threads[4];
	struct thread_arg args[4];
	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){i, 0};
		assert_int_equal(pthread_create(&threads[i], NULL, hash_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		if (args[i].failures != 0)
			fail_msg("thread %d: got %d failures want 0", i, args[i].failures);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scheme_names),  cmocka_unit_test(test_hash_verify),
	    cmocka_unit_test(test_known_vectors), cmocka_unit_test(test_hash_errors),
	    cmocka_unit_test(test_is_hash),	  cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
