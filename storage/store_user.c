/*
 * store_user: a user's mail directory <store>/mail/<domain>/<hh>/<local>/,
 * created with an INBOX on first access, and the user-level locks.
 *
 * <hh> is the low byte of FNV-1a over the normalised "local@domain", in
 * two hex digits: 256 directories per domain keep every directory small
 * with 100,000 users. The local part is encoded like a mailbox name
 * component (it may contain '/' in RFC 5322 atext).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "storage/quota_usage.h"
#include "storage/store_internal.h"
#include "storage/store_lock.h"

/* Normalises address and builds the user's directory path. */
static int user_path(const char *address, char *norm, struct textbuf *path,
		     const char **error_r)
{
	struct address a;
	const char *why;
	if (address_parse(address, false, &a, &why) < 0)
		return store_fail(error_r, STORE_E_INVALID, "bad address \"%s\": %s", address, why);
	if (address_format(&a, norm, STORE_ADDRESS_MAX) < 0)
		return store_fail(error_r, STORE_E_INVALID, "address too long");
	char enc[MAILBOX_COMPONENT_ENC_MAX + 1];
	if (mailbox_name_encode(a.local, strlen(a.local), enc) < 0)
		return store_fail(error_r, STORE_E_INVALID, "bad local part");
	textbuf_printf(path, "%s/%02x/%s", a.domain, store_fnv1a(norm) & 0xff, enc);
	return 0;
}

/* Opens (creating) each component of rel under dir_fd. */
static int open_or_create_path(int dir_fd, const char *rel)
{
	int fd = store_open_dir(dir_fd, rel);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *p = buf; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (store_mkdirat(dir_fd, buf) < 0)
			return -1;
		*p = '/';
	}
	if (store_mkdirat(dir_fd, buf) < 0)
		return -1;
	return store_open_dir(dir_fd, buf);
}

/* Opens the user's directories, creating them when create is set;
 * without it a missing directory is STORE_E_NOTFOUND and a missing box/
 * leaves box_fd at -1. */
static int user_open(struct store *store, const char *address, bool create,
		     struct store_user **user_r, const char **error_r)
{
	struct store_user *u = calloc(1, sizeof(*u));
	if (u == NULL)
		abort();
	u->store = store;
	u->dir_fd = u->box_fd = u->counters_fd = -1;
	struct textbuf path = TEXTBUF_INIT;
	int ret = user_path(address, u->address, &path, error_r);
	if (ret == 0) {
		u->path = strdup(textbuf_str(&path));
		if (u->path == NULL)
			abort();
		u->dir_fd = create ? open_or_create_path(store->mail_fd, u->path)
				   : store_open_dir(store->mail_fd, u->path);
		if (u->dir_fd < 0 && !create && errno == ENOENT)
			ret = store_fail(error_r, STORE_E_NOTFOUND, "no mail directory for %s", u->address);
		else if (u->dir_fd < 0 || (create && store_mkdirat(u->dir_fd, "box") < 0) ||
			 ((u->box_fd = store_open_dir(u->dir_fd, "box")) < 0 && (create || errno != ENOENT)))
			ret = store_fail_errno(error_r, false, "open mail directory of", u->address);
	}
	textbuf_free(&path);
	if (ret == 0)
		ret = store_lockfile_open(u->dir_fd, "lock", &u->lock, error_r);
	if (ret < 0) {
		store_user_close(&u);
		return ret;
	}
	*user_r = u;
	return 0;
}

int store_user_open(struct store *store, const char *address, struct store_user **user_r,
		    const char **error_r)
{
	struct store_user *u;
	int ret = user_open(store, address, true, &u, error_r);
	if (ret < 0)
		return ret;
	struct stat st;
	if (fstatat(u->box_fd, "INBOX/.box", &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT) {
			ret = store_fail_errno(error_r, false, "stat INBOX of", u->address);
		} else if ((ret = store_user_lock(u, STORE_LOCK_HIERARCHY, error_r)) == 0) {
			ret = mailbox_create_locked(u, "INBOX", 0, error_r);
			if (ret == STORE_E_EXISTS)
				ret = 0; /* another process won the race */
			store_user_unlock(u, STORE_LOCK_HIERARCHY);
		}
	}
	if (ret < 0) {
		store_user_close(&u);
		return ret;
	}
	*user_r = u;
	return 0;
}

int store_user_open_existing(struct store *store, const char *address, bool *inbox_missing_r,
			     struct store_user **user_r, const char **error_r)
{
	int ret = user_open(store, address, false, user_r, error_r);
	if (ret < 0)
		return ret;
	struct stat st;
	*inbox_missing_r = (*user_r)->box_fd < 0 ||
			   (fstatat((*user_r)->box_fd, "INBOX/.box", &st, AT_SYMLINK_NOFOLLOW) < 0 &&
			    errno == ENOENT);
	return 0;
}

void store_user_close(struct store_user **up)
{
	struct store_user *u = *up;
	if (u == NULL)
		return;
	*up = NULL;
	store_lockfile_release(&u->lock);
	if (u->counters_fd >= 0)
		close(u->counters_fd);
	if (u->box_fd >= 0)
		close(u->box_fd);
	if (u->dir_fd >= 0)
		close(u->dir_fd);
	free(u->path);
	free(u);
}

const char *store_user_address(const struct store_user *user)
{
	return user->address;
}

int store_user_lock(struct store_user *user, unsigned slot, const char **error_r)
{
	int ret = store_lock(user->lock, slot, true, true, error_r);
	return ret < 0 ? ret : 0;
}

void store_user_unlock(struct store_user *user, unsigned slot)
{
	store_unlock(user->lock, slot);
}

int store_user_next_uidvalidity(struct store_user *user, uint32_t *uidvalidity_r,
				const char **error_r)
{
	int ret = store_user_lock(user, STORE_LOCK_COUNTERS, error_r);
	if (ret < 0)
		return ret;
	struct quota_counters c;
	ret = quota_counters_read_user(user, &c, error_r);
	if (ret == 0) {
		uint32_t now = (uint32_t)store_now();
		uint32_t next = c.last_uidvalidity + 1;
		if (next < now)
			next = now;
		if (next == 0)
			next = 1;
		c.last_uidvalidity = next;
		/* Durable: a UIDVALIDITY must never be handed out twice. */
		ret = quota_counters_write_user(user, &c, true, error_r);
		*uidvalidity_r = next;
	}
	store_user_unlock(user, STORE_LOCK_COUNTERS);
	return ret;
}

int store_user_delete(struct store *store, const char *address, const char **error_r)
{
	char norm[STORE_ADDRESS_MAX];
	struct textbuf path = TEXTBUF_INIT;
	int ret = user_path(address, norm, &path, error_r);
	if (ret == 0) {
		uint8_t rnd[8];
		char name[40];
		store_random(rnd, sizeof(rnd));
		store_hex(rnd, sizeof(rnd), name + 6);
		memcpy(name, "trash-", 6);
		/* Out of the namespace atomically, then removed at leisure. */
		if (renameat(store->mail_fd, textbuf_str(&path), store->tmp_fd, name) < 0) {
			ret = errno == ENOENT ? 0
					      : store_fail_errno(error_r, false, "remove mail of", norm);
		} else if (store_remove_tree(store->tmp_fd, name) < 0) {
			ret = store_fail_errno(error_r, false, "remove mail of", norm);
		}
	}
	textbuf_free(&path);
	return ret;
}
