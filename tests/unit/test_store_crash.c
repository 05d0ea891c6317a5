/*
 * Crash safety of the mail store: a writer process (two threads running
 * the workload of tests/unit/test_store_workload.h) is killed with SIGKILL
 * at a random moment, again and again. After each kill the store must
 * open, fsck must either find it clean or repair only what an
 * interrupted write leaves (torn log tails, unsynced records, orphan or
 * temporary files, quota drift), never a damaged index or a lost message
 * file, and the checker must find every acknowledged message, flag change
 * and expunge as acknowledged, with the UIDVALIDITY unchanged.
 *
 *   test_store_crash             short form (make test): 50 kills
 *   test_store_crash --kills N   long form (tests/stress/run.sh: 200)
 *
 * The window of the single-round append (record written, commit round not
 * finished) is also hit on purpose: the writer hangs in its syncfs and is
 * killed there, with its message file intact (what kill -9 leaves) or
 * removed or cut short (what a crash of its node may leave).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "storage/index_pending.h"
#include "storage/mailbox_internal.h"
#include "storage/store_internal.h"
#include "tests/unit/test_store_workload.h"

#define THREADS 2
#define WINDOW_USER "window@example.com"

static int kills = 50;

/* In a child: the next syncfs tells the parent through this pipe and
 * never returns (the child is killed there). */
static int hang_pipe = -1;

int syncfs(int fd)
{
	if (hang_pipe >= 0) {
		if (write(hang_pipe, "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	return ((int (*)(int))dlsym(RTLD_NEXT, "syncfs"))(fd);
}

struct thread_arg {
	struct store *s;
	int worker, jfd;
	unsigned seed;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	wl_run(a->s, a->worker, a->jfd, 3600, a->seed);
	return NULL;
}

static void writer(const char *root, int round)
{
	struct store *s = tstore_open(root, 4096);
	pthread_t t[THREADS];
	struct thread_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/journal.%d", root, round * THREADS + i);
		args[i] = (struct thread_arg){ s, round * THREADS + i,
					       open(path, O_WRONLY | O_CREAT | O_APPEND, 0600),
					       (unsigned)(round * 7919 + i * 104729 + getpid()) };
		if (args[i].jfd < 0 || pthread_create(&t[i], NULL, thread_main, &args[i]) != 0)
			_exit(2);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

struct fsck_tally {
	int bad;
	char first_bad[300];
};

static void on_problem(const char *address, const char *mailbox, enum store_fsck_problem p,
		       const char *detail, bool repaired, void *ctx)
{
	struct fsck_tally *t = ctx;
	(void)address;
	(void)repaired;
	/* What a killed writer may leave behind, and nothing else. */
	if (p == STORE_FSCK_TORN_LOG || p == STORE_FSCK_UNSYNCED || p == STORE_FSCK_ORPHAN_FILE ||
	    p == STORE_FSCK_LEFTOVER || p == STORE_FSCK_QUOTA)
		return;
	if (t->bad++ == 0)
		snprintf(t->first_bad, sizeof(t->first_bad), "%s: problem %d: %s", mailbox ? mailbox : "-",
			 (int)p, detail);
}

static void print_problem(const char *address, const char *mailbox, enum store_fsck_problem p,
			  const char *detail, bool repaired, void *ctx)
{
	(void)ctx;
	print_message("fsck: %s %s: problem %d: %s%s\n", address ? address : "-", mailbox ? mailbox : "-",
		      (int)p, detail, repaired ? " (repaired)" : "");
}

static void test_kill_writers(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 4096);
	wl_prepare(s);
	uint64_t highest[WL_BOXES] = { 0 };
	uint32_t uidvalidity[WL_BOXES] = { 0 };
	unsigned seed = (unsigned)getpid();
	int repaired_rounds = 0;
	for (int round = 0; round < kills; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			writer(root, round);
		/* Let it get going (opening takes a while under ASan), then kill. */
		usleep(20000 + (rand_r(&seed) % 150) * 1000);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: the writer ended by itself (status %d)", round, status);
		/* The store opens as it is, before any repair. */
		struct store_user *u = tstore_user(s, WL_USER);
		for (int b = 0; b < WL_BOXES; b++) {
			struct mailbox *box = tstore_mailbox(u, wl_box_names[b], MAILBOX_OPEN_READONLY);
			mailbox_close(&box);
		}
		store_user_close(&u);
		struct fsck_tally tally = { 0, "" };
		struct store_fsck_callbacks cb = { NULL, on_problem, &tally };
		const char *err = NULL;
		int found = store_fsck(s, NULL, true, &cb, &err);
		if (found < 0 || tally.bad > 0)
			fail_msg("round %d: fsck %d (%s) %s", round, found, err ? err : "", tally.first_bad);
		repaired_rounds += found > 0;
		struct store_fsck_callbacks show = { NULL, print_problem, NULL };
		if ((found = store_fsck(s, NULL, false, &show, &err)) != 0)
			fail_msg("round %d: %d problems left after repair", round, found);
		struct wl_state st;
		memset(&st, 0, sizeof(st));
		for (int w = 0; w < (round + 1) * THREADS; w++) {
			char path[512];
			snprintf(path, sizeof(path), "%s/journal.%d", root, w);
			wl_replay(&st, path);
		}
		wl_check(s, &st, highest, uidvalidity);
		wl_state_free(&st);
	}
	print_message("%d kills, fsck repaired something after %d of them\n", kills, repaired_rounds);
	store_close(&s);
	tstore_rmrf(&root);
}

enum window_file { FILE_INTACT, FILE_REMOVED, FILE_SHORT };

/* Forks a writer that appends text to INBOX and hangs in its commit
 * round; returns once its record is written, with the child killed. */
static void append_and_die_in_round(const char *root, const char *text)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		struct store *s = tstore_open(root, 0);
		struct store_user *u = tstore_user(s, WINDOW_USER);
		struct mailbox *b = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_APPEND_ONLY);
		hang_pipe = pfd[1];
		tstore_append(s, b, text, 0, NULL);
		_exit(4); /* the append must not have returned */
	}
	close(pfd[1]);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
}

