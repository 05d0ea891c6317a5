/*
 * Concurrency of the mail store: several processes (stand-ins for nodes),
 * each with several threads, append, deliver, flag, expunge, copy and move
 * in the same mailboxes at the same time (tests/unit/test_store_workload.h
 * has the workload and the checker). Afterwards: UIDs strictly increasing
 * and never reused, every acknowledged append present exactly once, flags
 * equal to the last acknowledged change per message, MODSEQs increasing,
 * deliveries present exactly once, and fsck finds nothing to repair.
 *
 *   test_store_concurrency              short form (make test), ~8 s
 *   test_store_concurrency --seconds N  long form (tests/stress/run.sh: 30)
 * Small snapshot thresholds make log rotations happen under the load too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/wait.h>

#include "tests/unit/test_store_workload.h"

#define PROCS 3
#define THREADS 2

static double seconds = 8;

struct thread_arg {
	struct store *s;
	int worker;
	int jfd;
	unsigned seed;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	wl_run(a->s, a->worker, a->jfd, seconds, a->seed);
	return NULL;
}

static void child(const char *root, int proc)
{
	struct store *s = tstore_open(root, 8192);
	pthread_t t[THREADS];
	struct thread_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/journal.%d", root, proc * THREADS + i);
		args[i] = (struct thread_arg){ s, proc * THREADS + i,
					       open(path, O_WRONLY | O_CREAT | O_APPEND, 0600),
					       (unsigned)(proc * 7919 + i * 104729 + getpid()) };
		if (args[i].jfd < 0 || pthread_create(&t[i], NULL, thread_main, &args[i]) != 0)
			_exit(2);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		close(args[i].jfd);
	}
	store_close(&s);
	_exit(0);
}

static void print_problem(const char *address, const char *mailbox, enum store_fsck_problem p,
			  const char *detail, bool repaired, void *ctx)
{
	(void)ctx;
	print_message("fsck: %s %s: problem %d: %s%s\n", address ? address : "-", mailbox ? mailbox : "-",
		      (int)p, detail, repaired ? " (repaired)" : "");
}

static void test_concurrent_writers(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 8192);
	wl_prepare(s);
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0)
			child(root, p);
	}
	for (int p = 0; p < PROCS; p++) {
		int status;
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("worker process %d failed (status %d)", p, status);
	}
	const char *err = NULL;
	struct store_fsck_callbacks cb = { NULL, print_problem, NULL };
	int problems = store_fsck(s, NULL, false, &cb, &err);
	if (problems != 0)
		fail_msg("fsck found %d problems (%s)", problems, err ? err : "");
	struct wl_state st;
	memset(&st, 0, sizeof(st));
	unsigned appends = 0;
	for (int w = 0; w < PROCS * THREADS; w++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/journal.%d", root, w);
		wl_replay(&st, path);
	}
	for (size_t i = 0; i < st.n; i++)
		appends += st.m[i].present == 1;
	assert_int_equal(st.inflight_new, 0);
	uint64_t highest[WL_BOXES] = { 0 };
	uint32_t uidvalidity[WL_BOXES] = { 0 };
	wl_check(s, &st, highest, uidvalidity);
	print_message("%zu messages created, %u present, %zu deliveries, %d processes x %d threads, %.0f s\n",
		      st.n, appends, st.n_dlv, PROCS, THREADS, seconds);
	wl_state_free(&st);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_writers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
