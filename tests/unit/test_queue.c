/*
 * Unit tests for the SMTP queue's spools (storage/queue_spool.c,
 * queue_writer.c, queue_message.c, queue_cleanup.c): commit, list, read,
 * update, remove, move (and racing pickups from the maildrop) and
 * cleanup; torn commits detected and cleaned;
 * the run lock between two processes; 8 threads committing while the
 * lock holder updates. The kill test is test_queue_crash.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/wait.h>

#include "tests/unit/test_queue_helpers.h"

struct fixture {
	char *root;
	struct store *s;
};

static int setup_mode(void **state, enum store_sync_mode mode)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->root = tstore_mkdtemp();
	f->s = tqueue_store(f->root, mode);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_mode(state, STORE_SYNC_SYNCFS);
}

static int setup_files(void **state)
{
	return setup_mode(state, STORE_SYNC_FILES);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(&f->s);
	tstore_rmrf(&f->root);
	free(f);
	return 0;
}

struct id_set {
	char ids[512][QUEUE_ID_MAX];
	size_t n;
};

static bool collect(const char *id, void *ctx)
{
	struct id_set *set = ctx;
	assert_true(set->n < 512);
	snprintf(set->ids[set->n++], QUEUE_ID_MAX, "%s", id);
	return true;
}

static bool has_id(const struct id_set *set, const char *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->ids[i], id) == 0)
			return true;
	return false;
}

static void list_ids(struct queue *q, struct id_set *set)
{
	const char *err = NULL;
	set->n = 0;
	int ret = queue_list(q, collect, set, &err);
	if (ret != 0)
		fail_msg("queue_list: %d %s", ret, err);
}

static void test_commit_list_read(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "node-1");
	assert_string_equal(queue_name(q), "node-1");
	char want[1024];
	snprintf(want, sizeof(want), "%s/spool/node-1", f->root);
	assert_string_equal(queue_path(q), want);
	const char *err = NULL;
	const char *ids[] = {"A1", "b2", "C3xyz"};
	for (int i = 0; i < 3; i++)
		assert_int_equal(tqueue_commit(q, ids[i], &err), 0);
	struct id_set set;
	list_ids(q, &set);
	assert_int_equal(set.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_true(has_id(&set, ids[i]));
		tqueue_check(q, ids[i]);
	}
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	assert_int_equal(tqueue_count(q, "data"), 3);
	assert_int_equal(tqueue_count(q, "env"), 3);
	/* Stray names in env/ are not messages. */
	char path[1200];
	snprintf(path, sizeof(path), "%s/env/.stray", queue_path(q));
	tstore_write_file(path, "x", 1);
	list_ids(q, &set);
	assert_int_equal(set.n, 3);
	unlink(path);
	/* The writer's size; a second handle (reopen) sees the same. */
	struct queue_writer *w = NULL;
	assert_int_equal(queue_writer_create(q, &w, &err), 0);
	assert_int_equal(queue_writer_write(w, "hello", 5, &err), 0);
	assert_int_equal(queue_writer_size(w), 5);
	queue_writer_abort(&w);
	assert_null(w);
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	queue_close(&q);
	assert_null(q);
	q = tqueue_open(f->s, "node-1");
	tqueue_check(q, "b2");
	struct queue_envelope env;
	assert_int_equal(queue_envelope_read(q, "nope", &env, &err), STORE_E_NOTFOUND);
	assert_int_equal(queue_envelope_read(q, "../x", &env, &err), STORE_E_INVALID);
	int fd;
	uint64_t size;
	assert_int_equal(queue_message_open(q, "nope", &fd, &size, &err), STORE_E_NOTFOUND);
	queue_close(&q);
	/* Bad spool names never touch the disk. */
	static const char *const bad[] = {"", ".", "..", "../x", "a/b", ".hidden", "a b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(queue_open(f->s, bad[i], &q, &err), STORE_E_INVALID);
}

static void test_commit_refusals(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(tqueue_commit(q, "dup", &err), 0);
	/* The same id again: refused, the first message untouched. */
	assert_int_equal(tqueue_commit(q, "dup", &err), STORE_E_EXISTS);
	tqueue_check(q, "dup");
	/* A bad id: refused, the writer consumed, nothing left. */
	struct queue_writer *w = NULL;
	assert_int_equal(queue_writer_create(q, &w, &err), 0);
	assert_int_equal(queue_writer_write(w, "x", 1, &err), 0);
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	strcpy(env.id, "bad/id");
	assert_int_equal(queue_writer_commit(&w, &env, &err), STORE_E_INVALID);
	assert_null(w);
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	assert_int_equal(tqueue_count(q, "data"), 1);
	assert_int_equal(tqueue_count(q, "env"), 1);
	queue_close(&q);
}

