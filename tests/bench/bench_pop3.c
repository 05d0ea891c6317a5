/*
 * bench_pop3: POP3 figures for a real maild (issue 6's targets), with a
 * load generator that is not the bottleneck: one thread, epoll,
 * nonblocking sockets, responses scanned for their end, never copied.
 *
 *   1. RETR/s of 10 KiB messages, 20 concurrent sessions (each logs in
 *      once, then RETRs its 200 messages round and round, one command at
 *      a time, as a client does); target >= 7,000/s;
 *   2. login+STAT+QUIT sessions/s, 20 at a time, yescrypt at the site
 *      default cost 2 (a fresh connection and a password hash each);
 *      target >= 500/s;
 *   3. one RETR of a 10 KiB message on an idle server: p50/p99 latency;
 *      target < 1 ms (no Nagle-style stalls);
 *   4. a 10,000-message maildrop: login (snapshot) time, STAT, LIST, UIDL;
 *   5. server memory per idle connection (RSS growth over 500
 *      connections): after the greeting, logged in, and on POP3S;
 *      target <= 64 KiB.
 * Throughput figures are the median of 3 runs of SECONDS each.
 *
 * Usage: bench_pop3 [--maild PATH] [--seconds S] [--keep]
 * maild defaults to ../bin/maild next to this program. Everything lives
 * in a mkdtemp folder in /tmp, removed at the end (unless --keep); maild
 * runs there as the invoking user (user "root" in its configuration
 * keeps root: the store is written by this process too) and is stopped
 * by its pid.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/password.h"
#include "storage/directory.h"
#include "storage/mailbox.h"
#include "storage/store.h"
#include "tests/bench/bench_util.h"

#define RUNS 3
#define SESSIONS 20
#define RETR_USERS SESSIONS
#define RETR_MESSAGES 200
#define MESSAGE_SIZE 10240
#define BIG_MESSAGES 10000
#define IDLE_CONNECTIONS 500
#define LATENCY_SAMPLES 2000
#define PASSWORD "Bench-Pw-1"
#define DOMAIN "bench.test"

static char workdir[256];
static double seconds = 5.0;
static int port_pop3, port_pop3s;

static int tcp_connect(bool nonblocking)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port_pop3),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	if (fd < 0)
		bench_die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		bench_die("connect: %s", strerror(errno));
	return fd;
}

/* ---- setup: users, messages, maild ---- */

static void user_name(char *out, size_t size, unsigned i)
{
	snprintf(out, size, "u%u@" DOMAIN, i);
}

static void add_users(const char *store_dir, unsigned n)
{
	char path[1024], hash[PASSWORD_HASH_MAX];
	struct directory *dir;
	const char *error = NULL;
	snprintf(path, sizeof(path), "%s/directory", store_dir);
	if (directory_open(path, DIRECTORY_WRITER, NULL, &dir, &error) != DIRECTORY_OK ||
	    directory_domain_add(dir, DOMAIN, &error) != DIRECTORY_OK)
		bench_die("directory: %s", error);
	/* the site default: what every login pays */
	if (password_hash(PASSWORD, PASSWORD_YESCRYPT, 2, hash, sizeof(hash), &error) < 0)
		bench_die("hash: %s", error);
	for (unsigned i = 0; i < n; i++) {
		struct directory_user u;
		memset(&u, 0, sizeof(u));
		user_name(u.address, sizeof(u.address), i);
		snprintf(u.password_hash, sizeof(u.password_hash), "%s", hash);
		u.enabled = true;
		if (directory_user_add(dir, &u, &error) != DIRECTORY_OK)
			bench_die("user add: %s", error);
	}
	directory_close(&dir);
}

