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

#include "node/log.h"
#include "node/outbound.h"
#include "node/queue_manager_private.h"

#define QM_RESCAN_INTERVAL 60
#define QM_LOCK_LOG_INTERVAL 60 /* "spool is locked" once a minute, not every tick */

static int64_t qm_now(void)
{
	return (int64_t)time(NULL);
}

struct qm_entry *qm_find(struct queue_manager *qm, const char *id)
{
	for (size_t i = 0; i < qm->n; i++)
		if (strcmp(qm->entries[i].id, id) == 0)
			return &qm->entries[i];
	return NULL;
}

static struct qm_entry *qm_add(struct queue_manager *qm, const char *id)
{
	if (qm->n == qm->cap) {
		size_t cap = qm->cap != 0 ? qm->cap * 2 : 64;
		struct qm_entry *e = realloc(qm->entries, cap * sizeof(*e));
		if (e == NULL)
			return NULL;
		qm->entries = e;
		qm->cap = cap;
	}
	struct qm_entry *e = &qm->entries[qm->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	return e;
}

static void qm_remove_at(struct queue_manager *qm, size_t i)
{
	qm->entries[i] = qm->entries[--qm->n];
}

bool qm_dest_acquire(struct queue_manager *qm, const char *name)
{
	struct qm_dest *d = NULL;
	for (size_t i = 0; i < qm->ndests && d == NULL; i++)
		if (strcmp(qm->dests[i].name, name) == 0)
			d = &qm->dests[i];
	if (d == NULL) {
		if (qm->ndests == qm->capdests) {
			size_t cap = qm->capdests != 0 ? qm->capdests * 2 : 16;
			struct qm_dest *n = realloc(qm->dests, cap * sizeof(*n));
			if (n == NULL)
				return false;
			qm->dests = n;
			qm->capdests = cap;
		}
		d = &qm->dests[qm->ndests++];
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->active = 0;
	}
	if (d->active >= qm->cfg.destination_concurrency)
		return false;
	d->active++;
	return true;
}

void qm_dest_release(struct queue_manager *qm, const char *name)
{
	for (size_t i = 0; i < qm->ndests; i++) {
		if (strcmp(qm->dests[i].name, name) == 0) {
			if (--qm->dests[i].active == 0)
				qm->dests[i] = qm->dests[--qm->ndests];
			return;
		}
	}
}

/* Maildrop messages (sendmail) move into this node's spool. */
static bool qm_pickup_one(const char *id, void *ctx)
{
	struct queue_manager *qm = ctx;
	const char *error = NULL;
	int ret = queue_move(qm->maildrop, qm->spool, id, &error);
	if (ret < 0) {
		log_warning("queue", "id=%s pickup from the maildrop failed: %s", id,
			    error ? error : store_strerror(ret));
	} else {
		log_info("queue", "id=%s picked up from the maildrop", id);
		pthread_mutex_lock(&qm->lock);
		qm->rescan = true;
		pthread_mutex_unlock(&qm->lock);
	}
	return true;
}

static bool qm_scan_one(const char *id, void *ctx)
{
	struct queue_manager *qm = ctx;
	struct qm_entry *e = qm_find(qm, id);
	if (e != NULL) {
		e->seen = true;
		return true;
	}
	struct queue_envelope env = {0};
	const char *error = NULL;
	int ret = queue_envelope_read(qm->spool, id, &env, &error);
	if (ret == STORE_E_NOTFOUND)
		return true;
	e = qm_add(qm, id);
	if (e == NULL)
		return false;
	e->seen = true;
	if (ret < 0) {
		/* kept in the table so that it is not read again every scan */
		log_error("queue", "id=%s unreadable envelope: %s; held until repaired", id,
			  error ? error : store_strerror(ret));
		e->hold = true;
		return true;
	}
	e->next_attempt = env.next_attempt;
	e->hold = env.hold;
	queue_envelope_clear(&env);
	return true;
}

/* The maildrop is looked at every tick: sendmail cannot wake us. */
static void qm_pickup(struct queue_manager *qm)
{
	const char *error = NULL;
	if (queue_list(qm->maildrop, qm_pickup_one, qm, &error) < 0)
		log_warning("queue", "reading the maildrop: %s", error ? error : "failed");
}

static void qm_scan(struct queue_manager *qm)
{
	const char *error = NULL;
	for (size_t i = 0; i < qm->n; i++)
		qm->entries[i].seen = false;
	if (queue_list(qm->spool, qm_scan_one, qm, &error) < 0) {
		log_error("queue", "reading the spool %s: %s", queue_path(qm->spool),
			  error ? error : "failed");
		return;
	}
	for (size_t i = 0; i < qm->n;) {
		if (!qm->entries[i].seen && !qm->entries[i].active)
			qm_remove_at(qm, i);
		else
			i++;
	}
	qm->last_scan = qm_now();
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
	qm_pickup(qm);
	pthread_mutex_lock(&qm->lock);
	bool rescan = qm->rescan || qm_now() - qm->last_scan >= QM_RESCAN_INTERVAL;
	bool flush = qm->flush_all;
	qm->rescan = qm->flush_all = false;
	pthread_mutex_unlock(&qm->lock);
	if (rescan)
		qm_scan(qm);
	if (flush)
		for (size_t i = 0; i < qm->n; i++)
			qm->entries[i].next_attempt = 0;
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
		if (qm->attempts_running == 0)
			event_base_loopbreak(qm->base);
		return;
	}
	event_active(qm->ev_wake, 0, 0);
}

