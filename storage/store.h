/*
 * The mail store: every user's mailboxes, their indexes and message files
 * under <store>/mail, shared by every node of the cluster at once. This
 * header is the store as a whole (opening it, users, delivery, quota,
 * fsck); storage/mailbox.h is the per-mailbox API the IMAP and POP3
 * engines call; storage/mail_uidset.h is the UID-set type both use.
 * The on-disk format, the locking protocol and the fsync points are in
 * docs/storage-format.md ("Mail store").
 *
 * Coordination between processes and nodes uses only POSIX fcntl locks
 * and atomic rename; between threads of one process, the lock table in
 * storage/store_lock.c. Nothing here logs, knows a protocol or opens a
 * socket.
 *
 * Errors: functions return STORE_OK (0) or a negative enum store_error;
 * functions that answer a question return 1 (yes) / 0 (no). When error_r
 * is not NULL it receives a human-readable explanation: a static string
 * or a thread-local one valid until the calling thread's next store call.
 * Client input (names, flags, corrupt files on the shared disk) never
 * aborts; only allocation failure does, as in lib/textbuf.
 *
 * Durability: every function that reports success for a change has made
 * that change durable (fsync'd) first. Concurrent callers in one process
 * share fsyncs (group commit, storage/store_sync.c).
 *
 * Thread safety: a struct store is shared by all threads of a process.
 * A struct store_user, struct mailbox or struct mail_writer belongs to one
 * thread at a time (one session).
 */
#ifndef CM_STORAGE_STORE_H
#define CM_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_error {
	STORE_OK = 0,
	STORE_E_TEMP = -1,     /* I/O error, lock or fsync failure: try again later (4xx, [UNAVAILABLE]) */
	STORE_E_NOTFOUND = -2, /* no such mailbox, message or user ([NONEXISTENT]) */
	STORE_E_EXISTS = -3,   /* the mailbox already exists ([ALREADYEXISTS]) */
	STORE_E_QUOTA = -4,    /* the user's quota would be exceeded (552/452, [OVERQUOTA]) */
	STORE_E_CORRUPT = -5,  /* on-disk data fails validation; store_fsck repairs ([CORRUPTION]) */
	STORE_E_INVALID = -6,  /* refused argument: bad mailbox name, INBOX deletion ([CANNOT]) */
	STORE_E_LIMIT = -7,    /* a store limit: too many keywords, name too long ([LIMIT]) */
	STORE_E_EXPUNGED = -8, /* the message was expunged meanwhile ([EXPUNGEISSUED]) */
};

const char *store_strerror(int err);

enum store_sync_mode {
	/* One syncfs() of the store's filesystem, then a cache flush, per
	 * group commit. */
	STORE_SYNC_SYNCFS = 0,
	/* fsync() of every file and directory touched by the batch (after one
	 * sync_file_range pass that starts all writeback together). */
	STORE_SYNC_FILES = 1,
};

struct store_options {
	/* Names this node's private temporary area under <store>/mail/.tmp;
	 * NULL = the host name. Nodes must not share one. */
	const char *node_id;
	enum store_sync_mode sync_mode;
	/* Readers take a shared lock while reading an index log. Needed where
	 * the filesystem only revalidates its cache on locking (NFS). */
	bool reader_locks;
	/* Rewrite a mailbox's snapshot when its log tail exceeds this many
	 * bytes (or a quarter of the snapshot, whichever is larger);
	 * 0 = 256 KiB. Tests use small values. */
	uint32_t rotate_bytes;
	/* A one-shot process under a node id of its own (mailctl): its
	 * temporary area is removed at close when empty, not kept for the
	 * next run. */
	bool transient;
};

struct store;

/* Opens the store rooted at root (which must exist; <root>/mail is
 * created). opts may be NULL for defaults. STORE_E_TEMP on I/O errors. */
int store_open(const char *root, const struct store_options *opts, struct store **store_r,
	       const char **error_r);
void store_close(struct store **store);

/*
 * Users. A user's mail lives in <store>/mail/<domain>/<hh>/<local>/ where
 * hh is the low byte of the FNV-1a hash of "local@domain" in hex. The
 * address is validated and lowercased (lib/address); INVALID when it is
 * malformed. Opening creates the user's directory and INBOX on first
 * access. The store knows nothing of the account directory: whether the
 * user exists is the caller's business.
 */
struct store_user;
int store_user_open(struct store *store, const char *address, struct store_user **user_r,
		    const char **error_r);
void store_user_close(struct store_user **user);
const char *store_user_address(const struct store_user *user);
/* Removes all of a user's mail (account deletion). */
int store_user_delete(struct store *store, const char *address, const char **error_r);