static void test_update_remove(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(tqueue_commit(q, "m1", &err), 0);
	assert_int_equal(tqueue_commit(q, "m2", &err), 0);
	struct queue_envelope env;
	assert_int_equal(queue_envelope_read(q, "m1", &env, &err), 0);
	/* Changes need the lock. */
	assert_false(queue_locked(q));
	assert_int_equal(queue_envelope_update(q, &env, &err), STORE_E_INVALID);
	assert_non_null(strstr(err, "lock"));
	assert_int_equal(queue_remove(q, "m1", &err), STORE_E_INVALID);
	assert_int_equal(queue_cleanup(q, 0, &err), STORE_E_INVALID);
	assert_int_equal(queue_lock(q, &err), 0);
	assert_true(queue_locked(q));
	assert_int_equal(queue_lock(q, &err), 0); /* again: still ours */
	assert_int_equal(queue_lock_holder(q), getpid());
	/* A delivery verdict with a hostile diagnostic. */
	env.attempts = 2;
	env.next_attempt = 1700003600;
	env.rcpts[0].state = QUEUE_RCPT_FAILED;
	env.rcpts[0].attempts = 2;
	strcpy(env.rcpts[0].status, "5.1.1");
	strcpy(env.rcpts[0].remote_mta, "mx.example.net");
	strcpy(env.rcpts[0].reason, "host said:\r\n550 no\tsuch user %41");
	assert_int_equal(queue_envelope_update(q, &env, &err), 0);
	struct queue_envelope got;
	assert_int_equal(queue_envelope_read(q, "m1", &got, &err), 0);
	assert_int_equal(got.attempts, 2);
	assert_true(got.next_attempt == 1700003600);
	assert_int_equal(got.rcpts[0].state, QUEUE_RCPT_FAILED);
	assert_string_equal(got.rcpts[0].reason, "host said:\r\n550 no\tsuch user %41");
	assert_int_equal(got.size, env.size);
	queue_envelope_clear(&got);
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	/* Update of a message that is not there: NOTFOUND, nothing made. */
	strcpy(env.id, "gone");
	assert_int_equal(queue_envelope_update(q, &env, &err), STORE_E_NOTFOUND);
	assert_int_equal(tqueue_count(q, "env"), 2);
	queue_envelope_clear(&env);
	/* Remove. */
	assert_int_equal(queue_remove(q, "m1", &err), 0);
	assert_int_equal(queue_envelope_read(q, "m1", &env, &err), STORE_E_NOTFOUND);
	assert_int_equal(queue_remove(q, "m1", &err), STORE_E_NOTFOUND);
	struct id_set set;
	list_ids(q, &set);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.ids[0], "m2");
	assert_int_equal(tqueue_count(q, "data"), 1);
	tqueue_check(q, "m2");
	queue_close(&q);
}

