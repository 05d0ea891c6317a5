/*
 * mailbox_list: the mailbox hierarchy of a user: create, delete, rename,
 * and the LIST walk.
 *
 * A mailbox "a/b" lives in <user>/box/<enc a>/<enc b>/.box; the level
 * directories mirror the hierarchy, so renaming a mailbox with all its
 * children is one rename(2), atomic on every POSIX filesystem. A level
 * directory without .box is an intermediate level (\Noselect). Creation
 * builds the .box directory under a temporary name and renames it into
 * place, so a mailbox is either complete or absent. Deletion writes a
 * DELETED record (open views notice), renames .box into <user>/trash and
 * removes it from there. All of it runs under the user's hierarchy lock.
 */
#include <dirent.h>
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

int mailbox_level_open(int box_fd, const char *path, bool create)
{
	if (!create)
		return store_open_dir(box_fd, path);
	char buf[MAILBOX_NAME_MAX * 3 + 64];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (store_mkdirat(box_fd, buf) < 0)
			return -1;
		*p = '/';
	}
	if (store_mkdirat(box_fd, buf) < 0)
		return -1;
	return store_open_dir(box_fd, buf);
}

bool mailbox_level_has_box(int level_fd)
{
	struct stat st;
	return fstatat(level_fd, ".box", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool mailbox_level_has_children(int level_fd)
{
	DIR *d = store_opendir(level_fd, ".");
	if (d == NULL)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL)
		found = de->d_name[0] != '.';
	closedir(d);
	return found;
}

int mailbox_open_box_dir(struct store_user *user, const char *name, int *fd_r,
			 const char **error_r)
{
	struct textbuf path = TEXTBUF_INIT;
	int ret = mailbox_name_to_path(name, &path, error_r);
	if (ret < 0) {
		textbuf_free(&path);
		return ret;
	}
	int level = store_open_dir(user->box_fd, textbuf_str(&path));
	textbuf_free(&path);
	if (level < 0)
		return store_fail_errno(error_r, true, "open mailbox", name);
	int fd = store_open_dir(level, ".box");
	close(level);
	if (fd < 0 && errno == ENOENT)
		return store_fail(error_r, STORE_E_INVALID, "%s is not selectable", name);
	if (fd < 0)
		return store_fail_errno(error_r, false, "open mailbox", name);
	*fd_r = fd;
	return 0;
}

/* Builds .box under a temporary name in level_fd and renames it in. */
static int build_box(struct store_user *user, int level_fd, const char **error_r)
{
	uint32_t uidvalidity;
	int ret = store_user_next_uidvalidity(user, &uidvalidity, error_r);
	if (ret < 0)
		return ret;
	uint8_t rnd[8];
	char tmp[32];
	store_random(rnd, sizeof(rnd));
	memcpy(tmp, ".box.tmp.", 9);
	store_hex(rnd, sizeof(rnd), tmp + 9);
	int fd = -1;
	if (mkdirat(level_fd, tmp, 0700) < 0 || (fd = store_open_dir(level_fd, tmp)) < 0 ||
	    mkdirat(fd, "new", 0700) < 0 || mkdirat(fd, "msg", 0700) < 0) {
		ret = store_fail_errno(error_r, false, "create", "mailbox directory");
		goto fail;
	}
	struct index_state st = { .uidnext = 1, .first_recent_uid = 1, .highestmodseq = 1 };
	ret = index_log_create(fd, 1, uidvalidity, &st, NULL, 0, error_r);
	if (ret < 0)
		goto fail;
	if (fsync(fd) < 0) {
		ret = store_fail_errno(error_r, false, "fsync", "mailbox directory");
		goto fail;
	}
	if (renameat(level_fd, tmp, level_fd, ".box") < 0) {
		ret = (errno == EEXIST || errno == ENOTEMPTY)
			      ? store_fail(error_r, STORE_E_EXISTS, "mailbox exists")
			      : store_fail_errno(error_r, false, "rename", "mailbox directory");
		goto fail;
	}
	close(fd);
	if (fsync(level_fd) < 0)
		return store_fail_errno(error_r, false, "fsync", "mailbox level");
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	store_remove_tree(level_fd, tmp);
	return ret;
}

/* Moves level/.box into the user's trash and removes it from there. */
static int box_to_trash(struct store_user *user, int level, const char *name, const char **error_r)
{
	char trash[40];
	uint8_t rnd[8];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), trash);
	if (store_mkdirat(user->dir_fd, "trash") < 0)
		return store_fail_errno(error_r, false, "create", "trash");
	int trash_fd = store_open_dir(user->dir_fd, "trash");
	if (trash_fd < 0)
		return store_fail_errno(error_r, false, "open", "trash");
	int ret = 0;
	if (renameat(level, ".box", trash_fd, trash) < 0) {
		ret = store_fail_errno(error_r, false, "delete mailbox", name);
	} else {
		fsync(level);
		store_remove_tree(trash_fd, trash);
	}
	close(trash_fd);
	return ret;
}

/* A .box whose log ends in DELETED: a deletion that died half way. It is
 * finished (moved out) so that the name can be used again. */
static bool box_deleted(struct store_user *user, int level)
{
	int box_fd = store_open_dir(level, ".box");
	if (box_fd < 0)
		return false;
	struct index_view *v = NULL;
	bool deleted = false;
	if (index_view_open(user->store, box_fd, false, &v, NULL) == 0) {
		/* A DELETED record past the synced mark (its deleter died before
		 * marking it) is seen only by reading to the end, under the lock. */
		if (!v->deleted && index_view_lock(v, NULL) == 0)
			index_view_unlock(v);
		deleted = v->deleted;
	}
	index_view_free(&v);
	close(box_fd);
	return deleted && box_to_trash(user, level, "deleted mailbox", NULL) == 0;
}

