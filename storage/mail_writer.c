/*
 * mail_writer: a message on its way into the store, written to this
 * node's temporary area under its GUID (storage/store.c). The file is not
 * fsync'd here: mailbox_append and store_deliver make it durable in a
 * group commit together with everything else in flight.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"

int mail_writer_create(struct store *store, struct mail_writer **w_r, const char **error_r)
{
	unsigned slot;
	int dir_fd = store_tmp_dir(store, &slot, error_r);
	if (dir_fd < 0)
		return dir_fd;
	struct mail_writer *w = calloc(1, sizeof(*w));
	if (w == NULL)
		abort();
	w->store = store;
	w->dir_fd = dir_fd;
	store_guid_new(w->guid);
	store_hex(w->guid, 16, w->name);
	w->fd = openat(dir_fd, w->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		free(w);
		return store_fail_errno(error_r, false, "create", "message file");
	}
	*w_r = w;
	return 0;
}

int mail_writer_write(struct mail_writer *w, const void *data, size_t len, const char **error_r)
{
	if (store_write_full(w->fd, data, len) < 0)
		return store_fail_errno(error_r, false, "write", "message file");
	w->size += len;
	return 0;
}

uint64_t mail_writer_size(const struct mail_writer *w)
{
	return w->size;
}

void mail_writer_abort(struct mail_writer **wp)
{
	struct mail_writer *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	close(w->fd);
	if (w->name[0] != '\0') /* empty once the file was moved into a mailbox */
		unlinkat(w->dir_fd, w->name, 0);
	free(w);
}
