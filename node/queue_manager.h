/*
 * The queue manager: runs this node's spool (<store>/spool/<node-id>/,
 * storage/queue.h) on its own thread and event loop. It holds the spool's
 * lock, picks up the maildrop (sendmail), schedules delivery attempts
 * with exponential backoff, hands local recipients to the store and
 * remote ones to outbound SMTP (node/outbound_*.c), writes bounces,
 * delay notices and postmaster copies, and expires messages after the
 * maximum lifetime.
 *
 * The functions below other than create/destroy may be called from any
 * thread (mailctl commands run on the control thread); they take effect
 * on the manager's loop.
 */
#ifndef CM_NODE_QUEUE_MANAGER_H
#define CM_NODE_QUEUE_MANAGER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

struct queue_manager;
struct node_config;
struct outbound_self;
struct queue;
struct service_env;

/* Opens this node's spool and the maildrop; the thread starts with
 * queue_manager_start(). NULL with error_r on failure. */
struct queue_manager *queue_manager_new(const struct service_env *env,
					const struct node_config *cfg, const char **error_r);
/* This node as its routes must not reach it (node/outbound_self.h): set
 * once its listeners are bound, before queue_manager_start. */
void queue_manager_set_self(struct queue_manager *qm, const struct outbound_self *self);
int queue_manager_start(struct queue_manager *qm, const char **error_r);
/* Stops starting attempts, ends those in flight (their messages stay
 * queued for the next run) and joins the thread. */
void queue_manager_stop(struct queue_manager *qm);
void queue_manager_free(struct queue_manager **qm);
/* The spool that SMTP sessions queue into (any thread). */
struct queue *queue_manager_spool(struct queue_manager *qm);
/* Message id was queued into the spool: due now (any thread). */
void queue_manager_queued(struct queue_manager *qm, const char *id);

/* Every deferred message becomes due now (mailctl queue flush, sendmail
 * -q). Returns the number of messages made due. */
int queue_manager_flush(struct queue_manager *qm);
/* One message: due now (flush ID), held, released, or deleted without a
 * bounce. 0, or -1 with the reason in err (unknown ID, ...). */
int queue_manager_flush_one(struct queue_manager *qm, const char *id, struct textbuf *err);
int queue_manager_hold(struct queue_manager *qm, const char *id, bool hold, struct textbuf *err);
int queue_manager_delete(struct queue_manager *qm, const char *id, struct textbuf *err);
/* Takes over another node's spool: under its lock (refused while its
 * maild runs it), every message moves into this node's spool. The
 * number moved, or -1 with the reason in err. */
int queue_manager_adopt(struct queue_manager *qm, const char *spool, struct textbuf *err);

#endif
