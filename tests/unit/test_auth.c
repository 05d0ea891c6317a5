/*
 * Unit tests for node/auth*.c beyond the SASL mechanisms (test_sasl.c):
 * plaintext passwords (IMAP LOGIN, POP3 USER/PASS), APOP, the failure
 * delays per client address and per account as auth applies them
 * (growth, decay, success), counters, and the log lines (format, and
 * that no secret ever reaches them).
 */
#include "test_auth_fixture.h"

#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>

#include "node/auth_private.h"

struct pw_case {
	const char *user, *password;
	bool tls;
	enum auth_status want;
	enum auth_reason reason;
	const char *detail;
};

static const struct pw_case pw_cases[] = {
    {"alice@shared.test", "alice-pw", true, AUTH_OK, AUTH_REASON_NONE, NULL},
    {" alice@shared.test", "alice-pw", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS, "not an address"},
    {"ALICE@shared.TEST", "alice-pw", true, AUTH_OK, AUTH_REASON_NONE, NULL},
    {"carol@plain.test", "carol-pw", true, AUTH_OK, AUTH_REASON_NONE, NULL},
    {"alice@shared.test", "ALICE-PW", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS, "wrong password"},
    {"alice@shared.test", "", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS, "wrong password"},
    {"nobody@shared.test", "x", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS, "unknown user"},
    {"dave@shared.test", "dave-pw", true, AUTH_FAIL, AUTH_REASON_DISABLED, "disabled"},
    {"dave@shared.test", "nope", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS, "wrong password"},
    {"alice@shared.test", "alice-pw", false, AUTH_FAIL, AUTH_REASON_TOO_WEAK, "without TLS"},
    {"alice\r\n@shared.test", "alice-pw", true, AUTH_FAIL, AUTH_REASON_CREDENTIALS,
     "not an address"},
};

static void test_password(void **state)
{
	struct auth_fixture *f = *state;

	for (size_t i = 0; i < sizeof(pw_cases) / sizeof(pw_cases[0]); i++) {
		const struct pw_case *c = &pw_cases[i];
		struct auth_session *s = fixture_session(f, c->tls);
		struct auth_outcome out;
		auth_password(s, c->user, c->password, &out);
		if (out.status != c->want || out.reason != c->reason)
			fail_msg("case %zu %s: got %d/%s (%s), want %d/%s", i, c->user, out.status,
				 auth_reason_name(out.reason), out.detail ? out.detail : "",
				 c->want, auth_reason_name(c->reason));
		assert_string_equal(out.mechanism, "PASSWORD");
		if (c->detail != NULL && strstr(out.detail, c->detail) == NULL)
			fail_msg("case %zu: detail \"%s\", want \"%s\"", i, out.detail, c->detail);
		if (c->want == AUTH_OK)
			assert_true(strchr(out.user, '@') != NULL &&
				    islower((unsigned char)out.user[0]));
		/* a disabled account's right password is delayed like a wrong
		 * one: answered at once, it would confirm the guess */
		if (c->reason == AUTH_REASON_DISABLED || c->reason == AUTH_REASON_CREDENTIALS)
			assert_true(out.delay_ms > 0);
		auth_session_free(&s);
		fixture_clock_ms += 3600 * 1000;
	}
	/* A user without a password hash cannot log in with any password. */
	struct directory_user u;
	assert_int_equal(directory_user_get(f->dir, "carol@plain.test", &u, NULL), DIRECTORY_OK);
	u.password_hash[0] = '\0';
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_OK);
	struct auth_outcome out;
	auth_password(f->s, "carol@plain.test", "", &out);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);
	assert_string_equal(out.detail, "no password set");
	/* An absurdly long password is simply wrong. */
	char *big = malloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	auth_password(f->s, "alice@shared.test", big, &out);
	assert_int_equal(out.reason, AUTH_REASON_CREDENTIALS);
	free(big);
}

static void apop_digest_for(const char *timestamp, const char *secret, char hex[33])
{
	assert_int_equal(auth_apop_digest(timestamp, secret, hex), 0);
}

