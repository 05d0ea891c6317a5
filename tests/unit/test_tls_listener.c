/*
 * TLS on the listener (node/listener.h, listener_tls.c) with real sockets,
 * real worker threads and an in-process OpenSSL client: implicit TLS,
 * STARTTLS with pipelined plaintext injected after the command
 * (CVE-2011-0411: the server must never see it), old protocol versions
 * refused, SNI choosing the domain's certificate, session resumption,
 * the handshake timeout, garbage instead of a ClientHello, services
 * without a certificate, client certificates, "require TLS", bulk
 * transfer through the TLS watermarks, and drain.
 *
 * The fixture service speaks a tiny line protocol (client lines in, one
 * reply line each): STARTTLS -> "OK" then the handshake; INFO -> the TLS
 * details from conn_info(); CAPA -> what would be advertised; AUTH ->
 * what require_tls allows; QUIT -> "BYE" and close; anything else is
 * echoed. It exists only in this test program.
 *
 * The same program is the test-only TLS server for the integration tests
 * (tests/integration/test_tls_listener.py, openssl s_client) and for
 * `make audit` (testssl.sh): `test_tls_listener --serve STORE PORTFILE`
 * serves the fixture protocol on two loopback ports, "implicit" and
 * "starttls", with the certificates of STORE, writes the ports to
 * PORTFILE, reloads the certificates on SIGHUP and drains on SIGTERM.
 * maild itself never listens on a service without a protocol engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/listener.h"
#include "node/log.h"
#include "node/tls.h"
#include "node/tls_cert.h"
#include "node/tls_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define IO_TIMEOUT_SEC 5

/* ---- what the fixture saw (worker threads write, the test reads) ---- */

static struct {
	pthread_mutex_t lock;
	struct textbuf lines; /* "tls:LINE\n" or "plain:LINE\n" for every line read */
	atomic_uint opens, closes, opened_with_tls, shutdowns;
} fx = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void fx_reset(void)
{
	pthread_mutex_lock(&fx.lock);
	textbuf_free(&fx.lines);
	pthread_mutex_unlock(&fx.lock);
	atomic_store(&fx.opens, 0);
	atomic_store(&fx.closes, 0);
	atomic_store(&fx.opened_with_tls, 0);
	atomic_store(&fx.shutdowns, 0);
}

static bool fx_saw(const char *needle)
{
	pthread_mutex_lock(&fx.lock);
	bool seen = strstr(textbuf_str(&fx.lines), needle) != NULL;
	pthread_mutex_unlock(&fx.lock);
	return seen;
}

/* ---- the fixture line protocol ---- */

struct line_state {
	bool stop; /* set by STARTTLS and QUIT: the rest of this read is not ours */
};

static void line_reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_reply(struct conn *c, const char *fmt, ...)
{
	struct textbuf t = TEXTBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	textbuf_vprintf(&t, fmt, ap);
	va_end(ap);
	textbuf_puts(&t, "\r\n");
	conn_write(c, t.data, t.len);
	textbuf_free(&t);
}

static void line_command(struct conn *c, struct line_state *st, const char *line)
{
	const struct conn_info *info = conn_info(c);
	pthread_mutex_lock(&fx.lock);
	textbuf_printf(&fx.lines, "%s:%s\n", conn_is_tls(c) ? "tls" : "plain", line);
	pthread_mutex_unlock(&fx.lock);

	if (strcmp(line, "STARTTLS") == 0) {
		if (!conn_starttls_available(c)) {
			line_reply(c, "NO tls not available");
			return;
		}
		line_reply(c, "OK");
		st->stop = true; /* the contract: nothing after STARTTLS is ours */
		conn_starttls(c);
	} else if (strcmp(line, "INFO") == 0) {
		line_reply(
		    c, "INFO tls=%d protocol=%s cipher=%s sni=%s cert=%s resumed=%d client=%s",
		    info->tls, info->tls_protocol, info->tls_cipher,
		    info->tls_sni[0] ? info->tls_sni : "-",
		    info->tls_certificate[0] ? info->tls_certificate : "-", info->tls_resumed,
		    info->tls_client_subject[0] ? info->tls_client_subject : "-");
	} else if (strcmp(line, "CAPA") == 0) {
		line_reply(c, "CAPA%s%s", conn_starttls_available(c) ? " STARTTLS" : "",
			   conn_plaintext_auth_allowed(c) ? " AUTH" : "");
	} else if (strcmp(line, "AUTH") == 0) {
		if (conn_plaintext_auth_allowed(c))
			line_reply(c, "OK authenticated");
		else
			line_reply(c, "NO plaintext authentication requires TLS");
	} else if (strcmp(line, "QUIT") == 0) {
		line_reply(c, "BYE");
		st->stop = true;
		conn_close(c);
	} else {
		line_reply(c, "%s", line);
	}
}

