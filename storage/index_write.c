/*
 * index_write: the writer's cycle on a mailbox index.
 *
 *   index_view_lock     fcntl lock, then read to the end of the log
 *   index_view_write    one record = one transaction, appended with one
 *                       pwrite; its state block is computed by applying
 *                       it to the view first
 *   index_view_unlock
 *   index_view_durable  group commit (store_sync) of the log and of the
 *                       directories the caller changed, then raise the
 *                       synced mark so readers see the record
 *
 * The lock is never held across an fsync: durability is paid after the
 * unlock, shared with every other writer of the process. A record written
 * but not yet durable is visible only to writers (who must see it to
 * assign UIDs and MODSEQs), never to readers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_pending.h"
#include "storage/index_view.h"
#include "storage/quota_usage.h"
#include "storage/store_internal.h"
#include "storage/store_lock.h"
#include "storage/store_sync.h"

#define LOCK_RELOADS 5

int index_view_lock(struct index_view *v, const char **error_r)
{
	int ret = store_lock(v->lock, STORE_LOCK_INDEX, true, true, error_r);
	if (ret < 0)
		return ret;
	v->locked = true;
	ret = v->broken ? index_view_reload(v, error_r) : 0;
	/* Only a read that reached the log's end may end this loop with 0: a
	 * writer positioned anywhere else would write over records. */
	for (int reloads = 0; ret == 0; reloads++) {
		ret = index_read_log(v, true, error_r);
		if (ret != 2 /* READ_RELOAD */ || reloads == LOCK_RELOADS)
			break;
		ret = index_view_reload(v, error_r);
	}
	if (ret == 0 && v->deleted)
		ret = store_fail(error_r, STORE_E_NOTFOUND, "the mailbox was deleted");
	if (ret != 0) {
		if (ret > 0)
			ret = store_fail(error_r, STORE_E_TEMP, "index kept rotating");
		index_view_unlock(v);
		return ret;
	}
	index_compact(v);
	return 0;
}

void index_view_unlock(struct index_view *v)
{
	if (!v->locked)
		return;
	store_unlock(v->lock, STORE_LOCK_INDEX);
	v->locked = false;
}

int index_view_write(struct index_view *v, struct textbuf *buf, size_t start, uint16_t type,
		     uint16_t flags, uint32_t count, uint64_t modseq,
		     const struct index_state *proposed, const char **error_r)
{
	if (!v->locked)
		return store_fail(error_r, STORE_E_TEMP, "index write without the lock");
	struct index_state ph = proposed != NULL ? *proposed : v->state;
	index_rec_finish(buf, start, type, flags, count, modseq, &ph);
	uint8_t *p = (uint8_t *)buf->data + start;
	size_t size = buf->len - start;
	struct index_rec rec;
	const char *why = NULL;
	if (index_rec_decode(p, size, &rec, &why) != INDEX_DECODE_OK)
		return store_fail(error_r, STORE_E_INVALID, "refusing to write a bad record");
	int ret = index_apply(v, &rec, false, error_r);
	if (ret < 0) {
		v->broken = true;
		return ret;
	}
	index_rec_set_state(p, &v->state);
	if (store_pwrite_full(v->log_fd, p, size, v->log_pos) < 0) {
		ret = store_fail_errno(error_r, false, "append to", "index log");
		/* Leave no half record for readers' sake; the next writer would
		 * cut it anyway. */
		if (ftruncate(v->log_fd, (off_t)v->log_pos) < 0)
			v->broken = true;
		v->broken = true;
		return ret;
	}
	if (type == INDEX_REC_APPEND && (flags & INDEX_APPEND_PENDING)) {
		v->own_pending_off = v->log_pos;
		v->own_pending_size = (uint32_t)size;
	}
	v->log_pos += size;
	return 0;
}

int index_view_durable(struct index_view *v, const int *extra_fds, size_t n_extra,
		       const char **error_r)
{
	int stack_fds[8];
	int *fds = n_extra + 1 <= 8 ? stack_fds : malloc((n_extra + 1) * sizeof(int));
	if (fds == NULL)
		abort();
	fds[0] = v->log_fd;
	if (n_extra > 0)
		memcpy(fds + 1, extra_fds, n_extra * sizeof(int));
	int ret = store_sync_wait(v->store->sync, fds, n_extra + 1, error_r);
	if (fds != stack_fds)
		free(fds);
	uint32_t pending_size = v->own_pending_size;
	v->own_pending_size = 0;
	if (ret < 0)
		return ret;
	/* Our files are durable now. A failed word only leaves the record for
	 * the next helper, who finds the files whole. */
	const char *ignored;
	if (pending_size != 0)
		(void)index_rec_resolve(v->log_fd, v->own_pending_off, pending_size, &ignored);
	ret = index_log_mark_synced(v->log_fd, v->log_pos, error_r);
	if (ret < 0)
		return ret;
	if (index_rotate_wanted(v)) {
		/* The change is durable already; a failed rewrite is retried
		 * by the next writer. A light view (appends, deliveries) has no
		 * records to write a snapshot from: a full one is loaded for the
		 * occasion, which the log's growth since the last one pays for,
		 * and settled first like any full open: a rotation cannot carry
		 * a PENDING record whose files are lost, and left to a full
		 * session's open every append would load the index again. */
		struct index_view *full = NULL;
		if (v->full) {
			(void)index_rotate(v, &ignored);
		} else if (index_view_open(v->store, v->dir_fd, true, &full, &ignored) == 0) {
			full->quota_user = v->quota_user;
			if (index_view_settle(full, &ignored) == 0)
				(void)index_rotate(full, &ignored);
		}
		index_view_free(&full);
	}
	return 0;
}

int index_view_settle(struct index_view *v, const char **error_r)
{
	uint64_t synced;
	struct stat st;
	int ret = index_log_synced(v->log_fd, &synced, error_r);
	if (ret < 0)
		return ret;
	if (fstat(v->log_fd, &st) < 0)
		return store_fail_errno(error_r, false, "stat", "index log");
	if ((uint64_t)st.st_size <= synced && !v->pending_stop)
		return 0;
	uint64_t from = v->log_pos, seq = v->log_seq;
	ret = index_view_lock(v, error_r);
	if (ret < 0)
		return ret;
	struct index_pending p = INDEX_PENDING_INIT;
	struct textbuf buf = TEXTBUF_INIT;
	if (v->log_seq != seq)
		from = INDEX_LOG_HEADER_SIZE;
	ret = index_pending_help(v, from, v->log_pos, &p, error_r);
	if (ret == 0 && v->full) {
		uint64_t bytes, count;
		ret = index_pending_drop(v, &p, &buf, &bytes, &count, error_r);
		/* The append charged them; a failed word is fsck's to recount. */
		if (ret == 0 && count > 0 && v->quota_user != NULL)
			(void)quota_charge(v->quota_user, -(int64_t)bytes, -(int64_t)count, NULL, NULL, NULL);
	}
	else if (ret == 0 && !uidset_empty(&p.dropped))
		p.n = 0; /* a light view cannot expunge: leave them to a full one */
	index_view_unlock(v);
	if (ret == 0)
		ret = index_view_durable(v, NULL, 0, error_r);
	if (ret == 0)
		ret = index_pending_resolve(&p, error_r);
	index_pending_free(&p);
	textbuf_free(&buf);
	return ret;
}
