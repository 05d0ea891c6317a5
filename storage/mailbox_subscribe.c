/*
 * mailbox_subscribe: subscriptions (which may name mailboxes that do not
 * exist) and special-use attributes, kept by name in the user's
 * subscriptions and special-use files (storage/mailbox_namelist.c), and
 * moved along when a mailbox is renamed.
 */
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "storage/mailbox_namelist.h"

#define SUBSCRIPTIONS "subscriptions"
#define SPECIAL_USE "special-use"

/* Read-modify-write of one list file; the hierarchy lock is held. */
static int update_list(struct store_user *user, const char *file, bool with_value,
		       const char *name, unsigned value, const char **error_r)
{
	struct mailbox_namelist l = { NULL, 0, 0 };
	int ret = mailbox_namelist_read(user->dir_fd, file, with_value, &l, error_r);
	if (ret == 0 && mailbox_namelist_set(&l, name, value))
		ret = mailbox_namelist_write(user->dir_fd, file, with_value, &l, error_r);
	mailbox_namelist_free(&l);
	return ret;
}

int mailbox_subscribe(struct store_user *user, const char *name, bool subscribe,
		      const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_name_normalize(name, norm, error_r);
	if (ret < 0)
		return ret;
	if ((ret = store_user_lock(user, STORE_LOCK_HIERARCHY, error_r)) < 0)
		return ret;
	ret = update_list(user, SUBSCRIPTIONS, false, norm, subscribe ? 1 : 0, error_r);
	store_user_unlock(user, STORE_LOCK_HIERARCHY);
	return ret;
}

int mailbox_special_use_args(const char *name, unsigned special_use, char *norm,
			     const char **error_r)
{
	int ret = mailbox_name_normalize(name, norm, error_r);
	if (ret == 0 && (special_use & ~(unsigned)MAILBOX_SPECIAL_MASK) != 0)
		ret = store_fail(error_r, STORE_E_INVALID, "unknown special-use attribute");
	return ret;
}

int mailbox_special_use_update(struct store_user *user, const char *name, unsigned flags,
			       const char **error_r)
{
	return update_list(user, SPECIAL_USE, true, name, flags, error_r);
}

int mailbox_special_use_set(struct store_user *user, const char *name, unsigned special_use,
			    const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_special_use_args(name, special_use, norm, error_r);
	if (ret < 0)
		return ret;
	if ((ret = store_user_lock(user, STORE_LOCK_HIERARCHY, error_r)) < 0)
		return ret;
	int fd;
	ret = mailbox_open_box_dir(user, norm, &fd, error_r);
	if (ret == 0) {
		close(fd);
		ret = mailbox_special_use_update(user, norm, special_use, error_r);
	}
	store_user_unlock(user, STORE_LOCK_HIERARCHY);
	return ret;
}

int mailbox_namelists_rename(struct store_user *user, const char *from, const char *to,
			     const char **error_r)
{
	static const struct {
		const char *file;
		bool with_value;
	} files[] = { { SUBSCRIPTIONS, false }, { SPECIAL_USE, true } };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct mailbox_namelist l = { NULL, 0, 0 };
		int ret = mailbox_namelist_read(user->dir_fd, files[i].file, files[i].with_value, &l,
						error_r);
		if (ret == 0 && mailbox_namelist_rename(&l, from, to))
			ret = mailbox_namelist_write(user->dir_fd, files[i].file, files[i].with_value,
						     &l, error_r);
		mailbox_namelist_free(&l);
		if (ret < 0)
			return ret;
	}
	return 0;
}
