/*
 * directory_internal: what the storage/directory*.c files share and
 * nothing outside them (tests excepted) may use: the handle, the key
 * scheme, error helpers and a small string set.
 *
 * Key scheme (docs/storage-format.md, "Directory"); names are normalised
 * (lowercase) and never contain NUL, so NUL separators keep every
 * prefix scan exact and the byte order is domain, then local part:
 *   "!format"                     format version, decimal text
 *   D<domain>                     domain record
 *   U<domain>\0<local>            user record
 *   A<domain>\0<local>\0<target>  alias target (catch-all: local "")
 *   G<domain>\0<local>            group record
 *   M<domain>\0<local>\0<member>  group member
 *   S<domain>                     empty: the domain has shared_secret_auth on
 *   K<realm>                      domain name: the domain mapping that realm
 *
 * Writes (check + commit) are serialised by write_lock so that two
 * threads cannot both claim one name; reads take no lock.
 */
#ifndef CM_STORAGE_DIRECTORY_INTERNAL_H
#define CM_STORAGE_DIRECTORY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/address.h"
#include "storage/directory.h"
#include "storage/directory_db.h"

#define DIRECTORY_FORMAT_KEY "!format"
#define DIRECTORY_FORMAT_VERSION 1
#define DIR_KEY_MAX 1024 /* type + 253 + 64 + 320 + separators, rounded */

enum dir_key_type {
	DIR_KEY_DOMAIN = 'D',
	DIR_KEY_USER = 'U',
	DIR_KEY_ALIAS = 'A',
	DIR_KEY_GROUP = 'G',
	DIR_KEY_MEMBER = 'M',
	DIR_KEY_SHARED_SECRET = 'S', /* index of domains storing secrets */
	DIR_KEY_REALM = 'K',	     /* Kerberos realm -> domain */
};

struct directory {
	struct dirdb *db;
	enum directory_mode mode;
	pthread_mutex_t write_lock;
	uint64_t generation; /* bumped by every committed write, under write_lock */
};

/* Builds type + domain [+ \0 local [+ \0 extra]] [+ \0 if trailing_sep];
 * returns the key length. local/extra NULL = absent. */
size_t dir_key(char *buf, char type, const char *domain, const char *local, const char *extra,
	       bool trailing_sep);

/* Formats into the thread-local error string, sets *error_r, returns code. */
int dir_fail(const char **error_r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets *error_r to a static string (or leaves a dirdb one) and returns code. */
int dir_fail_static(const char **error_r, int code, const char *msg);

/* address_parse / domain_normalize mapped to DIRECTORY_E_INVALID with
 * the offending text in the message. */
int dir_parse_address(const char *text, bool allow_catchall, struct address *a_r,
		      const char **error_r);
int dir_parse_domain(const char *text, char *out, const char **error_r);
/* Address as "local@domain" (or "@domain") into out (DIRECTORY_ADDRESS_MAX). */
void dir_format(const struct address *a, char *out);
/* An alias target or group member: its key form (lowercased) in a_r and
 * text, and in as_written the same address with its local part's case as
 * given, or "" when that is the key form. The key form finds, dedupes and
 * deletes; as_written, stored as the key's value, is what mail to another
 * domain is sent to. */
int dir_parse_target(const char *target, struct address *a_r, char *text, char *as_written,
		     const char **error_r);
/* The address a target key stands for: its value when that is the key's
 * address as written (tail: the key form), else the key form; into out
 * (DIRECTORY_ADDRESS_MAX). */
void dir_target_text(const char *tail, size_t tail_len, const char *val, size_t vlen, char *out);

/* 1 when domain (normalised) is local, 0 if not, <0 error. */
int dir_domain_local(struct directory *dir, const char *domain, const char **error_r);
/* 1 when domain (normalised) has shared_secret_auth on, 0 if not, <0. */
int dir_domain_secret_allowed(struct directory *dir, const char *domain, const char **error_r);
/* Adds to b the deletion of domain's S and K index keys (domain_del). */
int dir_domain_del_index(struct directory *dir, const char *domain, struct dirdb_batch *b,
			 const char **error_r);
/* DIRECTORY_KIND_* of domain+local (normalised), or <0 error. */
int dir_kind(struct directory *dir, const char *domain, const char *local, const char **error_r);
/* For adds: DIRECTORY_OK when the domain is local and the name free; else
 * NODOMAIN / EXISTS (naming what holds it) / IO. */
int dir_name_available(struct directory *dir, const struct address *a, const char **error_r);

/* Writer section: READONLY on a reader; else takes write_lock. */
int dir_write_begin(struct directory *dir, const char **error_r);
/* Releases write_lock; committed=true bumps the generation. */
void dir_write_end(struct directory *dir, bool committed);

/* Splits a stored key "<type><domain>\0<local>[\0<rest>]" (rest NULL if
 * the key has no second separator). -1 when the key is malformed. */
int dir_key_split(const char *key, size_t klen, struct address *a_r, const char **rest_r,
		  size_t *rest_len_r);

/* A set of strings (open addressing, grows); for duplicate and loop
 * checks. add: 1 added, 0 already present. */
struct dir_strset {
	char **slots;
	size_t cap, count;
};
int dir_strset_add(struct dir_strset *set, const char *s);
bool dir_strset_contains(const struct dir_strset *set, const char *s);
void dir_strset_free(struct dir_strset *set);

/* Test and maintenance access to the raw store. */
struct dirdb *directory_db(struct directory *dir);

#endif