static void fill_user(struct store *s, unsigned user, unsigned count, size_t size)
{
	enum { BATCH = 500 };
	char addr[64], *body = malloc(size);
	struct store_user *u = NULL;
	struct mailbox *box = NULL;
	struct mail_append msgs[BATCH];
	uint32_t uids[BATCH];
	const char *error = NULL;

	if (body == NULL)
		bench_die("out of memory");
	user_name(addr, sizeof(addr), user);
	if (store_user_open(s, addr, &u, &error) < 0 ||
	    mailbox_open(u, "INBOX", MAILBOX_OPEN_READONLY, &box, &error) < 0)
		bench_die("open %s: %s", addr, error);
	for (size_t i = 0; i < size; i++)
		body[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	for (unsigned done = 0; done < count;) {
		unsigned k = 0;
		memset(msgs, 0, sizeof(msgs));
		for (; k < BATCH && done + k < count; k++) {
			char head[128];
			int n = snprintf(head, sizeof(head), "Subject: bench %u\r\n\r\n", done + k);
			if (mail_writer_create(s, &msgs[k].writer, &error) < 0 ||
			    mail_writer_write(msgs[k].writer, head, (size_t)n, &error) < 0 ||
			    mail_writer_write(msgs[k].writer, body, size - (size_t)n - 2, &error) <
				0 ||
			    mail_writer_write(msgs[k].writer, "\r\n", 2, &error) < 0)
				bench_die("write: %s", error);
		}
		if (mailbox_append(box, msgs, k, NULL, uids, NULL, &error) < 0)
			bench_die("append: %s", error);
		done += k;
	}
	mailbox_close(&box);
	store_user_close(&u);
	free(body);
}

static void start_maild(const char *maild, const char *store_dir)
{
	char conf[512], log[512], cert[4096], services[1024];
	snprintf(conf, sizeof(conf), "%s/maild.conf", workdir);
	snprintf(log, sizeof(log), "%s/maild.log", workdir);
	port_pop3 = bench_free_port();
	port_pop3s = bench_free_port();
	snprintf(services, sizeof(services),
		 "  pop3 = { address = \"127.0.0.1\"; port = %d; };\n"
		 "  pop3s = { address = \"127.0.0.1\"; port = %d; };\n"
		 "  smtp = { enabled = false; }; submission = { enabled = false; };\n"
		 "  smtps = { enabled = false; }; imap = { enabled = false; };\n"
		 "  imaps = { enabled = false; }; http = { enabled = false; };\n",
		 port_pop3, port_pop3s);
	bench_write_conf(conf, workdir, store_dir, services);
	/* a certificate for POP3S, made by the real mailctl next to maild */
	char *copy = strdup(maild);
	const char *bin = dirname(copy);
	snprintf(cert, sizeof(cert),
		 "%s/mailctl -c %s cert generate bench --names localhost >/dev/null && "
		 "%s/mailctl -c %s cert assign bench --default >/dev/null",
		 bin, conf, bin, conf);
	if (system(cert) != 0)
		bench_die("mailctl cert generate failed");
	free(copy);
	bench_start_maild(maild, conf, log, port_pop3s);
}

/* ---- the load generator ---- */

enum step {
	ST_CONNECT, /* waiting for the greeting */
	ST_USER,
	ST_PASS,
	ST_STAT,
	ST_RETR_HEAD,
	ST_RETR_BODY,
	ST_QUIT,
};

enum mode { MODE_RETR, MODE_LOGIN };

struct session {
	int fd;
	unsigned user;
	enum step step;
	unsigned next_msg;
	char buf[65536];
	size_t len;
};

struct load {
	enum mode mode;
	int ep;
	double deadline;
	unsigned long done; /* RETRs, or whole sessions */
	bool stopping;
	struct session s[SESSIONS];
};

static void send_all(int fd, const char *text)
{
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_die("send: %s", strerror(errno));
		off += (size_t)n;
	}
}

