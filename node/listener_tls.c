/*
 * TLS on the listener's connections (see listener.h for the modes and the
 * STARTTLS contract): wrapping a connection's socket bufferevent in a
 * libevent OpenSSL filter, the handshake deadline, the one log line per
 * handshake, failures with peer and reason, and the conn TLS API that
 * protocol engines call. SSL objects come from node/tls.h; this file
 * never calls OpenSSL itself, only libevent's OpenSSL bufferevents.
 *
 * Security stance: at STARTTLS every byte already buffered from the
 * client is discarded before the handshake begins (CVE-2011-0411), and
 * the read hook is not called until the handshake is complete, so no
 * byte received in plaintext can be taken for one received under TLS.
 * A failed handshake flushes the TLS alert and closes; it never falls
 * back to plaintext. Client-chosen strings (SNI) are sanitised in
 * node/tls_context.c before they reach a log line.
 *
 * Everything here runs on the connection's worker thread, except
 * listener_set_tls_server and listener_service_set_tls (control thread).
 */
#include "node/listener_private.h"

#include "node/log.h"
#include "node/tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

/* Encrypted output waiting under the plaintext: the filter stops
 * encrypting at the high mark and resumes below the low mark. */
#define CONN_TLS_RAW_HIGH (32 * 1024)
#define CONN_TLS_RAW_LOW (16 * 1024)

void listener_set_tls_server(struct listener *l, struct tls_server *ts)
{
	pthread_mutex_lock(&l->config_lock);
	l->tls = ts;
	pthread_mutex_unlock(&l->config_lock);
}

int listener_service_set_tls(struct listener *l, const char *name, const struct listener_tls *tls,
			     const char **error_r)
{
	pthread_mutex_lock(&l->config_lock);
	struct listener_service *svc = l->services;
	while (svc != NULL && strcmp(svc->name, name) != 0)
		svc = svc->next;
	pthread_mutex_unlock(&l->config_lock);
	if (svc == NULL)
		return listener_fail(l, error_r, "service %s: not added", name);
	if (tls->mode != svc->tls_mode && l->state != LISTENER_NEW)
		return listener_fail(l, error_r, "service %s: the TLS mode changes only on restart",
				     name);
	svc->tls_mode = tls->mode;
	atomic_store(&svc->require_tls, tls->require_tls);
	atomic_store(&svc->handshake_timeout_sec, tls->handshake_timeout_sec);
	return 0;
}

static void conn_tls_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->tls_state != CONN_TLS_HANDSHAKE || c->closing)
		return;
	log_notice("tls", "handshake failed id=%llu service=%s peer=%s reason=timeout after %us",
		   (unsigned long long)c->info.id, c->info.service, c->info.peer,
		   atomic_load(&c->svc->handshake_timeout_sec));
	c->closing = true;
	c->reason = "tls handshake timeout";
	conn_finalize_later(c);
}

static void conn_tls_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->tls_flush_raw) {
		/* after a TLS failure libevent stopped writing; the alert in raw
		 * is all that is left to send */
		bufferevent_enable(c->raw, EV_WRITE);
		if (evbuffer_get_length(bufferevent_get_output(c->raw)) == 0)
			conn_finalize_later(c);
		return;
	}
	conn_check_output(c);
}

void conn_tls_output_drained(struct conn *c)
{
	/* the filter's callbacks own c->raw, so the plaintext side learns of
	 * drained ciphertext here; a fresh loop callback does the work */
	if (c->closing || c->paused || c->writable_cb != NULL)
		event_active(c->ev_wake, EV_TIMEOUT, 0);
}

size_t conn_tls_closing(struct conn *c)
{
	if (!c->tls_close_sent && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		c->tls_close_sent = true;
		tls_session_close(bufferevent_openssl_get_ssl(c->bev));
	}
	return conn_queued(c);
}

