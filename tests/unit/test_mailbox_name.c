/*
 * Unit tests for mailbox names and the hierarchy: validation and encoding
 * (storage/mailbox_name.c) with malicious names that must never reach the
 * filesystem unencoded, then create / rename with children / delete /
 * subscriptions / special-use / INBOX (storage/mailbox_list.c and
 * friends) on a real temporary store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/index_format.h"
#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "tests/unit/test_store_helpers.h"

static void test_normalize_table(void **state)
{
	static const struct {
		const char *in, *want; /* want NULL: refused with code */
		int code;
	} cases[] = {
		{ "INBOX", "INBOX", 0 },
		{ "inbox", "INBOX", 0 },
		{ "InBoX/Sub", "INBOX/Sub", 0 },
		{ "inboxes", "inboxes", 0 },
		{ "Sent", "Sent", 0 },
		{ "a/b/c", "a/b/c", 0 },
		{ "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", 0 },
		{ "100%", "100%", 0 },
		{ ".hidden", ".hidden", 0 },
		{ "a/.b", "a/.b", 0 },
		{ "...", "...", 0 },
		{ "", NULL, STORE_E_INVALID },
		{ "/", NULL, STORE_E_INVALID },
		{ "/etc", NULL, STORE_E_INVALID },
		{ "a/", NULL, STORE_E_INVALID },
		{ "a//b", NULL, STORE_E_INVALID },
		{ "..", NULL, STORE_E_INVALID },
		{ "../../etc/passwd", NULL, STORE_E_INVALID },
		{ "a/../../b", NULL, STORE_E_INVALID },
		{ "a/./b", NULL, STORE_E_INVALID },
		{ ".", NULL, STORE_E_INVALID },
		{ "tab\there", NULL, STORE_E_INVALID },
		{ "nl\nhere", NULL, STORE_E_INVALID },
		{ "del\x7f", NULL, STORE_E_INVALID },
		{ "c1\xc2\x85", NULL, STORE_E_INVALID },
		{ "bad\xff", NULL, STORE_E_INVALID },
		{ "overlong\xc0\xaf", NULL, STORE_E_INVALID },
		{ "surrogate\xed\xa0\x80", NULL, STORE_E_INVALID },
		{ "cut\xe6\x97", NULL, STORE_E_INVALID },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[MAILBOX_NAME_MAX + 1];
		const char *err = NULL;
		int ret = mailbox_name_normalize(cases[i].in, out, &err);
		if (cases[i].want != NULL && (ret != 0 || strcmp(out, cases[i].want) != 0))
			fail_msg("case %zu: got %d \"%s\" (%s), want \"%s\"", i, ret, ret == 0 ? out : "",
				 err, cases[i].want);
		if (cases[i].want == NULL && ret != cases[i].code)
			fail_msg("case %zu: got %d, want %d", i, ret, cases[i].code);
	}
}

static void test_limits(void **state)
{
	(void)state;
	char name[MAILBOX_NAME_MAX + 2], out[MAILBOX_NAME_MAX + 1];
	memset(name, 'a', sizeof(name));
	name[MAILBOX_NAME_MAX + 1] = '\0';
	assert_int_equal(mailbox_name_normalize(name, out, NULL), STORE_E_LIMIT);
	/* One component of 255 '%' encodes to 765 bytes: too long for a file name. */
	memset(name, '%', 100);
	name[100] = '\0';
	assert_int_equal(mailbox_name_normalize(name, out, NULL), STORE_E_LIMIT);
	/* Depth. */
	struct textbuf deep = TEXTBUF_INIT;
	for (int i = 0; i <= MAILBOX_DEPTH_MAX; i++)
		textbuf_puts(&deep, i ? "/d" : "d");
	assert_int_equal(mailbox_name_normalize(textbuf_str(&deep), out, NULL), STORE_E_LIMIT);
	textbuf_free(&deep);
}

