#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fd_read.h"
#include "lib/mime_downgrade.h"
#include "node/log.h"
#include "node/outbound.h"

#define BODY_CHUNK 65536
#define BODY_HIGH (4 * BODY_CHUNK)

struct outbound {
	struct outbound_request req;
	size_t host;	  /* index into the route */
	bool plaintext;	  /* TLS failed on this host: retry without STARTTLS */
	bool tls;	  /* STARTTLS done on the current connection */
	bool handshaking; /* between WANT_TLS and the handshake's end */
	bool body;	  /* streaming the message */
	bool closing;	  /* WANT_DONE: flushing, then finish */
	bool greeted;	  /* the current host said something */
	bool finishing;	  /* the current host's verdicts are in: ev_finish runs next */
	uint64_t offset;  /* of the body */
	struct textbuf downgraded; /* the 7-bit form, for a server without 8BITMIME */
	bool use_downgraded;
	struct bufferevent *bev;
	struct smtp_client *client;
	struct smtp_client_reply *replies; /* the last host's verdicts */
	char remote[320];
	struct event *ev_next;	 /* connect to the next host, off the callback stack */
	struct event *ev_finish; /* the current host is done, off the callback stack */
};

static void outbound_connect(struct outbound *o);

/* RFC 5321 4.5.3.2.6: up to 10 minutes for the reply to the end of data. */
#define DATA_DONE_TIMEOUT 600

/* Seconds of silence (read) and of no progress (write) allowed; 0 = no
 * limit. The timeouts are per wait, not per session: libevent restarts
 * them on every read and every write that makes progress. */
static void outbound_timeouts(struct outbound *o, unsigned read_s, unsigned write_s)
{
	struct timeval r = {.tv_sec = read_s}, w = {.tv_sec = write_s};
	bufferevent_set_timeouts(o->bev, read_s ? &r : NULL, write_s ? &w : NULL);
}

static void outbound_write(void *ctx, const void *data, size_t len)
{
	struct outbound *o = ctx;
	if (o->bev != NULL)
		bufferevent_write(o->bev, data, len);
}

static const struct smtp_client_backend outbound_backend = {.write = outbound_write};

static void outbound_drop_connection(struct outbound *o)
{
	if (o->bev != NULL)
		bufferevent_free(o->bev);
	o->bev = NULL;
	smtp_client_free(&o->client);
	o->tls = o->handshaking = o->body = o->closing = o->greeted = o->finishing = false;
	o->use_downgraded = false;
	o->offset = 0;
}

static void outbound_free(struct outbound *o)
{
	outbound_drop_connection(o);
	if (o->ev_next != NULL)
		event_free(o->ev_next);
	if (o->ev_finish != NULL)
		event_free(o->ev_finish);
	textbuf_free(&o->downgraded);
	free(o->replies);
	free(o);
}

/* A server that greets with 5xx refuses to talk at all, not to take the
 * mail: like Postfix (smtp_skip_5xx_greeting), the next host is tried,
 * and after the last the recipients wait (4xx) instead of bouncing. */
static void outbound_soften_refusal(struct outbound *o)
{
	for (size_t i = 0; i < o->req.nrcpt; i++) {
		struct smtp_client_reply *r = &o->replies[i];
		if (r->code / 100 != 5)
			continue;
		char text[sizeof(r->text)];
		snprintf(text, sizeof(text), "host refused to talk to me: %d %.*s", r->code,
			 (int)(sizeof(text) - 40), r->text);
		snprintf(r->text, sizeof(r->text), "%s", text);
		r->code -= 100;
		if (r->enhanced[0] == '5')
			r->enhanced[0] = '4';
	}
}

/* Every recipient with a 4xx (or no answer) may go to the next host. */
static bool outbound_worth_next_host(const struct outbound *o)
{
	for (size_t i = 0; i < o->req.nrcpt; i++)
		if (o->replies[i].code / 100 != 4 && o->replies[i].code != 0)
			return false;
	return true;
}

/* Why the current host is left for the next: what its first answered
 * recipient got (a connection failure or a timeout is every recipient's
 * 421 4.4.x, a refused greeting the softened 4xx). */
