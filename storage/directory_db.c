/*
 * directory_db: RocksDB behind the account directory (see
 * storage/directory_db.h). The only file that includes rocksdb/c.h.
 *
 * Tuning, all for point lookups by full key and short prefix scans:
 * a full-key bloom filter (10 bits/key, ~1% false positives) so a miss in
 * a table file costs no block read, a shared LRU block cache, and a
 * hash index inside data blocks so a hit does not binary-search the
 * block. A secondary needs max_open_files = -1 (RocksDB requires it so
 * that it never reopens a table file the primary may have deleted).
 */
#include "storage/directory_db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rocksdb/c.h>

#include "storage/directory.h"

#define DIRDB_BLOCK_CACHE_BYTES (64u << 20)
#define DIRDB_KEY_MAX 1024

struct dirdb {
	rocksdb_t *db;
	rocksdb_options_t *options;
	rocksdb_block_based_table_options_t *table_options;
	rocksdb_cache_t *cache;
	rocksdb_filterpolicy_t *filter; /* owned by table_options once set */
	rocksdb_readoptions_t *read_options;
	rocksdb_writeoptions_t *write_options;
	bool writer;
};

struct dirdb_batch {
	rocksdb_writebatch_t *wb;
};

static _Thread_local char dirdb_errbuf[1024];

__attribute__((format(printf, 3, 4))) static int dirdb_fail(const char **error_r, int code,
							    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dirdb_errbuf, sizeof(dirdb_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = dirdb_errbuf;
	return code;
}

/* Turns a RocksDB error string into DIRECTORY_E_IO and frees it. */
static int dirdb_rocks_error(const char **error_r, const char *what, char *err)
{
	int ret = dirdb_fail(error_r, DIRECTORY_E_IO, "directory %s: %s", what, err);
	free(err);
	return ret;
}

static void dirdb_free_handles(struct dirdb *db)
{
	if (db->db != NULL)
		rocksdb_close(db->db);
	if (db->read_options != NULL)
		rocksdb_readoptions_destroy(db->read_options);
	if (db->write_options != NULL)
		rocksdb_writeoptions_destroy(db->write_options);
	if (db->options != NULL)
		rocksdb_options_destroy(db->options);
	if (db->table_options != NULL)
		rocksdb_block_based_options_destroy(db->table_options);
	if (db->cache != NULL)
		rocksdb_cache_destroy(db->cache);
	free(db);
}

static void dirdb_configure(struct dirdb *db)
{
	db->options = rocksdb_options_create();
	db->table_options = rocksdb_block_based_options_create();
	db->cache = rocksdb_cache_create_lru(DIRDB_BLOCK_CACHE_BYTES);
	db->filter = rocksdb_filterpolicy_create_bloom_full(10);
	rocksdb_block_based_options_set_block_cache(db->table_options, db->cache);
	rocksdb_block_based_options_set_filter_policy(db->table_options, db->filter);
	rocksdb_block_based_options_set_data_block_index_type(
	    db->table_options,
	    rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
	rocksdb_block_based_options_set_data_block_hash_ratio(db->table_options, 0.75);
	rocksdb_options_set_block_based_table_factory(db->options, db->table_options);
	rocksdb_options_set_keep_log_file_num(db->options, 5);
	db->read_options = rocksdb_readoptions_create();
	db->write_options = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(db->write_options, 1);
}

int dirdb_open(const char *path, bool writer, const char *secondary_dir, struct dirdb **db_r,
	       const char **error_r)
{
	struct dirdb *db = calloc(1, sizeof(*db));
	char *err = NULL;

	*db_r = NULL;
	if (db == NULL)
		return dirdb_fail(error_r, DIRECTORY_E_IO, "directory %s: out of memory", path);
	db->writer = writer;
	dirdb_configure(db);
	if (writer) {
		rocksdb_options_set_create_if_missing(db->options, 1);
		db->db = rocksdb_open(db->options, path, &err);
	} else {
		if (secondary_dir == NULL || secondary_dir[0] == '\0') {
			dirdb_free_handles(db);
			return dirdb_fail(error_r, DIRECTORY_E_IO,
					  "directory %s: a reader needs a secondary folder", path);
		}
		if (mkdir(secondary_dir, 0700) < 0 && errno != EEXIST) {
			int ret = dirdb_fail(error_r, DIRECTORY_E_IO, "directory %s: mkdir %s: %s",
					     path, secondary_dir, strerror(errno));
			dirdb_free_handles(db);
			return ret;
		}
		rocksdb_options_set_max_open_files(db->options, -1);
		db->db = rocksdb_open_as_secondary(db->options, path, secondary_dir, &err);
	}
	if (err != NULL) {
		int ret;
		db->db = NULL;
		if (writer && strstr(err, "/LOCK:") != NULL)
			ret =
			    dirdb_fail(error_r, DIRECTORY_E_LOCKED,
				       "directory %s is locked by another writer (%s)", path, err);
		else
			ret = dirdb_fail(error_r, DIRECTORY_E_IO, "directory %s: open as %s: %s",
					 path, writer ? "writer" : "reader", err);
		free(err);
		dirdb_free_handles(db);
		return ret;
	}
	*db_r = db;
	return DIRECTORY_OK;
}

void dirdb_close(struct dirdb **db)
{
	if (*db == NULL)
		return;
	dirdb_free_handles(*db);
	*db = NULL;
}

bool dirdb_is_writer(const struct dirdb *db)
{
	return db->writer;
}

int dirdb_catch_up(struct dirdb *db, const char **error_r)
{
	char *err = NULL;

	if (db->writer)
		return DIRECTORY_OK;
	rocksdb_try_catch_up_with_primary(db->db, &err);
	return err != NULL ? dirdb_rocks_error(error_r, "catch up with writer", err) : DIRECTORY_OK;
}

int dirdb_flush(struct dirdb *db, const char **error_r)
{
	char *err = NULL;

	if (!db->writer)
		return DIRECTORY_OK;
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush(db->db, fo, &err);
	rocksdb_flushoptions_destroy(fo);
	return err != NULL ? dirdb_rocks_error(error_r, "flush", err) : DIRECTORY_OK;
}

int dirdb_get(struct dirdb *db, const void *key, size_t klen, struct textbuf *val_r,
	      const char **error_r)
{
	char *err = NULL;
	rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(db->db, db->read_options, key, klen, &err);

	if (err != NULL)
		return dirdb_rocks_error(error_r, "get", err);
	if (ps == NULL)
		return 0;
	if (val_r != NULL) {
		size_t vlen;
		const char *v = rocksdb_pinnableslice_value(ps, &vlen);
		textbuf_truncate(val_r, 0);
		textbuf_append(val_r, v, vlen);
	}
	rocksdb_pinnableslice_destroy(ps);
	return 1;
}

int dirdb_put(struct dirdb *db, const void *key, size_t klen, const void *val, size_t vlen,
	      const char **error_r)
{
	char *err = NULL;

	rocksdb_put(db->db, db->write_options, key, klen, val, vlen, &err);
	return err != NULL ? dirdb_rocks_error(error_r, "put", err) : DIRECTORY_OK;
}

int dirdb_delete(struct dirdb *db, const void *key, size_t klen, const char **error_r)
{
	char *err = NULL;

	rocksdb_delete(db->db, db->write_options, key, klen, &err);
	return err != NULL ? dirdb_rocks_error(error_r, "delete", err) : DIRECTORY_OK;
}

/* The smallest key greater than every key with this prefix: the prefix
 * without trailing 0xff bytes, last byte + 1. 0 when there is none. */
static size_t dirdb_prefix_successor(const void *prefix, size_t plen, char *out)
{
	memcpy(out, prefix, plen);
	while (plen > 0 && (unsigned char)out[plen - 1] == 0xff)
		plen--;
	if (plen > 0)
		out[plen - 1] = (char)((unsigned char)out[plen - 1] + 1);
	return plen;
}

int dirdb_scan(struct dirdb *db, const void *prefix, size_t plen, dirdb_scan_cb *cb, void *ctx,
	       const char **error_r)
{
	char upper[DIRDB_KEY_MAX];
	char *err = NULL;
	int ret = 0;

	if (plen > sizeof(upper))
		return dirdb_fail(error_r, DIRECTORY_E_IO, "directory scan: prefix too long");
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	size_t ulen = dirdb_prefix_successor(prefix, plen, upper);
	if (ulen > 0)
		rocksdb_readoptions_set_iterate_upper_bound(ro, upper, ulen);
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->db, ro);
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *key = rocksdb_iter_key(it, &klen);
		if (klen < plen || memcmp(key, prefix, plen) != 0)
			break;
		const char *val = rocksdb_iter_value(it, &vlen);
		ret = cb(key, klen, val, vlen, ctx);
		if (ret != 0)
			break;
	}
	if (ret == 0) {
		rocksdb_iter_get_error(it, &err);
		if (err != NULL)
			ret = dirdb_rocks_error(error_r, "scan", err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return ret;
}

static int dirdb_any_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)ctx;
	return 1;
}