static void test_encode_roundtrip(void **state)
{
	static const struct {
		const char *comp, *enc;
	} cases[] = {
		{ "Sent", "Sent" },       { "100%", "100%25" },  { ".hidden", "%2Ehidden" },
		{ "a.b", "a.b" },         { "..x", "%2E.x" },    { "slash/", "slash%2F" },
		{ "Caf\xc3\xa9", "Caf\xc3\xa9" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char enc[MAILBOX_COMPONENT_ENC_MAX + 1], dec[MAILBOX_NAME_MAX + 1];
		assert_int_equal(mailbox_name_encode(cases[i].comp, strlen(cases[i].comp), enc), 0);
		if (strcmp(enc, cases[i].enc) != 0)
			fail_msg("case %zu: encoded %s, want %s", i, enc, cases[i].enc);
		assert_int_equal(mailbox_name_decode(enc, dec, sizeof(dec)), 0);
		assert_string_equal(dec, cases[i].comp);
	}
	/* Only canonical encodings decode. */
	static const char *foreign[] = { "%2e", "%", "%4", "%zz", "a%41", "%00x", ".box" };
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		char dec[64];
		if (mailbox_name_decode(foreign[i], dec, sizeof(dec)) == 0)
			fail_msg("%s decoded", foreign[i]);
	}
}

struct list_result {
	char text[2048];
};

static int list_collect(const struct mailbox_info *i, void *ctx)
{
	struct list_result *r = ctx;
	size_t len = strlen(r->text);
	snprintf(r->text + len, sizeof(r->text) - len, "%s%s%s%s%s%s;", i->name,
		 i->exists ? "" : " nonexistent", i->selectable || !i->exists ? "" : " noselect",
		 i->has_children ? " children" : "", i->subscribed ? " subscribed" : "",
		 i->special_use & MAILBOX_SPECIAL_SENT ? " sent" : "");
	return 0;
}

static const char *listing(struct store_user *u, struct list_result *r)
{
	r->text[0] = '\0';
	assert_int_equal(mailbox_list(u, list_collect, r, NULL), 0);
	return r->text;
}

static void test_hierarchy(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "Ann@Example.COM");
	struct list_result r;
	const char *err;
	assert_string_equal(store_user_address(u), "ann@example.com");
	assert_string_equal(listing(u, &r), "INBOX;");

	assert_int_equal(mailbox_create(u, "Sent", MAILBOX_SPECIAL_SENT, &err), 0);
	assert_int_equal(mailbox_create(u, "sent", 0, &err), 0); /* names are case-sensitive */
	assert_int_equal(mailbox_create(u, "Sent", 0, &err), STORE_E_EXISTS);
	assert_int_equal(mailbox_create(u, "inbox", 0, &err), STORE_E_EXISTS);
	assert_int_equal(mailbox_create(u, "a/b/c", 0, &err), 0);
	assert_int_equal(mailbox_create(u, "../x", 0, &err), STORE_E_INVALID);
	assert_int_equal(mailbox_subscribe(u, "a/b", true, &err), 0);
	assert_int_equal(mailbox_subscribe(u, "Ghost", true, &err), 0);
	assert_string_equal(listing(u, &r), "Ghost nonexistent subscribed;INBOX;Sent sent;a noselect children;"
					   "a/b noselect children subscribed;a/b/c;sent;");
	/* A level without a mailbox cannot be deleted while it has children. */
	assert_int_equal(mailbox_delete(u, "a", &err), STORE_E_INVALID);
	assert_int_equal(mailbox_delete(u, "INBOX", &err), STORE_E_INVALID);
	assert_int_equal(mailbox_delete(u, "nope", &err), STORE_E_NOTFOUND);

	/* Rename with children; subscriptions follow. */
	assert_int_equal(mailbox_rename(u, "a", "z/a", &err), 0);
	assert_string_equal(listing(u, &r), "Ghost nonexistent subscribed;INBOX;Sent sent;sent;z noselect children;"
					   "z/a noselect children;z/a/b noselect children subscribed;z/a/b/c;");
	assert_int_equal(mailbox_rename(u, "z/a", "z/a/b/x", &err), STORE_E_INVALID);
	assert_int_equal(mailbox_rename(u, "Sent", "sent", &err), STORE_E_EXISTS);
	assert_int_equal(mailbox_rename(u, "nope", "other", &err), STORE_E_NOTFOUND);
	assert_int_equal(mailbox_rename(u, "Sent", "Archive/Sent 2024", &err), 0);
	assert_string_equal(listing(u, &r), "Archive noselect children;Archive/Sent 2024 sent;Ghost nonexistent subscribed;"
					   "INBOX;sent;z noselect children;z/a noselect children;"
					   "z/a/b noselect children subscribed;z/a/b/c;");
	/* Deleting the last mailbox below levels removes the empty levels. */
	assert_int_equal(mailbox_delete(u, "z/a/b/c", &err), 0);
	assert_int_equal(mailbox_delete(u, "Archive/Sent 2024", &err), 0);
	assert_int_equal(mailbox_delete(u, "sent", &err), 0);
	assert_int_equal(mailbox_subscribe(u, "z/a/b", false, &err), 0);
	assert_int_equal(mailbox_subscribe(u, "Ghost", false, &err), 0);
	assert_string_equal(listing(u, &r), "INBOX;");
	/* Special-use on an existing mailbox only. */
	assert_int_equal(mailbox_create(u, "Junk", 0, &err), 0);
	assert_int_equal(mailbox_special_use_set(u, "Junk", MAILBOX_SPECIAL_JUNK, &err), 0);
	assert_int_equal(mailbox_special_use_set(u, "Nope", MAILBOX_SPECIAL_JUNK, &err), STORE_E_NOTFOUND);
	assert_int_equal(mailbox_special_use_set(u, "Junk", 0x1000, &err), STORE_E_INVALID);

	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A rename must not carry children past the depth or length limits: such
 * a mailbox would drop out of LIST and of fsck's quota recount. */
