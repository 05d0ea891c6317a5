/*
 * index_reload: rebuilding a view from disk while keeping what the
 * session has been told. Used when a rotation overtook the view, when fsck
 * replaced the index (ROTATE with RESET), and after a failed write left
 * the view ahead of the disk. The old and new records are compared UID by
 * UID; the differences become pending expunges, appends and flag changes,
 * so the next mailbox_sync reports exactly what changed.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/index_view.h"
#include "storage/store_internal.h"

static bool record_differs(const struct mail_record *a, const struct mail_record *b)
{
	return (a->flags & MAIL_FLAGS_MASK) != (b->flags & MAIL_FLAGS_MASK) ||
	       a->keywords != b->keywords || a->modseq != b->modseq;
}

static void note_expunged(struct index_view *nv, uint32_t uid)
{
	uidset_remove(&nv->pend_chg, uid);
	if (uidset_contains(&nv->pend_app, uid))
		uidset_remove(&nv->pend_app, uid);
	else
		uidset_add(&nv->pend_exp, uid);
}

/* Carries the old view's untold changes over and adds the differences. */
static void diff_views(const struct index_view *old, struct index_view *nv)
{
	uidset_copy(&nv->pend_app, &old->pend_app);
	uidset_copy(&nv->pend_chg, &old->pend_chg);
	uidset_copy(&nv->pend_exp, &old->pend_exp);
	size_t i = 0, j = 0;
	while (i < old->n_recs || j < nv->n_recs) {
		const struct mail_record *a = i < old->n_recs ? &old->recs[i] : NULL;
		struct mail_record *b = j < nv->n_recs ? &nv->recs[j] : NULL;
		if (a != NULL && (a->flags & INDEX_DEAD)) {
			i++;
			continue;
		}
		if (b == NULL || (a != NULL && a->uid < b->uid)) {
			note_expunged(nv, a->uid);
			i++;
		} else if (a == NULL || b->uid < a->uid) {
			uidset_add(&nv->pend_app, b->uid);
			j++;
		} else {
			b->flags |= a->flags & MAIL_RECENT;
			if (record_differs(a, b))
				uidset_add(&nv->pend_chg, b->uid);
			i++;
			j++;
		}
	}
}

int index_view_reload(struct index_view *v, const char **error_r)
{
	struct index_view *nv = malloc(sizeof(*nv));
	if (nv == NULL)
		abort();
	index_view_init_like(nv, v);
	int ret = index_load(nv, error_r);
	if (ret == 0 && nv->uidvalidity != v->uidvalidity)
		ret = store_fail(error_r, STORE_E_CORRUPT,
				 "the mailbox was rebuilt with a new UIDVALIDITY (%u, was %u)",
				 nv->uidvalidity, v->uidvalidity);
	if (ret < 0) {
		if (nv->log_fd >= 0)
			close(nv->log_fd);
		index_view_clear(nv);
		free(nv);
		v->broken = true;
		return ret;
	}
	if (v->full)
		diff_views(v, nv);
	nv->locked = v->locked;
	nv->torn_bytes = v->torn_bytes;
	if (v->log_fd >= 0)
		close(v->log_fd);
	index_view_clear(v);
	*v = *nv;
	free(nv);
	if (v->deleted)
		return store_fail(error_r, STORE_E_NOTFOUND, "the mailbox was deleted");
	return 0;
}
