/*
 * Unit tests for the listener framework (node/listener.h): real sockets on
 * loopback, real worker threads, and small in-test services as fixtures
 * (echo, a sink that never reads, a streamer, a flooder, a rejecter).
 * The fixtures exist only here; they are not part of the product.
 *
 * Every client operation is bounded by poll() timeouts, and waits for
 * server state poll listener_active_total() with a deadline, so a broken
 * listener fails a test instead of hanging it. Service hooks run on worker
 * threads and only record into `fx`; all assertions are on the test thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/listener.h"
#include "node/listener_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 3000
#define STREAM_CHUNK (32 * 1024)
#define FLOOD_CHUNK 1024

/* ---- what the fixture services saw (written on worker threads) ---- */

struct fixture {
	pthread_mutex_t lock;
	pthread_t threads[16];
	unsigned n_threads;
	atomic_uint opens, closes, shutdowns, rejects;
	atomic_uint ev_connect, ev_disconnect, ev_refused;
	atomic_size_t max_input_seen;
	atomic_size_t max_pending_seen;
	atomic_uint write_failures;
	atomic_size_t flood_accepted;
};

static struct fixture fx = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void fx_reset(void)
{
	pthread_mutex_lock(&fx.lock);
	fx.n_threads = 0;
	pthread_mutex_unlock(&fx.lock);
	atomic_store(&fx.opens, 0);
	atomic_store(&fx.closes, 0);
	atomic_store(&fx.shutdowns, 0);
	atomic_store(&fx.rejects, 0);
	atomic_store(&fx.ev_connect, 0);
	atomic_store(&fx.ev_disconnect, 0);
	atomic_store(&fx.ev_refused, 0);
	atomic_store(&fx.max_input_seen, 0);
	atomic_store(&fx.max_pending_seen, 0);
	atomic_store(&fx.write_failures, 0);
	atomic_store(&fx.flood_accepted, 0);
}

static void fx_note_thread(void)
{
	pthread_t self = pthread_self();
	pthread_mutex_lock(&fx.lock);
	bool seen = false;
	for (unsigned i = 0; i < fx.n_threads; i++)
		seen = seen || pthread_equal(fx.threads[i], self);
	if (!seen && fx.n_threads < 16)
		fx.threads[fx.n_threads++] = self;
	pthread_mutex_unlock(&fx.lock);
}

static void fx_max(atomic_size_t *slot, size_t v)
{
	size_t cur = atomic_load(slot);
	while (v > cur && !atomic_compare_exchange_weak(slot, &cur, v))
		;
}

static void fx_hook(const char *event, const struct conn_info *info, void *ctx)
{
	(void)info;
	(void)ctx;
	if (strcmp(event, "connect") == 0)
		atomic_fetch_add(&fx.ev_connect, 1);
	else if (strcmp(event, "disconnect") == 0)
		atomic_fetch_add(&fx.ev_disconnect, 1);
	else if (strcmp(event, "refused") == 0)
		atomic_fetch_add(&fx.ev_refused, 1);
}

/* ---- fixture services ---- */

struct fx_state {
	unsigned chunks; /* streamer: chunks written so far */
};

static void *fx_open(struct conn *c, void *ctx)
{
	atomic_fetch_add(&fx.opens, 1);
	fx_note_thread();
	if (ctx != NULL)
		conn_set_user(c, ctx);
	return calloc(1, sizeof(struct fx_state));
}

static void fx_close(struct conn *c, void *state)
{
	(void)c;
	atomic_fetch_add(&fx.closes, 1);
	free(state);
}

/* echo: everything back; a chunk ending in "quit\r\n" closes from inside
 * the read hook */
static void echo_read(struct conn *c, void *state)
{
	struct evbuffer *in = conn_input(c);
	char buf[4096];
	int n;
	(void)state;
	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
		if (conn_write(c, buf, (size_t)n) < 0) {
			atomic_fetch_add(&fx.write_failures, 1);
			return;
		}
		if (n >= 6 && memcmp(buf + n - 6, "quit\r\n", 6) == 0) {
			conn_close(c);
			/* still safe: the close is deferred past this hook */
			conn_write(c, "late\r\n", 6);
			return;
		}
	}
}

static void echo_shutdown(struct conn *c, void *state)
{
	(void)state;
	atomic_fetch_add(&fx.shutdowns, 1);
	conn_write(c, "bye\r\n", 5);
	conn_close(c);
}

static void stubborn_shutdown(struct conn *c, void *state)
{
	(void)c;
	(void)state;
	atomic_fetch_add(&fx.shutdowns, 1);
}

/* sink: never consumes; records how much the listener buffered */
static void sink_read(struct conn *c, void *state)
{
	(void)state;
	fx_max(&fx.max_input_seen, evbuffer_get_length(conn_input(c)));
}

/* streamer: each "g\n" line asks for one 32 KiB chunk; writes only while
 * conn_when_writable() says so, like an IMAP FETCH of a big message */
