/*
 * store_internal: what the storage/store_*, mailbox_*, mail_*, index_*,
 * quota_* and queue_* files share and nothing outside them (tests excepted) may use:
 * the store and user handles, error helpers and small filesystem helpers
 * (storage/store_fs.c).
 *
 * Layout (docs/storage-format.md, "Mail store"):
 *   <root>/mail/.tmp/<node>/<slot>/   this node's messages being written
 *   <root>/mail/<domain>/<hh>/<local>/
 *       lock          byte 0: hierarchy lock, byte 1: counters lock
 *       counters      quota usage and the UIDVALIDITY generator
 *       subscriptions, special-use
 *       trash/        mailboxes being deleted
 *       box/<name components...>/.box/   one mailbox (storage/index_*.c)
 */
#ifndef CM_STORAGE_STORE_INTERNAL_H
#define CM_STORAGE_STORE_INTERNAL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "lib/address.h"
#include "lib/textbuf.h"
#include "storage/store.h"

#define STORE_TMP_SLOTS 16          /* spreads file creation over directories */
#define STORE_ADDRESS_MAX (ADDRESS_LOCAL_MAX + 1 + ADDRESS_DOMAIN_MAX + 1)
#define STORE_GUID_HEX 33           /* 32 hex digits + NUL */
#define STORE_DEFAULT_ROTATE_BYTES (256u * 1024u)
#define STORE_TMP_MAX_AGE (24 * 3600) /* fsck removes older temporary files */

/* Byte slots of the lock files. */
enum store_lock_slot {
	STORE_LOCK_INDEX = 0,      /* mailbox: index writers */
	STORE_LOCK_ROTATE = 1,     /* mailbox: elects the snapshot writer */
	STORE_LOCK_HIERARCHY = 0,  /* user: create/rename/delete, subscriptions */
	STORE_LOCK_COUNTERS = 1,   /* user: quota usage, UIDVALIDITY generator */
};

struct store_sync;
struct store_lockfile;

struct store {
	char *root;
	char *node_id;
	struct store_options opts;
	int mail_fd;               /* <root>/mail */
	int tmp_fd;                /* <root>/mail/.tmp/<node> */
	pthread_mutex_t tmp_lock;  /* guards tmp_slot_fd */
	int tmp_slot_fd[STORE_TMP_SLOTS];
	unsigned tmp_next_slot;
	struct store_sync *sync;
};

struct store_user {
	struct store *store;
	char address[STORE_ADDRESS_MAX];
	char *path;                /* relative to mail_fd: <domain>/<hh>/<local> */
	int dir_fd;
	int box_fd;                /* <user>/box */
	int counters_fd;           /* <user>/counters, opened on first use */
	struct store_lockfile *lock;
};

/* ---- errors (storage/store_error.c) ---- */

/* Formats into the thread-local error string, sets *error_r, returns code. */
int store_fail(const char **error_r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "what name: strerror(errno)", STORE_E_TEMP (NOTFOUND for ENOENT when
 * enoent_notfound). */
int store_fail_errno(const char **error_r, bool enoent_notfound, const char *what,
		     const char *name);

/* ---- filesystem helpers (storage/store_fs.c) ---- */

int store_pread_full(int fd, void *buf, size_t len, uint64_t off);
int store_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int store_write_full(int fd, const void *buf, size_t len);
/* mkdir that treats EEXIST as success. */
int store_mkdirat(int dirfd, const char *name);
/* Opens dirfd/name as a directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC). */
int store_open_dir(int dirfd, const char *name);
/* The same as a stream for readdir, or NULL (errno set; nothing leaks). */
DIR *store_opendir(int dirfd, const char *name);
/* Appends the rest of fd (at most max bytes: more is STORE_E_CORRUPT) to
 * out; name is for errors. */
int store_read_fd(int fd, const char *name, size_t max, struct textbuf *out, const char **error_r);
/* Small files: reads all of dirfd/name (ENOENT -> 0 with empty out). */
int store_read_small(int dirfd, const char *name, size_t max, struct textbuf *out,
		     const char **error_r);
/* Replaces dirfd/name atomically (temporary file, fsync, rename, fsync
 * of the directory). */
int store_replace_file(int dirfd, const char *name, const void *data, size_t len,
		       const char **error_r);
/* Removes dirfd/name and everything below it; ENOENT is success. */
int store_remove_tree(int dirfd, const char *name);
void store_guid_new(uint8_t guid[16]);
void store_random(void *buf, size_t n);
void store_hex(const uint8_t *bytes, size_t n, char *out); /* out: 2n+1 */
int store_unhex(const char *hex, size_t n, uint8_t *out);  /* n bytes from 2n digits */
int64_t store_now(void);
/* FNV-1a, the stable hash that picks a user's <hh> directory. */
uint32_t store_fnv1a(const char *s);

/* ---- the node's temporary area (storage/store.c) ---- */

/* Directory fd of this thread's temporary slot (created on first use). */
int store_tmp_dir(struct store *store, unsigned *slot_r, const char **error_r);

/* ---- the user (storage/store_user.c) ---- */

/* UIDVALIDITY for a new mailbox: strictly increasing per user, at least
 * the current time, kept in <user>/counters. */
int store_user_next_uidvalidity(struct store_user *user, uint32_t *uidvalidity_r,
				const char **error_r);
/* Opens a user's mail directory without creating anything (what fsck's
 * dry run needs): STORE_E_NOTFOUND without one; box_fd is -1 when box/ is
 * missing, and *inbox_missing_r says whether INBOX is. */
int store_user_open_existing(struct store *store, const char *address, bool *inbox_missing_r,
			     struct store_user **user_r, const char **error_r);
int store_user_lock(struct store_user *user, unsigned slot, const char **error_r);
void store_user_unlock(struct store_user *user, unsigned slot);

#endif
