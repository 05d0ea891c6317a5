/*
 * mailbox_open: opening a mailbox (a view), reading its records, and
 * mailbox_sync, which reports what changed since the session last asked.
 *
 * Opening a full view also settles the log (records a crashed writer left
 * past the synced mark become visible after a group commit), absorbs
 * pending deliveries, and claims \Recent unless read-only. A sync is a
 * readdir of new/ and a read of the log's synced mark when nothing
 * changed; it takes the index lock only to absorb deliveries or claim
 * \Recent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/index_pending.h"
#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"

int mailbox_open_fds(struct mailbox *box, int dir_fd, const char **error_r)
{
	box->dir_fd = dir_fd;
	box->new_fd = store_open_dir(dir_fd, "new");
	box->msg_fd = box->new_fd < 0 ? -1 : store_open_dir(dir_fd, "msg");
	if (box->msg_fd < 0)
		return store_fail_errno(error_r, false, "open", "mailbox directories");
	return 0;
}

int mailbox_claim_recent(struct mailbox *box, const char **error_r)
{
	struct index_view *v = box->view;
	if (!v->full || (box->flags & MAILBOX_OPEN_READONLY) ||
	    v->state.first_recent_uid >= v->state.uidnext)
		return 0;
	int ret = index_view_lock(v, error_r);
	if (ret < 0)
		return ret;
	uint32_t first = v->state.first_recent_uid;
	if (first >= v->state.uidnext) {
		index_view_unlock(v);
		return 0;
	}
	for (size_t i = index_lower_bound(v, first); i < v->n_recs; i++)
		v->recs[i].flags |= MAIL_RECENT;
	if (box->recent_first == 0 || first < box->recent_first)
		box->recent_first = first;
	struct index_state proposed = v->state;
	proposed.first_recent_uid = v->state.uidnext;
	textbuf_truncate(&box->buf, 0);
	size_t start = index_rec_begin(&box->buf);
	ret = index_view_write(v, &box->buf, start, INDEX_REC_RECENT, 0, 0, 0, &proposed, error_r);
	index_view_unlock(v);
	if (ret == 0)
		ret = index_view_durable(v, NULL, 0, error_r);
	return ret;
}

int mailbox_open(struct store_user *user, const char *name, unsigned flags,
		 struct mailbox **box_r, const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_name_normalize(name, norm, error_r);
	if (ret < 0)
		return ret;
	int dir_fd;
	if ((ret = mailbox_open_box_dir(user, norm, &dir_fd, error_r)) < 0)
		return ret;
	struct mailbox *box = calloc(1, sizeof(*box));
	if (box == NULL)
		abort();
	box->user = user;
	box->store = user->store;
	box->flags = flags;
	box->new_fd = box->msg_fd = box->bucket_fd = -1;
	memcpy(box->name, norm, sizeof(norm));
	bool full = !(flags & MAILBOX_OPEN_APPEND_ONLY);
	ret = mailbox_open_fds(box, dir_fd, error_r);
	if (ret == 0)
		ret = index_view_open(box->store, dir_fd, full, &box->view, error_r);
	if (ret == 0)
		box->view->quota_user = user;
	if (ret == 0 && box->view->deleted)
		ret = store_fail(error_r, STORE_E_NOTFOUND, "the mailbox was deleted");
	if (ret == 0 && full)
		ret = index_view_settle(box->view, error_r);
	if (ret == 0)
		ret = mailbox_absorb(box, error_r);
	if (ret == 0)
		ret = mailbox_claim_recent(box, error_r);
	if (ret < 0) {
		mailbox_close(&box);
		return ret;
	}
	/* What the session sees now is its starting point, not a change. */
	uidset_clear(&box->view->pend_app);
	uidset_clear(&box->view->pend_chg);
	uidset_clear(&box->view->pend_exp);
	*box_r = box;
	return 0;
}

