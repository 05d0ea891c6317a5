/*
 * strvec: a growable array of strings it owns (copies), for collecting
 * names (directory entries, ids) before sorting and walking them.
 * Allocation failure aborts, as everywhere in clustermail.
 */
#ifndef CM_LIB_STRVEC_H
#define CM_LIB_STRVEC_H

#include <stddef.h>

struct strvec {
	char **v;
	size_t n, cap;
};

#define STRVEC_INIT { NULL, 0, 0 }

/* Appends a copy of s. */
void strvec_push(struct strvec *sv, const char *s);
/* Sorts with cmp (qsort's, given pointers to the char * elements), or in
 * byte order (strcmp) when cmp is NULL. */
void strvec_sort(struct strvec *sv, int (*cmp)(const void *, const void *));
/* Frees the strings and the array; sv is empty and reusable after. */
void strvec_free(struct strvec *sv);

#endif
