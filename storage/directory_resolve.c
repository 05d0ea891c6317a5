/*
 * directory_resolve: what an address is, and where its mail goes
 * (directory_lookup_kind, directory_resolve in storage/directory.h).
 *
 * Resolution of one address, with precedence: a user is a final local
 * recipient; else an alias expands to its targets; else a group to its
 * members; else the domain's catch-all alias to its targets. Targets are
 * resolved the same way, recursively: an address in a domain that is not
 * local is a final remote recipient. Every address is expanded at most
 * once (loops are cut where they close), final recipients are reported
 * once each, and expansion stops DIRECTORY_RESOLVE_DEPTH levels down.
 * Each step is a point read or a bounded prefix scan, so the cost does
 * not depend on the size of the directory, only on the fan-out.
 */
#include "storage/directory_internal.h"

#include <stdio.h>
#include <string.h>

struct resolve {
	struct directory *dir;
	directory_resolve_cb *cb;
	void *ctx;
	const char **error_r;
	struct dir_strset visited; /* "address#depth": expanded, at that depth */
	struct dir_strset cut;	   /* addresses reached only past the depth limit */
	struct dir_strset emitted; /* final recipients reported */
	struct dir_strset local_domains, remote_domains;
	bool too_deep;
};

/* Continue (0), stop (1: callback said so), or <0 error. */
enum { RESOLVE_CONTINUE = 0, RESOLVE_STOP = 1 };

struct collect_ctx {
	struct textbuf *out;
	size_t plen;
	const char **error_r;
};

/* Appends the target a key stands for (as written) plus a NUL. */
static int collect_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct collect_ctx *cc = ctx;
	size_t len = klen - cc->plen;
	char target[DIRECTORY_ADDRESS_MAX];

	if (len == 0 || len >= DIRECTORY_ADDRESS_MAX || memchr(key + cc->plen, '\0', len) != NULL)
		return dir_fail_static(cc->error_r, DIRECTORY_E_CORRUPT,
				       "malformed alias or member key");
	dir_target_text(key + cc->plen, len, val, vlen, target);
	textbuf_puts(cc->out, target);
	textbuf_putc(cc->out, '\0');
	return 0;
}

/* The addresses stored after a prefix, as NUL-separated strings. */
static int resolve_collect(struct resolve *r, char type, const struct address *a,
			   struct textbuf *out)
{
	char key[DIR_KEY_MAX];
	size_t klen = dir_key(key, type, a->domain, a->local, NULL, true);
	struct collect_ctx cc = {out, klen, r->error_r};

	textbuf_truncate(out, 0);
	return dirdb_scan(r->dir->db, key, klen, collect_cb, &cc, r->error_r);
}

static int resolve_domain_local(struct resolve *r, const char *domain)
{
	if (dir_strset_contains(&r->local_domains, domain))
		return 1;
	if (dir_strset_contains(&r->remote_domains, domain))
		return 0;
	int ret = dir_domain_local(r->dir, domain, r->error_r);
	if (ret >= 0)
		dir_strset_add(ret > 0 ? &r->local_domains : &r->remote_domains, domain);
	return ret;
}

static int resolve_emit(struct resolve *r, const char *address, bool local)
{
	if (dir_strset_add(&r->emitted, address) == 0)
		return RESOLVE_CONTINUE;
	int ret = r->cb(address, local, r->ctx);
	if (ret == 0)
		return RESOLVE_CONTINUE;
	return ret < 0 ? ret : RESOLVE_STOP;
}

static int resolve_address(struct resolve *r, const char *text, unsigned depth);

/* Resolves every address in the NUL-separated list at depth. */
static int resolve_list(struct resolve *r, const struct textbuf *list, unsigned depth)
{
	for (size_t off = 0; off < list->len; off += strlen(list->data + off) + 1) {
		int ret = resolve_address(r, list->data + off, depth);
		if (ret != RESOLVE_CONTINUE)
			return ret;
	}
	return RESOLVE_CONTINUE;
}

/* Whether text was expanded at depth at most max. */
static bool expanded_within(const struct resolve *r, const char *text, unsigned max)
{
	char key[DIRECTORY_ADDRESS_MAX + 8];
	for (unsigned d = 0; d <= max && d < DIRECTORY_RESOLVE_DEPTH; d++) {
		snprintf(key, sizeof(key), "%s#%u", text, d);
		if (dir_strset_contains(&r->visited, key))
			return true;
	}
	return false;
}

