/*
 * quota_usage: the counters file and quota checks (see quota_usage.h).
 */
#include "storage/quota_usage.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/index_format.h"
#include "storage/store_crc.h"
#include "storage/store_internal.h"

#define COUNTERS_NAME "counters"
#define COUNTERS_SIZE 64
#define COUNTERS_RETRIES 5

static const char counters_magic[8] = { 'C', 'M', 'C', 'O', 'U', 'N', 'T', '1' };

static void counters_decode(const uint8_t *b, struct quota_counters *c)
{
	c->bytes = index_le64(b + 8);
	c->messages = index_le64(b + 16);
	c->last_uidvalidity = index_le32(b + 24);
}

static bool counters_valid(const uint8_t *b, ssize_t n)
{
	return n == COUNTERS_SIZE && memcmp(b, counters_magic, 8) == 0 &&
	       store_crc32c(0, b, COUNTERS_SIZE - 4) == index_le32(b + COUNTERS_SIZE - 4);
}

/* Reads fd; torn or unreadable contents read as zeros. */
static int counters_pread(int fd, struct quota_counters *c, const char **error_r)
{
	uint8_t b[COUNTERS_SIZE];
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < COUNTERS_RETRIES; i++) {
		ssize_t n = pread(fd, b, sizeof(b), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return store_fail_errno(error_r, false, "read", COUNTERS_NAME);
		if (counters_valid(b, n)) {
			counters_decode(b, c);
			break;
		}
	}
	return 0;
}

