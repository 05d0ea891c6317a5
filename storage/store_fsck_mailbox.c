/*
 * store_fsck_mailbox: checking one mailbox under its index lock.
 *
 *   index       must load and replay (else rebuilt, store_fsck_rebuild.c);
 *               a torn log tail is cut, records past the synced mark are
 *               made durable and visible
 *   records     each needs its message file (a missing one is reported
 *               and, repairing, expunged: it cannot be recovered)
 *   msg/        files no record refers to are orphans of an expunge or of
 *               a crashed append/absorb (whose delivery is still in new/):
 *               removed; so are cache blobs without a message
 *   new/        entries already absorbed (named in the absorb set; after
 *               a rebuild that lost it, the same inode as a message file
 *               that has a record) are removed after a commit;
 *               the rest are pending deliveries and count towards quota;
 *               a file with a name the store never writes is renamed so
 *               that it is absorbed, never deleted
 *   .box        stale logs and snapshot temporaries are removed
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_pending.h"
#include "storage/mailbox_internal.h"
#include "storage/store_fsck_internal.h"
#include "storage/store_lock.h"

/* Records vs files. Returns the UIDs whose files are missing. */
static void check_messages(struct fsck *fk, struct mailbox *box, const struct fsck_files *files,
			   struct uidset *missing)
{
	struct index_view *v = box->view;
	size_t i = 0, j = 0;
	while (i < v->n_recs || j < files->n) {
		const struct mail_record *r = i < v->n_recs ? &v->recs[i] : NULL;
		const struct fsck_file *f = j < files->n ? &files->f[j] : NULL;
		if (f == NULL || (r != NULL && r->uid < f->uid)) {
			const char *err = NULL;
			int back = mailbox_absorb_restore(box, r, fk->repair, &err);
			if (back > 0)
				fsck_problem(fk, box->name, STORE_FSCK_MISSING_FILE, fk->repair,
					     "message %u has no file but its delivery is still in new/%s",
					     r->uid, fk->repair ? ": linked again" : "");
			else
				fsck_problem(fk, box->name, STORE_FSCK_MISSING_FILE, fk->repair,
					     "message %u has no file%s%s%s", r->uid,
					     fk->repair ? ": expunged, it cannot be recovered" : "",
					     back < 0 ? "; new/: " : "", back < 0 ? err : "");
			if (back <= 0)
				uidset_add(missing, r->uid);
			i++;
		} else if (r == NULL || f->uid < r->uid) {
			fsck_problem(fk, box->name, STORE_FSCK_ORPHAN_FILE, fk->repair,
				     "file for UID %u (UIDNEXT %u) has no record", f->uid, v->state.uidnext);
			if (fk->repair) {
				struct uid_range one = { f->uid, f->uid };
				struct uidset s = { &one, 1, 1 };
				mailbox_unlink_messages(box, &s);
			}
			j++;
		} else {
			if (r->size != f->size)
				fsck_problem(fk, box->name, STORE_FSCK_MISSING_FILE, false,
					     "message %u is %llu bytes, its record says %llu", r->uid,
					     (unsigned long long)f->size, (unsigned long long)r->size);
			i++;
			j++;
		}
	}
	for (size_t k = 0; k < files->n_caches; k++) {
		uint32_t uid = files->caches[k];
		if (fsck_files_find(files, uid) != NULL)
			continue;
		fsck_problem(fk, box->name, STORE_FSCK_ORPHAN_FILE, fk->repair, "cache blob %u.cache", uid);
		if (fk->repair) {
			char name[48];
			mailbox_msg_name(uid, name, sizeof(name));
			strcat(name, ".cache");
			unlinkat(box->msg_fd, name, 0);
		}
	}
}

static int expunge_missing(struct mailbox *box, const struct uidset *missing, const char **error_r)
{
	struct index_view *v = box->view;
	textbuf_truncate(&box->buf, 0);
	size_t start = index_rec_begin(&box->buf);
	for (size_t r = 0; r < missing->n; r++)
		index_put_range(&box->buf, missing->r[r].first, missing->r[r].last);
	return index_view_write(v, &box->buf, start, INDEX_REC_EXPUNGE, 0, (uint32_t)missing->n,
				v->state.highestmodseq + 1, NULL, error_r);
}

