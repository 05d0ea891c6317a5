/*
 * Notices about queued messages, as RFC 3461 asks and Postfix does:
 *  - a bounce (failure DSN) to the envelope sender for recipients that
 *    failed, unless they said NOTIFY=NEVER (or without FAILURE);
 *  - one delay notice after queue.delay_warning for recipients still
 *    pending whose NOTIFY allows it (the default does);
 *  - a success notice for recipients delivered with NOTIFY=SUCCESS;
 *  - never a notice to the null sender: an undeliverable bounce goes to
 *    the postmaster when queue.notify_postmaster is on, else it is
 *    dropped with a log line;
 *  - with queue.notify_postmaster, the postmaster also gets a copy of
 *    each bounce with the original's header only.
 * Notices are queued messages themselves (sender <>), so they are
 * delivered, retried and expired like any other.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/dsn.h"
#include "lib/fd_read.h"
#include "lib/mime_downgrade.h"
#include "node/log.h"
#include "node/outbound.h"
#include "node/queue_id.h"
#include "node/queue_manager_private.h"

int qm_enqueue_text(struct queue_manager *qm, const char *sender, const char *const *rcpts,
		    size_t nrcpt, const struct textbuf *text, char *id_r)
{
	struct queue_writer *w = NULL;
	struct queue_envelope env = {0};
	const char *error = NULL;
	char id[SMTP_QUEUE_ID_SIZE];

	smtp_queue_id_new(qm->node_id, id);
	snprintf(env.id, sizeof(env.id), "%s", id);
	snprintf(env.sender, sizeof(env.sender), "%s", sender);
	env.arrival = (int64_t)time(NULL);
	/* the returned original (or its header) may be 8-bit: declared, or
	 * downgraded for a server without 8BITMIME */
	env.body_8bit = mime_has_8bit(text->data, text->len);
	int ret = 0;
	for (size_t i = 0; i < nrcpt && ret == 0; i++)
		ret = queue_envelope_add_rcpt(&env, rcpts[i], "", QUEUE_NOTIFY_NEVER);
	if (ret == 0)
		ret = queue_writer_create(qm->spool, &w, &error);
	if (ret == 0)
		ret = queue_writer_write(w, text->data, text->len, &error);
	if (ret == 0)
		ret = queue_writer_commit(&w, &env, &error);
	queue_writer_abort(&w);
	queue_envelope_clear(&env);
	if (ret < 0) {
		log_error("queue", "cannot queue a notice: %s", error ? error : store_strerror(ret));
		return -1;
	}
	snprintf(id_r, QUEUE_ID_MAX, "%s", id);
	queue_manager_queued(qm, id);
	return 0;
}

struct qm_feed {
	struct dsn_writer *w;
	struct textbuf *out;
};

static int qm_feed_piece(const void *data, size_t n, void *ctx)
{
	struct qm_feed *f = ctx;
	dsn_original(f->w, data, n, f->out);
	return 0;
}

/* The original message into the notice, at most limit bytes of it. */
static int qm_feed_original(struct dsn_writer *w, int fd, uint64_t size, uint64_t limit,
			    struct textbuf *out)
{
	struct qm_feed f = {w, out};
	return fd_read_range(fd, size < limit ? size : limit, qm_feed_piece, &f);
}

static int qm_send_notice(struct queue_manager *qm, const struct queue_envelope *env, int fd,
			  enum dsn_kind kind, const struct dsn_rcpt *rcpts, size_t n,
			  const char *to, bool headers_only, int64_t now)
{
	char from[QUEUE_ADDRESS_MAX + 16];
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", qm->hostname);
	struct dsn_report r = {
	    .kind = kind,
	    .reporting_mta = qm->hostname,
	    .from = from,
	    .to = to,
	    .queue_id = env->id,
	    .envid = env->envid[0] != '\0' ? env->envid : NULL,
	    .received_from_mta = env->client[0] != '\0' ? env->client : NULL,
	    .arrival = env->arrival,
	    .now = now,
	    .rcpts = rcpts,
	    .nrcpt = n,
	    .headers_only = headers_only || env->ret == QUEUE_RET_HDRS ||
			    env->size > qm->cfg.bounce_size_limit,
	    .max_original = qm->cfg.bounce_size_limit,
	    .message_id_domain = qm->hostname,
	};
	struct textbuf text = TEXTBUF_INIT;
	struct dsn_writer *w = dsn_begin(&r, &text);
	if (w == NULL) {
		textbuf_free(&text);
		return -1;
	}
	int ret = qm_feed_original(w, fd, env->size,
				   r.headers_only ? env->size : qm->cfg.bounce_size_limit, &text);
	dsn_end(&w, &text);
	char id[QUEUE_ID_MAX] = "";
	const char *rcpt[1] = {to};
	if (ret == 0)
		ret = qm_enqueue_text(qm, "", rcpt, 1, &text, id);
	textbuf_free(&text);
	if (ret == 0)
		log_info("queue", "id=%s sender notice kind=%s to=<%s> recipients=%zu notice_id=%s",
			 env->id,
			 kind == DSN_FAILURE ? "bounce" : kind == DSN_DELAY ? "delay" : "success",
			 to, n, id);
	return ret;
}

