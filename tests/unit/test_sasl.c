/*
 * Every SASL mechanism through the real libsasl2 client library, in
 * process, against node/auth (node/sasl_server.c underneath) and a real
 * directory: success and each way to fail, table-driven. GSSAPI needs a
 * KDC: tests/unit/test_sasl_gssapi.c, run by tests/integration/test_kerberos.py.
 */
#include "test_auth_fixture.h"

#include "node/sasl_client.h"

struct mech_case {
	const char *mech;
	const char *authcid;
	const char *authzid;
	const char *password;
	enum auth_status want;
	enum auth_reason reason;
	const char *want_user; /* AUTH_OK */
	const char *detail;    /* substring of the log detail, AUTH_FAIL */
};

#define OK(m, u, p, who)                                                                           \
	{                                                                                          \
		m, u, NULL, p, AUTH_OK, AUTH_REASON_NONE, who, NULL                                \
	}
#define FAIL(m, u, z, p, r, d)                                                                     \
	{                                                                                          \
		m, u, z, p, AUTH_FAIL, r, NULL, d                                                  \
	}

static const struct mech_case cases[] = {
    /* Plaintext mechanisms: the password is checked against the crypt(3) hash. */
    OK("PLAIN", "alice@shared.test", "alice-pw", "alice@shared.test"),
    OK("PLAIN", "Alice@Shared.TEST", "alice-pw", "alice@shared.test"),
    OK("PLAIN", "carol@plain.test", "carol-pw", "carol@plain.test"),
    OK("PLAIN", "bob@shared.test", "bob-pw", "bob@shared.test"),
    FAIL("PLAIN", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, "wrong password"),
    FAIL("PLAIN", "nobody@shared.test", NULL, "alice-pw", AUTH_REASON_CREDENTIALS, "unknown user"),
    FAIL("PLAIN", "nobody@nowhere.test", NULL, "x", AUTH_REASON_CREDENTIALS, "unknown user"),
    FAIL("PLAIN", "alice", NULL, "alice-pw", AUTH_REASON_CREDENTIALS, "not an address"),
    FAIL("PLAIN", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("PLAIN", "dave@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, "wrong password"),
    FAIL("PLAIN", "alice@shared.test", "bob@shared.test", "alice-pw", AUTH_REASON_AUTHZ,
	 "authorization"),
    OK("LOGIN", "alice@shared.test", "alice-pw", "alice@shared.test"),
    FAIL("LOGIN", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, "wrong password"),
    FAIL("LOGIN", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("LOGIN", "carol@plain.test", NULL, "bob-pw", AUTH_REASON_CREDENTIALS, "wrong password"),

    /* Shared-secret mechanisms: the recoverable secret through the auxprop plugin. */
    OK("CRAM-MD5", "alice@shared.test", "alice-pw", "alice@shared.test"),
    OK("CRAM-MD5", "ALICE@shared.test", "alice-pw", "alice@shared.test"),
    FAIL("CRAM-MD5", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, NULL),
    FAIL("CRAM-MD5", "bob@shared.test", NULL, "bob-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("CRAM-MD5", "carol@plain.test", NULL, "carol-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("CRAM-MD5", "nobody@shared.test", NULL, "x", AUTH_REASON_CREDENTIALS, "unknown user"),
    FAIL("CRAM-MD5", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("CRAM-MD5", "dave@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, NULL),

    OK("DIGEST-MD5", "alice@shared.test", "alice-pw", "alice@shared.test"),
    FAIL("DIGEST-MD5", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, NULL),
    FAIL("DIGEST-MD5", "bob@shared.test", NULL, "bob-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("DIGEST-MD5", "carol@plain.test", NULL, "carol-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("DIGEST-MD5", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("DIGEST-MD5", "alice@shared.test", "bob@shared.test", "alice-pw", AUTH_REASON_AUTHZ,
	 "authorization"),
    {"DIGEST-MD5", "alice@shared.test", "alice@shared.test", "alice-pw", AUTH_OK, AUTH_REASON_NONE,
     "alice@shared.test", NULL},

    OK("SCRAM-SHA-1", "alice@shared.test", "alice-pw", "alice@shared.test"),
    FAIL("SCRAM-SHA-1", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, NULL),
    FAIL("SCRAM-SHA-1", "bob@shared.test", NULL, "bob-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("SCRAM-SHA-1", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("SCRAM-SHA-1", "alice@shared.test", "bob@shared.test", "alice-pw", AUTH_REASON_AUTHZ,
	 "authorization"),

    OK("SCRAM-SHA-256", "alice@shared.test", "alice-pw", "alice@shared.test"),
    OK("SCRAM-SHA-256", "Alice@SHARED.test", "alice-pw", "alice@shared.test"),
    FAIL("SCRAM-SHA-256", "alice@shared.test", NULL, "wrong", AUTH_REASON_CREDENTIALS, NULL),
    FAIL("SCRAM-SHA-256", "bob@shared.test", NULL, "bob-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("SCRAM-SHA-256", "carol@plain.test", NULL, "carol-pw", AUTH_REASON_CREDENTIALS,
	 "no stored secret"),
    FAIL("SCRAM-SHA-256", "nobody@shared.test", NULL, "x", AUTH_REASON_CREDENTIALS, "unknown user"),
    FAIL("SCRAM-SHA-256", "dave@shared.test", NULL, "dave-pw", AUTH_REASON_DISABLED, "disabled"),
    FAIL("SCRAM-SHA-256", "alice@shared.test", "bob@shared.test", "alice-pw", AUTH_REASON_AUTHZ,
	 "authorization"),
};

static void test_mechanisms(void **state)
{
	struct auth_fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct mech_case *c = &cases[i];
		struct sasl_client_creds creds = {c->authcid, c->authzid, c->password};
		struct auth_outcome out;
		const char *error = NULL;

		int rc =
		    sasl_client_exchange(f->s, "imap", "localhost", c->mech, &creds, &out, &error);
		/* A client may itself give up on a failure it sees coming
		 * (e.g. SCRAM when the server's signature does not verify);
		 * the server must have said no before that. */
		if (rc < 0 && c->want == AUTH_OK)
			fail_msg("case %zu %s %s: client gave up: %s", i, c->mech, c->authcid,
				 error);
		if (rc == 0 && out.status != c->want)
			fail_msg("case %zu %s %s: got status %d (%s: %s), want %d", i, c->mech,
				 c->authcid, out.status, auth_reason_name(out.reason),
				 out.detail ? out.detail : "", c->want);
		assert_string_equal(out.mechanism, c->mech);
		if (c->want == AUTH_OK) {
			assert_string_equal(out.user, c->want_user);
			assert_int_equal(out.delay_ms, 0);
			continue;
		}
		if (rc == 0 && out.reason != c->reason)
			fail_msg("case %zu %s %s: got reason %s (%s), want %s", i, c->mech,
				 c->authcid, auth_reason_name(out.reason),
				 out.detail ? out.detail : "", auth_reason_name(c->reason));
		if (rc == 0 && c->detail != NULL && strstr(out.detail, c->detail) == NULL)
			fail_msg("case %zu %s %s: detail \"%s\", want one with \"%s\"", i, c->mech,
				 c->authcid, out.detail, c->detail);
		/* what comes after right credentials (disabled, authorization
		 * refused) is delayed like wrong ones: no quick "yes" */
		bool delayed = c->reason == AUTH_REASON_CREDENTIALS || c->reason == AUTH_REASON_DISABLED ||
			       c->reason == AUTH_REASON_AUTHZ;
		if (rc == 0 && delayed != (out.delay_ms > 0))
			fail_msg("case %zu %s %s: delay %u ms", i, c->mech, c->authcid,
				 out.delay_ms);
		/* Every case starts with no failures remembered. */
		fixture_clock_ms += 3600 * 1000;
	}
	/* The session is reusable after all of that. */
	struct sasl_client_creds ok = {"alice@shared.test", NULL, "alice-pw"};
	struct auth_outcome out;
	const char *error = NULL;
	assert_int_equal(
	    sasl_client_exchange(f->s, "imap", "localhost", "SCRAM-SHA-256", &ok, &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
}

/* PLAIN and LOGIN are refused before TLS unless the protocol allows them. */
static void test_plaintext_needs_tls(void **state)
{
	struct auth_fixture *f = *state;
	struct auth_session *plain = fixture_session(f, false);
	struct sasl_client_creds creds = {"alice@shared.test", NULL, "alice-pw"};
	struct auth_outcome out;
	const char *error = NULL;

	assert_int_equal(
	    sasl_client_exchange(plain, "imap", "localhost", "PLAIN", &creds, &out, &error), 0);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_TOO_WEAK);
	assert_int_equal(out.delay_ms, 0);
	/* Shared-secret mechanisms do not expose the password: allowed. */
	assert_int_equal(
	    sasl_client_exchange(plain, "imap", "localhost", "CRAM-MD5", &creds, &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
	/* STARTTLS happened. */
	auth_session_set_tls(plain, true);
	assert_int_equal(
	    sasl_client_exchange(plain, "imap", "localhost", "LOGIN", &creds, &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
	auth_session_free(&plain);

	struct auth_session_params p = {
	    .service = "pop", .peer = "127.0.0.1:1", .plaintext_allowed = true};
	struct auth_session *loopback = auth_session_new(f->auth, &p);
	assert_int_equal(
	    sasl_client_exchange(loopback, "pop", "localhost", "PLAIN", &creds, &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
	auth_session_free(&loopback);
}

/* Raw exchanges: SASL-IR forms, malformed data, aborts, unknown mechanisms. */
static void test_raw_exchanges(void **state)
{
	struct auth_fixture *f = *state;
	struct auth_outcome out;
	static const char plain_ir[] = "\0alice@shared.test\0alice-pw";

	/* PLAIN with the credentials as initial response: done in one call. */
	auth_start(f->s, "plain", plain_ir, sizeof(plain_ir) - 1, true, &out);
	assert_int_equal(out.status, AUTH_OK);
	assert_string_equal(out.user, "alice@shared.test");
	assert_string_equal(out.mechanism, "PLAIN");
	/* PLAIN without one: an empty challenge, then the credentials. */
	auth_start(f->s, "PLAIN", NULL, 0, false, &out);
	assert_int_equal(out.status, AUTH_CONTINUE);
	assert_int_equal(out.challenge_len, 0);
	auth_step(f->s, plain_ir, sizeof(plain_ir) - 1, &out);
	assert_int_equal(out.status, AUTH_OK);
	/* An empty initial response ("=") is a response, and not a valid one. */
	auth_start(f->s, "PLAIN", "", 0, true, &out);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_true(out.reason == AUTH_REASON_MALFORMED || out.reason == AUTH_REASON_CREDENTIALS);
	/* Junk for SCRAM. */
	auth_start(f->s, "SCRAM-SHA-256", "x,,n=alice", 10, true, &out);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_MALFORMED);
	assert_true(out.delay_ms > 0); /* junk counts against the address */
	fixture_clock_ms += 3600 * 1000;
	/* SCRAM answers an unknown user's first message as it does a known
	 * user's (a challenge): failing at once would tell who exists. */
	static const char *const who[] = {"alice@shared.test", "ghost@shared.test"};
	for (size_t i = 0; i < 2; i++) {
		char first[128];
		int n = snprintf(first, sizeof(first), "n,,n=%s,r=abcdefghijklmnop", who[i]);
		auth_start(f->s, "SCRAM-SHA-256", first, (size_t)n, true, &out);
		if (out.status != AUTH_CONTINUE)
			fail_msg("SCRAM first message for %s: status %d (%s)", who[i], out.status,
				 out.detail ? out.detail : "");
		auth_abort(f->s, &out);
	}
	/* CRAM-MD5 challenge is the server's; a response of junk fails. */
	auth_start(f->s, "CRAM-MD5", NULL, 0, false, &out);
	assert_int_equal(out.status, AUTH_CONTINUE);
	assert_true(out.challenge_len > 10 && out.challenge[0] == '<');
	auth_step(f->s, "junk", 4, &out);
	assert_int_equal(out.status, AUTH_FAIL);
	/* The client cancels. */
	auth_start(f->s, "LOGIN", NULL, 0, false, &out);
	assert_int_equal(out.status, AUTH_CONTINUE);
	auth_abort(f->s, &out);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_ABORTED);
	assert_string_equal(out.mechanism, "LOGIN");
	assert_int_equal(out.delay_ms, 0);
	/* A step with no exchange in progress. */
	auth_step(f->s, "x", 1, &out);
	assert_int_equal(out.reason, AUTH_REASON_MALFORMED);
	/* Unknown, disabled-by-build and unoffered mechanisms. */
	static const char *const bad[] = {
	    "ANONYMOUS", "EXTERNAL", "NTLM", "OTP", "X", "", "GSSAPI" /* no keytab configured */};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		auth_start(f->s, bad[i], NULL, 0, false, &out);
		if (out.status != AUTH_FAIL || out.reason != AUTH_REASON_MECHANISM)
			fail_msg("mechanism \"%s\": status %d reason %s", bad[i], out.status,
				 auth_reason_name(out.reason));
		assert_int_equal(out.delay_ms, 0);
	}
	/* An oversized response. */
	char *big = calloc(1, AUTH_RESPONSE_MAX + 1);
	auth_start(f->s, "PLAIN", big, AUTH_RESPONSE_MAX + 1, true, &out);
	assert_int_equal(out.reason, AUTH_REASON_MALFORMED);
	free(big);
}

static void test_mechanism_lists(void **state)
{
	struct auth_fixture *f = *state;
	char list[256];

	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_string_equal(list, "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
	auth_mechanisms(f->auth, false, false, list, sizeof(list));
	assert_string_equal(list, "CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
	auth_mechanisms(f->auth, false, true, list, sizeof(list));
	assert_string_equal(list, "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
	assert_true(auth_apop_available(f->auth));
	/* Too small a buffer: whole names only. */
	assert_int_equal(auth_mechanisms(f->auth, true, false, list, 12), 11);
	assert_string_equal(list, "PLAIN LOGIN");

	/* No domain stores secrets any more: the shared-secret ones go. */
	struct directory_domain d;
	assert_int_equal(directory_domain_get(f->dir, "shared.test", &d, NULL), DIRECTORY_OK);
	d.shared_secret_auth = false;
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_string_equal(
	    list, "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"); /* cached */
	auth_refresh(f->auth);
	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_string_equal(list, "PLAIN LOGIN");
	assert_false(auth_apop_available(f->auth));
	struct auth_outcome out;
	auth_start(f->s, "CRAM-MD5", NULL, 0, false, &out);
	assert_int_equal(out.reason, AUTH_REASON_MECHANISM);

	/* The operator's list. */
	struct auth_settings set;
	auth_settings_default(&set);
	set.now_ms = fixture_now;
	snprintf(set.mechanisms, sizeof(set.mechanisms), "SCRAM-SHA-256 PLAIN");
	auth_configure(f->auth, &set);
	d.shared_secret_auth = true;
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	auth_refresh(f->auth);
	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_string_equal(list, "PLAIN SCRAM-SHA-256");
	auth_start(f->s, "LOGIN", NULL, 0, false, &out);
	assert_int_equal(out.reason, AUTH_REASON_MECHANISM);
	/* A bad list on reload keeps the old one. */
	snprintf(set.mechanisms, sizeof(set.mechanisms), "PLAIN FOO");
	auth_configure(f->auth, &set);
	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_string_equal(list, "PLAIN SCRAM-SHA-256");
	/* ... and at creation it is an error. */
	struct auth *other = NULL;
	const char *error = NULL;
	assert_int_equal(auth_create(&set, f->dir, &other, &error), -1);
	assert_non_null(strstr(error, "FOO"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mechanisms, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_plaintext_needs_tls, fixture_setup,
					    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_raw_exchanges, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_mechanism_lists, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