static void outbound_log_skip(const struct outbound *o)
{
	const struct smtp_client_reply *why = NULL;
	for (size_t i = 0; i < o->req.nrcpt && why == NULL; i++)
		if (o->replies[i].code != 0)
			why = &o->replies[i];
	char id[64] = "";
	if (o->req.queue_id != NULL)
		snprintf(id, sizeof(id), "id=%s ", o->req.queue_id);
	if (why != NULL)
		log_info("queue", "%srelay=%s skipped: %d %s%s%s", id, o->remote, why->code,
			 why->enhanced, why->enhanced[0] != '\0' ? " " : "", why->text);
	else
		log_info("queue", "%srelay=%s skipped: no answer", id, o->remote);
}

/* The current connection has its verdicts: next host, or report. Runs
 * from ev_finish only, since it frees what the callbacks use. */
static void outbound_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct outbound *o = arg;
	(void)fd;
	(void)what;
	for (size_t i = 0; i < o->req.nrcpt; i++) {
		const struct smtp_client_reply *r =
		    o->client != NULL ? smtp_client_rcpt_reply(o->client, i) : NULL;
		if (r != NULL)
			o->replies[i] = *r;
	}
	bool tls = o->tls;
	bool dsn = o->client != NULL && (smtp_client_extensions(o->client) & SMTP_EXT_DSN);
	if (o->client != NULL && !smtp_client_greeted(o->client))
		outbound_soften_refusal(o);
	outbound_drop_connection(o);
	if (outbound_worth_next_host(o) && o->host + 1 < o->req.route->n) {
		outbound_log_skip(o);
		o->host++;
		o->plaintext = false;
		event_active(o->ev_next, 0, 0);
		return;
	}
	o->req.done(o->req.ctx, o->replies, o->remote, tls, dsn);
	outbound_free(o);
}

static void outbound_finish_host(struct outbound *o)
{
	if (o->finishing)
		return;
	o->finishing = true;
	if (o->bev != NULL)
		bufferevent_disable(o->bev, EV_READ | EV_WRITE);
	event_active(o->ev_finish, 0, 0);
}

static void outbound_fail_all(struct outbound *o, int code, const char *enhanced,
			      const char *fmt, const char *what)
{
	char text[SMTP_CLIENT_TEXT_MAX];
	snprintf(text, sizeof(text), fmt, o->remote, what);
	if (o->client != NULL) {
		smtp_client_abort(o->client, code, enhanced, text);
	} else {
		for (size_t i = 0; i < o->req.nrcpt; i++) {
			o->replies[i].code = code;
			snprintf(o->replies[i].enhanced, sizeof(o->replies[i].enhanced), "%s",
				 enhanced);
			snprintf(o->replies[i].text, sizeof(o->replies[i].text), "%s", text);
		}
	}
	outbound_finish_host(o);
}

static int outbound_append(const void *data, size_t n, void *ctx)
{
	textbuf_append(ctx, data, n);
	return 0;
}

/* RFC 6152: no 8-bit data to a server without 8BITMIME. The message is
 * read whole (it is at most smtp.max_message_size) and its 8-bit parts
 * re-encoded as quoted-printable (lib/mime_downgrade.h); what cannot be
 * re-encoded (8-bit structured header fields) is sent as it is, as
 * Postfix does, and logged. 0, or -1 when the message cannot be read. */
static int outbound_downgrade(struct outbound *o)
{
	struct textbuf raw = TEXTBUF_INIT;
	if (fd_read_range(o->req.data_fd, o->req.size, outbound_append, &raw) < 0) {
		textbuf_free(&raw);
		return -1;
	}
	struct mime_downgrade_stats st = {0};
	textbuf_truncate(&o->downgraded, 0);
	int ret = mime_downgrade(raw.data, raw.len, &o->downgraded, &st);
	textbuf_free(&raw);
	if (ret < 0)
		return -1;
	log_info("queue", "8BITMIME downgrade for %s: parts_encoded=%u fields_encoded=%u%s",
		 o->remote, st.parts_encoded, st.fields_encoded,
		 ret == 1 ? " (8-bit header fields sent as they are)" : "");
	o->use_downgraded = true;
	return 0;
}

