/*
 * Crash safety of the SMTP queue: writer processes (two threads each,
 * committing messages in a loop and reporting each committed id over a
 * pipe only after queue_writer_commit returned) are killed with SIGKILL
 * at random moments, again and again, while the parent holds the
 * spool's lock and keeps updating envelopes. Afterwards every reported
 * id must read back whole (envelope and data of the right size and
 * bytes), and queue_cleanup(0) must leave no temporary file, no data
 * without an envelope and no envelope that does not read.
 *
 *   test_queue_crash             short form (make test): 40 kills
 *   test_queue_crash --kills N   long form
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/test_queue_helpers.h"

#define THREADS 2
#define MAX_IDS 200000

static int kills = 40;

struct writer_arg {
	struct queue *q;
	int round, thread, out;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	for (int i = 0;; i++) {
		char id[QUEUE_ID_MAX], line[QUEUE_ID_MAX + 1];
		snprintf(id, sizeof(id), "r%dt%dm%d", a->round, a->thread, i);
		const char *err = NULL;
		if (tqueue_commit(a->q, id, &err) != 0)
			_exit(3);
		/* One write of less than PIPE_BUF: all of the line or none. */
		int n = snprintf(line, sizeof(line), "%s\n", id);
		if (write(a->out, line, (size_t)n) != n)
			_exit(4);
	}
	return NULL;
}

static void writer(const char *root, int round, int out)
{
	struct store *s = tqueue_store(root, round % 2 ? STORE_SYNC_FILES : STORE_SYNC_SYNCFS);
	struct queue *q = tqueue_open(s, "1");
	pthread_t t[THREADS];
	struct writer_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct writer_arg){q, round, i, out};
		if (pthread_create(&t[i], NULL, writer_thread, &args[i]) != 0)
			_exit(2);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

struct reported {
	char (*ids)[QUEUE_ID_MAX];
	size_t n;
};

/* Reads every complete line the dead writer left in the pipe. */
static void drain(int fd, struct reported *r)
{
	char buf[65536];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		have += (size_t)n;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
			size_t len = (size_t)(nl - start);
			assert_true(r->n < MAX_IDS && len > 0 && len < QUEUE_ID_MAX);
			memcpy(r->ids[r->n], start, len);
			r->ids[r->n++][len] = '\0';
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
	}
	assert_int_equal(have, 0); /* lines are written whole */
}

struct bumper {
	struct queue *q;
	int left;
};

/* Updates a few envelopes, as the queue manager would meanwhile. */
static bool bump(const char *id, void *ctx)
{
	struct bumper *b = ctx;
	struct queue_envelope env;
	const char *err = NULL;
	/* A commit cut short by a kill may be torn: skip it. */
	if (queue_envelope_read(b->q, id, &env, &err) != 0)
		return true;
	env.attempts++;
	if (queue_envelope_update(b->q, &env, &err) != 0)
		fail_msg("update %s: %s", id, err);
	queue_envelope_clear(&env);
	return --b->left > 0;
}

static bool check_listed(const char *id, void *ctx)
{
	struct queue *q = ctx;
	struct queue_envelope env;
	const char *err = NULL;
	if (queue_envelope_read(q, id, &env, &err) != 0)
		fail_msg("after cleanup, %s does not read: %s", id, err);
	queue_envelope_clear(&env);
	return true;
}

static void test_kill_writers(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tqueue_store(root, STORE_SYNC_SYNCFS);
	struct queue *q = tqueue_open(s, "1");
	const char *err = NULL;
	assert_int_equal(queue_lock(q, &err), 0);
	struct reported rep = {calloc(MAX_IDS, QUEUE_ID_MAX), 0};
	assert_non_null(rep.ids);
	unsigned seed = (unsigned)getpid();
	for (int round = 0; round < kills; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			writer(root, round, p[1]);
		}
		close(p[1]);
		/* Let it commit for a while (opening is slow under ASan), and
		 * work on the queue meanwhile as the queue manager would. */
		usleep(10000 + (rand_r(&seed) % 60) * 1000);
		struct bumper b = {q, 5};
		assert_int_equal(queue_list(q, bump, &b, &err), 0);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: the writer ended by itself (status %d)", round, status);
		drain(p[0], &rep);
		close(p[0]);
	}
	print_message("%d kills, %zu acknowledged commits\n", kills, rep.n);
	assert_true(rep.n > (size_t)kills);
	for (size_t i = 0; i < rep.n; i++)
		tqueue_check(q, rep.ids[i]);
	int removed = queue_cleanup(q, 0, &err);
	if (removed < 0)
		fail_msg("cleanup: %d %s", removed, err);
	print_message("cleanup removed %d leftovers\n", removed);
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	assert_int_equal(tqueue_count(q, "data"), tqueue_count(q, "env"));
	assert_int_equal(queue_list(q, check_listed, q, &err), 0);
	for (size_t i = 0; i < rep.n; i++)
		tqueue_check(q, rep.ids[i]);
	assert_int_equal(queue_cleanup(q, 0, &err), 0);
	free(rep.ids);
	queue_close(&q);
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
