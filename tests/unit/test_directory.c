/*
 * Unit tests for the account directory (storage/directory*.c) against a
 * real RocksDB in a temporary folder per test: domains, users, aliases,
 * groups, name clashes between kinds, domain deletion, batches,
 * recipient resolution, corrupt records, the writer lock, readers as
 * secondaries, and concurrent writers.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/directory.h"
#include "storage/directory_db.h"
#include "storage/directory_internal.h"
#include "test_directory_fixture.h"

static int setup(void **state)
{
	struct fixture *f;
	if (fixture_setup(&f) < 0)
		return -1;
	*state = f;
	return 0;
}

static struct directory_user make_user(const char *address)
{
	struct directory_user u;
	memset(&u, 0, sizeof(u));
	snprintf(u.address, sizeof(u.address), "%s", address);
	strcpy(u.password_hash, HASH);
	u.enabled = true;
	return u;
}

static void add_domains(struct directory *dir, const char *const *domains)
{
	for (; *domains != NULL; domains++)
		assert_int_equal(directory_domain_add(dir, *domains, NULL), DIRECTORY_OK);
}

static void add_user(struct directory *dir, const char *address)
{
	struct directory_user u = make_user(address);
	const char *error = NULL;
	if (directory_user_add(dir, &u, &error) != DIRECTORY_OK)
		fail_msg("add user %s: %s", address, error);
}

/* Appends every name to a comma-separated list. */
static int list_names(const char *name, void *ctx)
{
	struct textbuf *sb = ctx;
	textbuf_printf(sb, "%s%s", sb->len > 0 ? "," : "", name);
	return 0;
}

static int list_users(const struct directory_user *u, void *ctx)
{
	return list_names(u->address, ctx);
}

static int list_aliases(const char *source, const char *target, void *ctx)
{
	struct textbuf *sb = ctx;
	textbuf_printf(sb, "%s%s>%s", sb->len > 0 ? "," : "", source, target);
	return 0;
}

static int list_groups(const struct directory_group *g, void *ctx)
{
	return list_names(g->address, ctx);
}

static void test_domains(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *input;
		int want;
	} adds[] = {
	    {"Example.COM", DIRECTORY_OK},
	    {"example.com", DIRECTORY_E_EXISTS},
	    {" example.com ", DIRECTORY_E_EXISTS},
	    {"a.example.com", DIRECTORY_OK},
	    {"example.org", DIRECTORY_OK},
	    {"bad..domain", DIRECTORY_E_INVALID},
	    {"[192.0.2.1]", DIRECTORY_E_INVALID},
	    {"user@example.net", DIRECTORY_E_INVALID},
	    {"", DIRECTORY_E_INVALID},
	};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		const char *error = NULL;
		int ret = directory_domain_add(f->dir, adds[i].input, &error);
		if (ret != adds[i].want)
			fail_msg("add '%s': got %d (%s) want %d", adds[i].input, ret, error,
				 adds[i].want);
	}
	static const struct {
		const char *input;
		int want;
	} exists[] = {
	    {"EXAMPLE.com", 1},
	    {"example.net", 0},
	    {"com", 0},
	    {"x..y", DIRECTORY_E_INVALID},
	};
	for (size_t i = 0; i < sizeof(exists) / sizeof(exists[0]); i++) {
		int ret = directory_domain_exists(f->dir, exists[i].input);
		if (ret != exists[i].want)
			fail_msg("exists '%s': got %d want %d", exists[i].input, ret,
				 exists[i].want);
	}
	struct textbuf sb = TEXTBUF_INIT;
	assert_int_equal(directory_domain_list(f->dir, list_names, &sb), 0);
	assert_string_equal(textbuf_str(&sb), "a.example.com,example.com,example.org");
	textbuf_free(&sb);
	assert_int_equal(directory_domain_del(f->dir, "example.net", false, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_domain_del(f->dir, "example.org", false, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_exists(f->dir, "example.org"), 0);
	assert_string_equal(directory_strerror(DIRECTORY_E_NODOMAIN), "not a local domain");
	assert_string_equal(directory_strerror(12345), "unknown directory error");
}

static void test_users(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", "example.org", NULL};
	add_domains(f->dir, domains);
	static const struct {
		const char *address, *hash, *name;
		int want;
	} adds[] = {
	    {"Ann@Example.com", HASH, "Ann", DIRECTORY_OK},
	    {"<bob@example.com>", "", "", DIRECTORY_OK},
	    {"carol@example.org", HASH, "Carol Example", DIRECTORY_OK},
	    {"ann@example.com", HASH, "", DIRECTORY_E_EXISTS},
	    {"ANN@EXAMPLE.COM", HASH, "", DIRECTORY_E_EXISTS},
	    {"dave@example.net", HASH, "", DIRECTORY_E_NODOMAIN},
	    {"not an address", HASH, "", DIRECTORY_E_INVALID},
	    {"@example.com", HASH, "", DIRECTORY_E_INVALID},
	    {"eve@example.com", "plaintext", "", DIRECTORY_E_INVALID},
	    {"eve@example.com", HASH, "Eve\r\nBcc: x", DIRECTORY_E_INVALID},
	};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		struct directory_user u = make_user(adds[i].address);
		const char *error = NULL;
		strcpy(u.password_hash, adds[i].hash);
		strcpy(u.display_name, adds[i].name);
		int ret = directory_user_add(f->dir, &u, &error);
		if (ret != adds[i].want)
			fail_msg("add '%s': got %d (%s) want %d", adds[i].address, ret, error,
				 adds[i].want);
		if (ret < 0 && (error == NULL || strstr(error, HASH) != NULL))
			fail_msg("add '%s': bad error text '%s'", adds[i].address, error);
	}
	struct directory_user u;
	const char *error = NULL;
	assert_int_equal(directory_user_get(f->dir, " <ANN@example.COM>", &u, &error),
			 DIRECTORY_OK);
	assert_string_equal(u.address, "ann@example.com");
	assert_string_equal(u.password_hash, HASH);
	assert_string_equal(u.display_name, "Ann");
	assert_true(u.enabled);
	assert_true(u.created > 1600000000);
	int64_t created = u.created;
	assert_int_equal(directory_user_get(f->dir, "zed@example.com", &u, &error),
			 DIRECTORY_E_NOTFOUND);
	assert_non_null(strstr(error, "zed@example.com"));
	assert_int_equal(directory_user_get(f->dir, "zed@", &u, NULL), DIRECTORY_E_INVALID);

	/* Update replaces the record and keeps created when given 0. */
	u = make_user("ann@EXAMPLE.com");
	u.quota_bytes = 1000;
	u.enabled = false;
	strcpy(u.display_name, "Ann B.");
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_OK);
	assert_int_equal(directory_user_get(f->dir, "ann@example.com", &u, NULL), DIRECTORY_OK);
	assert_int_equal(u.quota_bytes, 1000);
	assert_false(u.enabled);
	assert_string_equal(u.display_name, "Ann B.");
	assert_int_equal(u.created, created);
	u = make_user("nobody@example.com");
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_E_NOTFOUND);
	strcpy(u.password_hash, "clear");
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_E_INVALID);

	struct textbuf sb = TEXTBUF_INIT;
	assert_int_equal(directory_user_list(f->dir, NULL, list_users, &sb, NULL), DIRECTORY_OK);
	assert_string_equal(textbuf_str(&sb), "ann@example.com,bob@example.com,carol@example.org");
	textbuf_truncate(&sb, 0);
	assert_int_equal(directory_user_list(f->dir, "Example.ORG", list_users, &sb, NULL),
			 DIRECTORY_OK);
	assert_string_equal(textbuf_str(&sb), "carol@example.org");
	assert_int_equal(directory_user_list(f->dir, "example.net", list_users, &sb, NULL),
			 DIRECTORY_E_NODOMAIN);
	textbuf_free(&sb);

	assert_int_equal(directory_user_del(f->dir, "BOB@example.com", NULL), DIRECTORY_OK);
	assert_int_equal(directory_user_del(f->dir, "bob@example.com", NULL), DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_user_get(f->dir, "bob@example.com", &u, NULL),
			 DIRECTORY_E_NOTFOUND);
}

