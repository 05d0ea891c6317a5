/*
 * queue_message: one queued message: reading its envelope and data,
 * replacing the envelope, removing it, moving it to another spool.
 * Every change but reading needs the spool's run lock (queue_lock).
 *
 * A message exists iff env/<id> exists. Its data file, data/<id>, is
 * renamed into place before the envelope, so a live reader that finds
 * the envelope finds the whole data file; after a crash during a commit
 * the two may disagree (see queue_writer.c), which is why every read
 * checks the data file's size against the envelope's and calls a
 * mismatch STORE_E_CORRUPT instead of handing out a short message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/queue_internal.h"
#include "storage/store_internal.h"
#include "storage/store_sync.h"

static int check_id(const char *id, const char **error_r)
{
	if (!queue_id_valid(id))
		return store_fail(error_r, STORE_E_INVALID, "bad queue id \"%.40s\"", id);
	return STORE_OK;
}

int queue_envelope_load(struct queue *q, const char *id, struct queue_envelope *env_r,
			const char **error_r)
{
	memset(env_r, 0, sizeof(*env_r));
	int ret = check_id(id, error_r);
	if (ret < 0)
		return ret;
	int fd = openat(q->env_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return store_fail_errno(error_r, true, "open envelope", id);
	struct textbuf buf = TEXTBUF_INIT;
	ret = store_read_fd(fd, id, QUEUE_ENVELOPE_FILE_MAX, &buf, error_r);
	close(fd);
	if (ret == STORE_OK) {
		ret = queue_envelope_decode(buf.data != NULL ? buf.data : "", buf.len, env_r,
					    error_r);
		if (ret == STORE_OK && strcmp(env_r->id, id) != 0) {
			queue_envelope_clear(env_r);
			ret = store_fail(error_r, STORE_E_CORRUPT, "envelope %s names message %s",
					 id, env_r->id);
		}
	}
	textbuf_free(&buf);
	return ret;
}

/* The data file st of message id against the envelope's size. */
static int data_size_check(const struct stat *st, const char *id, uint64_t want,
			   const char **error_r)
{
	if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size != want)
		return store_fail(error_r, STORE_E_CORRUPT,
				  "message %s: data file has %lld bytes, envelope says %llu", id,
				  (long long)st->st_size, (unsigned long long)want);
	return STORE_OK;
}

