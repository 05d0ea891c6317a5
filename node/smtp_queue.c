/*
 * Transactions with remote recipients (relayed, or reached through an
 * alias) go whole into this node's spool, local mailboxes included, so
 * that one durable write answers the client and a later retry can never
 * deliver a local copy twice. The message is written into a queue_writer
 * as it arrives, behind our Received: field (Return-Path: is added at
 * final delivery); the commit (data and envelope durable, group commit)
 * runs on the job pool, and the 250 is sent when it returned. The queue
 * manager then delivers: local mailboxes at once, remote ones by MX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fd_read.h"
#include "node/job_pool.h"
#include "node/log.h"
#include "node/queue_manager.h"
#include "node/smtp_service_private.h"
#include "storage/queue.h"

struct smtp_queued {
	struct smtp_conn *sc; /* NULL once the connection is gone */
	struct queue_manager *qm;
	struct queue_writer *w;
	struct queue_envelope env;
	unsigned long long conn_id;
	char proto[8];
	char user[SMTP_PATH_MAX + 1];
	struct timespec started;
	int ret;
	char error[256];
};

int smtp_queue_begin(struct smtp_conn *sc, struct smtp_reply *reply)
{
	struct smtp_txn *t = &sc->txn;
	const char *error = NULL;
	struct textbuf hdr = TEXTBUF_INIT;

	if (t->nremote == 0 && !t->notify_success)
		return 0;
	int ret = sc->env->queue != NULL
		      ? queue_writer_create(queue_manager_spool(sc->env->queue), &t->qwriter, &error)
		      : STORE_E_TEMP;
	if (ret == 0) {
		smtp_delivery_trace(sc, false, &hdr);
		ret = queue_writer_write(t->qwriter, hdr.data, hdr.len, &error);
		t->header_bytes = hdr.len;
	}
	textbuf_free(&hdr);
	if (ret < 0) {
		log_error("smtp", "id=%s conn=%llu cannot create the queue file: %s", t->queue_id,
			  (unsigned long long)conn_info(sc->c)->id,
			  error ? error : sc->env->queue == NULL ? "no queue" : store_strerror(ret));
		queue_writer_abort(&t->qwriter);
		*reply = (struct smtp_reply){
		    451, "4.3.0", "Error: the message cannot be queued now, try again later"};
		return -1;
	}
	return 1;
}

int smtp_queue_write(struct smtp_conn *sc, const void *data, size_t len)
{
	struct smtp_txn *t = &sc->txn;
	const char *error = NULL;
	int ret = queue_writer_write(t->qwriter, data, len, &error);
	if (ret < 0) {
		log_error("smtp", "id=%s conn=%llu writing the queue file: %s", t->queue_id,
			  (unsigned long long)conn_info(sc->c)->id,
			  error ? error : store_strerror(ret));
		queue_writer_abort(&t->qwriter);
		return -1;
	}
	return 0;
}

/* The envelope: local mailboxes once each, the remote recipients as the
 * client named them, and the archive mailbox. */
static int smtp_queue_envelope(struct smtp_conn *sc, struct queue_envelope *env)
{
	struct smtp_txn *t = &sc->txn;
	const struct conn_info *info = conn_info(sc->c);
	char literal[64];
	int ret = 0;

	snprintf(env->id, sizeof(env->id), "%s", t->queue_id);
	snprintf(env->sender, sizeof(env->sender), "%s", t->sender);
	snprintf(env->envid, sizeof(env->envid), "%s", t->envid);
	env->ret = t->ret_hdrs ? QUEUE_RET_HDRS : t->ret_full ? QUEUE_RET_FULL : QUEUE_RET_DEFAULT;
	env->body_8bit = t->body_8bit;
	env->arrival = (int64_t)time(NULL);
	if (smtp_received_peer_literal(info->peer, literal, sizeof(literal)) < 0)
		snprintf(literal, sizeof(literal), "unknown");
	snprintf(env->client, sizeof(env->client), "%.60s [%.60s]", smtp_session_helo(sc->sess),
		 literal);
	size_t nlocal = smtp_txn_unique_mailboxes(t);
	for (size_t i = 0; i < nlocal && ret == 0; i++)
		ret = queue_envelope_add_rcpt(env, t->rcpts[i].address,
					      t->rcpts[i].orcpt != 0 ? t->orcpts.data + t->rcpts[i].orcpt - 1 : "",
					      t->rcpts[i].notify);
	size_t nremote = smtp_txn_unique_remotes(t);
	for (size_t i = 0; i < nremote && ret == 0; i++)
		ret = queue_envelope_add_rcpt(env, t->remote[i].address, t->remote[i].orcpt,
					      t->remote[i].notify);
	if (ret == 0 && sc->env->archive[0] != '\0')
		ret = queue_envelope_add_rcpt(env, sc->env->archive, "", QUEUE_NOTIFY_NEVER);
	return ret;
}

