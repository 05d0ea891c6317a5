/*
 * queue_spool: opening a spool directory, its run lock, listing its
 * messages, and the helpers the other queue files share.
 *
 * The run lock is an fcntl write lock on byte 0 of <spool>/lock: fcntl
 * byte-range locks are what cluster filesystems (GFS2, OCFS2, NFSv4)
 * carry between nodes, and they die with their process, which is what
 * takeover needs. It is the open-file-description kind (queue_lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/queue_internal.h"
#include "storage/store_internal.h"

static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > QUEUE_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* mkdir that notes in *created whether it made the directory. */
static int make_dir(int dirfd, const char *name, bool *created)
{
	if (mkdirat(dirfd, name, 0700) == 0) {
		*created = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

/* mkdir -p of <root>/spool/<name> and its subdirectories; new entries
 * are made durable (a spool made on first open must survive a crash as
 * much as the messages committed into it). */
static int open_dirs(struct queue *q, const char **error_r)
{
	int root_fd = open(q->store->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return store_fail_errno(error_r, false, "open store", q->store->root);
	int spool_fd = -1;
	bool new_spool = false, new_name = false, new_sub = false;
	int ok = make_dir(root_fd, "spool", &new_spool) == 0 &&
		 (spool_fd = store_open_dir(root_fd, "spool")) >= 0 &&
		 make_dir(spool_fd, q->name, &new_name) == 0 &&
		 (q->dir_fd = store_open_dir(spool_fd, q->name)) >= 0 &&
		 make_dir(q->dir_fd, "tmp", &new_sub) == 0 &&
		 (q->tmp_fd = store_open_dir(q->dir_fd, "tmp")) >= 0 &&
		 make_dir(q->dir_fd, "data", &new_sub) == 0 &&
		 (q->data_fd = store_open_dir(q->dir_fd, "data")) >= 0 &&
		 make_dir(q->dir_fd, "env", &new_sub) == 0 &&
		 (q->env_fd = store_open_dir(q->dir_fd, "env")) >= 0 &&
		 (q->lock_fd = openat(q->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				      0600)) >= 0;
	int ret = ok ? STORE_OK : store_fail_errno(error_r, false, "create spool", q->path);
	if (ok && ((new_spool && fsync(root_fd) < 0) || (new_name && fsync(spool_fd) < 0) ||
		   ((new_sub || new_name) && fsync(q->dir_fd) < 0)))
		ret = store_fail_errno(error_r, false, "fsync", "spool directories");
	if (spool_fd >= 0)
		close(spool_fd);
	close(root_fd);
	return ret;
}

int queue_open(struct store *store, const char *name, struct queue **q_r, const char **error_r)
{
	if (!name_valid(name))
		return store_fail(error_r, STORE_E_INVALID, "bad spool name \"%.80s\"", name);
	struct queue *q = calloc(1, sizeof(*q));
	if (q == NULL)
		abort();
	q->store = store;
	snprintf(q->name, sizeof(q->name), "%s", name);
	size_t plen = strlen(store->root) + strlen(name) + sizeof("/spool/");
	q->path = malloc(plen);
	if (q->path == NULL)
		abort();
	snprintf(q->path, plen, "%s/spool/%s", store->root, name);
	q->dir_fd = q->tmp_fd = q->data_fd = q->env_fd = q->lock_fd = -1;
	pthread_mutex_init(&q->lock_mu, NULL);
	int ret = open_dirs(q, error_r);
	if (ret < 0) {
		queue_close(&q);
		return ret;
	}
	*q_r = q;
	return STORE_OK;
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;
	if (q == NULL)
		return;
	*qp = NULL;
	int fds[] = {q->lock_fd, q->env_fd, q->data_fd, q->tmp_fd, q->dir_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]); /* the lock goes with lock_fd */
	pthread_mutex_destroy(&q->lock_mu);
	free(q->path);
	free(q);
}

const char *queue_name(const struct queue *q)
{
	return q->name;
}

const char *queue_path(const struct queue *q)
{
	return q->path;
}

static struct flock lock_byte0(short type)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 1;
	return fl;
}

/*
 * Open-file-description locks (F_OFD_*), not classic POSIX ones: a
 * classic lock is dropped when the process closes ANY descriptor of the
 * file, so one queue_open()+queue_close() of our own spool elsewhere in
 * maild (mailctl queue list through the daemon) would silently release
 * the queue manager's run lock. OFD locks belong to this handle only and
 * still die with the process. F_OFD_GETLK reports no pid, so the holder
 * writes its pid into the lock file.
 */
static int lock_file_pid(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

int queue_lock(struct queue *q, const char **error_r)
{
	pthread_mutex_lock(&q->lock_mu);
	int ret = STORE_OK;
	if (!q->locked) {
		struct flock fl = lock_byte0(F_WRLCK);
		if (fcntl(q->lock_fd, F_OFD_SETLK, &fl) == 0) {
			char pid[24];
			int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
			q->locked = true;
			if (ftruncate(q->lock_fd, 0) < 0 || pwrite(q->lock_fd, pid, (size_t)len, 0) != len)
				ret = store_fail_errno(error_r, false, "write the pid into", "spool lock");
		} else if (errno == EACCES || errno == EAGAIN) {
			ret = store_fail(error_r, STORE_E_TEMP, "spool %s is locked: held by pid %d",
					 q->name, lock_file_pid(q->lock_fd));
		} else {
			ret = store_fail_errno(error_r, false, "lock spool", q->name);
		}
	}
	pthread_mutex_unlock(&q->lock_mu);
	return ret;
}

int queue_need_lock(struct queue *q, bool maildrop_ok, const char *what, const char **error_r)
{
	if ((maildrop_ok && strcmp(q->name, "maildrop") == 0) || queue_locked(q))
		return STORE_OK;
	return store_fail(error_r, STORE_E_INVALID, "%s in spool %s needs its lock", what, q->name);
}

bool queue_locked(const struct queue *q)
{
	struct queue *mq = (struct queue *)q; /* the mutex is not part of the value */
	pthread_mutex_lock(&mq->lock_mu);
	bool locked = q->locked;
	pthread_mutex_unlock(&mq->lock_mu);
	return locked;
}

int queue_lock_holder(struct queue *q)
{
	/* F_OFD_GETLK does not report this handle's own lock. */
	if (queue_locked(q))
		return (int)getpid();
	struct flock fl = lock_byte0(F_WRLCK);
	if (fcntl(q->lock_fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	if (fl.l_type == F_UNLCK)
		return 0;
	int pid = lock_file_pid(q->lock_fd);
	return pid > 0 ? pid : -1;
}

int queue_list(struct queue *q, bool (*cb)(const char *id, void *ctx), void *ctx,
	       const char **error_r)
{
	DIR *d = store_opendir(q->dir_fd, "env");
	if (d == NULL)
		return store_fail_errno(error_r, false, "list", "spool env/");
	int ret = STORE_OK;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				ret = store_fail_errno(error_r, false, "read", "spool env/");
			break;
		}
		if (queue_id_valid_len(de->d_name, strlen(de->d_name)) && !cb(de->d_name, ctx))
			break;
	}
	closedir(d);
	return ret;
}

int queue_tmp_create(struct queue *q, char prefix, char *name, const char **error_r)
{
	uint8_t rnd[8];
	char hex[17];
	store_random(rnd, sizeof(rnd));
	store_hex(rnd, sizeof(rnd), hex);
	snprintf(name, 24, "%c-%s", prefix, hex);
	int fd = openat(q->tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return store_fail_errno(error_r, false, "create", "spool temporary file");
	return fd;
}

int64_t queue_age(const struct stat *st)
{
	return store_now() - (int64_t)st->st_ctim.tv_sec;
}
