/*
 * Unit tests for node/auth_pool.c: blocking authentication on worker
 * threads with the outcome delivered on the event loop's thread, after
 * the failure delay for failures; cancellation in every state (queued,
 * running, waiting out a delay) never calls back and never leaks; a handle
 * freed from inside its own callback; the pool draining on free.
 */
#include "test_auth_fixture.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <time.h>

#include "node/auth_pool.h"
#include "node/auth_private.h"

struct call {
	bool called;
	struct auth_outcome out;
	char user[64];
	char challenge[64];
	pthread_t thread;
	double at;
	struct event_base *base;
	const struct auth_iface *iface;
	struct auth_handle **free_me; /* free the handle from inside done */
};

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void done_cb(const struct auth_outcome *out, void *arg)
{
	struct call *c = arg;
	c->called = true;
	c->out = *out;
	snprintf(c->user, sizeof(c->user), "%s", out->user ? out->user : "");
	snprintf(c->challenge, sizeof(c->challenge), "%.*s", (int)out->challenge_len,
		 out->challenge ? (const char *)out->challenge : "");
	c->out.user = c->user;
	c->thread = pthread_self();
	c->at = now_sec();
	if (c->free_me != NULL)
		c->iface->handle_free(c->free_me);
	event_base_loopbreak(c->base);
}