static bool qm_wants(unsigned notify, unsigned bit)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (notify == 0) /* no NOTIFY: failures and delays, as Postfix */
		return bit != QUEUE_NOTIFY_SUCCESS;
	return (notify & bit) != 0;
}

/* host: room for r's Remote-MTA host name, as long as d is used. */
static void qm_dsn_rcpt(const struct queue_rcpt *r, int64_t until, struct dsn_rcpt *d,
			char (*host)[sizeof(r->remote_mta)])
{
	outbound_remote_host(r->remote_mta, *host, sizeof(*host));
	*d = (struct dsn_rcpt){
	    .address = r->address,
	    .orcpt = r->orcpt[0] != '\0' ? r->orcpt : NULL,
	    /* not tried yet (held, or waiting for a connection slot): a delay
	     * report must not carry a permanent status */
	    .status = r->status[0] != '\0'		  ? r->status
		      : r->state == QUEUE_RCPT_FAILED ? "5.0.0"
						      : "4.0.0",
	    .remote_mta = r->remote_mta[0] != '\0' ? *host : NULL,
	    .remote_said = r->remote_mta[0] != '\0' ? r->remote_mta : NULL,
	    .relayed = r->remote_mta[0] != '\0', /* sent on (one that reports was told to) */
	    .diagnostic = r->reason[0] != '\0' ? r->reason : NULL,
	    .last_attempt = (int64_t)time(NULL),
	    .will_retry_until = until,
	};
}

int qm_notify(struct queue_manager *qm, struct queue_envelope *env, int fd, int64_t now)
{
	size_t n = env->nrcpt, nfail = 0, nok = 0, ndelay = 0;
	struct dsn_rcpt *fail = calloc(n + 1, sizeof(*fail));
	struct dsn_rcpt *ok = calloc(n + 1, sizeof(*ok));
	struct dsn_rcpt *delay = calloc(n + 1, sizeof(*delay));
	char(*host)[sizeof(env->rcpts[0].remote_mta)] = calloc(n + 1, sizeof(*host));
	int ret = fail != NULL && ok != NULL && delay != NULL && host != NULL ? 0 : -1;
	bool warn = ret == 0 && !env->delay_warned && qm->cfg.delay_warning != 0 &&
		    now - env->arrival >= (int64_t)qm->cfg.delay_warning;
	int64_t until = env->arrival + (int64_t)qm->cfg.max_lifetime;

	bool null_sender = env->sender[0] == '\0';
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		/* A notice that fails (our own carry NOTIFY=NEVER) is a double
		 * bounce: the postmaster hears of it, unless it was for the
		 * postmaster already (that would never end). */
		bool double_bounce = null_sender && strcasecmp(r->address, qm->cfg.postmaster) != 0;
		if (r->state == QUEUE_RCPT_FAILED && !r->dsn_sent &&
		    (qm_wants(r->notify, QUEUE_NOTIFY_FAILURE) || double_bounce))
			qm_dsn_rcpt(r, 0, &fail[nfail++], &host[i]);
		else if (r->state == QUEUE_RCPT_DELIVERED && !r->dsn_sent &&
			 qm_wants(r->notify, QUEUE_NOTIFY_SUCCESS))
			qm_dsn_rcpt(r, 0, &ok[nok++], &host[i]);
		else if (warn && r->state == QUEUE_RCPT_PENDING &&
			 qm_wants(r->notify, QUEUE_NOTIFY_DELAY))
			qm_dsn_rcpt(r, until, &delay[ndelay++], &host[i]);
	}
	if (ret == 0 && nfail > 0) {
		if (!null_sender)
			ret = qm_send_notice(qm, env, fd, DSN_FAILURE, fail, nfail, env->sender,
					     false, now);
		if (ret == 0 && qm->cfg.notify_postmaster)
			ret = qm_send_notice(qm, env, fd, DSN_FAILURE, fail, nfail,
					     qm->cfg.postmaster, !null_sender, now);
		else if (null_sender)
			log_warning("queue",
				    "id=%s undeliverable notice discarded: recipients=%zu "
				    "(queue.notify_postmaster is off)",
				    env->id, nfail);
	}
	if (ret == 0 && nok > 0 && !null_sender)
		ret = qm_send_notice(qm, env, fd, DSN_SUCCESS, ok, nok, env->sender, false, now);
	if (ret == 0 && ndelay > 0 && !null_sender)
		ret = qm_send_notice(qm, env, fd, DSN_DELAY, delay, ndelay, env->sender, true, now);
	if (ret == 0) {
		for (size_t i = 0; i < n; i++)
			if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
				env->rcpts[i].dsn_sent = true;
		if (warn)
			env->delay_warned = true;
	}
	free(fail);
	free(ok);
	free(delay);
	free(host);
	return ret;
}
