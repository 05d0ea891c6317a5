/*
 * directory_alias: aliases and groups of the account directory (see
 * storage/directory.h).
 *
 * An alias target is one empty-valued key A<domain>\0<local>\0<target>,
 * so one source has any number of targets, and the catch-all of a domain
 * is the source with local "". A group is a record under G<domain>\0<local>
 * and each member one empty-valued key M<domain>\0<local>\0<member>.
 * Targets and members are normalised addresses, local or remote; they are
 * not required to exist (mail to them is resolved when it arrives), which
 * keeps deletes of users from having to search every alias and group. A
 * key's value is empty, or the target as written when its local part has
 * capitals (dir_parse_target): mail to another domain keeps them.
 */
#include "storage/directory_internal.h"

#include <string.h>
#include <time.h>

#include "storage/directory_record.h"

int directory_alias_add(struct directory *dir, const char *source, const char *target,
			const char **error_r)
{
	struct address src, dst;
	char key[DIR_KEY_MAX], src_text[DIRECTORY_ADDRESS_MAX], dst_text[DIRECTORY_ADDRESS_MAX],
	    written[DIRECTORY_ADDRESS_MAX];
	int ret;

	if ((ret = dir_parse_address(source, true, &src, error_r)) < 0 ||
	    (ret = dir_parse_target(target, &dst, dst_text, written, error_r)) < 0)
		return ret;
	dir_format(&src, src_text);
	if (strcmp(src_text, dst_text) == 0)
		return dir_fail(error_r, DIRECTORY_E_INVALID, "alias %s points to itself",
				src_text);
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	size_t klen = dir_key(key, DIR_KEY_ALIAS, src.domain, src.local, dst_text, false);
	ret = dir_domain_local(dir, src.domain, error_r);
	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NODOMAIN, "%s: domain %s is not a local domain",
			       src_text, src.domain);
	if (ret > 0)
		ret = dir_kind(dir, src.domain, src.local, error_r);
	if (ret == DIRECTORY_KIND_USER || ret == DIRECTORY_KIND_GROUP)
		ret = dir_fail(error_r, DIRECTORY_E_EXISTS, "%s is already a %s", src_text,
			       ret == DIRECTORY_KIND_USER ? "user" : "group");
	if (ret == DIRECTORY_KIND_NONE || ret == DIRECTORY_KIND_ALIAS) {
		ret = dirdb_get(dir->db, key, klen, NULL, error_r);
		if (ret > 0)
			ret = dir_fail(error_r, DIRECTORY_E_EXISTS, "alias %s -> %s already exists",
				       src_text, dst_text);
		else if (ret == 0)
			ret = dirdb_put(dir->db, key, klen, written, strlen(written), error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	return ret;
}

static int alias_del_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	(void)val, (void)vlen;
	dirdb_batch_delete(ctx, key, klen);
	return 0;
}

int directory_alias_del(struct directory *dir, const char *source, const char *target,
			const char **error_r)
{
	struct address src, dst;
	char key[DIR_KEY_MAX], src_text[DIRECTORY_ADDRESS_MAX],
	    dst_text[DIRECTORY_ADDRESS_MAX] = "";
	struct dirdb_batch *batch = dirdb_batch_new();
	size_t klen;
	int ret;

	if ((ret = dir_parse_address(source, true, &src, error_r)) < 0 ||
	    (target != NULL && (ret = dir_parse_address(target, false, &dst, error_r)) < 0))
		goto out_free;
	dir_format(&src, src_text);
	if (target != NULL)
		dir_format(&dst, dst_text);
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		goto out_free;
	if (target != NULL) {
		klen = dir_key(key, DIR_KEY_ALIAS, src.domain, src.local, dst_text, false);
		ret = dirdb_get(dir->db, key, klen, NULL, error_r);
		if (ret > 0)
			dirdb_batch_delete(batch, key, klen);
	} else {
		klen = dir_key(key, DIR_KEY_ALIAS, src.domain, src.local, NULL, true);
		ret = dirdb_scan(dir->db, key, klen, alias_del_cb, batch, error_r);
	}
	if (ret >= 0 && dirdb_batch_count(batch) == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no alias %s%s%s", src_text,
			       target != NULL ? " -> " : "", dst_text);
	else if (ret >= 0)
		ret = dirdb_batch_commit(dir->db, batch, error_r);
	dir_write_end(dir, ret == DIRECTORY_OK);
out_free:
	dirdb_batch_free(&batch);
	return ret;
}

struct alias_list_ctx {
	directory_alias_cb *cb;
	void *ctx;
	const char **error_r;
};

static int alias_list_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct alias_list_ctx *lc = ctx;
	char source[DIRECTORY_ADDRESS_MAX], target[DIRECTORY_ADDRESS_MAX];
	struct address a;
	const char *rest;
	size_t rest_len;

	if (dir_key_split(key, klen, &a, &rest, &rest_len) < 0 || rest == NULL || rest_len == 0 ||
	    rest_len >= sizeof(target) || memchr(rest, '\0', rest_len) != NULL)
		return dir_fail_static(lc->error_r, DIRECTORY_E_CORRUPT, "malformed alias key");
	dir_target_text(rest, rest_len, val, vlen, target);
	dir_format(&a, source);
	return lc->cb(source, target, lc->ctx);
}

