#include "lib/fd_read.h"

#include <errno.h>
#include <unistd.h>

#define PIECE 65536

int fd_read_range(int fd, uint64_t len, int (*cb)(const void *data, size_t n, void *ctx),
		  void *ctx)
{
	char buf[PIECE];
	uint64_t off = 0;
	while (off < len) {
		size_t want = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		int ret = cb(buf, (size_t)n, ctx);
		if (ret < 0)
			return ret;
		off += (uint64_t)n;
	}
	return 0;
}

double elapsed_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}
