/*
 * store_fsck: the walk over users and mailboxes, quota recomputation and
 * the node temporary areas (see store_fsck in storage/store.h). Per
 * mailbox checks are in store_fsck_mailbox.c, the index rebuild in
 * store_fsck_rebuild.c.
 *
 * A user is checked under the user's hierarchy lock (no mailbox is
 * created, renamed or deleted meanwhile) and each mailbox under its index
 * lock, so fsck may run while the daemons serve the same users. The
 * quota recount is exact even then (storage/store_fsck_quota.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "storage/quota_usage.h"
#include "storage/store_fsck_internal.h"

void fsck_problem(struct fsck *fk, const char *mailbox, enum store_fsck_problem p, bool repaired,
		  const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	fk->problems++;
	if (fk->cb != NULL && fk->cb->problem != NULL)
		fk->cb->problem(fk->address, mailbox, p, detail, repaired, fk->cb->ctx);
}

/* Removes what the user's directory holds besides the store's own files:
 * trash of interrupted deletions. */
static void fsck_user_trash(struct fsck *fk, struct store_user *u)
{
	DIR *d = store_opendir(u->dir_fd, "trash");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fsck_problem(fk, NULL, STORE_FSCK_LEFTOVER, fk->repair, "trash/%s: an interrupted deletion",
			     de->d_name);
		if (fk->repair)
			store_remove_tree(dirfd(d), de->d_name);
	}
	closedir(d);
}

/* Walks the level directories below fd (name prefix), checking mailboxes. */
static int fsck_levels(struct fsck *fk, struct store_user *u, int fd, const char *prefix, int depth,
		       const char **error_r)
{
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return store_fail_errno(error_r, false, "read", "mailbox levels");
	}
	int ret = 0;
	struct dirent *de;
	while (ret >= 0 && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (strcmp(n, ".box") == 0) {
			if (prefix[0] != '\0')
				ret = fsck_mailbox(fk, u, prefix, dirfd(d), error_r);
			continue;
		}
		if (strncmp(n, ".box.tmp.", 9) == 0) {
			fsck_problem(fk, prefix, STORE_FSCK_LEFTOVER, fk->repair, "%s: an interrupted creation", n);
			if (fk->repair)
				store_remove_tree(dirfd(d), n);
			continue;
		}
		char comp[MAILBOX_NAME_MAX + 1], norm[MAILBOX_NAME_MAX + 1];
		struct textbuf name = TEXTBUF_INIT;
		if (n[0] != '.' && mailbox_name_decode(n, comp, sizeof(comp)) == 0 && !strchr(comp, '/')) {
			textbuf_printf(&name, "%s%s%s", prefix, prefix[0] ? "/" : "", comp);
		}
		if (name.len == 0 || mailbox_name_normalize(textbuf_str(&name), norm, NULL) < 0 ||
		    depth > MAILBOX_DEPTH_MAX) {
			fsck_problem(fk, prefix, STORE_FSCK_BAD_NAME, false, "unexpected entry \"%s\"", n);
		} else {
			int cfd = store_open_dir(dirfd(d), n);
			if (cfd >= 0)
				ret = fsck_levels(fk, u, cfd, norm, depth + 1, error_r);
		}
		textbuf_free(&name);
	}
	closedir(d);
	return ret;
}

static int fsck_user(struct fsck *fk, const char *address, const char **error_r)
{
	struct store_user *u;
	bool inbox_missing;
	int ret = store_user_open_existing(fk->store, address, &inbox_missing, &u, error_r);
	if (ret < 0)
		return ret;
	fk->address = u->address;
	if (inbox_missing) {
		fsck_problem(fk, NULL, STORE_FSCK_LEFTOVER, fk->repair,
			     "INBOX missing: an interrupted creation");
		bool no_boxes = u->box_fd < 0;
		if (fk->repair || no_boxes)
			store_user_close(&u);
		if (fk->repair && (ret = store_user_open(fk->store, address, &u, error_r)) < 0)
			return ret;
		if (u == NULL)
			return 0;
		fk->address = u->address;
	}
	fk->bytes = fk->messages = 0;
	fk->uncountable = false;
	if ((ret = store_user_lock(u, STORE_LOCK_HIERARCHY, error_r)) < 0) {
		store_user_close(&u);
		return ret;
	}
	fsck_user_trash(fk, u);
	int fd = store_open_dir(u->box_fd, ".");
	ret = fd < 0 ? store_fail_errno(error_r, false, "open", "mailboxes")
		     : fsck_levels(fk, u, fd, "", 1, error_r);
	if (ret == 0)
		ret = fsck_quota_recount(fk, u, error_r);
	fsck_boxes_clear(fk);
	store_user_unlock(u, STORE_LOCK_HIERARCHY);
	store_user_close(&u);
	return ret;
}