int directory_alias_list(struct directory *dir, const char *domain, const char *source,
			 directory_alias_cb *cb, void *ctx, const char **error_r)
{
	struct alias_list_ctx lc = {cb, ctx, error_r};
	char key[DIR_KEY_MAX], name[ADDRESS_DOMAIN_MAX + 1];
	struct address src;
	size_t klen = 1;
	int ret;

	key[0] = DIR_KEY_ALIAS;
	if (source != NULL) {
		if ((ret = dir_parse_address(source, true, &src, error_r)) < 0)
			return ret;
		klen = dir_key(key, DIR_KEY_ALIAS, src.domain, src.local, NULL, true);
	} else if (domain != NULL) {
		if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
			return ret;
		if ((ret = dir_domain_local(dir, name, error_r)) <= 0)
			return ret < 0 ? ret
				       : dir_fail(error_r, DIRECTORY_E_NODOMAIN,
						  "domain %s is not a local domain", name);
		klen = dir_key(key, DIR_KEY_ALIAS, name, NULL, NULL, true);
	}
	return dirdb_scan(dir->db, key, klen, alias_list_cb, &lc, error_r);
}

/* ---- groups ---- */

int directory_group_add(struct directory *dir, struct directory_group *g, const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf rec = TEXTBUF_INIT;
	struct address a;
	int ret;

	if (strnlen(g->address, sizeof(g->address)) == sizeof(g->address) ||
	    strnlen(g->display_name, sizeof(g->display_name)) == sizeof(g->display_name))
		return dir_fail_static(error_r, DIRECTORY_E_INVALID, "group field not terminated");
	if ((ret = dir_parse_address(g->address, false, &a, error_r)) < 0)
		return ret;
	for (const char *p = g->display_name; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return dir_fail_static(error_r, DIRECTORY_E_INVALID,
					       "group display name holds control characters");
	}
	dir_format(&a, g->address);
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = dir_name_available(dir, &a, error_r);
	if (ret == DIRECTORY_OK) {
		if (g->created == 0)
			g->created = (int64_t)time(NULL);
		size_t klen = dir_key(key, DIR_KEY_GROUP, a.domain, a.local, NULL, false);
		if ((ret = directory_record_group_encode(g, &rec)) == DIRECTORY_OK)
			ret = dirdb_put(dir->db, key, klen, rec.data, rec.len, error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	textbuf_free(&rec);
	return ret;
}

/* 1 when the group exists (record in rec_r if given), else NOTFOUND/IO. */
static int group_read(struct directory *dir, const struct address *a, struct textbuf *rec_r,
		      const char **error_r)
{
	char key[DIR_KEY_MAX];
	size_t klen = dir_key(key, DIR_KEY_GROUP, a->domain, a->local, NULL, false);
	int ret = dirdb_get(dir->db, key, klen, rec_r, error_r);
	if (ret == 0)
		return dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such group %s@%s", a->local,
				a->domain);
	return ret;
}

int directory_group_del(struct directory *dir, const char *address, const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct dirdb_batch *batch;
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, false, &a, error_r)) < 0)
		return ret;
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	batch = dirdb_batch_new();
	ret = group_read(dir, &a, NULL, error_r);
	if (ret > 0) {
		size_t klen = dir_key(key, DIR_KEY_MEMBER, a.domain, a.local, NULL, true);
		ret = dirdb_scan(dir->db, key, klen, alias_del_cb, batch, error_r);
	}
	if (ret >= 0) {
		size_t klen = dir_key(key, DIR_KEY_GROUP, a.domain, a.local, NULL, false);
		dirdb_batch_delete(batch, key, klen);
		ret = dirdb_batch_commit(dir->db, batch, error_r);
	}
	dir_write_end(dir, ret == DIRECTORY_OK);
	dirdb_batch_free(&batch);
	return ret;
}

int directory_group_get(struct directory *dir, const char *address, struct directory_group *g_r,
			const char **error_r)
{
	struct textbuf rec = TEXTBUF_INIT;
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, false, &a, error_r)) < 0)
		return ret;
	ret = group_read(dir, &a, &rec, error_r);
	if (ret > 0 && directory_record_group_decode(rec.data, rec.len, g_r) < 0)
		ret = dir_fail(error_r, DIRECTORY_E_CORRUPT,
			       "group record of %s@%s does not decode", a.local, a.domain);
	else if (ret > 0) {
		dir_format(&a, g_r->address);
		ret = DIRECTORY_OK;
	}
	textbuf_free(&rec);
	return ret;
}

struct group_list_ctx {
	directory_group_cb *cb;
	directory_name_cb *name_cb;
	void *ctx;
	const char **error_r;
};