static void flag_seen(struct mailbox *b, uint32_t uid)
{
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, uid);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_SEEN };
	const char *err = NULL;
	uint64_t modseq = 0;
	if (mailbox_store(b, &one, &upd, NULL, &modseq, &err) != 0)
		fail_msg("mailbox_store: %s", err);
	uidset_free(&one);
}

static void message_text(struct mailbox *b, uint32_t uid, char *out, size_t size)
{
	const char *err = NULL;
	memset(out, 0, size);
	const struct mail_record *r = mailbox_lookup(b, uid);
	assert_non_null(r);
	assert_true(r->size < size);
	size_t got = 0;
	assert_int_equal(mailbox_msg_read(b, uid, 0, out, (size_t)r->size, &got, &err), 0);
	assert_int_equal(got, r->size);
}

static void window_case(enum window_file what)
{
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, WINDOW_USER);
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	assert_int_equal(tstore_append(s, b, "first\r\n", 0, NULL), 1);
	/* A session that only reads (its view never takes the lock). */
	struct mailbox *reader = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);

	append_and_die_in_round(root, "second, never acknowledged\r\n");
	/* UID 2's file is in msg/ and its PENDING record in the log. */
	char path[1024];
	snprintf(path, sizeof(path), "%s/mail/%s/box/INBOX/.box/msg/0/2", root, u->path);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	if (what == FILE_REMOVED)
		assert_int_equal(unlink(path), 0);
	else if (what == FILE_SHORT)
		assert_int_equal(truncate(path, 3), 0);

	/* Another writer commits after it, raising the synced mark past the
	 * unresolved record: a reader must still stop before it. */
	const char *err = NULL;
	flag_seen(b, 1);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	struct mailbox_status rs;
	mailbox_get_status(reader, &rs);
	assert_int_equal(rs.messages, 1);
	assert_null(mailbox_lookup(reader, 2));

	/* Opening settles it: the whole file is made durable and kept; a lost
	 * one is dropped and its UID never used again. */
	struct mailbox *again = tstore_mailbox(u, "INBOX", 0);
	char text[64];
	if (what == FILE_INTACT) {
		message_text(again, 2, text, sizeof(text));
		assert_string_equal(text, "second, never acknowledged\r\n");
	} else {
		assert_null(mailbox_lookup(again, 2));
		assert_int_equal(tstore_append(s, again, "third\r\n", 0, NULL), 3);
	}
	/* The dropped message's charge was given back with its expunge. */
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 2);
	assert_int_equal(q.bytes, strlen("first\r\n") + strlen(what == FILE_INTACT
				   ? "second, never acknowledged\r\n" : "third\r\n"));
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	mailbox_get_status(reader, &rs);
	assert_int_equal(rs.messages, 2);
	assert_int_equal(what == FILE_INTACT, mailbox_lookup(reader, 2) != NULL);
	message_text(reader, 1, text, sizeof(text));
	assert_string_equal(text, "first\r\n");
	mailbox_close(&again);
	mailbox_close(&reader);
	mailbox_close(&b);
	store_user_close(&u);

	struct store_fsck_callbacks show = { NULL, print_problem, NULL };
	struct fsck_tally tally = { 0, "" };
	struct store_fsck_callbacks cb = { NULL, on_problem, &tally };
	assert_true(store_fsck(s, NULL, true, &cb, &err) >= 0);
	if (tally.bad > 0)
		fail_msg("fsck: %s", tally.first_bad);
	assert_int_equal(store_fsck(s, NULL, false, &show, &err), 0);
	store_close(&s);
	tstore_rmrf(&root);
}

