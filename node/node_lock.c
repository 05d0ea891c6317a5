#include "node/node_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int node_lock_acquire(const char *store_dir, unsigned node_id, const char **error_r)
{
	static _Thread_local char msg[PATH_MAX + 512];
	char path[PATH_MAX], holder[128] = "";
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	snprintf(path, sizeof(path), "%s/nodes", store_dir);
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		goto fail_errno;
	snprintf(path, sizeof(path), "%s/nodes/%u.lock", store_dir, node_id);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		goto fail_errno;
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		snprintf(msg, sizeof(msg), "node %u is already running on this store (%s holds %s)",
			 node_id, holder[0] ? holder : "another process", path);
		*error_r = msg;
		close(fd);
		return -1;
	}
	char host[64] = "?";
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	int n = snprintf(holder, sizeof(holder), "pid %ld on %s\n", (long)getpid(), host);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, holder, (size_t)n, 0) != n)
		goto fail_errno_fd;
	return fd;
fail_errno_fd:
	close(fd);
fail_errno:
	snprintf(msg, sizeof(msg), "node lock %s: %s", path, strerror(errno));
	*error_r = msg;
	return -1;
}
