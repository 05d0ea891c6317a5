/*
 * Unit tests for durability and visibility: group commit
 * (storage/store_sync.c) with many threads in both sync modes, the
 * covering rule with rounds overlapping (every caller returns only after a
 * round that started after its call has ended, cache flush included), the synced
 * mark (a reader never sees a record before its commit), the reader-lock
 * option, and snapshot rotation driven by light views only (appends and
 * deliveries into a mailbox nobody opens in full).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "storage/mailbox_internal.h"
#include "storage/store_sync.h"
#include "tests/unit/test_store_helpers.h"

#define THREADS 8
#define PER_THREAD 25

struct worker {
	struct store *s;
	int id;
	int failures;
};

static void *append_worker(void *p)
{
	struct worker *w = p;
	char addr[32];
	const char *err;
	snprintf(addr, sizeof(addr), "t%d@example.com", w->id % 4);
	struct store_user *u = NULL;
	struct mailbox *b = NULL;
	if (store_user_open(w->s, addr, &u, &err) != 0 ||
	    mailbox_open(u, "INBOX", MAILBOX_OPEN_APPEND_ONLY, &b, &err) != 0) {
		w->failures++;
		store_user_close(&u);
		return NULL;
	}
	for (int i = 0; i < PER_THREAD; i++) {
		struct mail_writer *mw = NULL;
		if (mail_writer_create(w->s, &mw, &err) != 0 || mail_writer_write(mw, "x\r\n", 3, &err) != 0) {
			mail_writer_abort(&mw);
			w->failures++;
			continue;
		}
		struct mail_append a = { .writer = mw };
		uint32_t uid;
		w->failures += mailbox_append(b, &a, 1, NULL, &uid, NULL, &err) != 0;
	}
	mailbox_close(&b);
	store_user_close(&u);
	return NULL;
}

static void run_threads(enum store_sync_mode mode)
{
	char *root = tstore_mkdtemp();
	struct store_options o = { .node_id = "n", .sync_mode = mode, .rotate_bytes = 1024 };
	struct store *s;
	const char *err;
	assert_int_equal(store_open(root, &o, &s, &err), 0);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ s, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, append_worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	/* Two commits per append at most; usually far fewer (batched). */
	uint64_t rounds = store_sync_rounds(s->sync);
	assert_true(rounds <= 2 * THREADS * PER_THREAD + 8);
	for (int i = 0; i < 4; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "t%d@example.com", i);
		struct store_user *u = tstore_user(s, addr);
		struct mailbox_status st;
		assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
		assert_int_equal(st.messages, 2 * PER_THREAD);
		assert_int_equal(st.uidnext, 2 * PER_THREAD + 1);
		store_user_close(&u);
	}
	/* Only light views wrote: the logs were rotated all the same. */
	assert_int_equal(store_fsck(s, NULL, false, NULL, &err), 0);
	struct store_user *u = tstore_user(s, "t0@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	struct stat st;
	assert_int_equal(fstatat(b->dir_fd, "index", &st, 0), 0);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

static void test_group_commit_syncfs(void **state)
{
	(void)state;
	run_threads(STORE_SYNC_SYNCFS);
}

static void test_group_commit_files(void **state)
{
	(void)state;
	run_threads(STORE_SYNC_FILES);
}

/* syncfs and fdatasync are interposed: while rounds_log is set, a round
 * is logged from the start of its syncfs to the end of the fdatasync (the
 * cache flush) that follows it in the same thread, on one event clock. A
 * syncfs not followed by that flush logs no round, so its callers count
 * as uncovered. */
static atomic_long clock_events;
static bool rounds_log;
static pthread_mutex_t rounds_mu = PTHREAD_MUTEX_INITIALIZER;
static long round_start[4096], round_end[4096];
static size_t n_rounds;
static _Thread_local long syncfs_started;

int syncfs(int fd)
{
	long start = ++clock_events;
	int ret = ((int (*)(int))dlsym(RTLD_NEXT, "syncfs"))(fd);
	if (rounds_log) {
		usleep(200 + (unsigned)(start % 7) * 150); /* rounds of uneven length */
		syncfs_started = start;
	}
	return ret;
}

int fdatasync(int fd)
{
	int ret = ((int (*)(int))dlsym(RTLD_NEXT, "fdatasync"))(fd);
	if (rounds_log && syncfs_started != 0) {
		long end = ++clock_events;
		pthread_mutex_lock(&rounds_mu);
		if (n_rounds < 4096) {
			round_start[n_rounds] = syncfs_started;
			round_end[n_rounds++] = end;
		}
		pthread_mutex_unlock(&rounds_mu);
		syncfs_started = 0;
	}
	return ret;
}

struct cover_arg {
	struct store_sync *sync;
	int fd;
	int uncovered;
};

static void *cover_thread(void *p)
{
	struct cover_arg *a = p;
	for (int i = 0; i < 40; i++) {
		const char *err;
		long called = ++clock_events;
		if (store_sync_wait(a->sync, &a->fd, 1, &err) != 0)
			a->uncovered++;
		long returned = ++clock_events;
		bool covered = false;
		pthread_mutex_lock(&rounds_mu);
		for (size_t r = 0; r < n_rounds && !covered; r++)
			covered = round_start[r] > called && round_end[r] < returned;
		pthread_mutex_unlock(&rounds_mu);
		a->uncovered += !covered;
	}
	return NULL;
}

static void test_rounds_cover_callers(void **state)
{
	(void)state;
	int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	struct store_sync *sync = store_sync_create(fd, STORE_SYNC_SYNCFS);
	n_rounds = 0;
	rounds_log = true;
	pthread_t t[THREADS];
	struct cover_arg a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct cover_arg){ sync, fd, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, cover_thread, &a[i]), 0);
	}
	int uncovered = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		uncovered += a[i].uncovered;
	}
	rounds_log = false;
	if (uncovered != 0)
		fail_msg("%d of %d calls returned without a round that started after them", uncovered,
			 THREADS * 40);
	/* Rounds overlapped (two in flight), and batched several callers. */
	bool overlapped = false;
	for (size_t r = 1; r < n_rounds && !overlapped; r++)
		for (size_t q = 0; q < r && !overlapped; q++)
			overlapped = round_start[r] < round_end[q] && round_start[q] < round_end[r];
	assert_true(overlapped);
	assert_true(store_sync_rounds(sync) < (uint64_t)THREADS * 40);
	store_sync_destroy(&sync);
	close(fd);
}