static int counters_fd(struct store_user *user, const char **error_r)
{
	if (user->counters_fd < 0) {
		user->counters_fd = openat(user->dir_fd, COUNTERS_NAME,
					   O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (user->counters_fd < 0)
			return store_fail_errno(error_r, false, "open", COUNTERS_NAME);
	}
	return user->counters_fd;
}

int quota_counters_read_user(struct store_user *user, struct quota_counters *c,
			     const char **error_r)
{
	int fd = counters_fd(user, error_r);
	if (fd < 0)
		return fd;
	return counters_pread(fd, c, error_r);
}

static void counters_encode(const struct quota_counters *c, uint8_t b[COUNTERS_SIZE])
{
	memset(b, 0, COUNTERS_SIZE);
	memcpy(b, counters_magic, 8);
	index_set_le64(b + 8, c->bytes);
	index_set_le64(b + 16, c->messages);
	index_set_le32(b + 24, c->last_uidvalidity);
	index_set_le32(b + COUNTERS_SIZE - 4, store_crc32c(0, b, COUNTERS_SIZE - 4));
}

static int counters_pwrite(int fd, const struct quota_counters *c, bool durable,
			   const char **error_r)
{
	uint8_t b[COUNTERS_SIZE];
	counters_encode(c, b);
	if (store_pwrite_full(fd, b, sizeof(b), 0) < 0 || (durable && fsync(fd) < 0))
		return store_fail_errno(error_r, false, "write", COUNTERS_NAME);
	return 0;
}

int quota_counters_write_user(struct store_user *user, const struct quota_counters *c,
			      bool durable, const char **error_r)
{
	int fd = counters_fd(user, error_r);
	if (fd < 0)
		return fd;
	return counters_pwrite(fd, c, durable, error_r);
}

static uint64_t add_clamped(uint64_t v, int64_t d)
{
	if (d >= 0)
		return v + (uint64_t)d;
	uint64_t m = (uint64_t)0 - (uint64_t)d;
	return m > v ? 0 : v - m;
}

static bool crosses(uint64_t before, uint64_t after, uint64_t limit, unsigned pct)
{
	if (limit == 0 || pct == 0)
		return false;
	/* threshold = limit * pct / 100, without overflow for huge limits */
	uint64_t threshold = limit / 100 * pct + limit % 100 * pct / 100;
	return before < threshold && after >= threshold;
}

bool quota_over(const struct store_quota_limit *limit, uint64_t bytes, uint64_t messages)
{
	return (limit->bytes != 0 && bytes > limit->bytes) ||
	       (limit->messages != 0 && messages > limit->messages);
}

int quota_refuse(const struct quota_counters *c, const struct store_quota_limit *limit,
		 const char **error_r)
{
	return store_fail(error_r, STORE_E_QUOTA,
			  "quota exceeded: %llu of %llu bytes, %llu of %llu messages",
			  (unsigned long long)c->bytes, (unsigned long long)limit->bytes,
			  (unsigned long long)c->messages, (unsigned long long)limit->messages);
}

bool quota_warns(const struct quota_counters *c, uint64_t bytes, uint64_t messages,
		 const struct store_quota_limit *limit)
{
	return crosses(c->bytes, bytes, limit->bytes, limit->warn_percent) ||
	       crosses(c->messages, messages, limit->messages, limit->warn_percent);
}

int quota_charge_locked(struct store_user *user, int64_t bytes, int64_t messages,
			const struct store_quota_limit *limit, bool *warning_r,
			const char **error_r)
{
	if (warning_r != NULL)
		*warning_r = false;
	struct quota_counters c;
	int ret = quota_counters_read_user(user, &c, error_r);
	if (ret == 0) {
		uint64_t nb = add_clamped(c.bytes, bytes), nm = add_clamped(c.messages, messages);
		if (limit != NULL && (bytes > 0 || messages > 0) && quota_over(limit, nb, nm)) {
			ret = quota_refuse(&c, limit, error_r);
		} else {
			if (limit != NULL && warning_r != NULL)
				*warning_r = quota_warns(&c, nb, nm, limit);
			c.bytes = nb;
			c.messages = nm;
			ret = quota_counters_write_user(user, &c, false, error_r);
		}
	}
	return ret;
}

int quota_charge(struct store_user *user, int64_t bytes, int64_t messages,
		 const struct store_quota_limit *limit, bool *warning_r, const char **error_r)
{
	if (warning_r != NULL)
		*warning_r = false;
	int ret = store_user_lock(user, STORE_LOCK_COUNTERS, error_r);
	if (ret < 0)
		return ret;
	ret = quota_charge_locked(user, bytes, messages, limit, warning_r, error_r);
	store_user_unlock(user, STORE_LOCK_COUNTERS);
	return ret;
}

int quota_set(struct store_user *user, uint64_t bytes, uint64_t messages, const char **error_r)
{
	int ret = store_user_lock(user, STORE_LOCK_COUNTERS, error_r);
	if (ret < 0)
		return ret;
	struct quota_counters c;
	ret = quota_counters_read_user(user, &c, error_r);
	if (ret == 0) {
		c.bytes = bytes;
		c.messages = messages;
		ret = quota_counters_write_user(user, &c, true, error_r);
	}
	store_user_unlock(user, STORE_LOCK_COUNTERS);
	return ret;
}

int store_quota_get(struct store_user *user, struct store_quota_usage *usage_r,
		    const char **error_r)
{
	struct quota_counters c;
	int ret = quota_counters_read_user(user, &c, error_r);
	if (ret < 0)
		return ret;
	usage_r->bytes = c.bytes;
	usage_r->messages = c.messages;
	return 0;
}

int store_quota_peek(struct store *store, const char *address, struct store_quota_usage *usage_r,
		     const char **error_r)
{
	memset(usage_r, 0, sizeof(*usage_r));
	struct store_user *u = NULL;
	bool inbox_missing;
	int ret = store_user_open_existing(store, address, &inbox_missing, &u, error_r);
	if (ret == STORE_E_NOTFOUND)
		return 0; /* no mail directory: nothing used */
	if (ret < 0)
		return ret;
	int fd = openat(u->dir_fd, COUNTERS_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct quota_counters c;
	if (fd < 0 && errno != ENOENT)
		ret = store_fail_errno(error_r, false, "open", COUNTERS_NAME);
	else if (fd >= 0 && (ret = counters_pread(fd, &c, error_r)) == 0)
		*usage_r = (struct store_quota_usage){ c.bytes, c.messages };
	if (fd >= 0)
		close(fd);
	store_user_close(&u);
	return ret;
}
