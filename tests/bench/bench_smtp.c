/*
 * bench_smtp: durable messages/s accepted by a real maild's SMTP service
 * and delivered to local mailboxes (issue 5's benchmark), next to the raw
 * fsync'd 10 KB creations/s of the same disk measured in the same run.
 *
 *   - 10 KB messages, 20 concurrent connections, one recipient each,
 *     spread round-robin over 1,000 users (made by `mailctl user import`
 *     of a CSV with a pre-hashed password);
 *   - the load generator: one thread, epoll, nonblocking sockets; each
 *     connection pipelines MAIL/RCPT/DATA, sends the message on 354, and
 *     a message counts only when its "250 2.0.0" after the final dot
 *     arrives (maild sends it after the fsync);
 *   - a run stops at MESSAGES messages or SECONDS, whichever first;
 *   - 3 runs, each preceded by the raw rate with 1 and 8 threads (so the
 *     disk's mood and the machine's other load weigh on both alike);
 *     medians, the ratio, and maild's peak RSS (VmHWM) at the end.
 *   Target (issue 5): >= 900 durable deliveries/s, peak RSS < 200 MB.
 * Then outbound relay: a second maild (the sink, its own store and 1,000
 * users of relay.test) is the first one's relayhost; each of 3 runs sends
 * RELAY_MESSAGES messages for relay.test into the first maild's queue and
 * times until the sink has logged every one delivered: messages/s
 * relayed (queue, SMTP client, the sink's durable delivery included).
 *
 * Usage: bench_smtp [--maild PATH] [--messages N] [--seconds S] [--keep]
 * maild and mailctl default to ../bin/ next to this program. Everything
 * lives in a mkdtemp folder in /tmp (the store and the raw files: same
 * disk), removed at the end unless --keep; maild is stopped by its pid.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/password.h"
#include "tests/bench/bench_util.h"

#define RUNS 3
#define SESSIONS 20
#define USERS 1000
#define MESSAGE_SIZE 10240
#define RAW_SECONDS 3.0
#define DOMAIN "bench.test"
#define RELAY_DOMAIN "relay.test"
#define RELAY_MESSAGES 5000

static char workdir[256];
static unsigned long max_messages = 20000;
static double max_seconds = 60.0;
static int port_smtp;
static const char *rcpt_domain = DOMAIN;
static char message[MESSAGE_SIZE + 64]; /* headers and body, then CRLF . CRLF */
static size_t message_len;

/* ---- setup ---- */

static void run_cmd(const char *cmd)
{
	if (system(cmd) != 0)
		bench_die("failed: %s", cmd);
}

static void make_users(const char *mailctl, const char *conf, const char *domain)
{
	char csv[512], cmd[4096], hash[PASSWORD_HASH_MAX];
	const char *error = NULL;
	/* the password is never used: any cost will do, it is stored as is */
	if (password_hash("Bench-Pw-1", PASSWORD_YESCRYPT, 2, hash, sizeof(hash), &error) < 0)
		bench_die("hash: %s", error);
	snprintf(csv, sizeof(csv), "%s/users.csv", workdir);
	FILE *f = fopen(csv, "w");
	if (f == NULL)
		bench_die("%s: %s", csv, strerror(errno));
	fprintf(f, "address,password\n");
	for (unsigned i = 0; i < USERS; i++)
		fprintf(f, "u%u@%s,%s\n", i, domain, hash);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s -c %s domain add %s >/dev/null", mailctl, conf, domain);
	run_cmd(cmd);
	snprintf(cmd, sizeof(cmd), "%s -c %s user import %s >/dev/null", mailctl, conf, csv);
	run_cmd(cmd);
}

static void make_message(void)
{
	int n = snprintf(message, sizeof(message),
			 "From: <sender@example.org>\r\nTo: <rcpt@" DOMAIN ">\r\n"
			 "Subject: bench_smtp\r\nMessage-ID: <bench@example.org>\r\n\r\n");
	size_t len = (size_t)n;
	/* body lines of 78 characters and CRLF; none starts with a dot */
	while (len < MESSAGE_SIZE - 2) {
		size_t line = 0;
		while (line < 76 && len < MESSAGE_SIZE - 2) {
			message[len] = (char)('a' + (len + line) % 26);
			len++, line++;
		}
		message[len++] = '\r';
		message[len++] = '\n';
	}
	if (message[len - 1] != '\n') {
		message[len++] = '\r';
		message[len++] = '\n';
	}
	memcpy(message + len, ".\r\n", 3);
	message_len = len + 3;
}