static void test_rename_keeps_children_within_limits(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "deep@example.com");
	const char *err;
	char deep[MAILBOX_NAME_MAX + 1] = "a";
	for (int i = 1; i < MAILBOX_DEPTH_MAX; i++)
		strcat(deep, "/x");
	assert_int_equal(mailbox_create(u, deep, 0, &err), 0);
	assert_int_equal(mailbox_rename(u, "a", "p/q/a", &err), STORE_E_LIMIT);
	assert_int_equal(mailbox_rename(u, "a/x", "p/q/r/x", &err), STORE_E_LIMIT);
	assert_int_equal(mailbox_rename(u, "a", "b", &err), 0); /* same depth: fine */
	char moved[MAILBOX_NAME_MAX + 1];
	snprintf(moved, sizeof(moved), "b%s", deep + 1);
	struct mailbox *b = tstore_mailbox(u, moved, 0);
	mailbox_close(&b);

	/* length: "L/<200 c>/<100 d>" renamed to 250 or 200 characters */
	char child[MAILBOX_NAME_MAX + 1] = "L/", target[MAILBOX_NAME_MAX + 1];
	memset(child + 2, 'c', 200);
	child[202] = '/';
	memset(child + 203, 'd', 100);
	child[303] = '\0';
	assert_int_equal(mailbox_create(u, child, 0, &err), 0);
	memset(target, 't', 250);
	target[250] = '\0';
	assert_int_equal(mailbox_rename(u, "L", target, &err), STORE_E_LIMIT);
	target[200] = '\0';
	assert_int_equal(mailbox_rename(u, "L", target, &err), 0); /* 200 + 302 = 502 */
	char renamed[2 * MAILBOX_NAME_MAX + 2];
	snprintf(renamed, sizeof(renamed), "%s%s", target, child + 1);
	b = tstore_mailbox(u, renamed, 0);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A subscription may name a mailbox that does not exist, so the rename's
 * length check over the mailboxes does not cover it: one whose new name
 * would be too long keeps its old name rather than being dropped. */
static void test_rename_keeps_a_too_long_subscription(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "subs@example.com");
	struct list_result r;
	const char *err;
	char ghost[MAILBOX_NAME_MAX + 1] = "S/", target[MAILBOX_NAME_MAX + 1], expect[4 * MAILBOX_NAME_MAX];
	memset(ghost + 2, 'g', 400);
	for (int i = 100; i < 400; i += 100)
		ghost[i] = '/';
	ghost[402] = '\0';
	memset(target, 't', 200);
	target[200] = '\0';
	assert_int_equal(mailbox_create(u, "S/kid", 0, &err), 0);
	assert_int_equal(mailbox_subscribe(u, "S/kid", true, &err), 0);
	assert_int_equal(mailbox_subscribe(u, ghost, true, &err), 0);
	assert_int_equal(mailbox_rename(u, "S", target, &err), 0);
	snprintf(expect, sizeof(expect), "INBOX;%s nonexistent subscribed;%s noselect children;%s/kid subscribed;",
		 ghost, target, target);
	assert_string_equal(listing(u, &r), expect);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