static void streamer_resume(struct conn *c, void *state);

static void streamer_pump(struct conn *c, struct fx_state *st)
{
	char chunk[STREAM_CHUNK];
	size_t n;
	for (;;) {
		if (conn_when_writable(c, streamer_resume) == 0)
			return;
		char *line = evbuffer_readln(conn_input(c), &n, EVBUFFER_EOL_LF);
		if (line == NULL)
			return;
		free(line);
		memset(chunk, 'a' + (int)(st->chunks % 26), sizeof(chunk));
		st->chunks++;
		if (conn_write(c, chunk, sizeof(chunk)) < 0) {
			atomic_fetch_add(&fx.write_failures, 1);
			return;
		}
		fx_max(&fx.max_pending_seen, conn_output_pending(c));
	}
}

static void streamer_resume(struct conn *c, void *state)
{
	streamer_pump(c, state);
}

static void streamer_read(struct conn *c, void *state)
{
	streamer_pump(c, state);
}

/* flood: writes 1 KiB chunks at open until the output limit refuses */
static void *flood_open(struct conn *c, void *ctx)
{
	char chunk[FLOOD_CHUNK];
	void *state = fx_open(c, ctx);
	memset(chunk, 'f', sizeof(chunk));
	for (int i = 0; i < 1000; i++) {
		if (conn_write(c, chunk, sizeof(chunk)) < 0) {
			atomic_fetch_add(&fx.write_failures, 1);
			break;
		}
		atomic_fetch_add(&fx.flood_accepted, sizeof(chunk));
	}
	return state;
}

/* reject: says why and declines the connection */
static void *reject_open(struct conn *c, void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&fx.rejects, 1);
	conn_write(c, "554 go away\r\n", 13);
	return NULL;
}

/* tlsapi: answers each chunk with what the TLS API says about the
 * connection (a service without TLS: never TLS, no STARTTLS) */
static void tlsapi_read(struct conn *c, void *state)
{
	char reply[96];
	(void)state;
	evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
	int n = snprintf(reply, sizeof(reply), "tls=%d available=%d starttls=%d auth=%d\r\n",
			 conn_is_tls(c), conn_starttls_available(c), conn_starttls(c),
			 conn_plaintext_auth_allowed(c));
	conn_write(c, reply, (size_t)n);
}

#define REFUSE_MSG "421 4.7.0 Too many connections\r\n"

static const struct service_ops echo_ops = {
	.open = fx_open,
	.read = echo_read,
	.close = fx_close,
	.shutdown = echo_shutdown,
	.refuse_message = REFUSE_MSG,
};
static const struct service_ops stubborn_ops = {
	.open = fx_open,
	.read = echo_read,
	.close = fx_close,
	.shutdown = stubborn_shutdown,
};
static const struct service_ops sink_ops = {
	.open = fx_open,
	.read = sink_read,
	.close = fx_close,
};
static const struct service_ops streamer_ops = {
	.open = fx_open,
	.read = streamer_read,
	.close = fx_close,
};
static const struct service_ops flood_ops = {
	.open = flood_open,
	.read = sink_read,
	.close = fx_close,
};
static const struct service_ops tlsapi_ops = {
	.open = fx_open,
	.read = tlsapi_read,
	.close = fx_close,
};
static const struct service_ops reject_ops = {
	.open = reject_open,
	.read = sink_read,
	.close = fx_close,
};

/* ---- client side ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int client_connect(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
		len = sizeof(*s4);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* loopback connects complete from the backlog, without an accept */
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	return fd;
}

static void client_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	uint64_t deadline = now_ms() + IO_TIMEOUT_MS;
	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int left = (int)(deadline - now_ms());
		assert_true(left > 0 && poll(&pfd, 1, left) == 1);
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Reads until want bytes, EOF or timeout. Returns the byte count; *eof_r
 * tells whether EOF (or a reset) ended it. */
static size_t client_read(int fd, char *buf, size_t want, int timeout_ms, bool *eof_r)
{
	size_t got = 0;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	*eof_r = false;
	while (got < want) {
		int left = (int)(deadline - now_ms());
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&pfd, 1, left) != 1)
			break;
		ssize_t n = recv(fd, buf + got, want - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			*eof_r = true;
			break;
		}
		got += (size_t)n;
	}
	return got;
}

/* Expects exactly `want` and then EOF. */
static void client_expect_then_eof(int fd, const char *want)
{
	char buf[256];
	bool eof;
	size_t len = strlen(want);
	size_t got = client_read(fd, buf, sizeof(buf), IO_TIMEOUT_MS, &eof);
	if (got != len || memcmp(buf, want, len) != 0 || !eof)
		fail_msg("got %zu bytes \"%.*s\" eof=%d, want \"%s\" then EOF", got, (int)got, buf,
			 eof, want);
}