/* A record written but not yet committed is seen by writers, not readers. */
static void test_synced_mark(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "mark@example.com");
	struct mailbox *writer = tstore_mailbox(u, "INBOX", 0);
	struct mailbox *reader = tstore_mailbox(u, "INBOX", 0);
	const char *err;
	tstore_append(s, writer, "one", 0, NULL);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	/* Flag change written under the lock, commit not yet done. */
	struct index_view *v = writer->view;
	assert_int_equal(index_view_lock(v, &err), 0);
	textbuf_truncate(&writer->buf, 0);
	size_t start = index_rec_begin(&writer->buf);
	index_put_u32(&writer->buf, MAIL_FLAGS_ADD);
	index_put_u32(&writer->buf, MAIL_SEEN);
	index_put_u64(&writer->buf, 0);
	index_put_range(&writer->buf, 1, 1);
	assert_int_equal(index_view_write(v, &writer->buf, start, INDEX_REC_FLAGS, 0, 1,
					  v->state.highestmodseq + 1, NULL, &err), 0);
	index_view_unlock(v);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	assert_false(mailbox_lookup(reader, 1)->flags & MAIL_SEEN);
	struct mailbox_status st;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	assert_int_equal(st.unseen, 1);
	/* A writer sees it (it must, to order its own change after it). */
	struct mailbox *other = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	assert_true(mailbox_lookup(other, 1)->flags & MAIL_SEEN); /* opening settles */
	mailbox_close(&other);
	assert_int_equal(index_view_durable(v, NULL, 0, &err), 0);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	assert_true(mailbox_lookup(reader, 1)->flags & MAIL_SEEN);
	mailbox_close(&reader);
	mailbox_close(&writer);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

static void test_reader_locks(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store_options o = { .node_id = "n", .reader_locks = true };
	struct store *s;
	const char *err;
	assert_int_equal(store_open(root, &o, &s, &err), 0);
	struct store_user *u = tstore_user(s, "nfs@example.com");
	struct mailbox *a = tstore_mailbox(u, "INBOX", 0), *b = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, a, "x", 0, NULL);
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	assert_non_null(mailbox_lookup(b, 1));
	mailbox_close(&a);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_commit_syncfs),
		cmocka_unit_test(test_group_commit_files),
		cmocka_unit_test(test_rounds_cover_callers),
		cmocka_unit_test(test_synced_mark),
		cmocka_unit_test(test_reader_locks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
