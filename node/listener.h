/*
 * The listener framework: every TCP service of maild runs on it.
 *
 * Model: `threads` worker threads, each with its own libevent event_base.
 * Each service is bound once per worker with SO_REUSEPORT, so the kernel
 * spreads accepted connections over the workers; a connection lives on
 * the worker that accepted it for its whole life (no locks on the data
 * path). Sockets are bound by listener_add_service() in the calling
 * thread, before privileges are dropped; workers start with
 * listener_start().
 *
 * Limits (enforced here, so no protocol engine can forget them): total
 * connections, connections per client address (IPv4 address / IPv6
 * address, ports ignored), input buffered per connection (reading stops
 * until the engine consumes), output buffered per connection (reading
 * stops until the client drains), idle timeout. A refused connection gets
 * the service's refuse_message (best effort) and is closed.
 *
 * Every accept/close is logged by the framework with connection id,
 * service and peer; an optional event hook publishes them.
 *
 * Limit details: 0 means "no limit" for every field. Reads pause when
 * max_input bytes wait in conn_input() (so input never exceeds it), and
 * when queued output reaches max_output / 2; they resume when output
 * drains to max_output / 4 (the resume mark), and the read hook then runs
 * again if input is waiting. conn_write() that would queue more than
 * max_output fails and closes the connection after a flush. "Idle" counts
 * bytes actually moved on the socket, either way, so a long download is
 * not idle and a stalled full input buffer is. New limits apply to
 * connections accepted afterwards; the total and per-address limits are
 * checked at every accept.
 *
 * Sockets: SO_REUSEPORT, nonblocking, close-on-exec; an IPv6 address is
 * bound IPv6-only (list "0.0.0.0" and "::" both for dual stack). Two
 * services of one listener cannot share an address:port. Worker threads
 * block all asynchronous signals (so signals reach the main thread and a
 * write to a reset peer yields EPIPE instead of killing the process).
 *
 * Lifecycle functions (create, add_service, start, drain, destroy) are
 * called from one control thread; stats, sessions, set_limits and the
 * event hook setter from any thread. The event hook runs on worker
 * threads. error_r texts stay valid until the next call on the listener.
 *
 * TLS (node/listener_tls.c; certificates and contexts are node/tls.h):
 * each service has a TLS mode. IMPLICIT services (smtps, imaps, pop3s)
 * run the server handshake right after accept and call the open hook
 * only once it has completed, so an engine never sees a byte that did not
 * arrive under TLS and conn_info() already carries the TLS details. A
 * failed handshake costs no engine session (no open, no close hook).
 * STARTTLS services (smtp, submission, imap, pop3) start in plaintext and
 * upgrade when the engine calls conn_starttls(). Every handshake is
 * bounded by the service's handshake timeout and logged in one line
 * (protocol, cipher, SNI, certificate, resumed); failures are logged with
 * peer and reason. Byte counts and the idle timer count encrypted bytes on
 * the socket; max_input and max_output bound the plaintext (input may
 * exceed max_input by one TLS record, at most 16 KiB) and up to 32 KiB of
 * encrypted output waits below the plaintext. A client that ends TLS
 * without close_notify is treated like one that sends it (the mail
 * protocols delimit their own data, so a truncation cannot shorten a
 * message); the server sends close_notify when it closes.
 *
 * The STARTTLS contract for engines (RFC 3207 section 4.2, RFC 2595
 * section 3.1, CVE-2011-0411 and its kin):
 *  1. Take the STARTTLS command line out of conn_input(c).
 *  2. If !conn_starttls_available(c), answer "TLS not available" (SMTP
 *     454, IMAP NO/BAD, POP3 -ERR) and go on in plaintext.
 *  3. conn_write() the go-ahead reply (SMTP "220 2.0.0 Ready to start
 *     TLS", IMAP "OK Begin TLS negotiation now", POP3 "+OK Begin TLS").
 *  4. Call conn_starttls(c). Everything the client sent after the
 *     STARTTLS line that is already buffered is discarded here, unread:
 *     commands pipelined in plaintext must never run as if they had come
 *     under TLS. The go-ahead is flushed in plaintext, then the handshake
 *     runs; the read hook is next called with bytes that arrived under
 *     TLS (or, if the handshake fails, the close hook runs).
 *  5. Reset the protocol state as the RFCs require, including anything
 *     the engine buffered or parsed itself beyond the STARTTLS line: SMTP
 *     forgets EHLO, MAIL and RCPT (the client must EHLO again); IMAP and
 *     POP3 forget any capability they announced and pipelined state.
 *     Stop advertising STARTTLS once conn_is_tls(c).
 * "Require TLS": conn_plaintext_auth_allowed(c) is false on a
 * connection without TLS of a service with require_tls set; engines then
 * refuse plaintext authentication with the protocol's error (SMTP 530
 * 5.7.0, IMAP NO [PRIVACYREQUIRED], POP3 -ERR) and leave it out of their
 * capability lists (no AUTH=PLAIN/LOGIN, IMAP LOGINDISABLED, no POP3
 * USER/SASL PLAIN).
 */
