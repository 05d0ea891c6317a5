/*
 * bench_store: the mail store's performance next to the raw limit of the
 * same disk, measured in the same run. Every figure is the median of 3
 * runs (the append rates: of 5); ratios are against the raw fsync'd-
 * creation rate, as ratios of the medians and as the median of each run's
 * own ratio (raw and store measured back to back in one state of the disk).
 *
 *   raw       fsync'd creations of 10 KB files/s, 1 and 8 threads (each
 *             thread in its own directory: the best raw case)
 *   append    durable appends/s of 10 KB messages: 1 writer; 16 writers
 *             into 16 mailboxes; 16 writers into one mailbox; 16 writers
 *             with the per-file fsync mode instead of syncfs
 *   flags     durable flag updates/s, 1 and 16 sessions on one mailbox
 *   100k      open+status and fetch-all-flags of a 100,000-message mailbox,
 *             and STATUS without opening it
 *   deliver   one message to 1,000 users
 *   --scale   also: per-operation costs at 100,000 and 1,000,000 messages
 *
 * Usage: bench_store [--dir DIR] [--seconds S] [--scale]
 * Bounded: about 3-4 minutes without --scale.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/mailbox.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/store_sync.h"
#include "tests/bench/bench_util.h"

#define MSG_SIZE 10240
#define RUNS 3
#define RATE_RUNS 5 /* the append rates: the noisiest figures */

static double run_seconds = 3.0;
static const char *base_dir = "/tmp";
static char body[MSG_SIZE];


