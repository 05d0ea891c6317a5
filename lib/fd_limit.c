#include "lib/fd_limit.h"

#include <sys/resource.h>

long fd_limit_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (long)(~0UL >> 1) : (long)rl.rlim_cur;
}