static void outbound_pump_body(struct outbound *o)
{
	char buf[BODY_CHUNK];
	struct evbuffer *out = bufferevent_get_output(o->bev);
	uint64_t size = o->use_downgraded ? o->downgraded.len : o->req.size;
	while (o->body && evbuffer_get_length(out) < BODY_HIGH) {
		size_t want = sizeof(buf);
		if (size - o->offset < want)
			want = (size_t)(size - o->offset);
		ssize_t n;
		if (o->use_downgraded) {
			if (want > 0)
				memcpy(buf, o->downgraded.data + o->offset, want);
			n = (ssize_t)want;
		} else {
			n = want > 0 ? pread(o->req.data_fd, buf, want, (off_t)o->offset) : 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && o->offset < size)) {
			log_error("queue", "reading the queued message: %s",
				  n < 0 ? strerror(errno) : "file shorter than its size");
			o->body = false;
			outbound_fail_all(o, 451, "4.3.0", "local error reading the message for %s%s",
					  "");
			return;
		}
		if (n == 0) {
			o->body = false;
			unsigned done = o->req.command_timeout > DATA_DONE_TIMEOUT ? o->req.command_timeout
										    : DATA_DONE_TIMEOUT;
			outbound_timeouts(o, done, o->req.command_timeout);
			enum smtp_client_want w = smtp_client_body_end(o->client);
			if (w == SMTP_CLIENT_WANT_DONE)
				o->closing = true;
			return;
		}
		smtp_client_body(o->client, buf, (size_t)n);
		o->offset += (uint64_t)n;
	}
}

static void outbound_start_tls(struct outbound *o);

static void outbound_want(struct outbound *o, enum smtp_client_want w)
{
	switch (w) {
	case SMTP_CLIENT_WANT_INPUT:
		break;
	case SMTP_CLIENT_WANT_TLS:
		outbound_start_tls(o);
		break;
	case SMTP_CLIENT_WANT_BODY:
		if (o->req.body_8bit && !(smtp_client_extensions(o->client) & SMTP_EXT_8BITMIME) &&
		    outbound_downgrade(o) < 0) {
			outbound_fail_all(o, 451, "4.3.0", "local error reading the message for %s%s",
					  "");
			return;
		}
		o->body = true;
		/* The server says nothing while it takes the body: only writes
		 * that stop making progress end it now. */
		outbound_timeouts(o, 0, o->req.command_timeout);
		outbound_pump_body(o);
		break;
	case SMTP_CLIENT_WANT_DONE:
		o->closing = true;
		break;
	}
	if (o->closing && o->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(o->bev)) == 0)
		outbound_finish_host(o);
}

static void outbound_read_cb(struct bufferevent *bev, void *arg)
{
	struct outbound *o = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!o->finishing && !o->closing && !o->handshaking && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		o->greeted = true;
		size_t len = v.iov_len;
		enum smtp_client_want w = smtp_client_input(o->client, v.iov_base, len);
		evbuffer_drain(in, len);
		outbound_want(o, w);
		if (w == SMTP_CLIENT_WANT_TLS || w == SMTP_CLIENT_WANT_DONE)
			break; /* what follows STARTTLS's 220 is not to be trusted */
	}
}

static void outbound_write_cb(struct bufferevent *bev, void *arg)
{
	struct outbound *o = arg;
	(void)bev;
	if (o->finishing)
		return;
	if (o->body)
		outbound_pump_body(o);
	if (o->closing && o->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(o->bev)) == 0)
		outbound_finish_host(o);
}

static void outbound_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct outbound *o = arg;
	(void)bev;
	if (o->finishing)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (o->handshaking) {
			o->handshaking = false;
			o->tls = true;
			outbound_want(o, smtp_client_tls_started(o->client));
		} else {
			/* connected: the write timeout timed the connect until now */
			outbound_timeouts(o, o->req.command_timeout, o->req.command_timeout);
		}
		return;
	}
	if (o->handshaking) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char err[256] = "handshake failed";
		if (e != 0)
			ERR_error_string_n(e, err, sizeof(err));
		log_warning("queue", "TLS with %s failed (%s): trying again without TLS", o->remote,
			    err);
		outbound_drop_connection(o);
		o->plaintext = true;
		event_active(o->ev_next, 0, 0);
		return;
	}
	if (o->closing) {
		outbound_finish_host(o);
		return;
	}
	const char *stage = o->client != NULL ? smtp_client_stage(o->client) : "connecting";
	if (what & BEV_EVENT_TIMEOUT)
		outbound_fail_all(o, 421, "4.4.2", "conversation with %s timed out while %s", stage);
	else if (!o->greeted)
		outbound_fail_all(o, 421, "4.4.1", "connect to %s: %s",
				  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		outbound_fail_all(o, 421, "4.4.2", "lost connection with %s while %s", stage);
}

