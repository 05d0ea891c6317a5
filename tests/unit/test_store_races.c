/*
 * Races between sessions, entered deterministically: linkat() is
 * interposed, and while armed its first link of a named file runs the
 * other session's step before (or after) the real link.
 *
 *  - A MOVE does not hold its source's lock between the copy and the
 *    expunge. A flag or keyword change another session records on a
 *    moved message in that interval must end up on the copy, not leave
 *    with the removed message.
 *  - A mailbox named twice in one delivery is charged once, even when an
 *    absorb takes the first naming's entry out of new/ before the second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <fcntl.h>

#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

struct fixture {
	char *root;
	struct store *s;
	struct store_user *u;
	struct mailbox *inbox;
};

static struct mailbox *race_box;   /* the other session, on the source */
static void (*race_before)(void);  /* armed: runs in the next linkat, before it */
static void (*race_after)(void);   /* armed: runs in the next linkat, after it */
static unsigned race_runs;

static void race_change(void)
{
	const char *err;
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	const char *late[] = { "$Late" };
	struct mail_flags_update add = {
		.op = MAIL_FLAGS_ADD, .flags = MAIL_FLAGGED, .keywords = late, .n_keywords = 1
	};
	struct mail_flags_update remove = { .op = MAIL_FLAGS_REMOVE, .flags = MAIL_SEEN };
	assert_int_equal(mailbox_store(race_box, &one, &add, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_store(race_box, &one, &remove, NULL, NULL, &err), 0);
	uidset_free(&one);
	race_runs++;
}

int linkat(int a, const char *b, int c, const char *d, int e)
{
	/* Only links from one name to another (a message file placed in a
	 * mailbox), not the naming of an unnamed file (empty or /proc path). */
	bool named = a != AT_FDCWD && b[0] != '\0';
	void (*before)(void) = named ? race_before : NULL, (*after)(void) = named ? race_after : NULL;
	if (named)
		race_before = race_after = NULL;
	if (before != NULL)
		before();
	int (*real)(int, const char *, int, const char *, int) =
		(int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
	int r = real(a, b, c, d, e);
	if (after != NULL)
		after();
	return r;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->root = tstore_mkdtemp();
	f->s = tstore_open(f->root, 0);
	f->u = tstore_user(f->s, "dave@example.com");
	f->inbox = tstore_mailbox(f->u, "INBOX", 0);
	tstore_append(f->s, f->inbox, "Subject: moved\r\n\r\nbody\r\n", MAIL_SEEN, "$Early");
	const char *err;
	assert_int_equal(mailbox_create(f->u, "Archive", 0, &err), 0);
	race_box = tstore_mailbox(f->u, "INBOX", 0);
	race_runs = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mailbox_close(&race_box);
	mailbox_close(&f->inbox);
	store_user_close(&f->u);
	store_close(&f->s);
	tstore_rmrf(&f->root);
	free(f);
	return 0;
}

static bool has_keyword(const struct mailbox *box, const struct mail_record *r, const char *name)
{
	for (unsigned i = 0; i < mailbox_keyword_count(box); i++)
		if (strcmp(mailbox_keyword(box, i), name) == 0)
			return (r->keywords >> i) & 1;
	return false;
}

static void move_with_change_in_between(struct fixture *f, unsigned dst_flags)
{
	const char *err;
	struct mailbox *dst = tstore_mailbox(f->u, "Archive", dst_flags);
	struct uidset one = UIDSET_INIT, src_uids = UIDSET_INIT, dst_uids = UIDSET_INIT;
	uidset_add(&one, 1);
	race_before = race_change;
	assert_int_equal(mailbox_copy(f->inbox, &one, dst, true, NULL, &src_uids, &dst_uids, &err), 0);
	assert_int_equal(race_runs, 1);
	assert_int_equal(uidset_count(&dst_uids), 1);
	mailbox_close(&dst);

	struct mailbox *check = tstore_mailbox(f->u, "Archive", MAILBOX_OPEN_READONLY);
	const struct mail_record *r = mailbox_lookup(check, 1);
	assert_non_null(r);
	assert_int_equal(r->flags & MAIL_FLAGS_MASK, MAIL_FLAGGED);
	assert_true(has_keyword(check, r, "$Late"));
	assert_true(has_keyword(check, r, "$Early"));
	mailbox_close(&check);
	check = tstore_mailbox(f->u, "INBOX", MAILBOX_OPEN_READONLY);
	assert_null(mailbox_lookup(check, 1));
	mailbox_close(&check);
	uidset_free(&one);
	uidset_free(&src_uids);
	uidset_free(&dst_uids);
}

/* The destination as an IMAP MOVE opens it: a light (append-only) view. */
static void test_move_carries_change_to_light_destination(void **state)
{
	move_with_change_in_between(*state, MAILBOX_OPEN_APPEND_ONLY);
}

static void test_move_carries_change_to_full_destination(void **state)
{
	move_with_change_in_between(*state, 0);
}

static struct store_user *absorb_user;

/* Another session opens INBOX: it absorbs new/ and removes the entry. */
static void absorb_inbox(void)
{
	struct mailbox *b = tstore_mailbox(absorb_user, "INBOX", 0);
	mailbox_close(&b);
	race_runs++;
}

static void test_mailbox_named_twice_charged_once(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_quota_usage q0, q1;
	assert_int_equal(store_quota_get(f->u, &q0, &err), 0);
	struct store_rcpt r[2];
	memset(r, 0, sizeof(r));
	r[0].address = "dave@example.com";
	r[1].address = "Dave@example.com";
	absorb_user = f->u;
	struct mail_writer *w = tstore_writer(f->s, "Subject: twice\r\n\r\nx\r\n");
	size_t size = mail_writer_size(w);
	race_after = absorb_inbox;
	assert_int_equal(store_deliver(f->s, &w, NULL, r, 2, &err), 0);
	assert_int_equal(race_runs, 1);
	assert_int_equal(r[0].result, 0);
	assert_int_equal(r[1].result, 0);
	assert_int_equal(store_quota_get(f->u, &q1, &err), 0);
	assert_int_equal(q1.messages, q0.messages + 1);
	assert_int_equal(q1.bytes, q0.bytes + size);
	struct mailbox *b = tstore_mailbox(f->u, "INBOX", 0);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 2); /* the fixture's one and this one */
	mailbox_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_move_carries_change_to_light_destination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_move_carries_change_to_full_destination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_named_twice_charged_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