static void test_apop(void **state)
{
	struct auth_fixture *f = *state;
	char ts[AUTH_APOP_TIMESTAMP_MAX], ts2[AUTH_APOP_TIMESTAMP_MAX], hex[33];
	struct auth_outcome out;

	/* RFC 1939's example. */
	apop_digest_for("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", hex);
	assert_string_equal(hex, "c4c9334bac560ecc979e58001b3e22fb");

	/* Timestamps: the RFC's shape, fresh every time. */
	assert_int_equal(auth_apop_timestamp(f->auth, ts, sizeof(ts)), 0);
	assert_int_equal(auth_apop_timestamp(f->auth, ts2, sizeof(ts2)), 0);
	assert_true(ts[0] == '<' && ts[strlen(ts) - 1] == '>' && strstr(ts, "@localhost>") != NULL);
	assert_string_not_equal(ts, ts2);
	assert_int_equal(auth_apop_timestamp(f->auth, ts2, 10), -1);

	apop_digest_for(ts, "alice-pw", hex);
	auth_apop(f->s, "alice@shared.test", ts, hex, &out);
	assert_int_equal(out.status, AUTH_OK);
	assert_string_equal(out.user, "alice@shared.test");
	assert_string_equal(out.mechanism, "APOP");
	/* Upper-case hex is the same digest. */
	for (char *p = hex; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	auth_apop(f->s, "Alice@Shared.Test", ts, hex, &out);
	assert_int_equal(out.status, AUTH_OK);

	struct {
		const char *user, *secret, *digest;
		enum auth_reason reason;
		const char *detail;
	} bad[] = {
	    {"alice@shared.test", "wrong", NULL, AUTH_REASON_CREDENTIALS, "wrong digest"},
	    {"alice@shared.test", NULL, "c4c9334bac560ecc979e58001b3e22f", AUTH_REASON_MALFORMED,
	     "malformed"},
	    {"alice@shared.test", NULL, "c4c9334bac560ecc979e58001b3e22fbb", AUTH_REASON_MALFORMED,
	     "malformed"},
	    {"alice@shared.test", NULL, "g4c9334bac560ecc979e58001b3e22fb", AUTH_REASON_MALFORMED,
	     "malformed"},
	    {"bob@shared.test", "bob-pw", NULL, AUTH_REASON_CREDENTIALS, "no stored secret"},
	    {"carol@plain.test", "carol-pw", NULL, AUTH_REASON_CREDENTIALS, "no stored secret"},
	    {"nobody@shared.test", "x", NULL, AUTH_REASON_CREDENTIALS, "unknown user"},
	    {"nobody", "x", NULL, AUTH_REASON_CREDENTIALS, "not an address"},
	    {"dave@shared.test", "dave-pw", NULL, AUTH_REASON_DISABLED, "disabled"},
	    {"dave@shared.test", "wrong", NULL, AUTH_REASON_CREDENTIALS, "wrong digest"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].digest == NULL)
			apop_digest_for(ts, bad[i].secret, hex);
		else
			snprintf(hex, sizeof(hex), "%s", bad[i].digest);
		auth_apop(f->s, bad[i].user, ts, bad[i].digest ? bad[i].digest : hex, &out);
		if (out.status != AUTH_FAIL || out.reason != bad[i].reason ||
		    strstr(out.detail, bad[i].detail) == NULL)
			fail_msg("APOP case %zu %s: %d/%s (%s)", i, bad[i].user, out.status,
				 auth_reason_name(out.reason), out.detail ? out.detail : "");
		fixture_clock_ms += 3600 * 1000;
	}
	/* Another connection's timestamp does not work with this digest. */
	apop_digest_for(ts, "alice-pw", hex);
	auth_apop(f->s, "alice@shared.test", ts2[0] ? ts2 : "<x@y>", hex, &out);
	assert_int_equal(out.status, AUTH_FAIL);
	auth_apop(f->s, "alice@shared.test", "no-brackets", hex, &out);
	assert_int_equal(out.reason, AUTH_REASON_MALFORMED);

	/* No domain stores secrets: APOP is not offered at all. */
	struct directory_domain d;
	assert_int_equal(directory_domain_get(f->dir, "shared.test", &d, NULL), DIRECTORY_OK);
	d.shared_secret_auth = false;
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	auth_refresh(f->auth);
	assert_false(auth_apop_available(f->auth));
	auth_apop(f->s, "alice@shared.test", ts, hex, &out);
	assert_int_equal(out.reason, AUTH_REASON_MECHANISM);
}

/* Delays grow per client address and per account, decay with time, and
 * a success clears the account's (not the address's). */