/*
 * Quota. The limit comes from the caller (the directory); usage is kept
 * per user, incrementally, in <user>/counters, so answering costs one
 * read. A limit of 0 means unlimited. Appends and deliveries that would
 * push usage over a limit fail with STORE_E_QUOTA and change nothing.
 * warn_percent (0 = none): operations report *quota_warning_r = true when
 * they take usage across that percentage of either limit.
 */
struct store_quota_limit {
	uint64_t bytes;
	uint64_t messages;
	unsigned warn_percent;
};

struct store_quota_usage {
	uint64_t bytes;
	uint64_t messages;
};

int store_quota_get(struct store_user *user, struct store_quota_usage *usage_r,
		    const char **error_r);
/* The same by address, creating nothing (a report over every account):
 * no mail directory yet is no usage. */
int store_quota_peek(struct store *store, const char *address, struct store_quota_usage *usage_r,
		     const char **error_r);

/*
 * A message being written into the store. Create one, write the bytes
 * (they go to this node's temporary area), then hand it to
 * mailbox_append() or store_deliver(), which consume it; or abort it.
 * Writes fail with STORE_E_TEMP on I/O errors.
 */
struct mail_writer;
int mail_writer_create(struct store *store, struct mail_writer **w_r, const char **error_r);
int mail_writer_write(struct mail_writer *w, const void *data, size_t len, const char **error_r);
uint64_t mail_writer_size(const struct mail_writer *w);
void mail_writer_abort(struct mail_writer **w);

/*
 * Delivery of one message to many users at once, as SMTP DATA needs it.
 * The message is written once and hard-linked into each recipient's
 * mailbox "new" directory; no mailbox index lock is taken (the index
 * absorbs new messages at its next sync, on any node). Every recipient
 * gets its own result; the call returns STORE_OK when every recipient was
 * handled (some may still have failed) and the delivered ones are durable,
 * or <0 when nothing was delivered (e.g. the fsync failed: TEMP).
 * The writer is consumed in every case.
 */
struct store_rcpt {
	const char *address;              /* local@domain */
	const char *mailbox;              /* NULL = INBOX */
	struct store_quota_limit quota;
	/* results */
	int result;                       /* STORE_OK, QUOTA, NOTFOUND (mailbox), INVALID, TEMP */
	bool quota_warning;
	char error[160];
};

struct store_delivery {
	uint32_t flags;         /* MAIL_* system flags for the new messages (mailbox.h) */
	int64_t internal_date;  /* unix seconds; 0 = now */
	/* Keywords set on the new messages when their mailboxes absorb them
	 * (e.g. "$Junk" from a filter). They travel in the new/ entry's name,
	 * so at most about 190 bytes in all: a delivery whose keywords do not
	 * fit fails with LIMIT, a malformed keyword with INVALID, before
	 * anything is written. A mailbox whose keyword table is full gets the
	 * message without the keywords it has no room for. */
	const char *const *keywords;
	size_t n_keywords;
};

int store_deliver(struct store *store, struct mail_writer **w, const struct store_delivery *d,
		  struct store_rcpt *rcpts, size_t n, const char **error_r);

/*
 * fsck: verifies each mailbox's index against its message files and the
 * user's quota counters against the mailboxes, and with repair=true
 * fixes what it finds: torn log tails are cut, leftovers of interrupted
 * operations are finished or removed, an unreadable index is rebuilt from
 * the message files (keeping UIDs; UIDVALIDITY changes only when records
 * were lost), quota usage is recomputed. No message file that an index
 * record or a pending delivery refers to is ever removed.
 * address NULL = every user. The callbacks may be NULL.
 * Returns the number of problems found (>= 0), or <0 on an error that
 * stopped the walk.
 */
enum store_fsck_problem {
	STORE_FSCK_TORN_LOG,         /* a log ends in an incomplete record */
	STORE_FSCK_CORRUPT_INDEX,    /* index or log fails validation; rebuilt */
	STORE_FSCK_MISSING_FILE,     /* an index record has no message file */
	STORE_FSCK_ORPHAN_FILE,      /* a message file no record refers to */
	STORE_FSCK_LEFTOVER,         /* temporary or half-finished files */
	STORE_FSCK_UNSYNCED,         /* committed log records not yet visible to readers */
	STORE_FSCK_QUOTA,            /* quota usage differs from the mailboxes */
	STORE_FSCK_BAD_NAME,         /* an entry whose name the store never writes */
	STORE_FSCK_UNCHECKED,        /* a user could not be checked (the walk went on) */
	STORE_FSCK_KINDS
};

struct store_fsck_callbacks {
	void (*progress)(const char *address, const char *mailbox, void *ctx);
	void (*problem)(const char *address, const char *mailbox, enum store_fsck_problem p,
			const char *detail, bool repaired, void *ctx);
	void *ctx;
};

int store_fsck(struct store *store, const char *address, bool repair,
	       const struct store_fsck_callbacks *cb, const char **error_r);

#endif