static int resolve_address(struct resolve *r, const char *text, unsigned depth)
{
	struct textbuf list = TEXTBUF_INIT;
	struct address a;
	char key[DIR_KEY_MAX];
	int ret;

	if (address_parse(text, false, &a, NULL) < 0)
		return dir_fail(r->error_r, DIRECTORY_E_CORRUPT,
				"stored target '%s' is not an address", text);
	/* Another domain gets the address as written; ours are looked up,
	 * deduplicated and delivered in their key form. */
	if ((ret = resolve_domain_local(r, a.domain)) <= 0)
		return ret < 0 ? ret : resolve_emit(r, text, false);
	char norm[DIRECTORY_ADDRESS_MAX];
	dir_format(&a, norm);
	text = norm;
	size_t klen = dir_key(key, DIR_KEY_USER, a.domain, a.local, NULL, false);
	if ((ret = dirdb_get(r->dir->db, key, klen, NULL, r->error_r)) != 0)
		return ret < 0 ? ret : resolve_emit(r, text, true);
	/* Depth first: an address met first down a long chain is expanded
	 * again when a shorter path reaches it (its own targets may have been
	 * cut there), never twice at one depth or deeper (loops end). */
	if (expanded_within(r, text, depth))
		return RESOLVE_CONTINUE;
	if (depth >= DIRECTORY_RESOLVE_DEPTH) {
		dir_strset_add(&r->cut, text);
		return RESOLVE_CONTINUE;
	}
	char vkey[DIRECTORY_ADDRESS_MAX + 8];
	snprintf(vkey, sizeof(vkey), "%s#%u", text, depth);
	dir_strset_add(&r->visited, vkey);

	ret = resolve_collect(r, DIR_KEY_ALIAS, &a, &list);
	if (ret == 0 && list.len == 0) {
		klen = dir_key(key, DIR_KEY_GROUP, a.domain, a.local, NULL, false);
		ret = dirdb_get(r->dir->db, key, klen, NULL, r->error_r);
		bool group = ret > 0;
		if (group)
			ret = resolve_collect(r, DIR_KEY_MEMBER, &a, &list);
		if (ret == 0 && !group) {
			a.local[0] = '\0';
			ret = resolve_collect(r, DIR_KEY_ALIAS, &a, &list);
		}
	}
	if (ret == 0)
		ret = resolve_list(r, &list, depth + 1);
	textbuf_free(&list);
	return ret;
}

int directory_resolve(struct directory *dir, const char *address, directory_resolve_cb *cb,
		      void *ctx, const char **error_r)
{
	struct resolve r = {.dir = dir, .cb = cb, .ctx = ctx, .error_r = error_r};
	char text[DIRECTORY_ADDRESS_MAX];
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, false, &a, error_r)) < 0)
		return ret;
	if ((ret = dir_domain_local(dir, a.domain, error_r)) <= 0)
		return ret;
	dir_strset_add(&r.local_domains, a.domain);
	dir_format(&a, text);
	ret = resolve_address(&r, text, 0);
	/* Too deep: an address cut at the limit that no shorter path
	 * expanded. Then no part is delivered: the rest could not be told. */
	for (size_t i = 0; i < r.cut.cap && !r.too_deep; i++)
		r.too_deep = r.cut.slots[i] != NULL &&
			     !expanded_within(&r, r.cut.slots[i], DIRECTORY_RESOLVE_DEPTH);
	if (ret == RESOLVE_CONTINUE && r.too_deep)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND,
			       "%s: aliases nested deeper than %d levels", text,
			       DIRECTORY_RESOLVE_DEPTH);
	else if (ret == RESOLVE_STOP)
		ret = 1;
	else if (ret == RESOLVE_CONTINUE && r.emitted.count > 0)
		ret = 1;
	else if (ret == RESOLVE_CONTINUE)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such recipient %s", text);
	dir_strset_free(&r.visited);
	dir_strset_free(&r.cut);
	dir_strset_free(&r.emitted);
	dir_strset_free(&r.local_domains);
	dir_strset_free(&r.remote_domains);
	return ret;
}

int directory_lookup_kind(struct directory *dir, const char *address)
{
	struct address a;
	int ret;

	if ((ret = dir_parse_address(address, true, &a, NULL)) < 0)
		return ret;
	return dir_kind(dir, a.domain, a.local, NULL);
}
