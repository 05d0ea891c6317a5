/*
 * strvec: see strvec.h.
 */
#include "lib/strvec.h"

#include <stdlib.h>
#include <string.h>

void strvec_push(struct strvec *sv, const char *s)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		char **grown = realloc(sv->v, cap * sizeof(*grown));
		if (grown == NULL)
			abort();
		sv->v = grown;
		sv->cap = cap;
	}
	if ((sv->v[sv->n] = strdup(s)) == NULL)
		abort();
	sv->n++;
}

static int compare(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void strvec_sort(struct strvec *sv, int (*cmp)(const void *, const void *))
{
	if (sv->n > 1) /* qsort on NULL with 0 elements is undefined */
		qsort(sv->v, sv->n, sizeof(*sv->v), cmp != NULL ? cmp : compare);
}

void strvec_free(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	*sv = (struct strvec)STRVEC_INIT;
}
