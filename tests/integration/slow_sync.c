/*
 * An LD_PRELOAD shim for integration tests: while the file named by
 * CM_SLOW_SYNC exists, every fsync, fdatasync and syncfs of the process
 * first creates CM_SLOW_SYNC.hit (the test waits for it) and sleeps 3 s,
 * so that a test can catch maild with a commit in flight (built by the
 * test that uses it, with the system's cc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void maybe_sleep(void)
{
	const char *trigger = getenv("CM_SLOW_SYNC");
	if (trigger == NULL || access(trigger, F_OK) != 0)
		return;
	char hit[4096];
	snprintf(hit, sizeof(hit), "%s.hit", trigger);
	int fd = open(hit, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
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