void mailbox_close(struct mailbox **bp)
{
	struct mailbox *box = *bp;
	if (box == NULL)
		return;
	*bp = NULL;
	index_view_free(&box->view);
	if (box->bucket_fd >= 0)
		close(box->bucket_fd);
	if (box->msg_fd >= 0)
		close(box->msg_fd);
	if (box->new_fd >= 0)
		close(box->new_fd);
	if (box->dir_fd >= 0)
		close(box->dir_fd);
	textbuf_free(&box->buf);
	free(box);
}

const char *mailbox_name(const struct mailbox *box)
{
	return box->name;
}

void mailbox_get_status(const struct mailbox *box, struct mailbox_status *st)
{
	const struct index_view *v = box->view;
	st->messages = v->state.messages;
	st->recent = v->state.recent;
	if (v->full && !(box->flags & MAILBOX_OPEN_READONLY)) {
		/* \Recent as this session sees it: what it claimed. */
		st->recent = 0;
		if (box->recent_first != 0)
			for (size_t i = index_lower_bound(v, box->recent_first); i < v->n_recs; i++)
				st->recent += (v->recs[i].flags & MAIL_RECENT) != 0;
	}
	st->unseen = v->state.unseen;
	st->deleted = v->state.deleted;
	st->uidnext = v->state.uidnext;
	st->uidvalidity = v->uidvalidity;
	st->highestmodseq = v->state.highestmodseq;
	st->bytes = v->state.bytes;
}

const struct mail_record *mailbox_records(const struct mailbox *box, size_t *count_r)
{
	if (!box->view->full) {
		*count_r = 0;
		return NULL;
	}
	*count_r = box->view->n_recs;
	return box->view->recs;
}

const struct mail_record *mailbox_lookup(const struct mailbox *box, uint32_t uid)
{
	return box->view->full ? index_find(box->view, uid) : NULL;
}

const char *mailbox_keyword(const struct mailbox *box, unsigned idx)
{
	return idx < box->view->state.keywords ? box->view->keywords[idx] : NULL;
}

unsigned mailbox_keyword_count(const struct mailbox *box)
{
	return box->view->state.keywords;
}

static void report(struct mailbox *box, const struct mailbox_sync_ops *ops, void *ctx)
{
	struct index_view *v = box->view;
	struct uidset_iter it;
	if (ops != NULL && ops->expunged != NULL)
		for (uint32_t u = uidset_first(&v->pend_exp, &it); u != 0; u = uidset_next(&v->pend_exp, &it))
			ops->expunged(u, ctx);
	if (ops != NULL && ops->appended != NULL)
		for (uint32_t u = uidset_first(&v->pend_app, &it); u != 0; u = uidset_next(&v->pend_app, &it)) {
			const struct mail_record *r = index_find(v, u);
			if (r != NULL)
				ops->appended(r, ctx);
		}
	if (ops != NULL && ops->changed != NULL)
		for (uint32_t u = uidset_first(&v->pend_chg, &it); u != 0; u = uidset_next(&v->pend_chg, &it)) {
			const struct mail_record *r = index_find(v, u);
			if (r != NULL && !uidset_contains(&v->pend_app, u))
				ops->changed(r, ctx);
		}
	uidset_clear(&v->pend_exp);
	uidset_clear(&v->pend_app);
	uidset_clear(&v->pend_chg);
}

int mailbox_sync(struct mailbox *box, const struct mailbox_sync_ops *ops, void *ctx,
		 const char **error_r)
{
	int ret = mailbox_absorb(box, error_r);
	if (ret == 0)
		ret = index_view_refresh(box->view, error_r);
	if (ret == 0 && index_pending_stuck(box->view))
		ret = index_view_settle(box->view, error_r);
	if (ret == 0)
		ret = mailbox_claim_recent(box, error_r);
	if (ret < 0)
		return ret;
	if (box->view->full)
		report(box, ops, ctx);
	return 0;
}