/* Stale logs, snapshot temporaries, unknown entries in .box. */
static void check_box_dir(struct fsck *fk, struct mailbox *box)
{
	DIR *d = store_opendir(box->dir_fd, ".");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		char *end;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, "lock") == 0 ||
		    strcmp(n, "index") == 0 || strcmp(n, "new") == 0 || strcmp(n, "msg") == 0)
			continue;
		if (strncmp(n, "log.", 4) == 0 && n[4] >= '1' && n[4] <= '9' &&
		    (strtoull(n + 4, &end, 10), *end == '\0')) {
			/* From the snapshot's log to the current one, the chain is
			 * needed (a rotation may have died before replacing the
			 * snapshot); anything else is stale. */
			uint64_t seq = strtoull(n + 4, NULL, 10);
			if (seq >= box->view->chain_start && seq <= box->view->log_seq)
				continue;
			fsck_problem(fk, box->name, STORE_FSCK_LEFTOVER, fk->repair, "%s: not in the log chain", n);
		} else if (strncmp(n, "index.tmp.", 10) == 0 || strncmp(n, ".tmp.", 5) == 0) {
			fsck_problem(fk, box->name, STORE_FSCK_LEFTOVER, fk->repair, "%s: unfinished rewrite", n);
		} else {
			fsck_problem(fk, box->name, STORE_FSCK_BAD_NAME, false, "unexpected entry \"%s\"", n);
			continue;
		}
		if (fk->repair)
			unlinkat(dirfd(d), n, 0);
	}
	closedir(d);
}

/* Only where a rebuild lost the absorb set (every file then has a record):
 * an entry sharing its inode with a message was absorbed. Otherwise the
 * set alone decides, as for every absorber: a COPY can share a pending
 * entry's inode (one delivery naming two mailboxes of a user), and so can
 * an orphan, an absorber that died between its link and its record. */
static bool ino_is_message(const struct fsck_files *files, ino_t ino)
{
	for (size_t i = 0; i < files->n; i++)
		if (files->f[i].ino == ino)
			return true;
	return false;
}

/* new/: leftovers to remove (after a commit) and pending deliveries. */
static void check_new(struct fsck *fk, struct mailbox *box, const struct fsck_files *files,
		      bool absorb_set_lost, struct textbuf *leftovers, uint64_t *bytes,
		      uint64_t *msgs)
{
	DIR *d = store_opendir(box->new_fd, ".");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;
		if (n[0] == '.' || fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		uint8_t guid[16];
		int64_t date;
		uint32_t flags;
		if (mailbox_new_parse(n, guid, &date, &flags, NULL) < 0) {
			fsck_problem(fk, box->name, STORE_FSCK_BAD_NAME, fk->repair,
				     "new/%s: renamed to be delivered", n);
			char proper[MAILBOX_NEW_NAME_MAX];
			store_guid_new(guid);
			(void)mailbox_new_name(guid, st.st_mtime, 0, NULL, 0, proper);
			if (fk->repair)
				renameat(dirfd(d), n, dirfd(d), proper);
		} else if (index_absorb_contains(box->view, guid) ||
			   (absorb_set_lost && ino_is_message(files, st.st_ino))) {
			fsck_problem(fk, box->name, STORE_FSCK_LEFTOVER, fk->repair, "new/%s: already absorbed", n);
			textbuf_append(leftovers, n, strlen(n) + 1);
			continue;
		}
		*bytes += (uint64_t)st.st_size;
		(*msgs)++;
	}
	closedir(d);
}

/* A mailbox whose log says it was deleted: finish the deletion. */
static void finish_delete(struct fsck *fk, struct store_user *u, int level_fd, const char *name)
{
	fsck_problem(fk, name, STORE_FSCK_LEFTOVER, fk->repair, "deleted mailbox not yet removed");
	if (!fk->repair || store_mkdirat(u->dir_fd, "trash") < 0)
		return;
	int tfd = store_open_dir(u->dir_fd, "trash");
	if (tfd < 0)
		return;
	uint8_t rnd[8];
	char trash[17];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), trash);
	if (renameat(level_fd, ".box", tfd, trash) == 0)
		store_remove_tree(tfd, trash);
	close(tfd);
}