int dirdb_prefix_any(struct dirdb *db, const void *prefix, size_t plen, const char **error_r)
{
	return dirdb_scan(db, prefix, plen, dirdb_any_cb, NULL, error_r);
}

struct dirdb_batch *dirdb_batch_new(void)
{
	struct dirdb_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		abort();
	b->wb = rocksdb_writebatch_create();
	return b;
}

void dirdb_batch_put(struct dirdb_batch *b, const void *key, size_t klen, const void *val,
		     size_t vlen)
{
	rocksdb_writebatch_put(b->wb, key, klen, val, vlen);
}

void dirdb_batch_delete(struct dirdb_batch *b, const void *key, size_t klen)
{
	rocksdb_writebatch_delete(b->wb, key, klen);
}

size_t dirdb_batch_count(const struct dirdb_batch *b)
{
	return (size_t)rocksdb_writebatch_count(b->wb);
}

void dirdb_batch_clear(struct dirdb_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
}

int dirdb_batch_commit(struct dirdb *db, struct dirdb_batch *b, const char **error_r)
{
	char *err = NULL;

	if (rocksdb_writebatch_count(b->wb) == 0)
		return DIRECTORY_OK;
	rocksdb_write(db->db, db->write_options, b->wb, &err);
	return err != NULL ? dirdb_rocks_error(error_r, "batch write", err) : DIRECTORY_OK;
}

void dirdb_batch_free(struct dirdb_batch **b)
{
	if (*b == NULL)
		return;
	rocksdb_writebatch_destroy((*b)->wb);
	free(*b);
	*b = NULL;
}
