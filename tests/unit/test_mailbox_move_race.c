/*
 * A MOVE does not hold its source's lock between the copy and the
 * expunge. A flag or keyword change another session records on a moved
 * message in that interval must end up on the copy, not leave with the
 * removed message. The interval is entered deterministically: linkat()
 * (the copy linking the message file) is interposed, and its first call
 * while armed runs the other session's change before the real link.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>

#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

struct fixture {
	char *root;
	struct store *s;
	struct store_user *u;
	struct mailbox *inbox;
};

static struct mailbox *race_box;   /* the other session, on the source */
static bool race_armed;
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
	if (race_armed) {
		race_armed = false;
		race_change();
	}
	int (*real)(int, const char *, int, const char *, int) =
		(int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
	return real(a, b, c, d, e);
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
	race_armed = true;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_move_carries_change_to_light_destination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_move_carries_change_to_full_destination, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
