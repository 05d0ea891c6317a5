/*
 * store_fs: the small filesystem helpers the store is built from. All of
 * them work relative to directory descriptors, so that a renamed mailbox
 * or user directory keeps working for whoever has it open, and none of
 * them follows a symbolic link the store did not write (O_NOFOLLOW where
 * a name comes from the disk).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/store_internal.h"

int store_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO; /* short file: the caller checked the size */
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int store_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int store_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int store_mkdirat(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

int store_open_dir(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

DIR *store_opendir(int dirfd, const char *name)
{
	int fd = store_open_dir(dirfd, name);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL && fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

int store_read_fd(int fd, const char *name, size_t max, struct textbuf *out, const char **error_r)
{
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return store_fail_errno(error_r, false, "read", name);
		}
		if (n == 0)
			return 0;
		if (out->len + (size_t)n > max)
			return store_fail(error_r, STORE_E_CORRUPT, "%s is larger than %zu bytes", name,
					  max);
		textbuf_append(out, buf, (size_t)n);
	}
}

int store_read_small(int dirfd, const char *name, size_t max, struct textbuf *out,
		     const char **error_r)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return store_fail_errno(error_r, false, "open", name);
	}
	int ret = store_read_fd(fd, name, max, out, error_r);
	close(fd);
	return ret;
}

int store_replace_file(int dirfd, const char *name, const void *data, size_t len,
		       const char **error_r)
{
	uint8_t rnd[8];
	char hex[17], tmp[300];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), hex);
	snprintf(tmp, sizeof(tmp), ".tmp.%s.%s", name, hex);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_fail_errno(error_r, false, "create", tmp);
	if (store_write_full(fd, data, len) < 0 || fsync(fd) < 0) {
		int ret = store_fail_errno(error_r, false, "write", tmp);
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int ret = store_fail_errno(error_r, false, "rename", tmp);
		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	if (fsync(dirfd) < 0)
		return store_fail_errno(error_r, false, "fsync directory of", name);
	return 0;
}

static int store_remove_dir_contents(int fd)
{
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			ret = -1;
			continue;
		}
		if (store_remove_tree(dirfd(d), de->d_name) < 0)
			ret = -1;
	}
	closedir(d);
	return ret;
}

int store_remove_tree(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	int fd = store_open_dir(dirfd, name);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (store_remove_dir_contents(fd) < 0)
		return -1;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

void store_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < n) {
		ssize_t r = getrandom(p + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* no entropy source: nothing sensible to do */
		}
		got += (size_t)r;
	}
}

/* The first 8 bytes are the creation time in ns (big-endian), the rest
 * random: unique, and names made of GUIDs sort in the order they were
 * made (absorb gives UIDs in arrival order by it). */
void store_guid_new(uint8_t guid[16])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (int i = 0; i < 8; i++)
		guid[i] = (uint8_t)(ns >> (56 - 8 * i));
	store_random(guid + 8, 8);
}

void store_hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

static int store_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int store_unhex(const char *hex, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = store_hexval(hex[2 * i]);
		int lo = hi < 0 ? -1 : store_hexval(hex[2 * i + 1]);
		if (lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

uint32_t store_fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}
