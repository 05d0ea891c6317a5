/*
 * mailbox_copy: COPY and MOVE (UIDPLUS COPYUID). The new messages are hard
 * links to the source files (and their cache blobs), so a copy costs a
 * directory entry, not a second file. Under the destination's index lock:
 * quota is charged (a refused copy defines nothing), keywords are mapped
 * by name into the destination's table, each file is linked to its new
 * UID and one APPEND record is
 * written; after the group commit the source messages of a MOVE are
 * expunged, and flag changes made to them meanwhile are carried over to
 * the copies. A crash between the two leaves the messages in both
 * mailboxes, never in neither.
 *
 * Quota: a COPY, or a MOVE to another user, is checked against and
 * charged to dst's user (the source's usage drops with the expunge); a
 * MOVE within one user is not checked against the limit (its usage does
 * not grow: the copies are charged and the expunge gives them back). A
 * crash between the copy and the expunge leaves the messages in both
 * mailboxes, counted twice, as they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/quota_usage.h"

struct copy_plan {
	struct mail_record *m;   /* source records (copied out of the view) */
	uint32_t *dst_uid;       /* each one's copy, 0 when not copied */
	size_t n;
	int kw_map[MAILBOX_KEYWORDS_MAX];
};

static int plan_collect(struct mailbox *src, const struct uidset *uids, struct copy_plan *p)
{
	struct index_view *v = src->view;
	size_t cap = 0;
	for (size_t r = 0; r < uids->n; r++) {
		for (size_t i = index_lower_bound(v, uids->r[r].first);
		     i < v->n_recs && v->recs[i].uid <= uids->r[r].last; i++) {
			if (v->recs[i].flags & INDEX_DEAD)
				continue;
			if (p->n == cap) {
				cap = cap ? cap * 2 : 64;
				p->m = realloc(p->m, cap * sizeof(*p->m));
				p->dst_uid = realloc(p->dst_uid, cap * sizeof(*p->dst_uid));
				if (p->m == NULL || p->dst_uid == NULL)
					abort();
			}
			p->dst_uid[p->n] = 0;
			p->m[p->n++] = v->recs[i];
		}
	}
	return 0;
}

/* Under dst's lock: defines src's keywords that are in use in dst. */
static int plan_keywords(struct mailbox *src, struct mailbox *dst, struct copy_plan *p,
			 const char **error_r)
{
	uint64_t used = 0;
	for (size_t i = 0; i < p->n; i++)
		used |= p->m[i].keywords;
	const char *names[MAILBOX_KEYWORDS_MAX];
	int idx[MAILBOX_KEYWORDS_MAX];
	size_t n = 0;
	for (unsigned b = 0; b < MAILBOX_KEYWORDS_MAX; b++) {
		p->kw_map[b] = -1;
		if (used & ((uint64_t)1 << b) && src->view->keywords[b] != NULL) {
			idx[n] = (int)b;
			names[n++] = src->view->keywords[b];
		}
	}
	uint64_t mask;
	int ret = mailbox_keywords_mask(dst, names, n, true, &mask, error_r);
	for (size_t i = 0; ret == 0 && i < n; i++)
		p->kw_map[idx[i]] = index_keyword_lookup(dst->view, names[i]);
	return ret;
}

static uint64_t map_keywords(const struct copy_plan *p, uint64_t kw)
{
	uint64_t out = 0;
	for (unsigned b = 0; b < MAILBOX_KEYWORDS_MAX; b++)
		if ((kw & ((uint64_t)1 << b)) && p->kw_map[b] >= 0)
			out |= (uint64_t)1 << p->kw_map[b];
	return out;
}