static int stop_after_first(const struct directory_user *u, void *ctx)
{
	(void)u;
	++*(int *)ctx;
	return 7;
}

static void test_list_stop(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	int calls = 0;
	add_domains(f->dir, domains);
	add_user(f->dir, "a@example.com");
	add_user(f->dir, "b@example.com");
	assert_int_equal(directory_user_list(f->dir, NULL, stop_after_first, &calls, NULL), 7);
	assert_int_equal(calls, 1);
}

static void test_name_kinds(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	struct directory_group g;
	add_domains(f->dir, domains);
	add_user(f->dir, "user@example.com");
	assert_int_equal(directory_alias_add(f->dir, "alias@example.com", "user@example.com", NULL),
			 0);
	memset(&g, 0, sizeof(g));
	strcpy(g.address, "group@example.com");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_OK);

	static const struct {
		const char *name;
		int want_user, want_alias, want_group, want_kind;
	} cases[] = {
	    {"user@example.com", DIRECTORY_E_EXISTS, DIRECTORY_E_EXISTS, DIRECTORY_E_EXISTS,
	     DIRECTORY_KIND_USER},
	    {"alias@example.com", DIRECTORY_E_EXISTS, DIRECTORY_OK, DIRECTORY_E_EXISTS,
	     DIRECTORY_KIND_ALIAS},
	    {"group@example.com", DIRECTORY_E_EXISTS, DIRECTORY_E_EXISTS, DIRECTORY_E_EXISTS,
	     DIRECTORY_KIND_GROUP},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct directory_user u = make_user(cases[i].name);
		const char *error = NULL;
		int kind = directory_lookup_kind(f->dir, cases[i].name);
		if (kind != cases[i].want_kind)
			fail_msg("kind of %s: got %d want %d", cases[i].name, kind,
				 cases[i].want_kind);
		int ret = directory_user_add(f->dir, &u, &error);
		if (ret != cases[i].want_user)
			fail_msg("user %s: got %d (%s) want %d", cases[i].name, ret, error,
				 cases[i].want_user);
		ret = directory_alias_add(f->dir, cases[i].name, "other@example.net", &error);
		if (ret != cases[i].want_alias)
			fail_msg("alias %s: got %d (%s) want %d", cases[i].name, ret, error,
				 cases[i].want_alias);
		memset(&g, 0, sizeof(g));
		strcpy(g.address, cases[i].name);
		ret = directory_group_add(f->dir, &g, &error);
		if (ret != cases[i].want_group)
			fail_msg("group %s: got %d (%s) want %d", cases[i].name, ret, error,
				 cases[i].want_group);
	}
	assert_int_equal(directory_lookup_kind(f->dir, "free@example.com"), DIRECTORY_KIND_NONE);
	assert_int_equal(directory_lookup_kind(f->dir, "@example.com"), DIRECTORY_KIND_NONE);
	assert_int_equal(directory_lookup_kind(f->dir, "x@@example.com"), DIRECTORY_E_INVALID);
}