static void test_move(void **state)
{
	struct fixture *f = *state;
	struct queue *drop = tqueue_open(f->s, "maildrop");
	struct queue *a = tqueue_open(f->s, "a");
	struct queue *b = tqueue_open(f->s, "b");
	const char *err = NULL;
	assert_int_equal(tqueue_commit(drop, "p1", &err), 0);
	assert_int_equal(tqueue_commit(drop, "p2", &err), 0);
	/* Pickup from the maildrop needs no lock on it. */
	assert_int_equal(queue_move(drop, a, "p1", &err), 0);
	tqueue_check(a, "p1");
	struct queue_envelope env;
	assert_int_equal(queue_envelope_read(drop, "p1", &env, &err), STORE_E_NOTFOUND);
	assert_int_equal(tqueue_count(drop, "data"), 1);
	assert_int_equal(queue_move(drop, a, "p1", &err), STORE_E_NOTFOUND);
	/* Out of a node's spool only with its lock. */
	assert_int_equal(queue_move(a, b, "p1", &err), STORE_E_INVALID);
	assert_int_equal(queue_lock(a, &err), 0);
	assert_int_equal(queue_move(a, b, "p1", &err), 0);
	tqueue_check(b, "p1");
	assert_int_equal(tqueue_count(a, "env"), 0);
	assert_int_equal(tqueue_count(a, "data"), 0);
	assert_int_equal(queue_move(a, a, "p1", &err), STORE_E_INVALID);
	/* The target already has that message: refused, both intact. */
	assert_int_equal(tqueue_commit(a, "p2", &err), 0);
	assert_int_equal(queue_move(drop, a, "p2", &err), STORE_E_EXISTS);
	tqueue_check(drop, "p2");
	tqueue_check(a, "p2");
	assert_int_equal(queue_lock(b, &err), 0);
	assert_int_equal(queue_remove(a, "p2", &err), 0);
	/* A move interrupted after its link (the data is in both spools,
	 * the envelope still in the source) is finished by a new move. */
	char from[1200], to[1200];
	snprintf(from, sizeof(from), "%s/data/p2", queue_path(drop));
	snprintf(to, sizeof(to), "%s/data/p2", queue_path(a));
	assert_int_equal(link(from, to), 0);
	assert_int_equal(queue_move(drop, a, "p2", &err), 0);
	tqueue_check(a, "p2");
	assert_int_equal(tqueue_count(drop, "data"), 0);
	assert_int_equal(tqueue_count(drop, "env"), 0);
	/* ... but foreign data under that name in the target is not taken. */
	assert_int_equal(tqueue_commit(drop, "p3", &err), 0);
	snprintf(to, sizeof(to), "%s/data/p3", queue_path(a));
	tstore_write_file(to, "other", 5);
	assert_int_equal(queue_move(drop, a, "p3", &err), STORE_E_EXISTS);
	tqueue_check(drop, "p3");
	queue_close(&drop);
	queue_close(&a);
	queue_close(&b);
}

struct mover {
	struct queue *from, *to;
	int moved, failures;
};

#define RACE_MESSAGES 60

static void *move_thread(void *p)
{
	struct mover *m = p;
	for (int i = 0; i < RACE_MESSAGES; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "race%d", i);
		const char *err = NULL;
		int ret = queue_move(m->from, m->to, id, &err);
		if (ret == 0)
			m->moved++;
		else if (ret != STORE_E_NOTFOUND && ret != STORE_E_EXISTS)
			m->failures++;
	}
	return NULL;
}

/* Nodes picking up from the maildrop at once (two into one spool, one
 * into another): every message ends up whole in exactly one spool. */
static void test_maildrop_race(void **state)
{
	struct fixture *f = *state;
	struct queue *drop = tqueue_open(f->s, "maildrop");
	struct queue *a = tqueue_open(f->s, "a");
	struct queue *b = tqueue_open(f->s, "b");
	const char *err = NULL;
	for (int i = 0; i < RACE_MESSAGES; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "race%d", i);
		assert_int_equal(tqueue_commit(drop, id, &err), 0);
	}
	struct mover m[3] = {{drop, a, 0, 0}, {drop, b, 0, 0}, {drop, a, 0, 0}};
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, move_thread, &m[i]), 0);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(m[i].failures, 0);
	}
	assert_int_equal(m[0].moved + m[1].moved + m[2].moved, RACE_MESSAGES);
	assert_int_equal(tqueue_count(drop, "env"), 0);
	assert_int_equal(tqueue_count(drop, "data"), 0);
	assert_int_equal(tqueue_count(a, "env") + tqueue_count(b, "env"), RACE_MESSAGES);
	/* Losers leave their data links to cleanup. */
	assert_int_equal(queue_lock(a, &err), 0);
	assert_int_equal(queue_lock(b, &err), 0);
	assert_true(queue_cleanup(a, 0, &err) >= 0);
	assert_true(queue_cleanup(b, 0, &err) >= 0);
	assert_int_equal(tqueue_count(a, "data"), tqueue_count(a, "env"));
	assert_int_equal(tqueue_count(b, "data"), tqueue_count(b, "env"));
	for (int i = 0; i < RACE_MESSAGES; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "race%d", i);
		struct queue_envelope env;
		bool in_a = queue_envelope_read(a, id, &env, &err) == 0;
		if (in_a)
			queue_envelope_clear(&env);
		tqueue_check(in_a ? a : b, id);
	}
	print_message("moved %d/%d/%d\n", m[0].moved, m[1].moved, m[2].moved);
	queue_close(&drop);
	queue_close(&a);
	queue_close(&b);
}

