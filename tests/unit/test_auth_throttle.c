/* Unit tests for node/auth_throttle.c: the delay schedule, the cap, the
 * forgetting over time, forget-on-success, the bounded table and its
 * eviction, and concurrent use. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "node/auth_throttle.h"

static const struct auth_throttle_settings defaults = {
    .initial_ms = 500, .max_ms = 15000, .forget_sec = 60, .slots = 1024};

static void test_schedule(void **state)
{
	static const unsigned want[] = {500, 1000, 2000, 4000, 8000, 15000, 15000, 15000};
	struct auth_throttle *t = auth_throttle_new(&defaults);
	uint64_t now = 1000;
	(void)state;

	assert_int_equal(auth_throttle_peek(t, "10.0.0.1", now), 500);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		unsigned got = auth_throttle_failure(t, "10.0.0.1", now);
		if (got != want[i])
			fail_msg("failure %zu: got %u ms, want %u", i + 1, got, want[i]);
		now += 100;
	}
	/* Other keys are not affected. */
	assert_int_equal(auth_throttle_failure(t, "10.0.0.2", now), 500);
	assert_int_equal(auth_throttle_tracked(t, now), 2);
	auth_throttle_free(&t);
	assert_null(t);
}

static void test_forgetting(void **state)
{
	struct auth_throttle *t = auth_throttle_new(&defaults);
	uint64_t now = 5000;
	(void)state;

	for (int i = 0; i < 4; i++)
		auth_throttle_failure(t, "alice@example.test", now); /* 500 .. 4000 */
	/* The 5th would earn 8 s; a quiet minute forgets one failure. */
	assert_int_equal(auth_throttle_peek(t, "alice@example.test", now), 8000);
	assert_int_equal(auth_throttle_peek(t, "alice@example.test", now + 59999), 8000);
	assert_int_equal(auth_throttle_peek(t, "alice@example.test", now + 60000), 4000);
	assert_int_equal(auth_throttle_peek(t, "alice@example.test", now + 180000), 1000);
	assert_int_equal(auth_throttle_peek(t, "alice@example.test", now + 240000), 500);
	assert_int_equal(auth_throttle_tracked(t, now + 240000), 0);
	/* A failure after a quiet period starts from what is left. */
	assert_int_equal(auth_throttle_failure(t, "alice@example.test", now + 120000), 2000);

	/* However long an attack, at most MAX_FAILURES minutes to recover. */
	for (int i = 0; i < 1000; i++)
		auth_throttle_failure(t, "bob@example.test", now);
	assert_int_equal(auth_throttle_peek(t, "bob@example.test", now), 15000);
	assert_int_equal(auth_throttle_peek(t, "bob@example.test",
					    now + (uint64_t)AUTH_THROTTLE_MAX_FAILURES * 60000),
			 500);
	/* A clock that goes back does not underflow. */
	assert_int_equal(auth_throttle_peek(t, "bob@example.test", now - 1000), 15000);

	/* Success forgets everything for the key. */
	auth_throttle_forget(t, "bob@example.test");
	assert_int_equal(auth_throttle_peek(t, "bob@example.test", now), 500);
	auth_throttle_forget(t, "never-seen");
	auth_throttle_free(&t);
}

static void test_settings(void **state)
{
	struct auth_throttle_settings s = {
	    .initial_ms = 0, .max_ms = 0, .forget_sec = 0, .slots = 0};
	struct auth_throttle *t = auth_throttle_new(&s);
	(void)state;

	/* No delays at all; forget_sec 0 behaves as 1. */
	assert_int_equal(auth_throttle_failure(t, "x", 0), 0);
	assert_int_equal(auth_throttle_tracked(t, 0), 1);
	assert_int_equal(auth_throttle_tracked(t, 1000), 0);
	/* A max below the initial delay is raised to it; reconfiguring keeps the counts. */
	s = (struct auth_throttle_settings){.initial_ms = 300, .max_ms = 100, .forget_sec = 10};
	auth_throttle_configure(t, &s);
	assert_int_equal(auth_throttle_failure(t, "y", 0), 300);
	assert_int_equal(auth_throttle_failure(t, "y", 0), 300);
	s.max_ms = 10000;
	auth_throttle_configure(t, &s);
	assert_int_equal(auth_throttle_failure(t, "y", 0), 1200);
	auth_throttle_free(&t);
}

/* The table never grows: a flood of keys keeps it at its size, and the
 * entries with the most failures survive it. */
static void test_bounded(void **state)
{
	struct auth_throttle_settings s = defaults;
	struct auth_throttle *t;
	char key[32];
	(void)state;

	s.slots = 100; /* rounds up to 128 */
	t = auth_throttle_new(&s);
	for (int i = 0; i < 6; i++)
		auth_throttle_failure(t, "victim@example.test", 0);
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "flood-%d", i);
		auth_throttle_failure(t, key, 0);
	}
	assert_true(auth_throttle_tracked(t, 0) <= 128);
	/* One failure each cannot evict six. */
	assert_int_equal(auth_throttle_peek(t, "victim@example.test", 0), 15000);
	auth_throttle_free(&t);
}

static void *hammer(void *arg)
{
	struct auth_throttle *t = arg;
	char key[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "k%d", i % 97);
		auth_throttle_failure(t, key, (uint64_t)i);
		if (i % 13 == 0)
			auth_throttle_forget(t, key);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct auth_throttle *t = auth_throttle_new(&defaults);
	pthread_t th[4];
	(void)state;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, t);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_true(auth_throttle_tracked(t, 20000) <= 97);
	auth_throttle_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schedule), cmocka_unit_test(test_forgetting),
	    cmocka_unit_test(test_settings), cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
