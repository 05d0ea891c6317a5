/*
 * One accepted connection, from accept to the last close: the limits that
 * protect the process from a client (total and per-address at accept,
 * bounded input and output buffers, idle timeout), the bufferevent that
 * carries the bytes, and the close sequence.
 *
 * Everything here runs on the connection's worker thread; the bufferevent
 * is never touched from another thread (drain reaches connections by
 * activating an event on their worker's loop).
 *
 * Memory per connection is bounded: reads stop at max_input buffered, and
 * at max_output / 2 queued until the client drains to max_output / 4;
 * conn_write past max_output fails and closes. The idle timer counts
 * bytes moved on the socket in either direction, measured by callbacks on
 * the two evbuffers; it is re-armed lazily (only when it fires), so
 * activity costs a clock read, not a timer operation.
 *
 * Close is always deferred to a fresh loop callback (ev_close), so the
 * service's close hook never runs inside one of its own hooks and a
 * conn_close() from the read hook cannot free what the caller still uses.
 * The close hook runs exactly once per successful open.
 *
 * TLS (listener_tls.c) puts an OpenSSL filter bufferevent (c->bev) over
 * the socket's (c->raw). This file then reads and writes c->bev as before,
 * counts socket bytes on c->raw's buffers, and counts both buffers' output
 * as queued, so the limits and the close flush hold with or without TLS.
 */
#include "node/listener_private.h"

#include "node/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A closing connection whose client reads nothing is abandoned after this
 * (or after the idle timeout, if shorter). */
#define CONN_FLUSH_TIMEOUT_SEC 30

static atomic_ullong conn_next_id;

static uint64_t conn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t conn_pause_mark(const struct conn *c)
{
	return c->max_output / 2;
}

static size_t conn_resume_mark(const struct conn *c)
{
	return c->max_output / 4;
}

size_t conn_queued(const struct conn *c)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (c->raw != c->bev)
		n += evbuffer_get_length(bufferevent_get_output(c->raw));
	return n;
}

static unsigned conn_timeout_sec(const struct conn *c)
{
	if (!c->closing)
		return c->idle_sec;
	if (c->idle_sec != 0 && c->idle_sec < CONN_FLUSH_TIMEOUT_SEC)
		return c->idle_sec;
	return CONN_FLUSH_TIMEOUT_SEC;
}

static void conn_timer_arm(struct conn *c, uint64_t after_ms)
{
	struct timeval tv = { .tv_sec = (time_t)(after_ms / 1000),
			      .tv_usec = (suseconds_t)(after_ms % 1000) * 1000 };
	event_add(c->ev_timer, &tv);
}

/* Releases everything the connection holds and runs the close hook. The
 * only place a conn is freed. */
static void conn_finalize(struct conn *c)
{
	struct listener_service *svc = c->svc;
	struct listener *l = svc->l;

	c->closing = true;
	c->writable_cb = NULL;
	if (c->reason == NULL)
		c->reason = "server closed";
	event_del(c->ev_timer);
	event_del(c->ev_close);
	if (c->ev_handshake != NULL)
		event_del(c->ev_handshake);
	if (c->ev_wake != NULL)
		event_del(c->ev_wake);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->opened) {
		c->opened = false;
		svc->ops.close(c, c->state);
		c->state = NULL;
	}

	listener_worker_unlink(c->w, c);
	uint64_t ms = conn_now_ms() - c->started_ms;
	log_info("listener",
		 "disconnect id=%llu service=%s peer=%s user=%s duration=%llu.%03llus "
		 "in=%llu out=%llu reason=%s",
		 (unsigned long long)c->info.id, c->info.service, c->info.peer,
		 c->info.user[0] != '\0' ? c->info.user : "-", (unsigned long long)(ms / 1000),
		 (unsigned long long)(ms % 1000), (unsigned long long)c->bytes_in,
		 (unsigned long long)c->bytes_out, c->reason);
	listener_publish(l, "disconnect", &c->info);
	listener_addrs_release(&l->addrs, &c->addr);
	atomic_fetch_sub(&svc->active, 1);

	/* libevent finalizes the bufferevent (and closes the socket) from the
	 * loop; nothing of ours may be reachable from it by then. Freeing a
	 * TLS filter frees its SSL and the socket bufferevent under it. */
	evbuffer_remove_cb_entry(bufferevent_get_input(c->raw), c->in_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(c->raw), c->out_cb);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_free(c->bev);
	event_free(c->ev_timer);
	event_free(c->ev_close);
	if (c->ev_handshake != NULL)
		event_free(c->ev_handshake);
	if (c->ev_wake != NULL)
		event_free(c->ev_wake);
	free(c);
	listener_active_put(l);
}

