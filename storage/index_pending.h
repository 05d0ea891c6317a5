/*
 * index_pending: helping PENDING APPEND records past (storage/index_pending.c
 * says why they exist and why helping is safe).
 *
 *   index_pending_help     under the index lock, for the records in
 *                          [from, to) of the view's current log: fsync the
 *                          files of every unresolved PENDING record, note
 *                          it for resolving, and collect in dropped the
 *                          UIDs whose file is missing or short. 0 or TEMP.
 *   index_pending_drop     under the lock, in a full view: one EXPUNGE
 *                          record for the dropped UIDs still in the view
 *                          (none: nothing), and their bytes and count, for
 *                          the caller to give back to the quota.
 *   index_pending_resolve  after the drop (if any) is durable and marked
 *                          synced: writes the resolve words.
 *   index_rec_resolve      one resolve word (the writer, after its round).
 */
#ifndef CM_STORAGE_INDEX_PENDING_H
#define CM_STORAGE_INDEX_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/index_view.h"
#include "storage/mail_uidset.h"

#define INDEX_PENDING_INIT { -1, NULL, 0, 0, UIDSET_INIT }

struct index_pending {
	int log_fd;                /* the log they are in (a rotation may move the view on) */
	struct index_pending_rec {
		uint64_t off;
		uint32_t size;
	} *recs;                   /* records to resolve */
	size_t n, cap;
	struct uidset dropped;     /* UIDs whose file did not survive */
};

int index_pending_help(struct index_view *v, uint64_t from, uint64_t to, struct index_pending *p,
		       const char **error_r);
int index_pending_drop(struct index_view *v, struct index_pending *p, struct textbuf *buf,
		       uint64_t *bytes_r, uint64_t *count_r, const char **error_r);
/* The records are in p's log, wherever the view is now. */
int index_pending_resolve(const struct index_pending *p, const char **error_r);
/* A reader has been stopped at the same unresolved record this long: its
 * writer (whose round takes milliseconds) is dead or stuck, so the
 * session helps (index_view_settle) rather than wait for an open. */
#define INDEX_PENDING_STUCK_SECS 2
bool index_pending_stuck(const struct index_view *v);
int index_rec_resolve(int log_fd, uint64_t off, uint32_t size, const char **error_r);
void index_pending_free(struct index_pending *p);

#endif