/* Loads the full view as a writer would (the lock is held). */
static int load_view(struct fsck *fk, struct mailbox *box, const char **error_r)
{
	int ret = index_view_open(fk->store, box->dir_fd, true, &box->view, error_r);
	if (ret < 0)
		return ret;
	box->view->locked = true;
	box->view->dry_run = !fk->repair;
	ret = index_read_log(box->view, true, error_r);
	if (ret > 0) /* a rotation cannot race us: we hold the lock */
		ret = store_fail(error_r, STORE_E_CORRUPT, "the log chain loops");
	index_compact(box->view);
	return ret;
}

/* Unresolved PENDING appends (a writer died or is between its record and
 * its commit round): files fsync'd, or dropped when a crash lost them. */
static int check_pending(struct fsck *fk, struct mailbox *box, struct index_pending *pend,
			 struct uidset *missing, const char **error_r)
{
	struct index_view *v = box->view;
	int ret = index_pending_help(v, INDEX_LOG_HEADER_SIZE, v->log_pos, pend, error_r);
	for (size_t r = 0; ret == 0 && r < pend->dropped.n; r++)
		for (uint32_t uid = pend->dropped.r[r].first;; uid++) {
			if (!uidset_contains(missing, uid))
				fsck_problem(fk, box->name, STORE_FSCK_MISSING_FILE, true,
					     "message %u of an unacknowledged append lost its file: dropped",
					     uid);
			uidset_add(missing, uid);
			if (uid == pend->dropped.r[r].last)
				break;
		}
	return ret;
}

static int check_locked(struct fsck *fk, struct store_user *u, struct mailbox *box,
			struct fsck_files *files, struct index_pending *pend, bool *dirty,
			bool *absorb_set_lost, const char **error_r)
{
	const char *why = NULL;
	int ret = load_view(fk, box, &why);
	if (ret == STORE_E_CORRUPT) {
		char detail[256];
		snprintf(detail, sizeof(detail), "%s", why);
		bool changed = false;
		if (box->view != NULL)
			box->view->locked = false;
		index_view_free(&box->view);
		if (fk->repair && (ret = fsck_rebuild(fk, u, box->dir_fd, files, &changed, error_r)) < 0)
			return ret;
		*absorb_set_lost = changed;
		fsck_problem(fk, box->name, STORE_FSCK_CORRUPT_INDEX, fk->repair, "%s%s", detail,
			     !fk->repair ? "" : changed ? ": rebuilt with a new UIDVALIDITY" : ": rebuilt");
		if (!fk->repair)
			return 1;
		ret = load_view(fk, box, error_r);
	} else if (ret < 0 && why != NULL) {
		ret = store_fail(error_r, ret, "%s", why);
	}
	if (ret < 0)
		return ret;
	struct index_view *v = box->view;
	if (v->torn_bytes > 0)
		fsck_problem(fk, box->name, STORE_FSCK_TORN_LOG, fk->repair,
			     "%" PRIu64 " bytes of an interrupted write at the end of log.%" PRIu64,
			     v->torn_bytes, v->log_seq);
	if (v->rotation_unmarked) {
		fsck_problem(fk, box->name, STORE_FSCK_UNSYNCED, fk->repair,
			     "a rotation record past the synced mark of an earlier log");
		*dirty = true;
	}
	uint64_t synced;
	struct stat st;
	if (index_log_synced(v->log_fd, &synced, error_r) == 0 && fstat(v->log_fd, &st) == 0 &&
	    (uint64_t)st.st_size > synced && v->log_pos > synced) {
		fsck_problem(fk, box->name, STORE_FSCK_UNSYNCED, fk->repair,
			     "%" PRIu64 " bytes of log records past the synced mark", v->log_pos - synced);
		*dirty = true;
	}
	struct uidset missing = UIDSET_INIT;
	check_messages(fk, box, files, &missing);
	if (fk->repair)
		ret = check_pending(fk, box, pend, &missing, error_r);
	if (ret == 0 && fk->repair && !uidset_empty(&missing)) {
		ret = expunge_missing(box, &missing, error_r);
		*dirty = true;
	}
	uidset_free(&missing);
	check_box_dir(fk, box);
	return ret;
}