static void test_rename_inbox_and_uidvalidity(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "bob@example.com");
	const char *err;
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, b, "Subject: one\r\n\r\n1\r\n", MAIL_SEEN, NULL);
	struct mailbox_status st0, st1, st2;
	mailbox_get_status(b, &st0);
	assert_int_equal(mailbox_create(u, "INBOX/child", 0, &err), 0);
	assert_int_equal(mailbox_rename(u, "INBOX", "Old", &err), 0);
	/* The messages moved to a new mailbox; INBOX stayed, empty. */
	assert_int_equal(mailbox_status(u, "Old", &st1, &err), 0);
	assert_int_equal(st1.messages, 1);
	assert_int_equal(st1.unseen, 0);
	assert_true(st1.uidvalidity > st0.uidvalidity);
	assert_int_equal(mailbox_status(u, "INBOX", &st2, &err), 0);
	assert_int_equal(st2.messages, 0);
	assert_int_equal(st2.uidvalidity, st0.uidvalidity);
	assert_int_equal(st2.uidnext, st0.uidnext);
	assert_int_equal(mailbox_status(u, "INBOX/child", &st2, &err), 0);
	/* A session with INBOX selected sees the message expunged, and its
	 * appends still go to INBOX. */
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	mailbox_get_status(b, &st2);
	assert_int_equal(st2.messages, 0);
	assert_int_equal(tstore_append(s, b, "Subject: two\r\n\r\n2\r\n", 0, NULL), 2);
	mailbox_close(&b);
	assert_int_equal(mailbox_status(u, "INBOX", &st2, &err), 0);
	assert_int_equal(st2.messages, 1);
	assert_int_equal(mailbox_status(u, "Old", &st1, &err), 0);
	assert_int_equal(st1.messages, 1);
	/* Delete and re-create: a new UIDVALIDITY. */
	assert_int_equal(mailbox_delete(u, "Old", &err), 0);
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	assert_int_equal(mailbox_status(u, "Old", &st2, &err), 0);
	assert_true(st2.uidvalidity > st1.uidvalidity);
	assert_int_equal(st2.messages, 0);
	/* INBOX renamed below itself: only its messages move. */
	assert_int_equal(mailbox_rename(u, "INBOX", "INBOX/Old", &err), 0);
	assert_int_equal(mailbox_status(u, "INBOX/Old", &st2, &err), 0);
	assert_int_equal(st2.messages, 1);
	assert_int_equal(mailbox_status(u, "INBOX", &st2, &err), 0);
	assert_int_equal(st2.messages, 0);
	assert_int_equal(mailbox_status(u, "INBOX/child", &st2, &err), 0);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A name that would escape if used raw stays inside the user's box/. */
static void test_names_stay_inside(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "eve@example.com");
	static const char *names[] = { ".evil", "a/.box", "%2E%2E", "....", "x/..y", "100%/5" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *err;
		if (mailbox_create(u, names[i], 0, &err) != 0)
			fail_msg("create %s: %s", names[i], err);
		struct mailbox_status st;
		assert_int_equal(mailbox_status(u, names[i], &st, &err), 0);
	}
	/* Nothing was created outside <user>/box. */
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mail/example.com/.evil", root);
	assert_int_not_equal(stat(path, &st), 0);
	struct list_result r;
	assert_string_equal(listing(u, &r), "%2E%2E;....;.evil;100% noselect children;100%/5;INBOX;"
					   "a noselect children;a/.box;x noselect children;x/..y;");
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A deletion killed between its DELETED record and the synced mark: the
 * name can be created again (the deletion is finished first). */
static void test_create_over_unmarked_deletion(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "kim@example.com");
	const char *err = NULL;
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	struct mailbox *b = tstore_mailbox(u, "Old", 0);
	tstore_append(s, b, "Subject: 1\r\n\r\nx\r\n", 0, NULL);
	struct index_view *v = NULL;
	assert_int_equal(index_view_open(s, b->dir_fd, false, &v, &err), 0);
	mailbox_close(&b);
	assert_int_equal(index_view_lock(v, &err), 0);
	struct textbuf rec = TEXTBUF_INIT;
	size_t start = index_rec_begin(&rec);
	assert_int_equal(index_view_write(v, &rec, start, INDEX_REC_DELETED, 0, 0, 0, NULL, &err), 0);
	textbuf_free(&rec);
	index_view_unlock(v);
	index_view_free(&v); /* killed before index_view_durable */
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	struct mailbox_status st;
	assert_int_equal(mailbox_status(u, "Old", &st, &err), 0);
	assert_int_equal(st.messages, 0);
	b = tstore_mailbox(u, "Old", 0);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_table),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_encode_roundtrip),
		cmocka_unit_test(test_hierarchy),
		cmocka_unit_test(test_rename_keeps_children_within_limits),
		cmocka_unit_test(test_rename_keeps_a_too_long_subscription),
		cmocka_unit_test(test_rename_inbox_and_uidvalidity),
		cmocka_unit_test(test_names_stay_inside),
		cmocka_unit_test(test_create_over_unmarked_deletion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
