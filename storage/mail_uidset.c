/*
 * mail_uidset: sorted disjoint UID ranges (see mail_uidset.h).
 */
#include "storage/mail_uidset.h"

#include <stdlib.h>
#include <string.h>

static void uidset_reserve(struct uidset *s, size_t extra)
{
	if (s->n + extra <= s->cap)
		return;
	size_t cap = s->cap ? s->cap : 8;
	while (cap < s->n + extra)
		cap *= 2;
	struct uid_range *r = realloc(s->r, cap * sizeof(*r));
	if (r == NULL)
		abort();
	s->r = r;
	s->cap = cap;
}

/* Index of the first range whose last >= uid (n if none). */
static size_t uidset_find(const struct uidset *s, uint32_t uid)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].last < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void uidset_add_range(struct uidset *s, uint32_t first, uint32_t last)
{
	if (first == 0)
		first = 1;
	if (last < first)
		return;
	/* Fast path: ascending additions extend or follow the last range. */
	if (s->n > 0 && first > s->r[s->n - 1].last) {
		struct uid_range *tail = &s->r[s->n - 1];
		if (tail->last != UINT32_MAX && first == tail->last + 1) {
			tail->last = last;
			return;
		}
		uidset_reserve(s, 1);
		s->r[s->n].first = first;
		s->r[s->n].last = last;
		s->n++;
		return;
	}
	/* General case: merge every range touching [first-1, last+1]. */
	uint32_t lo_key = first > 1 ? first - 1 : 1;
	size_t i = uidset_find(s, lo_key);
	size_t j = i;
	while (j < s->n && (last == UINT32_MAX || s->r[j].first <= last + 1)) {
		if (s->r[j].first < first)
			first = s->r[j].first;
		if (s->r[j].last > last)
			last = s->r[j].last;
		j++;
	}
	if (j == i) {
		uidset_reserve(s, 1);
		memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
		s->n++;
	} else if (j > i + 1) {
		memmove(&s->r[i + 1], &s->r[j], (s->n - j) * sizeof(s->r[0]));
		s->n -= j - i - 1;
	}
	s->r[i].first = first;
	s->r[i].last = last;
}

void uidset_add(struct uidset *s, uint32_t uid)
{
	uidset_add_range(s, uid, uid);
}

void uidset_remove(struct uidset *s, uint32_t uid)
{
	size_t i = uidset_find(s, uid);
	if (i == s->n || s->r[i].first > uid)
		return;
	struct uid_range *r = &s->r[i];
	if (r->first == uid && r->last == uid) {
		memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(s->r[0]));
		s->n--;
	} else if (r->first == uid) {
		r->first++;
	} else if (r->last == uid) {
		r->last--;
	} else {
		uint32_t last = r->last;
		r->last = uid - 1;
		uidset_reserve(s, 1);
		memmove(&s->r[i + 2], &s->r[i + 1], (s->n - i - 1) * sizeof(s->r[0]));
		s->r[i + 1].first = uid + 1;
		s->r[i + 1].last = last;
		s->n++;
	}
}

bool uidset_contains(const struct uidset *s, uint32_t uid)
{
	size_t i = uidset_find(s, uid);
	return i < s->n && s->r[i].first <= uid;
}

uint64_t uidset_count(const struct uidset *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += (uint64_t)s->r[i].last - s->r[i].first + 1;
	return n;
}

bool uidset_empty(const struct uidset *s)
{
	return s->n == 0;
}

void uidset_clear(struct uidset *s)
{
	s->n = 0;
}

void uidset_free(struct uidset *s)
{
	free(s->r);
	s->r = NULL;
	s->n = s->cap = 0;
}

void uidset_copy(struct uidset *dst, const struct uidset *src)
{
	dst->n = 0;
	uidset_reserve(dst, src->n);
	if (src->n > 0)
		memcpy(dst->r, src->r, src->n * sizeof(src->r[0]));
	dst->n = src->n;
}

void uidset_format(const struct uidset *s, struct textbuf *out)
{
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0)
			textbuf_putc(out, ',');
		if (s->r[i].first == s->r[i].last)
			textbuf_printf(out, "%u", s->r[i].first);
		else
			textbuf_printf(out, "%u:%u", s->r[i].first, s->r[i].last);
	}
}

static int uidset_parse_number(const char **p, uint32_t *n_r)
{
	uint64_t n = 0;
	if (**p < '0' || **p > '9')
		return -1;
	while (**p >= '0' && **p <= '9') {
		n = n * 10 + (uint64_t)(**p - '0');
		if (n > UINT32_MAX)
			return -1;
		(*p)++;
	}
	if (n == 0)
		return -1;
	*n_r = (uint32_t)n;
	return 0;
}

int uidset_parse(struct uidset *s, const char *text)
{
	const char *p = text;
	for (;;) {
		uint32_t a, b;
		if (uidset_parse_number(&p, &a) < 0)
			return -1;
		b = a;
		if (*p == ':') {
			p++;
			if (uidset_parse_number(&p, &b) < 0)
				return -1;
		}
		if (a <= b)
			uidset_add_range(s, a, b);
		else
			uidset_add_range(s, b, a);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return -1;
		p++;
	}
}

uint32_t uidset_first(const struct uidset *s, struct uidset_iter *it)
{
	it->i = 0;
	if (s->n == 0)
		return 0;
	it->next = s->r[0].first;
	return uidset_next(s, it);
}

uint32_t uidset_next(const struct uidset *s, struct uidset_iter *it)
{
	if (it->i >= s->n)
		return 0;
	uint32_t uid = it->next;
	if (uid == s->r[it->i].last) {
		it->i++;
		if (it->i < s->n)
			it->next = s->r[it->i].first;
	} else {
		it->next = uid + 1;
	}
	return uid;
}
