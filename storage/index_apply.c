/*
 * index_apply: applies index records to a view's in-memory state. Pure
 * (no I/O), so the fuzz harness drives it with arbitrary bytes: every
 * record is checked against the state it applies to (UIDs only grow,
 * MODSEQs only grow, keyword bits name defined keywords) and, when
 * verifying, the state it produces must equal the state block the writer
 * recorded. Any mismatch is CORRUPT, never a crash.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "storage/index_view.h"
#include "storage/store_internal.h"

void index_view_init(struct index_view *v, bool full)
{
	memset(v, 0, sizeof(*v));
	v->full = full;
	v->dir_fd = -1;
	v->log_fd = -1;
	v->state.uidnext = 1;
	v->state.first_recent_uid = 1;
	v->state.highestmodseq = 1;
}

void index_view_init_like(struct index_view *nv, const struct index_view *v)
{
	index_view_init(nv, v->full);
	nv->store = v->store;
	nv->dir_fd = v->dir_fd;
	nv->lock = v->lock;
	nv->dry_run = v->dry_run;
	nv->quota_user = v->quota_user;
}

void index_view_clear(struct index_view *v)
{
	free(v->recs);
	v->recs = NULL;
	v->n_recs = v->cap_recs = v->n_dead = 0;
	for (unsigned i = 0; i < MAILBOX_KEYWORDS_MAX; i++) {
		free(v->keywords[i]);
		v->keywords[i] = NULL;
	}
	free(v->van);
	v->van = NULL;
	v->n_van = v->cap_van = 0;
	free(v->absorb);
	v->absorb = NULL;
	v->n_absorb = v->cap_absorb = 0;
	uidset_free(&v->pend_app);
	uidset_free(&v->pend_chg);
	uidset_free(&v->pend_exp);
	textbuf_free(&v->readbuf);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * elem);
	if (q == NULL)
		abort();
	*cap = c;
	return q;
}

size_t index_lower_bound(const struct index_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n_recs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->recs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct mail_record *index_find(const struct index_view *v, uint32_t uid)
{
	size_t i = index_lower_bound(v, uid);
	if (i < v->n_recs && v->recs[i].uid == uid && !(v->recs[i].flags & INDEX_DEAD))
		return &v->recs[i];
	return NULL;
}

void index_compact(struct index_view *v)
{
	if (v->n_dead == 0)
		return;
	size_t j = 0;
	for (size_t i = 0; i < v->n_recs; i++)
		if (!(v->recs[i].flags & INDEX_DEAD))
			v->recs[j++] = v->recs[i];
	v->n_recs = j;
	v->n_dead = 0;
}

int index_keyword_lookup(const struct index_view *v, const char *name)
{
	for (unsigned i = 0; i < v->state.keywords && i < MAILBOX_KEYWORDS_MAX; i++)
		if (v->keywords[i] != NULL && strcasecmp(v->keywords[i], name) == 0)
			return (int)i;
	return -1;
}

bool index_absorb_contains(const struct index_view *v, const uint8_t guid[16])
{
	for (size_t i = 0; i < v->n_absorb; i++)
		if (memcmp(v->absorb[i], guid, 16) == 0)
			return true;
	return false;
}

static void absorb_add(struct index_view *v, const uint8_t guid[16])
{
	v->absorb = grow(v->absorb, &v->cap_absorb, v->n_absorb + 1, 16);
	memcpy(v->absorb[v->n_absorb++], guid, 16);
}

static uint64_t kw_mask(uint32_t n)
{
	return n >= 64 ? UINT64_MAX : ((uint64_t)1 << n) - 1;
}

static void count_msg(struct index_state *st, const struct mail_record *m, int sign)
{
	uint32_t d = sign > 0 ? 1u : (uint32_t)-1;
	st->messages += d;
	if (!(m->flags & MAIL_SEEN))
		st->unseen += d;
	if (m->flags & MAIL_DELETED)
		st->deleted += d;
	if (m->uid >= st->first_recent_uid)
		st->recent += d;
	st->bytes += sign > 0 ? m->size : (uint64_t)0 - m->size;
}

static int apply_append(struct index_view *v, const struct index_rec *rec, struct index_state *st,
			const char **error_r)
{
	if (rec->count == 0) {
		if (!(rec->flags & INDEX_APPEND_ABSORBED) || rec->modseq != 0)
			return store_fail(error_r, STORE_E_CORRUPT, "empty append record");
	} else if (rec->modseq <= st->highestmodseq) {
		return store_fail(error_r, STORE_E_CORRUPT, "append MODSEQ %llu not above %llu",
				  (unsigned long long)rec->modseq,
				  (unsigned long long)st->highestmodseq);
	}
	if (v->full)
		v->recs = grow(v->recs, &v->cap_recs, v->n_recs + rec->count, sizeof(*v->recs));
	for (uint32_t i = 0; i < rec->count; i++) {
		struct mail_record m;
		index_rec_msg(rec, i, &m);
		if (m.uid < st->uidnext || m.modseq != rec->modseq || (m.keywords & ~kw_mask(st->keywords)))
			return store_fail(error_r, STORE_E_CORRUPT, "bad appended message UID %u", m.uid);
		count_msg(st, &m, 1);
		st->uidnext = m.uid + 1;
		if (st->uidnext == 0)
			return store_fail(error_r, STORE_E_CORRUPT, "UID space exhausted");
		if (v->full) {
			v->recs[v->n_recs++] = m;
			uidset_add(&v->pend_app, m.uid);
		}
	}
	if (rec->count > 0)
		st->highestmodseq = rec->modseq;
	if (rec->flags & INDEX_APPEND_ABSORBED) {
		v->n_absorb = 0;
		for (uint32_t i = 0; i < rec->count; i++) {
			struct mail_record m;
			index_rec_msg(rec, i, &m);
			absorb_add(v, m.guid);
		}
		for (uint32_t i = 0; i < index_rec_carry_count(rec); i++)
			absorb_add(v, index_rec_carry_guid(rec, i));
	}
	return 0;
}

static int apply_flags(struct index_view *v, const struct index_rec *rec, struct index_state *st,
		       const char **error_r)
{
	struct index_flags_payload fp;
	index_rec_flags(rec, &fp);
	if (fp.keywords & ~kw_mask(st->keywords))
		return store_fail(error_r, STORE_E_CORRUPT, "flag record names undefined keywords");
	for (uint32_t r = 0; r < rec->count; r++) {
		struct uid_range range = index_rec_range(rec, r);
		for (size_t i = index_lower_bound(v, range.first);
		     i < v->n_recs && v->recs[i].uid <= range.last; i++) {
			struct mail_record *m = &v->recs[i];
			if (m->flags & INDEX_DEAD)
				continue;
			uint32_t nf = fp.flags;
			uint64_t nk = fp.keywords;
			if (fp.op == MAIL_FLAGS_ADD) {
				nf |= m->flags & MAIL_FLAGS_MASK;
				nk |= m->keywords;
			} else if (fp.op == MAIL_FLAGS_REMOVE) {
				nf = m->flags & MAIL_FLAGS_MASK & ~fp.flags;
				nk = m->keywords & ~fp.keywords;
			}
			if (nf == (m->flags & MAIL_FLAGS_MASK) && nk == m->keywords)
				continue;
			count_msg(st, m, -1);
			m->flags = nf | (m->flags & MAIL_RECENT);
			m->keywords = nk;
			m->modseq = rec->modseq;
			count_msg(st, m, 1);
			uidset_add(&v->pend_chg, m->uid);
		}
	}
	return 0;
}

static void vanished_add(struct index_view *v, uint32_t first, uint32_t last, uint64_t modseq)
{
	if (v->n_van >= 2 * INDEX_VANISHED_MAX) {
		size_t drop = v->n_van - INDEX_VANISHED_MAX;
		for (size_t i = 0; i < drop; i++)
			if (v->van[i].modseq > v->van_floor)
				v->van_floor = v->van[i].modseq;
		memmove(v->van, v->van + drop, (v->n_van - drop) * sizeof(*v->van));
		v->n_van -= drop;
	}
	v->van = grow(v->van, &v->cap_van, v->n_van + 1, sizeof(*v->van));
	v->van[v->n_van].first = first;
	v->van[v->n_van].last = last;
	v->van[v->n_van].modseq = modseq;
	v->n_van++;
}

static void apply_expunge(struct index_view *v, const struct index_rec *rec, struct index_state *st)
{
	for (uint32_t r = 0; r < rec->count; r++) {
		struct uid_range range = index_rec_range(rec, r);
		vanished_add(v, range.first, range.last, rec->modseq);
		for (size_t i = index_lower_bound(v, range.first);
		     i < v->n_recs && v->recs[i].uid <= range.last; i++) {
			struct mail_record *m = &v->recs[i];
			if (m->flags & INDEX_DEAD)
				continue;
			count_msg(st, m, -1);
			m->flags |= INDEX_DEAD;
			v->n_dead++;
			uidset_remove(&v->pend_chg, m->uid);
			if (uidset_contains(&v->pend_app, m->uid))
				uidset_remove(&v->pend_app, m->uid);
			else
				uidset_add(&v->pend_exp, m->uid);
		}
	}
}

static int apply_keyword(struct index_view *v, const struct index_rec *rec, struct index_state *st,
			 const char **error_r)
{
	uint32_t idx;
	const char *name;
	size_t len;
	index_rec_keyword(rec, &idx, &name, &len);
	char buf[MAILBOX_KEYWORD_LEN_MAX + 1];
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (idx != st->keywords || idx >= MAILBOX_KEYWORDS_MAX || index_keyword_lookup(v, buf) >= 0)
		return store_fail(error_r, STORE_E_CORRUPT, "bad keyword definition %u", idx);
	v->keywords[idx] = strdup(buf);
	if (v->keywords[idx] == NULL)
		abort();
	st->keywords++;
	return 0;
}

static void apply_recent(struct index_view *v, struct index_state *st, uint32_t first_recent)
{
	st->first_recent_uid = first_recent;
	st->recent = 0;
	for (size_t i = index_lower_bound(v, first_recent); i < v->n_recs; i++)
		if (!(v->recs[i].flags & INDEX_DEAD))
			st->recent++;
}

static bool state_equal(const struct index_state *a, const struct index_state *b)
{
	return a->uidnext == b->uidnext && a->messages == b->messages && a->unseen == b->unseen &&
	       a->recent == b->recent && a->first_recent_uid == b->first_recent_uid &&
	       a->deleted == b->deleted && a->highestmodseq == b->highestmodseq &&
	       a->bytes == b->bytes && a->keywords == b->keywords;
}

int index_apply(struct index_view *v, const struct index_rec *rec, bool verify,
		const char **error_r)
{
	struct index_state st = v->state;
	bool computed = true; /* false: a light view adopts the record's state */
	int ret = 0;

	if (v->deleted)
		return store_fail(error_r, STORE_E_CORRUPT, "record after mailbox deletion");
	bool needs_modseq = rec->type == INDEX_REC_FLAGS || rec->type == INDEX_REC_EXPUNGE;
	if (needs_modseq && rec->modseq <= st.highestmodseq)
		return store_fail(error_r, STORE_E_CORRUPT, "MODSEQ %llu not above %llu",
				  (unsigned long long)rec->modseq,
				  (unsigned long long)st.highestmodseq);
	if (!needs_modseq && rec->type != INDEX_REC_APPEND && rec->modseq != 0)
		return store_fail(error_r, STORE_E_CORRUPT, "unexpected MODSEQ in record");

	switch (rec->type) {
	case INDEX_REC_APPEND:
		ret = apply_append(v, rec, &st, error_r);
		break;
	case INDEX_REC_FLAGS:
		if (v->full)
			ret = apply_flags(v, rec, &st, error_r);
		computed = v->full;
		st.highestmodseq = rec->modseq;
		break;
	case INDEX_REC_EXPUNGE:
		if (v->full)
			apply_expunge(v, rec, &st);
		computed = v->full;
		st.highestmodseq = rec->modseq;
		break;
	case INDEX_REC_KEYWORD:
		ret = apply_keyword(v, rec, &st, error_r);
		break;
	case INDEX_REC_RECENT: {
		uint32_t first = rec->state.first_recent_uid;
		if (first < st.first_recent_uid || first > st.uidnext)
			return store_fail(error_r, STORE_E_CORRUPT, "bad \\Recent claim %u", first);
		if (v->full)
			apply_recent(v, &st, first);
		computed = v->full;
		st.first_recent_uid = first;
		break;
	}
	case INDEX_REC_ROTATE:
		break;
	case INDEX_REC_DELETED:
		v->deleted = true;
		break;
	default:
		return store_fail(error_r, STORE_E_CORRUPT, "unknown record type %u", rec->type);
	}
	if (ret < 0)
		return ret;
	if (!verify) {
		if (!computed)
			return store_fail(error_r, STORE_E_CORRUPT, "light view cannot write type %u",
					  rec->type);
		v->state = st;
		return 0;
	}
	if (computed ? !state_equal(&st, &rec->state)
		     : (rec->state.uidnext != st.uidnext || rec->state.keywords != st.keywords ||
			rec->state.highestmodseq != st.highestmodseq ||
			rec->state.first_recent_uid != st.first_recent_uid))
		return store_fail(error_r, STORE_E_CORRUPT,
				  "index state mismatch after record type %u (messages %u vs %u)",
				  rec->type, st.messages, rec->state.messages);
	v->state = rec->state;
	return 0;
}

