/* node/job_pool.c: work runs off the loop, done runs on it, in order of
 * completion, and cancelled jobs still get their done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "node/job_pool.h"

struct item {
	int value;
	int result;
	pthread_t worker;
	bool done_ran;
	bool cancelled;
	struct event_base *base;
};

static pthread_t loop_thread;
static atomic_int remaining;

static void work(void *arg)
{
	struct item *it = arg;
	it->worker = pthread_self();
	usleep(1000);
	it->result = it->value * 2;
}

static void done(void *arg, bool cancelled)
{
	struct item *it = arg;
	assert_true(pthread_equal(pthread_self(), loop_thread));
	it->done_ran = true;
	it->cancelled = cancelled;
	if (atomic_fetch_sub(&remaining, 1) == 1)
		event_base_loopexit(it->base, NULL);
}

static void test_jobs_complete_on_the_loop(void **state)
{
	struct job_pool *pool;
	const char *error = NULL;
	struct item items[64] = { 0 };
	(void)state;

	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	loop_thread = pthread_self();
	assert_int_equal(job_pool_new(3, &pool, &error), 0);
	atomic_store(&remaining, 64);
	struct job *jobs[64];
	for (int i = 0; i < 64; i++) {
		items[i].value = i;
		items[i].base = base;
		jobs[i] = job_submit(pool, base, work, done, &items[i]);
		assert_non_null(jobs[i]);
	}
	job_cancel(jobs[63]); /* still queued behind 63 others: its work never runs */
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY); /* only activated events: keep waiting */
	for (int i = 0; i < 63; i++) {
		assert_true(items[i].done_ran);
		assert_false(items[i].cancelled);
		assert_int_equal(items[i].result, i * 2);
		assert_false(pthread_equal(items[i].worker, loop_thread));
	}
	assert_true(items[63].done_ran);
	assert_true(items[63].cancelled);
	assert_int_equal(items[63].result, 0);
	assert_int_equal(job_pool_busy(pool), 0);
	job_pool_free(&pool);
	assert_null(pool);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_complete_on_the_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
