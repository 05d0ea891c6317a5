/*
 * The SMTP services' listener hooks (node/smtp_service.h is the manual):
 * one proto/smtp session per connection, fed from the connection's input
 * buffer, and what the engine waits for.
 *
 * The input pump hands the engine at most SMTP_INPUT_PIECE bytes at a
 * time and only while it wants input: while an AUTH exchange or a commit
 * runs, client bytes stay in the listener's buffer, where max_input
 * bounds them and pauses reading (the engine itself then holds at most
 * the rest of one piece). Between pieces the pump waits for the output
 * queue to drain to the listener's resume mark, so the replies to a
 * pipelined batch never outgrow max_output.
 *
 * STARTTLS follows the contract in node/listener.h: the engine consumes
 * the STARTTLS line, queues "220 2.0.0 Ready to start TLS" and stops
 * reading the piece; the piece is drained, conn_starttls() discards
 * whatever else was buffered, and the engine is reset (it forgets EHLO,
 * the envelope and any authentication) before TLS bytes can arrive.
 *
 * Asynchronous answers (auth outcomes, commit results) come back on this
 * connection's loop and are given to the engine from there; an answer
 * known at once (a malformed client response, a job that could not be
 * queued) is deferred to the next loop iteration, because the engine
 * must not be re-entered from inside one of its backend calls.
 *
 * The greeting waits for the DNSBL verdict (smtp service only, not
 * submission or smtps, whose clients authenticate and often sit on
 * dynamic addresses that lists name): the engine session is created only
 * once the client is known not to be listed, so the 220 is its first
 * byte; a listed client gets "554 5.7.1 Service unavailable; client
 * [addr] blocked using ZONE" instead, and the connection closes. Input
 * sent before the greeting waits in the listener's buffer. With implicit
 * TLS the listener finishes the handshake before the open hook, as ever.
 *
 * Timeouts (Postfix's smtpd_timeout and a bound on a whole message):
 * smtp.command_timeout without a byte from the client while the engine
 * waits for one, or smtp.data_timeout from the first DATA/BDAT to the
 * message's end, gets "421 4.4.2 HOST Error: timeout exceeded" and the
 * connection closes (a message in progress is dropped, never delivered).
 *
 * Drain (SIGTERM): a session answers 421 4.3.2 and closes; one whose
 * message is being committed first gets its commit reply (250 or the
 * failure) and then the 421, so a durable message is never left without
 * its 250 when the client is still there to read it.
 */
#include "node/smtp_service.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/auth.h"
#include "node/log.h"
#include "node/smtp_dnsbl.h"
#include "node/smtp_service_private.h"

static void smtp_timeout_arm(struct event *ev, unsigned sec)
{
	struct timeval tv = {.tv_sec = sec};
	if (ev != NULL && sec != 0)
		evtimer_add(ev, &tv);
}

static void smtp_be_data_begin(void *ctx, struct smtp_reply *reply)
{
	struct smtp_conn *sc = ctx;
	smtp_delivery_begin(ctx, reply);
	if (reply->code == 0)
		smtp_timeout_arm(sc->ev_data_timeout, sc->policy->smtp.data_timeout);
}

static void smtp_be_data_commit(void *ctx, bool accepted, const struct smtp_reply *refusal)
{
	struct smtp_conn *sc = ctx;
	evtimer_del(sc->ev_data_timeout);
	smtp_delivery_commit(ctx, accepted, refusal);
}

static void smtp_be_reset(void *ctx)
{
	struct smtp_conn *sc = ctx;
	evtimer_del(sc->ev_data_timeout);
	smtp_envelope_reset(ctx);
}

static void smtp_be_write(void *ctx, const void *data, size_t len)
{
	struct smtp_conn *sc = ctx;
	if (sc->closing)
		return;
	/* over the output limit: the listener is closing the connection */
	if (conn_write(sc->c, data, len) < 0)
		sc->closing = true;
}

static const struct smtp_backend smtp_backend = {
    .write = smtp_be_write,
    .auth_begin = smtp_auth_begin,
    .mail_from = smtp_envelope_mail_from,
    .rcpt_to = smtp_envelope_rcpt_to,
    .data_begin = smtp_be_data_begin,
    .data_write = smtp_delivery_write,
    .data_commit = smtp_be_data_commit,
    .reset = smtp_be_reset,
};

