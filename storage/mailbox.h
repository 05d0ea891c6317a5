/*
 * Mailboxes: the per-user hierarchy (create, rename with children,
 * delete, subscriptions, special-use) and an opened mailbox (a view): its
 * message records, appends, flag and keyword changes with MODSEQ,
 * expunges with VANISHED history, copy and move with the new UIDs, message
 * bytes, the metadata cache hook, and "what changed since my last sync".
 * This is the interface IMAP (IMAP4rev1, UIDPLUS, CONDSTORE/QRESYNC, MOVE,
 * QUOTA, SPECIAL-USE) and POP3 are written against.
 *
 * Mailbox names are UTF-8 (the protocol decodes modified UTF-7) with '/'
 * as the hierarchy separator. "INBOX" is case-insensitive and always
 * exists. Refused with STORE_E_INVALID: empty names and components, a
 * leading or trailing '/', "//", "." and ".." components, control
 * characters, invalid UTF-8; STORE_E_LIMIT: more than MAILBOX_NAME_MAX
 * bytes, MAILBOX_DEPTH_MAX levels, or a component that does not fit a
 * file name once encoded. Names never reach the filesystem unencoded
 * (storage/mailbox_name.c), so no name leaves the user's directory.
 *
 * Errors and threading as in storage/store.h. A struct mailbox belongs to
 * one session (thread) at a time; any number of sessions in any number of
 * processes and nodes may have the same mailbox open.
 */
#ifndef CM_STORAGE_MAILBOX_H
#define CM_STORAGE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/mail_uidset.h"
#include "storage/store.h"

#define MAILBOX_NAME_MAX 512
#define MAILBOX_DEPTH_MAX 32
#define MAILBOX_KEYWORDS_MAX 64   /* per mailbox; then STORE_E_LIMIT (IMAP drops \* from PERMANENTFLAGS) */
#define MAILBOX_KEYWORD_LEN_MAX 128

/* System flags as stored; MAIL_RECENT is per session and never stored. */
enum mail_flag {
	MAIL_SEEN = 0x01,
	MAIL_ANSWERED = 0x02,
	MAIL_FLAGGED = 0x04,
	MAIL_DELETED = 0x08,
	MAIL_DRAFT = 0x10,
	MAIL_FLAGS_MASK = 0x1f,
	MAIL_RECENT = 0x100,
};

/* RFC 6154 special-use attributes. */
enum mailbox_special_use {
	MAILBOX_SPECIAL_ALL = 0x01,
	MAILBOX_SPECIAL_ARCHIVE = 0x02,
	MAILBOX_SPECIAL_DRAFTS = 0x04,
	MAILBOX_SPECIAL_FLAGGED = 0x08,
	MAILBOX_SPECIAL_JUNK = 0x10,
	MAILBOX_SPECIAL_SENT = 0x20,
	MAILBOX_SPECIAL_TRASH = 0x40,
	MAILBOX_SPECIAL_MASK = 0x7f,
};

/* ---- the hierarchy ---- */

struct mailbox_info {
	const char *name;
	bool exists;        /* false: only subscribed (LSUB \NonExistent) */
	bool selectable;    /* false: an intermediate level (\Noselect) */
	bool has_children;
	bool subscribed;
	unsigned special_use;
};

/* Calls cb for every mailbox, intermediate level and subscribed name, in
 * name order; a nonzero return from cb stops the walk and is returned. */
typedef int mailbox_list_cb(const struct mailbox_info *info, void *ctx);
int mailbox_list(struct store_user *user, mailbox_list_cb *cb, void *ctx, const char **error_r);

/* Creates name (and missing intermediate levels). EXISTS if it exists. */
int mailbox_create(struct store_user *user, const char *name, unsigned special_use,
		   const char **error_r);
/* Deletes a mailbox and its messages. A mailbox with children becomes an
 * intermediate level (\Noselect); deleting INBOX is INVALID; deleting a
 * level that has children but no mailbox of its own is INVALID. */
int mailbox_delete(struct store_user *user, const char *name, const char **error_r);
/* Renames with all children (atomically on disk); subscriptions and
 * special-use follow. Renaming INBOX moves its messages into a new
 * mailbox and leaves an empty INBOX. EXISTS, NOTFOUND, INVALID (into own
 * child), LIMIT (a child's new name would be deeper or longer than the
 * limits above). The renamed mailbox keeps its UIDVALIDITY; a mailbox created
 * under the old name later gets a new one. */
