/*
 * mailbox_rename: RENAME. A mailbox and all its children move with one
 * rename(2) of its level directory, so other sessions and nodes see the
 * old tree or the new one, never a mix; sessions that have a moved
 * mailbox open keep working (they hold its directory open). Renaming
 * INBOX moves only INBOX's own .box and creates a fresh INBOX (RFC 3501).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"

/* Directory part of a level path ("" for a top-level mailbox). */
static void parent_path(const char *path, char *out, size_t size)
{
	snprintf(out, size, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		out[0] = '\0';
}

static void fsync_level(struct store_user *user, const char *path)
{
	int fd = path[0] == '\0' ? -1 : store_open_dir(user->box_fd, path);
	fsync(fd >= 0 ? fd : user->box_fd);
	if (fd >= 0)
		close(fd);
}

/* Makes room for the target level: EXISTS if a mailbox or level with
 * children is there; an empty leftover level is removed. */
static int clear_target(struct store_user *user, const char *to_path, const char *to,
			const char **error_r)
{
	int fd = mailbox_level_open(user->box_fd, to_path, false);
	if (fd < 0)
		return errno == ENOENT ? 0 : store_fail_errno(error_r, false, "open mailbox", to);
	bool busy = mailbox_level_has_box(fd) || mailbox_level_has_children(fd);
	close(fd);
	if (busy)
		return store_fail(error_r, STORE_E_EXISTS, "mailbox %s exists", to);
	if (unlinkat(user->box_fd, to_path, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return store_fail_errno(error_r, false, "remove empty level", to);
	return 0;
}

/* Every mailbox below the level at level_fd, renamed to below `to`, must
 * still be a valid name: one deeper or longer than the limits would drop
 * out of LIST, could be neither opened nor deleted, and fsck's quota
 * recount would skip it (its messages stored free). to holds the new name
 * of the level and is extended in place (MAILBOX_NAME_MAX + 1 bytes). */
static int subtree_fits(int level_fd, char *to, const char **error_r)
{
	DIR *d = store_opendir(level_fd, ".");
	if (d == NULL)
		return store_fail_errno(error_r, false, "list mailbox", to);
	size_t len = strlen(to);
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		char comp[MAILBOX_COMPONENT_ENC_MAX + 1], norm[MAILBOX_NAME_MAX + 1];
		if (de->d_name[0] == '.' || mailbox_name_decode(de->d_name, comp, sizeof(comp)) < 0)
			continue; /* the store's own entries; strays are fsck's */
		if (len + 1 + strlen(comp) > MAILBOX_NAME_MAX) {
			ret = store_fail(error_r, STORE_E_LIMIT, "mailbox name too long after the rename");
			break;
		}
		snprintf(to + len, MAILBOX_NAME_MAX + 1 - len, "/%s", comp);
		if ((ret = mailbox_name_normalize(to, norm, error_r)) < 0)
			break;
		int child = store_open_dir(level_fd, de->d_name);
		if (child >= 0) {
			ret = subtree_fits(child, to, error_r);
			close(child);
		}
		to[len] = '\0';
	}
	closedir(d);
	return ret;
}

/* RFC 3501: renaming INBOX moves its messages to the new mailbox and
 * leaves INBOX where it is, empty. A MOVE of every message does that so
 * that sessions with INBOX selected see the messages expunged (renaming
 * the directory took their views along with it, silently, and their
 * appends went to the new name) and deliveries in flight still land in
 * INBOX. Hard links: no message data is copied. */
static int rename_inbox(struct store_user *user, const char *to, const char **error_r)
{
	int ret = mailbox_create_locked(user, to, 0, error_r);
	if (ret < 0)
		return ret;
	struct mailbox *inbox = NULL, *dest = NULL;
	struct uidset all = UIDSET_INIT;
	uidset_add_range(&all, 1, UINT32_MAX);
	if ((ret = mailbox_open(user, "INBOX", MAILBOX_OPEN_READONLY, &inbox, error_r)) == 0 &&
	    (ret = mailbox_open(user, to, MAILBOX_OPEN_APPEND_ONLY, &dest, error_r)) == 0)
		ret = mailbox_copy(inbox, &all, dest, true, NULL, NULL, NULL, error_r);
	mailbox_close(&dest);
	mailbox_close(&inbox);
	uidset_free(&all);
	return ret;
}

static int rename_tree(struct store_user *user, const char *from_path, const char *from,
		       const char *to_path, const char *to, const char **error_r)
{
	int fd = mailbox_level_open(user->box_fd, from_path, false);
	if (fd < 0)
		return store_fail_errno(error_r, true, "open mailbox", from);
	bool exists = mailbox_level_has_box(fd) || mailbox_level_has_children(fd);
	char moved[MAILBOX_NAME_MAX + 1];
	snprintf(moved, sizeof(moved), "%s", to);
	int ret = exists ? subtree_fits(fd, moved, error_r) : 0;
	close(fd);
	if (!exists)
		return store_fail(error_r, STORE_E_NOTFOUND, "no mailbox %s", from);
	if (ret < 0)
		return ret;
	char to_parent[MAILBOX_NAME_MAX * 3 + 64], from_parent[MAILBOX_NAME_MAX * 3 + 64];
	parent_path(to_path, to_parent, sizeof(to_parent));
	parent_path(from_path, from_parent, sizeof(from_parent));
	if (to_parent[0] != '\0') {
		int pfd = mailbox_level_open(user->box_fd, to_parent, true);
		if (pfd < 0)
			return store_fail_errno(error_r, false, "create parent of", to);
		close(pfd);
	}
	if (renameat(user->box_fd, from_path, user->box_fd, to_path) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			return store_fail(error_r, STORE_E_EXISTS, "mailbox %s exists", to);
		return store_fail_errno(error_r, false, "rename", from);
	}
	fsync_level(user, to_parent);
	fsync_level(user, from_parent);
	if (from_parent[0] != '\0')
		mailbox_levels_prune(user, from_parent);
	return mailbox_namelists_rename(user, from, to, error_r);
}

int mailbox_rename(struct store_user *user, const char *from, const char *to,
		   const char **error_r)
{
	char f[MAILBOX_NAME_MAX + 1], t[MAILBOX_NAME_MAX + 1];
	int ret;
	if ((ret = mailbox_name_normalize(from, f, error_r)) < 0 ||
	    (ret = mailbox_name_normalize(to, t, error_r)) < 0)
		return ret;
	if (strcmp(f, t) == 0 || mailbox_name_is_inbox(t))
		return store_fail(error_r, STORE_E_EXISTS, "mailbox %s exists", t);
	/* Renaming INBOX moves only its messages, so INBOX/Old is fine (the
	 * Cyrus habit of archiving INBOX under itself). */
	if (!mailbox_name_is_inbox(f) && mailbox_name_is_below(t, f))
		return store_fail(error_r, STORE_E_INVALID, "cannot move %s into itself", f);
	struct textbuf fp = TEXTBUF_INIT, tp = TEXTBUF_INIT;
	if ((ret = mailbox_name_to_path(f, &fp, error_r)) == 0 &&
	    (ret = mailbox_name_to_path(t, &tp, error_r)) == 0 &&
	    (ret = store_user_lock(user, STORE_LOCK_HIERARCHY, error_r)) == 0) {
		ret = clear_target(user, textbuf_str(&tp), t, error_r);
		if (ret == 0 && mailbox_name_is_inbox(f))
			ret = rename_inbox(user, t, error_r);
		else if (ret == 0)
			ret = rename_tree(user, textbuf_str(&fp), f, textbuf_str(&tp), t, error_r);
		store_user_unlock(user, STORE_LOCK_HIERARCHY);
	}
	textbuf_free(&fp);
	textbuf_free(&tp);
	return ret;
}
