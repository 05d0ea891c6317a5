/*
 * directory_db: the account directory's key-value store, the one place
 * that talks to RocksDB (CONVENTIONS 13). storage/directory*.c see only
 * byte-string keys and values through this interface.
 *
 * Durability: every write (single put/delete and batch commit) is a
 * synced RocksDB write, so a returned DIRECTORY_OK survives a crash.
 * One process writes (the primary, holding RocksDB's LOCK file, an fcntl
 * lock); any number of others read as RocksDB secondaries and see new
 * writes after dirdb_catch_up().
 *
 * Return values follow enum directory_error. Error text is a thread-local
 * string of this file, valid until the thread's next dirdb call.
 */
#ifndef CM_STORAGE_DIRECTORY_DB_H
#define CM_STORAGE_DIRECTORY_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

struct dirdb;
struct dirdb_batch;

/* writer=true: primary, database created if missing; DIRECTORY_E_LOCKED
 * when another writer holds it. writer=false: secondary; secondary_dir is
 * its private folder (created if missing). Else DIRECTORY_E_IO. */
int dirdb_open(const char *path, bool writer, const char *secondary_dir, struct dirdb **db_r,
	       const char **error_r);
void dirdb_close(struct dirdb **db);
bool dirdb_is_writer(const struct dirdb *db);
/* Secondary: replay the primary's new WAL and MANIFEST entries. */
int dirdb_catch_up(struct dirdb *db, const char **error_r);
/* Primary: write the memtable out to a table file (bounds secondaries'
 * catch-up work and makes reads table lookups). */
int dirdb_flush(struct dirdb *db, const char **error_r);

/* 1 found (value replaces val_r's contents, val_r may be NULL), 0 absent,
 * DIRECTORY_E_IO. */
int dirdb_get(struct dirdb *db, const void *key, size_t klen, struct textbuf *val_r,
	      const char **error_r);
int dirdb_put(struct dirdb *db, const void *key, size_t klen, const void *val, size_t vlen,
	      const char **error_r);
int dirdb_delete(struct dirdb *db, const void *key, size_t klen, const char **error_r);

/* Visits keys beginning with prefix in byte order with a bounded
 * iterator (iterate_upper_bound = the prefix's successor). Returns 0 after
 * the last key, the callback's nonzero value when it stopped the walk, or
 * DIRECTORY_E_IO. */
typedef int dirdb_scan_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx);
int dirdb_scan(struct dirdb *db, const void *prefix, size_t plen, dirdb_scan_cb *cb, void *ctx,
	       const char **error_r);
/* 1 when at least one key begins with prefix, 0 if none, DIRECTORY_E_IO. */
int dirdb_prefix_any(struct dirdb *db, const void *prefix, size_t plen, const char **error_r);

/* Write batches: applied atomically by one synced write. */
struct dirdb_batch *dirdb_batch_new(void);
void dirdb_batch_put(struct dirdb_batch *b, const void *key, size_t klen, const void *val,
		     size_t vlen);
void dirdb_batch_delete(struct dirdb_batch *b, const void *key, size_t klen);
size_t dirdb_batch_count(const struct dirdb_batch *b);
void dirdb_batch_clear(struct dirdb_batch *b);
int dirdb_batch_commit(struct dirdb *db, struct dirdb_batch *b, const char **error_r);
void dirdb_batch_free(struct dirdb_batch **b);

#endif