static void session_start(struct load *ld, struct session *s)
{
	s->fd = tcp_connect(true);
	s->step = ST_CONNECT;
	s->len = 0;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(ld->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		bench_die("epoll_ctl: %s", strerror(errno));
}

static void send_retr(struct session *s)
{
	char cmd[32];
	snprintf(cmd, sizeof(cmd), "RETR %u\r\n", s->next_msg + 1);
	s->next_msg = (s->next_msg + 1) % RETR_MESSAGES;
	send_all(s->fd, cmd);
	s->step = ST_RETR_HEAD;
}

/* Advances one session on what it has read; false when it closed. */
static bool session_step(struct load *ld, struct session *s)
{
	char line[512], cmd[128], name[64];
	for (;;) {
		if (s->step == ST_RETR_BODY) {
			/* the body ends at CRLF "." CRLF; its first CRLF may be the
			 * one that ended the "+OK" line, kept at the front */
			char *end = s->len >= 5 ? memmem(s->buf, s->len, "\r\n.\r\n", 5) : NULL;
			if (end == NULL) {
				/* keep only what could begin the terminator */
				size_t keep = s->len < 4 ? s->len : 4;
				memmove(s->buf, s->buf + s->len - keep, keep);
				s->len = keep;
				return true;
			}
			size_t n = (size_t)(end - s->buf) + 5;
			memmove(s->buf, s->buf + n, s->len - n);
			s->len -= n;
			ld->done++;
			if (bench_now() < ld->deadline) {
				send_retr(s);
				continue;
			}
			send_all(s->fd, "QUIT\r\n");
			s->step = ST_QUIT;
			continue;
		}
		if (s->step == ST_RETR_HEAD) {
			char *end = memchr(s->buf, '\n', s->len);
			if (end == NULL)
				return true;
			if (strncmp(s->buf, "+OK", 3) != 0)
				bench_die("RETR: %.*s", (int)(end - s->buf), s->buf);
			/* keep the line's CRLF: it may begin the terminator */
			size_t n = (size_t)(end - s->buf) - 1;
			memmove(s->buf, s->buf + n, s->len - n);
			s->len -= n;
			s->step = ST_RETR_BODY;
			continue;
		}
		if (!bench_take_line(s->buf, &s->len, line, sizeof(line)))
			return true;
		if (line[0] != '+')
			bench_die("server said: %s", line);
		switch (s->step) {
		case ST_CONNECT:
			user_name(name, sizeof(name), s->user);
			snprintf(cmd, sizeof(cmd), "USER %s\r\n", name);
			send_all(s->fd, cmd);
			s->step = ST_USER;
			break;
		case ST_USER:
			send_all(s->fd, "PASS " PASSWORD "\r\n");
			s->step = ST_PASS;
			break;
		case ST_PASS:
			if (ld->mode == MODE_RETR) {
				send_retr(s);
			} else {
				send_all(s->fd, "STAT\r\n");
				s->step = ST_STAT;
			}
			break;
		case ST_STAT:
			send_all(s->fd, "QUIT\r\n");
			s->step = ST_QUIT;
			break;
		case ST_QUIT:
			if (ld->mode == MODE_LOGIN)
				ld->done++;
			close(s->fd);
			s->fd = -1;
			return false;
		default:
			break;
		}
	}
}

static double run_load(enum mode mode)
{
	struct load *ld = calloc(1, sizeof(*ld));
	if (ld == NULL)
		bench_die("out of memory");
	ld->mode = mode;
	ld->ep = epoll_create1(EPOLL_CLOEXEC);
	double start = bench_now();
	ld->deadline = start + seconds;
	unsigned live = SESSIONS;
	for (unsigned i = 0; i < SESSIONS; i++) {
		ld->s[i].user = mode == MODE_RETR ? i : RETR_USERS; /* login: one small maildrop */
		ld->s[i].next_msg = (unsigned)(i * 7) % RETR_MESSAGES;
		session_start(ld, &ld->s[i]);
	}
	while (live > 0) {
		struct epoll_event evs[SESSIONS];
		int n = epoll_wait(ld->ep, evs, SESSIONS, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("no progress for 10 s (server stalled?)");
		for (int i = 0; i < n; i++) {
			struct session *s = evs[i].data.ptr;
			ssize_t got = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0)
				bench_die("connection closed by the server in step %d", (int)s->step);
			s->len += (size_t)got;
			if (!session_step(ld, s)) {
				if (mode == MODE_LOGIN && bench_now() < ld->deadline)
					session_start(ld, s);
				else
					live--;
			}
		}
	}
	double elapsed = bench_now() - start;
	double rate = (double)ld->done / elapsed;
	close(ld->ep);
	free(ld);
	return rate;
}

/* ---- latency, big maildrop, memory (blocking, one session) ---- */

static char rbuf[1 << 20];
static size_t rlen;

static void read_until(int fd, const char *end)
{
	size_t elen = strlen(end);
	for (;;) {
		if (rlen >= elen && memmem(rbuf, rlen, end, elen) != NULL)
			return;
		ssize_t n = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);
		if (n <= 0)
			bench_die("recv: %s", n == 0 ? "closed" : strerror(errno));
		rlen += (size_t)n;
		if (rlen == sizeof(rbuf)) /* keep the tail only */
			memmove(rbuf, rbuf + rlen - elen, elen), rlen = elen;
	}
}