/* Links src's file for uid to dst's new uid; STORE_E_EXPUNGED if gone. */
static int link_message(struct mailbox *src, uint32_t src_uid, struct mailbox *dst,
			uint32_t dst_uid, const char **error_r)
{
	char from[48], to[16];
	mailbox_msg_name(src_uid, from, sizeof(from));
	snprintf(to, sizeof(to), "%u", dst_uid);
	int bfd = mailbox_bucket_fd(dst, dst_uid, true, error_r);
	if (bfd < 0)
		return bfd;
	int r = linkat(src->msg_fd, from, bfd, to, 0);
	if (r < 0 && errno == EEXIST) {
		unlinkat(bfd, to, 0); /* orphan past UIDNEXT */
		r = linkat(src->msg_fd, from, bfd, to, 0);
	}
	if (r < 0) {
		if (errno == ENOENT)
			return STORE_E_EXPUNGED;
		if (errno != EMLINK)
			return store_fail_errno(error_r, false, "link", from);
		/* The filesystem's limit of links per file: a copy then. */
		r = mailbox_copy_file(src->msg_fd, from, bfd, to, error_r);
		if (r == STORE_E_NOTFOUND)
			return STORE_E_EXPUNGED;
		if (r < 0)
			return r;
	}
	mailbox_bucket_touch(dst);
	strcat(from, ".cache");
	char cache[32];
	snprintf(cache, sizeof(cache), "%u.cache", dst_uid);
	unlinkat(bfd, cache, 0);
	(void)linkat(src->msg_fd, from, bfd, cache, 0);
	return 0;
}

static bool same_user(const struct mailbox *a, const struct mailbox *b)
{
	return a->user == b->user || strcmp(a->user->path, b->user->path) == 0;
}

/* The copies are charged in the same lock hold as their record, as every
 * usage change is (fsck's recount relies on it). quota: the limit to
 * enforce, NULL for a MOVE within one user (its usage does not grow: the
 * source's expunge gives the bytes back right after). */
static int copy_locked(struct mailbox *src, struct mailbox *dst, struct copy_plan *p,
		       const struct store_quota_limit *quota, struct uidset *src_done,
		       struct uidset *dst_done, const char **error_r)
{
	struct index_view *v = dst->view;
	uint64_t bytes = 0;
	for (size_t i = 0; i < p->n; i++)
		bytes += p->m[i].size;
	int ret = quota_charge(dst->user, (int64_t)bytes, (int64_t)p->n, quota, NULL, error_r);
	if (ret < 0)
		return ret;
	ret = plan_keywords(src, dst, p, error_r); /* only once the copy may go ahead */
	uint64_t modseq = v->state.highestmodseq + 1, copied_bytes = 0;
	uint32_t count = 0;
	textbuf_truncate(&dst->buf, 0);
	size_t start = index_rec_begin(&dst->buf);
	for (size_t i = 0; i < p->n && ret == 0; i++) {
		struct mail_record m = p->m[i];
		m.uid = v->state.uidnext + count;
		int lret = link_message(src, p->m[i].uid, dst, m.uid, error_r);
		if (lret == STORE_E_EXPUNGED)
			continue;
		if (lret < 0) {
			ret = lret;
			break;
		}
		m.flags &= MAIL_FLAGS_MASK;
		m.modseq = modseq;
		m.keywords = map_keywords(p, p->m[i].keywords);
		index_put_msg(&dst->buf, &m);
		p->dst_uid[i] = m.uid;
		uidset_add(src_done, p->m[i].uid);
		uidset_add(dst_done, m.uid);
		copied_bytes += m.size;
		count++;
	}
	if (ret == 0 && count > 0) {
		index_put_u32(&dst->buf, 0);
		index_put_u32(&dst->buf, 0);
		ret = index_view_write(v, &dst->buf, start, INDEX_REC_APPEND, 0, count, modseq, NULL,
				       error_r);
	}
	if (ret < 0) {
		uidset_clear(src_done);
		uidset_clear(dst_done);
		memset(p->dst_uid, 0, p->n * sizeof(*p->dst_uid));
		copied_bytes = 0;
		count = 0;
	}
	/* Give back what was charged for messages that were not copied. */
	if (count < p->n)
		(void)quota_charge(dst->user, -(int64_t)(bytes - copied_bytes),
				   -(int64_t)(p->n - count), NULL, NULL, NULL);
	return ret;
}

/* Applies to dst's copy the flags and keywords that from lacks and to
 * has (op ADD), or the reverse (op REMOVE); keyword names from src. */
static void carry_op(struct mailbox *src, struct mailbox *dst, uint32_t dst_uid,
		     enum mail_flags_op op, const struct mail_record *from,
		     const struct mail_record *to)
{
	const char *names[MAILBOX_KEYWORDS_MAX];
	size_t n = 0;
	uint64_t kw = to->keywords & ~from->keywords;
	for (unsigned b = 0; b < MAILBOX_KEYWORDS_MAX; b++)
		if ((kw & ((uint64_t)1 << b)) && src->view->keywords[b] != NULL)
			names[n++] = src->view->keywords[b];
	struct mail_flags_update upd = { .op = op,
					 .flags = to->flags & ~from->flags & MAIL_FLAGS_MASK,
					 .keywords = names,
					 .n_keywords = n };
	if (upd.flags == 0 && n == 0)
		return;
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, dst_uid);
	(void)mailbox_store(dst, &one, &upd, NULL, NULL, NULL);
	uidset_free(&one);
}