static void test_aliases(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", "example.org", NULL};
	add_domains(f->dir, domains);
	add_user(f->dir, "ann@example.com");
	static const struct {
		const char *source, *target;
		int want;
	} adds[] = {
	    {"sales@example.com", "ann@example.com", DIRECTORY_OK},
	    {"Sales@Example.com", "<Bob@Remote.example>", DIRECTORY_OK},
	    {"sales@example.com", "carol@example.org", DIRECTORY_OK},
	    {"sales@example.com", "ANN@example.com", DIRECTORY_E_EXISTS},
	    {"@example.com", "ann@example.com", DIRECTORY_OK},
	    {"@example.org", "sales@example.com", DIRECTORY_OK},
	    {"loop@example.com", "loop@example.com", DIRECTORY_E_INVALID},
	    {"x@example.net", "ann@example.com", DIRECTORY_E_NODOMAIN},
	    {"x@example.com", "@example.org", DIRECTORY_E_INVALID},
	    {"x@example.com", "bad@@x", DIRECTORY_E_INVALID},
	    {"bad@", "ann@example.com", DIRECTORY_E_INVALID},
	};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		const char *error = NULL;
		int ret = directory_alias_add(f->dir, adds[i].source, adds[i].target, &error);
		if (ret != adds[i].want)
			fail_msg("alias %s -> %s: got %d (%s) want %d", adds[i].source,
				 adds[i].target, ret, error, adds[i].want);
	}
	static const struct {
		const char *domain, *source, *want;
	} lists[] = {
	    {NULL, "sales@example.com",
	     "sales@example.com>ann@example.com,sales@example.com>Bob@remote.example,sales@example."
	     "com>carol@example.org"},
	    {NULL, "@example.com", "@example.com>ann@example.com"},
	    {"example.org", NULL, "@example.org>sales@example.com"},
	    {NULL, NULL,
	     "@example.com>ann@example.com,sales@example.com>ann@example.com,sales@example.com>Bob@"
	     "remote.example,"
	     "sales@example.com>carol@example.org,@example.org>sales@example.com"},
	    {NULL, "nobody@example.com", ""},
	};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct textbuf sb = TEXTBUF_INIT;
		int ret = directory_alias_list(f->dir, lists[i].domain, lists[i].source,
					       list_aliases, &sb, NULL);
		if (ret != DIRECTORY_OK || strcmp(textbuf_str(&sb), lists[i].want) != 0)
			fail_msg("list %zu: got %d '%s' want '%s'", i, ret, textbuf_str(&sb),
				 lists[i].want);
		textbuf_free(&sb);
	}
	assert_int_equal(
	    directory_alias_del(f->dir, "sales@example.com", "bob@remote.example", NULL), 0);
	assert_int_equal(
	    directory_alias_del(f->dir, "sales@example.com", "bob@remote.example", NULL),
	    DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_alias_del(f->dir, "sales@example.com", NULL, NULL),
			 DIRECTORY_OK);
	assert_int_equal(directory_alias_del(f->dir, "sales@example.com", NULL, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_lookup_kind(f->dir, "sales@example.com"), DIRECTORY_KIND_NONE);
	assert_int_equal(directory_alias_del(f->dir, "@example.com", "ann@example.com", NULL), 0);
	assert_int_equal(
	    directory_alias_list(f->dir, "example.net", NULL, list_aliases, NULL, NULL),
	    DIRECTORY_E_NODOMAIN);
}

