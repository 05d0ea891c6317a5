/*
 * auth_pool: runs node/auth.h's blocking calls (password hashes, PBKDF2,
 * directory reads) on a few dedicated threads, so that no event loop
 * ever waits for them, and fills struct auth_iface with them.
 *
 * Delivery: each handle owns one libevent event on the event base of the
 * connection it serves (created there, in handle_new). When a worker has
 * the outcome it activates that event — at once for a success or a
 * challenge, after outcome.delay_ms for a failure (event_add with a
 * timeout) — so `done` runs on the connection's own loop thread, after the
 * failure delay, and nothing sleeps. The base must come from a libevent
 * with threading enabled (evthread_use_pthreads() before event_base_new,
 * as maild does).
 *
 * Cancellation: handle_free may be called in any state, on the loop
 * thread. A queued job is dropped; a running one is left to its worker,
 * which frees what remains once auth returns; a delivered-but-not-yet-run
 * outcome is discarded. `done` never runs after handle_free. Free every
 * handle (close every connection) before auth_pool_free.
 */
#ifndef CM_NODE_AUTH_POOL_H
#define CM_NODE_AUTH_POOL_H

#include "node/auth.h"

struct auth_pool;

/* threads 0 = one per online CPU. 0, or -1 with error_r. */
int auth_pool_new(struct auth *auth, unsigned threads, struct auth_pool **pool_r,
		  const char **error_r);
/* Finishes the jobs still queued, then joins the threads. */
void auth_pool_free(struct auth_pool **pool);

/* The interface; its ctx argument is the struct auth_pool. */
const struct auth_iface *auth_pool_iface(void);

#endif
