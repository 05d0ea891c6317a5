/*
 * directory_user: users of the account directory and bulk import through
 * batches (see storage/directory.h). A user is one key U<domain>\0<local>
 * whose value is a directory_record user record.
 *
 * Security stance: password_hash holds only crypt(3) hashes (a
 * plaintext-looking one is refused, never hashed here: hashing is slow and
 * belongs to the caller's worker threads); the recoverable secret is
 * accepted only for domains with shared_secret_auth on, checked inside
 * the write section (and at batch commit) so it cannot race the setting
 * being turned off; display names may not carry control characters (they
 * end up in headers and HTML); no error message ever includes a password
 * hash or a secret.
 *
 * Batches check every user against the database and the batch itself at
 * add time. Commit writes them in one synced write; if any other write
 * was committed in between (the directory's generation moved), every
 * name is checked again first and nothing is written on a conflict.
 */
#include "storage/directory_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/password.h"
#include "storage/directory_record.h"

struct directory_batch {
	struct directory *dir;
	struct dirdb_batch *wb;
	struct dir_strset names;		  /* addresses accepted so far */
	char last_domain[ADDRESS_DOMAIN_MAX + 1]; /* last domain found local */
	struct dir_strset secret_domains;	  /* domains of users with secrets, checked */
	uint64_t generation;			  /* dir->generation before the first check */
	size_t count;
};

static bool user_string_ok(const char *s, size_t size)
{
	size_t len = strnlen(s, size);
	if (len == size)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	}
	return true;
}

/* Validates u and parses its address into a_r; does not touch the DB. */
static int user_validate(const struct directory_user *u, struct address *a_r, const char **error_r)
{
	int ret;

	if (strnlen(u->address, sizeof(u->address)) == sizeof(u->address))
		return dir_fail_static(error_r, DIRECTORY_E_INVALID, "address not terminated");
	if ((ret = dir_parse_address(u->address, false, a_r, error_r)) < 0)
		return ret;
	if (!user_string_ok(u->password_hash, sizeof(u->password_hash)) ||
	    (u->password_hash[0] != '\0' && !password_is_hash(u->password_hash)))
		return dir_fail(error_r, DIRECTORY_E_INVALID,
				"%s: password must be stored as a crypt(3) hash", u->address);
	if (!user_string_ok(u->display_name, sizeof(u->display_name)))
		return dir_fail(error_r, DIRECTORY_E_INVALID,
				"%s: display name too long or holds control characters",
				u->address);
	if (!user_string_ok(u->secret, sizeof(u->secret)))
		return dir_fail(error_r, DIRECTORY_E_INVALID,
				"%s: secret too long or holds control characters", u->address);
	return DIRECTORY_OK;
}

/* A secret may only be stored while the domain allows it. */
static int user_secret_check(struct directory *dir, const struct address *a,
			     const struct directory_user *u, const char **error_r)
{
	if (u->secret[0] == '\0')
		return DIRECTORY_OK;
	int ret = dir_domain_secret_allowed(dir, a->domain, error_r);
	if (ret == 0)
		return dir_fail(
		    error_r, DIRECTORY_E_INVALID,
		    "%s@%s: domain %s does not store secrets (shared-secret-auth is off)", a->local,
		    a->domain, a->domain);
	return ret < 0 ? ret : DIRECTORY_OK;
}

static int user_put(struct directory *dir, const struct address *a, const struct directory_user *u,
		    const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf rec = TEXTBUF_INIT;
	size_t klen = dir_key(key, DIR_KEY_USER, a->domain, a->local, NULL, false);
	int ret = directory_record_user_encode(u, &rec);

	if (ret == DIRECTORY_OK)
		ret = dirdb_put(dir->db, key, klen, rec.data, rec.len, error_r);
	textbuf_free(&rec);
	return ret;
}