int mailbox_create_locked(struct store_user *user, const char *name, unsigned special_use,
			  const char **error_r)
{
	struct textbuf path = TEXTBUF_INIT;
	int ret = mailbox_name_to_path(name, &path, error_r);
	int level = -1;
	if (ret == 0 && (level = mailbox_level_open(user->box_fd, textbuf_str(&path), true)) < 0)
		ret = store_fail_errno(error_r, false, "create mailbox", name);
	textbuf_free(&path);
	if (ret < 0)
		return ret;
	if (mailbox_level_has_box(level) && !box_deleted(user, level))
		ret = store_fail(error_r, STORE_E_EXISTS, "mailbox %s exists", name);
	else
		ret = build_box(user, level, error_r);
	close(level);
	if (ret == 0 && special_use != 0)
		ret = mailbox_special_use_update(user, name, special_use, error_r);
	return ret;
}

int mailbox_create(struct store_user *user, const char *name, unsigned special_use,
		   const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_special_use_args(name, special_use, norm, error_r);
	if (ret < 0)
		return ret;
	if ((ret = store_user_lock(user, STORE_LOCK_HIERARCHY, error_r)) < 0)
		return ret;
	ret = mailbox_create_locked(user, norm, special_use, error_r);
	store_user_unlock(user, STORE_LOCK_HIERARCHY);
	return ret;
}

void mailbox_levels_prune(struct store_user *user, const char *path)
{
	char buf[MAILBOX_NAME_MAX * 3 + 64];
	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		/* rmdir fails (ENOTEMPTY) for a level with .box or children. */
		if (unlinkat(user->box_fd, buf, AT_REMOVEDIR) < 0)
			return;
		char *slash = strrchr(buf, '/');
		if (slash == NULL)
			return;
		*slash = '\0';
	}
}

void mailbox_new_usage(int box_fd, const struct index_view *v, uint64_t *bytes, uint64_t *msgs)
{
	DIR *d = store_opendir(box_fd, "new");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		uint8_t guid[16];
		int64_t date;
		uint32_t flags;
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		if (v != NULL && mailbox_new_parse(de->d_name, guid, &date, &flags, NULL) == 0 &&
		    index_absorb_contains(v, guid))
			continue;
		*bytes += (uint64_t)st.st_size;
		(*msgs)++;
	}
	closedir(d);
}

/* Marks the mailbox in .box deleted and moves it to the user's trash.
 * Its usage is given back under the counters lock, which deliveries hold
 * across their charge and new/ link: none can slip into new/ between the
 * count and the move. */
static int delete_box(struct store_user *user, int level, const char *name, const char **error_r)
{
	int box_fd = store_open_dir(level, ".box");
	if (box_fd < 0)
		return store_fail_errno(error_r, true, "open mailbox", name);
	struct index_view *v = NULL;
	int ret = index_view_open(user->store, box_fd, false, &v, error_r);
	uint64_t bytes = 0, msgs = 0;
	if (ret == 0 && (ret = index_view_lock(v, error_r)) == 0) {
		bytes = v->state.bytes;
		msgs = v->state.messages;
		struct textbuf rec = TEXTBUF_INIT;
		size_t start = index_rec_begin(&rec);
		ret = index_view_write(v, &rec, start, INDEX_REC_DELETED, 0, 0, 0, NULL, error_r);
		textbuf_free(&rec);
		index_view_unlock(v);
		if (ret == 0)
			ret = index_view_durable(v, NULL, 0, error_r);
	}
	/* An index too damaged to open is deleted all the same. */
	if (ret == STORE_E_CORRUPT || ret == STORE_E_NOTFOUND) {
		index_view_free(&v);
		ret = 0;
	}
	if (ret == 0 && (ret = store_user_lock(user, STORE_LOCK_COUNTERS, error_r)) == 0) {
		mailbox_new_usage(box_fd, v, &bytes, &msgs);
		ret = box_to_trash(user, level, name, error_r);
		if (ret == 0)
			(void)quota_charge_locked(user, -(int64_t)bytes, -(int64_t)msgs, NULL, NULL, NULL);
		store_user_unlock(user, STORE_LOCK_COUNTERS);
	}
	index_view_free(&v);
	close(box_fd);
	return ret;
}

int mailbox_delete(struct store_user *user, const char *name, const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_name_normalize(name, norm, error_r);
	if (ret < 0)
		return ret;
	if (mailbox_name_is_inbox(norm))
		return store_fail(error_r, STORE_E_INVALID, "INBOX cannot be deleted");
	struct textbuf path = TEXTBUF_INIT;
	if ((ret = mailbox_name_to_path(norm, &path, error_r)) < 0 ||
	    (ret = store_user_lock(user, STORE_LOCK_HIERARCHY, error_r)) < 0) {
		textbuf_free(&path);
		return ret;
	}
	int level = mailbox_level_open(user->box_fd, textbuf_str(&path), false);
	if (level < 0) {
		ret = store_fail_errno(error_r, true, "open mailbox", norm);
	} else if (!mailbox_level_has_box(level)) {
		ret = mailbox_level_has_children(level)
			      ? store_fail(error_r, STORE_E_INVALID, "%s has children and no messages", norm)
			      : store_fail(error_r, STORE_E_NOTFOUND, "no mailbox %s", norm);
	} else {
		ret = delete_box(user, level, norm, error_r);
	}
	if (level >= 0)
		close(level);
	if (ret == 0) {
		mailbox_levels_prune(user, textbuf_str(&path));
		(void)mailbox_special_use_update(user, norm, 0, NULL);
	}
	store_user_unlock(user, STORE_LOCK_HIERARCHY);
	textbuf_free(&path);
	return ret;
}