#ifndef CM_NODE_LISTENER_H
#define CM_NODE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;
struct evbuffer;
struct listener;
struct conn;

struct listener_limits {
	unsigned threads;           /* 0 = one per online CPU */
	unsigned max_connections;   /* across all services; 0 = unlimited */
	unsigned max_per_address;   /* per client address; 0 = unlimited */
	size_t max_input;           /* bytes buffered from a client before reads pause */
	size_t max_output;          /* bytes queued to a client before reads pause */
	unsigned idle_timeout_sec;  /* no bytes either way for this long: close; 0 = none */
};

struct service_ops {
	/* Accepted: return per-connection state, or NULL to close at once. */
	void *(*open)(struct conn *c, void *service_ctx);
	/* New bytes are in conn_input(c). */
	void (*read)(struct conn *c, void *state);
	/* Connection is going away (client closed, error, timeout, drain):
	 * free state. Always called exactly once for every successful open. */
	void (*close)(struct conn *c, void *state);
	/* Optional: SIGTERM drain has begun; tell the client and finish soon
	 * (e.g. SMTP 421, IMAP BYE). Without it, drain flushes what is queued
	 * and closes the connection. */
	void (*shutdown)(struct conn *c, void *state);
	/* Optional: written to a connection refused by a limit, e.g.
	 * "421 4.7.0 Too many connections\r\n". Copied at add_service. */
	const char *refuse_message;
};

struct conn_info {
	uint64_t id;
	char service[32];
	char peer[64];   /* "addr:port" or "[v6]:port" */
	char user[320];  /* "" until conn_set_user() */
	time_t since;
	/* Filled when a TLS handshake completes (tls true); "" before. */
	bool tls;
	bool tls_resumed;
	char tls_protocol[16];	      /* "TLSv1.3" */
	char tls_cipher[64];	      /* "TLS_AES_256_GCM_SHA384" */
	char tls_sni[256];	      /* server name the client asked for */
	char tls_certificate[65];     /* name of the certificate served */
	char tls_client_subject[256]; /* client certificate subject, recorded not trusted */
};

enum listener_tls_mode {
	LISTENER_TLS_NONE,
	LISTENER_TLS_STARTTLS,
	LISTENER_TLS_IMPLICIT,
};

struct listener_tls {
	enum listener_tls_mode mode;
	bool require_tls;		/* plaintext authentication only under TLS */
	unsigned handshake_timeout_sec; /* 0 = the idle timeout alone */
};

struct listener_service_stats {
	char name[32];
	char address[64];
	int port;
	unsigned active;
	unsigned long accepted;
	unsigned long refused;
};

typedef void listener_event_hook(const char *event /* "connect" | "disconnect" | "refused" */,
				 const struct conn_info *info, void *ctx);

int listener_create(const struct listener_limits *limits, struct listener **l_r,
		    const char **error_r);
/* Binds the service on address:port (port 0 picks a free port, reported in
 * *bound_port_r). Call before listener_start. 0 or -1 (error_r). */
int listener_add_service(struct listener *l, const char *name, const struct service_ops *ops,
			 void *service_ctx, const char *address, int port, int *bound_port_r,
			 const char **error_r);