int directory_user_add(struct directory *dir, struct directory_user *u, const char **error_r)
{
	struct address a;
	int ret;

	if ((ret = user_validate(u, &a, error_r)) < 0)
		return ret;
	dir_format(&a, u->address);
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = dir_name_available(dir, &a, error_r);
	if (ret == DIRECTORY_OK)
		ret = user_secret_check(dir, &a, u, error_r);
	if (ret == DIRECTORY_OK) {
		if (u->created == 0)
			u->created = (int64_t)time(NULL);
		ret = user_put(dir, &a, u, error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	return ret;
}

/* Reads and decodes the user a; NOTFOUND / CORRUPT / IO. */
static int user_read(struct directory *dir, const struct address *a, struct directory_user *u_r,
		     const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf val = TEXTBUF_INIT;
	size_t klen = dir_key(key, DIR_KEY_USER, a->domain, a->local, NULL, false);
	int ret = dirdb_get(dir->db, key, klen, &val, error_r);

	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such user %s@%s", a->local,
			       a->domain);
	else if (ret > 0 && directory_record_user_decode(val.data, val.len, u_r) < 0)
		ret = dir_fail(error_r, DIRECTORY_E_CORRUPT, "user record of %s@%s does not decode",
			       a->local, a->domain);
	else if (ret > 0)
		ret = DIRECTORY_OK;
	if (ret == DIRECTORY_OK)
		dir_format(a, u_r->address);
	textbuf_free(&val);
	return ret;
}

int directory_user_get(struct directory *dir, const char *address, struct directory_user *u_r,
		       const char **error_r)
{
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, false, &a, error_r)) < 0)
		return ret;
	return user_read(dir, &a, u_r, error_r);
}

int directory_user_update(struct directory *dir, const struct directory_user *u,
			  const char **error_r)
{
	struct directory_user nu = *u, old;
	struct address a;
	int ret;

	if ((ret = user_validate(&nu, &a, error_r)) < 0)
		return ret;
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = user_read(dir, &a, &old, error_r);
	/* A corrupt record may be overwritten: that is how it is repaired. */
	if (ret == DIRECTORY_E_CORRUPT)
		old.created = 0, ret = DIRECTORY_OK;
	if (ret == DIRECTORY_OK)
		ret = user_secret_check(dir, &a, &nu, error_r);
	if (ret == DIRECTORY_OK) {
		if (nu.created == 0)
			nu.created = old.created != 0 ? old.created : (int64_t)time(NULL);
		ret = user_put(dir, &a, &nu, error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	explicit_bzero(&nu, sizeof(nu));
	explicit_bzero(&old, sizeof(old));
	return ret;
}

int directory_user_del(struct directory *dir, const char *address, const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, false, &a, error_r)) < 0)
		return ret;
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	size_t klen = dir_key(key, DIR_KEY_USER, a.domain, a.local, NULL, false);
	ret = dirdb_get(dir->db, key, klen, NULL, error_r);
	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such user %s@%s", a.local,
			       a.domain);
	else if (ret > 0)
		ret = dirdb_delete(dir->db, key, klen, error_r);
	dir_write_end(dir, ret == DIRECTORY_OK);
	return ret;
}

struct user_list_ctx {
	directory_user_cb *cb;
	void *ctx;
	const char **error_r;
};

static int user_list_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct user_list_ctx *lc = ctx;
	struct directory_user u;
	struct address a;
	const char *rest;
	size_t rest_len;

	if (dir_key_split(key, klen, &a, &rest, &rest_len) < 0 || rest != NULL)
		return dir_fail_static(lc->error_r, DIRECTORY_E_CORRUPT, "malformed user key");
	if (directory_record_user_decode(val, vlen, &u) < 0)
		return dir_fail(lc->error_r, DIRECTORY_E_CORRUPT,
				"user record of %s@%s does not decode", a.local, a.domain);
	dir_format(&a, u.address);
	return lc->cb(&u, lc->ctx);
}

int directory_user_list(struct directory *dir, const char *domain, directory_user_cb *cb, void *ctx,
			const char **error_r)
{
	struct user_list_ctx lc = {cb, ctx, error_r};
	char name[ADDRESS_DOMAIN_MAX + 1], key[DIR_KEY_MAX];
	size_t klen = 1;
	int ret;

	key[0] = DIR_KEY_USER;
	if (domain != NULL) {
		if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
			return ret;
		if ((ret = dir_domain_local(dir, name, error_r)) <= 0)
			return ret < 0 ? ret
				       : dir_fail(error_r, DIRECTORY_E_NODOMAIN,
						  "domain %s is not a local domain", name);
		klen = dir_key(key, DIR_KEY_USER, name, NULL, NULL, true);
	}
	return dirdb_scan(dir->db, key, klen, user_list_cb, &lc, error_r);
}

/* ---- batches ---- */

struct directory_batch *directory_batch_begin(struct directory *dir)
{
	struct directory_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		abort();
	b->dir = dir;
	b->wb = dirdb_batch_new();
	return b;
}

static uint64_t batch_generation(struct directory *dir)
{
	pthread_mutex_lock(&dir->write_lock);
	uint64_t gen = dir->generation;
	pthread_mutex_unlock(&dir->write_lock);
	return gen;
}