static void smtp_queued_free(struct smtp_queued *q)
{
	queue_writer_abort(&q->w);
	queue_envelope_clear(&q->env);
	free(q);
}

static void smtp_queue_work(void *arg)
{
	struct smtp_queued *q = arg;
	const char *error = NULL;
	q->ret = queue_writer_commit(&q->w, &q->env, &error);
	if (q->ret < 0)
		snprintf(q->error, sizeof(q->error), "%s", error ? error : store_strerror(q->ret));
}

static void smtp_queue_done(void *arg, bool cancelled)
{
	struct smtp_queued *q = arg;
	bool ok = q->w == NULL && q->ret == 0; /* the commit consumed the writer */
	static const struct smtp_reply fail = {
	    451, "4.3.0", "Error: the message could not be queued, try again later"};

	if (ok)
		queue_manager_queued(q->qm, q->env.id);
	log_msg(ok ? LOG_INFO : LOG_WARNING, "smtp",
		"id=%s conn=%llu from=<%s> size=%llu nrcpt=%zu proto=%s user=%s status=%s "
		"delay=%.3fs%s%s",
		q->env.id, q->conn_id, q->env.sender, (unsigned long long)q->env.size,
		q->env.nrcpt, q->proto, q->user[0] != '\0' ? q->user : "-",
		ok ? "queued" : "deferred", elapsed_since(&q->started),
		q->ret != 0 ? " reason=" : "", q->ret != 0 ? q->error : "");
	struct smtp_conn *sc = q->sc;
	if (cancelled || sc == NULL) {
		if (ok)
			log_warning("smtp",
				    "id=%s conn=%llu the client left before the reply: the message "
				    "is queued; a client that sends it again causes a duplicate",
				    q->env.id, q->conn_id);
		smtp_queued_free(q);
		return;
	}
	sc->queued = NULL;
	sc->job = NULL;
	char id[QUEUE_ID_MAX];
	snprintf(id, sizeof(id), "%s", q->env.id);
	smtp_queued_free(q);
	smtp_conn_want(sc, smtp_session_commit_result(sc->sess, ok ? NULL : &fail, id));
}

void smtp_queue_commit(struct smtp_conn *sc)
{
	struct smtp_txn *t = &sc->txn;
	struct smtp_queued *q = calloc(1, sizeof(*q));
	if (q == NULL || smtp_queue_envelope(sc, &q->env) < 0) {
		if (q != NULL)
			smtp_queued_free(q);
		queue_writer_abort(&t->qwriter);
		sc->deferred = SMTP_DEFER_COMMIT;
		smtp_conn_defer(sc);
		return;
	}
	q->sc = sc;
	q->qm = sc->env->queue;
	q->w = t->qwriter;
	t->qwriter = NULL;
	q->conn_id = (unsigned long long)conn_info(sc->c)->id;
	q->started = t->started;
	snprintf(q->proto, sizeof(q->proto), "%s", smtp_conn_proto(sc));
	const char *user = smtp_session_user(sc->sess);
	snprintf(q->user, sizeof(q->user), "%s", user != NULL ? user : "");
	struct job *job =
	    job_submit(sc->env->jobs, conn_base(sc->c), smtp_queue_work, smtp_queue_done, q);
	if (job == NULL) {
		smtp_queued_free(q);
		sc->deferred = SMTP_DEFER_COMMIT;
		smtp_conn_defer(sc);
		return;
	}
	sc->queued = q;
	sc->job = job;
}

void smtp_queue_detach(struct smtp_conn *sc)
{
	job_cancel(sc->job);
	sc->queued->sc = NULL;
	sc->queued = NULL;
	sc->job = NULL;
}
