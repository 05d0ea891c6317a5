/*
 * One maild per node id per store: an fcntl write lock on
 * <store>/nodes/<id>.lock, held for the daemon's life (released by the
 * kernel, or the cluster filesystem's lock manager, when the process dies,
 * so a kill -9 never leaves a stale lock). The file records the holder's
 * pid and host for the error message of the next one.
 */
#ifndef CM_NODE_NODE_LOCK_H
#define CM_NODE_NODE_LOCK_H

/* Returns the locked fd (keep it open), or -1 with error_r. */
int node_lock_acquire(const char *store_dir, unsigned node_id, const char **error_r);

#endif
