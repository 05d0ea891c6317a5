/*
 * Unit tests for storage/directory_record.c: round trips, forward
 * compatibility (unknown tags), and corrupt input of every kind, which
 * must come back as DIRECTORY_E_CORRUPT and never read out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/directory_record.h"

static struct directory_user sample_user(void)
{
	struct directory_user u;
	memset(&u, 0, sizeof(u));
	strcpy(u.address, "ignored@example.com");
	strcpy(u.password_hash, "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
				"O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1");
	strcpy(u.display_name, "Ann Example");
	u.quota_bytes = 5ull << 30;
	u.enabled = true;
	u.created = 1700000000;
	return u;
}

static void test_user_roundtrip(void **state)
{
	static const struct {
		const char *hash, *name;
		uint64_t quota;
		bool enabled;
		int64_t created;
	} cases[] = {
	    {"", "", 0, false, 0},
	    {"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "Bob", 1,
	     true, 1},
	    {"", "Négatif", UINT64_MAX, true, -1},
	    {"", "x", 0, false, INT64_MIN},
	    {"", "y", 127, true, INT64_MAX},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct directory_user u, got;
		struct textbuf rec = TEXTBUF_INIT;
		memset(&u, 0, sizeof(u));
		strcpy(u.password_hash, cases[i].hash);
		strcpy(u.display_name, cases[i].name);
		u.quota_bytes = cases[i].quota;
		u.enabled = cases[i].enabled;
		u.created = cases[i].created;
		assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_OK);
		int ret = directory_record_user_decode(rec.data, rec.len, &got);
		if (ret != DIRECTORY_OK)
			fail_msg("case %zu: decode got %d want 0", i, ret);
		if (strcmp(got.password_hash, u.password_hash) != 0 ||
		    strcmp(got.display_name, u.display_name) != 0 ||
		    got.quota_bytes != u.quota_bytes || got.enabled != u.enabled ||
		    got.created != u.created)
			fail_msg(
			    "case %zu: got quota %llu enabled %d created %lld want %llu %d %lld", i,
			    (unsigned long long)got.quota_bytes, got.enabled,
			    (long long)got.created, (unsigned long long)u.quota_bytes, u.enabled,
			    (long long)u.created);
		textbuf_free(&rec);
	}
}

static void test_group_domain_roundtrip(void **state)
{
	struct directory_group g, got;
	struct textbuf rec = TEXTBUF_INIT;
	int64_t created;
	(void)state;
	memset(&g, 0, sizeof(g));
	strcpy(g.display_name, "All staff");
	g.created = 42;
	assert_int_equal(directory_record_group_encode(&g, &rec), DIRECTORY_OK);
	assert_int_equal(directory_record_group_decode(rec.data, rec.len, &got), DIRECTORY_OK);
	assert_string_equal(got.display_name, "All staff");
	assert_int_equal(got.created, 42);
	/* A group record is not a user record and vice versa. */
	struct directory_user u;
	assert_int_equal(directory_record_user_decode(rec.data, rec.len, &u), DIRECTORY_E_CORRUPT);
	assert_int_equal(directory_record_domain_encode(-5, &rec), DIRECTORY_OK);
	assert_int_equal(directory_record_domain_decode(rec.data, rec.len, &created), DIRECTORY_OK);
	assert_int_equal(created, -5);
	assert_int_equal(directory_record_group_decode(rec.data, rec.len, &got),
			 DIRECTORY_E_CORRUPT);
	textbuf_free(&rec);
}

static void test_encode_invalid(void **state)
{
	struct directory_user u = sample_user();
	struct directory_group g;
	struct textbuf rec = TEXTBUF_INIT;
	(void)state;
	memset(u.display_name, 'x', sizeof(u.display_name)); /* no NUL */
	assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_E_INVALID);
	u = sample_user();
	memset(u.password_hash, 'x', sizeof(u.password_hash));
	assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_E_INVALID);
	memset(&g, 'x', sizeof(g));
	assert_int_equal(directory_record_group_encode(&g, &rec), DIRECTORY_E_INVALID);
	textbuf_free(&rec);
}

