/*
 * One delivery attempt of one queued message:
 *
 *  1. prepare (job thread): read the envelope, open the data, expand and
 *     deliver local recipients (queue_local.c), group the pending remote
 *     recipients by nexthop (transport map, relayhost, else the domain)
 *     and resolve each group's route (DNS, blocking);
 *  2. outbound (the manager's loop): SMTP sessions per group whose
 *     destination has a free connection slot (queue.destination_
 *     concurrency), one after the other on that slot, one transaction of
 *     at most QM_RCPT_PER_TRANSACTION recipients each; recipients put off
 *     with 452 in a transaction the server otherwise took go again at
 *     once in a new one (at most QM_452_RETRIES times). A group without a
 *     slot waits for the next attempt, one second later, without counting
 *     as a try;
 *  3. finish (job thread): expiry, notices (queue_notify.c), then the
 *     envelope is rewritten with the verdicts and the next attempt time,
 *     or removed when no recipient is pending.
 *
 * Verdicts are written as they come, not only at the end: after the local
 * deliveries (when they changed any recipient's state or expanded an
 * alias) and before the DNS lookups, when remote groups follow; and after
 * each session while
 * others are still running (a checkpoint: a copy of the envelope written
 * on a job thread, one at a time, the finish waiting for it). A session
 * may take many minutes; a crash meanwhile would otherwise deliver the
 * recipients that already have their copy again (Postfix marks each
 * recipient done in the queue file as soon as it is).
 *
 * Recipient verdicts: 2xx delivered, 5xx failed (bounced), anything else
 * stays pending with its reason; a pending recipient older than
 * queue.max_lifetime fails with 4.4.7.
 *
 * Next attempt: the backoff once any recipient was tried. An attempt that
 * a shutdown cut (qm_attempt_cancel) is no try: it counts no attempt and
 * leaves the message due at once, for the next start. Only when every
 * group still pending just waited for a connection slot does the message
 * come back a second later without counting a try; when some waited and
 * others were tried (say a 4xx), at most QM_SLOT_RETRY later, so that a
 * server that said "later" is not asked again every second.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/fd_read.h"
#include "node/job_pool.h"
#include "node/log.h"
#include "node/outbound.h"
#include "node/queue_manager_private.h"

#define QM_MAX_HOPS 50
#define QM_HOPS_SCAN 65536
#define QM_SLOT_RETRY 60
/* Recipients per SMTP transaction: Postfix's smtp_destination_recipient_
 * limit. RFC 5321 4.5.3.1.8 only promises 100 to a client. */
#define QM_RCPT_PER_TRANSACTION 50
/* New transactions per group and attempt for recipients a server put off
 * with 452 while it took others (RFC 5321 4.5.3.1.10): a bound, whatever
 * the server answers. */
#define QM_452_RETRIES 10

struct qm_group {
	char nexthop[256];
	size_t *rcpt; /* indexes into env.rcpts */
	size_t n;
	/* Transactions, one after the other over the group's connection
	 * slot; the three arrays have room for n each. */
	size_t *todo; /* indexes into env.rcpts not yet sent in this attempt */
	size_t ntodo;
	size_t *cur; /* those of the transaction in flight */
	size_t ncur;
	size_t limit; /* recipients per transaction */
	unsigned retries_452;
	struct smtp_client_rcpt *crcpts; /* cur's, for the client */
	struct outbound_route route;
	struct outbound *out;
	bool waiting; /* no connection slot: next attempt soon */
	struct qm_attempt *a;
};

struct qm_attempt {
	struct queue_manager *qm;
	struct qm_attempt *next;
	char id[QUEUE_ID_MAX];
	struct queue_envelope env;
	int data_fd;
	int64_t now;
	struct timespec started;
	bool gone;     /* the message no longer exists */
	bool failed;   /* could not be read: try again later */
	bool held;
	bool cancelled;
	bool outbound; /* in phase 2: sessions may be in flight */
	bool tried;    /* some recipient got a verdict (or a session ran) */
	bool checkpointing;   /* a copy of the envelope is being written */
	bool checkpoint_again; /* verdicts came in meanwhile: write again */
	bool finish_waiting;  /* the finish waits for the checkpoint */
	struct queue_envelope snapshot;
	struct qm_group *groups;
	size_t ngroups;
	unsigned outstanding;
	int64_t next_attempt; /* the verdict: <0 removed */
	char error[256];
};