int mailbox_rename(struct store_user *user, const char *from, const char *to,
		   const char **error_r);
/* Subscriptions may name mailboxes that do not exist. */
int mailbox_subscribe(struct store_user *user, const char *name, bool subscribe,
		      const char **error_r);
int mailbox_special_use_set(struct store_user *user, const char *name, unsigned special_use,
			    const char **error_r);

/* ---- status without opening (STATUS, LIST-STATUS, quota reports) ---- */

struct mailbox_status {
	uint32_t messages;
	uint32_t recent;
	uint32_t unseen;
	uint32_t deleted;      /* messages with \Deleted */
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	uint64_t bytes;        /* sum of message sizes */
};

/* Reads a few header bytes, not the records; first absorbs pending
 * deliveries when there are any (taking the index lock briefly). */
int mailbox_status(struct store_user *user, const char *name, struct mailbox_status *st_r,
		   const char **error_r);

/* ---- an opened mailbox ---- */

struct mail_record {
	uint32_t uid;
	uint32_t flags;          /* enum mail_flag bits */
	uint64_t modseq;
	uint64_t keywords;       /* bit i = keyword i of the mailbox's table */
	int64_t internal_date;   /* unix seconds */
	uint64_t size;           /* bytes */
	uint8_t guid[16];        /* content id, shared by copies and by one delivery's recipients */
};

enum mailbox_open_flags {
	/* EXAMINE: does not claim \Recent. */
	MAILBOX_OPEN_READONLY = 0x01,
	/* Only headers and keywords are loaded, not the records: enough to
	 * append, deliver into, or be a COPY/MOVE destination. */
	MAILBOX_OPEN_APPEND_ONLY = 0x02,
};

struct mailbox;
/* Opens a mailbox: loads its records, absorbs pending deliveries, and
 * (unless READONLY) claims \Recent. NOTFOUND for no such mailbox,
 * INVALID for a \Noselect level, CORRUPT for an index that fails
 * validation (fsck rebuilds it). */
int mailbox_open(struct store_user *user, const char *name, unsigned flags,
		 struct mailbox **box_r, const char **error_r);
void mailbox_close(struct mailbox **box);
const char *mailbox_name(const struct mailbox *box);
void mailbox_get_status(const struct mailbox *box, struct mailbox_status *st_r);

/* Records sorted by UID; valid until the next call that changes or syncs
 * the view. Not available (NULL, 0) in APPEND_ONLY views. */
const struct mail_record *mailbox_records(const struct mailbox *box, size_t *count_r);
const struct mail_record *mailbox_lookup(const struct mailbox *box, uint32_t uid);
/* The keyword table: index -> name; NULL past the end. */
const char *mailbox_keyword(const struct mailbox *box, unsigned idx);
unsigned mailbox_keyword_count(const struct mailbox *box);

/*
 * What changed since this session last synced, from any session on any
 * node: new messages (EXISTS), flag changes (FETCH FLAGS / MODSEQ) and
 * expunges (EXPUNGE / VANISHED). Messages that arrived and went between
 * two syncs are not reported. Changes the session made itself are
 * reported too. Cheap when nothing changed (a few small reads), so IDLE
 * may call it on every wakeup. Callbacks run after the view is updated,
 * expunges first, then appends, then changes; any may be NULL.
 * NOTFOUND when the mailbox was deleted meanwhile; CORRUPT when its index
 * was rebuilt with a new UIDVALIDITY (the session must reselect).
 */
struct mailbox_sync_ops {
	void (*expunged)(uint32_t uid, void *ctx);
	void (*appended)(const struct mail_record *rec, void *ctx);
	void (*changed)(const struct mail_record *rec, void *ctx);
};
int mailbox_sync(struct mailbox *box, const struct mailbox_sync_ops *ops, void *ctx,
		 const char **error_r);

/*
 * Appends messages in one atomic step (IMAP APPEND and MULTIAPPEND).
 * Consumes every writer. Returns the new UIDs in order (UIDPLUS
 * APPENDUID). QUOTA when the user's quota would be exceeded (nothing is
 * appended); LIMIT when a keyword does not fit the keyword table.
 * quota may be NULL (no limit).
 */
struct mail_append {
	struct mail_writer *writer;
	uint32_t flags;
	const char *const *keywords;
	size_t n_keywords;
	int64_t internal_date;   /* 0 = now */
};
int mailbox_append(struct mailbox *box, struct mail_append *msgs, size_t n,
		   const struct store_quota_limit *quota, uint32_t *uids_r, bool *quota_warning_r,
		   const char **error_r);