static void test_torn_commits_and_cleanup(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(queue_lock(q, &err), 0);
	static const char *const ids[] = {"short", "nodata", "garbage", "good"};
	for (int i = 0; i < 4; i++)
		assert_int_equal(tqueue_commit(q, ids[i], &err), 0);
	char path[1200];
	/* What a crash before the commit's group commit may leave. */
	snprintf(path, sizeof(path), "%s/data/short", queue_path(q));
	assert_int_equal(truncate(path, 1), 0);
	snprintf(path, sizeof(path), "%s/data/nodata", queue_path(q));
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/env/garbage", queue_path(q));
	tstore_write_file(path, "clustermail-queue 1\nid garb", 27);
	/* ... and interrupted writers: temporaries, data without envelope. */
	snprintf(path, sizeof(path), "%s/tmp/d-0123456789abcdef", queue_path(q));
	tstore_write_file(path, "partial", 7);
	snprintf(path, sizeof(path), "%s/data/orphan", queue_path(q));
	tstore_write_file(path, "orphan", 6);
	struct queue_envelope env;
	int fd;
	uint64_t size;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(queue_envelope_read(q, ids[i], &env, &err), STORE_E_CORRUPT);
		assert_int_equal(queue_message_open(q, ids[i], &fd, &size, &err), STORE_E_CORRUPT);
	}
	/* Too young to be leftovers: kept. */
	assert_int_equal(queue_cleanup(q, 3600, &err), 0);
	assert_int_equal(tqueue_count(q, "tmp"), 1);
	/* 3 torn envelopes, 2 data files of theirs, 1 tmp, 1 orphan. */
	assert_int_equal(queue_cleanup(q, 0, &err), 3 + 1 + 1);
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	assert_int_equal(tqueue_count(q, "env"), 1);
	assert_int_equal(tqueue_count(q, "data"), 1);
	tqueue_check(q, "good");
	assert_int_equal(queue_cleanup(q, 0, &err), 0);
	queue_close(&q);
}

/* The maildrop has no lock holder, so any node cleans it without one: a
 * dead sendmail's temporary file and data a pickup left (its envelope
 * already moved) go; a message waiting to be picked up stays. */
static void test_maildrop_cleanup_without_lock(void **state)
{
	struct fixture *f = *state;
	struct queue *drop = tqueue_open(f->s, "maildrop");
	struct queue *spool = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(queue_lock(spool, &err), 0);
	assert_int_equal(tqueue_commit(drop, "waiting", &err), 0);
	assert_int_equal(tqueue_commit(drop, "moved", &err), 0);
	char path[1200], to[1200];
	snprintf(path, sizeof(path), "%s/env/moved", queue_path(drop));
	snprintf(to, sizeof(to), "%s/env/moved", queue_path(spool));
	assert_int_equal(rename(path, to), 0);
	snprintf(path, sizeof(path), "%s/data/moved", queue_path(drop));
	snprintf(to, sizeof(to), "%s/data/moved", queue_path(spool));
	assert_int_equal(link(path, to), 0);
	snprintf(path, sizeof(path), "%s/tmp/d-0123456789abcdef", queue_path(drop));
	tstore_write_file(path, "partial", 7);
	assert_int_equal(queue_cleanup(drop, 3600, &err), 0);
	assert_int_equal(queue_cleanup(drop, 0, &err), 2);
	assert_int_equal(tqueue_count(drop, "tmp"), 0);
	assert_int_equal(tqueue_count(drop, "data"), 1);
	tqueue_check(drop, "waiting");
	tqueue_check(spool, "moved");
	assert_int_equal(queue_cleanup(spool, 0, &err), 0);
	queue_close(&drop);
	queue_close(&spool);
}