static void qm_attempt_finish_done(void *arg, bool cancelled);

static const char *qm_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

static const char *qm_nexthop(struct queue_manager *qm, const char *domain)
{
	for (size_t i = 0; i < qm->cfg.ntransport; i++) {
		const char *d = qm->cfg.transport[i].domain;
		size_t dl = strlen(d), l = strlen(domain);
		if (strcasecmp(d, domain) == 0 ||
		    (d[0] == '.' && l > dl && strcasecmp(domain + l - dl, d) == 0))
			return qm->cfg.transport[i].nexthop;
	}
	if (qm->cfg.relayhost[0] != '\0')
		return qm->cfg.relayhost;
	return domain;
}

/* Bounded copy; src may be dst, or cut to fit. */
static void qm_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memmove(dst, src, n);
	dst[n] = '\0';
}

static void qm_set_rcpt(struct queue_rcpt *r, enum queue_rcpt_state st, const char *status,
			const char *remote, const char *reason)
{
	r->state = st;
	qm_copy(r->status, sizeof(r->status), status);
	qm_copy(r->remote_mta, sizeof(r->remote_mta), remote != NULL ? remote : "");
	qm_copy(r->reason, sizeof(r->reason), reason);
}

/* A recipient's verdict, one line in Postfix's keys: relay ("none" when
 * DNS or the message itself stopped it before any server), delay since
 * the message arrived, attempt_time since this attempt began, tls for a
 * server's answer (tls NULL: none), dsn and status from the recipient as
 * qm_set_rcpt left it. Job threads and the loop alike. */
static void qm_log_rcpt(const struct qm_attempt *a, const struct queue_rcpt *r, const char *relay,
			const bool *tls)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double delay = (double)(now.tv_sec - a->env.arrival) + now.tv_nsec / 1e9;
	log_msg(r->state == QUEUE_RCPT_DELIVERED ? LOG_INFO : LOG_WARNING, "queue",
		"id=%s to=<%s> relay=%s delay=%.2f attempt_time=%.2f%s dsn=%s status=%s (%s)",
		a->id, r->address, relay, delay > 0 ? delay : 0.0, elapsed_since(&a->started),
		tls == NULL ? ""
		: *tls	    ? " tls=yes"
			    : " tls=no",
		r->status,
		r->state == QUEUE_RCPT_DELIVERED ? "sent"
		: r->state == QUEUE_RCPT_FAILED	 ? "bounced"
						 : "deferred",
		r->reason);
}

/* Received: fields in the message's header (counted up to QM_MAX_HOPS
 * + 1, in its first QM_HOPS_SCAN bytes): Postfix's hopcount_limit, which
 * stops mail that loops between hosts (an MX pointing back at us). */