/* ---- the load generator ---- */

enum step {
	ST_GREETING,
	ST_EHLO,
	ST_MAIL,    /* waiting for MAIL's, RCPT's and DATA's replies */
	ST_DATA,    /* message sent, waiting for the 250 after it */
	ST_QUIT,
};

struct session {
	int fd;
	enum step step;
	unsigned replies; /* of the pipelined MAIL/RCPT/DATA */
	char buf[4096];
	size_t len;
};

struct load {
	int ep;
	double start, deadline;
	unsigned long started, done, next_user;
	struct session s[SESSIONS];
};

static void send_all(int fd, const char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 10000);
			continue;
		}
		if (n < 0)
			bench_die("send: %s", strerror(errno));
		off += (size_t)n;
	}
}

static void session_start(struct load *ld, struct session *s)
{
	int one = 1;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port_smtp),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s->fd < 0)
		bench_die("socket: %s", strerror(errno));
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		bench_die("connect: %s", strerror(errno));
	s->step = ST_GREETING;
	s->len = 0;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(ld->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		bench_die("epoll_ctl: %s", strerror(errno));
}

/* The next message, or QUIT when the run is over. */
static void next_message(struct load *ld, struct session *s)
{
	if (ld->started >= max_messages || bench_now() >= ld->deadline) {
		send_all(s->fd, "QUIT\r\n", 6);
		s->step = ST_QUIT;
		return;
	}
	char cmd[256];
	int n = snprintf(cmd, sizeof(cmd),
			 "MAIL FROM:<sender@example.org> SIZE=%zu\r\nRCPT TO:<u%lu@%s>\r\nDATA\r\n",
			 message_len, ld->next_user, rcpt_domain);
	ld->next_user = (ld->next_user + 1) % USERS;
	ld->started++;
	send_all(s->fd, cmd, (size_t)n);
	s->step = ST_MAIL;
	s->replies = 0;
}

/* Advances one session on what it has read; false when it closed. */
static bool session_step(struct load *ld, struct session *s)
{
	char line[512];
	while (bench_take_line(s->buf, &s->len, line, sizeof(line))) {
		if (strlen(line) >= 4 && line[3] == '-')
			continue; /* a continuation line of a multi-line reply */
		switch (s->step) {
		case ST_GREETING:
			if (strncmp(line, "220", 3) != 0)
				bench_die("greeting: %s", line);
			send_all(s->fd, "EHLO bench.example.org\r\n", 24);
			s->step = ST_EHLO;
			break;
		case ST_EHLO:
			if (strncmp(line, "250", 3) != 0)
				bench_die("EHLO: %s", line);
			next_message(ld, s);
			break;
		case ST_MAIL:
			s->replies++;
			if (s->replies < 3 ? strncmp(line, "250", 3) != 0
					   : strncmp(line, "354", 3) != 0)
				bench_die("reply %u to MAIL/RCPT/DATA: %s", s->replies, line);
			if (s->replies == 3) {
				send_all(s->fd, message, message_len);
				s->step = ST_DATA;
			}
			break;
		case ST_DATA:
			if (strncmp(line, "250 2.0.0", 9) != 0)
				bench_die("after DATA: %s", line);
			ld->done++;
			next_message(ld, s);
			break;
		case ST_QUIT:
			close(s->fd);
			s->fd = -1;
			return false;
		}
	}
	return true;
}

struct run_result {
	unsigned long done;
	double seconds, rate;
};

static struct run_result run_load(void)
{
	struct load *ld = calloc(1, sizeof(*ld));
	if (ld == NULL)
		bench_die("out of memory");
	ld->ep = epoll_create1(EPOLL_CLOEXEC);
	ld->start = bench_now();
	ld->deadline = ld->start + max_seconds;
	unsigned live = SESSIONS;
	for (unsigned i = 0; i < SESSIONS; i++)
		session_start(ld, &ld->s[i]);
	double last_done = ld->start;
	while (live > 0) {
		struct epoll_event evs[SESSIONS];
		int n = epoll_wait(ld->ep, evs, SESSIONS, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("no progress for 10 s (server stalled?)");
		for (int i = 0; i < n; i++) {
			struct session *s = evs[i].data.ptr;
			ssize_t got = recv(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, 0);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0)
				bench_die("connection closed by the server in step %d", (int)s->step);
			s->len += (size_t)got;
			unsigned long before = ld->done;
			if (!session_step(ld, s))
				live--;
			if (ld->done != before)
				last_done = bench_now();
		}
	}
	struct run_result r = {ld->done, last_done - ld->start, 0};
	r.rate = r.seconds > 0 ? (double)r.done / r.seconds : 0;
	close(ld->ep);
	free(ld);
	return r;
}

