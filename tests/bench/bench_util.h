/*
 * bench_util.h: helpers shared by the benchmarks that drive a real maild
 * (bench_pop3, bench_smtp): timing, medians, a free port, a temporary
 * maild started by fork/exec and stopped by its pid, its memory from
 * /proc, the raw fsync'd-creation rate of a disk, removing a folder.
 *
 * Header-only (static functions) on purpose: the Makefile builds every
 * tests/bench/bench_*.c as its own program from that one object, so a
 * bench_util.c would neither be linked in nor build alone.
 *
 * The including program sets bench_name (for messages); bench_maild_pid
 * is the maild it started, stopped by bench_die() too.
 */
#ifndef CM_BENCH_UTIL_H
#define CM_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bench_name = "bench";
static pid_t bench_maild_pid = -1;
static pid_t bench_sink_pid = -1; /* a second maild some benches start (bench_smtp's relay target) */

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(v[0]), bench_cmp_double);
	return v[n / 2];
}

static inline void bench_stop_maild(void)
{
	pid_t *pids[] = {&bench_maild_pid, &bench_sink_pid};
	for (size_t i = 0; i < 2; i++) {
		if (*pids[i] > 0) {
			kill(*pids[i], SIGTERM);
			waitpid(*pids[i], NULL, 0);
			*pids[i] = -1;
		}
	}
}

static void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void bench_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", bench_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	bench_stop_maild();
	exit(1);
}

static inline int bench_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		bench_die("free port: %s", strerror(errno));
	close(fd);
	return ntohs(sa.sin_port);
}

/* Writes DIR/maild.conf for a store in STORE; services is the body of
 * the services group (every service not named there keeps its default,
 * so name the others "= { enabled = false; }"). */
static inline void bench_write_conf(const char *conf, const char *workdir, const char *store,
				    const char *services)
{
	FILE *f = fopen(conf, "w");
	if (f == NULL)
		bench_die("%s: %s", conf, strerror(errno));
	fprintf(f,
		"node_id = 1;\nstore = \"%s\";\nrun_dir = \"%s/run\";\nuser = \"root\";\n"
		"server = { max_connections_per_address = 0; };\n"
		"services = {\n%s};\n",
		store, workdir, services);
	fclose(f);
}

/* Starts maild -c conf --foreground, output to log; returns when
 * 127.0.0.1:wait_port accepts connections. */
static inline void bench_start_maild(const char *maild, const char *conf, const char *log,
				     int wait_port)
{
	bench_maild_pid = fork();
	if (bench_maild_pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (bench_maild_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(maild, maild, "-c", conf, "--foreground", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)wait_port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return;
		if (waitpid(bench_maild_pid, NULL, WNOHANG) == bench_maild_pid) {
			bench_maild_pid = -1;
			bench_die("maild exited; see %s", log);
		}
		usleep(50000);
	}
	bench_die("maild did not start; see %s", log);
}

/* A "Name:   N kB" field of /proc/PID/status (VmRSS, VmHWM), or -1. */
static inline long bench_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256], fmt[64];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(fmt, sizeof(fmt), "%s: %%ld kB", field);
	FILE *f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, fmt, &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

static inline int bench_rm_entry(const char *path, const struct stat *st, int flag,
				 struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static inline void bench_rm_tree(const char *dir)
{
	nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the raw limit of the disk: fsync'd creations of 10 KB files, as
 * bench_store measures it (each thread in its own directory) ---- */

struct bench_raw_arg {
	const char *dir;
	int id;
	double seconds;
	long done;
};

static inline void *bench_raw_thread(void *p)
{
	struct bench_raw_arg *a = p;
	static char body[10240];
	char path[512];
	snprintf(path, sizeof(path), "%s/t%d", a->dir, a->id);
	mkdir(path, 0700);
	double end = bench_now() + a->seconds;
	for (long n = 0; bench_now() < end; n++) {
		snprintf(path, sizeof(path), "%s/t%d/f%ld", a->dir, a->id, n);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, body, sizeof(body)) != (ssize_t)sizeof(body) ||
		    fsync(fd) < 0)
			bench_die("raw write %s: %s", path, strerror(errno));
		close(fd);
		a->done++;
	}
	return NULL;
}

/* Takes one CRLF line off the front of buf/len into line (without its
 * CRLF); false when no line is complete yet. */
static inline bool bench_take_line(char *buf, size_t *len, char *line, size_t size)
{
	char *end = memchr(buf, '\n', *len);
	if (end == NULL)
		return false;
	size_t n = (size_t)(end - buf) + 1;
	snprintf(line, size, "%.*s", (int)(n > 2 ? n - 2 : 0), buf);
	memmove(buf, buf + n, *len - n);
	*len -= n;
	return true;
}

/* Creations/s with threads writers in a fresh folder under dir (left for
 * the caller to remove: ext4 creates slower right after mass deletes). */
static inline double bench_raw_fsync_rate(const char *dir, int threads, double seconds)
{
	pthread_t t[64];
	struct bench_raw_arg args[64];
	if (threads > 64)
		threads = 64;
	mkdir(dir, 0700);
	double start = bench_now();
	for (int i = 0; i < threads; i++) {
		args[i] = (struct bench_raw_arg){dir, i, seconds, 0};
		pthread_create(&t[i], NULL, bench_raw_thread, &args[i]);
	}
	long total = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += args[i].done;
	}
	return (double)total / (bench_now() - start);
}

#endif