static int qm_hops(int fd)
{
	char buf[QM_HOPS_SCAN + 1];
	ssize_t n = pread(fd, buf, QM_HOPS_SCAN, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	int hops = 0;
	for (const char *p = buf; p != NULL && *p != '\0' && hops <= QM_MAX_HOPS;) {
		if (*p == '\r' || *p == '\n')
			break; /* the empty line: end of the header */
		if (strncasecmp(p, "Received:", 9) == 0)
			hops++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return hops;
}

static int qm_group_add(struct qm_attempt *a, const char *nexthop, size_t rcpt)
{
	struct qm_group *g = NULL;
	for (size_t i = 0; i < a->ngroups && g == NULL; i++)
		if (strcasecmp(a->groups[i].nexthop, nexthop) == 0)
			g = &a->groups[i];
	if (g == NULL) {
		struct qm_group *n = realloc(a->groups, (a->ngroups + 1) * sizeof(*n));
		if (n == NULL)
			return -1;
		a->groups = n;
		g = &a->groups[a->ngroups++];
		memset(g, 0, sizeof(*g));
		snprintf(g->nexthop, sizeof(g->nexthop), "%s", nexthop);
		g->a = a;
	}
	size_t *idx = realloc(g->rcpt, (g->n + 1) * sizeof(*idx));
	if (idx == NULL)
		return -1;
	g->rcpt = idx;
	g->rcpt[g->n++] = rcpt;
	return 0;
}

/* Whether local delivery changed anything worth recording: a recipient
 * added (an alias or group expanded) or one whose state moved (delivered,
 * failed, an alias marked done). Counting the pending ones is not enough:
 * an alias to one local and one remote address leaves that count as it
 * was. */
static bool qm_states_changed(const struct queue_envelope *env, const enum queue_rcpt_state *before,
			      size_t nbefore)
{
	if (env->nrcpt != nbefore)
		return true;
	for (size_t i = 0; i < nbefore; i++)
		if (env->rcpts[i].state != before[i])
			return true;
	return false;
}

static void qm_prepare_work(void *arg)
{
	struct qm_attempt *a = arg;
	struct queue_manager *qm = a->qm;
	const char *error = NULL;

	int ret = queue_envelope_read(qm->spool, a->id, &a->env, &error);
	if (ret == STORE_E_NOTFOUND) {
		a->gone = true;
		return;
	}
	if (ret == 0 && a->env.hold) {
		a->held = true;
		return;
	}
	if (ret == 0)
		ret = queue_data_open(qm->spool, &a->env, &a->data_fd, &error);
	if (ret < 0) {
		a->failed = true;
		snprintf(a->error, sizeof(a->error), "%s", error ? error : store_strerror(ret));
		return;
	}
	if (qm_hops(a->data_fd) > QM_MAX_HOPS) {
		for (size_t i = 0; i < a->env.nrcpt; i++) {
			struct queue_rcpt *r = &a->env.rcpts[i];
			if (r->state != QUEUE_RCPT_PENDING)
				continue;
			qm_set_rcpt(r, QUEUE_RCPT_FAILED, "5.4.6", NULL,
				    "mail forwarding loop: more than 50 Received: fields");
			qm_log_rcpt(a, r, "none", NULL);
		}
		return;
	}
	bool *local = NULL;
	size_t nbefore = a->env.nrcpt;
	enum queue_rcpt_state *before = malloc((nbefore + 1) * sizeof(*before));
	if (before == NULL) {
		a->failed = true;
		snprintf(a->error, sizeof(a->error), "out of memory");
		return;
	}
	for (size_t i = 0; i < nbefore; i++)
		before[i] = a->env.rcpts[i].state;
	ret = qm_local_deliver(qm, &a->env, a->data_fd, &local);
	bool local_verdicts = qm_states_changed(&a->env, before, nbefore);
	free(before);
	for (size_t i = 0; ret == 0 && i < a->env.nrcpt; i++) {
		struct queue_rcpt *r = &a->env.rcpts[i];
		if (r->state != QUEUE_RCPT_PENDING || local[i])
			continue;
		ret = qm_group_add(a, qm_nexthop(qm, qm_domain(r->address)), i);
	}
	free(local);
	if (ret < 0) {
		a->failed = true;
		snprintf(a->error, sizeof(a->error), "out of memory");
		return;
	}
	a->tried |= local_verdicts;
	/* The local copies are made (or an alias expanded): recorded before
	 * the DNS lookups and the sessions, which may take minutes, so that a
	 * crash meanwhile neither delivers them nor expands them again. A
	 * failure only leaves the old state, as before. */
	if (local_verdicts && a->ngroups > 0 &&
	    queue_envelope_update(qm->spool, &a->env, &error) < 0)
		log_warning("queue", "id=%s cannot record the local deliveries yet: %s", a->id,
			    error ? error : "failed");
	for (size_t i = 0; i < a->ngroups; i++) {
		struct qm_group *g = &a->groups[i];
		outbound_route_resolve(qm->resolver, qm->cfg.connect_timeout, g->nexthop,
				       (uint16_t)qm->cfg.port, &qm->self, &g->route);
		if (g->route.result == OUTBOUND_DNS_OK)
			continue;
		a->tried = true;
		for (size_t j = 0; j < g->n; j++) {
			struct queue_rcpt *r = &a->env.rcpts[g->rcpt[j]];
			qm_set_rcpt(r,
				    g->route.result == OUTBOUND_DNS_PERM ? QUEUE_RCPT_FAILED
									 : QUEUE_RCPT_PENDING,
				    g->route.status, NULL, g->route.reason);
			qm_log_rcpt(a, r, "none", NULL);
		}
	}
}

static void qm_finish(struct qm_attempt *a);
static void qm_checkpoint(struct qm_attempt *a);
static int qm_group_send(struct qm_group *g);

/* Puts the recipients of the transaction just ended that the server put
 * off with 452 back at the head of the group's list, for a new
 * transaction now, when the server took others in it (so 452 meant "too
 * many recipients", not "no room at all") and the group has retries left;
 * the next transactions then carry as many as it took. */
/* 452 "too many recipients" (RFC 5321 4.5.3.1.10): 4.5.3, or the words
 * from a server without enhanced codes. A full mailbox (4.2.2) or a full
 * disk (4.3.1) is a 452 too, and waits for the normal retry. */
static bool too_many_recipients(const struct smtp_client_reply *r)
{
	if (r->code != 452)
		return false;
	if (r->enhanced[0] != '\0')
		return strcmp(r->enhanced, "4.5.3") == 0;
	return strcasestr(r->text, "too many recipients") != NULL;
}

static void qm_group_requeue_452(struct qm_group *g, const struct smtp_client_reply *replies)
{
	struct qm_attempt *a = g->a;
	size_t took = 0, put_off = 0;
	for (size_t j = 0; j < g->ncur; j++) {
		took += replies[j].code / 100 == 2;
		put_off += too_many_recipients(&replies[j]);
	}
	if (took == 0 || put_off == 0 || g->retries_452 >= QM_452_RETRIES)
		return;
	g->retries_452++;
	g->limit = took;
	memmove(g->todo + put_off, g->todo, g->ntodo * sizeof(*g->todo));
	for (size_t j = 0, k = 0; j < g->ncur; j++) {
		if (!too_many_recipients(&replies[j]))
			continue;
		g->todo[k++] = g->cur[j];
		a->env.rcpts[g->cur[j]].attempts--; /* not a try: sent again in this attempt */
	}
	g->ntodo += put_off;
}

static void qm_outbound_done(void *ctx, const struct smtp_client_reply *replies,
			     const char *remote, bool tls, bool dsn)
{
	struct qm_group *g = ctx;
	struct qm_attempt *a = g->a;
	g->out = NULL;
	for (size_t j = 0; j < g->ncur; j++) {
		struct queue_rcpt *r = &a->env.rcpts[g->cur[j]];
		const struct smtp_client_reply *rep = &replies[j];
		char reason[QUEUE_REASON_MAX];
		int cls = rep->code / 100;
		const char *status = rep->enhanced[0] != '\0' ? rep->enhanced
				     : cls == 2		      ? "2.0.0"
				     : cls == 5		      ? "5.0.0"
							      : "4.0.0";
		snprintf(reason, sizeof(reason), "%d %s", rep->code, rep->text);
		qm_set_rcpt(r,
			    cls == 2   ? QUEUE_RCPT_DELIVERED
			    : cls == 5 ? QUEUE_RCPT_FAILED
				       : QUEUE_RCPT_PENDING,
			    status, remote, reason);
		r->attempts++;
		/* RFC 3461: handed to a server that took NOTIFY, the success
		 * report is the final MTA's to send, not ours */
		if (cls == 2 && dsn)
			r->dsn_sent = true;
		qm_log_rcpt(a, r, remote, &tls);
	}
	qm_group_requeue_452(g, replies);
	if (g->ntodo > 0 && !a->cancelled) {
		qm_checkpoint(a);
		if (qm_group_send(g) == 0)
			return; /* the next transaction holds the slot */
		g->waiting = true;
	}
	qm_dest_release(a->qm, g->nexthop);
	if (--a->outstanding == 0)
		qm_finish(a);
	else
		qm_checkpoint(a);
}

static void qm_checkpoint_work(void *arg)
{
	struct qm_attempt *a = arg;
	const char *error = NULL;
	if (queue_envelope_update(a->qm->spool, &a->snapshot, &error) < 0)
		log_warning("queue", "id=%s cannot record the verdicts so far: %s", a->id,
			    error ? error : "failed");
}

static void qm_checkpoint_done(void *arg, bool cancelled)
{
	struct qm_attempt *a = arg;
	(void)cancelled;
	queue_envelope_clear(&a->snapshot);
	a->checkpointing = false;
	if (a->finish_waiting) {
		a->finish_waiting = false;
		qm_finish(a);
	} else if (a->checkpoint_again) {
		qm_checkpoint(a);
	}
}

/* Writes a copy of the envelope as it is now (the loop keeps changing the
 * original); one at a time, the latest state last. */
static void qm_checkpoint(struct qm_attempt *a)
{
	if (a->checkpointing) {
		a->checkpoint_again = true;
		return;
	}
	a->checkpoint_again = false;
	a->snapshot = a->env;
	a->snapshot.rcpts = malloc(a->env.nrcpt * sizeof(*a->env.rcpts));
	if (a->snapshot.rcpts == NULL) {
		memset(&a->snapshot, 0, sizeof(a->snapshot));
		return; /* the finish records everything */
	}
	memcpy(a->snapshot.rcpts, a->env.rcpts, a->env.nrcpt * sizeof(*a->env.rcpts));
	a->checkpointing = true;
	if (job_submit(a->qm->env->jobs, a->qm->base, qm_checkpoint_work, qm_checkpoint_done, a) ==
	    NULL) {
		queue_envelope_clear(&a->snapshot);
		a->checkpointing = false;
	}
}

/* Starts the group's next transaction: the first g->limit recipients of
 * its list. 0, or -1 (out of memory) with nothing started. */
static int qm_group_send(struct qm_group *g)
{
	struct qm_attempt *a = g->a;
	struct queue_manager *qm = a->qm;
	g->ncur = g->ntodo < g->limit ? g->ntodo : g->limit;
	memcpy(g->cur, g->todo, g->ncur * sizeof(*g->cur));
	for (size_t j = 0; j < g->ncur; j++) {
		const struct queue_rcpt *r = &a->env.rcpts[g->cur[j]];
		g->crcpts[j] = (struct smtp_client_rcpt){
		    .address = r->address,
		    .notify = r->notify,
		    .orcpt = r->orcpt[0] != '\0' ? r->orcpt : NULL,
		};
	}
	struct outbound_request req = {
	    .queue_id = a->env.id,
	    .base = qm->base,
	    .tls = qm->tls,
	    .helo_name = qm->hostname,
	    .route = &g->route,
	    .sender = a->env.sender,
	    .rcpts = g->crcpts,
	    .nrcpt = g->ncur,
	    .data_fd = a->data_fd,
	    .size = a->env.size,
	    .body_8bit = a->env.body_8bit,
	    .smtputf8 = a->env.smtputf8,
	    .envid = a->env.envid[0] != '\0' ? a->env.envid : NULL,
	    .ret = a->env.ret == QUEUE_RET_HDRS	  ? SMTP_CLIENT_RET_HDRS
		   : a->env.ret == QUEUE_RET_FULL ? SMTP_CLIENT_RET_FULL
						  : SMTP_CLIENT_RET_NONE,
	    .connect_timeout = qm->cfg.connect_timeout,
	    .command_timeout = qm->cfg.command_timeout,
	    .done = qm_outbound_done,
	    .ctx = g,
	};
	g->out = outbound_start(&req);
	if (g->out == NULL)
		return -1;
	g->ntodo -= g->ncur;
	memmove(g->todo, g->todo + g->ncur, g->ntodo * sizeof(*g->todo));
	return 0;
}

static void qm_start_outbound(struct qm_attempt *a)
{
	struct queue_manager *qm = a->qm;
	a->outbound = true;
	for (size_t i = 0; i < a->ngroups; i++) {
		struct qm_group *g = &a->groups[i];
		if (g->route.result != OUTBOUND_DNS_OK)
			continue;
		if (a->cancelled || !qm_dest_acquire(qm, g->nexthop)) {
			g->waiting = true;
			continue;
		}
		g->crcpts = calloc(g->n, sizeof(*g->crcpts));
		g->todo = malloc(g->n * sizeof(*g->todo));
		g->cur = malloc(g->n * sizeof(*g->cur));
		if (g->crcpts != NULL && g->todo != NULL && g->cur != NULL) {
			memcpy(g->todo, g->rcpt, g->n * sizeof(*g->todo));
			g->ntodo = g->n;
			g->limit = QM_RCPT_PER_TRANSACTION;
		}
		if (g->ntodo == 0 || qm_group_send(g) < 0) {
			qm_dest_release(qm, g->nexthop);
			g->waiting = true;
			continue;
		}
		a->tried = true;
		a->outstanding++;
	}
	if (a->outstanding == 0)
		qm_finish(a);
}

static void qm_attempt_unlink(struct qm_attempt *a)
{
	for (struct qm_attempt **p = &a->qm->attempts; *p != NULL; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			return;
		}
	}
}

static void qm_attempt_free(struct qm_attempt *a)
{
	for (size_t i = 0; i < a->ngroups; i++) {
		outbound_cancel(&a->groups[i].out);
		free(a->groups[i].rcpt);
		free(a->groups[i].crcpts);
		free(a->groups[i].todo);
		free(a->groups[i].cur);
	}
	free(a->groups);
	if (a->data_fd >= 0)
		close(a->data_fd);
	queue_envelope_clear(&a->env);
	free(a);
}

static void qm_attempt_end(struct qm_attempt *a)
{
	struct queue_manager *qm = a->qm;
	char id[QUEUE_ID_MAX];
	int64_t next = a->next_attempt;
	snprintf(id, sizeof(id), "%s", a->id);
	qm_attempt_unlink(a);
	qm_attempt_free(a);
	qm_attempt_done(qm, id, next);
}

static void qm_prepare_done(void *arg, bool cancelled)
{
	struct qm_attempt *a = arg;
	struct queue_manager *qm = a->qm;
	(void)cancelled;
	if (a->gone) {
		a->next_attempt = -1;
	} else if (a->held) {
		struct qm_entry *e = qm_find(qm, a->id);
		if (e != NULL)
			e->hold = true;
		a->next_attempt = a->env.next_attempt;
	} else if (a->failed) {
		log_error("queue", "id=%s cannot be delivered now: %s", a->id, a->error);
		a->next_attempt = a->now + qm->cfg.min_backoff;
	} else {
		qm_start_outbound(a);
		return;
	}
	qm_attempt_end(a);
}

static int64_t qm_backoff(const struct queue_manager *qm, unsigned attempts)
{
	int64_t d = qm->cfg.min_backoff;
	for (unsigned i = 1; i < attempts && d < qm->cfg.max_backoff; i++)
		d *= 2;
	return d < qm->cfg.max_backoff ? d : qm->cfg.max_backoff;
}

static void qm_finish_work(void *arg)
{
	struct qm_attempt *a = arg;
	struct queue_manager *qm = a->qm;
	const char *error = NULL;
	int64_t now = (int64_t)time(NULL);
	bool waiting = false;
	size_t pending, delivered, failed;

	for (size_t i = 0; i < a->ngroups; i++)
		waiting |= a->groups[i].waiting;
	bool expired = now - a->env.arrival >= (int64_t)qm->cfg.max_lifetime;
	for (size_t i = 0; i < a->env.nrcpt && expired; i++) {
		struct queue_rcpt *r = &a->env.rcpts[i];
		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		char reason[QUEUE_REASON_MAX + 64];
		snprintf(reason, sizeof(reason), "message expired after %lld s in the queue%s%s",
			 (long long)(now - a->env.arrival), r->reason[0] != '\0' ? ": " : "",
			 r->reason);
		qm_set_rcpt(r, QUEUE_RCPT_FAILED, "4.4.7", r->remote_mta, reason);
		log_warning("queue", "id=%s to=<%s> dsn=4.4.7 status=expired (%s)", a->id,
			    r->address, reason);
	}
	bool only_waited = waiting && !a->tried && !a->cancelled;
	/* Cut by a shutdown: no try, and due at the next start (the verdicts
	 * it did get are kept all the same). */
	if (!only_waited && !a->cancelled)
		a->env.attempts++;
	bool notified = qm_notify(qm, &a->env, a->data_fd, now) == 0;
	queue_envelope_count(&a->env, &pending, &delivered, &failed);
	int ret;
	if (pending == 0 && notified) {
		ret = queue_remove(qm->spool, a->id, &error);
		if (ret == 0) {
			a->next_attempt = -1;
			log_info("queue", "id=%s removed: delivered=%zu failed=%zu", a->id,
				 delivered, failed);
			return;
		}
	} else {
		int64_t backoff = qm_backoff(qm, a->env.attempts);
		a->env.next_attempt = a->cancelled			   ? now
				      : only_waited			   ? now + 1
				      : waiting && backoff > QM_SLOT_RETRY ? now + QM_SLOT_RETRY
									   : now + backoff;
		ret = queue_envelope_update(qm->spool, &a->env, &error);
		if (ret == 0) {
			a->next_attempt = a->env.next_attempt;
			if (!only_waited)
				log_info("queue",
					 "id=%s deferred: pending=%zu delivered=%zu failed=%zu "
					 "attempts=%u next_in=%llds",
					 a->id, pending, delivered, failed, a->env.attempts,
					 (long long)(a->env.next_attempt - now));
			return;
		}
	}
	/* the envelope keeps its old state: the work of this attempt may be
	 * repeated (a recipient can get a duplicate), never lost */
	log_error("queue", "id=%s cannot update the queue file: %s", a->id,
		  error ? error : store_strerror(ret));
	a->next_attempt = now + qm->cfg.min_backoff;
}

static void qm_finish(struct qm_attempt *a)
{
	a->outbound = false;
	if (a->checkpointing) {
		a->finish_waiting = true;
		return;
	}
	if (job_submit(a->qm->env->jobs, a->qm->base, qm_finish_work, qm_attempt_finish_done, a) ==
	    NULL) {
		log_error("queue", "id=%s out of memory finishing the attempt", a->id);
		a->next_attempt = a->now + a->qm->cfg.min_backoff;
		qm_attempt_end(a);
	}
}

static void qm_attempt_finish_done(void *arg, bool cancelled)
{
	(void)cancelled;
	qm_attempt_end(arg);
}

void qm_attempt_start(struct queue_manager *qm, struct qm_entry *e)
{
	struct qm_attempt *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return;
	a->qm = qm;
	a->data_fd = -1;
	a->now = (int64_t)time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &a->started);
	snprintf(a->id, sizeof(a->id), "%s", e->id);
	if (job_submit(qm->env->jobs, qm->base, qm_prepare_work, qm_prepare_done, a) == NULL) {
		free(a);
		return;
	}
	a->next = qm->attempts;
	qm->attempts = a;
	e->active = true;
	qm->attempts_running++;
}

void qm_attempt_cancel(struct qm_attempt *a)
{
	a->cancelled = true;
	if (!a->outbound || a->outstanding == 0)
		return; /* the phase it is in ends by itself */
	for (size_t i = 0; i < a->ngroups; i++) {
		struct qm_group *g = &a->groups[i];
		if (g->out == NULL)
			continue;
		outbound_cancel(&g->out);
		qm_dest_release(a->qm, g->nexthop);
		g->waiting = true;
		a->outstanding--;
	}
	qm_finish(a);
}

struct qm_attempt *qm_attempt_next(const struct qm_attempt *a)
{
	return a->next;
}
