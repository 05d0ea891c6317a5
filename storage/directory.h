/*
 * The account directory: domains, users, aliases and groups, kept in
 * RocksDB under <store>/directory. Every SMTP RCPT and every login looks
 * something up here, so lookups are single point reads or short prefix
 * scans (O(log n), no step change with the number of accounts).
 *
 * Addresses and domains passed in are validated and normalised (lowercased)
 * here; callers may pass what the user typed. A name is only ever one of
 * user, alias source or group within its domain.
 *
 * Errors: functions return DIRECTORY_OK (0) or a negative enum
 * directory_error; functions that answer a question return 1 (yes) / 0
 * (no). When error_r is given it receives a human-readable explanation:
 * a static string or a thread-local one valid until the calling thread's
 * next directory call.
 * Passwords are stored as crypt(3) hashes and never logged. The one
 * exception is the recoverable secret (directory_user.secret) that
 * shared-secret mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM, APOP) need: it
 * is plaintext, kept only for users of a domain whose shared_secret_auth
 * setting is on, and wiped from the whole domain when it is turned off
 * (docs/security.md says why and what that costs).
 *
 * Thread safety: a struct directory may be used from several threads at
 * once (RocksDB handles are thread-safe); a batch belongs to one thread.
 */
#ifndef CM_STORAGE_DIRECTORY_H
#define CM_STORAGE_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DIRECTORY_ADDRESS_MAX 320 /* 64 local + @ + 253 domain + NUL, rounded */
#define DIRECTORY_HASH_MAX 256
#define DIRECTORY_NAME_MAX 256
#define DIRECTORY_SECRET_MAX 256  /* recoverable secret, with its NUL */
#define DIRECTORY_DOMAIN_MAX 254  /* 253 + NUL */
#define DIRECTORY_REALM_MAX 256   /* Kerberos realm, with its NUL */

enum directory_error {
	DIRECTORY_OK = 0,
	DIRECTORY_E_NOTFOUND = -1,  /* no such domain/user/alias/group/member */
	DIRECTORY_E_EXISTS = -2,    /* already present (or the name is taken by another kind) */
	DIRECTORY_E_INVALID = -3,   /* malformed address, domain or value */
	DIRECTORY_E_NODOMAIN = -4,  /* the address's domain is not a local domain */
	DIRECTORY_E_NOTEMPTY = -5,  /* domain still has users/aliases/groups */
	DIRECTORY_E_IO = -6,        /* RocksDB / filesystem error */
	DIRECTORY_E_CORRUPT = -7,   /* a stored record does not decode */
	DIRECTORY_E_LOCKED = -8,    /* another process holds the writer lock */
	DIRECTORY_E_READONLY = -9,  /* write attempted on a reader */
};

enum directory_mode {
	DIRECTORY_WRITER, /* the one primary; creates the database if missing */
	DIRECTORY_READER, /* RocksDB secondary; sees writes after directory_refresh() */
};

struct directory_user {
	char address[DIRECTORY_ADDRESS_MAX];      /* normalised local@domain */
	char password_hash[DIRECTORY_HASH_MAX];   /* crypt(3) string, "" = no password login */
	char display_name[DIRECTORY_NAME_MAX];
	uint64_t quota_bytes;                     /* 0 = unlimited */
	bool enabled;                             /* false: logins refused, mail still accepted */
	int64_t created;                          /* unix seconds */
	/* Plaintext secret for shared-secret mechanisms; "" = none. Only
	 * allowed while the user's domain has shared_secret_auth on. */
	char secret[DIRECTORY_SECRET_MAX];
};

/* A domain's settings (directory_domain_get / directory_domain_update). */
struct directory_domain {
	char name[DIRECTORY_DOMAIN_MAX];             /* normalised */
	int64_t created;                             /* unix seconds */
	bool shared_secret_auth;                     /* users' recoverable secrets are stored */
	char kerberos_realm[DIRECTORY_REALM_MAX];    /* principals local@REALM map to local@name; "" = none */
};

