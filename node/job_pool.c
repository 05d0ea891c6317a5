#include "node/job_pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
	struct job *next;
	job_work_fn *work;
	job_done_fn *done;
	void *arg;
	struct event *ev;
	atomic_bool cancelled;
};

struct job_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
	atomic_uint busy;
};

static void job_finished(evutil_socket_t fd, short what, void *p)
{
	struct job *job = p;
	(void)fd;
	(void)what;
	event_free(job->ev);
	job->done(job->arg, atomic_load(&job->cancelled));
	free(job);
}

static void *job_thread(void *p)
{
	struct job_pool *pool = p;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		struct job *job = pool->head;
		if (job == NULL)
			break;
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->lock);
		if (!atomic_load(&job->cancelled))
			job->work(job->arg);
		atomic_fetch_sub(&pool->busy, 1);
		event_active(job->ev, EV_READ, 0);
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

int job_pool_new(unsigned threads, struct job_pool **pool_r, const char **error_r)
{
	struct job_pool *pool = calloc(1, sizeof(*pool));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (pool == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (threads == 0)
		threads = cpus > 0 ? (unsigned)cpus : 1;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->threads = calloc(threads, sizeof(*pool->threads));
	if (pool->threads == NULL) {
		*error_r = "out of memory";
		job_pool_free(&pool);
		return -1;
	}
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool->threads[i], NULL, job_thread, pool) != 0) {
			*error_r = "cannot start job threads";
			job_pool_free(&pool);
			return -1;
		}
		pool->nthreads++;
	}
	*pool_r = pool;
	return 0;
}

void job_pool_free(struct job_pool **poolp)
{
	struct job_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool);
	*poolp = NULL;
}

struct job *job_submit(struct job_pool *pool, struct event_base *base, job_work_fn *work,
		       job_done_fn *done, void *arg)
{
	struct job *job = calloc(1, sizeof(*job));
	if (job == NULL)
		return NULL;
	job->work = work;
	job->done = done;
	job->arg = arg;
	job->ev = event_new(base, -1, 0, job_finished, job);
	if (job->ev == NULL) {
		free(job);
		return NULL;
	}
	atomic_fetch_add(&pool->busy, 1);
	pthread_mutex_lock(&pool->lock);
	if (pool->tail != NULL)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return job;
}

void job_cancel(struct job *job)
{
	atomic_store(&job->cancelled, true);
}

unsigned job_pool_busy(struct job_pool *pool)
{
	return atomic_load(&pool->busy);
}