static double timed(int fd, const char *cmd, const char *end)
{
	rlen = 0;
	double t0 = bench_now();
	send_all(fd, cmd);
	read_until(fd, end);
	return bench_now() - t0;
}

static int login_blocking(unsigned user)
{
	char cmd[128], name[64];
	int fd = tcp_connect(false);
	rlen = 0;
	read_until(fd, "\r\n");
	user_name(name, sizeof(name), user);
	snprintf(cmd, sizeof(cmd), "USER %s\r\n", name);
	timed(fd, cmd, "\r\n");
	timed(fd, "PASS " PASSWORD "\r\n", "\r\n");
	if (strncmp(rbuf, "+OK", 3) != 0)
		bench_die("login %s: %.*s", name, (int)rlen, rbuf);
	return fd;
}

static void bench_latency(void)
{
	static double t[LATENCY_SAMPLES];
	int fd = login_blocking(0);
	for (int i = 0; i < LATENCY_SAMPLES; i++) {
		char cmd[32];
		snprintf(cmd, sizeof(cmd), "RETR %d\r\n", i % RETR_MESSAGES + 1);
		t[i] = timed(fd, cmd, "\r\n.\r\n");
	}
	timed(fd, "QUIT\r\n", "\r\n");
	close(fd);
	qsort(t, LATENCY_SAMPLES, sizeof(t[0]), bench_cmp_double);
	printf("  single RETR of 10 KiB, idle server: p50 %.3f ms, p99 %.3f ms (target < 1 ms)\n",
	       t[LATENCY_SAMPLES / 2] * 1e3, t[LATENCY_SAMPLES * 99 / 100] * 1e3);
}

static void bench_big_maildrop(unsigned user)
{
	double login[RUNS], stat[RUNS], list[RUNS], uidl[RUNS];
	for (int r = 0; r < RUNS; r++) {
		double t0 = bench_now();
		int fd = login_blocking(user);
		login[r] = bench_now() - t0;
		stat[r] = timed(fd, "STAT\r\n", "\r\n");
		list[r] = timed(fd, "LIST\r\n", "\r\n.\r\n");
		uidl[r] = timed(fd, "UIDL\r\n", "\r\n.\r\n");
		timed(fd, "QUIT\r\n", "\r\n");
		close(fd);
	}
	printf("  %u-message maildrop: login (snapshot) %.1f ms, STAT %.2f ms, LIST %.1f ms, "
	       "UIDL %.1f ms\n",
	       BIG_MESSAGES, bench_median(login, RUNS) * 1e3, bench_median(stat, RUNS) * 1e3,
	       bench_median(list, RUNS) * 1e3, bench_median(uidl, RUNS) * 1e3);
}

static long rss_kib(void)
{
	return bench_proc_kib(bench_maild_pid, "VmRSS");
}

enum idle_kind { IDLE_GREETED, IDLE_LOGGED_IN, IDLE_TLS };

