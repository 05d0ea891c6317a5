/*
 * index_rotate: rewriting a mailbox's snapshot and starting a new log, so
 * that opening a mailbox never replays more than a bounded log tail.
 *
 * The expensive part (encoding and writing the snapshot, O(messages)) is
 * done without the index lock, by one process at a time (elected with a
 * non-blocking lock on the rotate slot), from a view at log position X.
 * Then, under the index lock, for a short while:
 *   0. unresolved PENDING appends in the log are helped (their files
 *      fsync'd, their resolve words written): neither the snapshot nor
 *      the copy may carry one, since its writer resolves it only here;
 *   1. log.<s+1> is created holding the records [X, end) of log.<s> after
 *      a header with the state at X, and fsync'd;
 *   2. a ROTATE record (to log.<s+1>, at the offset after that copy) is
 *      appended to log.<s>, which is fsync'd and marked synced;
 *   3. the new snapshot (continuing log.<s+1> at its header) is renamed
 *      over "index" and the directory fsync'd.
 * After the unlock, log.<s> is unlinked. A crash after 1 leaves an unused
 * log.<s+1> (overwritten next time); after 2 the chain old snapshot ->
 * log.<s> -> ROTATE -> log.<s+1> is complete, so the rename in 3 is only
 * an optimisation. Views holding log.<s> open read on to the ROTATE
 * record and move over; views opening the old snapshot find log.<s>
 * gone and start again from the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/index_pending.h"
#include "storage/index_view.h"
#include "storage/store_internal.h"
#include "storage/store_lock.h"

bool index_rotate_wanted(const struct index_view *v)
{
	uint64_t min = v->store != NULL && v->store->opts.rotate_bytes != 0
			       ? v->store->opts.rotate_bytes
			       : STORE_DEFAULT_ROTATE_BYTES;
	uint64_t quarter = (uint64_t)v->state.messages * INDEX_MSG_SIZE / 4;
	uint64_t limit = min > quarter ? min : quarter;
	return v->log_pos > v->log_base && v->log_pos - v->log_base > limit;
}

/* Writes the snapshot to a temporary name; returns it in tmp. */
static int snapshot_write_tmp(struct index_view *v, uint64_t seq, char *tmp, size_t tmp_size,
			      const char **error_r)
{
	uint8_t rnd[8];
	char hex[17];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), hex);
	snprintf(tmp, tmp_size, "index.tmp.%s", hex);
	struct textbuf snap = TEXTBUF_INIT;
	index_compact(v);
	index_snapshot_encode(v, seq, INDEX_LOG_HEADER_SIZE, &snap);
	int fd = openat(v->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ret = 0;
	if (fd < 0) {
		ret = store_fail_errno(error_r, false, "create", tmp);
	} else {
		if (store_write_full(fd, snap.data, snap.len) < 0 || fsync(fd) < 0) {
			ret = store_fail_errno(error_r, false, "write", tmp);
			unlinkat(v->dir_fd, tmp, 0);
		}
		close(fd);
	}
	textbuf_free(&snap);
	return ret;
}

static void unlink_log(int dir_fd, uint64_t seq)
{
	char name[32];
	if (seq == 0)
		return;
	index_log_name(seq, name, sizeof(name));
	unlinkat(dir_fd, name, 0);
}

/* Moves v onto log.<seq>, positioned at off. */
static int switch_log(struct index_view *v, uint64_t seq, uint64_t off, const char **error_r)
{
	int fd;
	struct index_log_header h;
	int ret = index_log_open(v->dir_fd, seq, &fd, &h, error_r);
	if (ret < 0)
		return ret;
	if (v->log_fd >= 0)
		close(v->log_fd);
	v->log_fd = fd;
	v->log_seq = seq;
	v->log_pos = off;
	v->log_base = INDEX_LOG_HEADER_SIZE;
	return 0;
}

/* Appends ROTATE (seq, off, flags) carrying state to the log fd at end,
 * fsyncs it and marks it synced. Returns the new end. */
static int append_rotate(int fd, uint64_t end, uint64_t seq, uint64_t off, uint16_t flags,
			 const struct index_state *state, uint64_t *end_r, const char **error_r)
{
	struct textbuf rec = TEXTBUF_INIT;
	size_t start = index_rec_begin(&rec);
	index_put_u64(&rec, seq);
	index_put_u64(&rec, off);
	index_rec_finish(&rec, start, INDEX_REC_ROTATE, flags, 0, 0, state);
	int ret = 0;
	if (store_pwrite_full(fd, rec.data, rec.len, end) < 0 || fsync(fd) < 0)
		ret = store_fail_errno(error_r, false, "append to", "index log");
	else
		ret = index_log_set_synced(fd, end + rec.len, error_r);
	*end_r = end + rec.len;
	textbuf_free(&rec);
	return ret;
}