static void line_resume(struct conn *c, void *state);

static void line_pump(struct conn *c, struct line_state *st)
{
	while (!st->stop) {
		if (conn_when_writable(c, line_resume) == 0)
			return;
		size_t n;
		char *line = evbuffer_readln(conn_input(c), &n, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			return;
		line_command(c, st, line);
		free(line);
	}
	st->stop = false;
}

static void line_resume(struct conn *c, void *state)
{
	line_pump(c, state);
}

static void *line_open(struct conn *c, void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&fx.opens, 1);
	if (conn_info(c)->tls)
		atomic_fetch_add(&fx.opened_with_tls, 1);
	return calloc(1, sizeof(struct line_state));
}

static void line_read(struct conn *c, void *state)
{
	line_pump(c, state);
}

static void line_close(struct conn *c, void *state)
{
	(void)c;
	atomic_fetch_add(&fx.closes, 1);
	free(state);
}

static void line_shutdown(struct conn *c, void *state)
{
	(void)state;
	atomic_fetch_add(&fx.shutdowns, 1);
	line_reply(c, "BYE draining");
	conn_close(c);
}

static const struct service_ops line_ops = {
	.open = line_open,
	.read = line_read,
	.close = line_close,
	.shutdown = line_shutdown,
	.refuse_message = "NO too many connections\r\n",
};

/* ---- server setup ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct server {
	char store[64];
	struct tls_server *ts;
	struct listener *l;
	int implicit_port, starttls_port, bare_port;
};

static void store_cert(const char *store, const char *name, const char *names_csv)
{
	struct tls_names names;
	struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT;
	const char *error = NULL;
	assert_int_equal(tls_names_parse(names_csv, &names, &error), 0);
	assert_int_equal(
	    tls_cert_generate(&names, TLS_KEY_P256, 30, time(NULL), &crt, &key, &error), 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_CERT, name, crt.data, crt.len, &error),
			 0);
	assert_int_equal(tls_store_write(store, TLS_STORE_KEY, name, key.data, key.len, &error), 0);
	tls_names_free(&names);
	textbuf_free(&crt);
	tls_wipe(&key);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A listener with three services: implicit TLS, STARTTLS (require_tls),
 * and "bare", a STARTTLS service whose certificate assignment is missing
 * when assignments lack a default. */
