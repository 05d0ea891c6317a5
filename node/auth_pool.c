/*
 * auth_pool: worker threads for authentication and delivery back to the
 * connection's event loop (see node/auth_pool.h).
 *
 * A handle moves IDLE -> QUEUED -> RUNNING -> DONE -> IDLE. Its mutex
 * guards the state; the pool's mutex guards the queue. Lock order: a
 * handle's lock may be held while taking the pool's (handle_free of a
 * queued job), never the other way round (workers pop with the pool lock
 * alone, then lock the handle).
 */
#include "node/auth_pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/log.h"

enum handle_state { H_IDLE, H_QUEUED, H_RUNNING, H_DONE };
enum job_op { OP_START, OP_STEP, OP_ABORT, OP_PASSWORD, OP_APOP };

struct auth_handle {
	struct auth_pool *pool;
	struct auth_session *session;
	struct event *ev; /* delivery, on the connection's base; NULL once cancelled */
	pthread_mutex_t lock;
	enum handle_state state;
	bool cancelled; /* freed by its owner while a worker holds it */
	struct auth_handle *next;

	/* The job. */
	enum job_op op;
	char mech[32];
	bool has_ir;
	struct textbuf data; /* initial response, response or password */
	char user[AUTH_APOP_TIMESTAMP_MAX];
	char timestamp[AUTH_APOP_TIMESTAMP_MAX];
	char digest[40];
	auth_done_cb *done;
	void *arg;
	struct auth_outcome out;
};

struct auth_pool {
	struct auth *auth;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct auth_handle *head, *tail;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
};

