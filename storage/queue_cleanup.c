/*
 * queue_cleanup: removes what interrupted writers and crashes leave in a
 * spool, once it is older than max_age (by ctime, which write, link and
 * rename all update, so a file just moved in is young):
 *   - tmp/ files (a writer died, or a commit failed);
 *   - data/ files without an envelope (a crash between the two renames of
 *     a commit, between the two unlinks of queue_remove, or after the
 *     envelope of queue_move left);
 *   - torn commits: an envelope that does not decode or whose data file is
 *     missing or has another size. Only a commit that never returned (a
 *     crash before its group commit ended) leaves one, so no acknowledged
 *     message is among them; the envelope goes first, then the data.
 * max_age must exceed the longest a writer may take (maild: a day, like
 * the mail store's temporary files); tests pass 0 once writers are dead.
 *
 * A spool is cleaned by its lock holder. The maildrop has none: every
 * node picks up from it, and every node may clean it. That is safe
 * without a lock because its leftovers are nobody's: a pickup links the
 * data into its spool before it renames the envelope out and only then
 * unlinks the maildrop's data, so data without an envelope is either a
 * dead writer's or already in a spool; two cleaners removing one file
 * both succeed (ENOENT is success).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/queue_internal.h"
#include "storage/store_internal.h"
#include "storage/store_sync.h"

struct sweep {
	struct queue *q;
	int64_t max_age;
	int removed;
	const char **error_r;
};

static bool old_enough(struct sweep *s, int dir_fd, const char *name)
{
	struct stat st;
	/* max_age 0 means any age: a file made this very moment can have a
	 * ctime a little ahead of the coarse clock (fine-grained timestamps),
	 * an age of -1 */
	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (s->max_age <= 0 || queue_age(&st) >= s->max_age);
}

static int remove_entry(struct sweep *s, int dir_fd, const char *name)
{
	if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
		return store_fail_errno(s->error_r, false, "remove", name);
	s->removed++;
	return STORE_OK;
}

/* Calls fn for every entry of q's subdirectory sub but . and .. */
static int each_entry(struct sweep *s, const char *sub,
		      int (*fn)(struct sweep *s, const char *name))
{
	DIR *d = store_opendir(s->q->dir_fd, sub);
	if (d == NULL)
		return store_fail_errno(s->error_r, false, "list spool", sub);
	int ret = STORE_OK;
	while (ret == STORE_OK) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				ret = store_fail_errno(s->error_r, false, "read spool", sub);
			break;
		}
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ret = fn(s, de->d_name);
	}
	closedir(d);
	return ret;
}

static int sweep_tmp(struct sweep *s, const char *name)
{
	return old_enough(s, s->q->tmp_fd, name) ? remove_entry(s, s->q->tmp_fd, name) : STORE_OK;
}

static int sweep_env(struct sweep *s, const char *name)
{
	struct queue_envelope env;
	const char *err = NULL;
	int ret = queue_envelope_load(s->q, name, &env, &err);
	if (ret == STORE_OK) {
		ret = queue_data_check(s->q, &env, &err);
		queue_envelope_clear(&env);
	}
	if (ret == STORE_E_TEMP)
		return store_fail(s->error_r, ret, "%s", err);
	/* INVALID: a name that is no id, which the store never writes. */
	if ((ret != STORE_E_CORRUPT && ret != STORE_E_INVALID) ||
	    !old_enough(s, s->q->env_fd, name))
		return STORE_OK;
	if ((ret = remove_entry(s, s->q->env_fd, name)) < 0)
		return ret;
	return unlinkat(s->q->data_fd, name, 0) < 0 && errno != ENOENT
		   ? store_fail_errno(s->error_r, false, "remove data", name)
		   : STORE_OK;
}

static int sweep_data(struct sweep *s, const char *name)
{
	struct stat st;
	if (fstatat(s->q->env_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT ||
	    !old_enough(s, s->q->data_fd, name))
		return STORE_OK;
	return remove_entry(s, s->q->data_fd, name);
}

int queue_cleanup(struct queue *q, int64_t max_age, const char **error_r)
{
	int ret = queue_need_lock(q, true, "cleaning", error_r);
	if (ret < 0)
		return ret;
	struct sweep s = {q, max_age, 0, error_r};
	ret = each_entry(&s, "tmp", sweep_tmp);
	if (ret == STORE_OK)
		ret = each_entry(&s, "env", sweep_env);
	if (ret == STORE_OK)
		ret = each_entry(&s, "data", sweep_data);
	if (ret < 0)
		return ret;
	if (s.removed > 0) {
		int fds[3] = {q->tmp_fd, q->env_fd, q->data_fd};
		if ((ret = store_sync_wait(q->store->sync, fds, 3, error_r)) < 0)
			return ret;
	}
	return s.removed;
}