int queue_data_check(struct queue *q, const struct queue_envelope *env, const char **error_r)
{
	struct stat st;
	if (fstatat(q->data_fd, env->id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return store_fail(error_r, STORE_E_CORRUPT, "message %s has no data file",
					  env->id);
		return store_fail_errno(error_r, false, "stat data", env->id);
	}
	return data_size_check(&st, env->id, env->size, error_r);
}

/* After a failed check: NOTFOUND if the message went away meanwhile
 * (removed or moved by the lock holder), else the check's result. */
static int gone_or(struct queue *q, const char *id, int ret, const char **error_r)
{
	struct stat st;
	if (fstatat(q->env_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return store_fail(error_r, STORE_E_NOTFOUND, "message %s is gone", id);
	return ret;
}

int queue_envelope_read(struct queue *q, const char *id, struct queue_envelope *env_r,
			const char **error_r)
{
	int ret = queue_envelope_load(q, id, env_r, error_r);
	if (ret < 0)
		return ret;
	ret = queue_data_check(q, env_r, error_r);
	if (ret < 0) {
		queue_envelope_clear(env_r);
		return gone_or(q, id, ret, error_r);
	}
	return STORE_OK;
}

int queue_data_open(struct queue *q, const struct queue_envelope *env, int *fd_r,
		    const char **error_r)
{
	int ret = check_id(env->id, error_r);
	if (ret < 0)
		return ret;
	int fd = openat(q->data_fd, env->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			return store_fail_errno(error_r, false, "open data", env->id);
		return gone_or(q, env->id,
			       store_fail(error_r, STORE_E_CORRUPT, "message %s has no data file",
					  env->id),
			       error_r);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		ret = store_fail_errno(error_r, false, "stat data", env->id);
	else
		ret = data_size_check(&st, env->id, env->size, error_r);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	*fd_r = fd;
	return STORE_OK;
}

int queue_message_open(struct queue *q, const char *id, int *fd_r, uint64_t *size_r,
		       const char **error_r)
{
	struct queue_envelope env;
	int ret = queue_envelope_load(q, id, &env, error_r);
	if (ret < 0)
		return ret;
	ret = queue_data_open(q, &env, fd_r, error_r);
	if (ret == STORE_OK)
		*size_r = env.size;
	queue_envelope_clear(&env);
	return ret;
}

int queue_envelope_update(struct queue *q, const struct queue_envelope *env, const char **error_r)
{
	int ret = queue_need_lock(q, false, "updating an envelope", error_r);
	if (ret < 0 || (ret = check_id(env->id, error_r)) < 0)
		return ret;
	struct stat st;
	if (fstatat(q->env_fd, env->id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return store_fail_errno(error_r, true, "envelope", env->id);
	struct textbuf buf = TEXTBUF_INIT;
	queue_envelope_encode(env, &buf);
	char tmp[24];
	int fd = queue_tmp_create(q, 'u', tmp, error_r);
	if (fd < 0) {
		textbuf_free(&buf);
		return fd;
	}
	/* The new contents must be durable before the rename replaces the
	 * old envelope: a crash must leave the old one or the new one. */
	if (store_write_full(fd, buf.data, buf.len) < 0)
		ret = store_fail_errno(error_r, false, "write", "envelope");
	else
		ret = store_sync_wait(q->store->sync, &fd, 1, error_r);
	textbuf_free(&buf);
	close(fd);
	if (ret == STORE_OK && renameat(q->tmp_fd, tmp, q->env_fd, env->id) < 0)
		ret = store_fail_errno(error_r, false, "rename envelope", env->id);
	if (ret < 0) {
		unlinkat(q->tmp_fd, tmp, 0);
		return ret;
	}
	return store_sync_wait(q->store->sync, &q->env_fd, 1, error_r);
}

int queue_remove(struct queue *q, const char *id, const char **error_r)
{
	int ret = queue_need_lock(q, false, "removing a message", error_r);
	if (ret < 0 || (ret = check_id(id, error_r)) < 0)
		return ret;
	/* Envelope first: a crash in between leaves only data, which
	 * queue_cleanup removes; never an envelope without its data. */
	if (unlinkat(q->env_fd, id, 0) < 0)
		return store_fail_errno(error_r, true, "remove envelope", id);
	if (unlinkat(q->data_fd, id, 0) < 0 && errno != ENOENT)
		return store_fail_errno(error_r, false, "remove data", id);
	int fds[2] = {q->env_fd, q->data_fd};
	return store_sync_wait(q->store->sync, fds, 2, error_r);
}

/*
 * The data file is hard-linked into the target first and the link made
 * durable; then the envelope is renamed (the commit point: it is in
 * exactly one spool's env/ at any time) and both env/ directories made
 * durable; only then is the source's data link removed. A crash at any
 * point leaves the message whole in one spool plus, at worst, a data
 * link without an envelope in the other, which queue_cleanup removes.
 * (Two renames could leave, after a crash between them, the envelope in
 * one spool and its data in the other.) Moving from the maildrop, where
 * no lock is needed, movers may race: the loser's rename finds no
 * envelope and it gets STORE_E_NOTFOUND, leaving its data link to
 * cleanup (two movers into one spool share that link).
 */
int queue_move(struct queue *from, struct queue *to, const char *id, const char **error_r)
{
	int ret = check_id(id, error_r);
	if (ret < 0)
		return ret;
	if ((ret = queue_need_lock(from, true, "moving a message out", error_r)) < 0)
		return ret;
	if (from == to || strcmp(from->path, to->path) == 0)
		return store_fail(error_r, STORE_E_INVALID, "moving %s onto its own spool", id);
	struct stat st, src;
	if (fstatat(from->env_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return store_fail_errno(error_r, true, "envelope", id);
	if (fstatat(to->env_fd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return store_fail(error_r, STORE_E_EXISTS, "spool %s already has message %s",
				  to->name, id);
	if (fstatat(from->data_fd, id, &src, AT_SYMLINK_NOFOLLOW) < 0)
		return store_fail_errno(error_r, true, "data", id);
	if (linkat(from->data_fd, id, to->data_fd, id, 0) < 0) {
		/* Left by an earlier interrupted move of this message, or
		 * made by a concurrent move of it into the same spool? */
		if (errno != EEXIST)
			return store_fail_errno(error_r, true, "link data", id);
		if (fstatat(to->data_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_ino != src.st_ino || st.st_dev != src.st_dev)
			return store_fail(error_r, STORE_E_EXISTS,
					  "spool %s already has data for message %s", to->name, id);
	}
	ret = store_sync_wait(to->store->sync, &to->data_fd, 1, error_r);
	if (ret == STORE_OK && renameat(from->env_fd, id, to->env_fd, id) < 0)
		ret = store_fail_errno(error_r, true, "move envelope", id);
	/* On failure the link stays: a concurrent move of this message into
	 * the same spool may be using it, so only cleanup (by age) may
	 * remove it. */
	if (ret < 0)
		return ret;
	int fds[2] = {from->env_fd, to->env_fd};
	ret = store_sync_wait(to->store->sync, fds, 2, error_r);
	if (ret < 0)
		return ret;
	if (unlinkat(from->data_fd, id, 0) < 0 && errno != ENOENT)
		return store_fail_errno(error_r, false, "remove moved data", id);
	return STORE_OK;
}