struct directory_group {
	char address[DIRECTORY_ADDRESS_MAX];
	char display_name[DIRECTORY_NAME_MAX];
	int64_t created;
};

enum directory_kind {
	DIRECTORY_KIND_NONE = 0,
	DIRECTORY_KIND_USER,
	DIRECTORY_KIND_ALIAS,
	DIRECTORY_KIND_GROUP,
};

struct directory;

/* secondary_dir: node-local folder for a READER's own files (ignored for
 * WRITER). Returns DIRECTORY_OK, DIRECTORY_E_LOCKED when a writer already
 * holds the database, DIRECTORY_E_IO otherwise. */
int directory_open(const char *path, enum directory_mode mode,
		   const char *secondary_dir, struct directory **dir_r,
		   const char **error_r);
void directory_close(struct directory **dir);
const char *directory_strerror(int err);
/* READER: catch up with the writer's latest commits. WRITER: no-op. */
int directory_refresh(struct directory *dir, const char **error_r);
/* WRITER: write recent changes out of the in-memory table into a table
 * file (they are already durable in the log); this bounds the log that
 * readers replay in directory_refresh() and keeps lookups table reads.
 * Call it now and then, e.g. after an import. READER: no-op. */
int directory_flush(struct directory *dir, const char **error_r);

/*
 * Listing functions (directory_*_list, directory_group_members) call cb in
 * key order; a nonzero return from cb stops the walk and is returned as
 * is. Otherwise they return DIRECTORY_OK, or <0 on error (CORRUPT when a
 * stored record does not decode, NODOMAIN/NOTFOUND for a missing domain
 * or group that was named).
 */

/* Domains */
int directory_domain_add(struct directory *dir, const char *domain, const char **error_r);
/* force=false refuses with NOTEMPTY while anything lives in the domain;
 * force=true deletes the domain's users, aliases and groups too. */
int directory_domain_del(struct directory *dir, const char *domain, bool force, const char **error_r);
int directory_domain_exists(struct directory *dir, const char *domain); /* 1, 0 or <0 */
typedef int directory_name_cb(const char *name, void *ctx); /* nonzero stops */
int directory_domain_list(struct directory *dir, directory_name_cb *cb, void *ctx);
/* A domain's settings; NOTFOUND when it is not a local domain. */
int directory_domain_get(struct directory *dir, const char *domain, struct directory_domain *d_r,
			 const char **error_r);
/* Replaces the settings of the existing domain d->name (created is kept).
 * In one atomic write: turning shared_secret_auth off deletes the stored
 * secret of every user of the domain (plaintext must not outlive the
 * setting); the realm index follows kerberos_realm. INVALID for a
 * malformed realm (letters, digits, '.', '-', '_'), EXISTS when another
 * domain already maps that realm, NOTFOUND for an unknown domain. */
int directory_domain_update(struct directory *dir, const struct directory_domain *d,
			    const char **error_r);
/* 1 when at least one domain has shared_secret_auth on, 0 if none, <0. */
int directory_domain_shared_secret_any(struct directory *dir);
/* The domain whose kerberos_realm is realm (exact, case-sensitive) into
 * domain_out (DIRECTORY_DOMAIN_MAX): DIRECTORY_OK, NOTFOUND, INVALID, <0. */
int directory_domain_by_realm(struct directory *dir, const char *realm, char *domain_out,
			      const char **error_r);

/* Users. add: u->address is normalised in place; EXISTS, NODOMAIN, INVALID.
 * password_hash must be "" or a crypt(3) hash (password_is_hash(), else
 * INVALID: a plaintext never goes there); display_name and secret must
 * hold no control characters; a non-empty secret is INVALID unless the
 * domain has shared_secret_auth on (checked in the same write section,
 * and again at batch commit). created = 0 is set to the current time
 * (add) or kept from the stored record (update). */
int directory_user_add(struct directory *dir, struct directory_user *u, const char **error_r);
int directory_user_get(struct directory *dir, const char *address,
		       struct directory_user *u_r, const char **error_r);
