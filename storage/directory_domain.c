/*
 * directory_domain: a domain's settings (see storage/directory.h) and the
 * two small indexes they keep, so that the questions asked on every
 * connection or login are single reads rather than scans of all domains:
 *   S<domain>   present while the domain has shared_secret_auth on; "does
 *               any domain store secrets?" is one bounded seek on "S"
 *   K<realm>    the domain that maps a Kerberos realm (one per realm)
 * Domain creation and the forced delete live in directory.c; the delete
 * removes these keys through dir_domain_del_index().
 *
 * Security stance: turning shared_secret_auth off rewrites every user of
 * the domain that holds a secret without it, in the same atomic batch as
 * the setting, so no plaintext outlives the decision to stop storing it.
 */
#include "storage/directory_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/directory_record.h"

/* Realms: what MIT and Active Directory realms use in practice. */
static bool realm_valid(const char *realm)
{
	size_t len = strnlen(realm, DIRECTORY_REALM_MAX);
	if (len == 0 || len >= DIRECTORY_REALM_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = realm[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Reads and decodes domain name's record: OK, NOTFOUND, CORRUPT, IO. */
static int domain_read(struct directory *dir, const char *name, struct directory_domain *d_r,
		       const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf val = TEXTBUF_INIT;
	size_t klen = dir_key(key, DIR_KEY_DOMAIN, name, NULL, NULL, false);
	int ret = dirdb_get(dir->db, key, klen, &val, error_r);

	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no such domain %s", name);
	else if (ret > 0 && directory_record_domain_decode_settings(val.data, val.len, d_r) < 0)
		ret = dir_fail(error_r, DIRECTORY_E_CORRUPT, "domain record of %s does not decode",
			       name);
	else if (ret > 0)
		ret = DIRECTORY_OK;
	if (ret == DIRECTORY_OK)
		snprintf(d_r->name, sizeof(d_r->name), "%s", name);
	textbuf_free(&val);
	return ret;
}

int directory_domain_get(struct directory *dir, const char *domain, struct directory_domain *d_r,
			 const char **error_r)
{
	char name[ADDRESS_DOMAIN_MAX + 1];
	int ret;

	memset(d_r, 0, sizeof(*d_r));
	if ((ret = dir_parse_domain(domain, name, error_r)) < 0)
		return ret;
	return domain_read(dir, name, d_r, error_r);
}

int dir_domain_secret_allowed(struct directory *dir, const char *domain, const char **error_r)
{
	char key[DIR_KEY_MAX];
	size_t klen = dir_key(key, DIR_KEY_SHARED_SECRET, domain, NULL, NULL, false);
	return dirdb_get(dir->db, key, klen, NULL, error_r);
}

int directory_domain_shared_secret_any(struct directory *dir)
{
	char prefix = DIR_KEY_SHARED_SECRET;
	return dirdb_prefix_any(dir->db, &prefix, 1, NULL);
}

int directory_domain_by_realm(struct directory *dir, const char *realm, char *domain_out,
			      const char **error_r)
{
	char key[DIR_KEY_MAX];
	struct textbuf val = TEXTBUF_INIT;
	int ret;

	domain_out[0] = '\0';
	if (realm == NULL || !realm_valid(realm))
		return dir_fail_static(error_r, DIRECTORY_E_INVALID, "invalid Kerberos realm");
	size_t klen = dir_key(key, DIR_KEY_REALM, realm, NULL, NULL, false);
	ret = dirdb_get(dir->db, key, klen, &val, error_r);
	if (ret == 0)
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no domain maps realm %s", realm);
	else if (ret > 0 && (val.len == 0 || val.len >= DIRECTORY_DOMAIN_MAX ||
			     memchr(val.data, '\0', val.len) != NULL))
		ret = dir_fail(error_r, DIRECTORY_E_CORRUPT, "realm index of %s does not decode",
			       realm);
	else if (ret > 0) {
		memcpy(domain_out, val.data, val.len);
		domain_out[val.len] = '\0';
		ret = DIRECTORY_OK;
	}
	textbuf_free(&val);
	/* The index is only a pointer: a stale one (its domain gone, or its
	 * record lost the realm) maps nothing, and the next domain that takes
	 * the realm overwrites it. */
	struct directory_domain d;
	if (ret == DIRECTORY_OK && (domain_read(dir, domain_out, &d, NULL) != DIRECTORY_OK ||
				    strcmp(d.kerberos_realm, realm) != 0)) {
		domain_out[0] = '\0';
		ret = dir_fail(error_r, DIRECTORY_E_NOTFOUND, "no domain maps realm %s", realm);
	}
	return ret;
}

/* Collects the users of a domain that hold a secret, re-encoded without. */
struct wipe_ctx {
	struct dirdb_batch *batch;
	const char **error_r;
	size_t wiped;
};

static int wipe_secret_cb(const char *key, size_t klen, const char *val, size_t vlen, void *ctx)
{
	struct wipe_ctx *wc = ctx;
	struct directory_user u;
	struct textbuf rec = TEXTBUF_INIT;
	int ret;

	if (directory_record_user_decode(val, vlen, &u) < 0)
		return dir_fail(wc->error_r, DIRECTORY_E_CORRUPT,
				"a user record of the domain does not decode; repair it first");
	if (u.secret[0] == '\0')
		return 0;
	explicit_bzero(u.secret, sizeof(u.secret));
	ret = directory_record_user_encode(&u, &rec);
	if (ret == DIRECTORY_OK) {
		dirdb_batch_put(wc->batch, key, klen, rec.data, rec.len);
		wc->wiped++;
	}
	textbuf_free(&rec);
	explicit_bzero(&u, sizeof(u));
	return ret;
}

int directory_domain_update(struct directory *dir, const struct directory_domain *d,
			    const char **error_r)
{
	char name[ADDRESS_DOMAIN_MAX + 1], key[DIR_KEY_MAX], holder[DIRECTORY_DOMAIN_MAX];
	struct directory_domain old, nd = *d;
	struct textbuf rec = TEXTBUF_INIT;
	struct dirdb_batch *batch = NULL;
	size_t klen;
	int ret;

	if ((ret = dir_parse_domain(d->name, name, error_r)) < 0)
		return ret;
	if (strnlen(nd.kerberos_realm, sizeof(nd.kerberos_realm)) == sizeof(nd.kerberos_realm) ||
	    (nd.kerberos_realm[0] != '\0' && !realm_valid(nd.kerberos_realm)))
		return dir_fail(error_r, DIRECTORY_E_INVALID,
				"%s: invalid Kerberos realm (letters, digits, '.', '-', '_')",
				name);
	if ((ret = dir_write_begin(dir, error_r)) < 0)
		return ret;
	if ((ret = domain_read(dir, name, &old, error_r)) < 0)
		goto out;
	snprintf(nd.name, sizeof(nd.name), "%s", name);
	nd.created = old.created;
	batch = dirdb_batch_new();

	if (strcmp(nd.kerberos_realm, old.kerberos_realm) != 0) {
		if (nd.kerberos_realm[0] != '\0') {
			ret = directory_domain_by_realm(dir, nd.kerberos_realm, holder, error_r);
			if (ret == DIRECTORY_OK && strcmp(holder, name) != 0) {
				ret = dir_fail(error_r, DIRECTORY_E_EXISTS,
					       "realm %s is already mapped to domain %s",
					       nd.kerberos_realm, holder);
				goto out;
			}
			if (ret < 0 && ret != DIRECTORY_E_NOTFOUND)
				goto out;
			klen = dir_key(key, DIR_KEY_REALM, nd.kerberos_realm, NULL, NULL, false);
			dirdb_batch_put(batch, key, klen, name, strlen(name));
		}
		if (old.kerberos_realm[0] != '\0') {
			klen = dir_key(key, DIR_KEY_REALM, old.kerberos_realm, NULL, NULL, false);
			dirdb_batch_delete(batch, key, klen);
		}
	}

	klen = dir_key(key, DIR_KEY_SHARED_SECRET, name, NULL, NULL, false);
	if (nd.shared_secret_auth) {
		dirdb_batch_put(batch, key, klen, "", 0);
	} else {
		struct wipe_ctx wc = {batch, error_r, 0};
		dirdb_batch_delete(batch, key, klen);
		klen = dir_key(key, DIR_KEY_USER, name, NULL, NULL, true);
		if ((ret = dirdb_scan(dir->db, key, klen, wipe_secret_cb, &wc, error_r)) < 0)
			goto out;
	}

	if ((ret = directory_record_domain_encode_settings(&nd, &rec)) < 0)
		goto out;
	klen = dir_key(key, DIR_KEY_DOMAIN, name, NULL, NULL, false);
	dirdb_batch_put(batch, key, klen, rec.data, rec.len);
	ret = dirdb_batch_commit(dir->db, batch, error_r);
out:
	dir_write_end(dir, ret == DIRECTORY_OK);
	dirdb_batch_free(&batch);
	textbuf_free(&rec);
	return ret;
}

int dir_domain_del_index(struct directory *dir, const char *domain, struct dirdb_batch *b,
			 const char **error_r)
{
	struct directory_domain d;
	char key[DIR_KEY_MAX];
	size_t klen;
	int ret = domain_read(dir, domain, &d, error_r);

	/* A corrupt domain record must not block deleting the domain: its
	 * realm key then stays, and realm lookups check the domain again. */
	if (ret < 0 && ret != DIRECTORY_E_CORRUPT)
		return ret;
	if (ret == DIRECTORY_OK && d.kerberos_realm[0] != '\0') {
		char holder[DIRECTORY_DOMAIN_MAX];
		/* Only our own mapping: never another domain's. */
		if (directory_domain_by_realm(dir, d.kerberos_realm, holder, NULL) ==
			DIRECTORY_OK &&
		    strcmp(holder, domain) == 0) {
			klen = dir_key(key, DIR_KEY_REALM, d.kerberos_realm, NULL, NULL, false);
			dirdb_batch_delete(b, key, klen);
		}
	}
	klen = dir_key(key, DIR_KEY_SHARED_SECRET, domain, NULL, NULL, false);
	dirdb_batch_delete(b, key, klen);
	return DIRECTORY_OK;
}
