/*
 * The listener framework (see listener.h): worker threads with one
 * event_base each, their lifecycle (start, drain, stop), the registry of
 * live sessions, and the shared counters. Binding services is
 * listener_service.c; one connection's life is conn.c; the per-address
 * table is listener_addrs.c.
 *
 * Security stance: nothing here parses client bytes. Limits are checked
 * (conn.c) before a connection costs more than its accept.
 *
 * Cross-thread rule: the control thread never touches a worker's
 * evconnlisteners or bufferevents while the worker runs. Drain and stop
 * are per-worker events (created with the base, so triggering them cannot
 * fail) that the control thread event_active()s; libevent's pthread
 * locking wakes the target loop.
 */
#include "node/listener_private.h"

#include "node/log.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTENER_MAX_THREADS 256

int listener_fail(struct listener *l, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->error, sizeof(l->error), fmt, ap);
	va_end(ap);
	*error_r = l->error;
	return -1;
}

void listener_limits_get(struct listener *l, struct listener_limits *limits_r)
{
	pthread_mutex_lock(&l->config_lock);
	*limits_r = l->limits;
	pthread_mutex_unlock(&l->config_lock);
}

void listener_publish(struct listener *l, const char *event, const struct conn_info *info)
{
	pthread_mutex_lock(&l->config_lock);
	listener_event_hook *hook = l->hook;
	void *ctx = l->hook_ctx;
	pthread_mutex_unlock(&l->config_lock);
	if (hook != NULL)
		hook(event, info, ctx);
}

void listener_active_put(struct listener *l)
{
	if (atomic_fetch_sub(&l->active, 1) == 1) {
		pthread_mutex_lock(&l->idle_lock);
		pthread_cond_broadcast(&l->idle_cond);
		pthread_mutex_unlock(&l->idle_lock);
	}
}

void listener_worker_link(struct listener_worker *w, struct conn *c)
{
	pthread_mutex_lock(&w->sessions_lock);
	c->prev = NULL;
	c->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = c;
	w->sessions = c;
	w->n_sessions++;
	pthread_mutex_unlock(&w->sessions_lock);
}

void listener_worker_unlink(struct listener_worker *w, struct conn *c)
{
	pthread_mutex_lock(&w->sessions_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->sessions = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->n_sessions--;
	pthread_mutex_unlock(&w->sessions_lock);
}

/* Worker thread: stop accepting for good (drain or stop). */
static void listener_worker_stop_accepting(struct listener_worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	/* Closed, not only disabled: a socket left listening completes new
	 * handshakes that nobody answers until the process exits; closed, the
	 * kernel refuses them and clients go to another node at once. */
	for (struct listener_service *svc = w->l->services; svc != NULL; svc = svc->next) {
		struct listener_socket *ls = &svc->sockets[w->index];
		event_del(ls->retry);
		if (ls->evl != NULL)
			evconnlistener_free(ls->evl);
		ls->evl = NULL;
	}
}

static void listener_worker_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener_worker *w = arg;
	(void)fd;
	(void)what;
	listener_worker_stop_accepting(w);
	w->drain_begun = true;
	/* shutdown hooks only schedule closes; the list is stable meanwhile */
	for (struct conn *c = w->sessions, *next; c != NULL; c = next) {
		next = c->next;
		conn_shutdown(c);
	}
}

static void listener_worker_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener_worker *w = arg;
	unsigned forced = 0;
	(void)fd;
	(void)what;
	listener_worker_stop_accepting(w);
	const char *reason = w->drain_begun ? "drain forced" : "listener stopped";
	while (w->sessions != NULL) {
		conn_force_close(w->sessions, reason);
		forced++;
	}
	atomic_fetch_add(&w->l->forced, forced);
	/* after this round of callbacks, which includes libevent finalizing
	 * the bufferevents just freed (closing their sockets) */
	event_base_loopexit(w->base, NULL);
}

static void *listener_worker_main(void *arg)
{
	struct listener_worker *w = arg;
	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
		log_error("listener", "worker %u: event loop failed", w->index);
	return NULL;
}

static void listener_free_contents(struct listener *l)
{
	struct listener_service *svc = l->services;
	while (svc != NULL) {
		struct listener_service *next = svc->next;
		listener_service_free(l, svc);
		svc = next;
	}
	l->services = NULL;
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct listener_worker *w = &l->workers[i];
		if (w->ev_drain != NULL)
			event_free(w->ev_drain);
		if (w->ev_stop != NULL)
			event_free(w->ev_stop);
		/* Completions of store jobs that ended after the loop did (their
		 * connections were closed by force): their callbacks log and
		 * free what the job carried. */
		if (w->base != NULL)
			event_base_loop(w->base, EVLOOP_NONBLOCK);
		if (w->base != NULL)
			event_base_free(w->base);
		pthread_mutex_destroy(&w->sessions_lock);
	}
	free(l->workers);
	listener_addrs_fini(&l->addrs);
	pthread_cond_destroy(&l->idle_cond);
	pthread_mutex_destroy(&l->idle_lock);
	pthread_mutex_destroy(&l->config_lock);
}