static void *qm_thread(void *arg)
{
	struct queue_manager *qm = arg;
	event_base_dispatch(qm->base);
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
	if (qm->attempts_running == 0)
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
	pthread_mutex_destroy(&qm->lock);
	free(qm);
	*qmp = NULL;
}

struct queue *queue_manager_spool(struct queue_manager *qm)
{
	return qm->spool;
}

void queue_manager_kick(struct queue_manager *qm)
{
	pthread_mutex_lock(&qm->lock);
	qm->rescan = true;
	pthread_mutex_unlock(&qm->lock);
	event_active(qm->ev_wake, 0, 0);
}


/*
 * Per-message control. The envelope is changed by whoever holds the
 * spool lock, which is this process; an attempt in flight owns the
 * envelope, so these refuse a message that is being delivered rather
 * than race it.
 */
struct qm_control {
	struct queue_manager *qm;
	const char *id;
	enum { QM_FLUSH_ALL, QM_FLUSH_ONE, QM_HOLD, QM_RELEASE, QM_DELETE, QM_ADOPT } op;
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
	/* Whatever is left are torn commits that no client was ever told
	 * about: with the lock free, no process of that node writes there. */
	if (ret == 0)
		queue_cleanup(a.from, 0, &error);
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
	qm_scan(qm);
	event_active(qm->ev_wake, 0, 0);
}

static void qm_control_run(struct qm_control *c)
{
	struct queue_manager *qm = c->qm;
	if (c->op == QM_ADOPT) {
		qm_adopt(c);
		return;
	}
	if (c->op == QM_FLUSH_ALL) {
		qm_scan(qm);
		for (size_t i = 0; i < qm->n; i++) {
			if (!qm->entries[i].active && !qm->entries[i].hold) {
				qm->entries[i].next_attempt = 0;
				c->count++;
			}
		}
		c->ret = 0;
		event_active(qm->ev_wake, 0, 0);
		return;
	}
	struct qm_entry *e = qm_find(qm, c->id);
	struct queue_envelope env = {0};
	const char *error = NULL;
	c->ret = -1;
	if (e == NULL) {
		qm_scan(qm);
		e = qm_find(qm, c->id);
	}
	if (e == NULL) {
		snprintf(c->error, sizeof(c->error), "no message %s in the queue", c->id);
		return;
	}
	if (e->active) {
		snprintf(c->error, sizeof(c->error),
			 "message %s is being delivered now; try again in a moment", c->id);
		return;
	}
	if (c->op == QM_DELETE) {
		int ret = queue_remove(qm->spool, c->id, &error);
		if (ret < 0) {
			snprintf(c->error, sizeof(c->error), "%s", error ? error : store_strerror(ret));
			return;
		}
		log_info("queue", "id=%s removed by the operator", c->id);
		qm_remove_at(qm, (size_t)(e - qm->entries));
		c->ret = 0;
		return;
	}
	int ret = queue_envelope_read(qm->spool, c->id, &env, &error);
	if (ret == 0) {
		if (c->op == QM_FLUSH_ONE)
			env.next_attempt = 0;
		else
			env.hold = c->op == QM_HOLD;
		ret = queue_envelope_update(qm->spool, &env, &error);
	}
	queue_envelope_clear(&env);
	if (ret < 0) {
		snprintf(c->error, sizeof(c->error), "%s", error ? error : store_strerror(ret));
		return;
	}
	if (c->op == QM_FLUSH_ONE)
		e->next_attempt = 0;
	else
		e->hold = c->op == QM_HOLD;
	log_info("queue", "id=%s %s by the operator", c->id,
		 c->op == QM_FLUSH_ONE ? "flushed" : c->op == QM_HOLD ? "held" : "released");
	c->ret = 0;
	event_active(qm->ev_wake, 0, 0);
}

static void qm_control_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qm_control *c = arg;
	(void)fd;
	(void)what;
	if (c->qm->stopping)
		snprintf(c->error, sizeof(c->error), "the queue manager is stopping");
	else
		qm_control_run(c);
	pthread_mutex_lock(&c->qm->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->qm->lock);
}

static int qm_control(struct queue_manager *qm, const char *id, int op, struct textbuf *err,
		      int *count_r)
{
	struct qm_control c = {.qm = qm, .id = id, .op = op, .ret = -1};
	pthread_cond_init(&c.cond, NULL);
	if (!qm->thread_started || event_base_once(qm->base, -1, EV_TIMEOUT, qm_control_cb, &c,
						   NULL) < 0) {
		pthread_cond_destroy(&c.cond);
		textbuf_printf(err, "the queue manager is not running\n");
		return -1;
	}
	pthread_mutex_lock(&qm->lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &qm->lock);
	pthread_mutex_unlock(&qm->lock);
	pthread_cond_destroy(&c.cond);
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
