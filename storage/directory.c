/*
 * directory: opening the account directory, its shared helpers (keys,
 * errors, name checks, the writer section, a string set) and domains.
 * Users and batches live in directory_user.c, aliases and groups in
 * directory_alias.c, recipient resolution in directory_resolve.c; the
 * key scheme is in storage/directory_internal.h.
 */
#include "storage/directory_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/directory_record.h"

static _Thread_local char dir_errbuf[1024];

int dir_fail(const char **error_r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dir_errbuf, sizeof(dir_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = dir_errbuf;
	return code;
}

int dir_fail_static(const char **error_r, int code, const char *msg)
{
	if (error_r != NULL)
		*error_r = msg;
	return code;
}

const char *directory_strerror(int err)
{
	switch (err) {
	case DIRECTORY_OK:
		return "ok";
	case DIRECTORY_E_NOTFOUND:
		return "not found";
	case DIRECTORY_E_EXISTS:
		return "already exists";
	case DIRECTORY_E_INVALID:
		return "invalid name or value";
	case DIRECTORY_E_NODOMAIN:
		return "not a local domain";
	case DIRECTORY_E_NOTEMPTY:
		return "domain not empty";
	case DIRECTORY_E_IO:
		return "directory I/O error";
	case DIRECTORY_E_CORRUPT:
		return "corrupt directory record";
	case DIRECTORY_E_LOCKED:
		return "directory locked by another writer";
	case DIRECTORY_E_READONLY:
		return "directory opened read-only";
	default:
		return "unknown directory error";
	}
}

size_t dir_key(char *buf, char type, const char *domain, const char *local, const char *extra,
	       bool trailing_sep)
{
	/* Callers pass normalised names, bounded by struct address and
	 * DIRECTORY_ADDRESS_MAX, so the sum always fits DIR_KEY_MAX. */
	size_t n = 0;
	buf[n++] = type;
	size_t len = strlen(domain);
	memcpy(buf + n, domain, len);
	n += len;
	if (local != NULL) {
		buf[n++] = '\0';
		len = strlen(local);
		memcpy(buf + n, local, len);
		n += len;
		if (extra != NULL) {
			buf[n++] = '\0';
			len = strlen(extra);
			memcpy(buf + n, extra, len);
			n += len;
		}
	}
	if (trailing_sep)
		buf[n++] = '\0';
	return n;
}

int dir_key_split(const char *key, size_t klen, struct address *a_r, const char **rest_r,
		  size_t *rest_len_r)
{
	const char *p = key + 1, *end = key + klen;
	const char *sep = klen > 1 ? memchr(p, '\0', (size_t)(end - p)) : NULL;
	if (sep == NULL || (size_t)(sep - p) > ADDRESS_DOMAIN_MAX)
		return -1;
	memcpy(a_r->domain, p, (size_t)(sep - p));
	a_r->domain[sep - p] = '\0';
	p = sep + 1;
	sep = memchr(p, '\0', (size_t)(end - p));
	const char *local_end = sep != NULL ? sep : end;
	if ((size_t)(local_end - p) > ADDRESS_LOCAL_MAX)
		return -1;
	memcpy(a_r->local, p, (size_t)(local_end - p));
	a_r->local[local_end - p] = '\0';
	*rest_r = sep != NULL ? sep + 1 : NULL;
	*rest_len_r = sep != NULL ? (size_t)(end - sep - 1) : 0;
	return 0;
}

int dir_parse_address(const char *text, bool allow_catchall, struct address *a_r,
		      const char **error_r)
{
	const char *why;
	if (address_parse(text, allow_catchall, a_r, &why) < 0)
		return dir_fail(error_r, DIRECTORY_E_INVALID, "invalid address '%.*s': %s",
				DIRECTORY_ADDRESS_MAX, text != NULL ? text : "", why);
	return DIRECTORY_OK;
}

int dir_parse_domain(const char *text, char *out, const char **error_r)
{
	const char *why;
	if (domain_normalize(text, out, ADDRESS_DOMAIN_MAX + 1, &why) < 0)
		return dir_fail(error_r, DIRECTORY_E_INVALID, "invalid domain '%.*s': %s",
				DIRECTORY_ADDRESS_MAX, text != NULL ? text : "", why);
	return DIRECTORY_OK;
}

void dir_format(const struct address *a, char *out)
{
	/* Always fits: 64 + 1 + 253 + 1 < DIRECTORY_ADDRESS_MAX. */
	(void)address_format(a, out, DIRECTORY_ADDRESS_MAX);
}

int dir_parse_target(const char *target, struct address *a_r, char *text, char *as_written,
		     const char **error_r)
{
	int ret = dir_parse_address(target, false, a_r, error_r);
	if (ret < 0)
		return ret;
	dir_format(a_r, text);
	struct address cased;
	as_written[0] = '\0';
	if (address_parse_cased(target, false, &cased, NULL) == 0) {
		dir_format(&cased, as_written);
		if (strcmp(as_written, text) == 0)
			as_written[0] = '\0';
	}
	return DIRECTORY_OK;
}

void dir_target_text(const char *tail, size_t tail_len, const char *val, size_t vlen, char *out)
{
	snprintf(out, DIRECTORY_ADDRESS_MAX, "%.*s", (int)tail_len, tail);
	if (vlen == 0 || vlen >= DIRECTORY_ADDRESS_MAX || memchr(val, '\0', vlen) != NULL)
		return;
	char written[DIRECTORY_ADDRESS_MAX], norm[DIRECTORY_ADDRESS_MAX];
	memcpy(written, val, vlen);
	written[vlen] = '\0';
	struct address a;
	if (address_parse(written, false, &a, NULL) < 0)
		return;
	dir_format(&a, norm);
	if (strcmp(norm, out) == 0)
		memcpy(out, written, vlen + 1);
}

int dir_domain_local(struct directory *dir, const char *domain, const char **error_r)
{
	char key[DIR_KEY_MAX];
	size_t klen = dir_key(key, DIR_KEY_DOMAIN, domain, NULL, NULL, false);
	return dirdb_get(dir->db, key, klen, NULL, error_r);
}

int dir_kind(struct directory *dir, const char *domain, const char *local, const char **error_r)
{
	char key[DIR_KEY_MAX];
	size_t klen;
	int ret;

	if (local[0] != '\0') {
		klen = dir_key(key, DIR_KEY_USER, domain, local, NULL, false);
		if ((ret = dirdb_get(dir->db, key, klen, NULL, error_r)) != 0)
			return ret < 0 ? ret : DIRECTORY_KIND_USER;
	}
	klen = dir_key(key, DIR_KEY_ALIAS, domain, local, NULL, true);
	if ((ret = dirdb_prefix_any(dir->db, key, klen, error_r)) != 0)
		return ret < 0 ? ret : DIRECTORY_KIND_ALIAS;
	if (local[0] != '\0') {
		klen = dir_key(key, DIR_KEY_GROUP, domain, local, NULL, false);
		if ((ret = dirdb_get(dir->db, key, klen, NULL, error_r)) != 0)
			return ret < 0 ? ret : DIRECTORY_KIND_GROUP;
	}
	return DIRECTORY_KIND_NONE;
}

int dir_name_available(struct directory *dir, const struct address *a, const char **error_r)
{
	static const char *const kinds[] = {"", "a user", "an alias", "a group"};
	char text[DIRECTORY_ADDRESS_MAX];
	int ret;

	dir_format(a, text);
	if ((ret = dir_domain_local(dir, a->domain, error_r)) <= 0)
		return ret < 0 ? ret
			       : dir_fail(error_r, DIRECTORY_E_NODOMAIN,
					  "%s: domain %s is not a local domain", text, a->domain);
	if ((ret = dir_kind(dir, a->domain, a->local, error_r)) < 0)
		return ret;
	if (ret != DIRECTORY_KIND_NONE)
		return dir_fail(error_r, DIRECTORY_E_EXISTS, "%s is already %s", text, kinds[ret]);
	return DIRECTORY_OK;
}

int dir_write_begin(struct directory *dir, const char **error_r)
{
	if (dir->mode != DIRECTORY_WRITER)
		return dir_fail_static(error_r, DIRECTORY_E_READONLY,
				       "the directory is open read-only on this node");
	pthread_mutex_lock(&dir->write_lock);
	return DIRECTORY_OK;
}

void dir_write_end(struct directory *dir, bool committed)
{
	if (committed)
		dir->generation++;
	pthread_mutex_unlock(&dir->write_lock);
}

struct dirdb *directory_db(struct directory *dir)
{
	return dir->db;
}

/* ---- string set: FNV-1a, linear probing, load factor <= 1/2 ---- */

static size_t dir_strset_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static void dir_strset_grow(struct dir_strset *set)
{
	size_t cap = set->cap == 0 ? 64 : set->cap * 2;
	char **slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		abort();
	for (size_t i = 0; i < set->cap; i++) {
		if (set->slots[i] == NULL)
			continue;
		size_t j = dir_strset_hash(set->slots[i]) & (cap - 1);
		while (slots[j] != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = set->slots[i];
	}
	free(set->slots);
	set->slots = slots;
	set->cap = cap;
}

bool dir_strset_contains(const struct dir_strset *set, const char *s)
{
	if (set->cap == 0)
		return false;
	for (size_t j = dir_strset_hash(s) & (set->cap - 1); set->slots[j] != NULL;
	     j = (j + 1) & (set->cap - 1)) {
		if (strcmp(set->slots[j], s) == 0)
			return true;
	}
	return false;
}

int dir_strset_add(struct dir_strset *set, const char *s)
{
	if (dir_strset_contains(set, s))
		return 0;
	if ((set->count + 1) * 2 > set->cap)
		dir_strset_grow(set);
	size_t j = dir_strset_hash(s) & (set->cap - 1);
	while (set->slots[j] != NULL)
		j = (j + 1) & (set->cap - 1);
	set->slots[j] = strdup(s);
	if (set->slots[j] == NULL)
		abort();
	set->count++;
	return 1;
}

void dir_strset_free(struct dir_strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	set->slots = NULL;
	set->cap = set->count = 0;
}

/* ---- open / close ---- */

static int directory_check_format(struct directory *dir, const char *path, const char **error_r)
{
	struct textbuf val = TEXTBUF_INIT;
	int ret =
	    dirdb_get(dir->db, DIRECTORY_FORMAT_KEY, strlen(DIRECTORY_FORMAT_KEY), &val, error_r);

	if (ret == 0 && dir->mode == DIRECTORY_WRITER) {
		char v[16];
		int n = snprintf(v, sizeof(v), "%d", DIRECTORY_FORMAT_VERSION);
		ret = dirdb_put(dir->db, DIRECTORY_FORMAT_KEY, strlen(DIRECTORY_FORMAT_KEY), v,
				(size_t)n, error_r);
	} else if (ret > 0) {
		char *end;
		long version = strtol(textbuf_str(&val), &end, 10);
		if (val.len == 0 || *end != '\0' || version < 1)
			ret = dir_fail(error_r, DIRECTORY_E_CORRUPT,
				       "directory %s: unreadable format version", path);
		else if (version > DIRECTORY_FORMAT_VERSION)
			ret = dir_fail(error_r, DIRECTORY_E_CORRUPT,
				       "directory %s: format %ld is newer than this build's %d",
				       path, version, DIRECTORY_FORMAT_VERSION);
		else
			ret = DIRECTORY_OK;
	}
	textbuf_free(&val);
	return ret < 0 ? ret : DIRECTORY_OK;
}

int directory_open(const char *path, enum directory_mode mode, const char *secondary_dir,
		   struct directory **dir_r, const char **error_r)
{
	struct directory *dir;
	int ret;

	*dir_r = NULL;
	if (path == NULL || (mode != DIRECTORY_WRITER && mode != DIRECTORY_READER))
		return dir_fail_static(error_r, DIRECTORY_E_INVALID,
				       "directory_open: bad arguments");
	dir = calloc(1, sizeof(*dir));
	if (dir == NULL)
		return dir_fail_static(error_r, DIRECTORY_E_IO, "out of memory");
	dir->mode = mode;
	pthread_mutex_init(&dir->write_lock, NULL);
	ret = dirdb_open(path, mode == DIRECTORY_WRITER, secondary_dir, &dir->db, error_r);
	if (ret == DIRECTORY_OK)
		ret = directory_check_format(dir, path, error_r);
	if (ret != DIRECTORY_OK) {
		directory_close(&dir);
		return ret;
	}
	*dir_r = dir;
	return DIRECTORY_OK;
}

void directory_close(struct directory **dir)
{
	if (*dir == NULL)
		return;
	dirdb_close(&(*dir)->db);
	pthread_mutex_destroy(&(*dir)->write_lock);
	free(*dir);
	*dir = NULL;
}

int directory_refresh(struct directory *dir, const char **error_r)
{
	return dirdb_catch_up(dir->db, error_r);
}

int directory_flush(struct directory *dir, const char **error_r)
{
	return dirdb_flush(dir->db, error_r);
}

/* ---- domains ---- */

int directory_domain_add(struct directory *dir, const char *domain, const char **error_r)
{
	char name[ADDRESS_DOMAIN_MAX + 1], key[DIR_KEY_MAX];
	struct textbuf rec = TEXTBUF_INIT;
	int ret;

	if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
		return ret;
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = dir_domain_local(dir, name, error_r);
	if (ret > 0)
		ret = dir_fail(error_r, DIRECTORY_E_EXISTS, "domain %s already exists", name);
	if (ret == 0) {
		size_t klen = dir_key(key, DIR_KEY_DOMAIN, name, NULL, NULL, false);
		directory_record_domain_encode((int64_t)time(NULL), &rec);
		ret = dirdb_put(dir->db, key, klen, rec.data, rec.len, error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	textbuf_free(&rec);
	return ret;
}

/* Everything that lives under a domain, by key type. */
static const struct {
	char type;
	const char *what;
} domain_contents[] = {
    {DIR_KEY_USER, "users"},
    {DIR_KEY_ALIAS, "aliases"},
    {DIR_KEY_GROUP, "groups"},
    {DIR_KEY_MEMBER, "group members"},
};

static int domain_del_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	(void)val, (void)vlen;
	dirdb_batch_delete(ctx, key, klen);
	return 0;
}

int directory_domain_del(struct directory *dir, const char *domain, bool force,
			 const char **error_r)
{
	char name[ADDRESS_DOMAIN_MAX + 1], key[DIR_KEY_MAX];
	struct dirdb_batch *batch = NULL;
	size_t klen;
	int ret;

	if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
		return ret;
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = dir_domain_local(dir, name, error_r);
	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such domain %s", name);
	if (ret < 0)
		goto out;
	batch = dirdb_batch_new();
	for (size_t i = 0; i < sizeof(domain_contents) / sizeof(domain_contents[0]); i++) {
		klen = dir_key(key, domain_contents[i].type, name, NULL, NULL, true);
		if (!force) {
			ret = dirdb_prefix_any(dir->db, key, klen, error_r);
			if (ret > 0)
				ret = dir_fail(error_r, DIRECTORY_E_NOTEMPTY,
					       "domain %s still has %s (delete them or force)",
					       name, domain_contents[i].what);
		} else {
			ret = dirdb_scan(dir->db, key, klen, domain_del_cb, batch, error_r);
		}
		if (ret < 0)
			goto out;
	}
	if ((ret = dir_domain_del_index(dir, name, batch, error_r)) < 0)
		goto out;
	klen = dir_key(key, DIR_KEY_DOMAIN, name, NULL, NULL, false);
	dirdb_batch_delete(batch, key, klen);
	ret = dirdb_batch_commit(dir->db, batch, error_r);
out:
	dir_write_end(dir, ret == DIRECTORY_OK);
	dirdb_batch_free(&batch);
	return ret;
}

int directory_domain_exists(struct directory *dir, const char *domain)
{
	char name[ADDRESS_DOMAIN_MAX + 1];
	int ret;

	if ((ret = dir_parse_domain(domain, name, NULL)) < 0)
		return ret;
	return dir_domain_local(dir, name, NULL);
}

struct domain_list_ctx {
	directory_name_cb *cb;
	void *ctx;
};

static int domain_list_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct domain_list_ctx *lc = ctx;
	char name[ADDRESS_DOMAIN_MAX + 1];

	(void)val, (void)vlen;
	if (klen < 2 || klen - 1 > ADDRESS_DOMAIN_MAX || memchr(key + 1, '\0', klen - 1) != NULL)
		return dir_fail_static(NULL, DIRECTORY_E_CORRUPT, NULL);
	memcpy(name, key + 1, klen - 1);
	name[klen - 1] = '\0';
	return lc->cb(name, lc->ctx);
}

int directory_domain_list(struct directory *dir, directory_name_cb *cb, void *ctx)
{
	struct domain_list_ctx lc = {cb, ctx};
	char prefix = DIR_KEY_DOMAIN;
	return dirdb_scan(dir->db, &prefix, 1, domain_list_cb, &lc, NULL);
}
