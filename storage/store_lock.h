/*
 * store_lock: POSIX fcntl byte-range locks made usable by threads.
 *
 * fcntl locks belong to the process, not the thread, and closing any
 * descriptor of a file drops all of the process's locks on it. So the
 * process keeps one table of lock files keyed by device and inode: each
 * entry owns the descriptors opened for that file (closed only when the
 * last user releases the entry, when no lock can be held), and a mutex per
 * byte slot that orders the threads of this process before fcntl orders
 * the processes and nodes. Lock files hold no data and are opened only
 * here.
 *
 * Lock order, everywhere: a user's hierarchy slot, then mailbox index
 * slots (several only in fsck, in inode order), then the user's counters
 * slot. A rotate slot is only ever tried, never waited for.
 *
 * After fork() the child starts with an empty table (its parent's locks
 * are not inherited, POSIX).
 */
#ifndef CM_STORAGE_STORE_LOCK_H
#define CM_STORAGE_STORE_LOCK_H

#include <stdbool.h>

#define STORE_LOCK_SLOTS 2

struct store_lockfile;

/* Opens (creating if need be) dirfd/name and returns its table entry. */
int store_lockfile_open(int dirfd, const char *name, struct store_lockfile **lf_r,
			const char **error_r);
void store_lockfile_release(struct store_lockfile **lf);

/* Takes slot; exclusive or shared. wait=false: returns 0 at once when
 * another holder has it. Returns 1 when taken, <0 (TEMP) on error. */
int store_lock(struct store_lockfile *lf, unsigned slot, bool exclusive, bool wait,
	       const char **error_r);
void store_unlock(struct store_lockfile *lf, unsigned slot);

#endif
