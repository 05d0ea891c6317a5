/*
 * store_fsck_internal: what storage/store_fsck*.c share: the walk's
 * context, problem reporting, and the message-file scan that both the
 * checker and the index rebuild use.
 */
#ifndef CM_STORAGE_STORE_FSCK_INTERNAL_H
#define CM_STORAGE_STORE_FSCK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "storage/store_internal.h"

struct fsck {
	struct store *store;
	bool repair;
	const struct store_fsck_callbacks *cb;
	const char *address;           /* the user being checked */
	int problems;
	uint64_t bytes, messages;      /* the user's usage, summed over mailboxes */
	int *box_fds;                  /* the user's .box directories, for the recount */
	size_t n_boxes, cap_boxes;
	bool uncountable;              /* a mailbox's index could not be read (no repair) */
};

struct fsck_file {
	uint32_t uid;
	uint64_t size;
	int64_t mtime;
	ino_t ino;
};

struct fsck_files {
	struct fsck_file *f;           /* sorted by UID after the scan */
	size_t n, cap;
	uint32_t *caches;              /* UIDs that have a cache blob */
	size_t n_caches, cap_caches;
};

void fsck_problem(struct fsck *fk, const char *mailbox, enum store_fsck_problem p, bool repaired,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Lists msg/<bucket>/ of a mailbox: message files and cache blobs;
 * temporary leftovers and names the store never writes are reported
 * (and leftovers removed when repairing). */
int fsck_scan_messages(struct fsck *fk, const char *mailbox, int msg_fd, struct fsck_files *files,
		       const char **error_r);
const struct fsck_file *fsck_files_find(const struct fsck_files *files, uint32_t uid);
void fsck_files_free(struct fsck_files *files);

/* Checks one mailbox (its .box directory); repairs when fk->repair. */
int fsck_mailbox(struct fsck *fk, struct store_user *user, const char *name, int level_fd,
		 const char **error_r);

/* Rebuilds the index of the mailbox in box_fd from what can be salvaged
 * of it and from its message files; the index lock is held.
 * *new_uidvalidity_r tells whether records had to be given up. */
int fsck_rebuild(struct fsck *fk, struct store_user *user, int box_fd,
		 const struct fsck_files *files, bool *new_uidvalidity_r, const char **error_r);

/* store_fsck_quota.c: remembers a mailbox for the recount (dups box_fd);
 * forgets them all. */
void fsck_boxes_add(struct fsck *fk, int box_fd);
void fsck_boxes_clear(struct fsck *fk);
/* The exact recount of u's usage (hierarchy lock held), compared with and
 * (repairing) written to the counters. */
int fsck_quota_recount(struct fsck *fk, struct store_user *u, const char **error_r);

#endif