static void test_groups(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	struct directory_group g;
	struct textbuf sb = TEXTBUF_INIT;
	add_domains(f->dir, domains);
	memset(&g, 0, sizeof(g));
	strcpy(g.address, "Staff@Example.com");
	strcpy(g.display_name, "All staff");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_OK);
	assert_string_equal(g.address, "staff@example.com");
	strcpy(g.address, "staff@example.net");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_E_NODOMAIN);
	strcpy(g.address, "evil@example.com");
	strcpy(g.display_name, "a\nb");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_E_INVALID);

	static const struct {
		const char *group, *member;
		int want;
	} adds[] = {
	    {"staff@example.com", "ann@example.com", DIRECTORY_OK},
	    {"staff@example.com", "Bob@Remote.example", DIRECTORY_OK},
	    {"staff@example.com", "ann@EXAMPLE.com", DIRECTORY_E_EXISTS},
	    {"staff@example.com", "staff@example.com", DIRECTORY_E_INVALID},
	    {"staff@example.com", "@example.com", DIRECTORY_E_INVALID},
	    {"nogroup@example.com", "ann@example.com", DIRECTORY_E_NOTFOUND},
	};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		const char *error = NULL;
		int ret = directory_group_member_add(f->dir, adds[i].group, adds[i].member, &error);
		if (ret != adds[i].want)
			fail_msg("member %s of %s: got %d (%s) want %d", adds[i].member,
				 adds[i].group, ret, error, adds[i].want);
	}
	assert_int_equal(directory_group_get(f->dir, "staff@example.com", &g, NULL), DIRECTORY_OK);
	assert_string_equal(g.address, "staff@example.com");
	assert_string_equal(g.display_name, "All staff");
	assert_int_equal(directory_group_get(f->dir, "x@example.com", &g, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(
	    directory_group_members(f->dir, "staff@example.com", list_names, &sb, NULL), 0);
	assert_string_equal(textbuf_str(&sb), "ann@example.com,Bob@remote.example");
	assert_int_equal(directory_group_members(f->dir, "x@example.com", list_names, &sb, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(
	    directory_group_member_del(f->dir, "staff@example.com", "ann@example.com", NULL), 0);
	assert_int_equal(
	    directory_group_member_del(f->dir, "staff@example.com", "ann@example.com", NULL),
	    DIRECTORY_E_NOTFOUND);
	/* Deleting the group takes its members with it. */
	assert_int_equal(directory_group_del(f->dir, "staff@example.com", NULL), DIRECTORY_OK);
	assert_int_equal(directory_group_del(f->dir, "staff@example.com", NULL),
			 DIRECTORY_E_NOTFOUND);
	memset(&g, 0, sizeof(g));
	strcpy(g.address, "staff@example.com");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_OK);
	textbuf_truncate(&sb, 0);
	assert_int_equal(
	    directory_group_members(f->dir, "staff@example.com", list_names, &sb, NULL), 0);
	assert_string_equal(textbuf_str(&sb), "");
	textbuf_truncate(&sb, 0);
	strcpy(g.address, "admins@example.com");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_OK);
	assert_int_equal(directory_group_list(f->dir, "example.com", list_groups, &sb, NULL), 0);
	assert_string_equal(textbuf_str(&sb), "admins@example.com,staff@example.com");
	assert_int_equal(directory_group_list(f->dir, "example.net", list_groups, &sb, NULL),
			 DIRECTORY_E_NODOMAIN);
	textbuf_free(&sb);
}

/* Puts one of each kind into domain d. */
static void populate(struct directory *dir, const char *d)
{
	char a[128], b[128];
	struct directory_group g;
	snprintf(a, sizeof(a), "u@%s", d);
	add_user(dir, a);
	snprintf(b, sizeof(b), "al@%s", d);
	assert_int_equal(directory_alias_add(dir, b, a, NULL), 0);
	snprintf(b, sizeof(b), "@%s", d);
	assert_int_equal(directory_alias_add(dir, b, a, NULL), 0);
	memset(&g, 0, sizeof(g));
	snprintf(g.address, sizeof(g.address), "g@%s", d);
	assert_int_equal(directory_group_add(dir, &g, NULL), DIRECTORY_OK);
	assert_int_equal(directory_group_member_add(dir, g.address, a, NULL), 0);
}

static void test_domain_del(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"a.example", "a.example.org", "c.example", NULL};
	add_domains(f->dir, domains);
	populate(f->dir, "a.example");
	populate(f->dir, "a.example.org");
	populate(f->dir, "c.example");

	/* Without force: refused while anything remains, naming what. */
	static const struct {
		const char *want_what, *then_remove;
	} steps[] = {
	    {"users", "u@a.example"},
	    {"aliases", "al@a.example"},
	    {"aliases", "@a.example"},
	    {"groups", "g@a.example"},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const char *error = NULL;
		int ret = directory_domain_del(f->dir, "A.example", false, &error);
		if (ret != DIRECTORY_E_NOTEMPTY || strstr(error, steps[i].want_what) == NULL)
			fail_msg("step %zu: got %d '%s' want NOTEMPTY '%s'", i, ret, error,
				 steps[i].want_what);
		switch (directory_lookup_kind(f->dir, steps[i].then_remove)) {
		case DIRECTORY_KIND_USER:
			assert_int_equal(directory_user_del(f->dir, steps[i].then_remove, NULL), 0);
			break;
		case DIRECTORY_KIND_ALIAS:
			assert_int_equal(
			    directory_alias_del(f->dir, steps[i].then_remove, NULL, NULL), 0);
			break;
		case DIRECTORY_KIND_GROUP:
			assert_int_equal(directory_group_del(f->dir, steps[i].then_remove, NULL),
					 0);
			break;
		default:
			fail_msg("step %zu: %s is gone already", i, steps[i].then_remove);
		}
	}
	assert_int_equal(directory_domain_del(f->dir, "a.example", false, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_exists(f->dir, "a.example"), 0);

	/* With force: everything under the domain goes, nothing else. */
	assert_int_equal(directory_domain_del(f->dir, "c.example", false, NULL),
			 DIRECTORY_E_NOTEMPTY);
	assert_int_equal(directory_domain_del(f->dir, "c.example", true, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_exists(f->dir, "c.example"), 0);
	assert_int_equal(directory_domain_add(f->dir, "c.example", NULL), DIRECTORY_OK);
	static const struct {
		const char *address;
		int want_kind;
	} kinds[] = {
	    {"u@c.example", DIRECTORY_KIND_NONE},     {"al@c.example", DIRECTORY_KIND_NONE},
	    {"@c.example", DIRECTORY_KIND_NONE},      {"g@c.example", DIRECTORY_KIND_NONE},
	    {"u@a.example.org", DIRECTORY_KIND_USER}, {"al@a.example.org", DIRECTORY_KIND_ALIAS},
	    {"@a.example.org", DIRECTORY_KIND_ALIAS}, {"g@a.example.org", DIRECTORY_KIND_GROUP},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int kind = directory_lookup_kind(f->dir, kinds[i].address);
		if (kind != kinds[i].want_kind)
			fail_msg("%s: got kind %d want %d", kinds[i].address, kind,
				 kinds[i].want_kind);
	}
	struct textbuf sb = TEXTBUF_INIT;
	assert_int_equal(
	    directory_group_add(f->dir, &(struct directory_group){.address = "g@c.example"}, NULL),
	    0);
	assert_int_equal(directory_group_members(f->dir, "g@c.example", list_names, &sb, NULL), 0);
	assert_string_equal(textbuf_str(&sb), "");
	assert_int_equal(directory_group_members(f->dir, "g@a.example.org", list_names, &sb, NULL),
			 0);
	assert_string_equal(textbuf_str(&sb), "u@a.example.org");
	textbuf_free(&sb);
	assert_int_equal(directory_domain_del(f->dir, "c.example", true, NULL), DIRECTORY_OK);
	assert_int_equal(directory_domain_del(f->dir, "c.example", true, NULL),
			 DIRECTORY_E_NOTFOUND);
}

/* ---- resolution ---- */

struct recipients {
	char items[64][DIRECTORY_ADDRESS_MAX + 4];
	size_t count;
	int stop_with; /* returned by the callback */
};

static int collect_recipient(const char *address, bool local, void *ctx)
{
	struct recipients *r = ctx;
	if (r->count < 64)
		snprintf(r->items[r->count++], sizeof(r->items[0]), "%s:%c", address,
			 local ? 'L' : 'R');
	return r->stop_with;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sorted, comma-joined "address:L|R" list. */
static void recipients_join(struct recipients *r, struct textbuf *out)
{
	qsort(r->items, r->count, sizeof(r->items[0]), cmp_str);
	textbuf_truncate(out, 0);
	for (size_t i = 0; i < r->count; i++)
		textbuf_printf(out, "%s%s", i > 0 ? "," : "", r->items[i]);
}

static void alias(struct directory *dir, const char *source, const char *target)
{
	const char *error = NULL;
	if (directory_alias_add(dir, source, target, &error) != DIRECTORY_OK)
		fail_msg("alias %s -> %s: %s", source, target, error);
}

static void group(struct directory *dir, const char *address, const char *const *members)
{
	struct directory_group g;
	memset(&g, 0, sizeof(g));
	strcpy(g.address, address);
	assert_int_equal(directory_group_add(dir, &g, NULL), DIRECTORY_OK);
	for (; *members != NULL; members++)
		assert_int_equal(directory_group_member_add(dir, address, *members, NULL), 0);
}

static void test_resolve(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"d.example", "e.example", NULL};
	char a[64], b[64];
	add_domains(f->dir, domains);
	add_user(f->dir, "u1@d.example");
	add_user(f->dir, "u2@d.example");
	add_user(f->dir, "u3@d.example");
	add_user(f->dir, "boss@e.example");
	alias(f->dir, "team@d.example", "u1@d.example");
	alias(f->dir, "team@d.example", "u2@d.example");
	alias(f->dir, "team@d.example", "x@r.example");
	alias(f->dir, "dup@d.example", "team@d.example");
	alias(f->dir, "dup@d.example", "u1@d.example");
	alias(f->dir, "ring1@d.example", "ring2@d.example");
	alias(f->dir, "ring2@d.example", "ring1@d.example");
	alias(f->dir, "ring2@d.example", "u3@d.example");
	alias(f->dir, "pure1@d.example", "pure2@d.example");
	alias(f->dir, "pure2@d.example", "pure1@d.example");
	alias(f->dir, "ghost@d.example", "nobody@d.example");
	alias(f->dir, "fwd@d.example", "z@r.example");
	for (int i = 0; i < 10; i++) {
		snprintf(a, sizeof(a), "c%d@d.example", i);
		snprintf(b, sizeof(b), i < 9 ? "c%d@d.example" : "u1@d.example", i + 1);
		alias(f->dir, a, b);
	}
	group(f->dir, "grp@d.example",
	      (const char *const[]){"team@d.example", "u3@d.example", "y@r.example",
				    "grp2@d.example", NULL});
	group(f->dir, "grp2@d.example",
	      (const char *const[]){"u1@d.example", "grp@d.example", NULL});
	group(f->dir, "eg@e.example", (const char *const[]){NULL});
	alias(f->dir, "@e.example", "boss@e.example");
	alias(f->dir, "@e.example", "archive@r.example");
	/* "list" reaches z at once and down a chain of 8 (met first): z is
	 * expanded all the same; "deep" has a branch too deep and one not */
	alias(f->dir, "list@d.example", "k1@d.example");
	alias(f->dir, "list@d.example", "z@d.example");
	for (int i = 1; i <= 7; i++) {
		snprintf(a, sizeof(a), "k%d@d.example", i);
		snprintf(b, sizeof(b), i < 7 ? "k%d@d.example" : "z@d.example", i + 1);
		alias(f->dir, a, b);
	}
	alias(f->dir, "z@d.example", "u2@d.example");
	alias(f->dir, "deep@d.example", "c0@d.example");
	alias(f->dir, "deep@d.example", "u3@d.example");
	/* Another domain's local part keeps its case; ours are key form. */
	alias(f->dir, "cased@d.example", "<First.Last@R.Example>");
	alias(f->dir, "cased@d.example", "U1@D.example");
	assert_int_equal(directory_alias_add(f->dir, "cased@d.example", "first.last@r.example", NULL),
			 DIRECTORY_E_EXISTS);
	group(f->dir, "cgrp@d.example", (const char *const[]){"Mixed@r.example", "U2@d.example", NULL});

	static const struct {
		const char *address;
		int want;
		const char *recipients;
	} cases[] = {
	    {"u1@d.example", 1, "u1@d.example:L"},
	    {"<U1@D.Example>", 1, "u1@d.example:L"},
	    {"team@d.example", 1, "u1@d.example:L,u2@d.example:L,x@r.example:R"},
	    {"dup@d.example", 1, "u1@d.example:L,u2@d.example:L,x@r.example:R"},
	    {"ring1@d.example", 1, "u3@d.example:L"},
	    {"ring2@d.example", 1, "u3@d.example:L"},
	    {"pure1@d.example", DIRECTORY_E_NOTFOUND, ""},
	    {"ghost@d.example", DIRECTORY_E_NOTFOUND, ""},
	    {"fwd@d.example", 1, "z@r.example:R"},
	    {"c2@d.example", 1, "u1@d.example:L"},
	    {"c1@d.example", DIRECTORY_E_NOTFOUND, ""},
	    {"c0@d.example", DIRECTORY_E_NOTFOUND, ""},
	    {"list@d.example", 1, "u2@d.example:L"},
	    {"deep@d.example", DIRECTORY_E_NOTFOUND, "u3@d.example:L"}, /* none delivered */
	    {"grp@d.example", 1,
	     "u1@d.example:L,u2@d.example:L,u3@d.example:L,x@r.example:R,y@r.example:R"},
	    {"grp2@d.example", 1,
	     "u1@d.example:L,u2@d.example:L,u3@d.example:L,x@r.example:R,y@r.example:R"},
	    {"boss@e.example", 1, "boss@e.example:L"},
	    {"anyone@e.example", 1, "archive@r.example:R,boss@e.example:L"},
	    {"eg@e.example", DIRECTORY_E_NOTFOUND, ""},
	    {"cased@d.example", 1, "First.Last@r.example:R,u1@d.example:L"},
	    {"cgrp@d.example", 1, "Mixed@r.example:R,u2@d.example:L"},
	    {"unknown@d.example", DIRECTORY_E_NOTFOUND, ""},
	    {"someone@r.example", 0, ""},
	    {"bad@@d.example", DIRECTORY_E_INVALID, ""},
	    {"@e.example", DIRECTORY_E_INVALID, ""},
	};
	struct textbuf got = TEXTBUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct recipients r = {.count = 0};
		const char *error = NULL;
		int ret =
		    directory_resolve(f->dir, cases[i].address, collect_recipient, &r, &error);
		recipients_join(&r, &got);
		if (ret != cases[i].want || strcmp(textbuf_str(&got), cases[i].recipients) != 0)
			fail_msg("resolve %s: got %d [%s] (%s) want %d [%s]", cases[i].address, ret,
				 textbuf_str(&got), error ? error : "", cases[i].want,
				 cases[i].recipients);
		if (ret < 0 && error == NULL)
			fail_msg("resolve %s: no error text", cases[i].address);
	}
	textbuf_free(&got);

	/* The callback can stop the expansion (>0) or fail it (<0). */
	struct recipients r = {.count = 0, .stop_with = 1};
	assert_int_equal(directory_resolve(f->dir, "team@d.example", collect_recipient, &r, NULL),
			 1);
	assert_int_equal(r.count, 1);
	/* Deleting by the key form removes the target written with capitals. */
	assert_int_equal(directory_alias_del(f->dir, "cased@d.example", "first.last@r.example", NULL),
			 DIRECTORY_OK);
	assert_int_equal(directory_group_member_del(f->dir, "cgrp@d.example", "mixed@R.example", NULL),
			 DIRECTORY_OK);
	r = (struct recipients){.count = 0};
	assert_int_equal(directory_resolve(f->dir, "cgrp@d.example", collect_recipient, &r, NULL), 1);
	assert_int_equal(r.count, 1);
	r = (struct recipients){.count = 0, .stop_with = -42};
	assert_int_equal(directory_resolve(f->dir, "team@d.example", collect_recipient, &r, NULL),
			 -42);
	assert_int_equal(r.count, 1);
}

/* ---- batches ---- */

static void test_batch(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	add_domains(f->dir, domains);
	add_user(f->dir, "old@example.com");
	alias(f->dir, "taken@example.com", "old@example.com");

	struct directory_batch *b = directory_batch_begin(f->dir);
	static const struct {
		const char *address, *hash;
		int want;
	} adds[] = {
	    {"new1@example.com", HASH, DIRECTORY_OK},
	    {"New2@Example.com", "", DIRECTORY_OK},
	    {"new1@EXAMPLE.com", HASH, DIRECTORY_E_EXISTS},  /* twice in the batch */
	    {"old@example.com", HASH, DIRECTORY_E_EXISTS},   /* in the database */
	    {"taken@example.com", HASH, DIRECTORY_E_EXISTS}, /* an alias */
	    {"x@example.net", HASH, DIRECTORY_E_NODOMAIN},
	    {"x@", HASH, DIRECTORY_E_INVALID},
	    {"new3@example.com", "hunter2", DIRECTORY_E_INVALID},
	    {"new3@example.com", HASH, DIRECTORY_OK},
	};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		struct directory_user u = make_user(adds[i].address);
		const char *error = NULL;
		strcpy(u.password_hash, adds[i].hash);
		int ret = directory_batch_user_add(b, &u, &error);
		if (ret != adds[i].want)
			fail_msg("batch add %s: got %d (%s) want %d", adds[i].address, ret, error,
				 adds[i].want);
	}
	assert_int_equal(directory_batch_count(b), 3);
	/* Not visible before the commit. */
	assert_int_equal(directory_lookup_kind(f->dir, "new1@example.com"), DIRECTORY_KIND_NONE);
	assert_int_equal(directory_batch_commit(b, NULL), DIRECTORY_OK);
	assert_int_equal(directory_batch_count(b), 0);
	static const char *const added[] = {"new1@example.com", "new2@example.com",
					    "new3@example.com"};
	for (size_t i = 0; i < 3; i++) {
		struct directory_user u;
		if (directory_user_get(f->dir, added[i], &u, NULL) != DIRECTORY_OK)
			fail_msg("%s: not found after commit", added[i]);
	}
	/* The batch is reusable, and an empty commit is fine. */
	assert_int_equal(directory_batch_commit(b, NULL), DIRECTORY_OK);

	/* A conflicting write between add and commit: nothing is written. */
	struct directory_user u = make_user("race@example.com");
	assert_int_equal(directory_batch_user_add(b, &u, NULL), DIRECTORY_OK);
	u = make_user("other@example.com");
	assert_int_equal(directory_batch_user_add(b, &u, NULL), DIRECTORY_OK);
	alias(f->dir, "race@example.com", "old@example.com");
	const char *error = NULL;
	assert_int_equal(directory_batch_commit(b, &error), DIRECTORY_E_EXISTS);
	assert_non_null(strstr(error, "race@example.com"));
	assert_int_equal(directory_lookup_kind(f->dir, "other@example.com"), DIRECTORY_KIND_NONE);
	directory_batch_free(&b);
	assert_null(b);
}