static int install_snapshot(struct index_view *v, const char *tmp, const char **error_r)
{
	if (renameat(v->dir_fd, tmp, v->dir_fd, "index") < 0)
		return store_fail_errno(error_r, false, "rename", tmp);
	if (fsync(v->dir_fd) < 0)
		return store_fail_errno(error_r, false, "fsync", "mailbox directory");
	return 0;
}

int index_rotate(struct index_view *v, const char **error_r)
{
	int ret = store_lock(v->lock, STORE_LOCK_ROTATE, true, false, error_r);
	if (ret <= 0)
		return ret; /* someone else is at it */
	uint64_t seq = v->log_seq, x = v->log_pos, base = v->log_base;
	struct index_state state_x = v->state;
	char tmp[64];
	ret = snapshot_write_tmp(v, seq + 1, tmp, sizeof(tmp), error_r);
	if (ret < 0) {
		store_unlock(v->lock, STORE_LOCK_ROTATE);
		return ret;
	}
	ret = index_view_lock(v, error_r);
	if (ret < 0)
		goto out_tmp;
	if (v->log_seq != seq) {
		ret = 0; /* rotated or reset meanwhile: our snapshot is stale */
		goto out_unlock;
	}
	/* Neither the snapshot nor the copied tail may carry an unresolved
	 * PENDING record (its writer would resolve it in this log only):
	 * help them now, or leave the rotation to after a drop. */
	struct index_pending p = INDEX_PENDING_INIT;
	ret = index_pending_help(v, base, v->log_pos, &p, error_r);
	if (ret == 0 && uidset_empty(&p.dropped))
		ret = index_pending_resolve(&p, error_r);
	else if (ret == 0)
		ret = store_fail(error_r, STORE_E_TEMP, "a pending append lost its files");
	index_pending_free(&p);
	if (ret < 0)
		goto out_unlock;
	uint64_t end = v->log_pos;
	size_t tail_len = (size_t)(end - x);
	char *tail = malloc(tail_len + 1);
	if (tail == NULL)
		abort();
	if (tail_len > 0 && store_pread_full(v->log_fd, tail, tail_len, x) < 0)
		ret = store_fail_errno(error_r, false, "read", "index log");
	if (ret == 0)
		ret = index_log_create(v->dir_fd, seq + 1, v->uidvalidity, &state_x, tail, tail_len,
				       error_r);
	free(tail);
	uint64_t new_end;
	if (ret == 0)
		ret = append_rotate(v->log_fd, end, seq + 1, INDEX_LOG_HEADER_SIZE + tail_len, 0,
				    &v->state, &new_end, error_r);
	if (ret < 0) {
		/* The ROTATE record may be half there: let the next writer cut it. */
		v->broken = true;
		goto out_unlock;
	}
	v->log_pos = new_end;
	ret = install_snapshot(v, tmp, error_r);
	tmp[0] = '\0';
	int sret = switch_log(v, seq + 1, INDEX_LOG_HEADER_SIZE + tail_len, error_r);
	if (sret < 0) {
		v->broken = true;
		ret = sret;
	}
	index_view_unlock(v);
	store_unlock(v->lock, STORE_LOCK_ROTATE);
	if (ret == 0) {
		unlink_log(v->dir_fd, seq);
		unlink_log(v->dir_fd, seq - 1);
	}
	return ret;
out_unlock:
	index_view_unlock(v);
out_tmp:
	if (tmp[0] != '\0')
		unlinkat(v->dir_fd, tmp, 0);
	store_unlock(v->lock, STORE_LOCK_ROTATE);
	return ret;
}

int index_reset(struct index_view *v, int old_fd, uint64_t old_end,
		const struct index_state *old_state, const char **error_r)
{
	uint64_t seq = v->log_seq + 1;
	char tmp[64];
	int ret = snapshot_write_tmp(v, seq, tmp, sizeof(tmp), error_r);
	if (ret < 0)
		return ret;
	ret = index_log_create(v->dir_fd, seq, v->uidvalidity, &v->state, NULL, 0, error_r);
	if (ret == 0 && old_fd >= 0) {
		uint64_t new_end;
		if (ftruncate(old_fd, (off_t)old_end) < 0)
			ret = store_fail_errno(error_r, false, "truncate", "index log");
		else
			ret = append_rotate(old_fd, old_end, seq, INDEX_LOG_HEADER_SIZE,
					    INDEX_ROTATE_RESET, old_state, &new_end, error_r);
	}
	if (ret == 0)
		ret = install_snapshot(v, tmp, error_r);
	if (ret < 0) {
		unlinkat(v->dir_fd, tmp, 0);
		return ret;
	}
	uint64_t old_seq = v->log_seq;
	ret = switch_log(v, seq, INDEX_LOG_HEADER_SIZE, error_r);
	if (ret < 0)
		return ret;
	for (uint64_t s = old_seq; s > 0 && old_seq - s < 4; s--)
		unlink_log(v->dir_fd, s);
	return 0;
}
