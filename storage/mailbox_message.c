/*
 * mailbox_message: message files. msg/<b>/<uid> with b = uid >> 12 in
 * hex, so that a million messages spread over 245 directories. Files are
 * written once and never change; copies in other mailboxes (COPY, MOVE,
 * one delivery to many users) are hard links to the same inode.
 *
 * The parsed-metadata cache lives next to a message as <uid>.cache:
 * magic, format version, length, CRC-32C, the message's GUID, blob. It is
 * derived data, so it is written (temporary name, rename) without fsync
 * and simply rebuilt when missing, stale or damaged. The GUID ties it to
 * its message: a COPY that died between its links and its record leaves
 * a blob past UIDNEXT, and the message later placed at that UID must not
 * be described by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_format.h"
#include "storage/mailbox_internal.h"
#include "storage/store_crc.h"

#define CACHE_MAGIC 0x32434d43u /* "CMC2" */
#define CACHE_HEADER 32
#define CACHE_MAX (16u * 1024 * 1024)

void mailbox_msg_name(uint32_t uid, char *out, size_t size)
{
	snprintf(out, size, "%x/%u", uid >> MAILBOX_BUCKET_SHIFT, uid);
}

int mailbox_bucket_fd(struct mailbox *box, uint32_t uid, bool create, const char **error_r)
{
	uint32_t b = uid >> MAILBOX_BUCKET_SHIFT;
	if (box->bucket_fd >= 0 && box->bucket_no == b)
		return box->bucket_fd;
	char name[16];
	snprintf(name, sizeof(name), "%x", b);
	int fd = store_open_dir(box->msg_fd, name);
	if (fd < 0 && errno == ENOENT && create) {
		if (store_mkdirat(box->msg_fd, name) < 0)
			return store_fail_errno(error_r, false, "create", "message directory");
		fd = store_open_dir(box->msg_fd, name);
	}
	if (fd < 0)
		return store_fail_errno(error_r, true, "open message directory", name);
	if (box->bucket_fd >= 0)
		close(box->bucket_fd);
	box->bucket_fd = fd;
	box->bucket_no = b;
	return fd;
}

void mailbox_bucket_touch(struct mailbox *box)
{
	if (box->store->opts.sync_mode == STORE_SYNC_SYNCFS)
		return; /* syncfs covers every directory */
	for (unsigned i = 0; i < box->n_touched; i++)
		if (box->touched_no[i] == box->bucket_no)
			return;
	if (box->n_touched == sizeof(box->touched) / sizeof(box->touched[0])) {
		/* Full: the oldest one is synced now rather than later. */
		if (fsync(box->touched[0]) < 0 && box->touch_errno == 0)
			box->touch_errno = errno;
		close(box->touched[0]);
		memmove(box->touched, box->touched + 1, (box->n_touched - 1) * sizeof(int));
		memmove(box->touched_no, box->touched_no + 1, (box->n_touched - 1) * sizeof(uint32_t));
		box->n_touched--;
	}
	int fd = fcntl(box->bucket_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) { /* no descriptor to keep: synced now instead */
		if (fsync(box->bucket_fd) < 0 && box->touch_errno == 0)
			box->touch_errno = errno;
		return;
	}
	box->touched[box->n_touched] = fd;
	box->touched_no[box->n_touched++] = box->bucket_no;
}

int mailbox_durable_files(struct mailbox *box, const int *files, size_t n_files,
			  const char **error_r)
{
	int stack[24];
	size_t cap = 1 + box->n_touched + n_files;
	int *fds = cap <= 24 ? stack : malloc(cap * sizeof(int));
	if (fds == NULL)
		abort();
	size_t n = 0;
	fds[n++] = box->msg_fd; /* new bucket directories live there */
	for (unsigned i = 0; i < box->n_touched; i++)
		fds[n++] = box->touched[i];
	for (size_t i = 0; i < n_files; i++)
		fds[n++] = files[i];
	int ret = index_view_durable(box->view, fds, n, error_r);
	if (ret == 0 && box->touch_errno != 0) {
		errno = box->touch_errno;
		ret = store_fail_errno(error_r, false, "fsync", "message directory");
	}
	box->touch_errno = 0;
	for (unsigned i = 0; i < box->n_touched; i++)
		close(box->touched[i]);
	box->n_touched = 0;
	if (fds != stack)
		free(fds);
	return ret;
}

int mailbox_durable(struct mailbox *box, const char **error_r)
{
	return mailbox_durable_files(box, NULL, 0, error_r);
}

