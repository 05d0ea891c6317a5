/*
 * mailbox_append: APPEND and MULTIAPPEND in one group-commit round. The
 * messages were written by mail_writer to this node's temporary area;
 * then
 *   1. under the index lock: quota charged, keywords defined, each file
 *      placed at msg/<b>/<uid> (a stale orphan at that name, left by a
 *      crashed writer at a UID >= UIDNEXT, is simply replaced), one APPEND
 *      record written with flag PENDING;
 *   2. after the unlock, one group commit of the message files, the log
 *      and the bucket directories; then the record's resolve word and the
 *      synced mark.
 * The UIDs are returned only after 2. Readers pass a PENDING record only
 * once it is resolved, so they never serve a message whose file is not
 * durable; a crash before 2 leaves either no record (the files are
 * temporary leftovers or orphans, removed by fsck) or an unresolved one,
 * which the next full open, rotation or fsck resolves by making its files
 * durable, or drops (expunges, UIDs burned) where a node crash lost them
 * (storage/index_pending.c; docs/storage-format.md argues the cases).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/quota_usage.h"
#include "storage/store_sync.h"

static void free_writers(struct mail_append *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mail_writer_abort(&msgs[i].writer);
}

/* Step 2: one round for the files, the log and the directories. */
static int append_durable(struct mailbox *box, struct mail_append *msgs, size_t n,
			  const char **error_r)
{
	int stack[16];
	int *fds = n <= 16 ? stack : malloc(n * sizeof(int));
	if (fds == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		fds[i] = msgs[i].writer->fd;
	int ret = mailbox_durable_files(box, fds, n, error_r);
	if (fds != stack)
		free(fds);
	return ret;
}

/* Step 1, under the lock, once the quota is charged. */
static int append_locked(struct mailbox *box, struct mail_append *msgs, size_t n,
			 const uint64_t *kw, uint32_t *uids, const char **error_r)
{
	struct index_view *v = box->view;
	int ret = 0;
	uint64_t modseq = v->state.highestmodseq + 1;
	textbuf_truncate(&box->buf, 0);
	size_t start = index_rec_begin(&box->buf);
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct mail_writer *w = msgs[i].writer;
		uint32_t uid = v->state.uidnext + (uint32_t)i;
		int bfd = mailbox_bucket_fd(box, uid, true, error_r);
		char uidname[16];
		snprintf(uidname, sizeof(uidname), "%u", uid);
		if (bfd < 0)
			ret = bfd;
		else
			ret = mail_writer_place(w, bfd, uidname, error_r);
		if (ret < 0)
			break;
		mailbox_bucket_touch(box);
		struct mail_record m = { .uid = uid,
					 .flags = msgs[i].flags & MAIL_FLAGS_MASK,
					 .modseq = modseq,
					 .keywords = kw[i],
					 .internal_date = msgs[i].internal_date,
					 .size = w->size };
		memcpy(m.guid, w->guid, 16);
		index_put_msg(&box->buf, &m);
		uids[i] = uid;
	}
	if (ret == 0) {
		index_put_u32(&box->buf, 0); /* no carried GUIDs */
		index_put_u32(&box->buf, 0);
		ret = index_view_write(v, &box->buf, start, INDEX_REC_APPEND, INDEX_APPEND_PENDING, (uint32_t)n, modseq, NULL,
				       error_r);
	}
	return ret; /* on an error, the placed files are orphans past UIDNEXT: replaced later */
}

int mailbox_append(struct mailbox *box, struct mail_append *msgs, size_t n,
		   const struct store_quota_limit *quota, uint32_t *uids_r, bool *quota_warning_r,
		   const char **error_r)
{
	bool warning = false;
	int ret = 0;
	if (n == 0)
		return 0;
	uint64_t *kw = calloc(n, sizeof(*kw));
	if (kw == NULL)
		abort();
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (msgs[i].writer == NULL)
			ret = store_fail(error_r, STORE_E_INVALID, "append without a message");
		else if (msgs[i].flags & ~(uint32_t)MAIL_FLAGS_MASK)
			ret = store_fail(error_r, STORE_E_INVALID, "unknown flags 0x%x", msgs[i].flags);
		else
			ret = mailbox_keywords_check(msgs[i].keywords, msgs[i].n_keywords, error_r);
	}
	if (ret == 0) {
		for (size_t i = 0; i < n; i++)
			msgs[i].internal_date = mail_writer_date(msgs[i].writer, msgs[i].internal_date);
		ret = index_view_lock(box->view, error_r);
	}
	if (ret == 0) {
		uint64_t bytes = 0;
		for (size_t i = 0; i < n; i++)
			bytes += msgs[i].writer->size;
		/* charged first: a refused append defines no keyword */
		ret = quota_charge(box->user, (int64_t)bytes, (int64_t)n, quota, &warning, error_r);
		bool charged = ret == 0;
		for (size_t i = 0; i < n && ret == 0; i++)
			ret = mailbox_keywords_mask(box, msgs[i].keywords, msgs[i].n_keywords, true, &kw[i],
						    error_r);
		if (ret == 0)
			ret = append_locked(box, msgs, n, kw, uids_r, error_r);
		if (ret < 0 && charged)
			(void)quota_charge(box->user, -(int64_t)bytes, -(int64_t)n, NULL, NULL, NULL);
		index_view_unlock(box->view);
		if (ret == 0)
			ret = append_durable(box, msgs, n, error_r);
	}
	free(kw);
	free_writers(msgs, n);
	if (quota_warning_r != NULL)
		*quota_warning_r = ret == 0 && warning;
	return ret;
}
