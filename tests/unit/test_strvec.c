/*
 * Unit tests for lib/strvec.c: copies are owned, growth past the first
 * allocation keeps every string, sorting is byte order, free empties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/strvec.h"

static void test_push_copies_and_grows(void **state)
{
	(void)state;
	struct strvec sv = STRVEC_INIT;
	char name[16];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%03d", 99 - i);
		strvec_push(&sv, name);
	}
	strcpy(name, "changed");
	assert_int_equal(sv.n, 100);
	assert_string_equal(sv.v[0], "n099");
	assert_string_equal(sv.v[99], "n000");
	strvec_sort(&sv, NULL);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		assert_string_equal(sv.v[i], name);
	}
	strvec_free(&sv);
	assert_null(sv.v);
	assert_int_equal(sv.n, 0);
	strvec_push(&sv, "again");
	assert_string_equal(sv.v[0], "again");
	strvec_free(&sv);
}

static int by_length(const void *a, const void *b)
{
	size_t x = strlen(*(const char *const *)a), y = strlen(*(const char *const *)b);
	return x < y ? -1 : x > y;
}

static void test_sort_with_a_comparator(void **state)
{
	(void)state;
	struct strvec sv = STRVEC_INIT;
	strvec_push(&sv, "ccc");
	strvec_push(&sv, "a");
	strvec_push(&sv, "bb");
	strvec_sort(&sv, by_length);
	assert_string_equal(sv.v[0], "a");
	assert_string_equal(sv.v[1], "bb");
	assert_string_equal(sv.v[2], "ccc");
	strvec_free(&sv);
}

static void test_sort_is_byte_order(void **state)
{
	(void)state;
	struct strvec sv = STRVEC_INIT;
	strvec_sort(&sv, NULL); /* empty: nothing to do */
	strvec_push(&sv, "b");
	strvec_push(&sv, "B");
	strvec_push(&sv, "a");
	strvec_push(&sv, "\xc3\xa4");
	strvec_sort(&sv, NULL);
	assert_string_equal(sv.v[0], "B");
	assert_string_equal(sv.v[1], "a");
	assert_string_equal(sv.v[2], "b");
	assert_string_equal(sv.v[3], "\xc3\xa4");
	strvec_free(&sv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_copies_and_grows),
		cmocka_unit_test(test_sort_is_byte_order),
		cmocka_unit_test(test_sort_with_a_comparator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