int mailbox_copy_file(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
		      const char **error_r)
{
	int in = openat(src_dir, src_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return store_fail_errno(error_r, true, "open", src_name);
	int out = openat(dst_dir, dst_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	int ret = 0;
	if (out < 0 || fstat(in, &st) < 0) {
		ret = store_fail_errno(error_r, false, "copy to", dst_name);
	} else {
		char buf[65536];
		for (;;) {
			ssize_t n = read(in, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || (n > 0 && store_write_full(out, buf, (size_t)n) < 0)) {
				ret = store_fail_errno(error_r, false, "copy to", dst_name);
				break;
			}
			if (n == 0)
				break;
		}
		struct timespec ts[2] = { st.st_mtim, st.st_mtim };
		if (ret == 0 && (futimens(out, ts) < 0 || fsync(out) < 0))
			ret = store_fail_errno(error_r, false, "fsync", dst_name);
	}
	if (out >= 0)
		close(out);
	close(in);
	if (ret < 0)
		unlinkat(dst_dir, dst_name, 0);
	return ret;
}

static int msg_open(struct mailbox *box, uint32_t uid, int *fd_r, uint64_t *size_r,
		    const char **error_r)
{
	if (box->view->full && index_find(box->view, uid) == NULL)
		return store_fail(error_r, STORE_E_NOTFOUND, "no message with UID %u", uid);
	char name[32];
	mailbox_msg_name(uid, name, sizeof(name));
	int fd = openat(box->msg_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return store_fail(error_r, STORE_E_EXPUNGED, "message %u was expunged", uid);
	if (fd < 0)
		return store_fail_errno(error_r, false, "open message", name);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int ret = store_fail_errno(error_r, false, "stat message", name);
		close(fd);
		return ret;
	}
	*fd_r = fd;
	*size_r = (uint64_t)st.st_size;
	return 0;
}

int mailbox_msg_open(struct mailbox *box, uint32_t uid, int *fd_r, uint64_t *size_r,
		     const char **error_r)
{
	return msg_open(box, uid, fd_r, size_r, error_r);
}

int mailbox_msg_read(struct mailbox *box, uint32_t uid, uint64_t offset, void *buf, size_t len,
		     size_t *nread_r, const char **error_r)
{
	int fd;
	uint64_t size;
	int ret = msg_open(box, uid, &fd, &size, error_r);
	if (ret < 0)
		return ret;
	size_t want = offset >= size ? 0 : (size - offset < len ? (size_t)(size - offset) : len);
	ret = want > 0 && store_pread_full(fd, buf, want, offset) < 0
		      ? store_fail_errno(error_r, false, "read", "message")
		      : 0;
	close(fd);
	*nread_r = ret == 0 ? want : 0;
	return ret;
}

/* Reads a valid cache blob for format_version into blob; 1 found, 0 not. */
static int cache_read(struct mailbox *box, const char *name, uint32_t format_version,
		      const uint8_t guid[16], struct textbuf *blob)
{
	struct textbuf raw = TEXTBUF_INIT;
	int found = 0;
	if (store_read_small(box->msg_fd, name, CACHE_MAX + CACHE_HEADER, &raw, NULL) == 0 &&
	    raw.len >= CACHE_HEADER) {
		const uint8_t *p = (const uint8_t *)raw.data;
		uint32_t len = index_le32(p + 8);
		if (index_le32(p) == CACHE_MAGIC && index_le32(p + 4) == format_version &&
		    len == raw.len - CACHE_HEADER && memcmp(p + 16, guid, 16) == 0 &&
		    index_le32(p + 12) == store_crc32c(0, p + CACHE_HEADER, len)) {
			textbuf_append(blob, p + CACHE_HEADER, len);
			found = 1;
		}
	}
	textbuf_free(&raw);
	return found;
}

static void cache_write(struct mailbox *box, const char *name, uint32_t format_version,
			const uint8_t guid[16], const char *blob, size_t len)
{
	uint8_t hdr[CACHE_HEADER];
	index_set_le32(hdr, CACHE_MAGIC);
	index_set_le32(hdr + 4, format_version);
	index_set_le32(hdr + 8, (uint32_t)len);
	index_set_le32(hdr + 12, store_crc32c(0, blob, len));
	memcpy(hdr + 16, guid, 16);
	char tmp[64];
	uint8_t rnd[4];
	char hex[9];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), hex);
	snprintf(tmp, sizeof(tmp), "%s.%s.tmp", name, hex);
	int fd = openat(box->msg_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = store_write_full(fd, hdr, sizeof(hdr)) == 0 && store_write_full(fd, blob, len) == 0;
	close(fd);
	if (!ok || renameat(box->msg_fd, tmp, box->msg_fd, name) < 0)
		unlinkat(box->msg_fd, tmp, 0);
}

int mailbox_cache_get(struct mailbox *box, uint32_t uid, uint32_t format_version,
		      mail_cache_build_fn *build, void *ctx, struct textbuf *blob_r,
		      const char **error_r)
{
	if (!box->view->full)
		return store_fail(error_r, STORE_E_INVALID, "the metadata cache needs a full view");
	const struct mail_record *rec = mailbox_lookup(box, uid);
	if (rec == NULL)
		return store_fail(error_r, STORE_E_NOTFOUND, "no message with UID %u", uid);
	uint8_t guid[16];
	memcpy(guid, rec->guid, sizeof(guid));
	char name[48];
	mailbox_msg_name(uid, name, sizeof(name));
	strcat(name, ".cache");
	if (cache_read(box, name, format_version, guid, blob_r))
		return 0;
	int fd;
	uint64_t size;
	int ret = msg_open(box, uid, &fd, &size, error_r);
	if (ret < 0)
		return ret;
	size_t start = blob_r->len;
	ret = build(fd, size, blob_r, ctx);
	close(fd);
	if (ret < 0)
		return store_fail(error_r, STORE_E_TEMP, "building the metadata cache failed");
	if (blob_r->len - start <= CACHE_MAX)
		cache_write(box, name, format_version, guid, blob_r->data + start, blob_r->len - start);
	return 0;
}