static void server_start(struct server *s, const struct listener_limits *lim,
			 const struct tls_settings *settings, const char *assignments)
{
	const char *error = NULL;
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	struct tls_settings defaults;
	char path[128];

	fx_reset();
	memset(s, 0, sizeof(*s));
	snprintf(s->store, sizeof(s->store), "/tmp/cm-tlsl-XXXXXX");
	assert_non_null(mkdtemp(s->store));
	store_cert(s->store, "main", "mail.example.test,localhost");
	store_cert(s->store, "other", "mail.other.test");
	snprintf(path, sizeof(path), "%s/tls/assignments", s->store);
	write_file(path,
		   assignments != NULL ? assignments : "default main\ndomain other.test other\n");
	if (settings == NULL) {
		tls_settings_defaults(&defaults);
		defaults.handshake_timeout = 2;
		settings = &defaults;
	}
	assert_int_equal(tls_server_create(settings, s->store, &s->ts, &error), 0);
	if (tls_server_reload(s->ts, &summary, &errors) < 0)
		fail_msg("reload: %s", textbuf_str(&errors));
	assert_int_equal(listener_create(lim, &s->l, &error), 0);
	listener_set_tls_server(s->l, s->ts);
	struct listener_tls implicit = { .mode = LISTENER_TLS_IMPLICIT,
					.handshake_timeout_sec = settings->handshake_timeout};
	struct listener_tls starttls = { .mode = LISTENER_TLS_STARTTLS,
					.require_tls = true,
					.handshake_timeout_sec = settings->handshake_timeout};
	assert_int_equal(listener_add_service(s->l, "implicit", &line_ops, NULL, "127.0.0.1", 0,
					      &s->implicit_port, &error),
			 0);
	assert_int_equal(listener_add_service(s->l, "starttls", &line_ops, NULL, "127.0.0.1", 0,
					      &s->starttls_port, &error),
			 0);
	assert_int_equal(listener_service_set_tls(s->l, "implicit", &implicit, &error), 0);
	assert_int_equal(listener_service_set_tls(s->l, "starttls", &starttls, &error), 0);
	assert_int_equal(listener_start(s->l, &error), 0);
	/* the mode is fixed once running; require_tls is not */
	struct listener_tls none = { .mode = LISTENER_TLS_NONE };
	assert_int_equal(listener_service_set_tls(s->l, "implicit", &none, &error), -1);
	assert_non_null(strstr(error, "only on restart"));
	assert_int_equal(listener_service_set_tls(s->l, "nosuch", &none, &error), -1);
	textbuf_free(&summary);
	textbuf_free(&errors);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void wait_active(struct listener *l, unsigned want)
{
	uint64_t deadline = now_ms() + IO_TIMEOUT_SEC * 1000;
	while (listener_active_total(l) != want && now_ms() < deadline)
		usleep(2000);
	if (listener_active_total(l) != want)
		fail_msg("active=%u, want %u", listener_active_total(l), want);
}

static void server_stop(struct server *s)
{
	listener_drain(s->l, 2);
	listener_destroy(&s->l);
	tls_server_destroy(&s->ts);
	assert_int_equal(atomic_load(&fx.opens), atomic_load(&fx.closes));
	nftw(s->store, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the client ---- */

struct client {
	int fd;
	SSL *ssl;
};

static void client_connect(struct client *cl, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	cl->ssl = NULL;
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
}

static SSL_CTX *client_ctx(int min_version, int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (min_version != 0) {
		/* offer what the test asks for, however old */
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
		SSL_CTX_set_min_proto_version(ctx, min_version);
	}
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

/* 1 when the handshake succeeded, 0 when it failed. */
static int client_tls(struct client *cl, SSL_CTX *ctx, const char *sni, SSL_SESSION *resume)
{
	cl->ssl = SSL_new(ctx);
	assert_non_null(cl->ssl);
	SSL_set_fd(cl->ssl, cl->fd);
	if (sni != NULL)
		SSL_set_tlsext_host_name(cl->ssl, sni);
	if (resume != NULL)
		SSL_set_session(cl->ssl, resume);
	int ok = SSL_connect(cl->ssl) == 1;
	ERR_clear_error();
	return ok;
}

static void client_send(struct client *cl, const char *text)
{
	size_t len = strlen(text);
	if (cl->ssl != NULL)
		assert_int_equal(SSL_write(cl->ssl, text, (int)len), (int)len);
	else
		assert_int_equal(send(cl->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* One line without its CRLF; returns false on EOF, error or timeout.
 * Plaintext is read a byte at a time so that nothing of a later TLS
 * handshake is consumed. */
static bool client_line(struct client *cl, char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		char ch;
		int r = cl->ssl != NULL ? SSL_read(cl->ssl, &ch, 1) : (int)recv(cl->fd, &ch, 1, 0);
		if (r <= 0) {
			ERR_clear_error();
			buf[n] = '\0';
			return false;
		}
		if (ch == '\n') {
			if (n > 0 && buf[n - 1] == '\r')
				n--;
			buf[n] = '\0';
			return true;
		}
		buf[n++] = ch;
	}
	buf[n] = '\0';
	return true;
}

static void client_expect(struct client *cl, const char *send_line, const char *want_prefix)
{
	char got[1024];
	if (send_line != NULL) {
		char line[1024];
		snprintf(line, sizeof(line), "%s\r\n", send_line);
		client_send(cl, line);
	}
	if (!client_line(cl, got, sizeof(got)) ||
	    strncmp(got, want_prefix, strlen(want_prefix)) != 0)
		fail_msg("after \"%s\": got \"%s\", want \"%s...\"", send_line ? send_line : "-",
			 got, want_prefix);
}

/* Connects to the implicit service, or to the STARTTLS one and says
 * STARTTLS, and completes the handshake; a failed one fails the test. */
static void client_start(struct client *cl, const struct server *s, bool starttls, SSL_CTX *ctx,
			 const char *sni, SSL_SESSION *resume)
{
	client_connect(cl, starttls ? s->starttls_port : s->implicit_port);
	if (starttls)
		client_expect(cl, "STARTTLS", "OK");
	assert_true(client_tls(cl, ctx, sni, resume));
}

/* true when the server closed (EOF or reset) within the timeout */
static bool client_closed(struct client *cl)
{
	char ch;
	int r = cl->ssl != NULL ? SSL_read(cl->ssl, &ch, 1) : (int)recv(cl->fd, &ch, 1, 0);
	if (r > 0)
		return false;
	if (cl->ssl != NULL) {
		int err = SSL_get_error(cl->ssl, r);
		ERR_clear_error();
		return err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL ||
		       err == SSL_ERROR_SSL;
	}
	return r == 0 || errno == ECONNRESET;
}

static void client_close(struct client *cl)
{
	if (cl->ssl != NULL) {
		SSL_shutdown(cl->ssl); /* keeps the session resumable on both sides */
		ERR_clear_error();
		SSL_free(cl->ssl);
		cl->ssl = NULL;
	}
	close(cl->fd);
	cl->fd = -1;
}

static void client_info(struct client *cl, char *buf, size_t size)
{
	client_send(cl, "INFO\r\n");
	assert_true(client_line(cl, buf, size));
	assert_true(strncmp(buf, "INFO ", 5) == 0);
}

static void peer_cn(struct client *cl, char *cn, size_t size)
{
	cn[0] = '\0';
	X509 *peer = SSL_get0_peer_certificate(cl->ssl);
	assert_non_null(peer);
	X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)size);
}

/* ---- tests ---- */

struct session_seen {
	unsigned n;
	struct conn_info info;
};

static void collect(const struct conn_info *i, void *ctx)
{
	struct session_seen *seen = ctx;
	seen->info = *i;
	seen->n++;
}

static void test_implicit_round_trip(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	struct client cl;
	char info[1024];
	server_start(&s, &lim, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);

	client_start(&cl, &s, false, ctx, "mail.example.test", NULL);
	client_expect(&cl, "hello over tls", "hello over tls");
	client_info(&cl, info, sizeof(info));
	if (strstr(info, "tls=1 protocol=TLSv1.3 cipher=TLS_") == NULL ||
	    strstr(info, "sni=mail.example.test cert=main resumed=0 client=-") == NULL)
		fail_msg("got \"%s\"", info);
	/* the engine was opened after the handshake, with the details known */
	assert_int_equal(atomic_load(&fx.opened_with_tls), 1);
	/* the same details for `who is connected` */
	struct session_seen seen = { 0 };
	listener_sessions(s.l, collect, &seen);
	assert_int_equal(seen.n, 1);
	assert_true(seen.info.tls);
	assert_string_equal(seen.info.tls_protocol, "TLSv1.3");
	assert_string_equal(seen.info.tls_sni, "mail.example.test");
	client_expect(&cl, "QUIT", "BYE");
	assert_true(client_closed(&cl));
	client_close(&cl);
	wait_active(s.l, 0);
	assert_true(fx_saw("tls:hello over tls\n"));
	SSL_CTX_free(ctx);
	server_stop(&s);
}

static void test_starttls_discards_injected_plaintext(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	struct client cl;
	char info[1024];
	server_start(&s, &lim, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);

	client_connect(&cl, s.starttls_port);
	/* before TLS: STARTTLS offered, plaintext authentication refused */
	client_send(&cl, "CAPA\r\n");
	char line[256];
	assert_true(client_line(&cl, line, sizeof(line)));
	assert_string_equal(line, "CAPA STARTTLS");
	client_expect(&cl, "AUTH", "NO plaintext authentication requires TLS");
	client_info(&cl, info, sizeof(info));
	assert_non_null(strstr(info, "tls=0"));
	/* the attack: a command pipelined behind STARTTLS in one segment */
	client_send(&cl, "STARTTLS\r\nINJECTED\r\n");
	client_expect(&cl, NULL, "OK");
	assert_true(client_tls(&cl, ctx, NULL, NULL));
	client_expect(&cl, "PING", "PING"); /* not "INJECTED" */
	client_expect(&cl, "CAPA", "CAPA AUTH");
	client_expect(&cl, "AUTH", "OK authenticated");
	client_expect(&cl, "STARTTLS", "NO tls not available");
	client_info(&cl, info, sizeof(info));
	assert_non_null(strstr(info, "tls=1 protocol=TLSv1.3"));
	client_close(&cl);
	wait_active(s.l, 0);
	assert_true(fx_saw("plain:STARTTLS\n"));
	assert_true(fx_saw("tls:PING\n"));
	if (fx_saw("INJECTED"))
		fail_msg("the server read the injected command");
	SSL_CTX_free(ctx);
	server_stop(&s);
}

static void test_starttls_plaintext_after_ok_fails_handshake(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 1 };
	struct server s;
	struct client cl;
	server_start(&s, &lim, NULL, NULL);
	client_connect(&cl, s.starttls_port);
	client_expect(&cl, "STARTTLS", "OK");
	/* plaintext where the ClientHello belongs: no fallback, just a close */
	client_send(&cl, "INJECTED LATER\r\n");
	assert_true(client_closed(&cl));
	client_close(&cl);
	wait_active(s.l, 0);
	assert_false(fx_saw("INJECTED"));
	server_stop(&s);
}

static void test_old_protocols_refused(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	struct client cl;
	server_start(&s, &lim, NULL, NULL);
	static const struct {
		int version;
		bool want_ok;
	} cases[] = {
		{ TLS1_VERSION, false },
		{ TLS1_1_VERSION, false },
		{ TLS1_2_VERSION, true },
		{ TLS1_3_VERSION, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *ctx = client_ctx(cases[i].version, cases[i].version);
		client_connect(&cl, s.implicit_port);
		int ok = client_tls(&cl, ctx, NULL, NULL);
		if (ok != cases[i].want_ok)
			fail_msg("version 0x%x: handshake %s", cases[i].version,
				 ok ? "succeeded" : "failed");
		if (ok)
			client_expect(&cl, "x", "x");
		client_close(&cl);
		SSL_CTX_free(ctx);
	}
	wait_active(s.l, 0);
	/* failed handshakes never reached the engine */
	assert_int_equal(atomic_load(&fx.opens), 2);
	server_stop(&s);
}

static void test_sni_picks_certificate(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	server_start(&s, &lim, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);
	static const struct {
		const char *sni;
		bool starttls;
		const char *want_cn;
		const char *want_cert;
	} cases[] = {
		{ NULL, false, "mail.example.test", "main" },
		{ "mail.other.test", false, "mail.other.test", "other" },
		{ "imap.other.test", false, "mail.other.test", "other" },
		{ "unknown.test", false, "mail.example.test", "main" },
		{ "mail.other.test", true, "mail.other.test", "other" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client cl;
		char cn[256], info[1024], want[128];
		client_start(&cl, &s, cases[i].starttls, ctx, cases[i].sni, NULL);
		peer_cn(&cl, cn, sizeof(cn));
		if (strcmp(cn, cases[i].want_cn) != 0)
			fail_msg("sni %s: certificate %s, want %s",
				 cases[i].sni ? cases[i].sni : "-", cn, cases[i].want_cn);
		client_info(&cl, info, sizeof(info));
		snprintf(want, sizeof(want), "cert=%s ", cases[i].want_cert);
		assert_non_null(strstr(info, want));
		client_close(&cl);
	}
	wait_active(s.l, 0);
	SSL_CTX_free(ctx);
	server_stop(&s);
}

static void test_session_resumption(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	server_start(&s, &lim, NULL, NULL);
	static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	for (size_t v = 0; v < 2; v++) {
		SSL_CTX *ctx = client_ctx(0, versions[v]);
		struct client cl;
		char info[1024];
		client_start(&cl, &s, false, ctx, "mail.example.test", NULL);
		client_expect(&cl, "first", "first"); /* TLS 1.3 tickets arrive by now */
		SSL_SESSION *sess = SSL_get1_session(cl.ssl);
		client_close(&cl);
		for (int round = 0; round < 2; round++) {
			client_start(&cl, &s, round == 1, ctx, "mail.example.test", sess);
			if (SSL_session_reused(cl.ssl) != 1)
				fail_msg("version 0x%x round %d: not resumed", versions[v], round);
			client_info(&cl, info, sizeof(info));
			assert_non_null(strstr(info, "resumed=1"));
			client_close(&cl);
		}
		SSL_SESSION_free(sess);
		SSL_CTX_free(ctx);
	}
	wait_active(s.l, 0);
	server_stop(&s);
}

static void test_handshake_timeout_and_garbage(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 1 };
	struct server s;
	struct client cl;
	server_start(&s, &lim, NULL, NULL);

	/* silence: closed by the handshake timeout (2 s here) */
	client_connect(&cl, s.implicit_port);
	uint64_t t0 = now_ms();
	assert_true(client_closed(&cl));
	uint64_t took = now_ms() - t0;
	if (took < 1500 || took > 4500)
		fail_msg("closed after %llu ms, want about 2000", (unsigned long long)took);
	client_close(&cl);

	/* the same after STARTTLS */
	client_connect(&cl, s.starttls_port);
	client_expect(&cl, "STARTTLS", "OK");
	assert_true(client_closed(&cl));
	client_close(&cl);

	/* plaintext where a ClientHello belongs */
	client_connect(&cl, s.implicit_port);
	client_send(&cl, "GET / HTTP/1.0\r\n\r\n");
	assert_true(client_closed(&cl));
	client_close(&cl);
	wait_active(s.l, 0);
	/* the implicit engine never opened; the STARTTLS one did, once */
	assert_int_equal(atomic_load(&fx.opens), 1);
	server_stop(&s);
}

static void test_no_certificate(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 1 };
	struct server s;
	struct client cl;
	/* only the implicit service has a certificate */
	server_start(&s, &lim, NULL, "service implicit main\n");
	client_connect(&cl, s.starttls_port);
	client_send(&cl, "CAPA\r\n");
	char line[128];
	assert_true(client_line(&cl, line, sizeof(line)));
	assert_string_equal(line, "CAPA"); /* neither STARTTLS nor AUTH */
	client_expect(&cl, "STARTTLS", "NO tls not available");
	client_expect(&cl, "still plain", "still plain");
	client_close(&cl);

	/* no certificate for an implicit service: closed at once */
	assert_int_equal(tls_server_has_certificate(s.ts, "implicit"), 1);
	char path[128];
	snprintf(path, sizeof(path), "%s/tls/assignments", s.store);
	write_file(path, "service starttls main\n");
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	assert_int_equal(tls_server_reload(s.ts, &summary, &errors), 0);
	client_connect(&cl, s.implicit_port);
	assert_true(client_closed(&cl));
	client_close(&cl);
	/* and STARTTLS appears on the other without a restart */
	client_connect(&cl, s.starttls_port);
	client_expect(&cl, "CAPA", "CAPA STARTTLS");
	client_close(&cl);
	wait_active(s.l, 0);
	textbuf_free(&summary);
	textbuf_free(&errors);
	server_stop(&s);
}

static void test_client_certificate_recorded(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 1 };
	struct tls_settings settings;
	struct server s;
	struct client cl;
	char info[1024];
	tls_settings_defaults(&settings);
	settings.request_client_certificate = true;
	server_start(&s, &lim, &settings, NULL);

	struct tls_names names;
	struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT;
	const char *error = NULL;
	assert_int_equal(tls_names_parse("client.example.test", &names, &error), 0);
	assert_int_equal(tls_cert_generate(&names, TLS_KEY_P256, 5, time(NULL), &crt, &key, &error),
			 0);
	BIO *cb = BIO_new_mem_buf(crt.data, (int)crt.len),
	    *kb = BIO_new_mem_buf(key.data, (int)key.len);
	X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pk), 1);

	client_start(&cl, &s, false, ctx, NULL, NULL);
	client_info(&cl, info, sizeof(info));
	if (strstr(info, "client=CN=client.example.test") == NULL)
		fail_msg("got \"%s\"", info);
	client_close(&cl);
	/* a client without one is served all the same */
	SSL_CTX *plain = client_ctx(0, 0);
	client_start(&cl, &s, false, plain, NULL, NULL);
	client_info(&cl, info, sizeof(info));
	assert_non_null(strstr(info, "client=-"));
	client_close(&cl);
	wait_active(s.l, 0);
	X509_free(x);
	EVP_PKEY_free(pk);
	BIO_free(cb);
	BIO_free(kb);
	SSL_CTX_free(ctx);
	SSL_CTX_free(plain);
	tls_names_free(&names);
	textbuf_free(&crt);
	tls_wipe(&key);
	server_stop(&s);
}