/* ---- corrupt records, writer lock, readers, threads ---- */

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	struct directory_user u;
	struct directory_group g;
	char key[DIR_KEY_MAX];
	add_domains(f->dir, domains);
	add_user(f->dir, "ann@example.com");
	add_user(f->dir, "bob@example.com");
	memset(&g, 0, sizeof(g));
	strcpy(g.address, "grp@example.com");
	assert_int_equal(directory_group_add(f->dir, &g, NULL), DIRECTORY_OK);

	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} garbage[] = {
	    {"empty", "", 0},
	    {"text", "garbage", 7},
	    {"future version", "\x09U", 2},
	    {"overlong field",
	     "\x01U\x02\x7f"
	     "abc",
	     7},
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		const char *error = NULL;
		size_t klen = dir_key(key, DIR_KEY_USER, "example.com", "ann", NULL, false);
		assert_int_equal(dirdb_put(directory_db(f->dir), key, klen, garbage[i].bytes,
					   garbage[i].len, NULL),
				 0);
		int ret = directory_user_get(f->dir, "ann@example.com", &u, &error);
		if (ret != DIRECTORY_E_CORRUPT || strstr(error, "ann@example.com") == NULL)
			fail_msg("%s: get got %d (%s) want CORRUPT", garbage[i].what, ret, error);
		ret = directory_user_list(f->dir, NULL, list_users, NULL, NULL);
		if (ret != DIRECTORY_E_CORRUPT)
			fail_msg("%s: list got %d want CORRUPT", garbage[i].what, ret);
		klen = dir_key(key, DIR_KEY_GROUP, "example.com", "grp", NULL, false);
		assert_int_equal(dirdb_put(directory_db(f->dir), key, klen, garbage[i].bytes,
					   garbage[i].len, NULL),
				 0);
		assert_int_equal(directory_group_get(f->dir, "grp@example.com", &g, NULL),
				 DIRECTORY_E_CORRUPT);
		assert_int_equal(directory_group_list(f->dir, NULL, list_groups, NULL, NULL),
				 DIRECTORY_E_CORRUPT);
	}
	/* Other users still work; update repairs the broken one. */
	assert_int_equal(directory_user_get(f->dir, "bob@example.com", &u, NULL), DIRECTORY_OK);
	u = make_user("ann@example.com");
	assert_int_equal(directory_user_update(f->dir, &u, NULL), DIRECTORY_OK);
	assert_int_equal(directory_user_get(f->dir, "ann@example.com", &u, NULL), DIRECTORY_OK);
	assert_true(u.created > 0);

	/* A malformed key (domain longer than any domain) is CORRUPT too. */
	char bad[300] = "U";
	memset(bad + 1, 'z', 280);
	struct textbuf sb = TEXTBUF_INIT;
	assert_int_equal(dirdb_put(directory_db(f->dir), bad, 281, "", 0, NULL), 0);
	assert_int_equal(directory_user_list(f->dir, NULL, list_users, &sb, NULL),
			 DIRECTORY_E_CORRUPT);
	assert_string_equal(textbuf_str(&sb), "ann@example.com,bob@example.com");
	textbuf_free(&sb);
	/* A stored alias target that is not an address. */
	size_t klen = dir_key(key, DIR_KEY_ALIAS, "example.com", "al", "not-an-address", false);
	assert_int_equal(dirdb_put(directory_db(f->dir), key, klen, "", 0, NULL), 0);
	assert_int_equal(directory_resolve(f->dir, "al@example.com", collect_recipient,
					   &(struct recipients){.count = 0}, NULL),
			 DIRECTORY_E_CORRUPT);
}

