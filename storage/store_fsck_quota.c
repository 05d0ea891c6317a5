/*
 * store_fsck_quota: the exact recount of a user's quota usage, even while
 * the user is active.
 *
 * Every operation that changes usage does so atomically with the change
 * it accounts for, under a lock fsck can also take: appends, COPY, MOVE,
 * expunges and absorbs under the mailbox's index lock (charge and record
 * in one hold), deliveries under the counters lock (charge and new/ link
 * in one hold, storage/store_deliver.c), mailbox deletion under the
 * hierarchy lock. So fsck, still holding the hierarchy lock of its walk,
 * takes the index lock of every mailbox of the user (in inode order) and
 * then the counters lock, counts, compares and rewrites the counters, and
 * lets go. That follows the store's one lock order (hierarchy, index
 * locks in inode order, counters), which every other holder also
 * follows, taking at most one index lock: no deadlock is possible.
 * Appenders of the user wait for the count (a few reads per mailbox).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_view.h"
#include "storage/mailbox_internal.h"
#include "storage/quota_usage.h"
#include "storage/store_fsck_internal.h"
#include "storage/store_lock.h"

struct recount_box {
	int fd;                       /* .box */
	ino_t lock_ino;
	struct store_lockfile *lock;
	bool locked;
};

void fsck_boxes_add(struct fsck *fk, int box_fd)
{
	int fd = fcntl(box_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return; /* then the recount fails below, as it must */
	if (fk->n_boxes == fk->cap_boxes) {
		fk->cap_boxes = fk->cap_boxes ? fk->cap_boxes * 2 : 16;
		fk->box_fds = realloc(fk->box_fds, fk->cap_boxes * sizeof(int));
		if (fk->box_fds == NULL)
			abort();
	}
	fk->box_fds[fk->n_boxes++] = fd;
}

void fsck_boxes_clear(struct fsck *fk)
{
	for (size_t i = 0; i < fk->n_boxes; i++)
		close(fk->box_fds[i]);
	fk->n_boxes = 0;
}

static int by_inode(const void *a, const void *b)
{
	const struct recount_box *x = a, *y = b;
	return x->lock_ino < y->lock_ino ? -1 : x->lock_ino > y->lock_ino;
}

/* One mailbox, its index lock held. */
static int count_box(struct fsck *fk, int box_fd, uint64_t *bytes, uint64_t *msgs,
		     const char **error_r)
{
	struct index_view *v = NULL;
	int ret = index_view_open(fk->store, box_fd, false, &v, error_r);
	if (ret == 0) {
		v->locked = true;      /* by our caller: read to the end */
		v->dry_run = !fk->repair;
		ret = index_read_log(v, true, error_r);
		v->locked = false;
		if (ret > 0)
			ret = store_fail(error_r, STORE_E_TEMP, "the log rotated under the lock");
	}
	if (ret == 0 && !v->deleted) {
		*bytes += v->state.bytes;
		*msgs += v->state.messages;
		mailbox_new_usage(box_fd, v, bytes, msgs);
	}
	index_view_free(&v);
	return ret;
}

int fsck_quota_recount(struct fsck *fk, struct store_user *u, const char **error_r)
{
	size_t n = fk->n_boxes;
	struct recount_box *b = calloc(n + 1, sizeof(*b));
	if (b == NULL)
		abort();
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		b[i].fd = fk->box_fds[i];
		ret = store_lockfile_open(b[i].fd, "lock", &b[i].lock, error_r);
		struct stat st;
		if (ret == 0 && fstatat(b[i].fd, "lock", &st, 0) < 0)
			ret = store_fail_errno(error_r, false, "stat", "mailbox lock");
		if (ret == 0)
			b[i].lock_ino = st.st_ino;
	}
	if (ret == 0)
		qsort(b, n, sizeof(*b), by_inode);
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = store_lock(b[i].lock, STORE_LOCK_INDEX, true, true, error_r);
		b[i].locked = ret > 0;
		ret = ret < 0 ? ret : 0;
	}
	bool counters = false;
	if (ret == 0)
		counters = (ret = store_user_lock(u, STORE_LOCK_COUNTERS, error_r)) == 0;
	uint64_t bytes = 0, msgs = 0;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = count_box(fk, b[i].fd, &bytes, &msgs, error_r);
	if (fk->uncountable) { /* not repairing a broken index: the walk's sum */
		bytes = fk->bytes;
		msgs = fk->messages;
	}
	struct quota_counters c;
	if (ret == 0)
		ret = quota_counters_read_user(u, &c, error_r);
	if (ret == 0 && (c.bytes != bytes || c.messages != msgs)) {
		fsck_problem(fk, NULL, STORE_FSCK_QUOTA, fk->repair,
			     "usage recorded %" PRIu64 " bytes / %" PRIu64 " messages, found %" PRIu64
			     " / %" PRIu64,
			     c.bytes, c.messages, bytes, msgs);
		c.bytes = bytes;
		c.messages = msgs;
		if (fk->repair)
			ret = quota_counters_write_user(u, &c, true, error_r);
	}
	if (counters)
		store_user_unlock(u, STORE_LOCK_COUNTERS);
	for (size_t i = n; i-- > 0;) {
		if (b[i].locked)
			store_unlock(b[i].lock, STORE_LOCK_INDEX);
		store_lockfile_release(&b[i].lock);
	}
	free(b);
	return ret;
}
