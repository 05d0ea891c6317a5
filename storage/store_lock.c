/*
 * store_lock: the process-wide table of fcntl lock files (see
 * store_lock.h for why it exists).
 */
#include "storage/store_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store_internal.h"

struct store_lockfile {
	struct store_lockfile *next;
	dev_t dev;
	ino_t ino;
	unsigned refs;
	int fd;                    /* the descriptor fcntl works on */
	int *extra_fds;            /* opens that raced with another thread's first, closed with the entry */
	unsigned n_extra;
	pthread_mutex_t slot[STORE_LOCK_SLOTS];
};

static pthread_mutex_t lock_table_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct store_lockfile *lock_table;
static pthread_once_t lock_atfork_once = PTHREAD_ONCE_INIT;

static void lock_atfork_child(void)
{
	/* The parent's locks are not ours; forget the entries (their
	 * descriptors are the child's copies, harmless to the parent). */
	pthread_mutex_init(&lock_table_mutex, NULL);
	lock_table = NULL;
}

static void lock_atfork_register(void)
{
	pthread_atfork(NULL, NULL, lock_atfork_child);
}

/* The entry for dev/ino, or NULL; lock_table_mutex held. */
static struct store_lockfile *lock_table_find(dev_t dev, ino_t ino)
{
	struct store_lockfile *lf;
	for (lf = lock_table; lf != NULL; lf = lf->next)
		if (lf->dev == dev && lf->ino == ino)
			break;
	return lf;
}

int store_lockfile_open(int dirfd, const char *name, struct store_lockfile **lf_r,
			const char **error_r)
{
	pthread_once(&lock_atfork_once, lock_atfork_register);
	/* A file already in the table is taken without opening it again: a
	 * descriptor opened per use could only be parked until the last user
	 * leaves (closing it would drop this process's locks on the file), so
	 * they piled up while any session kept the entry. */
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		pthread_mutex_lock(&lock_table_mutex);
		struct store_lockfile *lf = lock_table_find(st.st_dev, st.st_ino);
		if (lf != NULL)
			lf->refs++;
		pthread_mutex_unlock(&lock_table_mutex);
		if (lf != NULL) {
			*lf_r = lf;
			return 0;
		}
	}
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return store_fail_errno(error_r, true, "open lock file", name);
	if (fstat(fd, &st) < 0) {
		int ret = store_fail_errno(error_r, false, "stat lock file", name);
		close(fd);
		return ret;
	}
	pthread_mutex_lock(&lock_table_mutex);
	struct store_lockfile *lf = lock_table_find(st.st_dev, st.st_ino);
	if (lf != NULL) {
		/* Another thread entered it meanwhile. Closing fd now could drop
		 * a lock that thread holds. */
		int *fds = realloc(lf->extra_fds, (lf->n_extra + 1) * sizeof(int));
		if (fds == NULL)
			abort();
		lf->extra_fds = fds;
		lf->extra_fds[lf->n_extra++] = fd;
		lf->refs++;
	} else {
		lf = calloc(1, sizeof(*lf));
		if (lf == NULL)
			abort();
		lf->dev = st.st_dev;
		lf->ino = st.st_ino;
		lf->fd = fd;
		lf->refs = 1;
		for (unsigned i = 0; i < STORE_LOCK_SLOTS; i++)
			pthread_mutex_init(&lf->slot[i], NULL);
		lf->next = lock_table;
		lock_table = lf;
	}
	pthread_mutex_unlock(&lock_table_mutex);
	*lf_r = lf;
	return 0;
}

void store_lockfile_release(struct store_lockfile **lfp)
{
	struct store_lockfile *lf = *lfp;
	if (lf == NULL)
		return;
	*lfp = NULL;
	pthread_mutex_lock(&lock_table_mutex);
	if (--lf->refs > 0) {
		pthread_mutex_unlock(&lock_table_mutex);
		return;
	}
	struct store_lockfile **pp = &lock_table;
	while (*pp != NULL && *pp != lf)
		pp = &(*pp)->next;
	if (*pp == lf)
		*pp = lf->next;
	pthread_mutex_unlock(&lock_table_mutex);
	/* No user is left, so no slot is held: closing drops nothing. */
	close(lf->fd);
	for (unsigned i = 0; i < lf->n_extra; i++)
		close(lf->extra_fds[i]);
	free(lf->extra_fds);
	for (unsigned i = 0; i < STORE_LOCK_SLOTS; i++)
		pthread_mutex_destroy(&lf->slot[i]);
	free(lf);
}

static int lock_fcntl(int fd, unsigned slot, short type, bool wait)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)slot;
	fl.l_len = 1;
	unsigned backoff_us = 100;
	for (int tries = 0;; tries++) {
		if (fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl) == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (!wait && (errno == EAGAIN || errno == EACCES))
			return 0;
		/* The kernel sees processes, not threads: thread 1 of A waiting
		 * for a lock B holds while thread 2 of B waits for one A holds
		 * looks like a deadlock although our lock order rules one out
		 * (B's holder will release without waiting on A). Back off and
		 * try again; a real deadlock would be a bug, so give up after a
		 * long while rather than spin forever. */
		if (errno == EDEADLK && tries < 2000) {
			usleep(backoff_us);
			if (backoff_us < 10000)
				backoff_us *= 2;
			continue;
		}
		return -1;
	}
}

int store_lock(struct store_lockfile *lf, unsigned slot, bool exclusive, bool wait,
	       const char **error_r)
{
	if (slot >= STORE_LOCK_SLOTS)
		return store_fail(error_r, STORE_E_TEMP, "lock slot %u out of range", slot);
	if (wait) {
		pthread_mutex_lock(&lf->slot[slot]);
	} else if (pthread_mutex_trylock(&lf->slot[slot]) != 0) {
		return 0;
	}
	int ret = lock_fcntl(lf->fd, slot, exclusive ? F_WRLCK : F_RDLCK, wait);
	if (ret <= 0) {
		pthread_mutex_unlock(&lf->slot[slot]);
		if (ret < 0)
			return store_fail_errno(error_r, false, "fcntl lock", "index");
		return 0;
	}
	return 1;
}

void store_unlock(struct store_lockfile *lf, unsigned slot)
{
	lock_fcntl(lf->fd, slot, F_UNLCK, false);
	pthread_mutex_unlock(&lf->slot[slot]);
}