static void die(const char *what, int ret, const char *err)
{
	fprintf(stderr, "bench_store: %s: %d %s\n", what, ret, err != NULL ? err : "");
	exit(1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static char *fresh_dir(void)
{
	char *dir = malloc(strlen(base_dir) + 32);
	sprintf(dir, "%s/bench-store-XXXXXX", base_dir);
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", errno, strerror(errno));
	return dir;
}

/* Directories are removed only when the benchmark ends: on ext4, creating
 * inodes right after deleting many is much slower (the allocator skips
 * recently freed inodes), which would penalise whatever runs next. */
static char *to_remove[64];
static int n_remove;

static void remove_dir(char *dir)
{
	if (n_remove < 64)
		to_remove[n_remove++] = dir;
	else
		free(dir);
}

static void remove_all(void)
{
	for (int i = 0; i < n_remove; i++) {
		nftw(to_remove[i], rm_one, 64, FTW_DEPTH | FTW_PHYS);
		free(to_remove[i]);
	}
	n_remove = 0;
}

static struct store *open_store(const char *root, enum store_sync_mode mode)
{
	struct store_options o = { .node_id = "bench", .sync_mode = mode };
	struct store *s;
	const char *err;
	int ret = store_open(root, &o, &s, &err);
	if (ret != 0)
		die("store_open", ret, err);
	return s;
}

/* ---- raw: fsync'd creation of 10 KB files (tests/bench/bench_util.h) ---- */

/* CPU seconds (user + system) this process has used. */
static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* Rates come with the CPU microseconds per operation (*cpu_r): on a
 * 2-core machine both the raw creations and the appends are CPU-bound
 * (ext4 inode allocation), so this says what a ratio below 1 costs. */
static double raw_rate(int threads, double *cpu_r)
{
	char *dir = fresh_dir();
	double c0 = cpu_now(), start = bench_now();
	double rate = bench_raw_fsync_rate(dir, threads, run_seconds);
	double ops = rate * (bench_now() - start);
	*cpu_r = ops > 0 ? (cpu_now() - c0) / ops * 1e6 : 0;
	remove_dir(dir);
	return rate;
}

/* ---- durable appends ---- */

struct append_arg {
	struct store *s;
	const char *user;
	long done;
};

static void *append_thread(void *p)
{
	struct append_arg *a = p;
	const char *err;
	struct store_user *u;
	struct mailbox *b;
	int ret;
	if ((ret = store_user_open(a->s, a->user, &u, &err)) != 0 ||
	    (ret = mailbox_open(u, "INBOX", MAILBOX_OPEN_APPEND_ONLY, &b, &err)) != 0)
		die("open", ret, err);
	double end = bench_now() + run_seconds;
	while (bench_now() < end) {
		struct mail_writer *w;
		if ((ret = mail_writer_create(a->s, &w, &err)) != 0 ||
		    (ret = mail_writer_write(w, body, MSG_SIZE, &err)) != 0)
			die("writer", ret, err);
		struct mail_append ap = { .writer = w };
		uint32_t uid;
		if ((ret = mailbox_append(b, &ap, 1, NULL, &uid, NULL, &err)) != 0)
			die("append", ret, err);
		a->done++;
	}
	mailbox_close(&b);
	store_user_close(&u);
	return NULL;
}

/* Appends/s with writers threads; one mailbox each unless shared. */
static double append_rate(int writers, bool shared, enum store_sync_mode mode, double *batch_r,
			  double *cpu_r)
{
	char *dir = fresh_dir();
	struct store *s = open_store(dir, mode);
	pthread_t t[64];
	struct append_arg args[64];
	char users[64][32];
	for (int i = 0; i < writers; i++) {
		snprintf(users[i], sizeof(users[i]), "writer%d@bench.example", shared ? 0 : i);
		struct store_user *u;
		const char *err;
		if (store_user_open(s, users[i], &u, &err) != 0)
			die("user", -1, err);
		store_user_close(&u);
	}
	uint64_t rounds0 = store_sync_rounds(s->sync);
	double start = bench_now(), c0 = cpu_now();
	for (int i = 0; i < writers; i++) {
		args[i] = (struct append_arg){ s, users[i], 0 };
		pthread_create(&t[i], NULL, append_thread, &args[i]);
	}
	long total = 0;
	for (int i = 0; i < writers; i++) {
		pthread_join(t[i], NULL);
		total += args[i].done;
	}
	double rate = (double)total / (bench_now() - start);
	*cpu_r = total > 0 ? (cpu_now() - c0) / (double)total * 1e6 : 0;
	uint64_t rounds = store_sync_rounds(s->sync) - rounds0;
	*batch_r = rounds > 0 ? (double)total / (double)rounds : 0;
	store_close(&s);
	remove_dir(dir);
	return rate;
}

/* ---- flag updates ---- */

struct flag_arg {
	struct store *s;
	uint32_t messages;
	unsigned seed;
	long done;
};

static void *flag_thread(void *p)
{
	struct flag_arg *a = p;
	const char *err;
	struct store_user *u;
	struct mailbox *b;
	int ret;
	if ((ret = store_user_open(a->s, "flags@bench.example", &u, &err)) != 0 ||
	    (ret = mailbox_open(u, "INBOX", 0, &b, &err)) != 0)
		die("open", ret, err);
	double end = bench_now() + run_seconds;
	while (bench_now() < end) {
		struct uidset set = UIDSET_INIT;
		uidset_add(&set, 1 + rand_r(&a->seed) % a->messages);
		struct mail_flags_update upd = { .op = (a->done & 1) ? MAIL_FLAGS_REMOVE : MAIL_FLAGS_ADD,
						 .flags = MAIL_SEEN | MAIL_FLAGGED };
		if ((ret = mailbox_store(b, &set, &upd, NULL, NULL, &err)) != 0)
			die("store", ret, err);
		uidset_free(&set);
		a->done++;
	}
	mailbox_close(&b);
	store_user_close(&u);
	return NULL;
}

/* Fills INBOX of user with n messages: one append, then copies (links). */
static void fill_mailbox(struct store *s, const char *user, uint32_t n)
{
	const char *err;
	struct store_user *u;
	struct mailbox *b;
	int ret;
	if ((ret = store_user_open(s, user, &u, &err)) != 0 ||
	    (ret = mailbox_open(u, "INBOX", 0, &b, &err)) != 0)
		die("open", ret, err);
	/* Distinct files first: a filesystem limits the links per file. */
	enum { BASE = 256 };
	struct mail_append ap[BASE];
	uint32_t uids[BASE];
	memset(ap, 0, sizeof(ap));
	for (int i = 0; i < BASE; i++) {
		mail_writer_create(s, &ap[i].writer, &err);
		mail_writer_write(ap[i].writer, body, MSG_SIZE, &err);
		ap[i].flags = i % 3 ? MAIL_SEEN : 0;
	}
	if ((ret = mailbox_append(b, ap, BASE, NULL, uids, NULL, &err)) != 0)
		die("append", ret, err);
	uint32_t have = BASE;
	while (have < n) {
		uint32_t take = have < n - have ? have : n - have;
		struct uidset set = UIDSET_INIT;
		uidset_add_range(&set, 1, take);
		if ((ret = mailbox_copy(b, &set, b, false, NULL, NULL, NULL, &err)) != 0)
			die("copy", ret, err);
		uidset_free(&set);
		if ((ret = mailbox_sync(b, NULL, NULL, &err)) != 0)
			die("sync", ret, err);
		have += take;
	}
	mailbox_close(&b);
	store_user_close(&u);
}

static double flag_rate(struct store *s, int sessions, uint32_t messages)
{
	double r[RUNS];
	for (int run = 0; run < RUNS; run++) {
		pthread_t t[64];
		struct flag_arg args[64];
		double start = bench_now();
		for (int i = 0; i < sessions; i++) {
			args[i] = (struct flag_arg){ s, messages, (unsigned)(run * 1000 + i), 0 };
			pthread_create(&t[i], NULL, flag_thread, &args[i]);
		}
		long total = 0;
		for (int i = 0; i < sessions; i++) {
			pthread_join(t[i], NULL);
			total += args[i].done;
		}
		r[run] = (double)total / (bench_now() - start);
	}
	return bench_median(r, RUNS);
}

/* ---- big mailbox: open+status, fetch-all-flags, STATUS ---- */

struct big_times {
	double open_status_ms, fetch_flags_ms, status_ms, append_ms, store_ms;
};

static void big_mailbox(struct store *s, const char *user, struct big_times *bt)
{
	double open_ms[RUNS], fetch_ms[RUNS], status_ms[RUNS], append_ms[RUNS], store_ms[RUNS];
	const char *err;
	struct store_user *u;
	int ret;
	if ((ret = store_user_open(s, user, &u, &err)) != 0)
		die("user", ret, err);
	for (int run = 0; run < RUNS; run++) {
		struct mailbox *b;
		struct mailbox_status st;
		double t0 = bench_now();
		if ((ret = mailbox_open(u, "INBOX", MAILBOX_OPEN_READONLY, &b, &err)) != 0)
			die("open", ret, err);
		mailbox_get_status(b, &st);
		double t1 = bench_now();
		/* What FETCH 1:* (UID FLAGS) costs the store: every record and
		 * its flag names, formatted. */
		struct textbuf out = TEXTBUF_INIT;
		size_t n;
		const struct mail_record *recs = mailbox_records(b, &n);
		for (size_t i = 0; i < n; i++) {
			textbuf_printf(&out, "* %zu FETCH (UID %u FLAGS (%s%s", i + 1, recs[i].uid,
				       recs[i].flags & MAIL_SEEN ? "\\Seen" : "",
				       recs[i].flags & MAIL_FLAGGED ? " \\Flagged" : "");
			for (unsigned k = 0; k < 64; k++)
				if (recs[i].keywords & ((uint64_t)1 << k))
					textbuf_printf(&out, " %s", mailbox_keyword(b, k));
			textbuf_puts(&out, "))\r\n");
		}
		double t2 = bench_now();
		textbuf_free(&out);
		if (n == 0 || st.messages != n)
			die("big mailbox", (int)n, "count mismatch");
		mailbox_close(&b);
		double t3 = bench_now();
		if ((ret = mailbox_status(u, "INBOX", &st, &err)) != 0)
			die("status", ret, err);
		double t4 = bench_now();
		/* One append and one flag update at this size. */
		if ((ret = mailbox_open(u, "INBOX", 0, &b, &err)) != 0)
			die("open", ret, err);
		struct mail_writer *w;
		mail_writer_create(s, &w, &err);
		mail_writer_write(w, body, MSG_SIZE, &err);
		struct mail_append ap = { .writer = w };
		uint32_t uid;
		double t5 = bench_now();
		if ((ret = mailbox_append(b, &ap, 1, NULL, &uid, NULL, &err)) != 0)
			die("append", ret, err);
		double t6 = bench_now();
		struct uidset set = UIDSET_INIT;
		uidset_add(&set, uid);
		struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_DELETED };
		if ((ret = mailbox_store(b, &set, &upd, NULL, NULL, &err)) != 0)
			die("store", ret, err);
		double t7 = bench_now();
		if ((ret = mailbox_expunge(b, &set, false, NULL, &err)) != 0)
			die("expunge", ret, err);
		uidset_free(&set);
		mailbox_close(&b);
		open_ms[run] = (t1 - t0) * 1e3;
		fetch_ms[run] = (t2 - t1) * 1e3;
		status_ms[run] = (t4 - t3) * 1e3;
		append_ms[run] = (t6 - t5) * 1e3;
		store_ms[run] = (t7 - t6) * 1e3;
	}
	store_user_close(&u);
	bt->open_status_ms = bench_median(open_ms, RUNS);
	bt->fetch_flags_ms = bench_median(fetch_ms, RUNS);
	bt->status_ms = bench_median(status_ms, RUNS);
	bt->append_ms = bench_median(append_ms, RUNS);
	bt->store_ms = bench_median(store_ms, RUNS);
}

/* ---- delivery to 1,000 users ---- */

static double deliver_1000(struct store *s, double *per_rcpt_us)
{
	enum { USERS = 1000 };
	static struct store_rcpt rcpts[USERS];
	static char addrs[USERS][32];
	const char *err;
	for (int i = 0; i < USERS; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "rcpt%d@bench.example", i);
		struct store_user *u;
		if (store_user_open(s, addrs[i], &u, &err) != 0)
			die("user", -1, err);
		store_user_close(&u);
	}
	double r[RUNS];
	for (int run = 0; run < RUNS; run++) {
		memset(rcpts, 0, sizeof(rcpts));
		for (int i = 0; i < USERS; i++)
			rcpts[i].address = addrs[i];
		struct mail_writer *w;
		double t0 = bench_now();
		mail_writer_create(s, &w, &err);
		mail_writer_write(w, body, MSG_SIZE, &err);
		int ret = store_deliver(s, &w, NULL, rcpts, USERS, &err);
		double t1 = bench_now();
		if (ret != 0)
			die("deliver", ret, err);
		for (int i = 0; i < USERS; i++)
			if (rcpts[i].result != 0)
				die("deliver rcpt", rcpts[i].result, rcpts[i].error);
		r[run] = (t1 - t0) * 1e3;
	}
	double m = bench_median(r, RUNS);
	*per_rcpt_us = m * 1e3 / USERS;
	return m;
}

