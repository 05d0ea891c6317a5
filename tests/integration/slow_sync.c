/*
 * An LD_PRELOAD shim for integration tests: while the file named by
 * CM_SLOW_SYNC exists, every fsync, fdatasync and syncfs of the process
 * first sleeps 3 s, so that a test can catch maild with a commit in
 * flight (built by the test that uses it, with the system's cc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void maybe_sleep(void)
{
	const char *trigger = getenv("CM_SLOW_SYNC");
	if (trigger != NULL && access(trigger, F_OK) == 0)
		sleep(3);
}

#define SLOW(name)                                                     \
	int name(int fd)                                               \
	{                                                              \
		static int (*real)(int);                               \
		if (real == NULL)                                      \
			real = (int (*)(int))dlsym(RTLD_NEXT, #name);  \
		maybe_sleep();                                         \
		return real(fd);                                       \
	}

SLOW(fsync)
SLOW(fdatasync)
SLOW(syncfs)