void smtp_conn_settings(struct smtp_conn *sc, struct smtp_settings *set)
{
	const struct service_env *env = sc->env;
	bool tls = conn_is_tls(sc->c);
	bool plaintext = conn_plaintext_auth_allowed(sc->c);

	sc->mechanisms[0] = sc->mechanisms_tls[0] = '\0';
	if (env->auth != NULL && sc->auth != NULL) {
		env->auth->mechanisms(env->auth_ctx, tls, plaintext, sc->mechanisms,
				      sizeof(sc->mechanisms));
		if (!tls) /* the engine asks only before TLS */
			env->auth->mechanisms(env->auth_ctx, true, true, sc->mechanisms_tls,
					      sizeof(sc->mechanisms_tls));
	}
	*set = (struct smtp_settings){
	    .hostname = env->hostname,
	    .sasl_mechanisms = sc->mechanisms,
	    .sasl_mechanisms_tls = tls ? NULL : sc->mechanisms_tls,
	    .max_message_size = env->smtp_max_message_size,
	    .max_recipients = env->smtp_max_recipients,
	    .tls_active = tls,
	    .starttls_available = !tls && conn_starttls_available(sc->c),
	    .plaintext_auth_allowed = plaintext,
	    /* submission, and smtps as RFC 8314's "submissions" */
	    .auth_required = sc->service == SERVICE_SUBMISSION || sc->service == SERVICE_SMTPS,
	    .chunking = true,
	    /* the queue sends the notifications */
	    .dsn = env->queue != NULL,
	};
}

static void smtp_close_now(struct smtp_conn *sc)
{
	if (!sc->closing) {
		sc->closing = true;
		conn_close(sc->c);
	}
}

static void smtp_start_tls(struct smtp_conn *sc)
{
	/* the go-ahead is queued: the client now expects a handshake, so a
	 * failure here cannot fall back to plaintext */
	if (conn_starttls(sc->c) < 0) {
		log_warning("smtp", "conn=%llu STARTTLS could not be started; closing",
			    (unsigned long long)conn_info(sc->c)->id);
		smtp_close_now(sc);
		return;
	}
	if (sc->auth != NULL)
		sc->env->auth->handle_set_tls(sc->auth, true);
	struct smtp_settings set;
	smtp_conn_settings(sc, &set);
	sc->want = smtp_session_tls_started(sc->sess, &set);
}

/* Acts on w without pumping. */
static void smtp_conn_handle(struct smtp_conn *sc, enum smtp_want w)
{
	if (sc->shutdown_pending && w != SMTP_WANT_COMMIT && w != SMTP_WANT_CLOSE &&
	    !smtp_session_in_data(sc->sess)) {
		sc->shutdown_pending = false;
		w = smtp_session_shutdown(sc->sess);
	}
	sc->want = w;
	if (w == SMTP_WANT_TLS)
		smtp_start_tls(sc);
	else if (w == SMTP_WANT_CLOSE)
		smtp_close_now(sc);
}

static void smtp_writable(struct conn *c, void *state)
{
	(void)c;
	smtp_conn_pump(state);
}

void smtp_conn_pump(struct smtp_conn *sc)
{
	struct evbuffer *in = conn_input(sc->c);

	if (sc->sess == NULL)
		return; /* before the greeting: the DNSBL verdict is pending */
	while (!sc->closing && sc->want == SMTP_WANT_INPUT) {
		size_t len = evbuffer_get_length(in);
		if (len == 0 || !conn_when_writable(sc->c, smtp_writable))
			return;
		if (len > SMTP_INPUT_PIECE)
			len = SMTP_INPUT_PIECE;
		const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)len);
		if (p == NULL) {
			log_error("smtp", "conn=%llu out of memory reading input",
				  (unsigned long long)conn_info(sc->c)->id);
			smtp_close_now(sc);
			return;
		}
		enum smtp_want w = smtp_session_input(sc->sess, p, len);
		/* all of the piece is the engine's now: consumed, held as
		 * pipelined input, or discarded after STARTTLS */
		evbuffer_drain(in, len);
		smtp_conn_handle(sc, w);
	}
}

void smtp_conn_want(struct smtp_conn *sc, enum smtp_want w)
{
	smtp_conn_handle(sc, w);
	smtp_conn_pump(sc);
}

static void smtp_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *sc = arg;
	enum smtp_deferred d = sc->deferred;
	(void)fd;
	(void)what;

	sc->deferred = SMTP_DEFER_NONE;
	if (sc->closing)
		return;
	if (d == SMTP_DEFER_AUTH)
		smtp_conn_want(sc,
			       smtp_session_auth_result(sc->sess, sc->deferred_auth, NULL, NULL));
	else if (d == SMTP_DEFER_COMMIT)
		smtp_delivery_deferred(sc);
}

void smtp_conn_defer(struct smtp_conn *sc)
{
	event_active(sc->ev_defer, EV_TIMEOUT, 0);
}

bool smtp_conn_may_relay(const struct smtp_conn *sc)
{
	return sc->trusted || (sc->sess != NULL && smtp_session_user(sc->sess) != NULL);
}