/* Old files in every node's temporary area: writers that died. */
static void fsck_tmp(struct fsck *fk)
{
	DIR *nodes = store_opendir(fk->store->mail_fd, ".tmp");
	if (nodes == NULL)
		return;
	int64_t now = store_now();
	struct dirent *nd;
	while ((nd = readdir(nodes)) != NULL) {
		if (nd->d_name[0] == '.')
			continue;
		DIR *slots = store_opendir(dirfd(nodes), nd->d_name);
		if (slots == NULL)
			continue;
		struct dirent *sd;
		while ((sd = readdir(slots)) != NULL) {
			struct stat st;
			if (sd->d_name[0] == '.' || fstatat(dirfd(slots), sd->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			bool trash = strncmp(sd->d_name, "trash-", 6) == 0;
			if (!trash && S_ISDIR(st.st_mode)) {
				DIR *files = store_opendir(dirfd(slots), sd->d_name);
				struct dirent *fe;
				while (files != NULL && (fe = readdir(files)) != NULL) {
					struct stat fst;
					if (fe->d_name[0] == '.' ||
					    fstatat(dirfd(files), fe->d_name, &fst, AT_SYMLINK_NOFOLLOW) < 0 ||
					    now - fst.st_ctime < STORE_TMP_MAX_AGE) /* not mtime: an
						     * APPEND gives its file the message's date */
						continue;
					fsck_problem(fk, NULL, STORE_FSCK_LEFTOVER, fk->repair,
						     ".tmp/%s/%s/%s: abandoned message file", nd->d_name, sd->d_name,
						     fe->d_name);
					if (fk->repair)
						unlinkat(dirfd(files), fe->d_name, 0);
				}
				if (files != NULL)
					closedir(files);
			} else if (trash) {
				fsck_problem(fk, NULL, STORE_FSCK_LEFTOVER, fk->repair,
					     ".tmp/%s/%s: an interrupted user deletion", nd->d_name, sd->d_name);
				if (fk->repair)
					store_remove_tree(dirfd(slots), sd->d_name);
			}
		}
		closedir(slots);
	}
	closedir(nodes);
}

/* Every <domain>/<hh>/<local> directory. */
static int fsck_all(struct fsck *fk, const char **error_r)
{
	DIR *domains = store_opendir(fk->store->mail_fd, ".");
	if (domains == NULL)
		return store_fail_errno(error_r, false, "read", "mail directory");
	int ret = 0;
	char first_error[512] = "";
	struct dirent *dd;
	while ((dd = readdir(domains)) != NULL) {
		if (dd->d_name[0] == '.')
			continue;
		DIR *hh = store_opendir(dirfd(domains), dd->d_name);
		struct dirent *hd;
		while (hh != NULL && (hd = readdir(hh)) != NULL) {
			if (hd->d_name[0] == '.')
				continue;
			DIR *users = store_opendir(dirfd(hh), hd->d_name);
			struct dirent *ud;
			while (users != NULL && (ud = readdir(users)) != NULL) {
				char local[ADDRESS_LOCAL_MAX + 1];
				if (ud->d_name[0] == '.')
					continue;
				if (mailbox_name_decode(ud->d_name, local, sizeof(local)) < 0) {
					fk->address = NULL;
					fsck_problem(fk, NULL, STORE_FSCK_BAD_NAME, false, "%s/%s/%s: not a user",
						     dd->d_name, hd->d_name, ud->d_name);
					continue;
				}
				char address[ADDRESS_LOCAL_MAX + 2 + 256], hhname[8];
				snprintf(address, sizeof(address), "%s@%s", local, dd->d_name);
				snprintf(hhname, sizeof(hhname), "%02x", store_fnv1a(address) & 0xff);
				if (strcmp(hhname, hd->d_name) != 0) {
					/* Not where the store would look for it: leave it alone. */
					fk->address = NULL;
					fsck_problem(fk, NULL, STORE_FSCK_BAD_NAME, false,
						     "%s/%s/%s: user in the wrong directory", dd->d_name,
						     hd->d_name, ud->d_name);
					continue;
				}
				const char *why = NULL;
				int uret = fsck_user(fk, address, &why);
				if (uret == STORE_E_INVALID) {
					fk->address = NULL;
					fsck_problem(fk, NULL, STORE_FSCK_BAD_NAME, false, "%s: not a user address",
						     address);
				} else if (uret < 0) {
					/* One user that cannot be checked must not keep the
					 * others from it; the walk ends with the first error. */
					fk->address = address;
					fsck_problem(fk, NULL, STORE_FSCK_UNCHECKED, false, "%s",
						     why != NULL ? why : store_strerror(uret));
					if (ret == 0) {
						ret = uret;
						snprintf(first_error, sizeof(first_error), "%s: %s", address,
							 why != NULL ? why : store_strerror(uret));
					}
				}
			}
			if (users != NULL)
				closedir(users);
		}
		if (hh != NULL)
			closedir(hh);
	}
	closedir(domains);
	return ret < 0 ? store_fail(error_r, ret, "%s", first_error) : 0;
}

int store_fsck(struct store *store, const char *address, bool repair,
	       const struct store_fsck_callbacks *cb, const char **error_r)
{
	struct fsck fk;
	memset(&fk, 0, sizeof(fk));
	fk.store = store;
	fk.repair = repair;
	fk.cb = cb;
	int ret;
	if (address != NULL) {
		ret = fsck_user(&fk, address, error_r);
	} else {
		fsck_tmp(&fk);
		ret = fsck_all(&fk, error_r);
	}
	fsck_boxes_clear(&fk);
	free(fk.box_fds);
	return ret < 0 ? ret : fk.problems;
}