int main(int argc, char **argv)
{
	bool scale = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base_dir = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			run_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--scale") == 0)
			scale = true;
	}
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = i % 78 == 77 ? '\n' : (char)('a' + i % 26);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_store: medians of %d runs (append rates: %d) of %.0f s, 10 KB messages, in %s\n",
	       RUNS, RATE_RUNS, run_seconds,
	       base_dir);

	/* Raw and store runs interleaved, so that the disk's mood (and other
	 * load on the machine) weighs on both alike. */
	enum { RAW1, RAW8, APP1, APP16, APP16S, APP16F, N_RATES };
	double rate[N_RATES][RATE_RUNS], batch[N_RATES][RATE_RUNS], cpu[N_RATES][RATE_RUNS];
	for (int run = 0; run < RATE_RUNS; run++) {
		rate[RAW1][run] = raw_rate(1, &cpu[RAW1][run]);
		rate[APP1][run] = append_rate(1, false, STORE_SYNC_SYNCFS, &batch[APP1][run],
					      &cpu[APP1][run]);
		rate[RAW8][run] = raw_rate(8, &cpu[RAW8][run]);
		rate[APP16][run] = append_rate(16, false, STORE_SYNC_SYNCFS, &batch[APP16][run],
					       &cpu[APP16][run]);
		rate[APP16S][run] = append_rate(16, true, STORE_SYNC_SYNCFS, &batch[APP16S][run],
						&cpu[APP16S][run]);
		rate[APP16F][run] = append_rate(16, false, STORE_SYNC_FILES, &batch[APP16F][run],
						&cpu[APP16F][run]);
		printf("  run %d: raw %.0f / %.0f, appends %.0f / %.0f / %.0f / %.0f\n", run + 1,
		       rate[RAW1][run], rate[RAW8][run], rate[APP1][run], rate[APP16][run],
		       rate[APP16S][run], rate[APP16F][run]);
	}
	/* The disk's state changes between runs (after mass deletions ext4
	 * creates inodes much slower for minutes), so each run's appends are
	 * also compared with the same run's raw rate. Taken before the
	 * medians, which sort the arrays. */
	double q[N_RATES][RATE_RUNS];
	for (int k = APP1; k < N_RATES; k++)
		for (int run = 0; run < RATE_RUNS; run++)
			q[k][run] = rate[k][run] / rate[k == APP1 ? RAW1 : RAW8][run];
	double raw1 = bench_median(rate[RAW1], RATE_RUNS), raw8 = bench_median(rate[RAW8], RATE_RUNS);
	printf("raw fsync'd 10 KB creations/s      1 thread %7.0f   8 threads %7.0f\n", raw1, raw8);
	static const char *const labels[N_RATES] = {
		[APP1] = " 1 writer               ", [APP16] = "16 writers, 16 mailboxes",
		[APP16S] = "16 writers, 1 mailbox   ", [APP16F] = "16 writers, fsync mode  ",
	};
	for (int k = APP1; k < N_RATES; k++) {
		double a = bench_median(rate[k], RATE_RUNS);
		printf("durable appends/s %s %7.0f  = %.2f x raw %s  (%.1f per sync; same-run ratios: "
		       "median %.2f)\n",
		       labels[k], a, a / (k == APP1 ? raw1 : raw8), k == APP1 ? "1 thread " : "8 threads",
		       bench_median(batch[k], RATE_RUNS), bench_median(q[k], RATE_RUNS));
	}
	printf("CPU per operation (us): raw 1 thread %.0f, 8 threads %.0f; appends 1 writer %.0f, "
	       "16 writers %.0f, 1 mailbox %.0f\n",
	       bench_median(cpu[RAW1], RATE_RUNS), bench_median(cpu[RAW8], RATE_RUNS),
	       bench_median(cpu[APP1], RATE_RUNS), bench_median(cpu[APP16], RATE_RUNS),
	       bench_median(cpu[APP16S], RATE_RUNS));

	char *dir = fresh_dir();
	struct store *s = open_store(dir, STORE_SYNC_SYNCFS);
	fill_mailbox(s, "flags@bench.example", 1000);
	double f1 = flag_rate(s, 1, 1000), f16 = flag_rate(s, 16, 1000);
	printf("durable flag updates/s  1 session %7.0f   16 sessions %7.0f  (= %.2f x raw 8 threads)\n",
	       f1, f16, f16 / raw8);

	double t0 = bench_now();
	fill_mailbox(s, "big@bench.example", 100000);
	double built = bench_now() - t0;
	struct big_times bt;
	big_mailbox(s, "big@bench.example", &bt);
	printf("100,000 messages (built in %.1f s): open+status %.1f ms, fetch-all-flags %.1f ms, "
	       "STATUS %.2f ms, append %.1f ms, flag update %.1f ms\n",
	       built, bt.open_status_ms, bt.fetch_flags_ms, bt.status_ms, bt.append_ms, bt.store_ms);

	double per;
	double d = deliver_1000(s, &per);
	printf("delivery of one message to 1,000 users: %.0f ms (%.0f us per recipient)\n", d, per);

	if (scale) {
		t0 = bench_now();
		fill_mailbox(s, "million@bench.example", 1000000);
		built = bench_now() - t0;
		struct big_times bm;
		big_mailbox(s, "million@bench.example", &bm);
		printf("1,000,000 messages (built in %.1f s): open+status %.1f ms, fetch-all-flags %.1f ms, "
		       "STATUS %.2f ms, append %.1f ms, flag update %.1f ms\n",
		       built, bm.open_status_ms, bm.fetch_flags_ms, bm.status_ms, bm.append_ms, bm.store_ms);
		printf("per-operation cost 1M vs 100k: STATUS %.2fx, append %.2fx, flag update %.2fx\n",
		       bm.status_ms / bt.status_ms, bm.append_ms / bt.append_ms, bm.store_ms / bt.store_ms);
	}
	store_close(&s);
	remove_dir(dir);
	remove_all();
	return 0;
}
