/*
 * mailbox_internal: what the storage/mailbox_*.c and mail_*.c files share:
 * the opened-mailbox handle, message file naming, the writer's innards.
 *
 * A mailbox directory (.box):
 *   lock            byte 0: index writers, byte 1: snapshot rewrite election
 *   index, log.<n>  the index (storage/index_view.h)
 *   new/            deliveries not yet absorbed: <guid>.<date>.<flags>, then
 *                   *<keyword> for each keyword ('/' written %2F)
 *   msg/<b>/<uid>   message files, b = uid >> 12 in hex; <uid>.cache next
 *                   to a message is its parsed-metadata blob
 */
#ifndef CM_STORAGE_MAILBOX_INTERNAL_H
#define CM_STORAGE_MAILBOX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/index_view.h"
#include "storage/mailbox.h"
#include "storage/store_internal.h"

#define MAILBOX_BUCKET_SHIFT 12
#define MAILBOX_NEW_NAME_MAX 256  /* NAME_MAX + 1 */
#define MAILBOX_ABSORB_BATCH 4096   /* messages per absorb record */

struct mailbox {
	struct store_user *user;
	struct store *store;
	char name[MAILBOX_NAME_MAX + 1];
	unsigned flags;              /* enum mailbox_open_flags */
	int dir_fd;                  /* .box */
	int new_fd;                  /* .box/new */
	int msg_fd;                  /* .box/msg */
	int bucket_fd;               /* cached .box/msg/<bucket_no> */
	uint32_t bucket_no;
	int touched[8];              /* bucket directories changed since the last commit */
	uint32_t touched_no[8];
	unsigned n_touched;
	int touch_errno;             /* a bucket directory's early fsync failed: the next commit fails */
	struct index_view *view;
	uint32_t recent_first;       /* lowest UID this session claimed \Recent for */
	struct textbuf buf;          /* scratch for records */
};

struct mail_writer {
	struct store *store;
	int dir_fd;                  /* the temporary slot directory (not owned) */
	int fd;
	char name[STORE_GUID_HEX];   /* its GUID in hex: its name in dir_fd when named */
	bool named;                  /* false: unnamed (O_TMPFILE) or moved away */
	uint8_t guid[16];
	uint64_t size;
};

/* ---- mail_writer.c ---- */

/* Gives the message its place dir_fd/name (renamed or linked; a stale
 * file there, which only a crashed writer can have left, is replaced). */
int mail_writer_place(struct mail_writer *w, int dir_fd, const char *name, const char **error_r);
/* Makes sure the message has its name w->name in w->dir_fd (deliveries
 * link from there). */
int mail_writer_name(struct mail_writer *w, const char **error_r);
/* The message's internal date, which its file carries too (fsck rebuilds
 * an index from the files): date, set on the file; or for 0 the file's
 * own time (its last write), which costs a stat where setting one costs
 * an inode update. */
int64_t mail_writer_date(struct mail_writer *w, int64_t date);

/* ---- mailbox_list.c ---- */

/* Creates a normalised mailbox; the hierarchy lock must be held. */
int mailbox_create_locked(struct store_user *user, const char *name, unsigned special_use,
			  const char **error_r);
/* Opens the .box directory of a normalised name: NOTFOUND, INVALID for
 * an intermediate level without a mailbox. */
int mailbox_open_box_dir(struct store_user *user, const char *name, int *fd_r,
			 const char **error_r);

/* Level directories (path relative to the user's box/, as built by
 * mailbox_name_to_path): open (mkdir -p with create), whether the level
 * holds a mailbox (.box) or child levels, and removal of empty levels
 * from path upwards. */
int mailbox_level_open(int box_fd, const char *path, bool create);
bool mailbox_level_has_box(int level_fd);
bool mailbox_level_has_children(int level_fd);
void mailbox_levels_prune(struct store_user *user, const char *path);

/* ---- mailbox_subscribe.c ---- */

/* Normalises name into norm (MAILBOX_NAME_MAX + 1 bytes) and rejects
 * unknown special-use bits (INVALID); no lock needed. */
int mailbox_special_use_args(const char *name, unsigned special_use, char *norm,
			     const char **error_r);

/* The hierarchy lock is held for the rest. */

/* Sets (0 = removes) the special-use attributes recorded for name. */
int mailbox_special_use_update(struct store_user *user, const char *name, unsigned flags,
			       const char **error_r);