int index_load_snapshot(struct index_view *v, const struct index_snap *snap, const char **error_r)
{
	struct index_state st = snap->state;
	v->state = st;
	v->uidvalidity = snap->uidvalidity;
	const char *p = (const char *)snap->keywords;
	for (uint32_t i = 0; i < st.keywords; i++) {
		v->keywords[i] = strdup(p);
		if (v->keywords[i] == NULL)
			abort();
		p += strlen(p) + 1;
	}
	for (uint32_t i = 0; i < snap->absorb_count; i++)
		absorb_add(v, snap->absorb + (size_t)i * 16);
	if (!v->full)
		return 0;
	v->recs = grow(v->recs, &v->cap_recs, snap->record_count, sizeof(*v->recs));
	struct index_state count = st;
	count.messages = count.unseen = count.deleted = count.recent = 0;
	count.bytes = 0;
	uint32_t prev = 0;
	struct index_rec fake = { .payload = snap->records };
	for (uint32_t i = 0; i < snap->record_count; i++) {
		struct mail_record *m = &v->recs[i];
		index_rec_msg(&fake, i, m);
		if (m->uid <= prev || m->uid >= st.uidnext || (m->flags & ~(uint32_t)MAIL_FLAGS_MASK) ||
		    (m->keywords & ~kw_mask(st.keywords)) || m->modseq > st.highestmodseq)
			return store_fail(error_r, STORE_E_CORRUPT, "bad snapshot record %u", i);
		prev = m->uid;
		count_msg(&count, m, 1);
	}
	v->n_recs = snap->record_count;
	if (!state_equal(&count, &st))
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot counters do not match its records");
	for (uint32_t i = 0; i < snap->vanished_count; i++) {
		uint32_t first, last;
		uint64_t modseq;
		index_snap_vanished(snap, i, &first, &last, &modseq);
		if (first == 0 || first > last || modseq > st.highestmodseq)
			return store_fail(error_r, STORE_E_CORRUPT, "bad snapshot vanished entry");
		vanished_add(v, first, last, modseq);
	}
	v->van_floor = snap->vanished_floor;
	return 0;
}
