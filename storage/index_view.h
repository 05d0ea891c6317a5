/*
 * index_view: one process's picture of a mailbox index, and the only code
 * that reads or writes index files. A view is a snapshot (the "index"
 * file) plus the log records after it, applied in memory; refreshing
 * applies whatever records were appended since.
 *
 *   index_apply.c    applying one record to the in-memory state (pure)
 *   index_log.c      log files: create, header, synced mark, append
 *   index_read.c     open, refresh, follow rotations
 *   index_reload.c   rebuilding a view from disk, reporting the differences
 *   index_snapshot.c snapshot encode/decode
 *   index_rotate.c   snapshot rewrite and log rotation
 *   index_write.c    the writer's cycle: lock, refresh, write, durable
 *
 * Readers take no lock (unless store_options.reader_locks) and read only
 * up to the log's synced mark, so they never see a record that is not yet
 * durable or only half written, and stop before a PENDING APPEND whose
 * files are not known durable yet (storage/index_pending.c). Writers hold the index lock, read to the
 * end of the log (cutting a torn tail a crashed writer left), append one
 * record per transaction, release the lock, and then wait for a group
 * commit and advance the synced mark.
 *
 * Full views keep every message record (sorted by UID, expunged ones as
 * tombstones until the end of the batch); light views keep only the
 * state, the keyword table and the absorb set: enough to append.
 */
#ifndef CM_STORAGE_INDEX_VIEW_H
#define CM_STORAGE_INDEX_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/index_format.h"
#include "storage/mail_uidset.h"
#include "storage/mailbox.h"

#define INDEX_DEAD 0x80000000u      /* tombstone bit in mail_record.flags (in memory only) */
#define INDEX_VANISHED_MAX 20000    /* history entries kept; older ones raise the floor */

struct store;
struct store_lockfile;

struct index_vanished {
	uint32_t first, last;
	uint64_t modseq;
};

struct index_view {
	/* set by index_view_open */
	struct store *store;
	int dir_fd;                   /* the mailbox's .box directory */
	struct store_lockfile *lock;
	bool full;
	bool locked;                  /* this view holds the index lock */
	bool broken;                  /* a write failed: reload before anything else */
	uint64_t torn_bytes;          /* torn log tail this view cut (fsck reports it) */
	bool rotation_unmarked;       /* a writer read found a ROTATE past its log's mark */
	bool dry_run;                 /* fsck without repair: find torn tails, do not cut */
	struct store_user *quota_user; /* set by the opener: whose usage a drop gives back */

	/* position */
	uint32_t uidvalidity;
	int log_fd;
	uint64_t log_seq;
	uint64_t log_pos;             /* end of the last applied record */
	uint64_t snap_bytes;          /* size of the snapshot this view started from */
	uint64_t chain_start;         /* first log of the chain from the snapshot on disk */
	uint64_t log_base;            /* where this log's records began for this view */
	bool pending_stop;            /* a reader stopped at an unresolved PENDING record */
	uint64_t pending_pos;         /* ... at this position (log seq, offset) */
	uint64_t pending_seq;
	int64_t pending_since;        /* ... first seen then (unix seconds) */
	uint64_t own_pending_off;     /* this writer's last PENDING record, to resolve */
	uint32_t own_pending_size;    /* after its commit round (0: none) */

	/* state */
	struct index_state state;
	bool deleted;
	struct mail_record *recs;     /* full views */
	size_t n_recs, cap_recs, n_dead;
	char *keywords[MAILBOX_KEYWORDS_MAX];
	struct index_vanished *van;
	size_t n_van, cap_van;
	uint64_t van_floor;           /* history is complete only for modseq >= this */
	uint8_t (*absorb)[16];        /* GUIDs of the last absorb, maybe still in new/ */
	size_t n_absorb, cap_absorb;

	/* what the session has not been told yet (full views) */
	struct uidset pend_app, pend_chg, pend_exp;

	struct textbuf readbuf;
};

/* ---- index_apply.c ---- */

/* Empty state for a view (used before loading). */
void index_view_init(struct index_view *v, bool full);
/* The same, keeping what v's opener set (store, directory, lock, dry run,
 * quota user): for a view that replaces v. */
void index_view_init_like(struct index_view *nv, const struct index_view *v);
void index_view_clear(struct index_view *v);
/* Applies one decoded record. verify=true: the result must equal the
 * record's state block (CORRUPT otherwise); verify=false (the writer
 * building its own record): v->state becomes the computed result. */
int index_apply(struct index_view *v, const struct index_rec *rec, bool verify,
		const char **error_r);
/* Drops tombstones. */
void index_compact(struct index_view *v);
struct mail_record *index_find(const struct index_view *v, uint32_t uid);
/* First record with uid >= uid (index into recs). */
size_t index_lower_bound(const struct index_view *v, uint32_t uid);
int index_keyword_lookup(const struct index_view *v, const char *name);
bool index_absorb_contains(const struct index_view *v, const uint8_t guid[16]);
/* Loads a decoded snapshot into an initialised view. */
int index_load_snapshot(struct index_view *v, const struct index_snap *snap, const char **error_r);

