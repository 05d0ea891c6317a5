/*
 * Unit tests for storage/store_lock.c: a lock file opened again while an
 * entry for it is held costs no descriptor (they used to pile up until the
 * last user left: one per delivery or open while a session held the
 * mailbox), and releasing such a second use keeps the first user's lock.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/store_lock.h"
#include "tests/unit/test_store_helpers.h"

static int open_descriptors(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* In a child (another process, so fcntl sees a conflict): 1 when slot 0 of
 * path can be taken, 0 when someone holds it. */
static int free_in_other_process(const char *path)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR);
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
		_exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 1 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_reopen_costs_no_descriptor(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	int dirfd = open(root, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	const char *err;
	struct store_lockfile *held;
	assert_int_equal(store_lockfile_open(dirfd, "lock", &held, &err), 0);
	assert_int_equal(store_lock(held, 0, true, true, &err), 1);
	int before = open_descriptors();
	for (int i = 0; i < 1000; i++) {
		struct store_lockfile *again;
		assert_int_equal(store_lockfile_open(dirfd, "lock", &again, &err), 0);
		assert_ptr_equal(again, held);
		store_lockfile_release(&again);
	}
	assert_int_equal(open_descriptors(), before);

	char path[512];
	snprintf(path, sizeof(path), "%s/lock", root);
	assert_int_equal(free_in_other_process(path), 0); /* still held */
	store_unlock(held, 0);
	assert_int_equal(free_in_other_process(path), 1);
	store_lockfile_release(&held);
	close(dirfd);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reopen_costs_no_descriptor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
