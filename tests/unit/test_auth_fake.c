/* Unit tests for node/auth_fake.c, the in-memory authentication interface
 * protocol-wiring tests use: it must behave like the real one where the
 * wiring can tell (queued delivery, outcomes, reasons, cancellation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "node/auth_fake.h"
#include "node/auth_private.h"

struct got {
	int calls;
	struct auth_outcome out;
	char user[64], challenge[64];
};

static void done_cb(const struct auth_outcome *out, void *arg)
{
	struct got *g = arg;
	g->calls++;
	g->out = *out;
	snprintf(g->user, sizeof(g->user), "%s", out->user ? out->user : "");
	snprintf(g->challenge, sizeof(g->challenge), "%.*s", (int)out->challenge_len,
		 (const char *)out->challenge);
}

static void test_fake(void **state)
{
	struct auth_fake *fake = auth_fake_new();
	const struct auth_iface *a = auth_fake_iface();
	struct auth_session_params tls = {.service = "pop", .tls = true},
				   clear = {.service = "pop"};
	struct got g = {0};
	char buf[64];
	(void)state;

	auth_fake_add_user(fake, "alice@example.test", "pw", "secret", true);
	auth_fake_add_user(fake, "dave@example.test", "pw", NULL, false);
	auth_fake_set_delay(fake, 700);
	struct auth_handle *h = a->handle_new(fake, NULL, &tls);

	a->mechanisms(fake, false, false, buf, sizeof(buf));
	assert_string_equal(buf, "");
	a->mechanisms(fake, true, false, buf, sizeof(buf));
	assert_string_equal(buf, "PLAIN LOGIN");

	/* Queued, not delivered from the call. */
	a->password(h, "Alice@Example.test", "pw", done_cb, &g);
	assert_int_equal(g.calls, 0);
	assert_int_equal(auth_fake_pending(fake), 1);
	assert_int_equal(auth_fake_complete(fake), 1);
	assert_int_equal(g.out.status, AUTH_OK);
	assert_string_equal(g.user, "alice@example.test");

	a->password(h, "alice@example.test", "bad", done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_CREDENTIALS);
	assert_int_equal(g.out.delay_ms, 700);
	a->password(h, "dave@example.test", "pw", done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_DISABLED);
	assert_int_equal(g.out.delay_ms, 0);

	/* PLAIN with and without an initial response; LOGIN in two steps. */
	a->start(h, "PLAIN", "\0alice@example.test\0pw", 22, true, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.status, AUTH_OK);
	a->start(h, "PLAIN", NULL, 0, false, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.status, AUTH_CONTINUE);
	assert_string_equal(g.challenge, "");
	a->step(h, "bob\0alice@example.test\0pw", 26, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_AUTHZ);
	a->start(h, "LOGIN", NULL, 0, false, done_cb, &g);
	auth_fake_complete(fake);
	assert_string_equal(g.challenge, "Username:");
	a->step(h, "alice@example.test", 18, done_cb, &g);
	auth_fake_complete(fake);
	assert_string_equal(g.challenge, "Password:");
	a->step(h, "pw", 2, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.status, AUTH_OK);
	assert_string_equal(g.out.mechanism, "LOGIN");
	a->start(h, "LOGIN", NULL, 0, false, done_cb, &g);
	auth_fake_complete(fake);
	a->abort(h, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_ABORTED);
	a->start(h, "CRAM-MD5", NULL, 0, false, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_MECHANISM);

	/* APOP against the fake's secret. */
	char ts[64], hex[33];
	assert_true(a->apop_timestamp(fake, ts, sizeof(ts)));
	assert_int_equal(auth_apop_digest(ts, "secret", hex), 0);
	a->apop(h, "alice@example.test", ts, hex, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.status, AUTH_OK);
	a->apop(h, "dave@example.test", ts, hex, done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_CREDENTIALS);

	/* Injected failure, plaintext policy, cancellation. */
	auth_fake_fail_next(fake, AUTH_REASON_TEMPORARY);
	a->password(h, "alice@example.test", "pw", done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_TEMPORARY);
	struct auth_handle *c = a->handle_new(fake, NULL, &clear);
	a->password(c, "alice@example.test", "pw", done_cb, &g);
	auth_fake_complete(fake);
	assert_int_equal(g.out.reason, AUTH_REASON_TOO_WEAK);
	a->handle_set_tls(c, true);
	int before = g.calls;
	a->password(c, "alice@example.test", "pw", done_cb, &g);
	a->handle_free(&c);
	assert_null(c);
	assert_int_equal(auth_fake_complete(fake), 0);
	assert_int_equal(g.calls, before);

	a->handle_free(&h);
	auth_fake_free(&fake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_fake)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
