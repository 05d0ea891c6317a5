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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/test_store_workload.h"

#define THREADS 2

static int kills = 50;

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

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--kills") == 0)
			kills = atoi(argv[i + 1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_writers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