static void conn_close_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_finalize(arg);
}

void conn_finalize_later(struct conn *c)
{
	event_active(c->ev_close, EV_TIMEOUT, 0);
}

void conn_begin_close(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->reason = reason;
	c->writable_cb = NULL;
	bufferevent_disable(c->bev, EV_READ);
	/* the write callback must now fire on empty, not at the resume mark */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	conn_flush_deadline(c);
	conn_check_output(c); /* closes at once when nothing is queued */
}

void conn_flush_deadline(struct conn *c)
{
	c->last_io_ms = conn_now_ms();
	conn_timer_arm(c, (uint64_t)conn_timeout_sec(c) * 1000);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;

	uint64_t limit_ms = (uint64_t)conn_timeout_sec(c) * 1000;
	if (limit_ms == 0)
		return;
	uint64_t quiet_ms = conn_now_ms() - c->last_io_ms;
	if (quiet_ms < limit_ms) {
		conn_timer_arm(c, limit_ms - quiet_ms);
		return;
	}
	if (!c->closing)
		c->reason = "idle timeout";
	else
		log_info("listener", "flush timeout id=%llu queued=%zu",
			 (unsigned long long)c->info.id, conn_queued(c));
	/* nothing moves either way: flushing would wait forever */
	conn_finalize(c);
}

static void conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	(void)buf;
	if (info->n_added != 0) {
		c->bytes_in += info->n_added;
		c->last_io_ms = conn_now_ms();
	}
}

static void conn_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	(void)buf;
	/* output bytes leave the buffer only by being written to the socket */
	if (info->n_deleted != 0) {
		c->bytes_out += info->n_deleted;
		c->last_io_ms = conn_now_ms();
		if (c->raw != c->bev)
			conn_tls_output_drained(c);
	}
}

void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	/* during a handshake the filter may already deliver the first
	 * plaintext; it waits until conn_info carries the TLS details */
	if (!c->closing && c->opened && c->tls_state != CONN_TLS_HANDSHAKE)
		c->svc->ops.read(c, c->state);
}

void conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_check_output(arg);
}

void conn_check_output(struct conn *c)
{
	size_t queued = conn_queued(c);

	if (c->closing) {
		if (c->tls_state == CONN_TLS_HANDSHAKE)
			queued = 0; /* what was written mid-handshake can never be sent */
		else if (c->tls_state == CONN_TLS_ESTABLISHED && !c->tls_flush_raw)
			queued = conn_tls_closing(c);
		if (queued == 0)
			conn_finalize_later(c);
		return;
	}
	if (queued > conn_resume_mark(c))
		return;
	bool resumed = c->paused;
	if (resumed) {
		c->paused = false;
		bufferevent_enable(c->bev, EV_READ);
	}
	if (c->writable_cb != NULL) {
		conn_writable_cb *cb = c->writable_cb;
		c->writable_cb = NULL;
		cb(c, c->state);
	}
	/* input that waited while reads were paused gets its turn now */
	if (resumed && !c->closing && !c->paused && c->opened &&
	    c->tls_state != CONN_TLS_HANDSHAKE &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
		c->svc->ops.read(c, c->state);
}

void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;

	if (c->raw != c->bev && conn_tls_event(c, what))
		return;
	if ((what & BEV_EVENT_ERROR) != 0) {
		int err = EVUTIL_SOCKET_ERROR();
		if (!c->closing)
			c->reason = "error";
		log_info("listener", "socket error id=%llu service=%s peer=%s: %s",
			 (unsigned long long)c->info.id, c->info.service, c->info.peer,
			 evutil_socket_error_to_string(err));
		c->closing = true;
		conn_finalize_later(c);
	} else if ((what & BEV_EVENT_EOF) != 0) {
		/* a half-closed client may still read what we queued for it */
		conn_begin_close(c, "client closed");
	}
}

