/*
 * Unit tests for the authentication side of the account directory
 * (storage/directory_domain.c and the secret field of users): domain
 * settings, the shared-secret and realm indexes, secrets refused outside
 * shared-secret domains, secrets wiped when the setting is turned off
 * (single users, batches, batches racing the setting), domain deletion
 * cleaning the indexes, and the record encoding of the new fields.
 */
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

#include "storage/directory.h"
#include "storage/directory_db.h"
#include "storage/directory_internal.h"
#include "test_directory_fixture.h"
#include "storage/directory_record.h"

static int setup(void **state)
{
	struct fixture *f;
	if (fixture_setup(&f) < 0)
		return -1;
	assert_int_equal(directory_domain_add(f->dir, "example.test", NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_add(f->dir, "other.test", NULL), DIRECTORY_OK);
	*state = f;
	return 0;
}

static struct directory_user make_user(const char *address, const char *secret)
{
	struct directory_user u;
	memset(&u, 0, sizeof(u));
	snprintf(u.address, sizeof(u.address), "%s", address);
	strcpy(u.password_hash, HASH);
	snprintf(u.secret, sizeof(u.secret), "%s", secret);
	u.enabled = true;
	return u;
}

static void set_domain(struct directory *dir, const char *name, bool shared, const char *realm)
{
	struct directory_domain d;
	const char *error = NULL;
	assert_int_equal(directory_domain_get(dir, name, &d, &error), DIRECTORY_OK);
	d.shared_secret_auth = shared;
	snprintf(d.kerberos_realm, sizeof(d.kerberos_realm), "%s", realm);
	if (directory_domain_update(dir, &d, &error) != DIRECTORY_OK)
		fail_msg("update %s: %s", name, error);
}

static void test_domain_settings(void **state)
{
	struct fixture *f = *state;
	struct directory_domain d;
	const char *error = NULL;

	assert_int_equal(directory_domain_get(f->dir, "Example.TEST", &d, &error), DIRECTORY_OK);
	assert_string_equal(d.name, "example.test");
	assert_false(d.shared_secret_auth);
	assert_string_equal(d.kerberos_realm, "");
	assert_true(d.created > 0);
	int64_t created = d.created;
	assert_int_equal(directory_domain_shared_secret_any(f->dir), 0);

	set_domain(f->dir, "example.test", true, "TEST.REALM");
	assert_int_equal(directory_domain_get(f->dir, "example.test", &d, NULL), DIRECTORY_OK);
	assert_true(d.shared_secret_auth);
	assert_string_equal(d.kerberos_realm, "TEST.REALM");
	assert_int_equal(d.created, created);
	assert_int_equal(directory_domain_shared_secret_any(f->dir), 1);

	char domain[DIRECTORY_DOMAIN_MAX];
	assert_int_equal(directory_domain_by_realm(f->dir, "TEST.REALM", domain, NULL),
			 DIRECTORY_OK);
	assert_string_equal(domain, "example.test");
	/* Realms are exact: no case folding. */
	assert_int_equal(directory_domain_by_realm(f->dir, "test.realm", domain, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_domain_by_realm(f->dir, "BAD REALM", domain, NULL),
			 DIRECTORY_E_INVALID);

	/* One realm maps to one domain. */
	struct directory_domain o;
	assert_int_equal(directory_domain_get(f->dir, "other.test", &o, NULL), DIRECTORY_OK);
	strcpy(o.kerberos_realm, "TEST.REALM");
	assert_int_equal(directory_domain_update(f->dir, &o, &error), DIRECTORY_E_EXISTS);
	assert_non_null(strstr(error, "example.test"));
	strcpy(o.kerberos_realm, "bad/realm");
	assert_int_equal(directory_domain_update(f->dir, &o, &error), DIRECTORY_E_INVALID);
	strcpy(o.name, "nowhere.test");
	o.kerberos_realm[0] = '\0';
	assert_int_equal(directory_domain_update(f->dir, &o, &error), DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_domain_get(f->dir, "nowhere.test", &o, NULL),
			 DIRECTORY_E_NOTFOUND);

	/* Changing the realm moves the index; clearing it removes it. */
	set_domain(f->dir, "example.test", true, "NEW.REALM");
	assert_int_equal(directory_domain_by_realm(f->dir, "TEST.REALM", domain, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_domain_by_realm(f->dir, "NEW.REALM", domain, NULL),
			 DIRECTORY_OK);
	set_domain(f->dir, "other.test", false, "TEST.REALM"); /* now free */
	set_domain(f->dir, "example.test", false, "");
	assert_int_equal(directory_domain_by_realm(f->dir, "NEW.REALM", domain, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_domain_shared_secret_any(f->dir), 0);
}

static void test_user_secret(void **state)
{
	struct fixture *f = *state;
	struct directory_user u = make_user("alice@example.test", "s3cret"), got;
	const char *error = NULL;

	/* Refused while the domain does not store secrets. */
	assert_int_equal(directory_user_add(f->dir, &u, &error), DIRECTORY_E_INVALID);
	assert_non_null(strstr(error, "shared-secret-auth"));
	assert_null(strstr(error, "s3cret"));

	set_domain(f->dir, "example.test", true, "");
	assert_int_equal(directory_user_add(f->dir, &u, &error), DIRECTORY_OK);
	assert_int_equal(directory_user_get(f->dir, "alice@example.test", &got, NULL),
			 DIRECTORY_OK);
	assert_string_equal(got.secret, "s3cret");

	/* Control characters are refused like in display names. */
	struct directory_user bad = make_user("bob@example.test", "a\tb");
	assert_int_equal(directory_user_add(f->dir, &bad, &error), DIRECTORY_E_INVALID);
	/* Other domains still refuse. */
	struct directory_user o = make_user("carol@other.test", "pw");
	assert_int_equal(directory_user_add(f->dir, &o, &error), DIRECTORY_E_INVALID);
	o.secret[0] = '\0';
	assert_int_equal(directory_user_add(f->dir, &o, &error), DIRECTORY_OK);
	strcpy(o.secret, "pw");
	assert_int_equal(directory_user_update(f->dir, &o, &error), DIRECTORY_E_INVALID);

	/* Update keeps or replaces the secret as given. */
	got.quota_bytes = 5;
	assert_int_equal(directory_user_update(f->dir, &got, &error), DIRECTORY_OK);
	assert_int_equal(directory_user_get(f->dir, "alice@example.test", &got, NULL),
			 DIRECTORY_OK);
	assert_string_equal(got.secret, "s3cret");
	assert_int_equal(got.quota_bytes, 5);

	/* Turning the setting off wipes every secret of the domain. */
	struct directory_user d2 = make_user("dave@example.test", "other");
	assert_int_equal(directory_user_add(f->dir, &d2, &error), DIRECTORY_OK);
	struct directory_user plain = make_user("erin@example.test", "");
	assert_int_equal(directory_user_add(f->dir, &plain, &error), DIRECTORY_OK);
	set_domain(f->dir, "example.test", false, "");
	const char *names[] = {"alice@example.test", "dave@example.test", "erin@example.test"};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(directory_user_get(f->dir, names[i], &got, NULL), DIRECTORY_OK);
		if (got.secret[0] != '\0')
			fail_msg("%s still has a secret after shared-secret-auth off", names[i]);
		assert_string_equal(got.password_hash, HASH);
		assert_true(got.enabled);
	}
	assert_int_equal(got.quota_bytes, 0);
}

static void test_batch_secrets(void **state)
{
	struct fixture *f = *state;
	struct directory_batch *b = directory_batch_begin(f->dir);
	struct directory_user u = make_user("a1@example.test", "x1"), got;
	const char *error = NULL;

	assert_int_equal(directory_batch_user_add(b, &u, &error), DIRECTORY_E_INVALID);
	assert_int_equal(directory_batch_count(b), 0);
	set_domain(f->dir, "example.test", true, "");
	assert_int_equal(directory_batch_user_add(b, &u, &error), DIRECTORY_OK);
	u = make_user("a2@example.test", "x2");
	assert_int_equal(directory_batch_user_add(b, &u, &error), DIRECTORY_OK);
	u = make_user("b1@other.test", "");
	assert_int_equal(directory_batch_user_add(b, &u, &error), DIRECTORY_OK);
	assert_int_equal(directory_batch_commit(b, &error), DIRECTORY_OK);
	assert_int_equal(directory_user_get(f->dir, "a2@example.test", &got, NULL), DIRECTORY_OK);
	assert_string_equal(got.secret, "x2");

	/* The setting turned off between add and commit: nothing written. */
	u = make_user("a3@example.test", "x3");
	assert_int_equal(directory_batch_user_add(b, &u, &error), DIRECTORY_OK);
	set_domain(f->dir, "example.test", false, "");
	assert_int_equal(directory_batch_commit(b, &error), DIRECTORY_E_INVALID);
	assert_non_null(strstr(error, "example.test"));
	assert_int_equal(directory_user_get(f->dir, "a3@example.test", &got, NULL),
			 DIRECTORY_E_NOTFOUND);
	directory_batch_free(&b);
}

static int count_prefix(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	(void)key, (void)klen, (void)val, (void)vlen;
	(*(int *)ctx)++;
	return 0;
}

static void test_domain_del_cleans_index(void **state)
{
	struct fixture *f = *state;
	char domain[DIRECTORY_DOMAIN_MAX];
	int n = 0;

	set_domain(f->dir, "example.test", true, "TEST.REALM");
	struct directory_user u = make_user("alice@example.test", "pw");
	assert_int_equal(directory_user_add(f->dir, &u, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_del(f->dir, "example.test", true, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_shared_secret_any(f->dir), 0);
	assert_int_equal(directory_domain_by_realm(f->dir, "TEST.REALM", domain, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(dirdb_scan(directory_db(f->dir), "K", 1, count_prefix, &n, NULL), 0);
	assert_int_equal(dirdb_scan(directory_db(f->dir), "S", 1, count_prefix, &n, NULL), 0);
	assert_int_equal(n, 0);
	/* Re-created, the domain starts without settings. */
	struct directory_domain d;
	assert_int_equal(directory_domain_add(f->dir, "example.test", NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_get(f->dir, "example.test", &d, NULL), DIRECTORY_OK);
	assert_false(d.shared_secret_auth);
	assert_string_equal(d.kerberos_realm, "");
}

static void test_corrupt_index(void **state)
{
	struct fixture *f = *state;
	char domain[DIRECTORY_DOMAIN_MAX];
	const char *error = NULL;

	assert_int_equal(dirdb_put(directory_db(f->dir), "KBAD.REALM", 10, "", 0, NULL), 0);
	assert_int_equal(directory_domain_by_realm(f->dir, "BAD.REALM", domain, &error),
			 DIRECTORY_E_CORRUPT);
	assert_int_equal(
	    dirdb_put(directory_db(f->dir), "Dexample.test", 13, "\x01\x44\x07\x02a", 5, NULL), 0);
	struct directory_domain d;
	assert_int_equal(directory_domain_get(f->dir, "example.test", &d, &error),
			 DIRECTORY_E_CORRUPT);
	/* A corrupt domain record does not block deleting the domain. */
	assert_int_equal(directory_domain_del(f->dir, "example.test", true, &error), DIRECTORY_OK);
}

/* A realm key its domain does not back (the domain record was damaged
 * and the domain deleted: its realm key stayed) maps nothing, and another
 * domain may take the realm. */
static void test_stale_realm_key(void **state)
{
	struct fixture *f = *state;
	char domain[DIRECTORY_DOMAIN_MAX];
	assert_int_equal(directory_domain_add(f->dir, "a.example", NULL), DIRECTORY_OK);
	set_domain(f->dir, "a.example", false, "CORP.EXAMPLE");
	assert_int_equal(directory_domain_add(f->dir, "b.example", NULL), DIRECTORY_OK);
	assert_int_equal(dirdb_put(directory_db(f->dir), "Da.example", 10, "\x01\x44\xff", 3, NULL),
			 0);
	assert_int_equal(directory_domain_del(f->dir, "a.example", false, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_add(f->dir, "a.example", NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_by_realm(f->dir, "CORP.EXAMPLE", domain, NULL),
			 DIRECTORY_E_NOTFOUND);
	set_domain(f->dir, "b.example", false, "CORP.EXAMPLE");
	assert_int_equal(directory_domain_by_realm(f->dir, "CORP.EXAMPLE", domain, NULL),
			 DIRECTORY_OK);
	assert_string_equal(domain, "b.example");
}

/* A batch whose first add was refused checks the domain again later: it
 * may have been deleted in between. */
static void test_batch_rechecks_domain_after_refused_add(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(directory_domain_add(f->dir, "a.example", NULL), DIRECTORY_OK);
	struct directory_user x = make_user("x@a.example", "");
	assert_int_equal(directory_user_add(f->dir, &x, NULL), DIRECTORY_OK);
	struct directory_batch *b = directory_batch_begin(f->dir);
	assert_non_null(b);
	x = make_user("x@a.example", "");
	assert_int_equal(directory_batch_user_add(b, &x, NULL), DIRECTORY_E_EXISTS);
	assert_int_equal(directory_domain_del(f->dir, "a.example", true, NULL), DIRECTORY_OK);
	struct directory_user y = make_user("y@a.example", "");
	assert_true(directory_batch_user_add(b, &y, NULL) < 0);
	(void)directory_batch_commit(b, NULL);
	directory_batch_free(&b);
	struct directory_user got;
	assert_true(directory_user_get(f->dir, "y@a.example", &got, NULL) < 0);
}

static void test_record_fields(void **state)
{
	struct textbuf rec = TEXTBUF_INIT, old = TEXTBUF_INIT;
	struct directory_domain d = {.created = 1234, .shared_secret_auth = true}, e;
	struct directory_user u = make_user("x@y.z", "pa ss"), v;
	int64_t created;
	(void)state;

	strcpy(d.kerberos_realm, "EXAMPLE.COM");
	assert_int_equal(directory_record_domain_encode_settings(&d, &rec), DIRECTORY_OK);
	assert_int_equal(directory_record_domain_decode_settings(rec.data, rec.len, &e),
			 DIRECTORY_OK);
	assert_true(e.shared_secret_auth);
	assert_string_equal(e.kerberos_realm, "EXAMPLE.COM");
	assert_int_equal(e.created, 1234);
	assert_int_equal(directory_record_domain_decode(rec.data, rec.len, &created), DIRECTORY_OK);
	assert_int_equal(created, 1234);
	/* A domain without settings encodes exactly as before settings existed. */
	struct directory_domain plain = {.created = 1234};
	assert_int_equal(directory_record_domain_encode_settings(&plain, &rec), DIRECTORY_OK);
	assert_int_equal(directory_record_domain_encode(1234, &old), DIRECTORY_OK);
	assert_int_equal(rec.len, old.len);
	assert_memory_equal(rec.data, old.data, rec.len);

	assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_OK);
	assert_int_equal(directory_record_user_decode(rec.data, rec.len, &v), DIRECTORY_OK);
	assert_string_equal(v.secret, "pa ss");
	/* A user without a secret has no secret field at all. */
	u.secret[0] = '\0';
	assert_int_equal(directory_record_user_encode(&u, &rec), DIRECTORY_OK);
	assert_null(memchr(rec.data + 2, DIRECTORY_TAG_SECRET, 1));
	textbuf_free(&rec);
	textbuf_free(&old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_domain_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_secret, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_secrets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_domain_del_cleans_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_realm_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_rechecks_domain_after_refused_add, setup,
					    teardown),
	    cmocka_unit_test(test_record_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