void listener_set_event_hook(struct listener *l, listener_event_hook *hook, void *ctx);
struct tls_server;
/* The certificates of every TLS service (node/tls.h); set before
 * listener_start; ts must outlive the listener. Without it, no service
 * has TLS. */
void listener_set_tls_server(struct listener *l, struct tls_server *ts);
/* TLS for the service `name` (default: LISTENER_TLS_NONE, require_tls
 * false). The mode can change only before listener_start; require_tls
 * any time (SIGHUP), for running connections too; the handshake timeout
 * any time, for handshakes that begin afterwards. 0 or -1 (error_r). */
int listener_service_set_tls(struct listener *l, const char *name, const struct listener_tls *tls,
			     const char **error_r);
/* Starts the worker threads. 0 or -1 (error_r). */
int listener_start(struct listener *l, const char **error_r);
/* New limits (SIGHUP). `threads` cannot change while running and is ignored. */
void listener_set_limits(struct listener *l, const struct listener_limits *limits);
/* Stops accepting, calls every session's shutdown, waits up to timeout_sec
 * for sessions to end, then closes what is left and stops the workers.
 * Returns the number of connections that had to be closed by force
 * (0 if the listener was never started or is already drained). */
unsigned listener_drain(struct listener *l, unsigned timeout_sec);
/* Stops a running listener without shutdown hooks (every session is closed
 * at once, close hooks run), closes the sockets, frees everything, sets
 * *l to NULL. NULL or *l == NULL is a no-op. */
void listener_destroy(struct listener **l);

/* Fills out with up to max services in the order they were added; returns
 * the number of entries written. */
size_t listener_stats(struct listener *l, struct listener_service_stats *out, size_t max);
unsigned listener_active_total(struct listener *l);
typedef void listener_session_cb(const struct conn_info *info, void *ctx);
/* Calls cb with a snapshot of every live connection, on the calling thread,
 * with no listener lock held (cb may call listener_stats etc.). */
void listener_sessions(struct listener *l, listener_session_cb *cb, void *ctx);

/* Per-connection API, for protocol wiring; call on the connection's worker thread. */
struct evbuffer *conn_input(struct conn *c);
/* Queues bytes to the client. 0, or -1 when the output limit is exceeded
 * (the connection is then closed after what is queued is flushed). */
int conn_write(struct conn *c, const void *data, size_t len);
/* Flushes queued output, then closes (close hook runs). Never closes
 * synchronously: c and the service state stay valid until the caller
 * returns to the loop, so it is safe inside any hook. Reads stop at once;
 * later conn_write calls fail. A flush that makes no progress for
 * idle_timeout_sec (30 s at most) is abandoned. */
void conn_close(struct conn *c);
const struct conn_info *conn_info(const struct conn *c);
void conn_set_user(struct conn *c, const char *user);
struct event_base *conn_base(struct conn *c);

/* TLS (see the STARTTLS contract above). conn_is_tls: TLS has been
 * started on c (implicitly, or by conn_starttls; everything the read hook
 * sees afterwards came under TLS). conn_starttls_available: the service
 * is STARTTLS-capable, has a certificate, and c is not TLS yet nor
 * closing. conn_starttls: 0 when the handshake has begun; -1 when TLS is
 * not available (nothing happened: answer in plaintext), or when starting
 * it failed after all (out of memory: c is then closing). */
bool conn_is_tls(const struct conn *c);
bool conn_starttls_available(const struct conn *c);
int conn_starttls(struct conn *c);
/* Whether an engine may accept a password (or offer mechanisms that send
 * one) on c now: true under TLS, or when the service does not require TLS
 * (by default, services on a loopback address). */
bool conn_plaintext_auth_allowed(const struct conn *c);

/* Bytes queued to the client and not yet handed to the kernel. */
size_t conn_output_pending(const struct conn *c);
typedef void conn_writable_cb(struct conn *c, void *state);
/* For streaming responses larger than max_output (IMAP FETCH, POP3 RETR):
 * returns 1 when queued output is at or below the resume mark, so the
 * caller may write more now; otherwise returns 0 and cb runs once, on the
 * worker thread, when output drains to the mark (never after close). A
 * later call replaces an earlier cb. */
int conn_when_writable(struct conn *c, conn_writable_cb *cb);

#endif