static void test_kill_in_round_file_intact(void **state)
{
	(void)state;
	window_case(FILE_INTACT);
}

static void test_kill_in_round_file_lost(void **state)
{
	(void)state;
	window_case(FILE_REMOVED);
}

static void test_kill_in_round_file_short(void **state)
{
	(void)state;
	window_case(FILE_SHORT);
}

/* Without an open, a long-lived session helps a record stuck that long. */
static void test_stuck_record_helped_by_session(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, WINDOW_USER);
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, b, "first\r\n", 0, NULL);
	struct mailbox *reader = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	append_and_die_in_round(root, "second\r\n");
	flag_seen(b, 1);
	const char *err = NULL;
	struct mailbox_status st;
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	mailbox_get_status(reader, &st);
	assert_int_equal(st.messages, 1);
	sleep(INDEX_PENDING_STUCK_SECS + 1);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_sync(reader, NULL, NULL, &err), 0);
	mailbox_get_status(reader, &st);
	assert_int_equal(st.messages, 2);
	assert_non_null(mailbox_lookup(reader, 2));
	mailbox_close(&reader);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A mailbox only appended to (no full open settles it) whose log wants a
 * rotation while a lost PENDING append blocks it: the appender's rotation
 * settles first (drops, gives the usage back) instead of failing, and
 * loading the whole index again, on every append. */
static void test_rotation_by_appender_settles_lost_append(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 1024);
	struct store_user *u = tstore_user(s, WINDOW_USER);
	struct mailbox *b = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_APPEND_ONLY);
	assert_int_equal(tstore_append(s, b, "first\r\n", 0, NULL), 1);
	append_and_die_in_round(root, "second\r\n");
	char path[1024];
	snprintf(path, sizeof(path), "%s/mail/%s/box/INBOX/.box/msg/0/2", root, u->path);
	assert_int_equal(unlink(path), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(tstore_append(s, b, "more\r\n", 0, NULL), 3 + i);
	mailbox_close(&b);
	const char *err = NULL;
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 21);
	assert_int_equal(q.bytes, strlen("first\r\n") + 20 * strlen("more\r\n"));
	b = tstore_mailbox(u, "INBOX", 0);
	assert_true(b->view->log_seq > 1); /* rotated */
	assert_null(mailbox_lookup(b, 2));
	mailbox_close(&b);
	store_user_close(&u);
	struct store_fsck_callbacks show = { NULL, print_problem, NULL };
	assert_int_equal(store_fsck(s, NULL, false, &show, &err), 0);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--kills") == 0)
			kills = atoi(argv[i + 1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_in_round_file_intact),
		cmocka_unit_test(test_kill_in_round_file_lost),
		cmocka_unit_test(test_kill_in_round_file_short),
		cmocka_unit_test(test_stuck_record_helped_by_session),
		cmocka_unit_test(test_rotation_by_appender_settles_lost_append),
		cmocka_unit_test(test_kill_writers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