static int group_list_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct group_list_ctx *lc = ctx;
	struct directory_group g;
	struct address a;
	const char *rest;
	size_t rest_len;

	if (dir_key_split(key, klen, &a, &rest, &rest_len) < 0 || rest != NULL)
		return dir_fail_static(lc->error_r, DIRECTORY_E_CORRUPT, "malformed group key");
	if (directory_record_group_decode(val, vlen, &g) < 0)
		return dir_fail(lc->error_r, DIRECTORY_E_CORRUPT,
				"group record of %s@%s does not decode", a.local, a.domain);
	dir_format(&a, g.address);
	return lc->cb(&g, lc->ctx);
}

int directory_group_list(struct directory *dir, const char *domain, directory_group_cb *cb,
			 void *ctx, const char **error_r)
{
	struct group_list_ctx lc = {cb, NULL, ctx, error_r};
	char key[DIR_KEY_MAX], name[ADDRESS_DOMAIN_MAX + 1];
	size_t klen = 1;
	int ret;

	key[0] = DIR_KEY_GROUP;
	if (domain != NULL) {
		if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
			return ret;
		if ((ret = dir_domain_local(dir, name, error_r)) <= 0)
			return ret < 0 ? ret
				       : dir_fail(error_r, DIRECTORY_E_NODOMAIN,
						  "domain %s is not a local domain", name);
		klen = dir_key(key, DIR_KEY_GROUP, name, NULL, NULL, true);
	}
	return dirdb_scan(dir->db, key, klen, group_list_cb, &lc, error_r);
}

/* Parses group and member and builds the member key; checks the group. */
static int member_key(struct directory *dir, const char *group, const char *member, char *key,
		      size_t *klen_r, char *member_text, char *written, const char **error_r)
{
	struct address g, m;
	char group_text[DIRECTORY_ADDRESS_MAX];
	int ret;

	if ((ret = dir_parse_address(group, false, &g, error_r)) < 0 ||
	    (ret = dir_parse_target(member, &m, member_text, written, error_r)) < 0)
		return ret;
	dir_format(&g, group_text);
	if (strcmp(group_text, member_text) == 0)
		return dir_fail(error_r, DIRECTORY_E_INVALID, "group %s cannot contain itself",
				group_text);
	if ((ret = group_read(dir, &g, NULL, error_r)) < 0)
		return ret;
	*klen_r = dir_key(key, DIR_KEY_MEMBER, g.domain, g.local, member_text, false);
	return DIRECTORY_OK;
}

int directory_group_member_add(struct directory *dir, const char *group, const char *member,
			       const char **error_r)
{
	char key[DIR_KEY_MAX], member_text[DIRECTORY_ADDRESS_MAX], written[DIRECTORY_ADDRESS_MAX];
	size_t klen;
	int ret;

	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = member_key(dir, group, member, key, &klen, member_text, written, error_r);
	if (ret == DIRECTORY_OK)
		ret = dirdb_get(dir->db, key, klen, NULL, error_r);
	if (ret > 0)
		ret = dir_fail(error_r, DIRECTORY_E_EXISTS, "%s is already a member", member_text);
	else if (ret == 0)
		ret = dirdb_put(dir->db, key, klen, written, strlen(written), error_r);
	dir_write_end(dir, ret == DIRECTORY_OK);
	return ret;
}

int directory_group_member_del(struct directory *dir, const char *group, const char *member,
			       const char **error_r)
{
	char key[DIR_KEY_MAX], member_text[DIRECTORY_ADDRESS_MAX], written[DIRECTORY_ADDRESS_MAX];
	size_t klen;
	int ret;

	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	ret = member_key(dir, group, member, key, &klen, member_text, written, error_r);
	if (ret == DIRECTORY_OK)
		ret = dirdb_get(dir->db, key, klen, NULL, error_r);
	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "%s is not a member", member_text);
	else if (ret > 0)
		ret = dirdb_delete(dir->db, key, klen, error_r);
	dir_write_end(dir, ret == DIRECTORY_OK);
	return ret;
}

static int member_list_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct group_list_ctx *lc = ctx;
	char member[DIRECTORY_ADDRESS_MAX];
	struct address a;
	const char *rest;
	size_t rest_len;

	if (dir_key_split(key, klen, &a, &rest, &rest_len) < 0 || rest == NULL || rest_len == 0 ||
	    rest_len >= sizeof(member) || memchr(rest, '\0', rest_len) != NULL)
		return dir_fail_static(lc->error_r, DIRECTORY_E_CORRUPT, "malformed member key");
	dir_target_text(rest, rest_len, val, vlen, member);
	return lc->name_cb(member, lc->ctx);
}

int directory_group_members(struct directory *dir, const char *group, directory_name_cb *cb,
			    void *ctx, const char **error_r)
{
	struct group_list_ctx lc = {NULL, cb, ctx, error_r};
	char key[DIR_KEY_MAX];
	struct address g;
	int ret;

	if ((ret = dir_parse_address(group, false, &g, error_r)) < 0)
		return ret;
	if ((ret = group_read(dir, &g, NULL, error_r)) < 0)
		return ret;
	size_t klen = dir_key(key, DIR_KEY_MEMBER, g.domain, g.local, NULL, true);
	return dirdb_scan(dir->db, key, klen, member_list_cb, &lc, error_r);
}
