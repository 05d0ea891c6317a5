/*
 * queue_writer: a new message on its way into a spool.
 *
 * Commit protocol (docs/storage-format.md, "SMTP queue"):
 *   1. the data is written to tmp/d-<rnd> (queue_writer_write);
 *   2. the envelope, with the data's size, to tmp/e-<rnd>;
 *   3. tmp/d-<rnd> is renamed to data/<id>, then tmp/e-<rnd> to env/<id>
 *      (the commit point: the message exists once its envelope does);
 *   4. ONE group-commit round covers both files and both directories
 *      (syncfs, or fsync of the two files and then the two directories).
 * Only then does commit return STORE_OK (the SMTP 250).
 *
 * Making the files durable before the renames would cost a second round
 * per message. Instead, a crash before step 4 ends may leave an envelope
 * whose data file is missing, short or whose own bytes are torn; the
 * envelope's CRC and its size field make that detectable, every read
 * checks them (queue_envelope_read, queue_message_open: STORE_E_CORRUPT)
 * and queue_cleanup removes such leftovers. Nothing is lost that was
 * acknowledged: a message only counts once step 4 has returned.
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

struct queue_writer {
	struct queue *q;
	int fd;
	char name[24]; /* tmp/<name> */
	uint64_t size;
};

int queue_writer_create(struct queue *q, struct queue_writer **w_r, const char **error_r)
{
	struct queue_writer *w = calloc(1, sizeof(*w));
	if (w == NULL)
		abort();
	w->q = q;
	w->fd = queue_tmp_create(q, 'd', w->name, error_r);
	if (w->fd < 0) {
		int ret = w->fd;
		free(w);
		return ret;
	}
	*w_r = w;
	return STORE_OK;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len, const char **error_r)
{
	if (store_write_full(w->fd, data, len) < 0)
		return store_fail_errno(error_r, false, "write", "queued message");
	w->size += len;
	return STORE_OK;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->size;
}

void queue_writer_abort(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	close(w->fd);
	unlinkat(w->q->tmp_fd, w->name, 0);
	free(w);
}

/* Steps 2 and 3; on failure nothing of this message is left in data/
 * or env/ (the caller removes the temporary files). */
static int commit_files(struct queue_writer *w, const struct queue_envelope *env, int env_fd,
			const char *env_tmp, const char **error_r)
{
	struct queue *q = w->q;
	struct textbuf buf = TEXTBUF_INIT;
	queue_envelope_encode(env, &buf);
	int werr = store_write_full(env_fd, buf.data, buf.len);
	textbuf_free(&buf);
	if (werr < 0)
		return store_fail_errno(error_r, false, "write", "envelope");
	/* Ids are the caller's and unique; this catches a caller's bug
	 * before a rename could replace another message's file. */
	struct stat st;
	if (fstatat(q->env_fd, env->id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(q->data_fd, env->id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return store_fail(error_r, STORE_E_EXISTS, "spool %s already has message %s",
				  q->name, env->id);
	if (renameat(q->tmp_fd, w->name, q->data_fd, env->id) < 0)
		return store_fail_errno(error_r, false, "rename data of", env->id);
	if (renameat(q->tmp_fd, env_tmp, q->env_fd, env->id) < 0) {
		int ret = store_fail_errno(error_r, false, "rename envelope of", env->id);
		unlinkat(q->data_fd, env->id, 0);
		return ret;
	}
	return STORE_OK;
}

int queue_writer_commit(struct queue_writer **wp, struct queue_envelope *env, const char **error_r)
{
	struct queue_writer *w = *wp;
	struct queue *q = w->q;
	if (!queue_id_valid(env->id)) {
		queue_writer_abort(wp);
		return store_fail(error_r, STORE_E_INVALID, "bad queue id \"%.40s\"", env->id);
	}
	env->size = w->size;
	char env_tmp[24];
	int env_fd = queue_tmp_create(q, 'e', env_tmp, error_r);
	if (env_fd < 0) {
		queue_writer_abort(wp);
		return env_fd;
	}
	int ret = commit_files(w, env, env_fd, env_tmp, error_r);
	if (ret == STORE_OK) {
		int fds[4] = {w->fd, env_fd, q->data_fd, q->env_fd};
		ret = store_sync_wait(q->store->sync, fds, 4, error_r);
		if (ret < 0) {
			/* Not durable, so not acknowledged: take it back
			 * rather than deliver what the client will resend. */
			unlinkat(q->env_fd, env->id, 0);
			unlinkat(q->data_fd, env->id, 0);
		}
	}
	close(env_fd);
	if (ret < 0) {
		/* Either still in tmp/ or renamed and taken back: ENOENT. */
		unlinkat(q->tmp_fd, env_tmp, 0);
		queue_writer_abort(wp);
		return ret;
	}
	*wp = NULL;
	close(w->fd);
	free(w);
	return STORE_OK;
}
