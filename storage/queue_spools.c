/*
 * queue_list_spools (storage/queue.h): the spools under <store>/spool/,
 * for mailq and `mailctl queue list`, which show every node's queue and
 * the maildrop. A directory listing only: it takes no lock and opens no
 * spool, so it never disturbs the node running one.
 */
#include "storage/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/strvec.h"
#include "storage/store_internal.h"

/* Node ids 1..65535 and the maildrop; anything beyond is not a spool we wrote. */
#define QUEUE_SPOOLS_MAX 65537

static int compare_names(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	/* numeric node ids in numeric order, then the other names */
	size_t lx = strspn(x, "0123456789"), ly = strspn(y, "0123456789");
	bool nx = lx > 0 && x[lx] == '\0', ny = ly > 0 && y[ly] == '\0';
	if (nx != ny)
		return nx ? -1 : 1;
	if (nx && strlen(x) != strlen(y))
		return strlen(x) < strlen(y) ? -1 : 1;
	return strcmp(x, y);
}

int queue_list_spools(struct store *store, bool (*cb)(const char *name, void *ctx), void *ctx,
		      const char **error_r)
{
	char path[4096];
	struct strvec names = STRVEC_INIT;
	int ret = STORE_OK;

	if ((size_t)snprintf(path, sizeof(path), "%s/spool", store->root) >= sizeof(path))
		return store_fail(error_r, STORE_E_INVALID, "store path too long");
	DIR *d = store_opendir(AT_FDCWD, path);
	if (d == NULL) {
		if (errno == ENOENT)
			return STORE_OK;
		return store_fail_errno(error_r, false, "opendir", path);
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (names.n == QUEUE_SPOOLS_MAX) {
			ret = store_fail(error_r, STORE_E_LIMIT, "more than %d spools in %s",
					 QUEUE_SPOOLS_MAX, path);
			break;
		}
		strvec_push(&names, de->d_name);
	}
	closedir(d);
	if (ret == STORE_OK) {
		strvec_sort(&names, compare_names);
		for (size_t i = 0; i < names.n && cb(names.v[i], ctx); i++)
			;
	}
	strvec_free(&names);
	return ret;
}
