/*
 * mail_uidset: a set of message UIDs kept as sorted, disjoint, non-adjacent
 * ranges; what IMAP sequence sets become once the engine has mapped them
 * to UIDs, and what the store returns for COPYUID, VANISHED and
 * UNCHANGEDSINCE failures. Adding in ascending order is O(1); adding out
 * of order costs a binary search and a move. UID 0 is never a member.
 * Allocation failure aborts (as lib/textbuf).
 */
#ifndef CM_STORAGE_MAIL_UIDSET_H
#define CM_STORAGE_MAIL_UIDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"

struct uid_range {
	uint32_t first, last; /* inclusive, first <= last */
};

struct uidset {
	struct uid_range *r;
	size_t n, cap;
};

#define UIDSET_INIT { NULL, 0, 0 }

void uidset_add(struct uidset *s, uint32_t uid);
void uidset_add_range(struct uidset *s, uint32_t first, uint32_t last);
void uidset_remove(struct uidset *s, uint32_t uid);
bool uidset_contains(const struct uidset *s, uint32_t uid);
uint64_t uidset_count(const struct uidset *s);
bool uidset_empty(const struct uidset *s);
void uidset_clear(struct uidset *s);
void uidset_free(struct uidset *s);
void uidset_copy(struct uidset *dst, const struct uidset *src);
/* Appends the IMAP form ("1:3,7,9:12") to out; "" for the empty set. */
void uidset_format(const struct uidset *s, struct textbuf *out);
/* Parses the IMAP form of UIDs (no '*'); 0 or -1 on junk. */
int uidset_parse(struct uidset *s, const char *text);

/* Iteration: for (uint32_t u = uidset_first(s, &it); u; u = uidset_next(s, &it)) */
struct uidset_iter {
	size_t i;
	uint32_t next;
};
uint32_t uidset_first(const struct uidset *s, struct uidset_iter *it);
uint32_t uidset_next(const struct uidset *s, struct uidset_iter *it);

#endif
