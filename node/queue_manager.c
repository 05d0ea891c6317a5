/*
 * The queue manager's thread, table and scheduler. The table mirrors the
 * spool's envelopes (id, due time, hold); the spool is the truth and is
 * rescanned when another thread queued something (kick), on flush, and
 * once a minute. Each tick starts attempts for due messages up to
 * queue.max_deliveries; an attempt owns its message until it reports
 * back through qm_attempt_done().
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/job_pool.h"
#include "node/log.h"
#include "node/outbound.h"
#include "node/queue_manager_private.h"

#define QM_RESCAN_INTERVAL 60
#define QM_CLEANUP_INTERVAL 3600
#define QM_LOCK_LOG_INTERVAL 60 /* "spool is locked" once a minute, not every tick */

static int64_t qm_now(void)
{
	return (int64_t)time(NULL);
}

/* Room for element n of the array arr of *cap elements: arr, or arr
 * reallocated with *cap doubled (first when 0), or NULL when out of memory
 * (arr and *cap unchanged). */
static void *qm_grow(void *arr, size_t n, size_t *cap, size_t size, size_t first)
{
	if (n < *cap)
		return arr;
	size_t c = *cap != 0 ? *cap * 2 : first;
	void *p = realloc(arr, c * size);
	if (p != NULL)
		*cap = c;
	return p;
}

/* The table is kept sorted by id: lookups by binary search, so a scan of
 * a large spool costs n log n, not n^2. */
