/*
 * index_read: opening a view (snapshot, then the log chain it names) and
 * bringing it up to date.
 *
 * Readers stop at the log's synced mark, or before an unresolved PENDING
 * APPEND (storage/index_pending.c); below the mark every record must be
 * whole and valid, so anything else there is CORRUPT. Writers (holding
 * the index lock) read to the end of the file: past the mark, a record
 * that runs past the end, or a last record whose checksum fails, or a run
 * of zeros, is the torn tail of a writer that died mid-write and is cut
 * off; any other damage is CORRUPT. A ROTATE record moves the view to the
 * next log; one with RESET (fsck rebuilt the index) or a next log that is
 * already gone makes the view reload from the snapshot, reporting the
 * differences as changes.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_view.h"
#include "storage/store_internal.h"
#include "storage/store_lock.h"

#define READ_CHUNK (4u * 1024 * 1024)
#define READ_KEEP (256u * 1024) /* read buffer a view keeps between reads */
#define OPEN_RETRIES 20

enum { READ_DONE = 0, READ_ROTATED = 1, READ_RELOAD = 2 };

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Whether the damage at file offset off (p, left bytes of it in memory)
 * is the torn tail of a writer that died, rather than corruption. */
static bool tail_is_torn(uint64_t off, enum index_decode dec, const uint8_t *p, size_t left,
			 uint64_t file_end)
{
	if (dec == INDEX_DECODE_SHORT)
		return true; /* the record runs past the end of the file */
	if (left < file_end - off)
		return false; /* not all of it is in view: do not guess */
	if (all_zero(p, left))
		return true; /* space allocated, data never written */
	uint32_t size = left >= 4 ? index_le32(p) : 0;
	return size >= INDEX_REC_HEADER_SIZE && off + size == file_end;
}

/* A ROTATE past its log's synced mark: the rotator died (or its fsync
 * failed) before marking it. Writers follow it, but readers stop before
 * it, and no commit to this log will ever raise its mark again: the
 * writer that finds it (under the index lock) makes it durable and marks
 * it. fsck's dry run only reports it. */
static int mark_rotation(struct index_view *v, const char **error_r)
{
	v->rotation_unmarked = true;
	if (v->dry_run)
		return 0;
	if (fsync(v->log_fd) < 0)
		return store_fail_errno(error_r, false, "fsync", "index log");
	return index_log_mark_synced(v->log_fd, v->log_pos, error_r);
}

/* unmarked: the ROTATE lies past its log's mark (marked here, once its
 * target is known good). */
static int follow_rotation(struct index_view *v, const struct index_rec *rec, bool unmarked,
			   const char **error_r)
{
	uint64_t seq, off;
	index_rec_rotate(rec, &seq, &off);
	if (rec->flags & INDEX_ROTATE_RESET)
		return READ_RELOAD;
	int fd;
	struct index_log_header h;
	int ret = index_log_open(v->dir_fd, seq, &fd, &h, error_r);
	if (ret == STORE_E_NOTFOUND)
		return READ_RELOAD; /* rotated again since: start from the snapshot */
	if (ret < 0)
		return ret;
	if (h.uidvalidity != v->uidvalidity || seq <= v->log_seq) {
		close(fd);
		return store_fail(error_r, STORE_E_CORRUPT, "rotation to a foreign log");
	}
	if (unmarked && (ret = mark_rotation(v, error_r)) < 0) {
		close(fd);
		return ret;
	}
	close(v->log_fd);
	v->log_fd = fd;
	v->log_seq = seq;
	v->log_pos = off;
	v->log_base = INDEX_LOG_HEADER_SIZE;
	return READ_ROTATED;
}