const char *smtp_conn_proto(const struct smtp_conn *sc)
{
	bool tls = conn_is_tls(sc->c);
	bool auth = smtp_session_user(sc->sess) != NULL;
	if (!smtp_session_esmtp(sc->sess))
		return "SMTP";
	return tls && auth ? "ESMTPSA" : tls ? "ESMTPS" : auth ? "ESMTPA" : "ESMTP";
}

static void smtp_free(struct smtp_conn *sc)
{
	smtp_dnsbl_cancel(&sc->dnsbl);
	smtp_delivery_detach(sc);
	/* a message still arriving is dropped (data_commit(false)) */
	smtp_session_free(&sc->sess);
	smtp_txn_clear(&sc->txn);
	if (sc->auth != NULL)
		sc->env->auth->handle_free(&sc->auth);
	if (sc->ev_defer != NULL)
		event_free(sc->ev_defer);
	if (sc->ev_command_timeout != NULL)
		event_free(sc->ev_command_timeout);
	if (sc->ev_data_timeout != NULL)
		event_free(sc->ev_data_timeout);
	smtp_policy_settings_put(&sc->policy);
	free(sc);
}

/* "192.0.2.1" or "2001:db8::1": the client as replies and logs name it. */
static void smtp_client_text(const struct smtp_conn *sc, char *out, size_t size)
{
	if (!sc->client_known) {
		snprintf(out, size, "unknown");
		return;
	}
	cidr_format(&sc->client, out, size);
	out[strcspn(out, "/")] = '\0';
}

static void smtp_timeout(evutil_socket_t fd, short what, void *arg, const char *which)
{
	struct smtp_conn *sc = arg;
	const struct conn_info *info = conn_info(sc->c);
	char line[320];
	(void)fd;
	(void)what;

	if (sc->closing)
		return;
	log_notice("smtp", "conn=%llu id=%s peer=%s %s timeout exceeded: closing",
		   (unsigned long long)info->id, sc->txn.queue_id, info->peer, which);
	int n = snprintf(line, sizeof(line), "421 4.4.2 %s Error: timeout exceeded\r\n",
			 sc->env->hostname);
	conn_write(sc->c, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
	smtp_close_now(sc);
}

static void smtp_command_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *sc = arg;
	/* waiting on us (the DNSBL verdict, an auth outcome, a commit), not
	 * on the client: those have their own bounds */
	if (sc->sess == NULL || sc->want != SMTP_WANT_INPUT) {
		smtp_timeout_arm(sc->ev_command_timeout, sc->policy->smtp.command_timeout);
		return;
	}
	smtp_timeout(fd, what, arg, "command");
}

static void smtp_data_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *sc = arg;
	if (sc->want == SMTP_WANT_COMMIT)
		return; /* the whole message arrived: the commit decides */
	smtp_timeout(fd, what, arg, "data");
}

/* Creates the engine session, which writes the 220 greeting: 0, or -1
 * after writing a 421 (the caller closes or frees). */
static int smtp_session_start(struct smtp_conn *sc)
{
	struct smtp_settings set;
	smtp_conn_settings(sc, &set);
	sc->sess = smtp_session_new(&set, &smtp_backend, sc);
	if (sc->sess == NULL) {
		conn_write(sc->c, "421 4.3.0 Service not available, try again later\r\n", 51);
		return -1;
	}
	smtp_timeout_arm(sc->ev_command_timeout, sc->policy->smtp.command_timeout);
	return 0;
}

