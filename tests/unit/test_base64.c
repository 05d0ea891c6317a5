/* Unit tests for lib/base64.c: RFC 4648 vectors, strict rejection of
 * malformed input, buffer bounds, every prefix of valid input, and a
 * round trip of all byte values at every length up to 64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/base64.h"

/* RFC 4648 section 10 plus SASL-shaped inputs. */
static const struct {
	const char *plain;
	size_t plain_len;
	const char *encoded;
} vectors[] = {
    {"", 0, ""},
    {"f", 1, "Zg=="},
    {"fo", 2, "Zm8="},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg=="},
    {"fooba", 5, "Zm9vYmE="},
    {"foobar", 6, "Zm9vYmFy"},
    {"\0alice@example.test\0pw", 22, "AGFsaWNlQGV4YW1wbGUudGVzdABwdw=="},
    {"\xff\xfe\xfd", 3, "//79"},
    {"\xfb\xef", 2, "++8="},
};

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char enc[128];
		unsigned char dec[128];
		size_t n;
		const char *error = NULL;
		long len = base64_encode(vectors[i].plain, vectors[i].plain_len, enc, sizeof(enc));
		if (len != (long)strlen(vectors[i].encoded) || strcmp(enc, vectors[i].encoded) != 0)
			fail_msg("vector %zu: encoded \"%s\", want \"%s\"", i, enc,
				 vectors[i].encoded);
		if (base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), dec, sizeof(dec),
				  &n, &error) != 0)
			fail_msg("vector %zu: decode failed: %s", i, error);
		if (n != vectors[i].plain_len || memcmp(dec, vectors[i].plain, n) != 0)
			fail_msg("vector %zu: decoded %zu bytes, want %zu", i, n,
				 vectors[i].plain_len);
	}
}

static const struct {
	const char *input;
	const char *why; /* substring of the error */
} malformed[] = {
    {"Z", "multiple of 4"},	{"Zg=", "multiple of 4"},
    {"Zm9vY", "multiple of 4"}, {"Zm9v\r\n", "multiple of 4"},
    {"Zm 9", "invalid"},	{"Zm9v Zm9v", "multiple of 4"},
    {"Zm9\n", "invalid"},	{"Zm-_", "invalid"}, /* base64url alphabet */
    {"Zm9\x80", "invalid"},	{"=Zm9", "padding"},
    {"Z===", "padding"},	{"====", "padding"},
    {"Zg=a", "padding"},	{"Zg==Zm9v", "padding"},   /* padding before the end */
    {"Zm8=Zm8=", "padding"},	{"Zh==", "non-canonical"}, /* 'h' leaves low bits set */
    {"Zm9=", "non-canonical"},	{"Zm+=", "non-canonical"},
};

static void test_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		unsigned char dec[64];
		size_t n = 99;
		const char *error = NULL;
		int rc = base64_decode(malformed[i].input, strlen(malformed[i].input), dec,
				       sizeof(dec), &n, &error);
		if (rc != -1)
			fail_msg("malformed %zu \"%s\": got %d, want -1", i, malformed[i].input,
				 rc);
		if (error == NULL || strstr(error, malformed[i].why) == NULL)
			fail_msg("malformed %zu \"%s\": error \"%s\", want one with \"%s\"", i,
				 malformed[i].input, error ? error : "(null)", malformed[i].why);
		assert_int_equal(n, 0);
	}
	/* An embedded NUL is just an invalid character. */
	unsigned char dec[8];
	size_t n;
	assert_int_equal(base64_decode("Zm\0v", 4, dec, sizeof(dec), &n, NULL), -1);
}

static void test_bounds(void **state)
{
	char enc[9];
	unsigned char dec[6];
	size_t n;
	const char *error = NULL;
	(void)state;

	/* "foobar" needs 8 characters and a NUL. */
	assert_int_equal(base64_encode("foobar", 6, enc, 8), -1);
	assert_string_equal(enc, "");
	assert_int_equal(base64_encode("foobar", 6, enc, 9), 8);
	assert_int_equal(base64_encode("x", 1, enc, 0), -1);
	/* Exactly fitting output works, one byte less is refused. */
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 6, &n, &error), 0);
	assert_int_equal(n, 6);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 5, &n, &error), -1);
	assert_non_null(strstr(error, "fit"));
	assert_int_equal(base64_decode("Zm9vYg==", 8, dec, 4, &n, &error), 0);
	assert_int_equal(base64_decode("Zm9vYg==", 8, dec, 3, &n, &error), -1);
	assert_int_equal(base64_decode("", 0, NULL, 0, &n, &error), 0);
	assert_int_equal(n, 0);
}

/* Every strict prefix of a valid encoding whose length is not a multiple
 * of 4 is refused; prefixes on group boundaries decode to the matching
 * prefix of the bytes. */
static void test_prefixes(void **state)
{
	const char *enc = "AGFsaWNlQGV4YW1wbGUudGVzdABwdw==";
	unsigned char whole[64], part[64];
	size_t whole_len, n;
	(void)state;

	assert_int_equal(base64_decode(enc, strlen(enc), whole, sizeof(whole), &whole_len, NULL),
			 0);
	for (size_t len = 0; len < strlen(enc); len++) {
		int rc = base64_decode(enc, len, part, sizeof(part), &n, NULL);
		if (len % 4 != 0) {
			if (rc != -1)
				fail_msg("prefix of %zu characters: got %d, want -1", len, rc);
			continue;
		}
		if (rc != 0 || n != len / 4 * 3 || memcmp(part, whole, n) != 0)
			fail_msg("prefix of %zu characters: rc %d, %zu bytes", len, rc, n);
	}
}

static void test_roundtrip(void **state)
{
	unsigned char in[64], out[64];
	char enc[BASE64_ENCODED_LEN(64) + 1];
	size_t n;
	(void)state;

	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t shift = 0; shift < 256; shift += 37) {
			for (size_t i = 0; i < len; i++)
				in[i] = (unsigned char)(i * 7 + shift);
			long e = base64_encode(in, len, enc, sizeof(enc));
			assert_int_equal(e, BASE64_ENCODED_LEN(len));
			assert_int_equal(base64_decode(enc, (size_t)e, out, sizeof(out), &n, NULL),
					 0);
			if (n != len || memcmp(in, out, len) != 0)
				fail_msg("round trip of %zu bytes (shift %zu) differs", len, shift);
			assert_true(n <= BASE64_DECODED_MAX((size_t)e));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),   cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_bounds),    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