/*
 * STORE: flags and keywords with MODSEQ. Messages in uids that no longer
 * exist are ignored. conditional applies CONDSTORE's UNCHANGEDSINCE:
 * messages whose MODSEQ is higher than unchanged_since are left alone and
 * added to failed_r (may be NULL); UNCHANGEDSINCE 0 fails for every
 * message (RFC 7162 3.1.3: MODSEQs start at 1). Messages whose flags actually change get a new MODSEQ, returned
 * in *modseq_r (0 when nothing changed). LIMIT when a new keyword does
 * not fit the keyword table; INVALID for a malformed keyword.
 */
enum mail_flags_op {
	MAIL_FLAGS_REPLACE,
	MAIL_FLAGS_ADD,
	MAIL_FLAGS_REMOVE,
};
struct mail_flags_update {
	enum mail_flags_op op;
	uint32_t flags;
	const char *const *keywords;
	size_t n_keywords;
	uint64_t unchanged_since;
	bool conditional;           /* UNCHANGEDSINCE given */
};
int mailbox_store(struct mailbox *box, const struct uidset *uids,
		  const struct mail_flags_update *upd, struct uidset *failed_r, uint64_t *modseq_r,
		  const char **error_r);

/*
 * EXPUNGE / UID EXPUNGE: removes the messages in uids (NULL = all) that
 * carry \Deleted; with any_flags=true (MOVE, POP3 cleanup) also those that
 * do not. The removed UIDs are added to expunged_r (may be NULL). Quota
 * usage drops accordingly.
 */
int mailbox_expunge(struct mailbox *box, const struct uidset *uids, bool any_flags,
		    struct uidset *expunged_r, const char **error_r);

/* QRESYNC: UIDs expunged after modseq. When the history no longer reaches
 * that far back, every UID below UIDNEXT that does not exist (which RFC
 * 7162 allows). Requires a full view. */
int mailbox_vanished_since(const struct mailbox *box, uint64_t modseq, struct uidset *uids_r,
			   const char **error_r);

/*
 * COPY / MOVE into dst (a view of any kind, of the same or another user:
 * quota is dst's user's). The new messages share the source files (hard
 * links), flags and keywords. src_uids_r and dst_uids_r (may be NULL)
 * receive the corresponding UIDs for COPYUID, in the same order. Source
 * UIDs that no longer exist are skipped. move=true expunges the copied
 * messages from src afterwards (a crash in between leaves them in both,
 * never in neither). QUOTA (nothing changed) when dst's user would exceed
 * quota: for COPY, and for a MOVE to another user; a MOVE within one user
 * does not change its usage, so it is neither checked nor counted twice.
 */
int mailbox_copy(struct mailbox *src, const struct uidset *uids, struct mailbox *dst, bool move,
		 const struct store_quota_limit *quota, struct uidset *src_uids_r,
		 struct uidset *dst_uids_r, const char **error_r);

/* ---- message bytes ---- */

/* Opens the message file read-only; the caller closes *fd_r. The file
 * never changes. EXPUNGED when it is gone. */
int mailbox_msg_open(struct mailbox *box, uint32_t uid, int *fd_r, uint64_t *size_r,
		     const char **error_r);
/* Reads up to len bytes at offset; *nread_r < len only at the end. */
int mailbox_msg_read(struct mailbox *box, uint32_t uid, uint64_t offset, void *buf, size_t len,
		     size_t *nread_r, const char **error_r);

/*
 * The parsed-metadata cache (ENVELOPE, BODYSTRUCTURE, header fields for
 * FETCH, SEARCH and SORT). The store keeps an opaque blob per message
 * file; the RFC 5322/MIME parser in lib/ produces it through build, which
 * gets the message file's descriptor and size and appends the blob to
 * out. format_version names the blob format: a blob written with another
 * version is rebuilt. The blob is derived data: it is written without
 * fsync and rebuilt whenever it is missing, fails its checksum, or was
 * written for another message (it carries the message's GUID). Needs a
 * full view (STORE_E_INVALID otherwise).
 */
typedef int mail_cache_build_fn(int fd, uint64_t size, struct textbuf *out, void *ctx);
int mailbox_cache_get(struct mailbox *box, uint32_t uid, uint32_t format_version,
		      mail_cache_build_fn *build, void *ctx, struct textbuf *blob_r,
		      const char **error_r);

#endif
