/*
 * Shared fixture of the auth unit tests (test_sasl.c, test_auth.c): a
 * real directory in a temporary folder, an auth context with a clock the
 * test drives, and these accounts:
 *   alice@shared.test   password "alice-pw", secret stored
 *   bob@shared.test     password "bob-pw", no secret (set before the domain stored them)
 *   dave@shared.test    password "dave-pw", secret stored, disabled
 *   carol@plain.test    password "carol-pw" (domain without shared secrets)
 * shared.test maps the Kerberos realm SHARED.REALM.
 */
#ifndef CM_TEST_AUTH_FIXTURE_H
#define CM_TEST_AUTH_FIXTURE_H

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/password.h"
#include "node/auth.h"
#include "storage/directory.h"

struct auth_fixture {
	char tmp[64];
	struct directory *dir;
	struct auth *auth;
	struct auth_session *s;
};

static uint64_t fixture_clock_ms = 1000000;

__attribute__((unused)) static uint64_t fixture_now(void)
{
	return fixture_clock_ms;
}

__attribute__((unused)) static int fixture_rm(const char *path, const struct stat *st, int flag,
					      struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

__attribute__((unused)) static void fixture_user(struct directory *dir, const char *address,
						 const char *password, bool secret, bool enabled)
{
	struct directory_user u;
	const char *error = NULL;
	memset(&u, 0, sizeof(u));
	snprintf(u.address, sizeof(u.address), "%s", address);
	assert_int_equal(password_hash(password, PASSWORD_YESCRYPT, 1, u.password_hash,
				       sizeof(u.password_hash), &error),
			 0);
	if (secret)
		snprintf(u.secret, sizeof(u.secret), "%s", password);
	u.enabled = enabled;
	if (directory_user_add(dir, &u, &error) != DIRECTORY_OK)
		fail_msg("add %s: %s", address, error);
}

__attribute__((unused)) static struct auth_session *fixture_session(struct auth_fixture *f,
								    bool tls)
{
	struct auth_session_params p = {
	    .service = "imap", .peer = "192.0.2.7:40000", .conn_id = 42, .tls = tls};
	return auth_session_new(f->auth, &p);
}

__attribute__((unused)) static int fixture_setup_with(void **state, const char *keytab)
{
	struct auth_fixture *f = calloc(1, sizeof(*f));
	struct auth_settings set;
	struct directory_domain d;
	const char *error = NULL;
	char path[128];

	strcpy(f->tmp, "/tmp/cm-test-auth-XXXXXX");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/directory", f->tmp);
	if (directory_open(path, DIRECTORY_WRITER, NULL, &f->dir, &error) != DIRECTORY_OK)
		return -1;
	assert_int_equal(directory_domain_add(f->dir, "shared.test", NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_add(f->dir, "plain.test", NULL), DIRECTORY_OK);
	fixture_user(f->dir, "bob@shared.test", "bob-pw", false, true);
	assert_int_equal(directory_domain_get(f->dir, "shared.test", &d, NULL), DIRECTORY_OK);
	d.shared_secret_auth = true;
	strcpy(d.kerberos_realm, "SHARED.REALM");
	assert_int_equal(directory_domain_update(f->dir, &d, NULL), DIRECTORY_OK);
	fixture_user(f->dir, "alice@shared.test", "alice-pw", true, true);
	fixture_user(f->dir, "dave@shared.test", "dave-pw", true, false);
	fixture_user(f->dir, "carol@plain.test", "carol-pw", false, true);

	auth_settings_default(&set);
	set.password_cost = 1;
	set.now_ms = fixture_now;
	snprintf(set.hostname, sizeof(set.hostname), "localhost");
	if (keytab != NULL) {
		snprintf(set.kerberos_keytab, sizeof(set.kerberos_keytab), "%s", keytab);
		snprintf(set.kerberos_default_realm, sizeof(set.kerberos_default_realm),
			 "SHARED.REALM");
	}
	if (auth_create(&set, f->dir, &f->auth, &error) < 0) {
		fprintf(stderr, "auth_create: %s\n", error);
		return -1;
	}
	f->s = fixture_session(f, true);
	fixture_clock_ms += 3600 * 1000; /* a fresh hour: no failures remembered */
	*state = f;
	return 0;
}

__attribute__((unused)) static int fixture_teardown(void **state)
{
	struct auth_fixture *f = *state;
	auth_session_free(&f->s);
	auth_destroy(&f->auth);
	directory_close(&f->dir);
	nftw(f->tmp, fixture_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

__attribute__((unused)) static int fixture_setup(void **state)
{
	return fixture_setup_with(state, NULL);
}

#endif
