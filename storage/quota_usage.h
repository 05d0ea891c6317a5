/*
 * quota_usage: the per-user counters file <user>/counters (64 bytes:
 * magic, bytes used, messages, the last UIDVALIDITY handed out, CRC-32C)
 * and quota enforcement.
 *
 * Usage is kept incrementally: deliveries and appends add to it (after
 * checking the limit) before their message becomes visible, expunges and
 * deletions subtract after their record is durable. Every change is a
 * read-modify-write under the user's counters lock; the file is rewritten
 * in place (one 64-byte pwrite) and not fsync'd, because a crash can only
 * leave it off by the operations in flight, and store_fsck recomputes it
 * from the mailboxes. Readers without the lock retry a torn read.
 */
#ifndef CM_STORAGE_QUOTA_USAGE_H
#define CM_STORAGE_QUOTA_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/store.h"

struct quota_counters {
	uint64_t bytes;
	uint64_t messages;
	uint32_t last_uidvalidity;
};

/* Reads <user>/counters through the user's descriptor; a missing or
 * unreadable file reads as zeros (store_fsck repairs it). Writes hold the
 * counters lock. */
int quota_counters_read_user(struct store_user *user, struct quota_counters *c,
			     const char **error_r);
int quota_counters_write_user(struct store_user *user, const struct quota_counters *c,
			      bool durable, const char **error_r);

/* The limit checks, for callers that change the counters themselves
 * under the counters lock (delivery links and charges in one step):
 * whether usage grown to bytes/messages exceeds a limit (0 = none); the
 * QUOTA failure naming usage c; whether growing from c to bytes/messages
 * crosses the warning threshold. */
bool quota_over(const struct store_quota_limit *limit, uint64_t bytes, uint64_t messages);
int quota_refuse(const struct quota_counters *c, const struct store_quota_limit *limit,
		 const char **error_r);
bool quota_warns(const struct quota_counters *c, uint64_t bytes, uint64_t messages,
		 const struct store_quota_limit *limit);

/* Adds (or with negative deltas subtracts, never below zero) under the
 * counters lock. With limit != NULL and growing usage: QUOTA when a limit
 * would be exceeded (nothing changes). *warning_r (may be NULL) is set
 * when usage crosses limit->warn_percent of a limit. */
int quota_charge(struct store_user *user, int64_t bytes, int64_t messages,
		 const struct store_quota_limit *limit, bool *warning_r, const char **error_r);
/* The same with the counters lock already held by the caller. */
int quota_charge_locked(struct store_user *user, int64_t bytes, int64_t messages,
			const struct store_quota_limit *limit, bool *warning_r,
			const char **error_r);
/* fsck: replaces the usage (keeps the UIDVALIDITY counter). */
int quota_set(struct store_user *user, uint64_t bytes, uint64_t messages, const char **error_r);

#endif