/* Replaces an existing user's record (NOTFOUND if absent). */
int directory_user_update(struct directory *dir, const struct directory_user *u, const char **error_r);
int directory_user_del(struct directory *dir, const char *address, const char **error_r);
typedef int directory_user_cb(const struct directory_user *u, void *ctx);
/* domain NULL = all domains. Ordered by domain, then local part. */
int directory_user_list(struct directory *dir, const char *domain,
			directory_user_cb *cb, void *ctx, const char **error_r);

/* Bulk import: many users in one durable commit. add validates each user
 * against the database and the batch itself and returns its own result
 * (the user is skipped on error); commit writes all accepted users in one
 * synced write and empties the batch for reuse. If another write was
 * committed since the batch's checks, commit checks every name again and on
 * a conflict writes nothing and returns EXISTS/NODOMAIN naming the address
 * (the batch is kept). On a reader, add and commit return READONLY. */
struct directory_batch;
struct directory_batch *directory_batch_begin(struct directory *dir);
int directory_batch_user_add(struct directory_batch *b, struct directory_user *u, const char **error_r);
size_t directory_batch_count(const struct directory_batch *b);
int directory_batch_commit(struct directory_batch *b, const char **error_r);
void directory_batch_free(struct directory_batch **b);

/* Aliases: source is local@domain or @domain (catch-all); target is any
 * valid address, local or remote. One source may have many targets. */
int directory_alias_add(struct directory *dir, const char *source, const char *target, const char **error_r);
/* target NULL removes every target of source. */
int directory_alias_del(struct directory *dir, const char *source, const char *target, const char **error_r);
typedef int directory_alias_cb(const char *source, const char *target, void *ctx);
/* source given: its targets; else domain given: all aliases of it; else all. */
int directory_alias_list(struct directory *dir, const char *domain, const char *source,
			 directory_alias_cb *cb, void *ctx, const char **error_r);

/* Groups: an address whose mail goes to its members. */
int directory_group_add(struct directory *dir, struct directory_group *g, const char **error_r);
int directory_group_del(struct directory *dir, const char *address, const char **error_r);
int directory_group_get(struct directory *dir, const char *address,
			struct directory_group *g_r, const char **error_r);
typedef int directory_group_cb(const struct directory_group *g, void *ctx);
int directory_group_list(struct directory *dir, const char *domain,
			 directory_group_cb *cb, void *ctx, const char **error_r);
int directory_group_member_add(struct directory *dir, const char *group, const char *member, const char **error_r);
int directory_group_member_del(struct directory *dir, const char *group, const char *member, const char **error_r);
int directory_group_members(struct directory *dir, const char *group,
			    directory_name_cb *cb, void *ctx, const char **error_r);

/* What is this address? DIRECTORY_KIND_* (>= 0) or <0 on error. */
int directory_lookup_kind(struct directory *dir, const char *address);

/*
 * Recipient resolution, as SMTP RCPT needs it: expands aliases and groups
 * recursively (depth-limited, loops cut, duplicates removed) and calls cb
 * once per final recipient with local=true for a local user, false for a
 * remote address. Order of precedence for each address: user, alias,
 * group, then the domain's catch-all alias.
 * Returns 1 when the address's domain is local and it resolved to at least
 * one recipient; 0 when the domain is not local (nothing called);
 * DIRECTORY_E_NOTFOUND when the domain is local but nothing matches;
 * DIRECTORY_E_INVALID for a malformed address.
 * A target whose domain is local but that matches nothing (e.g. a deleted
 * user still listed in a group) is dropped. An address whose expansion
 * goes deeper than DIRECTORY_RESOLVE_DEPTH fails whole with
 * DIRECTORY_E_NOTFOUND, possibly after cb was called for some recipients:
 * callers discard what they collected on an error. If cb returns <0 the
 * expansion stops and that value is returned; >0 stops it and 1 is
 * returned.
 */
#define DIRECTORY_RESOLVE_DEPTH 8
typedef int directory_resolve_cb(const char *address, bool local, void *ctx);
int directory_resolve(struct directory *dir, const char *address,
		      directory_resolve_cb *cb, void *ctx, const char **error_r);

#endif