/* Hand-made records: {bytes, want} for the user decoder. */
#define B(s) s, sizeof(s) - 1
static void test_user_decode_table(void **state)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
		int want;
	} cases[] = {
	    {"empty", B(""), DIRECTORY_E_CORRUPT},
	    {"version only", B("\x01"), DIRECTORY_E_CORRUPT},
	    {"header only", B("\x01U"), DIRECTORY_OK},
	    {"version 2", B("\x02U"), DIRECTORY_E_CORRUPT},
	    {"version 0", B("\x00U"), DIRECTORY_E_CORRUPT},
	    {"wrong type", B("\x01G"), DIRECTORY_E_CORRUPT},
	    {"name",
	     B("\x01U\x02\x03"
	       "Ann"),
	     DIRECTORY_OK},
	    {"unknown tag skipped",
	     B("\x01U\x63\x02zz\x02\x01"
	       "A"),
	     DIRECTORY_OK},
	    {"unknown big tag skipped", B("\x01U\xff\x01\x00"), DIRECTORY_OK},
	    {"truncated tag", B("\x01U\x82"), DIRECTORY_E_CORRUPT},
	    {"missing length", B("\x01U\x02"), DIRECTORY_E_CORRUPT},
	    {"length past end",
	     B("\x01U\x02\x05"
	       "Ann"),
	     DIRECTORY_E_CORRUPT},
	    {"huge length", B("\x01U\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
	     DIRECTORY_E_CORRUPT},
	    {"varint over 64 bits", B("\x01U\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"),
	     DIRECTORY_E_CORRUPT},
	    {"varint 11 bytes", B("\x01U\x02\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"),
	     DIRECTORY_E_CORRUPT},
	    {"NUL in name",
	     B("\x01U\x02\x03"
	       "A\0n"),
	     DIRECTORY_E_CORRUPT},
	    {"quota empty", B("\x01U\x03\x00"), DIRECTORY_E_CORRUPT},
	    {"quota trailing byte", B("\x01U\x03\x02\x05\x00"), DIRECTORY_E_CORRUPT},
	    {"quota truncated varint", B("\x01U\x03\x01\x85"), DIRECTORY_E_CORRUPT},
	    {"flags ok", B("\x01U\x04\x01\x01"), DIRECTORY_OK},
	    {"created ok", B("\x01U\x05\x01\x03"), DIRECTORY_OK},
	    {"created bad", B("\x01U\x05\x00"), DIRECTORY_E_CORRUPT},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct directory_user u;
		int ret = directory_record_user_decode(cases[i].bytes, cases[i].len, &u);
		if (ret != cases[i].want)
			fail_msg("%s: got %d want %d", cases[i].what, ret, cases[i].want);
	}
	struct directory_user u;
	assert_int_equal(directory_record_user_decode(NULL, 0, &u), DIRECTORY_E_CORRUPT);
}

static void test_long_strings(void **state)
{
	struct textbuf rec = TEXTBUF_INIT;
	struct directory_user u;
	(void)state;
	/* display_name of exactly DIRECTORY_NAME_MAX bytes: one too many. */
	textbuf_append(&rec, "\x01U\x02\x80\x02", 5);
	for (int i = 0; i < DIRECTORY_NAME_MAX; i++)
		textbuf_putc(&rec, 'n');
	assert_int_equal(directory_record_user_decode(rec.data, rec.len, &u), DIRECTORY_E_CORRUPT);
	/* One less fits. */
	textbuf_truncate(&rec, 0);
	textbuf_append(&rec, "\x01U\x02\xff\x01", 5);
	for (int i = 0; i < DIRECTORY_NAME_MAX - 1; i++)
		textbuf_putc(&rec, 'n');
	assert_int_equal(directory_record_user_decode(rec.data, rec.len, &u), DIRECTORY_OK);
	assert_int_equal(strlen(u.display_name), DIRECTORY_NAME_MAX - 1);
	textbuf_free(&rec);
}

/* Every truncation and every single-byte change of a valid record decodes
 * or is CORRUPT; nothing else, and (under ASan) no stray reads. */
static void test_mutations(void **state)
{
	struct directory_user u = sample_user(), got;
	struct textbuf rec = TEXTBUF_INIT;
	char buf[512];
	(void)state;
	assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_OK);
	assert_true(rec.len < sizeof(buf));
	for (size_t len = 0; len <= rec.len; len++) {
		int ret = directory_record_user_decode(rec.data, len, &got);
		if (ret != DIRECTORY_OK && ret != DIRECTORY_E_CORRUPT)
			fail_msg("truncated to %zu: got %d", len, ret);
	}
	for (size_t i = 0; i < rec.len; i++) {
		for (int v = 0; v < 256; v += 17) {
			memcpy(buf, rec.data, rec.len);
			buf[i] = (char)v;
			int ret = directory_record_user_decode(buf, rec.len, &got);
			if (ret != DIRECTORY_OK && ret != DIRECTORY_E_CORRUPT)
				fail_msg("byte %zu = %d: got %d", i, v, ret);
		}
	}
	textbuf_free(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_roundtrip), cmocka_unit_test(test_group_domain_roundtrip),
	    cmocka_unit_test(test_encode_invalid), cmocka_unit_test(test_user_decode_table),
	    cmocka_unit_test(test_long_strings),   cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
