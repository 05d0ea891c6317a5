/*
 * mailbox_expunge: EXPUNGE / UID EXPUNGE, and QRESYNC's VANISHED.
 *
 * Under the index lock the messages to remove are chosen against the
 * latest state, one EXPUNGE record is written and the quota usage is
 * lowered (counters lock inside the index lock: the documented order).
 * The message files are unlinked only after the record is durable; a
 * crash in between leaves orphan files that store_fsck removes. The
 * expunged UID ranges are kept with their MODSEQ (bounded history, see
 * index_view.h) to answer VANISHED (EARLIER).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/quota_usage.h"

void mailbox_unlink_messages(struct mailbox *box, const struct uidset *uids)
{
	struct uidset_iter it;
	for (uint32_t u = uidset_first(uids, &it); u != 0; u = uidset_next(uids, &it)) {
		char name[48];
		mailbox_msg_name(u, name, sizeof(name));
		unlinkat(box->msg_fd, name, 0);
		snprintf(name + strlen(name), sizeof(name) - strlen(name), ".cache");
		unlinkat(box->msg_fd, name, 0);
	}
}

int mailbox_expunge_records(struct mailbox *box, const struct uidset *uids, bool any_flags,
			    struct uidset *expunged_r, struct mail_record **gone_r,
			    size_t *n_gone_r, const char **error_r)
{
	struct index_view *v = box->view;
	if (!v->full)
		return store_fail(error_r, STORE_E_INVALID, "EXPUNGE needs a full view");
	int ret = index_view_lock(v, error_r);
	if (ret < 0)
		return ret;
	struct uidset gone = UIDSET_INIT;
	uint64_t bytes = 0;
	size_t cap = 0;
	struct uid_range all = { 1, UINT32_MAX };
	const struct uid_range *ranges = uids != NULL ? uids->r : &all;
	size_t n_ranges = uids != NULL ? uids->n : 1;
	for (size_t r = 0; r < n_ranges; r++) {
		for (size_t i = index_lower_bound(v, ranges[r].first);
		     i < v->n_recs && v->recs[i].uid <= ranges[r].last; i++) {
			const struct mail_record *m = &v->recs[i];
			if ((m->flags & INDEX_DEAD) || (!any_flags && !(m->flags & MAIL_DELETED)))
				continue;
			uidset_add(&gone, m->uid);
			bytes += m->size;
			if (gone_r != NULL) {
				if (*n_gone_r == cap) {
					cap = cap ? cap * 2 : 16;
					*gone_r = realloc(*gone_r, cap * sizeof(**gone_r));
					if (*gone_r == NULL)
						abort();
				}
				(*gone_r)[(*n_gone_r)++] = *m;
			}
		}
	}
	uint64_t count = uidset_count(&gone);
	if (count > 0) {
		uint64_t modseq = v->state.highestmodseq + 1;
		textbuf_truncate(&box->buf, 0);
		size_t start = index_rec_begin(&box->buf);
		for (size_t r = 0; r < gone.n; r++)
			index_put_range(&box->buf, gone.r[r].first, gone.r[r].last);
		ret = index_view_write(v, &box->buf, start, INDEX_REC_EXPUNGE, 0, (uint32_t)gone.n, modseq,
				       NULL, error_r);
		if (ret == 0)
			(void)quota_charge(box->user, -(int64_t)bytes, -(int64_t)count, NULL, NULL, NULL);
	}
	index_view_unlock(v);
	if (ret == 0 && count > 0)
		ret = mailbox_durable(box, error_r);
	if (ret == 0) {
		index_compact(v);
		mailbox_unlink_messages(box, &gone);
		if (expunged_r != NULL)
			for (size_t r = 0; r < gone.n; r++)
				uidset_add_range(expunged_r, gone.r[r].first, gone.r[r].last);
	}
	uidset_free(&gone);
	return ret;
}

int mailbox_expunge(struct mailbox *box, const struct uidset *uids, bool any_flags,
		    struct uidset *expunged_r, const char **error_r)
{
	return mailbox_expunge_records(box, uids, any_flags, expunged_r, NULL, NULL, error_r);
}

int mailbox_vanished_since(const struct mailbox *box, uint64_t modseq, struct uidset *uids_r,
			   const char **error_r)
{
	const struct index_view *v = box->view;
	if (!v->full)
		return store_fail(error_r, STORE_E_INVALID, "VANISHED needs a full view");
	if (modseq >= v->van_floor) {
		for (size_t i = 0; i < v->n_van; i++)
			if (v->van[i].modseq > modseq)
				uidset_add_range(uids_r, v->van[i].first, v->van[i].last);
		return 0;
	}
	/* History does not reach back that far: every UID that is not here. */
	uint32_t next = 1;
	for (size_t i = 0; i < v->n_recs; i++) {
		if (v->recs[i].flags & INDEX_DEAD)
			continue;
		if (v->recs[i].uid > next)
			uidset_add_range(uids_r, next, v->recs[i].uid - 1);
		next = v->recs[i].uid + 1;
	}
	if (next < v->state.uidnext)
		uidset_add_range(uids_r, next, v->state.uidnext - 1);
	return 0;
}