static void client_echo(int fd, const char *msg)
{
	char buf[256];
	bool eof;
	size_t len = strlen(msg);
	client_send(fd, msg, len);
	size_t got = client_read(fd, buf, len, IO_TIMEOUT_MS, &eof);
	if (got != len || memcmp(buf, msg, len) != 0)
		fail_msg("echo: got %zu bytes \"%.*s\", want \"%s\"", got, (int)got, buf, msg);
}

static void wait_active(struct listener *l, unsigned want, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	while (listener_active_total(l) != want && now_ms() < deadline)
		usleep(2000);
	if (listener_active_total(l) != want)
		fail_msg("active=%u, want %u", listener_active_total(l), want);
}

static struct listener *start_listener(const struct listener_limits *lim,
				       const struct service_ops *ops, void *ctx, int *port_r)
{
	struct listener *l = NULL;
	const char *error = NULL;
	fx_reset();
	assert_int_equal(listener_create(lim, &l, &error), 0);
	listener_set_event_hook(l, fx_hook, NULL);
	if (ops != NULL)
		assert_int_equal(
			listener_add_service(l, "test", ops, ctx, "127.0.0.1", 0, port_r, &error),
			0);
	assert_int_equal(listener_start(l, &error), 0);
	return l;
}

static void finish_listener(struct listener **l)
{
	listener_drain(*l, 2);
	listener_destroy(l);
	assert_null(*l);
	assert_int_equal(atomic_load(&fx.opens), atomic_load(&fx.closes));
	assert_int_equal(atomic_load(&fx.ev_connect), atomic_load(&fx.ev_disconnect));
}

/* ---- tests ---- */

static void test_addrs_table(void **unused)
{
	struct listener_addrs t;
	struct listener_addr_key a = { .family = 4, .bytes = { 10, 0, 0, 1 } };
	struct listener_addr_key b = { .family = 6, .bytes = { 0x20, 0x01, 0x0d, 0xb8 } };
	(void)unused;

	assert_int_equal(listener_addrs_init(&t), 0);
	static const struct {
		char op; /* a = acquire, r = release */
		int key; /* 0 = a, 1 = b */
		unsigned max;
		int want_ret;
		unsigned want_count;
	} steps[] = {
		{ 'a', 0, 2, 0, 1 }, { 'a', 0, 2, 0, 2 }, { 'a', 0, 2, 1, 2 }, { 'a', 1, 2, 0, 1 },
		{ 'a', 0, 0, 0, 3 }, { 'r', 0, 0, 0, 2 }, { 'r', 0, 0, 0, 1 }, { 'r', 0, 0, 0, 0 },
		{ 'r', 1, 0, 0, 0 }, { 'a', 1, 1, 0, 1 }, { 'a', 1, 1, 1, 1 }, { 'r', 1, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct listener_addr_key *k = steps[i].key == 0 ? &a : &b;
		int ret = 0;
		if (steps[i].op == 'a')
			ret = listener_addrs_acquire(&t, k, steps[i].max);
		else
			listener_addrs_release(&t, k);
		unsigned count = listener_addrs_count(&t, k);
		if (ret != steps[i].want_ret || count != steps[i].want_count)
			fail_msg("step %zu: got ret=%d count=%u, want ret=%d count=%u", i, ret, count,
				 steps[i].want_ret, steps[i].want_count);
	}
	assert_int_equal(listener_addrs_size(&t), 0);

	/* growth past the initial buckets, then everything removed at zero */
	for (unsigned i = 0; i < 5000; i++) {
		struct listener_addr_key k = { .family = 6 };
		memcpy(k.bytes + 12, &i, sizeof(i));
		assert_int_equal(listener_addrs_acquire(&t, &k, 1), 0);
	}
	assert_int_equal(listener_addrs_size(&t), 5000);
	for (unsigned i = 0; i < 5000; i++) {
		struct listener_addr_key k = { .family = 6 };
		memcpy(k.bytes + 12, &i, sizeof(i));
		assert_int_equal(listener_addrs_count(&t, &k), 1);
		listener_addrs_release(&t, &k);
	}
	assert_int_equal(listener_addrs_size(&t), 0);
	listener_addrs_fini(&t);
}

static void test_addr_format(void **unused)
{
	static const struct {
		const char *addr;
		int port;
		const char *want_peer;
		uint8_t want_family;
	} cases[] = {
		{ "192.0.2.7", 25, "192.0.2.7:25", 4 },
		{ "::1", 143, "[::1]:143", 6 },
		{ "2001:db8::5", 65535, "[2001:db8::5]:65535", 6 },
		{ "::ffff:192.0.2.7", 993, "192.0.2.7:993", 4 }, /* mapped: counts as IPv4 */
	};
	(void)unused;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		memset(&ss, 0, sizeof(ss));
		if (strchr(cases[i].addr, ':') != NULL) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)cases[i].port);
			inet_pton(AF_INET6, cases[i].addr, &s6->sin6_addr);
			len = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)cases[i].port);
			inet_pton(AF_INET, cases[i].addr, &s4->sin_addr);
			len = sizeof(*s4);
		}
		struct listener_addr_key key;
		char peer[64];
		assert_int_equal(
			listener_addr_from_sockaddr((struct sockaddr *)&ss, len, &key, peer, sizeof(peer)),
			0);
		if (strcmp(peer, cases[i].want_peer) != 0 || key.family != cases[i].want_family)
			fail_msg("%s: got %s family %u, want %s family %u", cases[i].addr, peer,
				 key.family, cases[i].want_peer, cases[i].want_family);
	}
	/* the mapped and the plain form are one key */
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET, "198.51.100.1", &s4.sin_addr);
	inet_pton(AF_INET6, "::ffff:198.51.100.1", &s6.sin6_addr);
	struct listener_addr_key k4, k6;
	char peer[64];
	listener_addr_from_sockaddr((struct sockaddr *)&s4, sizeof(s4), &k4, peer, sizeof(peer));
	listener_addr_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &k6, peer, sizeof(peer));
	assert_memory_equal(&k4, &k6, sizeof(k4));
	/* IPv6: one key per /64 (one host usually owns the prefix) */
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 }, b = a, c = a;
	inet_pton(AF_INET6, "2001:db8:1:2::5", &a.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:3::5", &c.sin6_addr);
	struct listener_addr_key ka, kb, kc;
	listener_addr_from_sockaddr((struct sockaddr *)&a, sizeof(a), &ka, peer, sizeof(peer));
	listener_addr_from_sockaddr((struct sockaddr *)&b, sizeof(b), &kb, peer, sizeof(peer));
	listener_addr_from_sockaddr((struct sockaddr *)&c, sizeof(c), &kc, peer, sizeof(peer));
	assert_memory_equal(&ka, &kb, sizeof(ka));
	assert_memory_not_equal(&ka, &kc, sizeof(ka));
}