/* Messages maild logged as sent (status=sent lines): a check that every
 * counted 250 is a delivery maild knows of. */
static unsigned long logged_sent(const char *log)
{
	char line[4096];
	unsigned long n = 0;
	FILE *f = fopen(log, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "[smtp] id=") != NULL && strstr(line, " status=sent ") != NULL)
			n++;
	if (f != NULL)
		fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	char maild[1024], mailctl[1024], store_dir[512], conf[512], log[512], services[1024];
	char raw_dir[512];
	bool keep = false;

	bench_name = "bench_smtp";
	char *self = strdup(argv[0]);
	snprintf(maild, sizeof(maild), "%s/../bin/maild", dirname(self));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--maild") == 0 && i + 1 < argc)
			snprintf(maild, sizeof(maild), "%s", argv[++i]);
		else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
			max_messages = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			max_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else
			bench_die("usage: bench_smtp [--maild PATH] [--messages N] [--seconds S] "
				  "[--keep]");
	}
	free(self);
	char *copy = strdup(maild);
	snprintf(mailctl, sizeof(mailctl), "%s/mailctl", dirname(copy));
	free(copy);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(workdir, sizeof(workdir), "/tmp/bench-smtp-XXXXXX");
	if (mkdtemp(workdir) == NULL)
		bench_die("mkdtemp: %s", strerror(errno));
	snprintf(store_dir, sizeof(store_dir), "%s/store", workdir);
	snprintf(conf, sizeof(conf), "%s/maild.conf", workdir);
	snprintf(log, sizeof(log), "%s/maild.log", workdir);
	mkdir(store_dir, 0750);
	make_message();

	double t0 = bench_now();
	port_smtp = bench_free_port();
	snprintf(services, sizeof(services),
		 "  smtp = { address = \"127.0.0.1\"; port = %d; };\n"
		 "  submission = { enabled = false; }; smtps = { enabled = false; };\n"
		 "  imap = { enabled = false; }; imaps = { enabled = false; };\n"
		 "  pop3 = { enabled = false; }; pop3s = { enabled = false; };\n"
		 "  http = { enabled = false; };\n",
		 port_smtp);
	bench_write_conf(conf, workdir, store_dir, services);
	/* the relay target first, so that the first maild's relayhost answers */
	char sink_dir[512], sink_store[600], sink_conf[600], sink_log[600], sink_services[1024];
	snprintf(sink_dir, sizeof(sink_dir), "%s/sink", workdir);
	snprintf(sink_store, sizeof(sink_store), "%s/store", sink_dir);
	snprintf(sink_conf, sizeof(sink_conf), "%s/maild.conf", sink_dir);
	snprintf(sink_log, sizeof(sink_log), "%s/maild.log", sink_dir);
	mkdir(sink_dir, 0750);
	mkdir(sink_store, 0750);
	int port_sink = bench_free_port();
	snprintf(sink_services, sizeof(sink_services),
		 "  smtp = { address = \"127.0.0.1\"; port = %d; };\n"
		 "  submission = { enabled = false; }; smtps = { enabled = false; };\n"
		 "  imap = { enabled = false; }; imaps = { enabled = false; };\n"
		 "  pop3 = { enabled = false; }; pop3s = { enabled = false; };\n"
		 "  http = { enabled = false; };\n",
		 port_sink);
	bench_write_conf(sink_conf, sink_dir, sink_store, sink_services);
	make_users(mailctl, sink_conf, RELAY_DOMAIN);
	bench_start_maild(maild, sink_conf, sink_log, port_sink);
	bench_sink_pid = bench_maild_pid;
	FILE *cf = fopen(conf, "a");
	if (cf == NULL)
		bench_die("%s: %s", conf, strerror(errno));
	fprintf(cf,
		"queue = { relayhost = \"[127.0.0.1]:%d\"; max_deliveries = 64; "
		"destination_concurrency = 32; };\n",
		port_sink);
	fclose(cf);
	make_users(mailctl, conf, DOMAIN);
	bench_start_maild(maild, conf, log, port_smtp);
	printf("bench_smtp: %d users, %d connections, %zu-byte messages, up to %lu messages or "
	       "%.0f s per run; maild pid %d (setup %.1f s), work in %s\n",
	       USERS, SESSIONS, message_len - 3, max_messages, max_seconds, (int)bench_maild_pid,
	       bench_now() - t0, workdir);

	double raw1[RUNS], raw8[RUNS], rate[RUNS], ratio[RUNS];
	unsigned long total = 0;
	for (int r = 0; r < RUNS; r++) {
		snprintf(raw_dir, sizeof(raw_dir), "%s/raw%d-1", workdir, r);
		raw1[r] = bench_raw_fsync_rate(raw_dir, 1, RAW_SECONDS);
		snprintf(raw_dir, sizeof(raw_dir), "%s/raw%d-8", workdir, r);
		raw8[r] = bench_raw_fsync_rate(raw_dir, 8, RAW_SECONDS);
		struct run_result res = run_load();
		total += res.done;
		rate[r] = res.rate;
		ratio[r] = raw8[r] > 0 ? res.rate / raw8[r] : 0;
		printf("  run %d: %lu messages in %.1f s%s = %.0f durable deliveries/s; raw %.0f / "
		       "%.0f creations/s (1 / 8 threads)\n",
		       r + 1, res.done, res.seconds,
		       res.done < max_messages ? " (stopped by the time limit)" : "", res.rate,
		       raw1[r], raw8[r]);
	}
	long hwm = bench_proc_kib(bench_maild_pid, "VmHWM");
	long rss = bench_proc_kib(bench_maild_pid, "VmRSS");
	unsigned long sent = logged_sent(log);
	double m = bench_median(rate, RUNS), m1 = bench_median(raw1, RUNS);
	double m8 = bench_median(raw8, RUNS);
	printf("raw fsync'd 10 KB creations/s     1 thread %6.0f   8 threads %6.0f\n", m1, m8);
	printf("durable SMTP deliveries/s (median) %6.0f   = %.2f x raw 1 thread, %.2f x raw 8 "
	       "threads (median of per-run ratios %.2f); target >= 900\n",
	       m, m / m1, m / m8, bench_median(ratio, RUNS));
	printf("maild peak RSS (VmHWM) %.1f MB, RSS now %.1f MB; target < 200 MB\n", hwm / 1024.0,
	       rss / 1024.0);
	printf("check: %lu messages answered 250 2.0.0, maild logged %lu as sent\n", total, sent);

	/* outbound relay through the queue to the sink */
	double relay[RUNS], accept[RUNS];
	unsigned long relayed = 0;
	rcpt_domain = RELAY_DOMAIN;
	max_messages = RELAY_MESSAGES;
	for (int r = 0; r < RUNS; r++) {
		double start = bench_now();
		struct run_result res = run_load();
		relayed += res.done;
		accept[r] = res.rate;
		double limit = bench_now() + 300;
		while (logged_sent(sink_log) < relayed && bench_now() < limit)
			usleep(100000);
		unsigned long at_sink = logged_sent(sink_log);
		if (at_sink < relayed)
			bench_die("relay run %d: the sink has %lu of %lu messages after 300 s", r + 1,
				  at_sink, relayed);
		relay[r] = (double)res.done / (bench_now() - start);
		printf("  relay run %d: %lu messages queued at %.0f/s, all delivered by the sink in "
		       "%.1f s = %.0f relayed/s\n",
		       r + 1, res.done, res.rate, bench_now() - start, relay[r]);
	}
	printf("outbound relay messages/s (median) %6.0f (accepted into the queue at %.0f/s); "
	       "maild peak RSS now %.1f MB\n",
	       bench_median(relay, RUNS), bench_median(accept, RUNS),
	       bench_proc_kib(bench_maild_pid, "VmHWM") / 1024.0);
	bench_stop_maild();
	if (!keep)
		bench_rm_tree(workdir);
	else
		printf("  kept %s\n", workdir);
	return sent == total ? 0 : 1;
}