int conn_tls_begin(struct conn *c)
{
	struct listener *l = c->svc->l;
	struct ssl_st *ssl = NULL;
	const char *error = NULL;

	pthread_mutex_lock(&l->config_lock);
	struct tls_server *ts = l->tls;
	pthread_mutex_unlock(&l->config_lock);
	if (ts == NULL || tls_server_new_session(ts, c->svc->name, &ssl, &error) < 0) {
		log_warning("tls", "no tls id=%llu service=%s peer=%s: %s",
			    (unsigned long long)c->info.id, c->info.service, c->info.peer,
			    error != NULL ? error : "no certificates configured");
		return -1;
	}
	if (c->ev_handshake == NULL)
		c->ev_handshake = evtimer_new(c->w->base, conn_tls_timeout_cb, c);
	if (c->ev_wake == NULL)
		c->ev_wake = event_new(c->w->base, -1, 0, conn_tls_wake_cb, c);
	/* Deferred callbacks: the filter decrypts synchronously when an
	 * engine drains conn_input() below the watermark, and would call the
	 * read hook again from inside the engine's own read hook. */
	struct bufferevent *top = NULL;
	if (c->ev_handshake != NULL && c->ev_wake != NULL)
		top = bufferevent_openssl_filter_new(
		    c->w->base, c->raw, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (top == NULL) {
		/* libevent may or may not have taken ssl before failing; under
		 * memory exhaustion a leaked session beats a double free */
		log_error("tls", "out of memory starting tls id=%llu",
			  (unsigned long long)c->info.id);
		return -1;
	}
	c->bev = top;
	c->tls_state = CONN_TLS_HANDSHAKE;
	bufferevent_openssl_set_allow_dirty_shutdown(top, 1);
	bufferevent_setwatermark(c->raw, EV_WRITE, CONN_TLS_RAW_LOW, CONN_TLS_RAW_HIGH);
	bufferevent_setwatermark(top, EV_READ, 0, c->max_input);
	bufferevent_setwatermark(top, EV_WRITE, c->closing ? 0 : c->max_output / 4, 0);
	bufferevent_setcb(top, conn_read_cb, conn_write_cb, conn_event_cb, c);
	unsigned timeout = atomic_load(&c->svc->handshake_timeout_sec);
	if (timeout != 0) {
		struct timeval tv = { .tv_sec = (time_t)timeout, .tv_usec = 0 };
		event_add(c->ev_handshake, &tv);
	}
	short enable = EV_WRITE;
	if (!c->closing && !c->paused)
		enable |= EV_READ;
	bufferevent_enable(top, enable);
	return 0;
}

/* The handshake is done: record, log, and let the engine in. */
static void conn_tls_established(struct conn *c)
{
	struct tls_session_info ti;
	struct ssl_st *ssl = bufferevent_openssl_get_ssl(c->bev);

	event_del(c->ev_handshake);
	c->tls_state = CONN_TLS_ESTABLISHED;
	tls_session_describe(ssl, &ti);
	pthread_mutex_lock(&c->w->sessions_lock);
	c->info.tls = true;
	c->info.tls_resumed = ti.resumed;
	snprintf(c->info.tls_protocol, sizeof(c->info.tls_protocol), "%s", ti.protocol);
	snprintf(c->info.tls_cipher, sizeof(c->info.tls_cipher), "%s", ti.cipher);
	snprintf(c->info.tls_sni, sizeof(c->info.tls_sni), "%s", ti.sni);
	snprintf(c->info.tls_certificate, sizeof(c->info.tls_certificate), "%s", ti.certificate);
	snprintf(c->info.tls_client_subject, sizeof(c->info.tls_client_subject), "%s",
		 ti.client_subject);
	pthread_mutex_unlock(&c->w->sessions_lock);
	log_info("tls",
		 "handshake id=%llu service=%s peer=%s protocol=%s cipher=%s sni=%s cert=%s "
		 "resumed=%s%s%s%s",
		 (unsigned long long)c->info.id, c->info.service, c->info.peer, ti.protocol,
		 ti.cipher, ti.sni[0] != '\0' ? ti.sni : "-",
		 ti.certificate[0] != '\0' ? ti.certificate : "-", ti.resumed ? "yes" : "no",
		 ti.client_subject[0] != '\0' ? " client=\"" : "", ti.client_subject,
		 ti.client_subject[0] != '\0' ? "\"" : "");
	if (c->closing)
		return;
	if (!c->opened) {
		conn_open_service(c);
		if (!c->opened || c->closing)
			return;
	}
	if (!c->paused && evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
		c->svc->ops.read(c, c->state);
}

/* A TLS error: log it, drop what cannot be sent any more, flush the alert
 * OpenSSL left in raw, close. */
static void conn_tls_fail(struct conn *c, const char *reason)
{
	bool handshake = c->tls_state == CONN_TLS_HANDSHAKE;
	log_notice("tls", "%s id=%llu service=%s peer=%s reason=%s",
		   handshake ? "handshake failed" : "error", (unsigned long long)c->info.id,
		   c->info.service, c->info.peer, reason);
	event_del(c->ev_handshake);
	c->closing = true;
	c->reason = handshake ? "tls handshake failed" : "tls error";
	c->writable_cb = NULL;
	c->tls_flush_raw = true;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_drain(out, evbuffer_get_length(out));
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	/* libevent disables raw after this callback returns: enable later */
	event_active(c->ev_wake, EV_TIMEOUT, 0);
	conn_flush_deadline(c);
}

bool conn_tls_event(struct conn *c, short what)
{
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (c->tls_state == CONN_TLS_HANDSHAKE)
			conn_tls_established(c);
		return true;
	}
	if (c->tls_flush_raw)
		return true; /* already failing; later reports add nothing */
	if ((what & BEV_EVENT_ERROR) != 0) {
		unsigned long code = bufferevent_get_openssl_error(c->bev);
		if (code == 0)
			return false; /* a socket error: conn.c's path */
		char reason[160];
		tls_error_text(code, reason, sizeof(reason));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		conn_tls_fail(c, reason);
		return true;
	}
	if ((what & BEV_EVENT_EOF) != 0 && c->tls_state == CONN_TLS_HANDSHAKE) {
		log_notice("tls",
			   "handshake failed id=%llu service=%s peer=%s reason=client closed",
			   (unsigned long long)c->info.id, c->info.service, c->info.peer);
		event_del(c->ev_handshake);
		conn_begin_close(c, "client closed during tls handshake");
		return true;
	}
	return false;
}

bool conn_is_tls(const struct conn *c)
{
	return c->tls_state != CONN_TLS_NONE;
}

bool conn_starttls_available(const struct conn *c)
{
	struct listener *l = c->svc->l;
	if (c->svc->tls_mode != LISTENER_TLS_STARTTLS || c->tls_state != CONN_TLS_NONE ||
	    c->closing)
		return false;
	pthread_mutex_lock(&l->config_lock);
	struct tls_server *ts = l->tls;
	pthread_mutex_unlock(&l->config_lock);
	return ts != NULL && tls_server_has_certificate(ts, c->svc->name) == 1;
}

int conn_starttls(struct conn *c)
{
	if (!conn_starttls_available(c))
		return -1;
	struct evbuffer *in = bufferevent_get_input(c->raw);
	size_t dropped = evbuffer_get_length(in);
	if (dropped != 0) {
		evbuffer_drain(in, dropped);
		log_notice("tls",
			   "starttls id=%llu service=%s peer=%s discarded=%zu bytes sent after "
			   "STARTTLS in plaintext",
			   (unsigned long long)c->info.id, c->info.service, c->info.peer, dropped);
	}
	if (conn_tls_begin(c) < 0) {
		conn_begin_close(c, "tls unavailable");
		return -1;
	}
	return 0;
}

bool conn_plaintext_auth_allowed(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ESTABLISHED || !atomic_load(&c->svc->require_tls);
}
