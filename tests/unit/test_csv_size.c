/* Unit tests for lib/csv.c and lib/size.c (table-driven). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/csv.h"
#include "lib/size.h"

static const struct {
	const char *line;
	int want_n;
	const char *want[4];
} csv_cases[] = {
	{ "a@b.c,pw,1G", 3, { "a@b.c", "pw", "1G" } },
	{ "a@b.c,pw", 2, { "a@b.c", "pw" } },
	{ "a@b.c,,", 3, { "a@b.c", "", "" } },
	{ "\"a@b.c\",\"p,w\"", 2, { "a@b.c", "p,w" } },
	{ "x,\"say \"\"hi\"\"\"", 2, { "x", "say \"hi\"" } },
	{ "\"\"", 1, { "" } },
	{ "", 1, { "" } },
	{ "\"open", CSV_E_QUOTE, { 0 } },
	{ "\"closed\"junk,x", CSV_E_QUOTE, { 0 } },
	{ "a,b,c,d,e", CSV_E_TOO_MANY, { 0 } },
};

static void test_csv_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(csv_cases) / sizeof(csv_cases[0]); i++) {
		char line[128];
		char *f[4];
		snprintf(line, sizeof(line), "%s", csv_cases[i].line);
		int n = csv_split(line, f, 4);
		if (n != csv_cases[i].want_n)
			fail_msg("csv %zu \"%s\": got %d fields, want %d", i, csv_cases[i].line, n,
				 csv_cases[i].want_n);
		for (int k = 0; k < n; k++)
			if (strcmp(f[k], csv_cases[i].want[k]) != 0)
				fail_msg("csv %zu field %d: got \"%s\", want \"%s\"", i, k, f[k],
					 csv_cases[i].want[k]);
	}
}

static void test_csv_byte_by_byte_prefixes(void **state)
{
	/* Every prefix of a valid quoted record either parses or is a clean
	 * quote error: never a crash or an out-of-bounds read (ASan checks). */
	const char *full = "\"a@b.c\",\"p\"\"w,x\",10M";
	(void)state;
	for (size_t len = 0; len <= strlen(full); len++) {
		char line[64];
		char *f[4];
		memcpy(line, full, len);
		line[len] = '\0';
		int n = csv_split(line, f, 4);
		assert_true(n >= 1 || n == CSV_E_QUOTE);
	}
}

static const struct {
	const char *text;
	int want_rc;
	uint64_t want;
} size_cases[] = {
	{ "0", 0, 0 },
	{ "1024", 0, 1024 },
	{ "64K", 0, 65536 },
	{ "64kb", 0, 65536 },
	{ "10M", 0, 10485760 },
	{ "2G", 0, 2147483648ULL },
	{ "1T", 0, 1099511627776ULL },
	{ " 5M ", 0, 5242880 },
	{ "", -1, 0 },
	{ "M", -1, 0 },
	{ "12Q", -1, 0 },
	{ "-1", -1, 0 },
	{ "18446744073709551615", 0, 18446744073709551615ULL },
	{ "18446744073709551616", -1, 0 },
	{ "17179869184G", -1, 0 },
};

static void test_size_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		uint64_t v = 0;
		int rc = size_parse(size_cases[i].text, &v);
		if (rc != size_cases[i].want_rc || (rc == 0 && v != size_cases[i].want))
			fail_msg("size \"%s\": got rc %d value %llu, want rc %d value %llu", size_cases[i].text,
				 rc, (unsigned long long)v, size_cases[i].want_rc,
				 (unsigned long long)size_cases[i].want);
	}
}

static void test_size_format(void **state)
{
	char out[16];
	(void)state;
	size_format(123, out, sizeof(out));
	assert_string_equal(out, "123");
	size_format(10485760, out, sizeof(out));
	assert_string_equal(out, "10M");
	size_format(1536ULL << 20, out, sizeof(out));
	assert_string_equal(out, "1.5G");
	size_format(2ULL << 40, out, sizeof(out));
	assert_string_equal(out, "2T");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_split),
		cmocka_unit_test(test_csv_byte_by_byte_prefixes),
		cmocka_unit_test(test_size_parse),
		cmocka_unit_test(test_size_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
