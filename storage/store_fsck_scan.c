/*
 * store_fsck_scan: listing a mailbox's message files for fsck and for the
 * index rebuild: msg/<bucket>/<uid> (a canonical decimal UID in the
 * bucket it belongs to), <uid>.cache blobs, and *.tmp leftovers of cache
 * writers, which are removed when repairing. Anything else is reported
 * and left alone: the store never deletes what it does not understand.
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
#include "storage/store_fsck_internal.h"

static int cmp_file(const void *a, const void *b)
{
	uint32_t x = ((const struct fsck_file *)a)->uid, y = ((const struct fsck_file *)b)->uid;
	return x < y ? -1 : x > y;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

const struct fsck_file *fsck_files_find(const struct fsck_files *files, uint32_t uid)
{
	struct fsck_file key = { .uid = uid };
	if (files->n == 0)
		return NULL;
	return bsearch(&key, files->f, files->n, sizeof(key), cmp_file);
}

void fsck_files_free(struct fsck_files *files)
{
	free(files->f);
	free(files->caches);
	memset(files, 0, sizeof(*files));
}

/* A canonical decimal UID ("<uid>" or "<uid>.cache"); 0 if not. */
static uint32_t parse_uid(const char *s, const char *suffix)
{
	char *end;
	if (s[0] < '1' || s[0] > '9')
		return 0;
	unsigned long v = strtoul(s, &end, 10);
	if (v == 0 || v > UINT32_MAX || strcmp(end, suffix) != 0)
		return 0;
	return (uint32_t)v;
}

static void scan_bucket(struct fsck *fk, const char *mailbox, DIR *d, uint32_t bucket,
			struct fsck_files *files)
{
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (n[0] == '.')
			continue;
		uint32_t uid = parse_uid(n, "");
		struct stat st;
		if (uid != 0 && uid >> MAILBOX_BUCKET_SHIFT == bucket &&
		    fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			if (files->n == files->cap) {
				files->cap = files->cap ? files->cap * 2 : 256;
				files->f = realloc(files->f, files->cap * sizeof(*files->f));
				if (files->f == NULL)
					abort();
			}
			files->f[files->n++] = (struct fsck_file){ uid, (uint64_t)st.st_size, st.st_mtime,
								   st.st_ino };
		} else if ((uid = parse_uid(n, ".cache")) != 0) {
			if (files->n_caches == files->cap_caches) {
				files->cap_caches = files->cap_caches ? files->cap_caches * 2 : 64;
				files->caches = realloc(files->caches, files->cap_caches * sizeof(uint32_t));
				if (files->caches == NULL)
					abort();
			}
			files->caches[files->n_caches++] = uid;
		} else if (strlen(n) > 4 && strcmp(n + strlen(n) - 4, ".tmp") == 0) {
			fsck_problem(fk, mailbox, STORE_FSCK_LEFTOVER, fk->repair, "msg/%x/%s", bucket, n);
			if (fk->repair)
				unlinkat(dirfd(d), n, 0);
		} else {
			fsck_problem(fk, mailbox, STORE_FSCK_BAD_NAME, false, "msg/%x/%s", bucket, n);
		}
	}
}

int fsck_scan_messages(struct fsck *fk, const char *mailbox, int msg_fd, struct fsck_files *files,
		       const char **error_r)
{
	int fd = store_open_dir(msg_fd, ".");
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return store_fail_errno(error_r, false, "read", "msg/");
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *end, canon[16];
		unsigned long b = strtoul(de->d_name, &end, 16);
		snprintf(canon, sizeof(canon), "%lx", b);
		int bfd = -1;
		DIR *bd = NULL;
		if (*end == '\0' && strcmp(canon, de->d_name) == 0 && b <= (UINT32_MAX >> MAILBOX_BUCKET_SHIFT) &&
		    (bfd = store_open_dir(dirfd(d), de->d_name)) >= 0 && (bd = fdopendir(bfd)) != NULL) {
			scan_bucket(fk, mailbox, bd, (uint32_t)b, files);
			closedir(bd);
		} else {
			if (bfd >= 0)
				close(bfd);
			fsck_problem(fk, mailbox, STORE_FSCK_BAD_NAME, false, "msg/%s", de->d_name);
		}
	}
	closedir(d);
	if (files->n > 0)
		qsort(files->f, files->n, sizeof(*files->f), cmp_file);
	if (files->n_caches > 0)
		qsort(files->caches, files->n_caches, sizeof(uint32_t), cmp_u32);
	return 0;
}