static void conn_refuse(struct listener_service *svc, int fd, const struct conn_info *info,
			const char *why, unsigned limit)
{
	/* counted and published before the client can see the close */
	atomic_fetch_add(&svc->refused, 1);
	log_notice("listener", "refused id=%llu service=%s peer=%s reason=%s=%u",
		   (unsigned long long)info->id, info->service, info->peer, why, limit);
	listener_publish(svc->l, "refused", info);
	if (svc->refuse_message != NULL)
		(void)send(fd, svc->refuse_message, svc->refuse_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

void conn_accept(struct evconnlistener *evl, int fd, struct sockaddr *sa, int socklen,
		 void *arg)
{
	struct listener_socket *ls = arg;
	struct listener_service *svc = ls->svc;
	struct listener *l = svc->l;
	struct listener_worker *w = ls->w;
	struct listener_limits lim;
	struct listener_addr_key key;
	struct conn_info info;
	(void)evl;

	memset(&info, 0, sizeof(info));
	info.id = atomic_fetch_add(&conn_next_id, 1) + 1;
	snprintf(info.service, sizeof(info.service), "%s", svc->name);
	info.since = time(NULL);
	listener_addr_from_sockaddr(sa, (socklen_t)socklen, &key, info.peer, sizeof(info.peer));
	listener_limits_get(l, &lim);

	unsigned total = atomic_fetch_add(&l->active, 1) + 1;
	if (lim.max_connections != 0 && total > lim.max_connections) {
		listener_active_put(l);
		conn_refuse(svc, fd, &info, "max_connections", lim.max_connections);
		return;
	}
	int ret = listener_addrs_acquire(&l->addrs, &key, lim.max_per_address);
	if (ret != 0) {
		listener_active_put(l);
		if (ret > 0)
			conn_refuse(svc, fd, &info, "max_per_address", lim.max_per_address);
		else
			conn_refuse(svc, fd, &info, "out_of_memory", 0);
		return;
	}

	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("listener", "TCP_NODELAY id=%llu: %s", (unsigned long long)info.id,
			  strerror(errno));

	struct conn *c = calloc(1, sizeof(*c));
	if (c != NULL) {
		c->bev = c->raw = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->ev_timer = evtimer_new(w->base, conn_timer_cb, c);
		c->ev_close = event_new(w->base, -1, 0, conn_close_cb, c);
	}
	if (c != NULL && c->bev != NULL) {
		c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), conn_input_cb, c);
		c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), conn_output_cb, c);
	}
	if (c == NULL || c->bev == NULL || c->ev_timer == NULL || c->ev_close == NULL ||
	    c->in_cb == NULL || c->out_cb == NULL) {
		log_error("listener", "out of memory accepting id=%llu service=%s peer=%s",
			  (unsigned long long)info.id, info.service, info.peer);
		if (c != NULL) {
			if (c->bev != NULL)
				bufferevent_free(c->bev); /* closes fd */
			else
				close(fd);
			if (c->ev_timer != NULL)
				event_free(c->ev_timer);
			if (c->ev_close != NULL)
				event_free(c->ev_close);
			free(c);
		} else {
			close(fd);
		}
		listener_addrs_release(&l->addrs, &key);
		listener_active_put(l);
		return;
	}

	c->w = w;
	c->svc = svc;
	c->info = info;
	c->addr = key;
	c->started_ms = c->last_io_ms = conn_now_ms();
	c->max_input = lim.max_input;
	c->max_output = lim.max_output;
	c->idle_sec = lim.idle_timeout_sec;
	bufferevent_setwatermark(c->bev, EV_READ, 0, c->max_input);
	bufferevent_setwatermark(c->bev, EV_WRITE, conn_resume_mark(c), 0);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);

	listener_worker_link(w, c);
	atomic_fetch_add(&svc->active, 1);
	atomic_fetch_add(&svc->accepted, 1);
	log_info("listener", "connect id=%llu service=%s peer=%s", (unsigned long long)info.id,
		 info.service, info.peer);
	listener_publish(l, "connect", &c->info);

	if (c->idle_sec != 0)
		conn_timer_arm(c, (uint64_t)c->idle_sec * 1000);
	if (svc->tls_mode == LISTENER_TLS_IMPLICIT) {
		/* the engine opens once the handshake is done (listener_tls.c) */
		if (conn_tls_begin(c) < 0)
			conn_begin_close(c, "tls unavailable");
		return;
	}
	conn_open_service(c);
}

