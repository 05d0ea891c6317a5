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
