/*
 * Fault injection for the mail store: the Nth call of fsync, syncfs,
 * rename, link, pwrite or ftruncate fails with EIO (or ENOSPC), for every
 * N an operation makes. Each operation must then fail cleanly (an error,
 * no crash, no leak under ASan) or succeed; afterwards, with the faults
 * off, fsck must repair whatever was left and every operation that had
 * reported success must be there, intact.
 *
 * The system calls are interposed here: this binary's definitions win
 * over the C library's for the store's objects, and forward to the real
 * ones (dlsym RTLD_NEXT) unless the countdown says otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <errno.h>

#include "tests/unit/test_store_helpers.h"

enum fault_call { F_FSYNC, F_SYNCFS, F_RENAMEAT, F_LINKAT, F_PWRITE, F_FTRUNCATE, F_CALLS };
static const char *const fault_names[F_CALLS] = { "fsync", "syncfs", "renameat", "linkat", "pwrite",
						  "ftruncate" };
static int fault_which = -1;  /* which call fails */
static long fault_countdown;  /* ... on this call (1 = the next one) */
static long fault_calls;      /* calls of that kind seen while armed */
static int fault_errno = EIO;

static bool fault_hit(enum fault_call c)
{
	if ((int)c != fault_which)
		return false;
	fault_calls++;
	if (--fault_countdown != 0)
		return false;
	errno = fault_errno;
	return true;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd)
{
	if (fault_hit(F_FSYNC))
		return -1;
	return REAL("fsync", int (*)(int))(fd);
}

int syncfs(int fd)
{
	if (fault_hit(F_SYNCFS))
		return -1;
	return REAL("syncfs", int (*)(int))(fd);
}

int renameat(int a, const char *b, int c, const char *d)
{
	if (fault_hit(F_RENAMEAT))
		return -1;
	return REAL("renameat", int (*)(int, const char *, int, const char *))(a, b, c, d);
}

int linkat(int a, const char *b, int c, const char *d, int e)
{
	if (fault_hit(F_LINKAT))
		return -1;
	return REAL("linkat", int (*)(int, const char *, int, const char *, int))(a, b, c, d, e);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (fault_hit(F_PWRITE))
		return -1;
	return REAL("pwrite", ssize_t (*)(int, const void *, size_t, off_t))(fd, buf, n, off);
}

int ftruncate(int fd, off_t len)
{
	if (fault_hit(F_FTRUNCATE))
		return -1;
	return REAL("ftruncate", int (*)(int, off_t))(fd, len);
}

static void arm(int which, long n)
{
	fault_which = which;
	fault_countdown = n;
	fault_calls = 0;
}

static void disarm(void)
{
	fault_which = -1;
}

struct env {
	char *root;
	struct store *s;
	struct store_user *u;
	uint32_t acked[512];     /* UIDs of INBOX appends that reported success */
	size_t n_acked;
	unsigned delivered;      /* deliveries that reported success */
};

/* One round of operations (fault_calls counts the armed kind's calls, so
 * the caller knows when N has gone past the end). */
static void operations(struct env *e, int round)
{
	const char *err;
	struct mailbox *b = NULL;
	if (mailbox_open(e->u, "INBOX", 0, &b, &err) != 0)
		return;
	char text[64];
	snprintf(text, sizeof(text), "Subject: round %d\r\n\r\nx\r\n", round);
	struct mail_append a = { .writer = tstore_writer(e->s, text), .flags = MAIL_SEEN };
	uint32_t uid = 0;
	if (mailbox_append(b, &a, 1, NULL, &uid, NULL, &err) == 0 && e->n_acked < 512)
		e->acked[e->n_acked++] = uid;
	struct uidset set = UIDSET_INIT;
	uidset_add(&set, uid);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_FLAGGED };
	(void)mailbox_store(b, &set, &upd, NULL, NULL, &err);
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "faults@example.com";
	struct mail_writer *w = tstore_writer(e->s, text);
	if (store_deliver(e->s, &w, NULL, &r, 1, &err) == 0 && r.result == 0)
		e->delivered++;
	(void)mailbox_sync(b, NULL, NULL, &err);
	(void)mailbox_copy(b, &set, b, false, NULL, NULL, NULL, &err);
	uidset_free(&set);
	mailbox_close(&b);
	char name[32];
	snprintf(name, sizeof(name), "Box%d", round % 3);
	(void)mailbox_create(e->u, name, 0, &err);
	(void)mailbox_delete(e->u, name, &err);
}