/* Applies the records in [v->log_pos, limit). */
static int read_range(struct index_view *v, uint64_t limit, uint64_t synced, uint64_t file_end,
		      bool writer, const char **error_r)
{
	size_t min_want = 0;
	while (v->log_pos < limit) {
		uint64_t avail = limit - v->log_pos;
		size_t want = avail < READ_CHUNK ? (size_t)avail : READ_CHUNK;
		if (want < min_want)
			want = min_want;
		min_want = 0;
		textbuf_truncate(&v->readbuf, 0);
		if (v->readbuf.cap < want + 1) {
			char *p = realloc(v->readbuf.data, want + 1);
			if (p == NULL)
				abort();
			v->readbuf.data = p;
			v->readbuf.cap = want + 1;
		}
		const uint8_t *buf = (const uint8_t *)v->readbuf.data;
		if (store_pread_full(v->log_fd, v->readbuf.data, want, v->log_pos) < 0)
			return store_fail_errno(error_r, false, "read", "index log");
		size_t k = 0;
		while (k < want) {
			struct index_rec rec;
			const char *why = "bad record";
			char whybuf[160];
			enum index_decode dec = index_rec_decode(buf + k, want - k, &rec, &why);
			if (dec == INDEX_DECODE_OK && !writer && !rec.resolved) {
				v->pending_stop = true; /* its files may not be durable yet */
				if (v->pending_pos != v->log_pos || v->pending_seq != v->log_seq) {
					v->pending_pos = v->log_pos;
					v->pending_seq = v->log_seq;
					v->pending_since = store_now();
				}
				return READ_DONE;
			}
			if (dec == INDEX_DECODE_OK) {
				int ret = index_apply(v, &rec, true, error_r);
				if (ret < 0) {
					/* it may have applied part of the record:
					 * the next use starts from the files again */
					v->broken = true;
					return ret;
				}
				k += rec.size;
				v->log_pos += rec.size;
				if (rec.type == INDEX_REC_ROTATE)
					return follow_rotation(v, &rec, writer && v->log_pos > synced,
							       error_r);
				continue;
			}
			if (dec == INDEX_DECODE_SHORT && (uint64_t)want < avail) {
				/* More of the file is there: read again from here. */
				size_t need = want - k >= 4 ? index_le32(buf + k) : 8;
				min_want = need > (size_t)(avail - k) ? (size_t)(avail - k) : need;
				break;
			}
			snprintf(whybuf, sizeof(whybuf), "%s", why); /* why may be the error buffer */
			if (!writer || v->log_pos < synced ||
			    !tail_is_torn(v->log_pos, dec, buf + k, want - k, file_end))
				return store_fail(error_r, STORE_E_CORRUPT, "index log damaged at %llu: %s",
						  (unsigned long long)v->log_pos, whybuf);
			if (!v->dry_run && ftruncate(v->log_fd, (off_t)v->log_pos) < 0)
				return store_fail_errno(error_r, false, "truncate", "index log");
			v->torn_bytes += file_end - v->log_pos;
			return READ_DONE;
		}
	}
	return READ_DONE;
}

int index_read_log(struct index_view *v, bool writer, const char **error_r)
{
	v->pending_stop = false;
	for (;;) {
		uint64_t synced;
		struct stat st;
		int ret = index_log_synced(v->log_fd, &synced, error_r);
		if (ret < 0)
			return ret;
		if (fstat(v->log_fd, &st) < 0)
			return store_fail_errno(error_r, false, "stat", "index log");
		uint64_t size = (uint64_t)st.st_size;
		if (synced > size || synced < INDEX_LOG_HEADER_SIZE)
			return store_fail(error_r, STORE_E_CORRUPT, "synced mark %llu outside the log",
					  (unsigned long long)synced);
		uint64_t limit = writer ? size : synced;
		if (v->log_pos > size)
			return READ_RELOAD; /* only fsck shrinks a log: it was rebuilt */
		if (v->log_pos > limit)
			return READ_DONE;   /* our own records, not yet marked synced */
		ret = read_range(v, limit, synced, size, writer, error_r);
		if (v->readbuf.cap > READ_KEEP) /* a long tail: do not keep its buffer */
			textbuf_free(&v->readbuf);
		if (ret != READ_ROTATED)
			return ret;
	}
}

