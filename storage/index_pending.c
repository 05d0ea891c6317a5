/*
 * index_pending: APPEND records written in the same commit round as
 * their message files (flag PENDING). Such a record may become durable
 * and even sit below the synced mark before its files are durable (on a
 * cluster filesystem another node's commit can carry our log page, never
 * our message file), so readers pass it only once its resolve word says
 * the files are durable. The word is written by the record's writer after
 * its round, or by whoever meets an unresolved record and must get past
 * it (opening a full view, rotation, fsck): the helper fsyncs the files
 * itself, and drops (expunges; the UIDs stay burned) the messages whose
 * file is missing or shorter than the record says. That can only happen
 * after a crash of the writer's node before its round ended, so before
 * the append was acknowledged: the writer renamed the whole file into
 * msg/ before writing the record, and a killed process's page cache
 * survives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_pending.h"
#include "storage/mailbox_internal.h"
#include "storage/store_internal.h"

void index_pending_free(struct index_pending *p)
{
	if (p->log_fd >= 0)
		close(p->log_fd);
	free(p->recs);
	uidset_free(&p->dropped);
	memset(p, 0, sizeof(*p));
	p->log_fd = -1;
}

static int fsync_dir(int dir_fd, const char *name, const char **error_r)
{
	int fd = store_open_dir(dir_fd, name);
	if (fd < 0)
		return errno == ENOENT ? 0 : store_fail_errno(error_r, false, "open", name);
	int ret = fsync(fd) < 0 ? store_fail_errno(error_r, false, "fsync", name) : 0;
	close(fd);
	return ret;
}

/* One message of a pending record: 0 durable now, 1 to drop, <0 error. */
static int help_message(int dir_fd, const struct mail_record *m, uint32_t *bucket_synced,
			const char **error_r)
{
	char rel[32], path[40];
	mailbox_msg_name(m->uid, rel, sizeof(rel));
	snprintf(path, sizeof(path), "msg/%s", rel);
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 1 : store_fail_errno(error_r, false, "open", path);
	struct stat st;
	int ret = 0;
	if (fstat(fd, &st) < 0)
		ret = store_fail_errno(error_r, false, "stat", path);
	else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->size)
		ret = 1;
	else if (fsync(fd) < 0)
		ret = store_fail_errno(error_r, false, "fsync", path);
	close(fd);
	uint32_t bucket = m->uid >> MAILBOX_BUCKET_SHIFT;
	if (ret == 0 && *bucket_synced != bucket) {
		char dir[24];
		snprintf(dir, sizeof(dir), "msg/%x", bucket);
		ret = fsync_dir(dir_fd, dir, error_r);
		*bucket_synced = bucket;
	}
	return ret;
}

static void pending_add(struct index_pending *p, uint64_t off, uint32_t size)
{
	if (p->n == p->cap) {
		p->cap = p->cap == 0 ? 8 : p->cap * 2;
		p->recs = realloc(p->recs, p->cap * sizeof(*p->recs));
		if (p->recs == NULL)
			abort();
	}
	p->recs[p->n++] = (struct index_pending_rec){ off, size };
}

int index_pending_help(struct index_view *v, uint64_t from, uint64_t to, struct index_pending *p,
		       const char **error_r)
{
	if (to <= from)
		return 0;
	size_t len = (size_t)(to - from);
	uint8_t *buf = malloc(len);
	if (buf == NULL)
		abort();
	int ret = 0;
	if (store_pread_full(v->log_fd, buf, len, from) < 0)
		ret = store_fail_errno(error_r, false, "read", "index log");
	uint32_t bucket_synced = UINT32_MAX;
	bool msg_dir_synced = false;
	for (size_t k = 0; ret == 0 && k < len;) {
		struct index_rec rec;
		const char *why;
		if (index_rec_decode(buf + k, len - k, &rec, &why) != INDEX_DECODE_OK)
			break; /* the locked read already vetted these records */
		if (rec.type == INDEX_REC_APPEND && !rec.resolved) {
			if (!msg_dir_synced) { /* a new bucket directory lives there */
				ret = fsync_dir(v->dir_fd, "msg", error_r);
				msg_dir_synced = true;
			}
			for (uint32_t i = 0; ret == 0 && i < rec.count; i++) {
				struct mail_record m;
				index_rec_msg(&rec, i, &m);
				int h = help_message(v->dir_fd, &m, &bucket_synced, error_r);
				if (h == 1)
					uidset_add(&p->dropped, m.uid);
				else
					ret = h;
			}
			if (ret == 0 && p->log_fd < 0 &&
			    (p->log_fd = fcntl(v->log_fd, F_DUPFD_CLOEXEC, 0)) < 0)
				ret = store_fail_errno(error_r, false, "dup", "index log");
			if (ret == 0)
				pending_add(p, from + k, rec.size);
		}
		k += rec.size;
	}
	free(buf);
	return ret;
}

int index_pending_drop(struct index_view *v, struct index_pending *p, struct textbuf *buf,
		       uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
{
	*bytes_r = *count_r = 0;
	struct uidset live = UIDSET_INIT;
	for (size_t r = 0; r < p->dropped.n; r++)
		for (size_t i = index_lower_bound(v, p->dropped.r[r].first);
		     i < v->n_recs && v->recs[i].uid <= p->dropped.r[r].last; i++) {
			if (v->recs[i].flags & INDEX_DEAD)
				continue; /* dropped before by a helper that died before resolving */
			uidset_add(&live, v->recs[i].uid);
			*bytes_r += v->recs[i].size;
			(*count_r)++;
		}
	int ret = 0;
	if (!uidset_empty(&live)) {
		textbuf_truncate(buf, 0);
		size_t start = index_rec_begin(buf);
		for (size_t i = 0; i < live.n; i++)
			index_put_range(buf, live.r[i].first, live.r[i].last);
		ret = index_view_write(v, buf, start, INDEX_REC_EXPUNGE, 0, (uint32_t)live.n,
				       v->state.highestmodseq + 1, NULL, error_r);
	}
	uidset_free(&live);
	if (ret < 0)
		*bytes_r = *count_r = 0;
	return ret;
}

int index_rec_resolve(int log_fd, uint64_t off, uint32_t size, const char **error_r)
{
	uint8_t word[4];
	index_set_le32(word, INDEX_RESOLVED_MAGIC);
	if (store_pwrite_full(log_fd, word, sizeof(word), index_rec_resolve_offset(off, size)) < 0)
		return store_fail_errno(error_r, false, "write", "index log");
	return 0;
}

int index_pending_resolve(const struct index_pending *p, const char **error_r)
{
	int ret = 0;
	for (size_t i = 0; i < p->n && ret == 0; i++)
		ret = index_rec_resolve(p->log_fd, p->recs[i].off, p->recs[i].size, error_r);
	return ret;
}

bool index_pending_stuck(const struct index_view *v)
{
	return v->pending_stop && store_now() - v->pending_since >= INDEX_PENDING_STUCK_SECS;
}
