/*
 * index_log: log files (log.<seq>) of a mailbox index: creation with a
 * header and an optional tail of records, opening, and the synced mark.
 *
 * The synced mark (8 bytes at INDEX_LOG_SYNCED_OFFSET, outside the header
 * checksum) is where readers stop. A writer raises it only after a group
 * commit covered its record, so a reader never applies a record that is
 * not durable. Writers raise it after their commit, without the index
 * lock, so its read-compare-write holds an open-file-description lock on
 * the mark's 8 bytes: a late raise must not write a lower value over the
 * mark of a rotation, after which no commit ever raises that log's mark
 * again (readers would stop before the ROTATE record for good). A writer
 * that finds a ROTATE past the mark (its rotator died before marking)
 * marks it (index_read.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/index_view.h"
#include "storage/store_internal.h"

void index_log_name(uint64_t seq, char *buf, size_t size)
{
	snprintf(buf, size, "log.%" PRIu64, seq);
}

int index_log_create(int dir_fd, uint64_t seq, uint32_t uidvalidity,
		     const struct index_state *state, const void *tail, size_t tail_len,
		     const char **error_r)
{
	char name[32];
	index_log_name(seq, name, sizeof(name));
	struct index_log_header h = { .seq = seq,
				      .uidvalidity = uidvalidity,
				      .synced = INDEX_LOG_HEADER_SIZE + tail_len,
				      .state = *state };
	uint8_t hdr[INDEX_LOG_HEADER_SIZE];
	index_log_header_encode(&h, hdr);
	/* A leftover of a crashed rotation may exist; nothing refers to it. */
	int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return store_fail_errno(error_r, false, "create", name);
	if (store_pwrite_full(fd, hdr, sizeof(hdr), 0) < 0 ||
	    (tail_len > 0 && store_pwrite_full(fd, tail, tail_len, INDEX_LOG_HEADER_SIZE) < 0) ||
	    fsync(fd) < 0) {
		int ret = store_fail_errno(error_r, false, "write", name);
		close(fd);
		return ret;
	}
	close(fd);
	/* Its name too, before a ROTATE record can point at it. */
	if (fsync(dir_fd) < 0)
		return store_fail_errno(error_r, false, "fsync the directory of", name);
	return 0;
}

int index_log_open(int dir_fd, uint64_t seq, int *fd_r, struct index_log_header *h_r,
		   const char **error_r)
{
	char name[32];
	index_log_name(seq, name, sizeof(name));
	int fd = openat(dir_fd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return store_fail_errno(error_r, true, "open", name);
	uint8_t hdr[INDEX_LOG_HEADER_SIZE];
	ssize_t n;
	do
		n = pread(fd, hdr, sizeof(hdr), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int ret = store_fail_errno(error_r, false, "read", name);
		close(fd);
		return ret;
	}
	int ret = index_log_header_decode(hdr, (size_t)n, h_r, error_r);
	if (ret == 0 && h_r->seq != seq)
		ret = store_fail(error_r, STORE_E_CORRUPT, "%s says it is log %" PRIu64, name,
				 h_r->seq);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	*fd_r = fd;
	return 0;
}

int index_log_synced(int fd, uint64_t *synced_r, const char **error_r)
{
	uint8_t b[8];
	if (store_pread_full(fd, b, sizeof(b), INDEX_LOG_SYNCED_OFFSET) < 0)
		return store_fail_errno(error_r, false, "read", "synced mark");
	*synced_r = index_le64(b);
	return 0;
}

/* Where the filesystem has no OFD locks (EINVAL), the mark goes unlocked,
 * as it did before they were used. */
static int mark_lock(int fd, short type, const char **error_r)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = INDEX_LOG_SYNCED_OFFSET, .l_len = 8 };
	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno == EINVAL)
			return 0;
		if (errno != EINTR)
			return store_fail_errno(error_r, false, "lock", "synced mark");
	}
	return 0;
}

static void mark_unlock(int fd)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
			    .l_start = INDEX_LOG_SYNCED_OFFSET, .l_len = 8 };
	(void)fcntl(fd, F_OFD_SETLK, &fl);
}

static int write_mark(int fd, uint64_t end, const char **error_r)
{
	uint8_t b[8];
	index_set_le64(b, end);
	if (store_pwrite_full(fd, b, sizeof(b), INDEX_LOG_SYNCED_OFFSET) < 0)
		return store_fail_errno(error_r, false, "write", "synced mark");
	return 0;
}

int index_log_mark_synced(int fd, uint64_t end, const char **error_r)
{
	/* In a group commit another writer has often raised it already:
	 * the lock (a cluster round trip on GFS2/OCFS2) only to write. */
	uint64_t cur = 0;
	int ret = index_log_synced(fd, &cur, error_r);
	if (ret < 0 || cur >= end)
		return ret;
	if ((ret = mark_lock(fd, F_WRLCK, error_r)) < 0)
		return ret;
	ret = index_log_synced(fd, &cur, error_r);
	if (ret == 0 && cur < end)
		ret = write_mark(fd, end, error_r);
	mark_unlock(fd);
	return ret;
}

int index_log_set_synced(int fd, uint64_t end, const char **error_r)
{
	int ret = mark_lock(fd, F_WRLCK, error_r);
	if (ret == 0)
		ret = write_mark(fd, end, error_r);
	mark_unlock(fd);
	return ret;
}