static void handle_destroy(struct auth_handle *h)
{
	auth_session_free(&h->session);
	explicit_bzero(h->data.data != NULL ? h->data.data : "", h->data.len);
	textbuf_free(&h->data);
	explicit_bzero(h->digest, sizeof(h->digest));
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void run_job(struct auth_handle *h)
{
	struct auth_session *s = h->session;
	switch (h->op) {
	case OP_START:
		auth_start(s, h->mech, h->data.data, h->data.len, h->has_ir, &h->out);
		break;
	case OP_STEP:
		auth_step(s, h->data.data, h->data.len, &h->out);
		break;
	case OP_ABORT:
		auth_abort(s, &h->out);
		break;
	case OP_PASSWORD:
		auth_password(s, h->user, textbuf_str(&h->data), &h->out);
		break;
	case OP_APOP:
		auth_apop(s, h->user, h->timestamp, h->digest, &h->out);
		break;
	}
	/* The password or response is not needed any more. */
	if (h->data.data != NULL)
		explicit_bzero(h->data.data, h->data.len);
	textbuf_truncate(&h->data, 0);
}

static void *pool_worker(void *arg)
{
	struct auth_pool *pool = arg;

	for (;;) {
		pthread_mutex_lock(&pool->lock);
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		if (pool->head == NULL) {
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		struct auth_handle *h = pool->head;
		pool->head = h->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		h->next = NULL;
		pthread_mutex_unlock(&pool->lock);

		pthread_mutex_lock(&h->lock);
		if (h->cancelled) { /* freed between the pop and here */
			pthread_mutex_unlock(&h->lock);
			handle_destroy(h);
			continue;
		}
		h->state = H_RUNNING;
		pthread_mutex_unlock(&h->lock);

		run_job(h);

		pthread_mutex_lock(&h->lock);
		if (h->cancelled) {
			pthread_mutex_unlock(&h->lock);
			handle_destroy(h);
			continue;
		}
		h->state = H_DONE;
		if (h->out.delay_ms > 0) { /* a failure's, or a penalty's */
			struct timeval tv = {.tv_sec = h->out.delay_ms / 1000,
					     .tv_usec = (h->out.delay_ms % 1000) * 1000};
			event_add(h->ev, &tv);
		} else {
			event_active(h->ev, EV_TIMEOUT, 0);
		}
		pthread_mutex_unlock(&h->lock);
	}
}

/* On the loop thread: the outcome is due. */
static void deliver(evutil_socket_t fd, short what, void *arg)
{
	struct auth_handle *h = arg;
	(void)fd, (void)what;

	pthread_mutex_lock(&h->lock);
	h->state = H_IDLE;
	auth_done_cb *done = h->done;
	void *done_arg = h->arg;
	h->done = NULL;
	pthread_mutex_unlock(&h->lock);
	/* done may start the next operation or free the handle: h is not
	 * touched after it. */
	done(&h->out, done_arg);
}

/* Locks h for filling in a job: false (and unlocked) when an operation is
 * already in flight. The job's fields are written under the lock, so a
 * worker that takes the lock later sees them whole. */
static bool job_begin(struct auth_handle *h)
{
	pthread_mutex_lock(&h->lock);
	if (h->state == H_IDLE)
		return true;
	pthread_mutex_unlock(&h->lock);
	log_error("auth", "an authentication operation was started while another was in "
			  "flight on the same connection; ignored");
	return false;
}

/* Queues the job filled in since job_begin and unlocks h. */
static void job_commit(struct auth_handle *h, auth_done_cb *done, void *arg)
{
	struct auth_pool *pool = h->pool;

	h->state = H_QUEUED;
	h->done = done;
	h->arg = arg;
	pthread_mutex_lock(&pool->lock);
	if (pool->tail != NULL)
		pool->tail->next = h;
	else
		pool->head = h;
	pool->tail = h;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	pthread_mutex_unlock(&h->lock);
}

/* ---- the interface ---- */

static size_t pool_mechanisms(void *ctx, bool tls, bool plaintext_allowed, char *out, size_t size)
{
	struct auth_pool *pool = ctx;
	return auth_mechanisms(pool->auth, tls, plaintext_allowed, out, size);
}

static bool pool_apop_timestamp(void *ctx, char *out, size_t size)
{
	struct auth_pool *pool = ctx;
	return auth_apop_available(pool->auth) && auth_apop_timestamp(pool->auth, out, size) == 0;
}

static struct auth_handle *pool_handle_new(void *ctx, struct event_base *base,
					   const struct auth_session_params *p)
{
	struct auth_pool *pool = ctx;
	struct auth_handle *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->pool = pool;
	h->session = auth_session_new(pool->auth, p);
	h->ev = event_new(base, -1, 0, deliver, h);
	if (h->session == NULL || h->ev == NULL) {
		if (h->ev != NULL)
			event_free(h->ev);
		auth_session_free(&h->session);
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void pool_handle_set_tls(struct auth_handle *h, bool tls)
{
	pthread_mutex_lock(&h->lock);
	if (h->state == H_IDLE)
		auth_session_set_tls(h->session, tls);
	pthread_mutex_unlock(&h->lock);
}

static void pool_handle_free(struct auth_handle **hp)
{
	struct auth_handle *h = *hp;
	bool destroy = true;

	if (h == NULL)
		return;
	*hp = NULL;
	pthread_mutex_lock(&h->lock);
	/* The event belongs to the loop thread we are on: it goes now,
	 * whatever the state (this also discards a pending delivery). */
	event_free(h->ev);
	h->ev = NULL;
	if (h->state == H_QUEUED) {
		struct auth_pool *pool = h->pool;
		struct auth_handle **pp;
		pthread_mutex_lock(&pool->lock);
		for (pp = &pool->head; *pp != NULL && *pp != h; pp = &(*pp)->next)
			;
		if (*pp == h) {
			*pp = h->next;
			if (pool->tail == h) {
				pool->tail = NULL;
				for (struct auth_handle *t = pool->head; t != NULL; t = t->next)
					pool->tail = t;
			}
		} else {
			destroy = false; /* a worker popped it: it frees it */
		}
		pthread_mutex_unlock(&pool->lock);
	} else if (h->state == H_RUNNING) {
		destroy = false;
	}
	h->cancelled = true;
	pthread_mutex_unlock(&h->lock);
	if (destroy)
		handle_destroy(h);
}

static void pool_start(struct auth_handle *h, const char *mech, const void *ir, size_t ir_len,
		       bool has_ir, auth_done_cb *done, void *arg)
{
	if (!job_begin(h))
		return;
	h->op = OP_START;
	snprintf(h->mech, sizeof(h->mech), "%s", mech != NULL ? mech : "");
	h->has_ir = has_ir;
	textbuf_truncate(&h->data, 0);
	if (has_ir && ir != NULL) /* one byte over the limit is enough to refuse it */
		textbuf_append(&h->data, ir,
			       ir_len <= AUTH_RESPONSE_MAX ? ir_len : AUTH_RESPONSE_MAX + 1);
	job_commit(h, done, arg);
}

static void pool_step(struct auth_handle *h, const void *resp, size_t len, auth_done_cb *done,
		      void *arg)
{
	if (!job_begin(h))
		return;
	h->op = OP_STEP;
	textbuf_truncate(&h->data, 0);
	if (resp != NULL)
		textbuf_append(&h->data, resp,
			       len <= AUTH_RESPONSE_MAX ? len : AUTH_RESPONSE_MAX + 1);
	job_commit(h, done, arg);
}

static void pool_abort(struct auth_handle *h, auth_done_cb *done, void *arg)
{
	if (!job_begin(h))
		return;
	h->op = OP_ABORT;
	job_commit(h, done, arg);
}

static void pool_password(struct auth_handle *h, const char *user, const char *password,
			  auth_done_cb *done, void *arg)
{
	if (!job_begin(h))
		return;
	h->op = OP_PASSWORD;
	snprintf(h->user, sizeof(h->user), "%s", user != NULL ? user : "");
	textbuf_truncate(&h->data, 0);
	textbuf_puts(&h->data, password != NULL ? password : "");
	job_commit(h, done, arg);
}

static void pool_apop(struct auth_handle *h, const char *user, const char *timestamp,
		      const char *digest, auth_done_cb *done, void *arg)
{
	if (!job_begin(h))
		return;
	h->op = OP_APOP;
	snprintf(h->user, sizeof(h->user), "%s", user != NULL ? user : "");
	snprintf(h->timestamp, sizeof(h->timestamp), "%s", timestamp != NULL ? timestamp : "");
	snprintf(h->digest, sizeof(h->digest), "%s", digest != NULL ? digest : "");
	job_commit(h, done, arg);
}

static const struct auth_iface pool_iface = {
    .mechanisms = pool_mechanisms,
    .apop_timestamp = pool_apop_timestamp,
    .handle_new = pool_handle_new,
    .handle_set_tls = pool_handle_set_tls,
    .handle_free = pool_handle_free,
    .start = pool_start,
    .step = pool_step,
    .abort = pool_abort,
    .password = pool_password,
    .apop = pool_apop,
};

const struct auth_iface *auth_pool_iface(void)
{
	return &pool_iface;
}

/* ---- the pool ---- */

int auth_pool_new(struct auth *auth, unsigned threads, struct auth_pool **pool_r,
		  const char **error_r)
{
	struct auth_pool *pool = calloc(1, sizeof(*pool));

	*pool_r = NULL;
	if (threads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (pool == NULL || (pool->threads = calloc(threads, sizeof(pthread_t))) == NULL) {
		free(pool);
		*error_r = "out of memory";
		return -1;
	}
	pool->auth = auth;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool->threads[i], NULL, pool_worker, pool) != 0) {
			*error_r = "cannot start authentication threads";
			auth_pool_free(&pool);
			return -1;
		}
		pool->nthreads++;
	}
	*pool_r = pool;
	return 0;
}

void auth_pool_free(struct auth_pool **poolp)
{
	struct auth_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true; /* workers finish the queue, then exit */
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->wake);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
