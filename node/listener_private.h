/*
 * Internals of the listener framework, shared by its files and by its
 * unit test only:
 *   listener.c          workers and their loops, drain, session registry
 *   listener_service.c  services: binding one socket per worker, stats
 *   conn.c              one accepted connection: limits, buffers, timers, close
 *   listener_addrs.c    live connections per client address (shared table)
 *   listener_tls.c      TLS on a connection: implicit and STARTTLS handshakes,
 *                       their timeout and log lines, the conn TLS API
 *
 * Threading: a struct conn and everything it points to belongs to its
 * worker thread. The only fields other threads read are conn_info (via the
 * worker's sessions list, under sessions_lock) and the atomic counters.
 */
#ifndef CM_NODE_LISTENER_PRIVATE_H
#define CM_NODE_LISTENER_PRIVATE_H

#include "node/listener.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

struct bufferevent;
struct event;
struct evbuffer_cb_entry;
struct evconnlistener;

/* ---- listener_addrs.c ---- */

/* A client address as a table key. IPv4-mapped IPv6 addresses are folded
 * to IPv4 so that one client counts once on a dual-stack socket. */
struct listener_addr_key {
	uint8_t family; /* 4 or 6 */
	uint8_t bytes[16];
};

struct listener_addr_entry;

struct listener_addrs {
	pthread_mutex_t lock;
	struct listener_addr_entry **buckets;
	size_t n_buckets; /* power of two */
	size_t n_entries;
	uint64_t seed; /* random: bucket choice is not predictable by clients */
};

/* 0, or -1 when out of memory. */
int listener_addrs_init(struct listener_addrs *t);
void listener_addrs_fini(struct listener_addrs *t);
/* Counts one more connection from key unless it already has max (0 = no
 * limit). 0 counted, 1 refused (at the limit), -1 out of memory. */
int listener_addrs_acquire(struct listener_addrs *t, const struct listener_addr_key *key,
			   unsigned max);
/* Undoes one successful acquire; the entry is removed when it reaches 0. */
void listener_addrs_release(struct listener_addrs *t, const struct listener_addr_key *key);
/* Live connections from key (0 if none). */
unsigned listener_addrs_count(struct listener_addrs *t, const struct listener_addr_key *key);
/* Number of distinct addresses in the table. */
size_t listener_addrs_size(struct listener_addrs *t);
/* Fills key (the client the address stands for, lib/cidr.h's
 * cidr_client: an IPv6 peer's /64) and the printable peer ("1.2.3.4:25",
 * "[::1]:25") from an accepted socket's address. 0, or -1 for a family other than IPv4/IPv6
 * (peer is then "unknown"). */
int listener_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
				struct listener_addr_key *key_r, char *peer, size_t peer_size);

/* ---- listener.c ---- */

struct listener_worker;
struct listener_service;

/* One service bound on one worker (SO_REUSEPORT gives each its socket). */
struct listener_socket {
	struct listener_service *svc;
	struct listener_worker *w;
	struct evconnlistener *evl;
	struct event *retry; /* re-enables accepting after EMFILE and friends */
};

struct listener_service {
	struct listener_service *next;
	struct listener *l;
	char name[32];
	char address[64]; /* as configured */
	int port;
	struct sockaddr_storage sa; /* as bound, port included */
	struct service_ops ops; /* refuse_message points at our own copy */
	void *ctx;
	char *refuse_message;
	size_t refuse_len;
	struct listener_socket *sockets; /* one per worker */
	enum listener_tls_mode tls_mode; /* fixed once the listener runs */
	atomic_bool require_tls;
	atomic_uint handshake_timeout_sec;
	atomic_uint active;
	atomic_ulong accepted;
	atomic_ulong refused;
};

struct listener_worker {
	struct listener *l;
	unsigned index;
	struct event_base *base;
	struct event *ev_drain; /* event_active'd from the draining thread */
	struct event *ev_stop;
	pthread_t thread;
	bool running;
	bool draining;    /* worker thread only: accepting is off for good */
	bool drain_begun; /* worker thread only: shutdown hooks were called */
	pthread_mutex_t sessions_lock; /* list links and conn_info.user */
	struct conn *sessions;
	size_t n_sessions;
};

enum listener_state {
	LISTENER_NEW,
	LISTENER_RUNNING,
	LISTENER_STOPPED,
};

struct listener {
	unsigned n_workers;
	struct listener_worker *workers;
	struct listener_service *services;
	enum listener_state state;

	pthread_mutex_t config_lock; /* limits, hook, appending to services */
	struct listener_limits limits;
	listener_event_hook *hook;
	void *hook_ctx;

	struct listener_addrs addrs;
	struct tls_server *tls; /* set before start; NULL = no TLS anywhere */
	atomic_uint active;
	atomic_uint forced; /* drain: closed by force, summed over workers */
	pthread_mutex_t idle_lock; /* with idle_cond: wakes the drain when active hits 0 */
	pthread_cond_t idle_cond;