int listener_create(const struct listener_limits *limits, struct listener **l_r,
		    const char **error_r)
{
	if (evthread_use_pthreads() < 0) {
		*error_r = "libevent: cannot enable pthread locking";
		return -1;
	}
	unsigned n = limits->threads;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (n > LISTENER_MAX_THREADS)
		n = LISTENER_MAX_THREADS;

	struct listener *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	l->limits = *limits;
	l->limits.threads = n;
	pthread_mutex_init(&l->config_lock, NULL);
	pthread_mutex_init(&l->idle_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->idle_cond, &ca);
	pthread_condattr_destroy(&ca);
	l->workers = calloc(n, sizeof(*l->workers));
	int addrs_ret = listener_addrs_init(&l->addrs);
	if (l->workers == NULL || addrs_ret < 0) {
		free(l->workers);
		l->workers = NULL;
		listener_free_contents(l);
		free(l);
		*error_r = "out of memory";
		return -1;
	}
	l->n_workers = n;
	for (unsigned i = 0; i < n; i++) {
		l->workers[i].l = l;
		l->workers[i].index = i;
		pthread_mutex_init(&l->workers[i].sessions_lock, NULL);
	}
	for (unsigned i = 0; i < n; i++) {
		struct listener_worker *w = &l->workers[i];
		w->base = event_base_new();
		if (w->base != NULL) {
			w->ev_drain = event_new(w->base, -1, 0, listener_worker_drain_cb, w);
			w->ev_stop = event_new(w->base, -1, 0, listener_worker_stop_cb, w);
		}
		if (w->base == NULL || w->ev_drain == NULL || w->ev_stop == NULL) {
			listener_free_contents(l);
			free(l);
			*error_r = "libevent: cannot create an event base";
			return -1;
		}
	}
	*l_r = l;
	return 0;
}

void listener_set_event_hook(struct listener *l, listener_event_hook *hook, void *ctx)
{
	pthread_mutex_lock(&l->config_lock);
	l->hook = hook;
	l->hook_ctx = ctx;
	pthread_mutex_unlock(&l->config_lock);
}

void listener_set_limits(struct listener *l, const struct listener_limits *limits)
{
	pthread_mutex_lock(&l->config_lock);
	unsigned threads = l->limits.threads;
	l->limits = *limits;
	l->limits.threads = threads;
	pthread_mutex_unlock(&l->config_lock);
}

/* Ends the loops: closes what is left on each worker, then joins. Returns
 * the number closed by force. */
static unsigned listener_stop(struct listener *l)
{
	for (unsigned i = 0; i < l->n_workers; i++)
		if (l->workers[i].running)
			event_active(l->workers[i].ev_stop, EV_TIMEOUT, 0);
	for (unsigned i = 0; i < l->n_workers; i++) {
		if (l->workers[i].running) {
			pthread_join(l->workers[i].thread, NULL);
			l->workers[i].running = false;
		}
	}
	l->state = LISTENER_STOPPED;
	return atomic_exchange(&l->forced, 0);
}

int listener_start(struct listener *l, const char **error_r)
{
	if (l->state != LISTENER_NEW)
		return listener_fail(l, error_r, "listener already started");

	/* Workers take no asynchronous signals: they go to the main thread,
	 * and SIGPIPE from a write to a reset peer stays pending instead of
	 * killing the process. Faults stay deliverable for crash handlers. */
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	sigdelset(&all, SIGTRAP);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = 0;
	for (unsigned i = 0; i < l->n_workers && err == 0; i++) {
		struct listener_worker *w = &l->workers[i];
		err = pthread_create(&w->thread, NULL, listener_worker_main, w);
		if (err == 0) {
			char name[16];
			snprintf(name, sizeof(name), "maild-w%u", i % 1000u);
			pthread_setname_np(w->thread, name);
			w->running = true;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	l->state = LISTENER_RUNNING;
	if (err != 0) {
		listener_stop(l);
		return listener_fail(l, error_r, "cannot start worker threads: %s", strerror(err));
	}
	log_info("listener", "started workers=%u", l->n_workers);
	return 0;
}

unsigned listener_drain(struct listener *l, unsigned timeout_sec)
{
	if (l->state != LISTENER_RUNNING) {
		l->state = LISTENER_STOPPED;
		return 0;
	}
	unsigned before = atomic_load(&l->active);
	log_info("listener", "drain begin sessions=%u timeout=%us", before, timeout_sec);
	for (unsigned i = 0; i < l->n_workers; i++)
		event_active(l->workers[i].ev_drain, EV_TIMEOUT, 0);

	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_sec;
	pthread_mutex_lock(&l->idle_lock);
	while (atomic_load(&l->active) != 0) {
		if (pthread_cond_timedwait(&l->idle_cond, &l->idle_lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&l->idle_lock);

	unsigned forced = listener_stop(l);
	log_info("listener", "drain done sessions=%u forced=%u", before, forced);
	return forced;
}

void listener_destroy(struct listener **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	struct listener *l = *lp;
	if (l->state == LISTENER_RUNNING) {
		unsigned forced = listener_stop(l);
		if (forced != 0)
			log_info("listener", "stopped, closed sessions=%u", forced);
	}
	listener_free_contents(l);
	free(l);
	*lp = NULL;
}

unsigned listener_active_total(struct listener *l)
{
	return atomic_load(&l->active);
}

void listener_sessions(struct listener *l, listener_session_cb *cb, void *ctx)
{
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct listener_worker *w = &l->workers[i];
		pthread_mutex_lock(&w->sessions_lock);
		size_t n = w->n_sessions;
		struct conn_info *copy = n != 0 ? malloc(n * sizeof(*copy)) : NULL;
		if (copy != NULL) {
			size_t k = 0;
			for (struct conn *c = w->sessions; c != NULL && k < n; c = c->next)
				copy[k++] = c->info;
			n = k;
		}
		pthread_mutex_unlock(&w->sessions_lock);
		if (n != 0 && copy == NULL) {
			log_error("listener", "sessions: out of memory listing worker %u", i);
			continue;
		}
		for (size_t k = 0; k < n; k++)
			cb(&copy[k], ctx);
		free(copy);
	}
}