int fsck_mailbox(struct fsck *fk, struct store_user *u, const char *name, int level_fd,
		 const char **error_r)
{
	if (fk->cb != NULL && fk->cb->progress != NULL)
		fk->cb->progress(fk->address, name, fk->cb->ctx);
	int box_fd = store_open_dir(level_fd, ".box");
	if (box_fd < 0)
		return store_fail_errno(error_r, false, "open mailbox", name);
	struct mailbox box;
	memset(&box, 0, sizeof(box));
	box.user = u;
	box.store = fk->store;
	box.bucket_fd = -1;
	snprintf(box.name, sizeof(box.name), "%s", name);
	struct store_lockfile *lf = NULL;
	struct fsck_files files;
	memset(&files, 0, sizeof(files));
	struct textbuf leftovers = TEXTBUF_INIT;
	uint64_t pend_bytes = 0, pend_msgs = 0;
	bool dirty = false, deleted = false, absorb_set_lost = false;
	struct index_pending pend = INDEX_PENDING_INIT;
	static const char *const subdirs[] = {"new", "msg"};
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		if (fstatat(box_fd, subdirs[i], &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			continue;
		fsck_problem(fk, name, STORE_FSCK_MISSING_FILE, fk->repair, "%s/ is missing%s",
			     subdirs[i], fk->repair ? ": created again" : "");
		if (fk->repair)
			(void)store_mkdirat(box_fd, subdirs[i]);
	}
	int ret = mailbox_open_fds(&box, box_fd, error_r);
	if (ret == 0)
		ret = store_lockfile_open(box_fd, "lock", &lf, error_r);
	if (ret == 0 && (ret = store_lock(lf, STORE_LOCK_INDEX, true, true, error_r)) > 0) {
		ret = fsck_scan_messages(fk, name, box.msg_fd, &files, error_r);
		if (ret == 0)
			ret = check_locked(fk, u, &box, &files, &pend, &dirty, &absorb_set_lost,
					   error_r);
		if (ret == 0 && box.view->deleted)
			deleted = true;
		else if (ret == 0)
			check_new(fk, &box, &files, absorb_set_lost, &leftovers, &pend_bytes,
				  &pend_msgs);
		if (box.view != NULL)
			box.view->locked = false;
		store_unlock(lf, STORE_LOCK_INDEX);
	}
	if (ret == 1) { /* corrupt and not repairing: count the files */
		for (size_t i = 0; i < files.n; i++)
			fk->bytes += files.f[i].size;
		fk->messages += files.n;
		fk->uncountable = true;
		ret = 0;
	} else if (ret == 0 && deleted) {
		finish_delete(fk, u, level_fd, name);
	} else if (ret == 0) {
		if (fk->repair && (dirty || leftovers.len > 0))
			ret = index_view_durable(box.view, NULL, 0, error_r);
		if (ret == 0 && !uidset_empty(&pend.dropped))
			mailbox_unlink_messages(&box, &pend.dropped); /* short ones */
		if (ret == 0)
			ret = index_pending_resolve(&pend, error_r);
		for (size_t off = 0; ret == 0 && fk->repair && off < leftovers.len;
		     off += strlen(leftovers.data + off) + 1)
			unlinkat(box.new_fd, leftovers.data + off, 0);
		fk->bytes += box.view->state.bytes + pend_bytes;
		fk->messages += box.view->state.messages + pend_msgs;
		fsck_boxes_add(fk, box_fd);
	}
	index_view_free(&box.view);
	index_pending_free(&pend);
	store_lockfile_release(&lf);
	fsck_files_free(&files);
	textbuf_free(&leftovers);
	textbuf_free(&box.buf);
	if (box.new_fd >= 0)
		close(box.new_fd);
	if (box.msg_fd >= 0)
		close(box.msg_fd);
	close(box_fd);
	return ret < 0 ? ret : 0;
}