/* The source of a MOVE is not locked between its copy and its expunge:
 * a flag change another session records on a moved message in between
 * (the copy's group commit is in between) would leave with the removed
 * message. The expunge saw each message's last state; what changed
 * since the copy is applied to the copy, as the same additions and
 * removals, so that it merges with any change made to the copy itself.
 * Best effort after the MOVE has succeeded: an I/O error here leaves
 * the copy with the flags it was made with. */
static void move_carry_changes(struct mailbox *src, struct mailbox *dst, const struct copy_plan *p,
			       const struct mail_record *gone, size_t n_gone)
{
	struct index_view *light = NULL;
	size_t i = 0;
	for (size_t g = 0; g < n_gone; g++) {
		while (i < p->n && p->m[i].uid < gone[g].uid)
			i++;
		if (i == p->n || p->m[i].uid != gone[g].uid || p->dst_uid[i] == 0 ||
		    gone[g].modseq == p->m[i].modseq)
			continue;
		if (!dst->view->full) { /* STORE needs the copy's record */
			struct index_view *full;
			if (index_view_open(dst->store, dst->dir_fd, true, &full, NULL) < 0)
				return;
			full->quota_user = dst->user;
			light = dst->view;
			dst->view = full;
		}
		carry_op(src, dst, p->dst_uid[i], MAIL_FLAGS_ADD, &p->m[i], &gone[g]);
		carry_op(src, dst, p->dst_uid[i], MAIL_FLAGS_REMOVE, &gone[g], &p->m[i]);
	}
	if (light != NULL) {
		index_view_free(&dst->view);
		dst->view = light;
	}
}

int mailbox_copy(struct mailbox *src, const struct uidset *uids, struct mailbox *dst, bool move,
		 const struct store_quota_limit *quota, struct uidset *src_uids_r,
		 struct uidset *dst_uids_r, const char **error_r)
{
	if (!src->view->full)
		return store_fail(error_r, STORE_E_INVALID, "COPY needs a full source view");
	/* The copies carry the flags as they are now, not as this session
	 * last synced them: a MOVE would otherwise lose another session's
	 * change for good. Refreshing keeps the changes for the session's
	 * next sync. */
	int ret = index_view_refresh(src->view, error_r);
	if (ret < 0)
		return ret;
	struct copy_plan p;
	memset(&p, 0, sizeof(p));
	plan_collect(src, uids, &p);
	struct uidset src_done = UIDSET_INIT, dst_done = UIDSET_INIT;
	const struct store_quota_limit *limit = move && same_user(src, dst) ? NULL : quota;
	if (p.n > 0) {
		ret = index_view_lock(dst->view, error_r);
		uint64_t pos0 = dst->view->log_pos;
		if (ret == 0) {
			ret = copy_locked(src, dst, &p, limit, &src_done, &dst_done, error_r);
			index_view_unlock(dst->view);
			if (ret == 0 && dst->view->log_pos != pos0)
				ret = mailbox_durable(dst, error_r);
		}
	}
	if (ret == 0 && move && !uidset_empty(&src_done)) {
		struct mail_record *gone = NULL;
		size_t n_gone = 0;
		ret = mailbox_expunge_records(src, &src_done, true, NULL, &gone, &n_gone, error_r);
		if (ret == 0)
			move_carry_changes(src, dst, &p, gone, n_gone);
		free(gone);
	}
	if (ret == 0 && src_uids_r != NULL)
		for (size_t r = 0; r < src_done.n; r++)
			uidset_add_range(src_uids_r, src_done.r[r].first, src_done.r[r].last);
	if (ret == 0 && dst_uids_r != NULL)
		for (size_t r = 0; r < dst_done.n; r++)
			uidset_add_range(dst_uids_r, dst_done.r[r].first, dst_done.r[r].last);
	uidset_free(&src_done);
	uidset_free(&dst_done);
	free(p.m);
	free(p.dst_uid);
	return ret;
}