void conn_open_service(struct conn *c)
{
	c->state = c->svc->ops.open(c, c->svc->ctx);
	if (c->state == NULL) {
		/* the service may have queued its own refusal: send it */
		conn_begin_close(c, "rejected by service");
		return;
	}
	c->opened = true;
	if (!c->closing && !c->paused)
		bufferevent_enable(c->bev, EV_READ);
}

void conn_shutdown(struct conn *c)
{
	if (c->closing || c->shutdown_sent)
		return;
	c->shutdown_sent = true;
	if (c->opened && c->svc->ops.shutdown != NULL)
		c->svc->ops.shutdown(c, c->state);
	else
		conn_begin_close(c, "drain");
}

void conn_force_close(struct conn *c, const char *reason)
{
	c->reason = reason;
	conn_finalize(c);
}

struct evbuffer *conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closing)
		return -1;
	size_t queued = conn_queued(c);
	if (c->max_output != 0 && (queued > c->max_output || len > c->max_output - queued)) {
		log_warning("listener", "output limit id=%llu queued=%zu write=%zu max_output=%zu",
			    (unsigned long long)c->info.id, queued, len, c->max_output);
		conn_begin_close(c, "output limit");
		return -1;
	}
	if (evbuffer_add(bufferevent_get_output(c->bev), data, len) < 0) {
		log_error("listener", "out of memory writing id=%llu", (unsigned long long)c->info.id);
		conn_begin_close(c, "error");
		return -1;
	}
	queued += len;
	if (c->max_output != 0 && !c->paused && queued > 0 && queued >= conn_pause_mark(c)) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
	return 0;
}

void conn_close(struct conn *c)
{
	conn_begin_close(c, c->shutdown_sent ? "drain" : "server closed");
}

const struct conn_info *conn_info(const struct conn *c)
{
	return &c->info;
}

void conn_set_user(struct conn *c, const char *user)
{
	pthread_mutex_lock(&c->w->sessions_lock);
	snprintf(c->info.user, sizeof(c->info.user), "%s", user);
	pthread_mutex_unlock(&c->w->sessions_lock);
}

struct event_base *conn_base(struct conn *c)
{
	return c->w->base;
}

size_t conn_output_pending(const struct conn *c)
{
	return conn_queued(c);
}

int conn_when_writable(struct conn *c, conn_writable_cb *cb)
{
	if (c->closing)
		return 0;
	if (c->max_output == 0 || conn_queued(c) <= conn_resume_mark(c)) {
		c->writable_cb = NULL;
		return 1;
	}
	c->writable_cb = cb;
	return 0;
}