/* Runs the loop until every call in calls[] is done, or timeout. */
static void run_until(struct event_base *base, struct call *calls, size_t n, double timeout)
{
	double end = now_sec() + timeout;
	for (;;) {
		size_t left = 0;
		for (size_t i = 0; i < n; i++)
			left += !calls[i].called;
		if (left == 0 || now_sec() > end)
			return;
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

struct pool_fixture {
	struct auth_fixture *f;
	struct event_base *base;
	struct auth_pool *pool;
	const struct auth_iface *iface;
};

static int pool_setup(void **state)
{
	struct auth_fixture *f;
	struct auth_settings set;
	const char *error = NULL;

	if (fixture_setup(state) < 0)
		return -1;
	f = *state;
	struct pool_fixture *pf = calloc(1, sizeof(*pf));
	pf->f = f;
	evthread_use_pthreads();
	pf->base = event_base_new();
	auth_settings_default(&set);
	set.now_ms = fixture_now;
	set.failure_delay_initial_ms = 150;
	auth_configure(f->auth, &set);
	if (auth_pool_new(f->auth, 2, &pf->pool, &error) < 0)
		return -1;
	pf->iface = auth_pool_iface();
	*state = pf;
	return 0;
}

static int pool_teardown(void **state)
{
	struct pool_fixture *pf = *state;
	auth_pool_free(&pf->pool);
	assert_null(pf->pool);
	event_base_free(pf->base);
	*state = pf->f;
	free(pf);
	return fixture_teardown(state);
}

static struct auth_handle *open_handle(struct pool_fixture *pf)
{
	struct auth_session_params p = {.service = "imap", .peer = "203.0.113.5:5000", .tls = true};
	struct auth_handle *h = pf->iface->handle_new(pf->pool, pf->base, &p);
	assert_non_null(h);
	return h;
}

static void test_delivery(void **state)
{
	struct pool_fixture *pf = *state;
	struct auth_handle *h = open_handle(pf);
	struct call c = {.base = pf->base, .iface = pf->iface};

	/* Success: delivered on this (the loop's) thread, not from the call. */
	pf->iface->password(h, "alice@shared.test", "alice-pw", done_cb, &c);
	assert_false(c.called);
	run_until(pf->base, &c, 1, 5);
	assert_true(c.called);
	assert_int_equal(c.out.status, AUTH_OK);
	assert_string_equal(c.user, "alice@shared.test");
	assert_true(pthread_equal(c.thread, pthread_self()));

	/* Failure: delivered after its delay, measured from the call. */
	memset(&c, 0, sizeof(c));
	c.base = pf->base;
	double t0 = now_sec();
	pf->iface->password(h, "alice@shared.test", "wrong", done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_int_equal(c.out.status, AUTH_FAIL);
	assert_int_equal(c.out.delay_ms, 150);
	assert_true(c.at - t0 >= 0.14);

	/* A SASL exchange in steps. */
	memset(&c, 0, sizeof(c));
	c.base = pf->base;
	pf->iface->start(h, "LOGIN", NULL, 0, false, done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_int_equal(c.out.status, AUTH_CONTINUE);
	assert_string_equal(c.challenge, "Username:");
	c.called = false;
	pf->iface->step(h, "alice@shared.test", 17, done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_string_equal(c.challenge, "Password:");
	c.called = false;
	pf->iface->step(h, "alice-pw", 8, done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_int_equal(c.out.status, AUTH_OK);
	assert_string_equal(c.out.mechanism, "LOGIN");

	/* Abort, and APOP through the interface. */
	char ts[AUTH_APOP_TIMESTAMP_MAX], hex[33];
	assert_true(pf->iface->apop_timestamp(pf->pool, ts, sizeof(ts)));
	assert_int_equal(auth_apop_digest(ts, "alice-pw", hex), 0);
	c.called = false;
	pf->iface->apop(h, "alice@shared.test", ts, hex, done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_int_equal(c.out.status, AUTH_OK);
	assert_string_equal(c.out.mechanism, "APOP");

	/* A second operation while one is in flight is refused, not queued. */
	c.called = false;
	struct call c2 = {.base = pf->base};
	pf->iface->password(h, "alice@shared.test", "alice-pw", done_cb, &c);
	pf->iface->password(h, "alice@shared.test", "alice-pw", done_cb, &c2);
	run_until(pf->base, &c, 1, 5);
	run_until(pf->base, &c2, 1, 0.2);
	assert_true(c.called);
	assert_false(c2.called);

	/* Mechanism lists through the interface. */
	char list[128];
	pf->iface->mechanisms(pf->pool, false, false, list, sizeof(list));
	assert_string_equal(list, "CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
	pf->iface->handle_free(&h);
	assert_null(h);
}

/* Handles freed while queued or running: no callback, no leak (ASan). */
static void test_cancel_in_flight(void **state)
{
	struct pool_fixture *pf = *state;
	enum { N = 24 };
	struct auth_handle *h[N];
	struct call c[N];

	memset(c, 0, sizeof(c));
	for (int i = 0; i < N; i++) {
		c[i].base = pf->base;
		h[i] = open_handle(pf);
		/* Password checks take a few ms each: with 2 threads most of
		 * these are still queued, some running, when freed. */
		pf->iface->password(h[i], "alice@shared.test", i % 2 ? "alice-pw" : "bad", done_cb,
				    &c[i]);
	}
	for (int i = 0; i < N; i += 2)
		pf->iface->handle_free(&h[i]);
	double end = now_sec() + 5;
	while (now_sec() < end) {
		bool all = true;
		for (int i = 1; i < N; i += 2)
			all &= c[i].called;
		if (all)
			break;
		struct timeval tv = {0, 20000};
		event_base_loopexit(pf->base, &tv);
		event_base_dispatch(pf->base);
	}
	for (int i = 0; i < N; i++) {
		if (i % 2 == 0 && c[i].called)
			fail_msg("handle %d was freed but its callback ran", i);
		if (i % 2 == 1 && (!c[i].called || c[i].out.status != AUTH_OK))
			fail_msg("handle %d: called %d status %d", i, c[i].called, c[i].out.status);
	}
	for (int i = 1; i < N; i += 2)
		pf->iface->handle_free(&h[i]);
}

/* Freed while waiting out a failure delay: the delivery is dropped. */
static void test_cancel_during_delay(void **state)
{
	struct pool_fixture *pf = *state;
	struct auth_handle *h = open_handle(pf);
	struct call c = {.base = pf->base};

	pf->iface->password(h, "alice@shared.test", "wrong", done_cb, &c);
	/* Let the worker finish (the timer is armed), but not the delay. */
	struct timeval tv = {0, 60000};
	event_base_loopexit(pf->base, &tv);
	event_base_dispatch(pf->base);
	assert_false(c.called);
	pf->iface->handle_free(&h);
	run_until(pf->base, &c, 1, 0.4);
	assert_false(c.called);
}

/* The callback frees its own handle (a connection closing on failure). */
static void test_free_in_callback(void **state)
{
	struct pool_fixture *pf = *state;
	struct auth_handle *h = open_handle(pf);
	struct call c = {.base = pf->base, .iface = pf->iface, .free_me = &h};

	pf->iface->start(h, "PLAIN", "\0alice@shared.test\0alice-pw", 27, true, done_cb, &c);
	run_until(pf->base, &c, 1, 5);
	assert_int_equal(c.out.status, AUTH_OK);
	assert_null(h);
}

/* Freeing the pool finishes what is queued first. */
static void test_pool_drains(void **state)
{
	struct pool_fixture *pf = *state;
	struct auth_handle *h[6];
	struct call c[6];

	memset(c, 0, sizeof(c));
	for (int i = 0; i < 6; i++) {
		c[i].base = pf->base;
		h[i] = open_handle(pf);
		pf->iface->password(h[i], "alice@shared.test", "alice-pw", done_cb, &c[i]);
	}
	auth_pool_free(&pf->pool);
	run_until(pf->base, c, 6, 5);
	for (int i = 0; i < 6; i++) {
		assert_true(c[i].called);
		pf->iface->handle_free(&h[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_delivery, pool_setup, pool_teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_in_flight, pool_setup, pool_teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_during_delay, pool_setup, pool_teardown),
	    cmocka_unit_test_setup_teardown(test_free_in_callback, pool_setup, pool_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_drains, pool_setup, pool_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