static size_t qm_lower_bound(const struct queue_manager *qm, const char *id)
{
	size_t lo = 0, hi = qm->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(qm->entries[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct qm_entry *qm_find(struct queue_manager *qm, const char *id)
{
	size_t i = qm_lower_bound(qm, id);
	return i < qm->n && strcmp(qm->entries[i].id, id) == 0 ? &qm->entries[i] : NULL;
}

/* The entry for id, added (due now) if it is not in the table. */
static struct qm_entry *qm_add(struct queue_manager *qm, const char *id)
{
	size_t i = qm_lower_bound(qm, id);
	if (i < qm->n && strcmp(qm->entries[i].id, id) == 0)
		return &qm->entries[i];
	struct qm_entry *entries = qm_grow(qm->entries, qm->n, &qm->cap, sizeof(*entries), 64);
	if (entries == NULL)
		return NULL;
	qm->entries = entries;
	memmove(&qm->entries[i + 1], &qm->entries[i], (qm->n - i) * sizeof(*qm->entries));
	qm->n++;
	struct qm_entry *e = &qm->entries[i];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	return e;
}

static void qm_remove_at(struct queue_manager *qm, size_t i)
{
	memmove(&qm->entries[i], &qm->entries[i + 1], (qm->n - i - 1) * sizeof(*qm->entries));
	qm->n--;
}

bool qm_dest_acquire(struct queue_manager *qm, const char *name)
{
	if (qm->connections >= qm->cfg.max_connections)
		return false; /* before an entry is made: a refused one keeps none */
	struct qm_dest *d = NULL;
	for (size_t i = 0; i < qm->ndests && d == NULL; i++)
		if (strcmp(qm->dests[i].name, name) == 0)
			d = &qm->dests[i];
	if (d == NULL) {
		struct qm_dest *dests =
		    qm_grow(qm->dests, qm->ndests, &qm->capdests, sizeof(*dests), 16);
		if (dests == NULL)
			return false;
		qm->dests = dests;
		d = &qm->dests[qm->ndests++];
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->active = 0;
	}
	if (d->active >= qm->cfg.destination_concurrency)
		return false;
	d->active++;
	qm->connections++;
	return true;
}

void qm_dest_release(struct queue_manager *qm, const char *name)
{
	for (size_t i = 0; i < qm->ndests; i++) {
		if (strcmp(qm->dests[i].name, name) == 0) {
			qm->connections--;
			if (--qm->dests[i].active == 0)
				qm->dests[i] = qm->dests[--qm->ndests];
			return;
		}
	}
}

/*
 * A scan: the maildrop's messages move into this node's spool (sendmail
 * cannot wake us, so it is looked at every tick), then the spool is
 * listed and the envelopes of ids the table does not know are read. Disk
 * work, so it runs on the job pool with the ids known at its start; its
 * result is merged into the table on the manager's loop. One at a time.
 */
struct qm_found {
	char id[QUEUE_ID_MAX];
	int64_t next_attempt;
	bool hold;
	bool read; /* the envelope was read (the id was not known) */
};

struct qm_scan {
	struct queue_manager *qm;
	bool full; /* list the spool, not only the maildrop */
	bool cleanup; /* and remove interrupted writers' leftovers from it */
	char (*known)[QUEUE_ID_MAX]; /* sorted */
	size_t nknown;
	struct qm_found *found;
	size_t n, cap;
	bool failed;
};

static struct qm_found *qm_scan_push(struct qm_scan *sc, const char *id)
{
	struct qm_found *found = qm_grow(sc->found, sc->n, &sc->cap, sizeof(*found), 64);
	if (found == NULL)
		return NULL;
	sc->found = found;
	struct qm_found *f = &sc->found[sc->n++];
	memset(f, 0, sizeof(*f));
	snprintf(f->id, sizeof(f->id), "%s", id);
	return f;
}

static bool qm_pickup_one(const char *id, void *ctx)
{
	struct qm_scan *sc = ctx;
	const char *error = NULL;
	int ret = queue_move(sc->qm->maildrop, sc->qm->spool, id, &error);
	if (ret < 0) {
		log_warning("queue", "id=%s pickup from the maildrop failed: %s", id,
			    error ? error : store_strerror(ret));
		return true;
	}
	log_info("queue", "id=%s picked up from the maildrop", id);
	sc->full = true; /* read it with the rest */
	return true;
}

static int qm_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Whether the table had id when the scan started. */
static bool qm_scan_knew(const struct qm_scan *sc, const char *id)
{
	return sc->nknown > 0 &&
	       bsearch(id, sc->known, sc->nknown, sizeof(*sc->known), qm_id_cmp) != NULL;
}

static bool qm_scan_one(const char *id, void *ctx)
{
	struct qm_scan *sc = ctx;
	bool known = qm_scan_knew(sc, id);
	struct queue_envelope env = {0};
	const char *error = NULL;
	int ret = known ? 0 : queue_envelope_read(sc->qm->spool, id, &env, &error);
	if (ret == STORE_E_NOTFOUND)
		return true;
	struct qm_found *f = qm_scan_push(sc, id);
	if (f == NULL) {
		queue_envelope_clear(&env);
		return false;
	}
	f->read = !known;
	if (ret < 0) {
		/* kept in the table so that it is not read again every scan */
		log_error("queue", "id=%s unreadable envelope: %s; held until repaired", id,
			  error ? error : store_strerror(ret));
		f->hold = true;
	} else if (!known) {
		f->next_attempt = env.next_attempt;
		f->hold = env.hold;
	}
	queue_envelope_clear(&env);
	return true;
}

#define QM_LEFTOVER_AGE (24 * 3600)

static void qm_scan_work(void *arg)
{
	struct qm_scan *sc = arg;
	const char *error = NULL;
	if (queue_list(sc->qm->maildrop, qm_pickup_one, sc, &error) < 0)
		log_warning("queue", "reading the maildrop: %s", error ? error : "failed");
	if (sc->full && queue_list(sc->qm->spool, qm_scan_one, sc, &error) < 0) {
		log_error("queue", "reading the spool %s: %s", queue_path(sc->qm->spool),
			  error ? error : "failed");
		sc->failed = true;
	}
	/* Leftovers of writers that died (temporary files, data without an
	 * envelope, torn commits), a day old: no writer takes that long. */
	for (int i = 0; sc->cleanup && i < 2; i++) {
		struct queue *q = i == 0 ? sc->qm->spool : sc->qm->maildrop;
		int removed = queue_cleanup(q, QM_LEFTOVER_AGE, &error);
		if (removed > 0)
			log_notice("queue", "spool %s: removed %d leftovers of interrupted writers",
				   queue_name(q), removed);
		else if (removed < 0)
			log_warning("queue", "cleaning the spool %s: %s", queue_name(q),
				    error ? error : "failed");
	}
}

static void qm_run_due(struct queue_manager *qm);

static void qm_scan_done(void *arg, bool cancelled)
{
	struct qm_scan *sc = arg;
	struct queue_manager *qm = sc->qm;
	(void)cancelled;
	qm->scanning = false;
	if (sc->full && !sc->failed) {
		for (size_t i = 0; i < qm->n; i++)
			qm->entries[i].seen = false;
		for (size_t i = 0; i < sc->n; i++) {
			struct qm_entry *e = sc->found[i].read ? qm_add(qm, sc->found[i].id)
							       : qm_find(qm, sc->found[i].id);
			if (e == NULL)
				continue;
			e->seen = true;
			if (sc->found[i].read && !e->active) {
				e->next_attempt = sc->found[i].next_attempt;
				e->hold = sc->found[i].hold;
			}
		}
		/* gone from the spool (removed by an attempt that ended since, or
		 * by hand): the ids known at the start that were not listed */
		for (size_t i = 0; i < qm->n;) {
			struct qm_entry *e = &qm->entries[i];
			if (qm_scan_knew(sc, e->id) && !e->seen && !e->active)
				qm_remove_at(qm, i);
			else
				i++;
		}
		qm->last_scan = qm_now();
	}
	free(sc->known);
	free(sc->found);
	free(sc);
	if (!qm->stopping)
		qm_run_due(qm);
	if (qm->stopping && qm->attempts_running == 0 && !qm->scanning)
		event_base_loopbreak(qm->base);
}

/* Starts a scan job; full: the spool too, not only the maildrop. */
static void qm_scan_start(struct queue_manager *qm, bool full)
{
	struct qm_scan *sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return;
	sc->qm = qm;
	sc->full = full;
	/* at the first full scan, then hourly: it reads every envelope */
	if (full && (qm->last_cleanup == 0 || qm_now() - qm->last_cleanup >= QM_CLEANUP_INTERVAL)) {
		sc->cleanup = true;
		qm->last_cleanup = qm_now();
	}
	if (qm->n > 0 && (sc->known = malloc(qm->n * sizeof(*sc->known))) == NULL) {
		free(sc);
		return;
	}
	for (size_t i = 0; i < qm->n; i++)
		memcpy(sc->known[i], qm->entries[i].id, QUEUE_ID_MAX);
	sc->nknown = qm->n; /* the table is sorted: so is this */
	if (job_submit(qm->env->jobs, qm->base, qm_scan_work, qm_scan_done, sc) == NULL) {
		free(sc->known);
		free(sc);
		return;
	}
	qm->scanning = true;
}

static void qm_run_due(struct queue_manager *qm)
{
	int64_t now = qm_now();
	for (size_t i = 0; i < qm->n && !qm->stopping; i++) {
		if (qm->attempts_running >= qm->cfg.max_deliveries)
			break;
		struct qm_entry *e = &qm->entries[i];
		if (e->active || e->hold || e->next_attempt > now)
			continue;
		qm_attempt_start(qm, e);
	}
}

/* Messages SMTP sessions and notices queued since the last tick: due
 * now, no need to read their envelopes or to list the spool. */
static void qm_take_queued(struct queue_manager *qm)
{
	pthread_mutex_lock(&qm->lock);
	for (size_t i = 0; i < qm->nqueued; i++) {
		struct qm_entry *e = qm_add(qm, qm->queued[i]);
		if (e == NULL)
			qm->rescan = true; /* the scan finds it */
	}
	qm->nqueued = 0;
	pthread_mutex_unlock(&qm->lock);
}

static void qm_tick(struct queue_manager *qm)
{
	if (qm->stopping)
		return;
	if (!queue_locked(qm->spool)) {
		const char *error = NULL;
		if (queue_lock(qm->spool, &error) < 0) {
			/* another process runs it (an old maild still draining, or
			 * a node that adopted it): this one waits, every second */
			if (qm_now() - qm->last_lock_log >= QM_LOCK_LOG_INTERVAL) {
				log_warning("queue", "spool %s is locked (%s); waiting for it",
					    queue_path(qm->spool), error ? error : "?");
				qm->last_lock_log = qm_now();
			}
			return;
		}
		log_info("queue", "running spool %s", queue_path(qm->spool));
		qm->rescan = true;
	}
	qm_take_queued(qm);
	if (!qm->scanning) {
		pthread_mutex_lock(&qm->lock);
		bool full = qm->rescan || qm_now() - qm->last_scan >= QM_RESCAN_INTERVAL;
		qm->rescan = false;
		pthread_mutex_unlock(&qm->lock);
		qm_scan_start(qm, full);
	}
	qm_run_due(qm);
}

static void qm_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	qm_tick(arg);
}

void qm_attempt_done(struct queue_manager *qm, const char *id, int64_t next_attempt)
{
	qm->attempts_running--;
	struct qm_entry *e = qm_find(qm, id);
	if (e != NULL) {
		e->active = false;
		if (next_attempt < 0)
			qm_remove_at(qm, (size_t)(e - qm->entries));
		else
			e->next_attempt = next_attempt;
	}
	if (qm->stopping) {
		if (qm->attempts_running == 0 && !qm->scanning)
			event_base_loopbreak(qm->base);
		return;
	}
	event_active(qm->ev_wake, 0, 0);
}

static void *qm_thread(void *arg)
{
	struct queue_manager *qm = arg;
	/* Job completions arrive by event_active from job threads, and at a
	 * stop no other event may be left: only qm_stop_cb's loopbreak (once
	 * no attempt or scan is running) may end this loop. */
	event_base_loop(qm->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct queue_manager *queue_manager_new(const struct service_env *env,
					const struct node_config *cfg, const char **error_r)
{
	struct queue_manager *qm = calloc(1, sizeof(*qm));
	char name[16];
	if (qm == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	pthread_mutex_init(&qm->lock, NULL);
	qm->env = env;
	qm->cfg = cfg->queue;
	qm->node_id = cfg->node_id;
	snprintf(qm->resolver, sizeof(qm->resolver), "%s", cfg->smtp.resolver);
	snprintf(qm->hostname, sizeof(qm->hostname), "%s", env->hostname);
	if (qm->cfg.postmaster[0] == '\0')
		snprintf(qm->cfg.postmaster, sizeof(qm->cfg.postmaster), "postmaster@%s",
			 env->hostname);
	snprintf(name, sizeof(name), "%u", cfg->node_id);
	int ret = queue_open(env->store, name, &qm->spool, error_r);
	if (ret == 0)
		ret = queue_open(env->store, "maildrop", &qm->maildrop, error_r);
	if (ret < 0) {
		queue_manager_free(&qm);
		return NULL;
	}
	if (qm->cfg.starttls && (qm->tls = outbound_tls_context()) == NULL) {
		*error_r = "cannot create the outbound TLS context";
		queue_manager_free(&qm);
		return NULL;
	}
	qm->base = event_base_new();
	if (qm->base != NULL) {
		qm->ev_tick = event_new(qm->base, -1, EV_PERSIST, qm_tick_cb, qm);
		qm->ev_wake = event_new(qm->base, -1, 0, qm_tick_cb, qm);
	}
	if (qm->ev_tick == NULL || qm->ev_wake == NULL) {
		*error_r = "out of memory";
		queue_manager_free(&qm);
		return NULL;
	}
	return qm;
}

void queue_manager_set_self(struct queue_manager *qm, const struct outbound_self *self)
{
	qm->self = *self;
}

int queue_manager_start(struct queue_manager *qm, const char **error_r)
{
	struct timeval second = {.tv_sec = 1};
	event_add(qm->ev_tick, &second);
	qm->rescan = true;
	event_active(qm->ev_wake, 0, 0);
	int e = pthread_create(&qm->thread, NULL, qm_thread, qm);
	if (e != 0) {
		*error_r = strerror(e);
		return -1;
	}
	qm->thread_started = true;
	return 0;
}

static void qm_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_manager *qm = arg;
	(void)fd;
	(void)what;
	qm->stopping = true;
	event_del(qm->ev_tick);
	for (struct qm_attempt *a = qm->attempts, *next; a != NULL; a = next) {
		next = qm_attempt_next(a);
		qm_attempt_cancel(a);
	}
	if (qm->attempts_running == 0 && !qm->scanning)
		event_base_loopbreak(qm->base);
}

void queue_manager_stop(struct queue_manager *qm)
{
	if (qm == NULL || !qm->thread_started)
		return;
	event_base_once(qm->base, -1, EV_TIMEOUT, qm_stop_cb, qm, NULL);
	pthread_join(qm->thread, NULL);
	qm->thread_started = false;
}

void queue_manager_free(struct queue_manager **qmp)
{
	struct queue_manager *qm = *qmp;
	if (qm == NULL)
		return;
	queue_manager_stop(qm);
	if (qm->ev_tick != NULL)
		event_free(qm->ev_tick);
	if (qm->ev_wake != NULL)
		event_free(qm->ev_wake);
	if (qm->base != NULL)
		event_base_free(qm->base);
	if (qm->tls != NULL)
		SSL_CTX_free(qm->tls);
	queue_close(&qm->spool);
	queue_close(&qm->maildrop);
	free(qm->entries);
	free(qm->dests);
	free(qm->queued);
	pthread_mutex_destroy(&qm->lock);
	free(qm);
	*qmp = NULL;
}

struct queue *queue_manager_spool(struct queue_manager *qm)
{
	return qm->spool;
}

void queue_manager_queued(struct queue_manager *qm, const char *id)
{
	pthread_mutex_lock(&qm->lock);
	void *queued = qm_grow(qm->queued, qm->nqueued, &qm->capqueued, sizeof(*qm->queued), 64);
	if (queued != NULL) {
		qm->queued = queued;
		snprintf(qm->queued[qm->nqueued++], QUEUE_ID_MAX, "%s", id);
	} else {
		qm->rescan = true;
	}
	pthread_mutex_unlock(&qm->lock);
	event_active(qm->ev_wake, 0, 0);
}


/*
 * Control from mailctl (any thread, in practice the control thread). The
 * table belongs to the manager's loop and the envelopes to whoever holds
 * the spool's lock, which is this process; the disk work (an envelope
 * rewritten, a message removed, a spool adopted, each with its fsync)
 * runs on the calling thread, never on the loop:
 *   1. on the loop: the message is reserved (marked active) so that no
 *      attempt starts on it; one being delivered now is refused rather
 *      than raced;
 *   2. on the calling thread: the store operation;
 *   3. on the loop: the table follows (hold, due time, removal).
 */
enum qm_op { QM_FLUSH_ALL, QM_FLUSH_ONE, QM_HOLD, QM_RELEASE, QM_DELETE, QM_ADOPT };

/* What FLUSH_ONE, HOLD and RELEASE do to a message's hold flag and due
 * time: said once, for the envelope (step 2) and the table (step 3). */
static void qm_op_apply(enum qm_op op, bool *hold, int64_t *next_attempt)
{
	if (op == QM_HOLD)
		*hold = true;
	if (op == QM_RELEASE) /* held no more, and due now */
		*hold = false;
	if (op == QM_FLUSH_ONE || op == QM_RELEASE)
		*next_attempt = 0;
}

struct qm_control {
	struct queue_manager *qm;
	const char *id;
	enum qm_op op;
	int step;      /* 1 reserve, 3 apply */
	bool reserved; /* step 1 found and reserved the message's entry */
	int ret;
	int count;
	char error[256];
	bool done;
	pthread_cond_t cond;
};

struct qm_adopt {
	struct queue_manager *qm;
	struct queue *from;
	int moved, failed;
};

static bool qm_adopt_one(const char *id, void *ctx)
{
	struct qm_adopt *a = ctx;
	const char *error = NULL;
	int ret = queue_move(a->from, a->qm->spool, id, &error);
	if (ret == 0) {
		a->moved++;
	} else {
		a->failed++;
		log_error("queue", "id=%s adopting from spool %s failed: %s", id,
			  queue_name(a->from), error ? error : store_strerror(ret));
	}
	return true;
}

/*
 * Takeover of another node's spool (a dead node, or one retired): under
 * that spool's lock, so never while its own maild runs it, every message
 * moves whole into this node's spool (storage/queue.h: in exactly one
 * spool at every instant) and is delivered from here. The cluster's
 * membership will call this for a dead node; mailctl queue adopt does it
 * by hand.
 */
static void qm_adopt(struct qm_control *c)
{
	struct queue_manager *qm = c->qm;
	struct qm_adopt a = {.qm = qm};
	const char *error = NULL;
	if (strcmp(c->id, queue_name(qm->spool)) == 0 || strcmp(c->id, "maildrop") == 0) {
		snprintf(c->error, sizeof(c->error), "spool %s is not another node's spool", c->id);
		return;
	}
	int ret = queue_open(qm->env->store, c->id, &a.from, &error);
	if (ret == 0)
		ret = queue_lock(a.from, &error);
	if (ret == 0)
		ret = queue_list(a.from, qm_adopt_one, &a, &error);
	/* What is left a day old are torn commits that no client was ever
	 * told about. Not younger: SMTP sessions of that node commit without
	 * the spool's lock (a maild starting again, its queue manager waiting
	 * for the lock we hold), and a commit between its data and its
	 * envelope must keep its data. */
	if (ret == 0)
		queue_cleanup(a.from, QM_LEFTOVER_AGE, &error);
	queue_close(&a.from);
	if (ret < 0) {
		snprintf(c->error, sizeof(c->error), "spool %s: %s", c->id,
			 error ? error : store_strerror(ret));
		return;
	}
	log_notice("queue", "adopted spool %s: moved=%d failed=%d into spool %s", c->id, a.moved,
		   a.failed, queue_name(qm->spool));
	c->count = a.moved;
	c->ret = a.failed == 0 ? 0 : -1;
	if (a.failed > 0)
		snprintf(c->error, sizeof(c->error), "%d messages could not be moved (see the log)",
			 a.failed);
}

/* Step 2, on the calling thread. */
static void qm_control_store(struct qm_control *c)
{
	struct queue_manager *qm = c->qm;
	struct queue_envelope env = {0};
	const char *error = NULL;
	int ret;

	if (c->op == QM_ADOPT) {
		qm_adopt(c);
		return;
	}
	if (c->op == QM_DELETE) {
		ret = queue_remove(qm->spool, c->id, &error);
	} else {
		ret = queue_envelope_read(qm->spool, c->id, &env, &error);
		if (ret == 0) {
			qm_op_apply(c->op, &env.hold, &env.next_attempt);
			ret = queue_envelope_update(qm->spool, &env, &error);
		}
		queue_envelope_clear(&env);
	}
	if (ret == STORE_E_NOTFOUND) {
		snprintf(c->error, sizeof(c->error), "no message %s in the queue", c->id);
		return;
	}
	if (ret < 0) {
		snprintf(c->error, sizeof(c->error), "%s", error ? error : store_strerror(ret));
		return;
	}
	static const char *const done[] = {
	    [QM_FLUSH_ONE] = "flushed", [QM_HOLD] = "held", [QM_RELEASE] = "released",
	    [QM_DELETE] = "removed"};
	log_info("queue", "id=%s %s by the operator", c->id, done[c->op]);
	c->ret = 0;
}

/* Steps 1 and 3, on the loop. */
static void qm_control_loop(struct qm_control *c)
{
	struct queue_manager *qm = c->qm;
	if (c->op == QM_FLUSH_ALL) {
		qm_take_queued(qm);
		for (size_t i = 0; i < qm->n; i++) {
			if (!qm->entries[i].active && !qm->entries[i].hold) {
				qm->entries[i].next_attempt = 0;
				c->count++;
			}
		}
		c->ret = 0;
	} else if (c->op == QM_ADOPT) {
		if (c->step == 1) {
			c->ret = 0;
		} else if (c->count > 0) {
			pthread_mutex_lock(&qm->lock);
			qm->rescan = true;
			pthread_mutex_unlock(&qm->lock);
		}
	} else if (c->step == 1) {
		qm_take_queued(qm);
		struct qm_entry *e = qm_find(qm, c->id);
		if (e != NULL && e->active) {
			snprintf(c->error, sizeof(c->error),
				 "message %s is being delivered now; try again in a moment", c->id);
			c->ret = -1;
			return;
		}
		c->reserved = e != NULL;
		if (e != NULL)
			e->active = true;
		c->ret = 0;
	} else {
		struct qm_entry *e = c->reserved ? qm_find(qm, c->id) : NULL;
		if (e != NULL) {
			e->active = false;
			if (c->ret == 0 && c->op == QM_DELETE)
				qm_remove_at(qm, (size_t)(e - qm->entries));
			else if (c->ret == 0)
				qm_op_apply(c->op, &e->hold, &e->next_attempt);
		} else if (c->ret == 0 && c->op != QM_DELETE) {
			pthread_mutex_lock(&qm->lock);
			qm->rescan = true; /* queued meanwhile: the scan reads it */
			pthread_mutex_unlock(&qm->lock);
		}
	}
	event_active(qm->ev_wake, 0, 0);
}

static void qm_control_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qm_control *c = arg;
	(void)fd;
	(void)what;
	if (c->qm->stopping && c->step == 1) {
		snprintf(c->error, sizeof(c->error), "the queue manager is stopping");
		c->ret = -1;
	} else {
		qm_control_loop(c);
	}
	pthread_mutex_lock(&c->qm->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->qm->lock);
}

/* Runs one loop step of c and waits for it: 0, or -1 when the loop is
 * not there to run it. */
static int qm_control_step(struct qm_control *c, int step)
{
	struct queue_manager *qm = c->qm;
	c->step = step;
	c->done = false;
	if (!qm->thread_started ||
	    event_base_once(qm->base, -1, EV_TIMEOUT, qm_control_cb, c, NULL) < 0)
		return -1;
	pthread_mutex_lock(&qm->lock);
	while (!c->done)
		pthread_cond_wait(&c->cond, &qm->lock);
	pthread_mutex_unlock(&qm->lock);
	return 0;
}

static int qm_control(struct queue_manager *qm, const char *id, int op, struct textbuf *err,
		      int *count_r)
{
	struct qm_control c = {.qm = qm, .id = id, .op = op, .ret = -1};
	pthread_cond_init(&c.cond, NULL);
	int ret = qm_control_step(&c, 1);
	if (ret == 0 && c.ret == 0 && op != QM_FLUSH_ALL) {
		c.ret = -1;
		qm_control_store(&c);
		/* the reservation is given back even when the store step failed */
		ret = qm_control_step(&c, 3);
	}
	pthread_cond_destroy(&c.cond);
	if (ret < 0) {
		textbuf_printf(err, "the queue manager is not running\n");
		return -1;
	}
	if (c.ret < 0)
		textbuf_printf(err, "%s\n", c.error);
	if (count_r != NULL)
		*count_r = c.count;
	return c.ret;
}

int queue_manager_flush(struct queue_manager *qm)
{
	struct textbuf err = TEXTBUF_INIT;
	int count = 0;
	int ret = qm_control(qm, "", QM_FLUSH_ALL, &err, &count);
	textbuf_free(&err);
	return ret < 0 ? -1 : count;
}

int queue_manager_adopt(struct queue_manager *qm, const char *spool, struct textbuf *err)
{
	int count = 0;
	int ret = qm_control(qm, spool, QM_ADOPT, err, &count);
	return ret < 0 ? -1 : count;
}

int queue_manager_flush_one(struct queue_manager *qm, const char *id, struct textbuf *err)
{
	return qm_control(qm, id, QM_FLUSH_ONE, err, NULL);
}

int queue_manager_hold(struct queue_manager *qm, const char *id, bool hold, struct textbuf *err)
{
	return qm_control(qm, id, hold ? QM_HOLD : QM_RELEASE, err, NULL);
}

int queue_manager_delete(struct queue_manager *qm, const char *id, struct textbuf *err)
{
	return qm_control(qm, id, QM_DELETE, err, NULL);
}
