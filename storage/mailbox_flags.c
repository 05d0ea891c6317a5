/*
 * mailbox_flags: STORE (flags and keywords with MODSEQ, CONDSTORE
 * UNCHANGEDSINCE) and the per-mailbox keyword table.
 *
 * The decision which messages change is made under the index lock
 * against the latest state, so two sessions storing at once never lose
 * each other's change: the record says "apply op to these UIDs", and
 * replaying it on the same state gives the same result everywhere.
 * Only messages whose flags really change get the new MODSEQ.
 */
#include <string.h>
#include <strings.h>

#include "storage/mailbox_internal.h"

int mailbox_keywords_check(const char *const *names, size_t n, const char **error_r)
{
	for (size_t i = 0; i < n; i++)
		if (names == NULL || names[i] == NULL || !index_keyword_valid(names[i], strlen(names[i])))
			return store_fail(error_r, STORE_E_INVALID, "invalid keyword \"%s\"",
					  names == NULL || names[i] == NULL ? "" : names[i]);
	return 0;
}

static int define_keyword(struct mailbox *box, const char *name, const char **error_r)
{
	struct index_view *v = box->view;
	if (v->state.keywords >= MAILBOX_KEYWORDS_MAX)
		return store_fail(error_r, STORE_E_LIMIT, "no room for keyword %s (%d per mailbox)",
				  name, MAILBOX_KEYWORDS_MAX);
	size_t len = strlen(name);
	textbuf_truncate(&box->buf, 0);
	size_t start = index_rec_begin(&box->buf);
	index_put_u32(&box->buf, v->state.keywords);
	index_put_u32(&box->buf, (uint32_t)len);
	index_put_bytes_padded(&box->buf, name, len);
	return index_view_write(v, &box->buf, start, INDEX_REC_KEYWORD, 0, 1, 0, NULL, error_r);
}

int mailbox_keywords_mask(struct mailbox *box, const char *const *names, size_t n, bool define,
			  uint64_t *mask_r, const char **error_r)
{
	uint64_t mask = 0;
	int ret = mailbox_keywords_check(names, n, error_r);
	if (ret < 0)
		return ret;
	/* Refuse before defining anything when they cannot all fit. */
	unsigned missing = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= strcasecmp(names[i], names[j]) == 0;
		missing += !dup && index_keyword_lookup(box->view, names[i]) < 0;
	}
	if (define && box->view->state.keywords + missing > MAILBOX_KEYWORDS_MAX)
		return store_fail(error_r, STORE_E_LIMIT, "no room for %u more keywords (%d per mailbox)",
				  missing, MAILBOX_KEYWORDS_MAX);
	for (size_t i = 0; i < n; i++) {
		int idx = index_keyword_lookup(box->view, names[i]);
		if (idx < 0 && define) {
			if ((ret = define_keyword(box, names[i], error_r)) < 0)
				return ret;
			idx = index_keyword_lookup(box->view, names[i]);
		}
		if (idx >= 0)
			mask |= (uint64_t)1 << idx;
	}
	*mask_r = mask;
	return 0;
}

static void flags_result(const struct mail_record *m, const struct mail_flags_update *upd,
			 uint64_t kw, uint32_t *flags_r, uint64_t *kw_r)
{
	uint32_t old = m->flags & MAIL_FLAGS_MASK;
	*flags_r = old;
	*kw_r = m->keywords;
	switch (upd->op) {
	case MAIL_FLAGS_REPLACE:
		*flags_r = upd->flags;
		*kw_r = kw;
		break;
	case MAIL_FLAGS_ADD:
		*flags_r = old | upd->flags;
		*kw_r = m->keywords | kw;
		break;
	case MAIL_FLAGS_REMOVE:
		*flags_r = old & ~upd->flags;
		*kw_r = m->keywords & ~kw;
		break;
	}
}

/* Under the lock: which of uids change, which fail UNCHANGEDSINCE. */
static void store_select(struct index_view *v, const struct uidset *uids,
			 const struct mail_flags_update *upd, uint64_t kw, struct uidset *apply,
			 struct uidset *failed_r)
{
	for (size_t r = 0; r < uids->n; r++) {
		for (size_t i = index_lower_bound(v, uids->r[r].first);
		     i < v->n_recs && v->recs[i].uid <= uids->r[r].last; i++) {
			const struct mail_record *m = &v->recs[i];
			if (upd->conditional && m->modseq > upd->unchanged_since) {
				if (failed_r != NULL)
					uidset_add(failed_r, m->uid);
				continue;
			}
			uint32_t nf;
			uint64_t nk;
			flags_result(m, upd, kw, &nf, &nk);
			if (nf != (m->flags & MAIL_FLAGS_MASK) || nk != m->keywords)
				uidset_add(apply, m->uid);
		}
	}
}

int mailbox_store(struct mailbox *box, const struct uidset *uids,
		  const struct mail_flags_update *upd, struct uidset *failed_r, uint64_t *modseq_r,
		  const char **error_r)
{
	if (modseq_r != NULL)
		*modseq_r = 0;
	if (!box->view->full)
		return store_fail(error_r, STORE_E_INVALID, "STORE needs a full view");
	if (upd->flags & ~(uint32_t)MAIL_FLAGS_MASK || upd->op > MAIL_FLAGS_REMOVE)
		return store_fail(error_r, STORE_E_INVALID, "unknown flags 0x%x", upd->flags);
	int ret = mailbox_keywords_check(upd->keywords, upd->n_keywords, error_r);
	if (ret < 0 || (ret = index_view_lock(box->view, error_r)) < 0)
		return ret;
	struct index_view *v = box->view;
	uint64_t pos0 = v->log_pos;
	uint64_t kw = 0;
	struct uidset apply = UIDSET_INIT;
	ret = mailbox_keywords_mask(box, upd->keywords, upd->n_keywords,
				    upd->op != MAIL_FLAGS_REMOVE, &kw, error_r);
	if (ret == 0)
		store_select(v, uids, upd, kw, &apply, failed_r);
	if (ret == 0 && !uidset_empty(&apply)) {
		uint64_t modseq = v->state.highestmodseq + 1;
		textbuf_truncate(&box->buf, 0);
		size_t start = index_rec_begin(&box->buf);
		index_put_u32(&box->buf, (uint32_t)upd->op);
		index_put_u32(&box->buf, upd->flags);
		index_put_u64(&box->buf, kw);
		for (size_t r = 0; r < apply.n; r++)
			index_put_range(&box->buf, apply.r[r].first, apply.r[r].last);
		ret = index_view_write(v, &box->buf, start, INDEX_REC_FLAGS, 0, (uint32_t)apply.n, modseq,
				       NULL, error_r);
		if (ret == 0 && modseq_r != NULL)
			*modseq_r = modseq;
	}
	index_view_unlock(v);
	/* Keyword definitions alone are writes too. */
	if (ret == 0 && v->log_pos != pos0)
		ret = mailbox_durable(box, error_r);
	uidset_free(&apply);
	return ret;
}