	char error[256]; /* text behind the last error_r of this listener */
};

/* Formats an error into l->error, points *error_r at it, returns -1. */
int listener_fail(struct listener *l, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void listener_limits_get(struct listener *l, struct listener_limits *limits_r);
/* Publishes "connect" / "disconnect" / "refused" to the event hook. */
void listener_publish(struct listener *l, const char *event, const struct conn_info *info);
/* Drops one from the total and wakes a waiting drain at zero. */
void listener_active_put(struct listener *l);
void listener_worker_link(struct listener_worker *w, struct conn *c);
void listener_worker_unlink(struct listener_worker *w, struct conn *c);

/* ---- listener_service.c ---- */

/* Closes the service's sockets and frees it (not linked in l->services). */
void listener_service_free(struct listener *l, struct listener_service *svc);

/* ---- conn.c ---- */

enum conn_tls_state {
	CONN_TLS_NONE,
	CONN_TLS_HANDSHAKE,
	CONN_TLS_ESTABLISHED,
};

struct conn {
	struct conn *prev, *next; /* worker's sessions list */
	struct listener_worker *w;
	struct listener_service *svc;
	/* bev carries the plaintext the engine reads and writes; raw is the
	 * socket. Without TLS they are the same; with TLS bev is an OpenSSL
	 * filter over raw (raw's callbacks then belong to the filter). */
	struct bufferevent *bev;
	struct bufferevent *raw;
	struct evbuffer_cb_entry *in_cb, *out_cb; /* on raw: bytes on the socket */
	struct event *ev_timer; /* idle timeout, and the flush deadline once closing */
	struct event *ev_close; /* runs the deferred close */
	struct event *ev_handshake; /* TLS handshake deadline (created with TLS) */
	struct event *ev_wake;	    /* TLS: raw output drained; see conn_tls_wake_cb */
	enum conn_tls_state tls_state;
	bool tls_flush_raw;  /* TLS failed: flush raw (the alert), then close */
	bool tls_close_sent; /* close_notify queued */
	void *state;
	conn_writable_cb *writable_cb;
	struct conn_info info;
	struct listener_addr_key addr;
	uint64_t started_ms;
	uint64_t last_io_ms;
	uint64_t bytes_in, bytes_out;
	size_t max_input, max_output;
	unsigned idle_sec;
	const char *reason; /* why it is closing; NULL while open */
	bool opened;        /* open hook returned state: the close hook is owed */
	bool closing;       /* no more reads or writes; flushing, then close */
	bool paused;        /* reads off until output drains to the resume mark */
	bool shutdown_sent;
};

/* The evconnlistener accept callback (arg: struct listener_socket). */
void conn_accept(struct evconnlistener *evl, int fd, struct sockaddr *sa, int socklen,
		 void *arg);
/* Drain has begun: the service's shutdown hook, or a flush-and-close for
 * services without one. */
void conn_shutdown(struct conn *c);
/* Closes now, output discarded (drain timeout, listener stop); reason is
 * logged. */
void conn_force_close(struct conn *c, const char *reason);
/* Stops reading, flushes what is queued, then closes. */
void conn_begin_close(struct conn *c, const char *reason);
/* c is closing: it gets the flush timeout from now to send what is queued. */
void conn_flush_deadline(struct conn *c);
/* Runs the deferred close from a fresh loop callback. */
void conn_finalize_later(struct conn *c);
/* Plaintext queued to the client plus, under TLS, encrypted bytes not yet
 * written to the socket. */
size_t conn_queued(const struct conn *c);
/* Calls the service's open hook (at accept; after the handshake for
 * implicit TLS); closes c when the service declines. */
void conn_open_service(struct conn *c);
/* The bufferevent callbacks of c->bev (arg: c). */
void conn_read_cb(struct bufferevent *bev, void *arg);
void conn_write_cb(struct bufferevent *bev, void *arg);
void conn_event_cb(struct bufferevent *bev, short what, void *arg);
/* Output drained to the resume mark (or to nothing while closing): resume
 * reads, run the writable callback, finish a close. */
void conn_check_output(struct conn *c);

/* ---- listener_tls.c ---- */

/* Wraps c->raw in a server TLS filter and starts the handshake (arming
 * its timeout). 0, or -1 when the service has no certificate or memory
 * ran out (logged; the caller closes c). */
int conn_tls_begin(struct conn *c);
/* c->bev reported an event while TLS is on; returns true when it handled
 * the event (handshake done, TLS failure), false to let conn.c handle it
 * (EOF and socket errors outside the handshake). */
bool conn_tls_event(struct conn *c, short what);
/* Some of c->raw's output reached the socket (from the evbuffer callback). */
void conn_tls_output_drained(struct conn *c);
/* c is closing with TLS established: once the plaintext is out, queues
 * close_notify (once). Returns what is still queued (conn_queued). */
size_t conn_tls_closing(struct conn *c);

#endif