static void test_delays(void **state)
{
	struct auth_fixture *f = *state;
	struct auth_session_params p = {.service = "imap", .tls = true};
	struct auth_outcome out;
	static const unsigned growth[] = {500, 1000, 2000, 4000, 8000, 15000, 15000};

	/* One address guessing one account. */
	for (size_t i = 0; i < sizeof(growth) / sizeof(growth[0]); i++) {
		auth_password(f->s, "alice@shared.test", "guess", &out);
		if (out.delay_ms != growth[i])
			fail_msg("failure %zu: delay %u, want %u", i + 1, out.delay_ms, growth[i]);
	}
	/* The right password waits as long as the last failure did (a quick
	 * answer would tell the guesser), and clears the account. */
	auth_password(f->s, "alice@shared.test", "alice-pw", &out);
	assert_int_equal(out.status, AUTH_OK);
	assert_int_equal(out.delay_ms, 15000);
	/* The address keeps its record: spraying other accounts stays slow. */
	auth_password(f->s, "carol@plain.test", "guess", &out);
	assert_int_equal(out.delay_ms, 15000);
	/* Per account: other addresses guessing alice's password. */
	fixture_clock_ms += 3600 * 1000;
	for (int i = 0; i < 5; i++) {
		char peer[32];
		snprintf(peer, sizeof(peer), "198.51.100.%d:1000", i + 1);
		p.peer = peer;
		struct auth_session *s = auth_session_new(f->auth, &p);
		auth_password(s, "alice@shared.test", "guess", &out);
		assert_int_equal(out.delay_ms, 500u << i); /* the account's count grows */
		auth_session_free(&s);
	}
	/* ... while a fresh address with a fresh account is not delayed more. */
	p.peer = "198.51.100.200:1";
	struct auth_session *fresh = auth_session_new(f->auth, &p);
	auth_password(fresh, "carol@plain.test", "guess", &out);
	assert_int_equal(out.delay_ms, 500);
	/* Decay: three quiet minutes forget three failures of alice. */
	fixture_clock_ms += 3 * 60 * 1000;
	auth_password(fresh, "alice@shared.test", "guess", &out);
	assert_int_equal(out.delay_ms, 2000); /* 5 - 3 + 1 = 3 failures */
	/* Unknown accounts are tracked too (by the name tried). */
	for (int i = 0; i < 3; i++)
		auth_password(fresh, "ghost@shared.test", "x", &out);
	assert_int_equal(out.delay_ms, 4000); /* the address has 5 failures by now */
	auth_session_free(&fresh);
	/* IPv6 clients are counted per /64. */
	fixture_clock_ms += 3600 * 1000;
	const char *v6[] = {"[2001:db8:1:2::1]:993", "[2001:db8:1:2:ffff::9]:993",
			    "[2001:db8:1:2:1:2:3:4]:1"};
	for (int i = 0; i < 3; i++) {
		p.peer = v6[i];
		struct auth_session *s = auth_session_new(f->auth, &p);
		char user[32];
		snprintf(user, sizeof(user), "u%d@shared.test", i);
		auth_password(s, user, "x", &out);
		assert_int_equal(out.delay_ms, 500u << i);
		auth_session_free(&s);
	}
	/* Temporary and policy failures earn no delay. */
	auth_password(f->s, "alice@shared.test", NULL, &out);
	assert_int_equal(out.reason, AUTH_REASON_MALFORMED);

	struct auth_stats st;
	auth_stats_get(f->auth, &st);
	assert_int_equal(st.success[AUTH_MECH_PASSWORD], 1);
	assert_true(st.failure[AUTH_MECH_PASSWORD] >= 19);
	assert_true(st.by_reason[AUTH_REASON_CREDENTIALS] >= 18);
	assert_true(st.delayed >= 18);
	assert_true(st.tracked_addresses >= 1);
	assert_true(st.tracked_accounts >= 1);
	struct textbuf text = TEXTBUF_INIT;
	auth_stats_format(f->auth, &text);
	assert_non_null(strstr(textbuf_str(&text), "PASSWORD"));
	assert_non_null(strstr(textbuf_str(&text), "bad-credentials="));
	textbuf_free(&text);
}

/* Runs fn with stderr (where logs go before log_init) captured. */
static void capture_stderr(void (*fn)(struct auth_fixture *), struct auth_fixture *f, char *buf,
			   size_t size)
{
	char path[] = "/tmp/cm-test-auth-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn(f);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

static void log_some(struct auth_fixture *f)
{
	struct auth_outcome out;
	static const char ir[] = "\0alice@shared.test\0Sup3rSecretPw";
	auth_password(f->s, "alice@shared.test", "Sup3rSecretPw", &out);
	auth_password(f->s, "alice@shared.test", "alice-pw", &out);
	auth_start(f->s, "PLAIN", ir, sizeof(ir) - 1, true, &out);
	auth_password(f->s, "evil\x1b[31m\"user\n", "Sup3rSecretPw", &out);
	auth_password(f->s,
		      "very-long-user-name-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@shared.test",
		      "Sup3rSecretPw", &out);
}

static void test_log_lines(void **state)
{
	struct auth_fixture *f = *state;
	char text[8192];

	capture_stderr(log_some, f, text, sizeof(text));
	assert_non_null(strstr(text,
			       "[auth] login failed user=alice@shared.test "
			       "peer=192.0.2.7:40000 mech=PASSWORD reason=bad-credentials "
			       "delay_ms=500 detail=\"wrong password\" service=imap conn=42"));
	assert_non_null(strstr(text, "[auth] login user=alice@shared.test peer=192.0.2.7:40000 "
				     "mech=PASSWORD service=imap conn=42"));
	assert_non_null(strstr(text, "mech=PLAIN reason=bad-credentials"));
	/* Client-given names cannot forge log lines or colour terminals. */
	assert_non_null(strstr(text, "user=evil\\x1b[31m\\x22user\\x0a "));
	assert_null(strstr(text, "\x1b"));
	/* Long names are cut. */
	assert_null(strstr(
	    text, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	/* No password ever. */
	assert_null(strstr(text, "Sup3rSecretPw"));
	assert_null(strstr(text, "alice-pw"));
	/* Five attempts, five lines. */
	int lines = 0;
	for (const char *p = text; (p = strstr(p, "[auth] login")) != NULL; p++)
		lines++;
	assert_int_equal(lines, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_password, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_apop, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_delays, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_log_lines, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