/* Small limits, big traffic: the plaintext and ciphertext watermarks
 * pause and resume both directions without losing or reordering a byte. */
static void test_bulk_through_small_buffers(void **unused)
{
	(void)unused;
	enum { LINE = 100, LINES_PER_ROUND = 640, ROUNDS = 16 };
	struct listener_limits lim = { .threads = 2, .max_input = 4096, .max_output = 8192 };
	struct server s;
	struct client cl;
	server_start(&s, &lim, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);
	client_start(&cl, &s, false, ctx, NULL, NULL);
	static char block[LINE * LINES_PER_ROUND + 1];
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < LINES_PER_ROUND; i++) {
			char *p = block + (size_t)i * LINE;
			int n = snprintf(p, LINE, "r%02d-l%04d-", r, i);
			memset(p + n, 'a' + (i % 26), LINE - 2 - (size_t)n);
			p[LINE - 2] = '\r';
			p[LINE - 1] = '\n';
		}
		assert_int_equal(SSL_write(cl.ssl, block, LINE * LINES_PER_ROUND),
				 LINE * LINES_PER_ROUND);
		for (int i = 0; i < LINES_PER_ROUND; i++) {
			char got[LINE + 8];
			assert_true(client_line(&cl, got, sizeof(got)));
			if (memcmp(got, block + (size_t)i * LINE, LINE - 2) != 0)
				fail_msg("round %d line %d: got \"%.20s\"", r, i, got);
		}
	}
	client_close(&cl);
	wait_active(s.l, 0);
	SSL_CTX_free(ctx);
	server_stop(&s);
}

