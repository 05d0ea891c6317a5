/*
 * Internals of the queue manager (node/queue_*.c):
 *
 *  queue_manager.c  lifecycle, its thread and loop, the table of queued
 *                   messages, scheduling, maildrop pickup, mailctl control
 *  queue_attempt.c  one delivery attempt of one message: prepare (job:
 *                   envelope, alias expansion, local delivery, routes),
 *                   outbound SMTP per destination (loop), finish (job:
 *                   verdicts, notices, expiry, envelope update or removal)
 *  queue_local.c    local recipients: expansion through the directory and
 *                   delivery into mailboxes from the spool
 *  queue_notify.c   bounces, delay and success notices, postmaster copies
 */
#ifndef CM_NODE_QUEUE_MANAGER_PRIVATE_H
#define CM_NODE_QUEUE_MANAGER_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/node_config.h"
#include "node/outbound_self.h"
#include "node/queue_manager.h"
#include "node/services.h"
#include "storage/queue.h"

struct event;
struct event_base;
struct ssl_ctx_st;

/* One queued message as the scheduler knows it. */
struct qm_entry {
	char id[QUEUE_ID_MAX];
	int64_t next_attempt; /* unix seconds */
	bool hold;
	bool active; /* an attempt is running */
	bool seen;   /* found by the latest scan */
};

/* Connections open per destination. */
struct qm_dest {
	char name[256];
	unsigned active;
};

struct queue_manager {
	const struct service_env *env;
	struct node_config_queue cfg;
	char resolver[128];
	unsigned node_id;
	char hostname[256];
	struct outbound_self self; /* never a host of its own routes */
	struct queue *spool;
	struct queue *maildrop;
	struct ssl_ctx_st *tls;

	pthread_t thread;
	bool thread_started;
	struct event_base *base;
	struct event *ev_tick;
	struct event *ev_wake; /* another thread asked for something */
	bool stopping;
	unsigned attempts_running;
	int64_t last_scan;
	int64_t last_cleanup; /* the spool's leftovers removed (unix seconds), 0 = never */
	int64_t last_lock_log;

	/* the table: manager thread only */
	struct qm_entry *entries; /* sorted by id */
	size_t n, cap;
	struct qm_dest *dests;
	size_t ndests, capdests;
	unsigned connections; /* slots taken, all destinations (queue.max_connections) */
	struct qm_attempt *attempts; /* running, linked through next */

	bool scanning; /* a scan job is running */

	/* requests from other threads, under lock */
	pthread_mutex_t lock;
	bool rescan;			  /* list the whole spool at the next tick */
	char (*queued)[QUEUE_ID_MAX];	  /* queue_manager_queued() since the last tick */
	size_t nqueued, capqueued;
};

/* queue_manager.c */
struct qm_entry *qm_find(struct queue_manager *qm, const char *id);
/* A destination's connection slot, within queue.destination_concurrency
 * for it and queue.max_connections in all: true when taken. */
bool qm_dest_acquire(struct queue_manager *qm, const char *name);
void qm_dest_release(struct queue_manager *qm, const char *name);
/* An attempt ended: next_attempt < 0 means the message is gone. */
void qm_attempt_done(struct queue_manager *qm, const char *id, int64_t next_attempt);

/* queue_attempt.c: starts an attempt for entry e (marks it active). */
struct qm_attempt;
void qm_attempt_start(struct queue_manager *qm, struct qm_entry *e);
/* Shutdown: connections in flight end now, as deferred; the attempt
 * still finishes (and reports) normally. */
void qm_attempt_cancel(struct qm_attempt *a);
struct qm_attempt *qm_attempt_next(const struct qm_attempt *a);

/* queue_local.c */
/* Expands the pending local recipients of env through the directory:
 * recipients that are mailboxes stay, aliases and groups are replaced by
 * their targets (inheriting NOTIFY/ORCPT; the original is marked done),
 * unknown ones fail with 5.1.1. Then delivers the message to every
 * pending local mailbox. *local_r: a new array (the caller frees it), one
 * flag per recipient of the expanded env, true for those that were
 * pending in our domains, delivered here or not, and for those deferred
 * (4.3.0) because the directory could not say whether their domain is
 * ours; the others are for outbound. 0, or -1 out of memory (*local_r NULL). Blocking (job
 * thread). */
int qm_local_deliver(struct queue_manager *qm, struct queue_envelope *env, int data_fd,
		     bool **local_r);

/* queue_notify.c: queues the notices env now calls for (bounces for newly
 * failed recipients, a delay notice, success notices) and marks them
 * sent. Blocking (job thread). 0, or -1 when a notice could not be
 * queued (the envelope is then not marked and the next attempt tries
 * again). */
int qm_notify(struct queue_manager *qm, struct queue_envelope *env, int data_fd, int64_t now);
/* Queues a new message whose data is text, to rcpts (job thread). */
int qm_enqueue_text(struct queue_manager *qm, const char *sender, const char *const *rcpts,
		    size_t nrcpt, const struct textbuf *text, char *id_r);

#endif
