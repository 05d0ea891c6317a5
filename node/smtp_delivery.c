/*
 * Local delivery of the message of an SMTP transaction: its bytes go to a
 * mail_writer as they arrive (never held whole in memory), behind the
 * Return-Path and Received: fields (smtp_received.c); at its end the
 * commit runs store_deliver() on the job pool, and the engine gets its
 * one reply when that returned, i.e. when the message is fsync'd in every
 * mailbox it reached. No 250 is ever sent before.
 *
 * One reply for many mailboxes. SMTP (unlike LMTP) answers a message
 * once, so per-mailbox store results fold into one reply, chosen so that
 * mail is never lost and, as far as one reply allows, never delivered
 * twice:
 *  - every mailbox got it: 250 2.0.0 Ok: queued as ID;
 *  - nothing was delivered: the reason, as a temporary failure (451
 *    4.3.0; 452 4.2.2 when a mailbox is full) or, for one mailbox whose
 *    whole quota is smaller than the message, 552 5.2.2. The client
 *    tries again later and nobody has a copy yet;
 *  - some mailboxes got it and some did not: 451 4.3.0. The delivered
 *    copies stay (they are durable and may already have been read), and
 *    the client's retry delivers to everyone again: those mailboxes get
 *    a duplicate. A 250 would lose the message for the others, which is
 *    worse, and there is no queue yet to retry them from here.
 * The third case is made rare on purpose: before delivering to several
 * mailboxes, the job checks that each one with a quota has room for the
 * message, and delivers to none if one has not (452 4.2.2). What remains
 * are store errors on one mailbox and quota races.
 *
 * A client that goes away while its message is being committed: the job
 * is cancelled. If it had not started, nothing is delivered (the client
 * never got a 250 and will send again). If it was running, it finishes:
 * the message is delivered, the client never hears so and will send it
 * again, so the recipients get it twice. Every MTA has this window
 * (RFC 1047); the log line says "the client left before the reply".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fd_read.h"
#include "node/job_pool.h"
#include "node/log.h"
#include "node/smtp_service_private.h"

struct smtp_commit {
	struct smtp_conn *sc; /* NULL once the connection is gone */
	const struct service_env *env;
	struct mail_writer *writer;
	struct smtp_local_rcpt *mailboxes; /* unique */
	struct store_rcpt *rcpts;
	size_t n;
	uint64_t size;
	/* copies for the log, which may be written after the connection is gone */
	char queue_id[SMTP_QUEUE_ID_SIZE];
	char sender[SMTP_PATH_MAX + 1];
	char user[SMTP_PATH_MAX + 1];
	char proto[8];
	unsigned long long conn_id;
	unsigned nrcpt;
	struct timespec started;
	/* results, written by the job */
	bool ran;
	bool precheck_full;
	int ret;
	char error[256];
};

/* The trace fields we write ahead of the client's message. */
void smtp_delivery_trace(struct smtp_conn *sc, bool return_path, struct textbuf *hdr)
{
	struct smtp_txn *t = &sc->txn;
	const struct conn_info *info = conn_info(sc->c);
	struct smtp_received_info r = {
	    .helo = smtp_session_helo(sc->sess),
	    .esmtp = smtp_session_esmtp(sc->sess),
	    .peer = info->peer,
	    .tls = info->tls,
	    .tls_protocol = info->tls_protocol,
	    .tls_cipher = info->tls_cipher,
	    .tls_client_subject = info->tls_client_subject,
	    .authenticated = smtp_session_user(sc->sess) != NULL,
	    .hostname = sc->env->hostname,
	    .queue_id = t->queue_id,
	    .for_rcpt = t->nrcpt == 1 ? t->first_rcpt : NULL,
	    .when = time(NULL),
	};
	if (return_path)
		smtp_return_path_format(t->sender, hdr);
	smtp_received_format(&r, hdr);
}

void smtp_delivery_begin(void *ctx, struct smtp_reply *reply)
{
	struct smtp_conn *sc = ctx;
	struct smtp_txn *t = &sc->txn;
	const struct conn_info *info = conn_info(sc->c);
	const char *error = NULL;
	struct textbuf hdr = TEXTBUF_INIT;

	if (smtp_queue_begin(sc, reply) != 0)
		return;
	int ret = mail_writer_create(sc->env->store, &t->writer, &error);
	if (ret == 0) {
		smtp_delivery_trace(sc, true, &hdr);
		ret = mail_writer_write(t->writer, hdr.data, hdr.len, &error);
		t->header_bytes = hdr.len;
	}
	textbuf_free(&hdr);
	if (ret < 0) {
		log_error("smtp", "id=%s conn=%llu cannot create the message file: %s", t->queue_id,
			  (unsigned long long)info->id, error ? error : store_strerror(ret));
		mail_writer_abort(&t->writer);
		*reply = (struct smtp_reply){
		    451, "4.3.0", "Error: the message cannot be stored now, try again later"};
	}
}

