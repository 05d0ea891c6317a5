/*
 * job_pool: runs blocking work (store commits with their fsync, maildrop
 * opens, anything that reads or writes the shared store at length) on a
 * few threads, and hands the result back on the event loop that asked,
 * so that no event loop ever waits for a disk.
 *
 * A job: work(arg) runs on a pool thread; then done(arg, cancelled) runs
 * on the event base given at submit time (an event activated from the
 * worker; the base needs libevent threading, evthread_use_pthreads()).
 * job_cancel() (on that base's thread) means "the owner is gone": a queued
 * job never runs work; a running one finishes it; either way done() is
 * still called, with cancelled=true, so that arg is always freed by the
 * same code. Jobs run in submit order per pool, not one at a time.
 */
#ifndef CM_NODE_JOB_POOL_H
#define CM_NODE_JOB_POOL_H

#include <stdbool.h>

struct event_base;
struct job_pool;
struct job;

typedef void job_work_fn(void *arg);
typedef void job_done_fn(void *arg, bool cancelled);

/* threads 0 = one per online CPU. 0, or -1 with error_r. */
int job_pool_new(unsigned threads, struct job_pool **pool_r, const char **error_r);
/* Runs what is queued, joins the threads. Every job's done must have run
 * (close connections, drain loops) before the bases go away. */
void job_pool_free(struct job_pool **pool);

/* NULL on out of memory (nothing was started). */
struct job *job_submit(struct job_pool *pool, struct event_base *base, job_work_fn *work,
		       job_done_fn *done, void *arg);
/* On the base's thread, before done has run. */
void job_cancel(struct job *job);
/* Jobs queued or running (for status). */
unsigned job_pool_busy(struct job_pool *pool);

#endif