static double idle_memory(enum idle_kind kind, SSL_CTX *ctx)
{
	static int fds[IDLE_CONNECTIONS];
	static SSL *ssl[IDLE_CONNECTIONS];
	/* warm up: the allocator's arenas and libevent's first buffers */
	for (int i = 0; i < 20; i++)
		close(login_blocking(RETR_USERS));
	usleep(200000);
	long before = rss_kib();
	for (int i = 0; i < IDLE_CONNECTIONS; i++) {
		if (kind == IDLE_LOGGED_IN) {
			fds[i] = login_blocking(RETR_USERS);
			continue;
		}
		int fd = tcp_connect(false);
		if (kind == IDLE_TLS) {
			struct sockaddr_in sa = {.sin_family = AF_INET,
						 .sin_port = htons((uint16_t)port_pop3s),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			close(fd);
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				bench_die("connect: %s", strerror(errno));
			ssl[i] = SSL_new(ctx);
			SSL_set_fd(ssl[i], fd);
			char greet[256];
			if (SSL_connect(ssl[i]) != 1 || SSL_read(ssl[i], greet, sizeof(greet)) <= 0)
				bench_die("TLS connection %d failed", i);
		} else {
			rlen = 0;
			read_until(fd, "\r\n");
		}
		fds[i] = fd;
	}
	usleep(300000);
	long after = rss_kib();
	for (int i = 0; i < IDLE_CONNECTIONS; i++) {
		if (kind == IDLE_TLS) {
			SSL_free(ssl[i]);
			ssl[i] = NULL;
		}
		close(fds[i]);
	}
	usleep(300000);
	return (double)(after - before) / IDLE_CONNECTIONS;
}

int main(int argc, char **argv)
{
	char maild[1024], store_dir[512];
	bool keep = false;

	bench_name = "bench_pop3";

	snprintf(maild, sizeof(maild), "%s/../bin/maild", dirname(strdup(argv[0])));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--maild") == 0 && i + 1 < argc)
			snprintf(maild, sizeof(maild), "%s", argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else
			bench_die("usage: bench_pop3 [--maild PATH] [--seconds S] [--keep]");
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(workdir, sizeof(workdir), "/tmp/bench-pop3-XXXXXX");
	if (mkdtemp(workdir) == NULL)
		bench_die("mkdtemp: %s", strerror(errno));
	snprintf(store_dir, sizeof(store_dir), "%s/store", workdir);
	mkdir(store_dir, 0750);

	double t0 = bench_now();
	add_users(store_dir, RETR_USERS + 2);
	struct store *s;
	const char *error = NULL;
	struct store_options so = {.node_id = "bench-setup"};
	if (store_open(store_dir, &so, &s, &error) < 0)
		bench_die("store: %s", error);
	for (unsigned u = 0; u < RETR_USERS; u++)
		fill_user(s, u, RETR_MESSAGES, MESSAGE_SIZE);
	fill_user(s, RETR_USERS, 5, 2048);
	fill_user(s, RETR_USERS + 1, BIG_MESSAGES, 2048);
	store_close(&s);
	start_maild(maild, store_dir);
	printf("  setup: %u users, %u messages, maild pid %d (%.1f s)\n", RETR_USERS + 2,
	       RETR_USERS * RETR_MESSAGES + 5 + BIG_MESSAGES, (int)bench_maild_pid, bench_now() - t0);

	double r[RUNS];
	for (int i = 0; i < RUNS; i++)
		r[i] = run_load(MODE_RETR);
	printf("  RETR of 10 KiB, %d sessions: %.0f messages/s (median of %d x %.0f s; runs %.0f "
	       "%.0f %.0f; "
	       "target >= 7000)\n",
	       SESSIONS, bench_median(r, RUNS), RUNS, seconds, r[0], r[1], r[2]);
	for (int i = 0; i < RUNS; i++)
		r[i] = run_load(MODE_LOGIN);
	printf("  login+STAT+QUIT, %d at a time, yescrypt cost 2: %.0f sessions/s (median; runs "
	       "%.0f %.0f "
	       "%.0f; target >= 500)\n",
	       SESSIONS, bench_median(r, RUNS), r[0], r[1], r[2]);
	bench_latency();
	bench_big_maildrop(RETR_USERS + 1);

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	double greeted = idle_memory(IDLE_GREETED, NULL);
	double logged_in = idle_memory(IDLE_LOGGED_IN, NULL);
	double tls = idle_memory(IDLE_TLS, ctx);
	SSL_CTX_free(ctx);
	printf("  server memory per idle connection (RSS growth over %d): after the greeting %.1f "
	       "KiB, "
	       "logged in %.1f KiB, POP3S %.1f KiB (target <= 64 KiB)\n",
	       IDLE_CONNECTIONS, greeted, logged_in, tls);

	bench_stop_maild();
	if (!keep)
		bench_rm_tree(workdir);
	else
		printf("  kept %s\n", workdir);
	return 0;
}
