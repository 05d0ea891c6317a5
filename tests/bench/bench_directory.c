/*
 * bench_directory: figures for the account directory library.
 *
 *   1. import of 100,000 users with pre-hashed passwords through batches
 *      of 1,000 (one synced write each): users/s;
 *   2. yescrypt cost 2: one hash, single-threaded; then an import of
 *      10,000 plaintext users hashed in parallel on all cores: users/s
 *      (cut, and said so, when it would not fit the time bound);
 *   3. latency p50/p99 of directory_user_get and directory_resolve for
 *      random existing addresses, at 1,000 and at 100,000 users (separate
 *      databases, flushed to table files), and the 100k/1k ratios.
 * Every figure is the median of 3 runs. Targets: ratios <= 1.5, the 100k
 * import well under 60 s.
 *
 * Usage: bench_directory [WORKDIR]  (default: a mkdtemp folder in /tmp).
 * Everything it creates is removed at the end.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/password.h"
#include "storage/directory.h"

#define RUNS 3
#define BATCH_SIZE 1000
#define DOMAINS 10
#define IMPORT_USERS 100000
#define PLAIN_USERS 10000
#define PLAIN_BUDGET_S 20.0 /* per run */
#define HASH_COST 2
#define LOOKUPS 100000

static char workdir[256];
static unsigned run_seq;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median3(double v[RUNS])
{
	double s[RUNS];
	memcpy(s, v, sizeof(s));
	qsort(s, RUNS, sizeof(s[0]), cmp_double);
	return s[RUNS / 2];
}