/* A listed client: the 554 instead of a greeting, and one log line. */
static void smtp_dnsbl_refuse(struct smtp_conn *sc, const char *zone, bool cached)
{
	const struct conn_info *info = conn_info(sc->c);
	char addr[CIDR_TEXT_MAX], line[512];

	smtp_client_text(sc, addr, sizeof(addr));
	int n = snprintf(line, sizeof(line),
			 "554 5.7.1 Service unavailable; client [%s] blocked using %s\r\n", addr, zone);
	log_notice("smtp", "reject conn=%llu peer=%s: 554 5.7.1 client [%s] blocked using %s%s",
		   (unsigned long long)info->id, info->peer, addr, zone, cached ? " (cached)" : "");
	conn_write(sc->c, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
}

static void smtp_dnsbl_verdict(const char *zone, void *ctx)
{
	struct smtp_conn *sc = ctx;

	sc->dnsbl = NULL;
	if (sc->closing)
		return;
	if (zone != NULL) {
		smtp_dnsbl_refuse(sc, zone, false);
		smtp_close_now(sc);
		return;
	}
	if (smtp_session_start(sc) < 0) {
		smtp_close_now(sc);
		return;
	}
	smtp_conn_pump(sc); /* what the client sent before the greeting */
}

/* Starts the DNSBL check of the smtp service: 1 the verdict is pending,
 * 0 go on and greet, -1 listed (the 554 is written). */
static int smtp_dnsbl_begin(struct smtp_conn *sc)
{
	const struct node_config_smtp *cfg = &sc->policy->smtp;
	struct smtp_dnsbl *d = smtp_policy_dnsbl(sc->env->smtp_policy);
	char zone[NODE_CONFIG_DOMAIN_SIZE];
	bool listed = false;

	if (sc->service != SERVICE_SMTP || cfg->n_dnsbl == 0 || d == NULL || !sc->client_known ||
	    cidr_list_contains(&cfg->dnsbl_exceptions, &sc->client))
		return 0;
	int ret = smtp_dnsbl_check(d, conn_base(sc->c), &sc->client, cfg,
				   (unsigned long long)conn_info(sc->c)->id, smtp_dnsbl_verdict, sc,
				   &sc->dnsbl, &listed, zone);
	if (ret == 0)
		return 1;
	if (ret == 1 && listed) {
		smtp_dnsbl_refuse(sc, zone, true);
		return -1;
	}
	return 0;
}

static void *smtp_open(struct conn *c, void *service_ctx)
{
	const struct service_instance *inst = service_ctx;
	const struct service_env *env = inst->env;
	const struct conn_info *info = conn_info(c);
	struct smtp_conn *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	sc->c = c;
	sc->env = env;
	sc->service = inst->id;
	sc->want = SMTP_WANT_INPUT;
	sc->policy = smtp_policy_settings_get(env->smtp_policy);
	sc->client_known = cidr_peer_parse(info->peer, &sc->client) == 0;
	sc->trusted = sc->client_known &&
		      cidr_list_contains(&sc->policy->smtp.trusted_networks, &sc->client);
	sc->ev_command_timeout = evtimer_new(conn_base(c), smtp_command_timeout, sc);
	sc->ev_data_timeout = evtimer_new(conn_base(c), smtp_data_timeout, sc);
	sc->ev_defer = event_new(conn_base(c), -1, 0, smtp_defer_cb, sc);
	if (sc->ev_defer != NULL && env->auth != NULL) {
		struct auth_session_params p = {
		    .service = "smtp",
		    .peer = info->peer,
		    .conn_id = info->id,
		    .tls = conn_is_tls(c),
		    .plaintext_allowed = conn_plaintext_auth_allowed(c),
		};
		sc->auth = env->auth->handle_new(env->auth_ctx, conn_base(c), &p);
	}
	if (sc->ev_defer == NULL || sc->ev_command_timeout == NULL || sc->ev_data_timeout == NULL ||
	    (env->auth != NULL && sc->auth == NULL)) {
		log_error("smtp", "conn=%llu out of memory starting the session",
			  (unsigned long long)info->id);
		conn_write(c, "421 4.3.0 Service not available, try again later\r\n", 51);
		smtp_free(sc);
		return NULL;
	}
	int dnsbl = smtp_dnsbl_begin(sc);
	if (dnsbl == 1) {
		/* the pre-greeting wait is bounded by dnsbl_timeout */
		return sc;
	}
	if (dnsbl < 0 || smtp_session_start(sc) < 0) {
		smtp_free(sc);
		return NULL;
	}
	return sc;
}

static void smtp_read(struct conn *c, void *state)
{
	struct smtp_conn *sc = state;
	(void)c;
	if (sc->sess != NULL)
		smtp_timeout_arm(sc->ev_command_timeout, sc->policy->smtp.command_timeout);
	smtp_conn_pump(sc);
}

static void smtp_close(struct conn *c, void *state)
{
	(void)c;
	smtp_free(state);
}

static void smtp_shutdown(struct conn *c, void *state)
{
	struct smtp_conn *sc = state;
	(void)c;
	if (sc->closing)
		return;
	if (sc->sess == NULL) { /* still waiting for the DNSBL verdict */
		static const char bye[] = "421 4.3.2 Service shutting down\r\n";
		conn_write(sc->c, bye, sizeof(bye) - 1);
		smtp_close_now(sc);
		return;
	}
	if (sc->want == SMTP_WANT_COMMIT || smtp_session_in_data(sc->sess)) {
		/* 421 after the message's reply: a transfer under way may end
		 * within the drain time (the drain's end closes it otherwise) */
		sc->shutdown_pending = true;
		return;
	}
	smtp_conn_handle(sc, smtp_session_shutdown(sc->sess));
}

const struct service_ops smtp_service_ops = {
    .open = smtp_open,
    .read = smtp_read,
    .close = smtp_close,
    .shutdown = smtp_shutdown,
    .refuse_message = "421 4.7.0 Too many connections, try again later\r\n",
};