static void test_format_version(void **state)
{
	struct fixture *f = *state;
	struct directory *dir = NULL;
	const char *error = NULL;
	assert_int_equal(dirdb_put(directory_db(f->dir), DIRECTORY_FORMAT_KEY,
				   strlen(DIRECTORY_FORMAT_KEY), "99", 2, NULL),
			 0);
	directory_close(&f->dir);
	assert_int_equal(directory_open(f->path, DIRECTORY_WRITER, NULL, &dir, &error),
			 DIRECTORY_E_CORRUPT);
	assert_non_null(strstr(error, "format 99"));
	assert_null(dir);
}

static void test_locked(void **state)
{
	struct fixture *f = *state;
	struct directory *second = NULL;
	const char *error = NULL;

	/* In this process... */
	assert_int_equal(directory_open(f->path, DIRECTORY_WRITER, NULL, &second, &error),
			 DIRECTORY_E_LOCKED);
	assert_null(second);
	if (strstr(error, f->path) == NULL || strstr(error, "locked") == NULL)
		fail_msg("got error '%s' want one naming %s as locked", error, f->path);
	assert_string_equal(directory_strerror(DIRECTORY_E_LOCKED),
			    "directory locked by another writer");

	/* ...and from another process (a fresh one: a forked child would
	 * inherit RocksDB's in-process lock table and not test the fcntl lock
	 * that other nodes see). */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_directory", "--try-writer", f->path, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("second writer in another process: got status %d want LOCKED", status);

	/* After the writer closes, another can open. */
	directory_close(&f->dir);
	assert_int_equal(directory_open(f->path, DIRECTORY_WRITER, NULL, &f->dir, NULL),
			 DIRECTORY_OK);
}

