/*
 * GSSAPI (Kerberos) through the real libsasl2 client and server plugins,
 * in process, against a real MIT KDC. The KDC, its principals, the
 * keytab and the tickets are made by tests/integration/test_kerberos.py,
 * which runs this program with:
 *   KRB5_CONFIG       the throwaway realm SHARED.REALM
 *   CM_KRB5_KEYTAB    keytab of imap/, smtp/, pop/localhost (not ftp/)
 *   CM_KRB5_CC_ALICE  ticket cache of alice@SHARED.REALM (a directory user)
 *   CM_KRB5_CC_STRANGER  ticket cache of stranger@SHARED.REALM (no directory user)
 *   CM_KRB5_CC_EMPTY  a cache without tickets
 * Without them (the plain unit-test run) every test is skipped.
 */
#include "test_auth_fixture.h"

#include "node/sasl_client.h"

static int gss_setup(void **state)
{
	const char *keytab = getenv("CM_KRB5_KEYTAB");
	if (keytab == NULL)
		return fixture_setup(state); /* the tests skip themselves */
	return fixture_setup_with(state, keytab);
}

static bool have_kdc(void)
{
	return getenv("CM_KRB5_KEYTAB") != NULL && getenv("CM_KRB5_CC_ALICE") != NULL &&
	       getenv("CM_KRB5_CC_STRANGER") != NULL && getenv("CM_KRB5_CC_EMPTY") != NULL;
}

/* One GSSAPI exchange with the tickets of cache env_cc, for a client
 * asking for a ticket of client_service and a server that is
 * server_service. Returns what sasl_client_exchange returned. */
static int gss_login2(struct auth_fixture *f, const char *env_cc, const char *client_service,
		      const char *server_service, struct auth_outcome *out, const char **error_r)
{
	struct sasl_client_creds creds = {.authcid = NULL};
	struct auth_session_params p = {
	    .service = server_service, .peer = "192.0.2.9:1234", .tls = true};
	struct auth_session *s = auth_session_new(f->auth, &p);
	setenv("KRB5CCNAME", getenv(env_cc), 1);
	int rc =
	    sasl_client_exchange(s, client_service, "localhost", "GSSAPI", &creds, out, error_r);
	/* The outcome's strings live in the session: keep the session of the
	 * last login in the fixture. */
	auth_session_free(&f->s);
	f->s = s;
	return rc;
}

static int gss_login(struct auth_fixture *f, const char *env_cc, const char *service,
		     struct auth_outcome *out, const char **error_r)
{
	return gss_login2(f, env_cc, service, service, out, error_r);
}

static void test_gssapi_login(void **state)
{
	struct auth_fixture *f = *state;
	struct auth_outcome out;
	const char *error = NULL;
	char list[256];

	if (!have_kdc())
		skip();
	auth_mechanisms(f->auth, true, false, list, sizeof(list));
	assert_non_null(strstr(list, "GSSAPI"));
	/* alice's ticket for each service: alice@SHARED.REALM -> alice@shared.test */
	static const char *const services[] = {"imap", "smtp", "pop"};
	for (size_t i = 0; i < 3; i++) {
		if (gss_login(f, "CM_KRB5_CC_ALICE", services[i], &out, &error) < 0)
			fail_msg("%s: %s", services[i], error);
		if (out.status != AUTH_OK)
			fail_msg("%s: %s (%s)", services[i], auth_reason_name(out.reason),
				 out.detail);
		assert_string_equal(out.user, "alice@shared.test");
		assert_string_equal(out.mechanism, "GSSAPI");
	}
	/* GSSAPI needs no TLS: the password never crosses the wire. */
	struct auth_session *clear = fixture_session(f, false);
	struct sasl_client_creds creds = {.authcid = NULL};
	setenv("KRB5CCNAME", getenv("CM_KRB5_CC_ALICE"), 1);
	assert_int_equal(
	    sasl_client_exchange(clear, "imap", "localhost", "GSSAPI", &creds, &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
	auth_session_free(&clear);
}

static void test_gssapi_failures(void **state)
{
	struct auth_fixture *f = *state;
	struct auth_outcome out;
	const char *error = NULL;

	if (!have_kdc())
		skip();
	/* A valid ticket of a principal that is no directory user. */
	assert_int_equal(gss_login(f, "CM_KRB5_CC_STRANGER", "imap", &out, &error), 0);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);
	assert_string_equal(out.detail, "unknown user");

	/* No ticket at all: the client library gives up before sending. */
	assert_int_equal(gss_login(f, "CM_KRB5_CC_EMPTY", "imap", &out, &error), -1);
	assert_non_null(error);

	/* A ticket for another of our services: an IMAP server refuses an SMTP ticket. */
	assert_int_equal(gss_login2(f, "CM_KRB5_CC_ALICE", "smtp", "imap", &out, &error), 0);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);

	/* A service the KDC knows but our keytab does not hold. */
	assert_int_equal(gss_login(f, "CM_KRB5_CC_ALICE", "ftp", &out, &error), 0);
	assert_int_equal(out.status, AUTH_FAIL);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);

	/* A disabled account, even with a valid ticket. */
	struct directory_user u;
	assert_int_equal(directory_user_get(f->dir, "alice@shared.test", &u, NULL), DIRECTORY_OK);
	u.enabled = false;
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_OK);
	assert_int_equal(gss_login(f, "CM_KRB5_CC_ALICE", "imap", &out, &error), 0);
	assert_int_equal(out.reason, AUTH_REASON_DISABLED);
	u.enabled = true;
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_OK);

	/* The realm maps no domain any more. */
	struct directory_domain d;
	assert_int_equal(directory_domain_get(f->dir, "shared.test", &d, NULL), DIRECTORY_OK);
	strcpy(d.kerberos_realm, "OTHER.REALM");
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	assert_int_equal(gss_login(f, "CM_KRB5_CC_ALICE", "imap", &out, &error), 0);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);
	assert_non_null(strstr(out.detail, "realm"));
	strcpy(d.kerberos_realm, "SHARED.REALM");
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	assert_int_equal(gss_login(f, "CM_KRB5_CC_ALICE", "imap", &out, &error), 0);
	assert_int_equal(out.status, AUTH_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_gssapi_login, gss_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_gssapi_failures, gss_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