static void outbound_start_tls(struct outbound *o)
{
	SSL *ssl = SSL_new(o->req.tls);
	if (ssl == NULL) {
		outbound_fail_all(o, 421, "4.7.0", "cannot start TLS with %s%s", "");
		return;
	}
	const char *name = o->req.route->hosts[o->host].name;
	SSL_set_tlsext_host_name(ssl, name);
	struct bufferevent *top = bufferevent_openssl_filter_new(
	    o->req.base, o->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (top == NULL) {
		SSL_free(ssl);
		outbound_fail_all(o, 421, "4.7.0", "cannot start TLS with %s%s", "");
		return;
	}
	o->bev = top;
	o->handshaking = true;
	bufferevent_openssl_set_allow_dirty_shutdown(top, 1);
	bufferevent_setcb(top, outbound_read_cb, outbound_write_cb, outbound_event_cb, o);
	outbound_timeouts(o, o->req.command_timeout, o->req.command_timeout);
	bufferevent_setwatermark(top, EV_WRITE, BODY_CHUNK, 0);
	bufferevent_enable(top, EV_READ | EV_WRITE);
}

static void outbound_connect(struct outbound *o)
{
	const struct outbound_host *h = &o->req.route->hosts[o->host];
	snprintf(o->remote, sizeof(o->remote), "%s[%s]:%u", h->name, h->addr, (unsigned)h->port);
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[96];
	snprintf(spec, sizeof(spec), strchr(h->addr, ':') ? "[%s]:%u" : "%s:%u", h->addr,
		 (unsigned)h->port);
	struct smtp_client_settings set = {
	    .helo_name = o->req.helo_name,
	    .starttls = o->req.tls != NULL && !o->plaintext,
	    .sender = o->req.sender,
	    .rcpts = o->req.rcpts,
	    .nrcpt = o->req.nrcpt,
	    .message_size = o->req.size,
	    .body_8bit = o->req.body_8bit,
	    .smtputf8 = o->req.smtputf8,
	    .envid = o->req.envid,
	    .ret = o->req.ret,
	};
	o->client = smtp_client_new(&set, &outbound_backend, o);
	o->bev = o->client != NULL ? bufferevent_socket_new(o->req.base, -1, BEV_OPT_CLOSE_ON_FREE)
				   : NULL;
	if (o->bev == NULL) {
		outbound_fail_all(o, 451, "4.3.0", "out of memory connecting to %s%s", "");
		return;
	}
	bufferevent_setcb(o->bev, outbound_read_cb, outbound_write_cb, outbound_event_cb, o);
	/* libevent times the connect with the write timeout */
	outbound_timeouts(o, o->req.command_timeout, o->req.connect_timeout);
	bufferevent_setwatermark(o->bev, EV_WRITE, BODY_CHUNK, 0);
	bufferevent_enable(o->bev, EV_READ | EV_WRITE);
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0 ||
	    bufferevent_socket_connect(o->bev, (struct sockaddr *)&ss, sslen) < 0) {
		outbound_fail_all(o, 421, "4.4.1", "connect to %s: %s", strerror(errno));
		return;
	}
}

static void outbound_next_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	outbound_connect(arg);
}

void outbound_remote_host(const char *remote, char *host, size_t size)
{
	snprintf(host, size, "%.*s", (int)strcspn(remote, "["), remote);
}

struct outbound *outbound_start(const struct outbound_request *req)
{
	struct outbound *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->req = *req;
	o->replies = calloc(req->nrcpt, sizeof(*o->replies));
	o->ev_next = event_new(req->base, -1, 0, outbound_next_cb, o);
	o->ev_finish = event_new(req->base, -1, 0, outbound_finish_cb, o);
	if (o->replies == NULL || o->ev_next == NULL || o->ev_finish == NULL ||
	    req->route->n == 0) {
		outbound_free(o);
		return NULL;
	}
	event_active(o->ev_next, 0, 0);
	return o;
}

void outbound_cancel(struct outbound **o)
{
	if (*o != NULL)
		outbound_free(*o);
	*o = NULL;
}

SSL_CTX *outbound_tls_context(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	/* opportunistic: any certificate; the floor is TLS 1.2 as on our servers */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}