int smtp_delivery_write(void *ctx, const void *data, size_t len)
{
	struct smtp_conn *sc = ctx;
	struct smtp_txn *t = &sc->txn;
	const char *error = NULL;

	if (t->qwriter != NULL)
		return smtp_queue_write(sc, data, len);
	if (t->writer == NULL)
		return -1;
	int ret = mail_writer_write(t->writer, data, len, &error);
	if (ret < 0) {
		/* the engine answers 451 at the end of the message */
		log_error("smtp", "id=%s conn=%llu writing the message: %s", t->queue_id,
			  (unsigned long long)conn_info(sc->c)->id,
			  error ? error : store_strerror(ret));
		mail_writer_abort(&t->writer);
		return -1;
	}
	return 0;
}

/* By address, then as named: the first naming of a mailbox is the one
 * kept (its ORCPT), whatever qsort does with equal keys. */
static int smtp_rcpt_cmp(const void *a, const void *b)
{
	const struct smtp_local_rcpt *x = a, *y = b;
	int c = strcmp(x->address, y->address);
	return c != 0 ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

size_t smtp_txn_unique_mailboxes(struct smtp_txn *t)
{
	if (t->nlocal == 0)
		return 0;
	qsort(t->rcpts, t->nlocal, sizeof(*t->rcpts), smtp_rcpt_cmp);
	size_t n = 0;
	for (size_t i = 0; i < t->nlocal; i++)
		if (n == 0 || strcmp(t->rcpts[n - 1].address, t->rcpts[i].address) != 0)
			t->rcpts[n++] = t->rcpts[i];
		else /* named twice: both RCPTs' notices */
			t->rcpts[n - 1].notify =
			    smtp_notify_merge(t->rcpts[n - 1].notify, t->rcpts[i].notify);
	t->nlocal = n;
	return n;
}

/* The transaction's mailboxes, once each, into the commit. */
static int smtp_commit_rcpts(struct smtp_commit *cm, struct smtp_txn *t)
{
	size_t n = smtp_txn_unique_mailboxes(t);
	cm->rcpts = calloc(n, sizeof(*cm->rcpts));
	if (cm->rcpts == NULL)
		return -1;
	cm->mailboxes = t->rcpts;
	t->rcpts = NULL;
	t->nlocal = t->cap = 0;
	cm->n = n;
	for (size_t i = 0; i < n; i++) {
		cm->rcpts[i].address = cm->mailboxes[i].address;
		cm->rcpts[i].quota.bytes = cm->mailboxes[i].quota_bytes;
		cm->rcpts[i].quota.warn_percent = cm->env->quota_warning;
		cm->rcpts[i].result = STORE_E_TEMP;
	}
	return 0;
}

/* queue.archive: one more mailbox (no quota: an archive must not refuse). */
static int smtp_txn_add_archive(struct smtp_conn *sc)
{
	if (sc->env->archive[0] == '\0')
		return 0;
	return smtp_txn_add_mailbox(&sc->txn, sc->env->archive);
}

static void smtp_commit_free(struct smtp_commit *cm)
{
	mail_writer_abort(&cm->writer);
	free(cm->rcpts);
	free(cm->mailboxes);
	free(cm);
}

/* On the job pool: every mailbox with a quota has room, or nothing is
 * delivered. */
static bool smtp_commit_precheck(struct smtp_commit *cm)
{
	bool full = false;
	for (size_t i = 0; i < cm->n; i++) {
		struct store_rcpt *r = &cm->rcpts[i];
		const char *error = NULL;
		if (r->quota.bytes == 0)
			continue;
		int ret =
		    smtp_quota_room(cm->env->store, r->address, r->quota.bytes, cm->size, &error);
		if (ret == 0) {
			r->result = STORE_E_QUOTA;
			snprintf(r->error, sizeof(r->error), "mailbox full");
			full = true;
		}
		/* a read error: store_deliver decides for this mailbox */
	}
	if (full) {
		for (size_t i = 0; i < cm->n; i++)
			if (cm->rcpts[i].result != STORE_E_QUOTA)
				snprintf(cm->rcpts[i].error, sizeof(cm->rcpts[i].error),
					 "not attempted: another mailbox of the message is full");
	}
	return full;
}

static void smtp_commit_work(void *arg)
{
	struct smtp_commit *cm = arg;
	const char *error = NULL;
	struct store_delivery d = {0};

	cm->ran = true;
	if (cm->n > 1 && smtp_commit_precheck(cm)) {
		cm->precheck_full = true;
		mail_writer_abort(&cm->writer);
		return;
	}
	cm->ret = store_deliver(cm->env->store, &cm->writer, &d, cm->rcpts, cm->n, &error);
	if (cm->ret < 0)
		snprintf(cm->error, sizeof(cm->error), "%s",
			 error ? error : store_strerror(cm->ret));
}

void smtp_delivery_reply(const struct store_rcpt *r, size_t n, int ret, bool precheck_full,
			 uint64_t size, struct smtp_reply *reply, char *text, size_t text_size)
{
	size_t ok = 0, quota = 0;
	for (size_t i = 0; i < n && ret >= 0 && !precheck_full; i++) {
		if (r[i].result == STORE_OK)
			ok++;
		else if (r[i].result == STORE_E_QUOTA)
			quota++;
	}
	for (size_t i = 0; i < n && precheck_full; i++)
		if (r[i].result == STORE_E_QUOTA)
			quota++;
	*reply = (struct smtp_reply){0, NULL, NULL};
	if (n > 0 && ok == n)
		return;
	if (ok > 0) {
		snprintf(text, text_size,
			 "Error: delivered to %zu of %zu mailboxes only, try again later", ok, n);
		*reply = (struct smtp_reply){451, "4.3.0", text};
	} else if (n == 1 && quota == 1 && r[0].quota.bytes != 0 && size > r[0].quota.bytes) {
		snprintf(text, text_size,
			 "<%s>: Mailbox full: the message is larger than its quota", r[0].address);
		*reply = (struct smtp_reply){552, "5.2.2", text};
	} else if (quota > 0) {
		for (size_t i = 0; i < n; i++) {
			if (r[i].result == STORE_E_QUOTA) {
				snprintf(text, text_size, "<%s>: Mailbox full, try again later",
					 r[i].address);
				break;
			}
		}
		*reply = (struct smtp_reply){452, "4.2.2", text};
	} else {
		snprintf(text, text_size,
			 "Error: the message could not be stored, try again later");
		*reply = (struct smtp_reply){451, "4.3.0", text};
	}
}

/* The log lines and events of a finished commit. */
static void smtp_commit_log(struct smtp_commit *cm, const struct smtp_reply *reply, bool cancelled)
{
	size_t delivered = 0;
	for (size_t i = 0; i < cm->n; i++) {
		const struct store_rcpt *r = &cm->rcpts[i];
		bool ok = cm->ran && !cm->precheck_full && cm->ret >= 0 && r->result == STORE_OK;
		if (ok) {
			delivered++;
			log_info("smtp", "id=%s to=<%s> status=delivered%s", cm->queue_id,
				 r->address, r->quota_warning ? " quota_warning=yes" : "");
			if (cm->env->publish != NULL) {
				char ev[1024];
				snprintf(ev, sizeof(ev), "id=%s to=<%s> from=<%s> size=%llu",
					 cm->queue_id, r->address, cm->sender,
					 (unsigned long long)cm->size);
				cm->env->publish("delivery", ev, cm->env->publish_ctx);
			}
		} else if (cm->ran) {
			const char *why = cm->ret < 0		? cm->error
					  : r->error[0] != '\0' ? r->error
								: store_strerror(r->result);
			log_warning("smtp", "id=%s to=<%s> status=failed reason=\"%s\"",
				    cm->queue_id, r->address, why);
		}
	}
	const char *status = !cm->ran		      ? "cancelled"
			     : reply->code == 0	      ? "sent"
			     : reply->code / 100 == 5 ? "rejected"
						      : "deferred";
	log_msg(reply->code == 0 ? LOG_INFO : LOG_WARNING, "smtp",
		"id=%s conn=%llu from=<%s> size=%llu nrcpt=%u mailboxes=%zu delivered=%zu "
		"proto=%s user=%s status=%s delay=%.3fs%s%s",
		cm->queue_id, cm->conn_id, cm->sender, (unsigned long long)cm->size, cm->nrcpt,
		cm->n, delivered, cm->proto, cm->user[0] != '\0' ? cm->user : "-", status,
		elapsed_since(&cm->started), reply->code != 0 ? " reply=" : "",
		reply->code != 0 ? reply->text : "");
	if (cancelled && delivered > 0)
		log_warning("smtp",
			    "id=%s conn=%llu the client left before the reply: delivered to %zu "
			    "mailboxes; a client that sends it again causes a duplicate",
			    cm->queue_id, cm->conn_id, delivered);
}

static void smtp_commit_done(void *arg, bool cancelled)
{
	struct smtp_commit *cm = arg;
	struct smtp_reply reply;
	char text[512];

	smtp_delivery_reply(cm->rcpts, cm->n, cm->ret, cm->precheck_full, cm->size, &reply, text,
			    sizeof(text));
	smtp_commit_log(cm, &reply, cancelled);
	struct smtp_conn *sc = cm->sc;
	if (cancelled || sc == NULL) {
		smtp_commit_free(cm);
		return;
	}
	sc->commit = NULL;
	sc->job = NULL;
	enum smtp_want w =
	    smtp_session_commit_result(sc->sess, reply.code != 0 ? &reply : NULL, cm->queue_id);
	smtp_commit_free(cm);
	smtp_conn_want(sc, w);
}

void smtp_delivery_commit(void *ctx, bool accepted, const struct smtp_reply *refusal)
{
	struct smtp_conn *sc = ctx;
	struct smtp_txn *t = &sc->txn;
	const struct conn_info *info = conn_info(sc->c);

	if (!accepted) {
		if (refusal != NULL) /* as a refused RCPT is logged, Postfix's END-OF-MESSAGE */
			smtp_log_reject(sc, "END-OF-MESSAGE ", refusal, t->first_rcpt);
		else if (t->writer != NULL || t->header_bytes != 0)
			log_info("smtp",
				 "id=%s conn=%llu message discarded: the client stopped before "
				 "its end",
				 t->queue_id, (unsigned long long)info->id);
		mail_writer_abort(&t->writer);
		t->header_bytes = 0;
		return;
	}
	if (t->qwriter != NULL) {
		smtp_queue_commit(sc);
		return;
	}
	struct smtp_commit *cm = calloc(1, sizeof(*cm));
	if (cm != NULL)
		cm->env = sc->env;
	if (cm == NULL || t->writer == NULL || smtp_txn_add_archive(sc) < 0 ||
	    smtp_commit_rcpts(cm, t) < 0) {
		if (cm != NULL)
			smtp_commit_free(cm);
		sc->deferred = SMTP_DEFER_COMMIT;
		smtp_conn_defer(sc);
		return;
	}
	cm->sc = sc;
	cm->writer = t->writer;
	t->writer = NULL;
	cm->size = mail_writer_size(cm->writer);
	snprintf(cm->queue_id, sizeof(cm->queue_id), "%s", t->queue_id);
	snprintf(cm->sender, sizeof(cm->sender), "%s", t->sender);
	const char *user = smtp_session_user(sc->sess);
	snprintf(cm->user, sizeof(cm->user), "%s", user != NULL ? user : "");
	snprintf(cm->proto, sizeof(cm->proto), "%s", smtp_conn_proto(sc));
	cm->conn_id = (unsigned long long)info->id;
	cm->nrcpt = t->nrcpt;
	cm->started = t->started;
	struct job *job =
	    job_submit(sc->env->jobs, conn_base(sc->c), smtp_commit_work, smtp_commit_done, cm);
	if (job == NULL) {
		smtp_commit_free(cm);
		sc->deferred = SMTP_DEFER_COMMIT;
		smtp_conn_defer(sc);
		return;
	}
	sc->commit = cm;
	sc->job = job;
}

void smtp_delivery_deferred(struct smtp_conn *sc)
{
	static const struct smtp_reply fail = {
	    451, "4.3.0", "Error: the message could not be stored, try again later"};
	log_error("smtp", "id=%s conn=%llu out of memory committing the message", sc->txn.queue_id,
		  (unsigned long long)conn_info(sc->c)->id);
	smtp_conn_want(sc, smtp_session_commit_result(sc->sess, &fail, NULL));
}

void smtp_delivery_detach(struct smtp_conn *sc)
{
	if (sc->queued != NULL) {
		smtp_queue_detach(sc);
		return;
	}
	if (sc->job == NULL)
		return;
	job_cancel(sc->job);
	sc->commit->sc = NULL;
	sc->job = NULL;
	sc->commit = NULL;
}