static void test_reader(void **state)
{
	struct fixture *f = *state;
	struct directory *reader = NULL;
	struct directory_user u;
	char secondary[160];
	const char *error = NULL;
	static const char *const domains[] = {"example.com", NULL};

	add_domains(f->dir, domains);
	add_user(f->dir, "before@example.com");
	snprintf(secondary, sizeof(secondary), "%s/secondary", f->tmp);
	assert_int_equal(directory_open(f->path, DIRECTORY_READER, NULL, &reader, &error),
			 DIRECTORY_E_IO);
	if (directory_open(f->path, DIRECTORY_READER, secondary, &reader, &error) != DIRECTORY_OK)
		fail_msg("open reader: %s", error);
	assert_int_equal(directory_user_get(reader, "before@example.com", &u, NULL), DIRECTORY_OK);

	/* Writes show up only after a refresh. */
	add_user(f->dir, "after@example.com");
	alias(f->dir, "al@example.com", "after@example.com");
	assert_int_equal(directory_user_get(reader, "after@example.com", &u, NULL),
			 DIRECTORY_E_NOTFOUND);
	assert_int_equal(directory_refresh(reader, &error), DIRECTORY_OK);
	assert_int_equal(directory_user_get(reader, "after@example.com", &u, NULL), DIRECTORY_OK);
	struct recipients r = {.count = 0};
	assert_int_equal(directory_resolve(reader, "al@example.com", collect_recipient, &r, NULL),
			 1);
	/* Also after the writer flushed its memtable to a table file. */
	add_user(f->dir, "flushed@example.com");
	assert_int_equal(directory_flush(f->dir, NULL), DIRECTORY_OK);
	assert_int_equal(directory_refresh(reader, NULL), DIRECTORY_OK);
	assert_int_equal(directory_user_get(reader, "flushed@example.com", &u, NULL), DIRECTORY_OK);

	/* A reader never writes. */
	u = make_user("x@example.com");
	assert_int_equal(directory_user_add(reader, &u, NULL), DIRECTORY_E_READONLY);
	assert_int_equal(directory_domain_add(reader, "example.org", NULL), DIRECTORY_E_READONLY);
	assert_int_equal(directory_alias_add(reader, "y@example.com", "x@example.com", NULL),
			 DIRECTORY_E_READONLY);
	assert_int_equal(directory_user_del(reader, "after@example.com", NULL),
			 DIRECTORY_E_READONLY);
	struct directory_batch *b = directory_batch_begin(reader);
	assert_int_equal(directory_batch_user_add(b, &u, NULL), DIRECTORY_E_READONLY);
	assert_int_equal(directory_batch_commit(b, NULL), DIRECTORY_E_READONLY);
	directory_batch_free(&b);
	assert_int_equal(directory_refresh(f->dir, NULL), DIRECTORY_OK); /* writer: no-op */
	assert_int_equal(directory_flush(reader, NULL), DIRECTORY_OK);	 /* reader: no-op */
	directory_close(&reader);
	assert_null(reader);

	/* A reader of a directory that does not exist fails cleanly. */
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/missing", f->tmp);
	assert_int_equal(directory_open(missing, DIRECTORY_READER, secondary, &reader, &error),
			 DIRECTORY_E_IO);
	assert_non_null(strstr(error, missing));
}