/* Domain local and name free in the database (not the batch). */
static int batch_check(struct directory_batch *b, const struct address *a, const char **error_r)
{
	if (strcmp(a->domain, b->last_domain) == 0) {
		int ret = dir_kind(b->dir, a->domain, a->local, error_r);
		if (ret == DIRECTORY_KIND_NONE)
			return DIRECTORY_OK;
		if (ret < 0)
			return ret;
	}
	int ret = dir_name_available(b->dir, a, error_r);
	if (ret == DIRECTORY_OK || ret == DIRECTORY_E_EXISTS)
		strcpy(b->last_domain, a->domain);
	return ret;
}

int directory_batch_user_add(struct directory_batch *b, struct directory_user *u,
			     const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf rec = TEXTBUF_INIT;
	struct address a;
	int ret;

	if (b->dir->mode != DIRECTORY_WRITER)
		return dir_fail_static(error_r, DIRECTORY_E_READONLY,
				       "the directory is open read-only on this node");
	if ((ret = user_validate(u, &a, error_r)) < 0)
		return ret;
	dir_format(&a, u->address);
	if (dir_strset_contains(&b->names, u->address))
		return dir_fail(error_r, DIRECTORY_E_EXISTS, "%s appears twice in the batch",
				u->address);
	if (b->count == 0) { /* what an earlier refused add checked may be stale */
		b->generation = batch_generation(b->dir);
		b->last_domain[0] = '\0';
	}
	if ((ret = batch_check(b, &a, error_r)) < 0)
		return ret;
	if (u->secret[0] != '\0' && !dir_strset_contains(&b->secret_domains, a.domain)) {
		if ((ret = user_secret_check(b->dir, &a, u, error_r)) < 0)
			return ret;
		dir_strset_add(&b->secret_domains, a.domain);
	}
	if (u->created == 0)
		u->created = (int64_t)time(NULL);
	if ((ret = directory_record_user_encode(u, &rec)) == DIRECTORY_OK) {
		size_t klen = dir_key(key, DIR_KEY_USER, a.domain, a.local, NULL, false);
		dirdb_batch_put(b->wb, key, klen, rec.data, rec.len);
		dir_strset_add(&b->names, u->address);
		b->count++;
	}
	textbuf_free(&rec);
	return ret;
}

size_t directory_batch_count(const struct directory_batch *b)
{
	return b->count;
}

/* Under write_lock, after another write: every accepted name again. */
static int batch_recheck(struct directory_batch *b, const char **error_r)
{
	for (size_t i = 0; i < b->names.cap; i++) {
		struct address a;
		if (b->names.slots[i] == NULL)
			continue;
		int ret = dir_parse_address(b->names.slots[i], false, &a, error_r);
		if (ret == DIRECTORY_OK)
			ret = dir_name_available(b->dir, &a, error_r);
		if (ret < 0)
			return ret;
	}
	/* A domain may have stopped storing secrets since they were added. */
	for (size_t i = 0; i < b->secret_domains.cap; i++) {
		const char *domain = b->secret_domains.slots[i];
		if (domain == NULL)
			continue;
		int ret = dir_domain_secret_allowed(b->dir, domain, error_r);
		if (ret == 0)
			ret = dir_fail(
			    error_r, DIRECTORY_E_INVALID,
			    "domain %s no longer stores secrets (shared-secret-auth is off)",
			    domain);
		if (ret < 0)
			return ret;
	}
	return DIRECTORY_OK;
}

int directory_batch_commit(struct directory_batch *b, const char **error_r)
{
	int ret;

	if ((ret = dir_write_begin(b->dir, error_r)) < 0)
		return ret;
	if (b->count > 0 && b->generation != b->dir->generation)
		ret = batch_recheck(b, error_r);
	if (ret == DIRECTORY_OK)
		ret = dirdb_batch_commit(b->dir->db, b->wb, error_r);
	dir_write_end(b->dir, ret == DIRECTORY_OK && b->count > 0);
	if (ret == DIRECTORY_OK) {
		dirdb_batch_clear(b->wb);
		dir_strset_free(&b->names);
		dir_strset_free(&b->secret_domains);
		b->last_domain[0] = '\0';
		b->count = 0;
	}
	return ret;
}

void directory_batch_free(struct directory_batch **b)
{
	if (*b == NULL)
		return;
	dirdb_batch_free(&(*b)->wb);
	dir_strset_free(&(*b)->names);
	dir_strset_free(&(*b)->secret_domains);
	free(*b);
	*b = NULL;
}