static void test_drain_says_goodbye_under_tls(void **unused)
{
	(void)unused;
	struct listener_limits lim = { .threads = 2 };
	struct server s;
	struct client a, b;
	server_start(&s, &lim, NULL, NULL);
	SSL_CTX *ctx = client_ctx(0, 0);
	client_start(&a, &s, false, ctx, NULL, NULL);
	client_expect(&a, "hi", "hi");
	client_start(&b, &s, true, ctx, NULL, NULL);
	client_expect(&b, "hi", "hi");
	assert_int_equal(listener_drain(s.l, 3), 0);
	client_expect(&a, NULL, "BYE draining");
	client_expect(&b, NULL, "BYE draining");
	/* a clean TLS end: close_notify, not just a TCP close */
	char ch;
	assert_int_equal(SSL_read(a.ssl, &ch, 1), 0);
	assert_int_equal(SSL_get_error(a.ssl, 0), SSL_ERROR_ZERO_RETURN);
	client_close(&a);
	client_close(&b);
	assert_int_equal(atomic_load(&fx.shutdowns), 2);
	SSL_CTX_free(ctx);
	server_stop(&s);
}

/* ---- --serve: the test-only TLS server for pytest and `make audit` ---- */

static int serve(const char *store, const char *port_file)
{
	struct listener_limits lim = { .threads = 2,
				      .max_input = 65536,
				      .max_output = 262144,
				      .idle_timeout_sec = 120,
				      .max_per_address = 1000};
	struct tls_settings settings;
	struct tls_server *ts = NULL;
	struct listener *l = NULL;
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	const char *error = NULL;
	int implicit_port = 0, starttls_port = 0;
	sigset_t set;

	log_init("tls-echo", 0);
	tls_settings_defaults(&settings);
	settings.handshake_timeout = 10;
	if (tls_server_create(&settings, store, &ts, &error) < 0) {
		fprintf(stderr, "serve: %s\n", error);
		return 1;
	}
	if (tls_server_reload(ts, &summary, &errors) < 0) {
		fprintf(stderr, "serve: %s", textbuf_str(&errors));
		return 1;
	}
	log_info("tls", "loaded %s", textbuf_str(&summary));
	struct listener_tls implicit = { .mode = LISTENER_TLS_IMPLICIT, .handshake_timeout_sec = 10 };
	struct listener_tls starttls = {
	    .mode = LISTENER_TLS_STARTTLS, .require_tls = true, .handshake_timeout_sec = 10};
	if (listener_create(&lim, &l, &error) < 0 ||
	    listener_add_service(l, "implicit", &line_ops, NULL, "127.0.0.1", 0, &implicit_port,
				 &error) < 0 ||
	    listener_add_service(l, "starttls", &line_ops, NULL, "127.0.0.1", 0, &starttls_port,
				 &error) < 0 ||
	    listener_service_set_tls(l, "implicit", &implicit, &error) < 0 ||
	    listener_service_set_tls(l, "starttls", &starttls, &error) < 0) {
		fprintf(stderr, "serve: %s\n", error);
		return 1;
	}
	listener_set_tls_server(l, ts);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (listener_start(l, &error) < 0) {
		fprintf(stderr, "serve: %s\n", error);
		return 1;
	}
	char tmp[1100];
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	FILE *f = fopen(tmp, "w");
	if (f == NULL ||
	    fprintf(f, "implicit=%d\nstarttls=%d\n", implicit_port, starttls_port) < 0 ||
	    fclose(f) != 0 || rename(tmp, port_file) < 0) {
		fprintf(stderr, "serve: cannot write %s\n", port_file);
		return 1;
	}
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		textbuf_truncate(&summary, 0);
		textbuf_truncate(&errors, 0);
		if (tls_server_reload(ts, &summary, &errors) < 0)
			log_error("tls", "reload refused: %s", textbuf_str(&errors));
		else
			log_info("tls", "reloaded: %s", textbuf_str(&summary));
	}
	listener_drain(l, 5);
	listener_destroy(&l);
	tls_server_destroy(&ts);
	textbuf_free(&summary);
	textbuf_free(&errors);
	log_fini();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--serve") == 0)
		return serve(argv[2], argv[3]);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_implicit_round_trip),
	    cmocka_unit_test(test_starttls_discards_injected_plaintext),
	    cmocka_unit_test(test_starttls_plaintext_after_ok_fails_handshake),
	    cmocka_unit_test(test_old_protocols_refused),
	    cmocka_unit_test(test_sni_picks_certificate),
	    cmocka_unit_test(test_session_resumption),
	    cmocka_unit_test(test_handshake_timeout_and_garbage),
	    cmocka_unit_test(test_no_certificate),
	    cmocka_unit_test(test_client_certificate_recorded),
	    cmocka_unit_test(test_bulk_through_small_buffers),
	    cmocka_unit_test(test_drain_says_goodbye_under_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