static void test_bind_errors(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct listener *l = NULL;
	const char *error = NULL;
	char want[128];
	int port = -1;
	(void)unused;

	fx_reset();
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	assert_int_equal(l->n_workers, 2);

	assert_int_equal(listener_add_service(l, "x", &echo_ops, NULL, "not-an-ip", 0, NULL, &error),
			 -1);
	assert_non_null(strstr(error, "not-an-ip"));

	/* a port held by a socket without SO_REUSEPORT */
	int other = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_int_equal(bind(other, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(other, 1), 0);
	assert_int_equal(getsockname(other, (struct sockaddr *)&sin, &len), 0);
	int taken = ntohs(sin.sin_port);
	assert_int_equal(
		listener_add_service(l, "x", &echo_ops, NULL, "127.0.0.1", taken, NULL, &error), -1);
	snprintf(want, sizeof(want), "127.0.0.1:%d: %s", taken, strerror(EADDRINUSE));
	if (strstr(error, want) == NULL)
		fail_msg("got \"%s\", want it to contain \"%s\"", error, want);
	close(other);

	/* not an address of this host */
	assert_int_equal(
		listener_add_service(l, "x", &echo_ops, NULL, "192.0.2.1", 0, NULL, &error), -1);
	assert_non_null(strstr(error, "bind 192.0.2.1:0"));

	assert_int_equal(listener_add_service(l, "", &echo_ops, NULL, "127.0.0.1", 0, NULL, &error),
			 -1);
	assert_int_equal(listener_add_service(l, "x", &echo_ops, NULL, "127.0.0.1", 70000, NULL,
					      &error),
			 -1);

	/* two services cannot share an address:port, however it is spelled */
	assert_int_equal(listener_add_service(l, "a", &echo_ops, NULL, "127.0.0.1", 0, &port, &error),
			 0);
	assert_true(port > 0);
	assert_int_equal(
		listener_add_service(l, "b", &echo_ops, NULL, "127.0.0.1", port, NULL, &error), -1);
	assert_non_null(strstr(error, "already service a"));

	assert_int_equal(listener_start(l, &error), 0);
	assert_int_equal(listener_start(l, &error), -1);
	assert_int_equal(listener_add_service(l, "c", &echo_ops, NULL, "127.0.0.1", 0, NULL, &error),
			 -1);
	assert_non_null(strstr(error, "already started"));
	assert_int_equal(listener_drain(l, 1), 0);
	assert_int_equal(listener_drain(l, 1), 0);
	listener_destroy(&l);
	listener_destroy(&l);

	/* threads = 0: one worker per online CPU; never started */
	lim.threads = 0;
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	assert_int_equal(l->n_workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	listener_destroy(&l);
}

static void test_echo_many_two_threads(void **unused)
{
	enum { N = 100 };
	struct listener_limits lim = { .threads = 2, .max_input = 65536, .max_output = 65536 };
	struct listener_service_stats st[2];
	int fds[N];
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	assert_true(port > 0);
	for (int i = 0; i < N; i++)
		fds[i] = client_connect("127.0.0.1", port);
	for (int i = 0; i < N; i++) {
		char msg[64];
		snprintf(msg, sizeof(msg), "hello %d from the test\r\n", i);
		client_echo(fds[i], msg);
	}
	wait_active(l, N, IO_TIMEOUT_MS);
	assert_int_equal(listener_stats(l, st, 2), 1);
	assert_int_equal(st[0].active, N);
	assert_int_equal(st[0].accepted, N);
	assert_int_equal(st[0].port, port);
	/* SO_REUSEPORT spread the connections over both workers */
	pthread_mutex_lock(&fx.lock);
	unsigned threads = fx.n_threads;
	pthread_mutex_unlock(&fx.lock);
	assert_int_equal(threads, 2);
	assert_int_equal(listener_addrs_size(&l->addrs), 1);

	for (int i = 0; i < N; i++)
		close(fds[i]);
	wait_active(l, 0, IO_TIMEOUT_MS);
	assert_int_equal(atomic_load(&fx.opens), N);
	assert_int_equal(atomic_load(&fx.closes), N);
	assert_int_equal(atomic_load(&fx.ev_disconnect), N);
	assert_int_equal(listener_addrs_size(&l->addrs), 0);
	assert_int_equal(listener_drain(l, 1), 0);
	finish_listener(&l);
}

static void test_echo_ipv6(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct listener *l = NULL;
	const char *error = NULL;
	int port = 0;
	(void)unused;

	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	if (probe >= 0)
		close(probe);
	if (!have_v6)
		skip();

	fx_reset();
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	assert_int_equal(listener_add_service(l, "v6", &echo_ops, NULL, "::1", 0, &port, &error), 0);
	assert_int_equal(listener_start(l, &error), 0);
	int fd = client_connect("::1", port);
	client_echo(fd, "over ipv6\r\n");
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

static void count_session(const struct conn_info *info, void *ctx)
{
	(void)info;
	(*(unsigned *)ctx)++;
}

static void test_per_address_limit(void **unused)
{
	struct listener_limits lim = { .threads = 2, .max_per_address = 2 };
	struct listener_service_stats st;
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	int a = client_connect("127.0.0.1", port);
	int b = client_connect("127.0.0.1", port);
	client_echo(a, "a\r\n");
	client_echo(b, "b\r\n");
	wait_active(l, 2, IO_TIMEOUT_MS);

	int c = client_connect("127.0.0.1", port);
	client_expect_then_eof(c, REFUSE_MSG);
	close(c);
	listener_stats(l, &st, 1);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.accepted, 2);
	assert_int_equal(atomic_load(&fx.ev_refused), 1);
	assert_int_equal(listener_active_total(l), 2);

	/* one leaves: its slot is free again */
	close(a);
	wait_active(l, 1, IO_TIMEOUT_MS);
	a = client_connect("127.0.0.1", port);
	client_echo(a, "again\r\n");

	/* SIGHUP raises the limit: applies at the next accept */
	lim.max_per_address = 3;
	listener_set_limits(l, &lim);
	c = client_connect("127.0.0.1", port);
	client_echo(c, "third\r\n");
	unsigned n = 0;
	listener_sessions(l, count_session, &n);
	assert_int_equal(n, 3);
	close(a);
	close(b);
	close(c);
	wait_active(l, 0, IO_TIMEOUT_MS);
	assert_int_equal(listener_addrs_size(&l->addrs), 0);
	finish_listener(&l);
}

static void test_total_limit(void **unused)
{
	struct listener_limits lim = { .threads = 2, .max_connections = 3 };
	struct listener_service_stats st;
	int fds[3];
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	for (int i = 0; i < 3; i++) {
		fds[i] = client_connect("127.0.0.1", port);
		client_echo(fds[i], "x\r\n");
	}
	wait_active(l, 3, IO_TIMEOUT_MS);
	for (int i = 0; i < 2; i++) {
		int extra = client_connect("127.0.0.1", port);
		client_expect_then_eof(extra, REFUSE_MSG);
		close(extra);
	}
	listener_stats(l, &st, 1);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.active, 3);
	assert_int_equal(listener_active_total(l), 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

static void test_idle_timeout(void **unused)
{
	struct listener_limits lim = { .threads = 2, .idle_timeout_sec = 1 };
	int port = 0;
	char buf[16];
	bool eof;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	/* traffic every 300 ms for 1.8 s keeps it open */
	for (int i = 0; i < 6; i++) {
		client_echo(fd, "tick\r\n");
		usleep(300 * 1000);
	}
	uint64_t t0 = now_ms();
	assert_int_equal(client_read(fd, buf, sizeof(buf), 4000, &eof), 0);
	uint64_t waited = now_ms() - t0;
	assert_true(eof);
	if (waited < 600 || waited > 3500)
		fail_msg("idle close after %llu ms, want about 1000", (unsigned long long)waited);
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	assert_int_equal(atomic_load(&fx.closes), 1);
	finish_listener(&l);
}

static void test_input_limit(void **unused)
{
	enum { MAX_INPUT = 4096 };
	struct listener_limits lim = { .threads = 2, .max_input = MAX_INPUT, .idle_timeout_sec = 1 };
	static char blob[64 * 1024];
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &sink_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	memset(blob, 'z', sizeof(blob));
	/* send until the kernel buffers are full (no progress for 300 ms) or
	 * 8 MiB went out: the server must hold no more than MAX_INPUT */
	size_t sent = 0;
	while (sent < 8u * 1024 * 1024) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, 300) != 1)
			break;
		ssize_t n = send(fd, blob, sizeof(blob), MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	assert_true(sent > MAX_INPUT);
	size_t seen = atomic_load(&fx.max_input_seen);
	if (seen != MAX_INPUT)
		fail_msg("server buffered at most %zu bytes, want exactly %d", seen, MAX_INPUT);
	/* reads are paused and no byte moves: that is idle, so it closes */
	wait_active(l, 0, 4000);
	close(fd);
	assert_int_equal(atomic_load(&fx.closes), 1);
	finish_listener(&l);
}

static void test_output_streaming(void **unused)
{
	enum { LINES = 300, MAX_OUTPUT = 256 * 1024 };
	struct listener_limits lim = { .threads = 2, .max_output = MAX_OUTPUT };
	static char want_line[LINES * 2];
	static char got[STREAM_CHUNK];
	int port = 0;
	bool eof;
	(void)unused;

	struct listener *l = start_listener(&lim, &streamer_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	for (int i = 0; i < LINES; i++)
		memcpy(want_line + 2 * i, "g\n", 2);
	client_send(fd, want_line, sizeof(want_line));
	/* not reading for a while: the server stops at its output limit */
	usleep(200 * 1000);
	size_t pending = atomic_load(&fx.max_pending_seen);
	if (pending == 0 || pending > MAX_OUTPUT)
		fail_msg("server queued up to %zu bytes, want 1..%d", pending, MAX_OUTPUT);
	for (int i = 0; i < LINES; i++) {
		size_t n = client_read(fd, got, sizeof(got), 10000, &eof);
		if (n != sizeof(got))
			fail_msg("chunk %d: got %zu bytes eof=%d", i, n, eof);
		char want = (char)('a' + i % 26);
		if (got[0] != want || got[sizeof(got) - 1] != want)
			fail_msg("chunk %d: got '%c', want '%c'", i, got[0], want);
	}
	assert_int_equal(atomic_load(&fx.write_failures), 0);
	assert_true(atomic_load(&fx.max_pending_seen) <= MAX_OUTPUT);
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

static void test_output_limit(void **unused)
{
	enum { MAX_OUTPUT = 16 * 1024 };
	struct listener_limits lim = { .threads = 1, .max_output = MAX_OUTPUT };
	static char buf[64 * 1024];
	int port = 0;
	bool eof;
	(void)unused;

	struct listener *l = start_listener(&lim, &flood_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	size_t n = client_read(fd, buf, sizeof(buf), IO_TIMEOUT_MS, &eof);
	assert_true(eof);
	assert_int_equal(atomic_load(&fx.flood_accepted), MAX_OUTPUT);
	assert_int_equal(atomic_load(&fx.write_failures), 1);
	/* what was accepted was flushed before the close */
	assert_int_equal(n, MAX_OUTPUT);
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	assert_int_equal(atomic_load(&fx.closes), 1);
	finish_listener(&l);
}

static void test_close_paths(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct listener *l = NULL;
	const char *error = NULL;
	int echo_port = 0, reject_port = 0;
	(void)unused;

	fx_reset();
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	listener_set_event_hook(l, fx_hook, NULL);
	assert_int_equal(listener_add_service(l, "echo", &echo_ops, NULL, "127.0.0.1", 0,
					      &echo_port, &error),
			 0);
	assert_int_equal(listener_add_service(l, "reject", &reject_ops, NULL, "127.0.0.1", 0,
					      &reject_port, &error),
			 0);
	assert_int_equal(listener_start(l, &error), 0);

	/* conn_close (and a write after it) from inside the read hook */
	int fd = client_connect("127.0.0.1", echo_port);
	client_send(fd, "quit\r\n", 6);
	client_expect_then_eof(fd, "quit\r\n");
	close(fd);

	/* open declines: its own message is flushed, no close hook is owed */
	fd = client_connect("127.0.0.1", reject_port);
	client_expect_then_eof(fd, "554 go away\r\n");
	close(fd);

	/* the client half-closes: the reply still reaches it */
	fd = client_connect("127.0.0.1", echo_port);
	client_send(fd, "last words\r\n", 12);
	shutdown(fd, SHUT_WR);
	client_expect_then_eof(fd, "last words\r\n");
	close(fd);

	wait_active(l, 0, IO_TIMEOUT_MS);
	assert_int_equal(atomic_load(&fx.opens), 2);
	assert_int_equal(atomic_load(&fx.closes), 2);
	assert_int_equal(atomic_load(&fx.rejects), 1);
	assert_int_equal(atomic_load(&fx.ev_connect), 3);
	listener_drain(l, 1);
	listener_destroy(&l);
	assert_int_equal(atomic_load(&fx.ev_disconnect), 3);
}

struct session_list {
	unsigned n;
	struct conn_info info[8];
};

static void collect_session(const struct conn_info *info, void *ctx)
{
	struct session_list *s = ctx;
	if (s->n < 8)
		s->info[s->n] = *info;
	s->n++;
}

static void test_sessions(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct session_list s = { 0 };
	char peers[3][64];
	int fds[3];
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, "alice", &port);
	time_t t0 = time(NULL);
	for (int i = 0; i < 3; i++) {
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);
		fds[i] = client_connect("127.0.0.1", port);
		client_echo(fds[i], "hi\r\n");
		getsockname(fds[i], (struct sockaddr *)&sin, &len);
		snprintf(peers[i], sizeof(peers[i]), "127.0.0.1:%u", ntohs(sin.sin_port));
	}
	listener_sessions(l, collect_session, &s);
	assert_int_equal(s.n, 3);
	for (int i = 0; i < 3; i++) {
		bool found = false;
		for (unsigned k = 0; k < 3; k++) {
			if (strcmp(s.info[k].peer, peers[i]) != 0)
				continue;
			found = true;
			assert_string_equal(s.info[k].service, "test");
			assert_string_equal(s.info[k].user, "alice");
			assert_true(s.info[k].id != 0);
			assert_true(s.info[k].since >= t0 - 1 && s.info[k].since <= time(NULL));
		}
		if (!found)
			fail_msg("peer %s not listed", peers[i]);
	}
	assert_true(s.info[0].id != s.info[1].id && s.info[1].id != s.info[2].id &&
		    s.info[0].id != s.info[2].id);

	close(fds[1]);
	wait_active(l, 2, IO_TIMEOUT_MS);
	s.n = 0;
	listener_sessions(l, collect_session, &s);
	assert_int_equal(s.n, 2);
	close(fds[0]);
	close(fds[2]);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

static void test_drain(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct listener *l = NULL;
	const char *error = NULL;
	int echo_port = 0, stubborn_port = 0;
	int fds[3];
	char buf[16];
	bool eof;
	(void)unused;

	fx_reset();
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	listener_set_event_hook(l, fx_hook, NULL);
	assert_int_equal(listener_add_service(l, "echo", &echo_ops, NULL, "127.0.0.1", 0,
					      &echo_port, &error),
			 0);
	assert_int_equal(listener_add_service(l, "stubborn", &stubborn_ops, NULL, "127.0.0.1", 0,
					      &stubborn_port, &error),
			 0);
	assert_int_equal(listener_start(l, &error), 0);
	for (int i = 0; i < 3; i++) {
		fds[i] = client_connect("127.0.0.1", echo_port);
		client_echo(fds[i], "hi\r\n");
	}
	int stubborn = client_connect("127.0.0.1", stubborn_port);
	client_echo(stubborn, "hi\r\n");
	wait_active(l, 4, IO_TIMEOUT_MS);

	uint64_t t0 = now_ms();
	assert_int_equal(listener_drain(l, 1), 1);
	uint64_t took = now_ms() - t0;
	if (took < 900 || took > 3000)
		fail_msg("drain took %llu ms, want about 1000", (unsigned long long)took);

	for (int i = 0; i < 3; i++) {
		client_expect_then_eof(fds[i], "bye\r\n");
		close(fds[i]);
	}
	/* force-closed: nothing, then EOF, before listener_destroy */
	assert_int_equal(client_read(stubborn, buf, sizeof(buf), IO_TIMEOUT_MS, &eof), 0);
	assert_true(eof);
	close(stubborn);
	assert_int_equal(atomic_load(&fx.shutdowns), 4);
	assert_int_equal(atomic_load(&fx.closes), 4);
	assert_int_equal(listener_active_total(l), 0);

	struct listener_service_stats st[2];
	assert_int_equal(listener_stats(l, st, 2), 2);
	assert_int_equal(st[0].active + st[1].active, 0);
	assert_int_equal(listener_drain(l, 1), 0);
	finish_listener(&l);
}

static void test_drain_fast_when_all_leave(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	client_echo(fd, "hi\r\n");
	uint64_t t0 = now_ms();
	assert_int_equal(listener_drain(l, 10), 0);
	assert_true(now_ms() - t0 < 3000);
	client_expect_then_eof(fd, "bye\r\n");
	close(fd);
	finish_listener(&l);
}

static void test_stats_ports(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	struct listener *l = NULL;
	struct listener_service_stats st[3];
	const char *error = NULL;
	int p1 = 0, p2 = 0;
	(void)unused;

	fx_reset();
	assert_int_equal(listener_create(&lim, &l, &error), 0);
	assert_int_equal(listener_add_service(l, "smtp", &echo_ops, NULL, "127.0.0.1", 0, &p1,
					      &error),
			 0);
	assert_int_equal(listener_add_service(l, "imap", &echo_ops, NULL, "0.0.0.0", 0, &p2, &error),
			 0);
	assert_true(p1 > 0 && p2 > 0 && p1 != p2);
	assert_int_equal(listener_stats(l, st, 3), 2);
	assert_string_equal(st[0].name, "smtp");
	assert_string_equal(st[0].address, "127.0.0.1");
	assert_int_equal(st[0].port, p1);
	assert_string_equal(st[1].name, "imap");
	assert_string_equal(st[1].address, "0.0.0.0");
	assert_int_equal(st[1].port, p2);
	assert_int_equal(listener_stats(l, st, 1), 1);
	assert_int_equal(listener_start(l, &error), 0);
	int fd = client_connect("127.0.0.1", p2);
	client_echo(fd, "via 0.0.0.0\r\n");
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	listener_stats(l, st, 3);
	assert_int_equal(st[1].accepted, 1);
	assert_int_equal(st[0].accepted, 0);
	finish_listener(&l);
}

static void test_accept_backoff(void **unused)
{
	struct listener_limits lim = { .threads = 1 };
	struct rlimit saved, low;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &echo_ops, NULL, &port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* no descriptor left for the worker's accept: EMFILE */
	int next = dup(fd);
	assert_true(next > fd);
	close(next);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)next;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int ret = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	usleep(300 * 1000);
	unsigned active = listener_active_total(l);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(ret, 0);
	assert_int_equal(active, 0);
	/* the listener backed off instead of spinning, and retries */
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	client_echo(fd, "after the back-off\r\n");
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

static void test_destroy_while_running(void **unused)
{
	struct listener_limits lim = { .threads = 2 };
	int fds[2];
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &stubborn_ops, NULL, &port);
	for (int i = 0; i < 2; i++) {
		fds[i] = client_connect("127.0.0.1", port);
		client_echo(fds[i], "hi\r\n");
	}
	listener_destroy(&l);
	assert_null(l);
	assert_int_equal(atomic_load(&fx.closes), 2);
	assert_int_equal(atomic_load(&fx.shutdowns), 0);
	for (int i = 0; i < 2; i++) {
		client_expect_then_eof(fds[i], "");
		close(fds[i]);
	}
}

static void test_tls_api_without_tls(void **unused)
{
	struct listener_limits lim = {.threads = 1};
	struct listener_tls tls = {.mode = LISTENER_TLS_NONE, .require_tls = true};
	const char *error = NULL;
	char buf[128];
	bool eof;
	int port = 0;
	(void)unused;

	struct listener *l = start_listener(&lim, &tlsapi_ops, NULL, &port);
	int fd = client_connect("127.0.0.1", port);
	client_send(fd, "?\r\n", 3);
	const char *want = "tls=0 available=0 starttls=-1 auth=1\r\n";
	size_t got = client_read(fd, buf, strlen(want), IO_TIMEOUT_MS, &eof);
	if (got != strlen(want) || memcmp(buf, want, got) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", (int)got, buf, want);
	/* require_tls changes live (SIGHUP), even for a running connection */
	assert_int_equal(listener_service_set_tls(l, "test", &tls, &error), 0);
	client_send(fd, "?\r\n", 3);
	want = "tls=0 available=0 starttls=-1 auth=0\r\n";
	got = client_read(fd, buf, strlen(want), IO_TIMEOUT_MS, &eof);
	if (got != strlen(want) || memcmp(buf, want, got) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", (int)got, buf, want);
	/* the mode cannot change while running */
	tls.mode = LISTENER_TLS_STARTTLS;
	assert_int_equal(listener_service_set_tls(l, "test", &tls, &error), -1);
	close(fd);
	wait_active(l, 0, IO_TIMEOUT_MS);
	finish_listener(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addrs_table),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_bind_errors),
		cmocka_unit_test(test_echo_many_two_threads),
		cmocka_unit_test(test_echo_ipv6),
		cmocka_unit_test(test_per_address_limit),
		cmocka_unit_test(test_total_limit),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_input_limit),
		cmocka_unit_test(test_output_streaming),
		cmocka_unit_test(test_output_limit),
		cmocka_unit_test(test_close_paths),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_drain_fast_when_all_leave),
		cmocka_unit_test(test_stats_ports),
		cmocka_unit_test(test_accept_backoff),
		cmocka_unit_test(test_destroy_while_running),
		cmocka_unit_test(test_tls_api_without_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