int index_load(struct index_view *v, const char **error_r)
{
	struct textbuf sbuf = TEXTBUF_INIT;
	int ret = STORE_E_CORRUPT;
	for (int attempt = 0; attempt < OPEN_RETRIES; attempt++) {
		struct index_snap snap;
		int sret = index_snapshot_read(v->dir_fd, !v->full, &sbuf, &snap, error_r);
		if (sret < 0 && sret != STORE_E_NOTFOUND) {
			ret = sret;
			break;
		}
		bool have_snap = sret == 0;
		uint64_t seq = have_snap ? snap.log_seq : 1;
		struct index_log_header h;
		int fd;
		ret = index_log_open(v->dir_fd, seq, &fd, &h, error_r);
		if (ret == STORE_E_NOTFOUND && have_snap)
			continue; /* the snapshot was replaced meanwhile */
		if (ret == STORE_E_NOTFOUND) {
			ret = store_fail(error_r, STORE_E_CORRUPT, "mailbox has neither index nor log");
			break;
		}
		if (ret < 0)
			break;
		v->log_fd = fd;
		v->log_seq = seq;
		v->chain_start = seq;
		if (have_snap) {
			if (snap.uidvalidity != h.uidvalidity) {
				ret = store_fail(error_r, STORE_E_CORRUPT, "snapshot and log disagree");
				break;
			}
			ret = index_load_snapshot(v, &snap, error_r);
			v->log_pos = snap.log_offset;
			v->snap_bytes = sbuf.len;
		} else {
			v->state = h.state;
			v->uidvalidity = h.uidvalidity;
			v->log_pos = INDEX_LOG_HEADER_SIZE;
			ret = 0;
		}
		v->log_base = v->log_pos;
		if (ret == 0)
			ret = index_read_log(v, false, error_r);
		if (ret != READ_RELOAD)
			break;
		/* A rotation overtook us: start again from a clean view. */
		struct index_view fresh;
		index_view_init_like(&fresh, v);
		close(v->log_fd);
		index_view_clear(v);
		*v = fresh;
		ret = STORE_E_TEMP;
	}
	textbuf_free(&sbuf);
	if (ret == STORE_E_NOTFOUND)
		ret = store_fail(error_r, STORE_E_CORRUPT, "the index names a log that is missing");
	if (ret == STORE_E_TEMP)
		ret = store_fail(error_r, STORE_E_TEMP, "index kept changing while being opened");
	if (ret == 0)
		index_compact(v);
	return ret;
}

int index_view_open(struct store *store, int dir_fd, bool full, struct index_view **v_r,
		    const char **error_r)
{
	struct index_view *v = malloc(sizeof(*v));
	if (v == NULL)
		abort();
	index_view_init(v, full);
	v->store = store;
	v->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
	if (v->dir_fd < 0) {
		free(v);
		return store_fail_errno(error_r, false, "dup", "mailbox directory");
	}
	int ret = store_lockfile_open(v->dir_fd, "lock", &v->lock, error_r);
	if (ret == 0)
		ret = index_load(v, error_r);
	if (ret < 0) {
		index_view_free(&v);
		return ret;
	}
	*v_r = v;
	return 0;
}

void index_view_free(struct index_view **vp)
{
	struct index_view *v = *vp;
	if (v == NULL)
		return;
	*vp = NULL;
	if (v->locked)
		index_view_unlock(v);
	if (v->log_fd >= 0)
		close(v->log_fd);
	if (v->dir_fd >= 0)
		close(v->dir_fd);
	store_lockfile_release(&v->lock);
	index_view_clear(v);
	free(v);
}

int index_view_refresh(struct index_view *v, const char **error_r)
{
	int ret;
	if (v->broken)
		return index_view_reload(v, error_r);
	bool rlock = v->store != NULL && v->store->opts.reader_locks && !v->locked;
	if (rlock && (ret = store_lock(v->lock, STORE_LOCK_INDEX, false, true, error_r)) < 0)
		return ret;
	ret = index_read_log(v, v->locked, error_r);
	if (rlock)
		store_unlock(v->lock, STORE_LOCK_INDEX);
	if (ret == READ_RELOAD)
		return index_view_reload(v, error_r);
	if (ret < 0)
		return ret;
	index_compact(v);
	if (v->deleted)
		return store_fail(error_r, STORE_E_NOTFOUND, "the mailbox was deleted");
	return 0;
}

int index_replay_buffer(struct index_view *v, const uint8_t *buf, size_t len,
			const char **error_r)
{
	struct index_log_header h;
	int ret = index_log_header_decode(buf, len, &h, error_r);
	if (ret < 0)
		return ret;
	v->state = h.state;
	v->uidvalidity = h.uidvalidity;
	size_t off = INDEX_LOG_HEADER_SIZE;
	while (off < len) {
		struct index_rec rec;
		enum index_decode dec = index_rec_decode(buf + off, len - off, &rec, error_r);
		if (dec == INDEX_DECODE_SHORT)
			break;
		if (dec != INDEX_DECODE_OK)
			return STORE_E_CORRUPT;
		ret = index_apply(v, &rec, true, error_r);
		if (ret < 0)
			return ret;
		off += rec.size;
		index_compact(v);
	}
	return 0;
}
