/*
 * store_sync: group commit. Every thread that needs its writes durable
 * calls store_sync_wait() with the descriptors it wrote through; one
 * caller at a time (the leader) makes durable everything handed in since
 * the previous round, by one syncfs() of the store's filesystem and a
 * cache flush (store_sync.c says why), or by
 * fsync()ing each descriptor after one sync_file_range() pass
 * (enum store_sync_mode), while the others wait and join the next round.
 * Up to two rounds run at once (store_sync.c says why).
 * Each caller returns only once a round that started after its call has
 * finished, so its writes (made before the call) are covered.
 *
 * There is no committer thread: a round starts as soon as one of the
 * rounds in flight ends, so batches grow as fast as the disk is slow, and
 * a lone writer pays one fsync, not a wait. Only a leader whose previous
 * round carried several callers first waits, briefly (a quarter of that
 * round's duration at most), for them to queue again (store_sync.c).
 */
#ifndef CM_STORAGE_STORE_SYNC_H
#define CM_STORAGE_STORE_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

struct store_sync;

/* fs_fd: a directory on the store's filesystem (for syncfs and the flush
 * after it). */
struct store_sync *store_sync_create(int fs_fd, enum store_sync_mode mode);
void store_sync_destroy(struct store_sync **s);

/* Makes fds (files and directories, open until this returns) durable
 * together with every other caller's. 0, or STORE_E_TEMP when the round
 * that covered this call failed. */
int store_sync_wait(struct store_sync *s, const int *fds, size_t n, const char **error_r);

/* Rounds run so far (for the benchmark's batch sizes). */
uint64_t store_sync_rounds(struct store_sync *s);

#endif