/* Child side of the lock test: exit status says which check failed. */
static int child_try_lock(const char *root, pid_t parent, bool expect_locked)
{
	struct store *s = tqueue_store(root, STORE_SYNC_SYNCFS);
	struct queue *q = NULL;
	const char *err = NULL;
	if (queue_open(s, "1", &q, &err) != 0)
		return 10;
	int ret = queue_lock(q, &err);
	if (!expect_locked)
		return ret == 0 && queue_lock_holder(q) == getpid() ? 0 : 11;
	char want[64];
	snprintf(want, sizeof(want), "held by pid %d", (int)parent);
	if (ret != STORE_E_TEMP || strstr(err, want) == NULL)
		return 12;
	if (queue_locked(q) || queue_lock_holder(q) != parent)
		return 13;
	struct queue_envelope env;
	if (queue_envelope_read(q, "m1", &env, &err) != 0) /* reading needs no lock */
		return 14;
	if (queue_envelope_update(q, &env, &err) != STORE_E_INVALID ||
	    queue_remove(q, "m1", &err) != STORE_E_INVALID)
		return 15;
	queue_envelope_clear(&env);
	/* Anyone may add. */
	if (tqueue_commit(q, "fromchild", &err) != 0)
		return 16;
	queue_close(&q);
	store_close(&s);
	return 0;
}

static int run_child(const char *root, bool expect_locked)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_try_lock(root, parent, expect_locked));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_lock_between_processes(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(queue_lock_holder(q), 0);
	assert_int_equal(tqueue_commit(q, "m1", &err), 0);
	assert_int_equal(queue_lock(q, &err), 0);
	/* another handle of the same spool in this process (mailctl queue
	 * list inside maild) comes and goes: the lock stays with q */
	struct queue *other = tqueue_open(f->s, "1");
	assert_false(queue_locked(other));
	assert_int_equal(queue_lock_holder(other), (int)getpid());
	queue_close(&other);
	assert_int_equal(run_child(f->root, true), 0);
	tqueue_check(q, "fromchild");
	/* Closing releases it: the next process takes it over. */
	queue_close(&q);
	assert_int_equal(run_child(f->root, false), 0);
}

struct committer {
	struct queue *q;
	int thread;
	int failures;
};

#define THREADS 8
#define PER_THREAD 25

static void *commit_thread(void *p)
{
	struct committer *c = p;
	for (int i = 0; i < PER_THREAD; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "t%dm%d", c->thread, i);
		const char *err = NULL;
		if (tqueue_commit(c->q, id, &err) != 0)
			c->failures++;
	}
	return NULL;
}

static bool bump_attempts(const char *id, void *ctx)
{
	struct queue *q = ctx;
	struct queue_envelope env;
	const char *err = NULL;
	if (queue_envelope_read(q, id, &env, &err) != 0)
		fail_msg("read %s while committing: %s", id, err);
	env.attempts++;
	if (queue_envelope_update(q, &env, &err) != 0)
		fail_msg("update %s: %s", id, err);
	queue_envelope_clear(&env);
	return true;
}

static void test_concurrent_commits(void **state)
{
	struct fixture *f = *state;
	struct queue *q = tqueue_open(f->s, "1");
	const char *err = NULL;
	assert_int_equal(queue_lock(q, &err), 0);
	uint64_t rounds0 = store_sync_rounds(f->s->sync);
	pthread_t t[THREADS];
	struct committer c[THREADS];
	for (int i = 0; i < THREADS; i++) {
		c[i] = (struct committer){q, i, 0};
		assert_int_equal(pthread_create(&t[i], NULL, commit_thread, &c[i]), 0);
	}
	/* The queue manager works on what is there meanwhile. */
	for (int pass = 0; pass < 3; pass++)
		assert_int_equal(queue_list(q, bump_attempts, q, &err), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(c[i].failures, 0);
	}
	struct id_set set;
	list_ids(q, &set);
	assert_int_equal(set.n, THREADS * PER_THREAD);
	for (int i = 0; i < THREADS; i++)
		for (int m = 0; m < PER_THREAD; m++) {
			char id[QUEUE_ID_MAX];
			snprintf(id, sizeof(id), "t%dm%d", i, m);
			tqueue_check(q, id);
		}
	assert_int_equal(tqueue_count(q, "tmp"), 0);
	uint64_t rounds = store_sync_rounds(f->s->sync) - rounds0;
	print_message("%d commits and the updates took %llu group-commit rounds\n",
		      THREADS * PER_THREAD, (unsigned long long)rounds);
	queue_close(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_list_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_remove, setup_files, teardown),
	    cmocka_unit_test_setup_teardown(test_move, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maildrop_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maildrop_cleanup_without_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_commits_and_cleanup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_between_processes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_commits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_commits, setup_files, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