static void die(const char *what, int ret, const char *error)
{
	fprintf(stderr, "bench_directory: %s: %s (%s)\n", what, directory_strerror(ret),
		error != NULL ? error : "");
	exit(1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static struct directory *open_fresh(char *path, size_t size)
{
	struct directory *dir;
	const char *error = NULL;
	snprintf(path, size, "%s/db-%u", workdir, run_seq++);
	int ret = directory_open(path, DIRECTORY_WRITER, NULL, &dir, &error);
	if (ret != DIRECTORY_OK)
		die("open", ret, error);
	for (int d = 0; d < DOMAINS; d++) {
		char domain[32];
		snprintf(domain, sizeof(domain), "d%d.example", d);
		if ((ret = directory_domain_add(dir, domain, &error)) != DIRECTORY_OK)
			die("domain add", ret, error);
	}
	return dir;
}

static void close_and_remove(struct directory **dir, const char *path)
{
	directory_close(dir);
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void user_address(char *out, size_t size, unsigned i)
{
	snprintf(out, size, "user%06u@d%u.example", i, i % DOMAINS);
}

/* Imports users [0, n) with hashes[i] (or one shared hash). */
static void import(struct directory *dir, unsigned n, char (*hashes)[PASSWORD_HASH_MAX],
		   const char *shared_hash)
{
	struct directory_batch *b = directory_batch_begin(dir);
	const char *error = NULL;
	int ret;
	for (unsigned i = 0; i < n; i++) {
		struct directory_user u;
		memset(&u, 0, sizeof(u));
		user_address(u.address, sizeof(u.address), i);
		snprintf(u.password_hash, sizeof(u.password_hash), "%s",
			 hashes != NULL ? hashes[i] : shared_hash);
		u.enabled = true;
		if ((ret = directory_batch_user_add(b, &u, &error)) != DIRECTORY_OK)
			die("batch add", ret, error);
		if (directory_batch_count(b) == BATCH_SIZE &&
		    (ret = directory_batch_commit(b, &error)) != DIRECTORY_OK)
			die("batch commit", ret, error);
	}
	if ((ret = directory_batch_commit(b, &error)) != DIRECTORY_OK)
		die("batch commit", ret, error);
	directory_batch_free(&b);
}

/* ---- parallel hashing ---- */

struct hash_work {
	char (*hashes)[PASSWORD_HASH_MAX];
	unsigned n;
	unsigned next; /* atomically claimed */
	int failed;
};

static void *hash_worker(void *p)
{
	struct hash_work *w = p;
	for (;;) {
		unsigned i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);
		if (i >= w->n)
			return NULL;
		char plain[32];
		snprintf(plain, sizeof(plain), "password-%u", i);
		if (password_hash(plain, PASSWORD_YESCRYPT, HASH_COST, w->hashes[i],
				  PASSWORD_HASH_MAX, NULL) != 0)
			__atomic_store_n(&w->failed, 1, __ATOMIC_RELAXED);
	}
}

/* Hashes n plaintext passwords on `threads` threads, then imports. */
static double import_plaintext(unsigned n, unsigned threads)
{
	char path[512];
	struct hash_work w = {.n = n};
	pthread_t tids[256];
	w.hashes = calloc(n, PASSWORD_HASH_MAX);
	if (w.hashes == NULL)
		die("calloc", DIRECTORY_E_IO, NULL);
	struct directory *dir = open_fresh(path, sizeof(path));
	double t0 = now_s();
	for (unsigned t = 0; t < threads; t++)
		pthread_create(&tids[t], NULL, hash_worker, &w);
	for (unsigned t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	if (w.failed)
		die("password_hash", DIRECTORY_E_INVALID, "hashing failed");
	import(dir, n, w.hashes, NULL);
	double elapsed = now_s() - t0;
	close_and_remove(&dir, path);
	free(w.hashes);
	return n / elapsed;
}

/* ---- lookups ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int count_cb(const char *address, bool local, void *ctx)
{
	(void)address, (void)local;
	++*(unsigned *)ctx;
	return 0;
}

/* p50 and p99 in microseconds of LOOKUPS random lookups. */
static void measure(struct directory *dir, unsigned users, bool resolve, double *p50, double *p99)
{
	static double lat[LOOKUPS];
	char address[64];
	const char *error = NULL;
	for (unsigned pass = 0; pass < 2; pass++) { /* pass 0 warms the caches */
		for (unsigned i = 0; i < LOOKUPS; i++) {
			struct directory_user u;
			unsigned found = 0;
			int ret;
			user_address(address, sizeof(address), (unsigned)(rng() % users));
			double t0 = now_s();
			if (resolve)
				ret = directory_resolve(dir, address, count_cb, &found, &error);
			else
				ret = directory_user_get(dir, address, &u, &error);
			lat[i] = (now_s() - t0) * 1e6;
			if (ret != (resolve ? 1 : DIRECTORY_OK))
				die(resolve ? "resolve" : "user_get", ret, error);
		}
	}
	qsort(lat, LOOKUPS, sizeof(lat[0]), cmp_double);
	*p50 = lat[LOOKUPS / 2];
	*p99 = lat[LOOKUPS * 99 / 100];
}

struct latency {
	double p50[2][RUNS], p99[2][RUNS]; /* [get, resolve][run] */
};

static void lookups(struct directory *dir, unsigned users, struct latency *lat)
{
	const char *error = NULL;
	int ret = directory_flush(dir, &error);
	if (ret != DIRECTORY_OK)
		die("flush", ret, error);
	for (int run = 0; run < RUNS; run++) {
		measure(dir, users, false, &lat->p50[0][run], &lat->p99[0][run]);
		measure(dir, users, true, &lat->p50[1][run], &lat->p99[1][run]);
	}
}

int main(int argc, char **argv)
{
	char path[512], hash[PASSWORD_HASH_MAX];
	const char *error = NULL;
	double t_start = now_s();
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = cores < 1 ? 1 : cores > 256 ? 256 : (unsigned)cores;

	snprintf(workdir, sizeof(workdir), "%s/cm-bench-directory-XXXXXX",
		 argc > 1 ? argv[1] : "/tmp");
	if (mkdtemp(workdir) == NULL) {
		perror("bench_directory: mkdtemp");
		return 1;
	}
	printf("bench_directory: work dir %s, %u cores, medians of %d runs\n", workdir, threads,
	       RUNS);
	if (password_hash("prehashed", PASSWORD_YESCRYPT, HASH_COST, hash, sizeof(hash), &error) !=
	    0)
		die("password_hash", DIRECTORY_E_INVALID, error);

	/* 1. pre-hashed import; the last run's database serves the 100k lookups. */
	double rate[RUNS], secs[RUNS];
	struct directory *big = NULL;
	char big_path[512];
	for (int run = 0; run < RUNS; run++) {
		struct directory *dir = open_fresh(path, sizeof(path));
		double t0 = now_s();
		import(dir, IMPORT_USERS, NULL, hash);
		secs[run] = now_s() - t0;
		rate[run] = IMPORT_USERS / secs[run];
		if (run < RUNS - 1) {
			close_and_remove(&dir, path);
		} else {
			big = dir;
			snprintf(big_path, sizeof(big_path), "%s", path);
		}
	}
	double import_s = median3(secs);
	printf("import pre-hashed: %u users, batches of %u: %.0f users/s (%.2f s; target < 60 s: "
	       "%s)\n",
	       IMPORT_USERS, BATCH_SIZE, median3(rate), import_s, import_s < 60 ? "ok" : "MISSED");

	/* 2. hashing cost, then the parallel plaintext import. */
	double per_hash[RUNS * 3];
	for (int i = 0; i < RUNS * 3; i++) {
		double t0 = now_s();
		if (password_hash("plaintext", PASSWORD_YESCRYPT, HASH_COST, hash, sizeof(hash),
				  NULL) != 0)
			die("password_hash", DIRECTORY_E_INVALID, NULL);
		per_hash[i] = now_s() - t0;
	}
	qsort(per_hash, RUNS * 3, sizeof(per_hash[0]), cmp_double);
	double one_hash = per_hash[RUNS * 3 / 2];
	printf("hash yescrypt cost %d, 1 thread: %.2f ms/hash\n", HASH_COST, one_hash * 1e3);
	unsigned plain = PLAIN_USERS;
	double estimate = plain * one_hash / threads;
	if (estimate > PLAIN_BUDGET_S) {
		plain = (unsigned)(PLAIN_BUDGET_S * threads / one_hash) / 1000 * 1000;
		if (plain < 1000)
			plain = 1000;
		printf("  (plaintext import cut from %u to %u users: %.0f s per run estimated)\n",
		       PLAIN_USERS, plain, estimate);
	}
	for (int run = 0; run < RUNS; run++)
		rate[run] = import_plaintext(plain, threads);
	printf("import plaintext: %u users hashed on %u threads: %.0f users/s (hash-bound: %.0f)\n",
	       plain, threads, median3(rate), threads / one_hash);

	/* 3. lookup latency at 1k and 100k users. */
	struct latency small_lat, big_lat;
	struct directory *small = open_fresh(path, sizeof(path));
	import(small, 1000, NULL, hash);
	lookups(small, 1000, &small_lat);
	close_and_remove(&small, path);
	lookups(big, IMPORT_USERS, &big_lat);
	close_and_remove(&big, big_path);

	static const char *const names[2] = {"directory_user_get", "directory_resolve"};
	bool ratio_ok = true;
	for (int k = 0; k < 2; k++) {
		double s50 = median3(small_lat.p50[k]), s99 = median3(small_lat.p99[k]);
		double b50 = median3(big_lat.p50[k]), b99 = median3(big_lat.p99[k]);
		printf("lookup %-18s   1k users: p50 %6.2f us  p99 %6.2f us\n", names[k], s50, s99);
		printf("lookup %-18s 100k users: p50 %6.2f us  p99 %6.2f us\n", names[k], b50, b99);
		printf("lookup %-18s 100k/1k:    p50 %6.2f     p99 %6.2f     (target <= 1.5: %s)\n",
		       names[k], b50 / s50, b99 / s99,
		       b50 / s50 <= 1.5 && b99 / s99 <= 1.5 ? "ok" : "MISSED");
		ratio_ok = ratio_ok && b50 / s50 <= 1.5 && b99 / s99 <= 1.5;
	}
	nftw(workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	printf("bench_directory: done in %.0f s, lookup ratio target %s\n", now_s() - t_start,
	       ratio_ok ? "met" : "MISSED");
	return 0;
}