struct race {
	struct directory *dir;
	int ok, exists;
	pthread_mutex_t lock;
};

static void *race_thread(void *p)
{
	struct race *r = p;
	for (int i = 0; i < 50; i++) {
		char name[64];
		struct directory_user u;
		snprintf(name, sizeof(name), "n%d@example.com", i);
		u = make_user(name);
		int ret = i % 2 ? directory_user_add(r->dir, &u, NULL)
				: directory_alias_add(r->dir, name, "t@example.net", NULL);
		pthread_mutex_lock(&r->lock);
		if (ret == DIRECTORY_OK)
			r->ok++;
		else if (ret == DIRECTORY_E_EXISTS)
			r->exists++;
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

/* Four threads claim the same 50 names: each is taken exactly once. */
static void test_threads(void **state)
{
	struct fixture *f = *state;
	static const char *const domains[] = {"example.com", NULL};
	struct race r = {.dir = f->dir};
	pthread_t threads[4];
	add_domains(f->dir, domains);
	pthread_mutex_init(&r.lock, NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, race_thread, &r), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&r.lock);
	if (r.ok != 50 || r.exists != 150)
		fail_msg("got %d added %d refused, want 50 and 150", r.ok, r.exists);
}

/* test_directory --try-writer PATH: exit 0 when PATH is LOCKED. */
static int try_writer(const char *path)
{
	struct directory *dir = NULL;
	const char *error = NULL;
	int ret = directory_open(path, DIRECTORY_WRITER, NULL, &dir, &error);
	if (ret != DIRECTORY_E_LOCKED || strstr(error, path) == NULL) {
		fprintf(stderr, "try-writer: got %d (%s) want LOCKED\n", ret, error ? error : "");
		directory_close(&dir);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--try-writer") == 0)
		return try_writer(argv[2]);

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_name_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_aliases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_domain_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