static void check(struct env *e, const char *what)
{
	const char *err = NULL;
	int found = store_fsck(e->s, NULL, true, NULL, &err);
	if (found < 0)
		fail_msg("%s: fsck: %s", what, err);
	if ((found = store_fsck(e->s, NULL, false, NULL, &err)) != 0)
		fail_msg("%s: %d problems after repair", what, found);
	struct mailbox *b = NULL;
	if (mailbox_open(e->u, "INBOX", 0, &b, &err) != 0)
		fail_msg("%s: INBOX does not open: %s", what, err);
	for (size_t i = 0; i < e->n_acked; i++) {
		char buf[16];
		size_t n;
		if (mailbox_msg_read(b, e->acked[i], 0, buf, sizeof(buf), &n, &err) != 0 || n < 9)
			fail_msg("%s: acknowledged UID %u is gone", what, e->acked[i]);
	}
	struct store_user *d = tstore_user(e->s, "faults@example.com");
	struct mailbox_status st;
	assert_int_equal(mailbox_status(d, "INBOX", &st, &err), 0);
	if (st.messages < e->delivered)
		fail_msg("%s: %u deliveries acknowledged, %u present", what, e->delivered, st.messages);
	store_user_close(&d);
	mailbox_close(&b);
}

static void test_every_failure(void **state)
{
	(void)state;
	struct env e;
	memset(&e, 0, sizeof(e));
	e.root = tstore_mkdtemp();
	e.s = tstore_open(e.root, 2048);
	e.u = tstore_user(e.s, "victim@example.com");
	int round = 0;
	long injected = 0;
	for (int which = 0; which < F_CALLS; which++) {
		for (long n = 1;; n++) {
			fault_errno = n % 2 ? EIO : ENOSPC;
			arm(which, n);
			operations(&e, round++);
			long calls = fault_calls;
			disarm();
			char what[64];
			snprintf(what, sizeof(what), "%s #%ld", fault_names[which], n);
			check(&e, what);
			if (calls < n) {
				print_message("%s: %ld call%s per round, each made to fail once\n",
					      fault_names[which], n - 1, n == 2 ? "" : "s");
				break; /* the operations made fewer calls: all covered */
			}
			injected++;
		}
	}
	print_message("%ld faults injected over %d rounds, %zu appends and %u deliveries acknowledged\n",
		      injected, round, e.n_acked, e.delivered);
	store_user_close(&e.u);
	store_close(&e.s);
	tstore_rmrf(&e.root);
}

static void count_problems(const char *address, const char *mailbox, enum store_fsck_problem p,
			   const char *detail, bool repaired, void *ctx)
{
	(void)address;
	(void)mailbox;
	(void)detail;
	(void)repaired;
	((int *)ctx)[p]++;
}

/* A MOVE within one user that stopped between its two steps (the copy is
 * written, the source not yet expunged: here its commit round failed)
 * leaves the message in both mailboxes, and the quota counters must say
 * so, as fsck's recount does: every usage change is made in the same lock
 * hold as its record. */
static void test_interrupted_move_keeps_usage_exact(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "mover@example.com");
	const char *err;
	assert_int_equal(mailbox_create(u, "Archive", 0, &err), 0);
	struct mailbox *src = tstore_mailbox(u, "INBOX", 0);
	struct mailbox *dst = tstore_mailbox(u, "Archive", 0);
	uint32_t uid = tstore_append(s, src, "Subject: moved\r\n\r\nbody\r\n", 0, NULL);
	struct uidset sel = UIDSET_INIT;
	uidset_add(&sel, uid);
	arm(F_SYNCFS, 1);
	assert_true(mailbox_copy(src, &sel, dst, true, NULL, NULL, NULL, &err) < 0);
	disarm();
	int problems[STORE_FSCK_KINDS] = {0};
	struct store_fsck_callbacks cb = { NULL, count_problems, problems };
	assert_true(store_fsck(s, "mover@example.com", false, &cb, &err) >= 0);
	assert_int_equal(problems[STORE_FSCK_QUOTA], 0);

	/* the MOVE done again completes, and leaves usage where it was */
	struct store_quota_usage before, after;
	assert_int_equal(store_quota_get(u, &before, &err), 0);
	assert_int_equal(mailbox_copy(src, &sel, dst, true, NULL, NULL, NULL, &err), 0);
	assert_int_equal(store_quota_get(u, &after, &err), 0);
	assert_int_equal(after.bytes, before.bytes);
	assert_int_equal(after.messages, before.messages);
	memset(problems, 0, sizeof(problems));
	assert_int_equal(store_fsck(s, "mover@example.com", false, &cb, &err), 0);
	uidset_free(&sel);
	mailbox_close(&src);
	mailbox_close(&dst);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_failure),
		cmocka_unit_test(test_interrupted_move_keeps_usage_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