/* Moves subscriptions and special-use of from (and its children) to to. */
int mailbox_namelists_rename(struct store_user *user, const char *from, const char *to,
			     const char **error_r);

/* ---- mailbox_open.c ---- */

int mailbox_open_fds(struct mailbox *box, int dir_fd, const char **error_r);
/* Claims \Recent for this session: marks the records and writes RECENT. */
int mailbox_claim_recent(struct mailbox *box, const char **error_r);

/* ---- mailbox_absorb.c ---- */

/* Absorbs deliveries waiting in new/; cheap (one readdir) when none. */
int mailbox_absorb(struct mailbox *box, const char **error_r);
bool mailbox_new_pending(struct mailbox *box);
/* Adds to *bytes and *msgs the deliveries waiting in box_fd's new/:
 * charged to quota already, not yet in the index's usage. Entries an
 * earlier absorb recorded (its absorb set in v) are in that usage and
 * left out; v NULL (an index too damaged to open): every entry counts. */
void mailbox_new_usage(int box_fd, const struct index_view *v, uint64_t *bytes, uint64_t *msgs);
/* fsck, index lock held: the file of record r is missing; when new/ still
 * holds its delivery (same GUID and size) it is linked back (repair).
 * 1 restored (or restorable when !repair), 0 not there, <0 error. */
int mailbox_absorb_restore(struct mailbox *box, const struct mail_record *r, bool repair,
			   const char **error_r);
/* The new/ entry name of a delivery (out: MAILBOX_NEW_NAME_MAX bytes);
 * -1 when the keywords do not fit in a file name. */
int mailbox_new_name(const uint8_t guid[16], int64_t date, uint32_t flags,
		     const char *const *keywords, size_t n_keywords, char *out);
/* Parses a new/ entry name; -1 when it is not one we write. keywords_r
 * (may be NULL) points at the encoded keywords in name ("" for none). */
int mailbox_new_parse(const char *name, uint8_t guid[16], int64_t *date_r, uint32_t *flags_r,
		      const char **keywords_r);
/* Decodes the keywords of a new/ entry name into buf (NUL-separated),
 * pointing names[] at them: their count, or -1 if malformed. */
int mailbox_new_keywords(const char *encoded, char buf[MAILBOX_NEW_NAME_MAX],
			 const char *names[MAILBOX_KEYWORDS_MAX]);

/* ---- mailbox_message.c ---- */

void mailbox_msg_name(uint32_t uid, char *out, size_t size);   /* "<bucket>/<uid>" */
/* A private, fsync'd copy of a message file (with its mtime): where a hard
 * link is impossible because the file has too many (EMLINK). */
int mailbox_copy_file(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
		      const char **error_r);
/* Directory fd of uid's bucket, created when create is set (cached). */
int mailbox_bucket_fd(struct mailbox *box, uint32_t uid, bool create, const char **error_r);
/* Notes that an entry was added to the current bucket (for FILES sync). */
void mailbox_bucket_touch(struct mailbox *box);
/* After unlocking: group commit of the index log and the touched bucket
 * directories, then the synced mark (index_view_durable). */
int mailbox_durable(struct mailbox *box, const char **error_r);
/* The same, with files (message files just written) in the same round. */
int mailbox_durable_files(struct mailbox *box, const int *files, size_t n_files,
			  const char **error_r);

/* ---- mailbox_keywords (mailbox_flags.c) ---- */

/* Maps keyword names to a mask, defining missing ones (index lock held)
 * when define is set, ignoring unknown ones otherwise. INVALID, LIMIT. */
int mailbox_keywords_mask(struct mailbox *box, const char *const *names, size_t n, bool define,
			  uint64_t *mask_r, const char **error_r);
int mailbox_keywords_check(const char *const *names, size_t n, const char **error_r);

/* ---- mailbox_expunge.c ---- */

/* Removes message files (and cache blobs) after an expunge is durable. */
void mailbox_unlink_messages(struct mailbox *box, const struct uidset *uids);
/* mailbox_expunge, also giving the removed messages' records as the
 * expunge found them under the lock (*gone_r: malloc'd, UID order). */
int mailbox_expunge_records(struct mailbox *box, const struct uidset *uids, bool any_flags,
			    struct uidset *expunged_r, struct mail_record **gone_r,
			    size_t *n_gone_r, const char **error_r);

#endif