/* ---- index_read.c ---- */

int index_view_open(struct store *store, int dir_fd, bool full, struct index_view **v_r,
		    const char **error_r);
void index_view_free(struct index_view **v);
/* Applies records appended since (up to the synced mark). NOTFOUND when
 * the mailbox was deleted. */
int index_view_refresh(struct index_view *v, const char **error_r);
/* Replays a log image held in memory (the fuzz harness's entry point). */
int index_replay_buffer(struct index_view *v, const uint8_t *buf, size_t len,
			const char **error_r);
/* Fills a freshly initialised view (store, dir_fd, lock set) from disk. */
int index_load(struct index_view *v, const char **error_r);
/* Internal to index_read.c and index_write.c: read records up to the
 * synced mark (writer=false) or to the end, cutting a torn tail. */
int index_read_log(struct index_view *v, bool writer, const char **error_r);
/* Rebuilds the view from disk and records the differences as pending
 * changes. CORRUPT when the UIDVALIDITY changed. */
int index_view_reload(struct index_view *v, const char **error_r);

/* ---- index_log.c ---- */

/* Creates dir_fd/log.<seq> holding header + tail, fsync'd. */
int index_log_create(int dir_fd, uint64_t seq, uint32_t uidvalidity,
		     const struct index_state *state, const void *tail, size_t tail_len,
		     const char **error_r);
/* Opens log.<seq>; NOTFOUND when it is gone (rotated away). */
int index_log_open(int dir_fd, uint64_t seq, int *fd_r, struct index_log_header *h_r,
		   const char **error_r);
int index_log_synced(int fd, uint64_t *synced_r, const char **error_r);
/* Raises the synced mark to end (never lowers it knowingly). */
int index_log_mark_synced(int fd, uint64_t end, const char **error_r);
/* Sets it to end: only with the index lock held and the log fsync'd. */
int index_log_set_synced(int fd, uint64_t end, const char **error_r);
void index_log_name(uint64_t seq, char *buf, size_t size);

/* ---- index_snapshot.c ---- */

/* Encodes the view's state as a snapshot continuing log.<log_seq> at
 * log_offset. */
void index_snapshot_encode(const struct index_view *v, uint64_t log_seq, uint64_t log_offset,
			   struct textbuf *out);
/* Reads dir_fd/index: 0, NOTFOUND when there is none, CORRUPT. With
 * header_only, only the header, keyword table and absorb set are read. */
int index_snapshot_read(int dir_fd, bool header_only, struct textbuf *buf,
			struct index_snap *snap, const char **error_r);
/* Just the 128-byte header (for STATUS): 0, NOTFOUND, or <0. */
int index_snapshot_read_header(int dir_fd, struct textbuf *buf, struct index_snap *snap);

/* ---- index_write.c ---- */

/* Takes the index lock and brings the view to the end of the log. */
int index_view_lock(struct index_view *v, const char **error_r);
void index_view_unlock(struct index_view *v);
/* Under the lock: fills in the state of the record begun at start in buf
 * (index_rec_begin + payload), applies it and appends it to the log.
 * proposed: the state fields a RECENT record sets (NULL otherwise). */
int index_view_write(struct index_view *v, struct textbuf *buf, size_t start, uint16_t type,
		     uint16_t flags, uint32_t count, uint64_t modseq,
		     const struct index_state *proposed, const char **error_r);
/* Makes records that crashed writers left past the synced mark visible:
 * lock, refresh (cutting a torn tail), help unresolved PENDING records
 * (full views: dropping those whose files did not survive, and giving
 * their usage back to quota_user's quota in the same lock hold), unlock,
 * group commit, mark, resolve. */
int index_view_settle(struct index_view *v, const char **error_r);
/* After unlocking: group commit of the log and extra_fds, then the
 * resolve word of this writer's PENDING record (if any), then the synced
 * mark. Also triggers a snapshot rewrite when the log has grown. */
int index_view_durable(struct index_view *v, const int *extra_fds, size_t n_extra,
		       const char **error_r);

/* ---- index_rotate.c ---- */

bool index_rotate_wanted(const struct index_view *v);
/* Rewrites the snapshot and starts a new log if no one else is doing it.
 * v must be a full view, unlocked. */
int index_rotate(struct index_view *v, const char **error_r);
/* fsck's rebuild: replaces the index with v's state under a new log
 * (v->log_seq + 1), and ends the old log (old_fd, valid up to old_end,
 * where its state is old_state; old_fd -1 if unusable) with a RESET so
 * that open views reload. Called with the index lock held; v moves to
 * the new log. */
int index_reset(struct index_view *v, int old_fd, uint64_t old_end,
		const struct index_state *old_state, const char **error_r);

#endif
