/*
 * Helpers shared by the SMTP queue's unit tests (test_queue.c,
 * test_queue_crash.c): committing a message whose bytes and size follow
 * from its id, and checking it back. Included by one .c per binary.
 */
#ifndef CM_TEST_QUEUE_HELPERS_H
#define CM_TEST_QUEUE_HELPERS_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "storage/queue.h"
#include "storage/store_internal.h"
#include "storage/store_sync.h"
#include "tests/unit/test_store_helpers.h"

static inline struct store *tqueue_store(const char *root, enum store_sync_mode mode)
{
	return tstore_open_with(root, (struct store_options){.sync_mode = mode});
}

static inline struct queue *tqueue_open(struct store *s, const char *name)
{
	struct queue *q = NULL;
	const char *err = NULL;
	int ret = queue_open(s, name, &q, &err);
	if (ret != 0)
		fail_msg("queue_open(%s): %d %s", name, ret, err);
	return q;
}

/* The message an id stands for: 1..6000 bytes of a pattern seeded by it. */
static inline size_t tqueue_body(const char *id, char *buf, size_t max)
{
	uint32_t h = store_fnv1a(id);
	size_t len = 1 + h % 6000;
	if (len > max)
		len = max;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('!' + (h + i * 7) % 90);
	return len;
}

/* Commits the message of id with one recipient; returns the result. */
static inline int tqueue_commit(struct queue *q, const char *id, const char **err)
{
	struct queue_writer *w = NULL;
	int ret = queue_writer_create(q, &w, err);
	if (ret < 0)
		return ret;
	char body[6000];
	size_t len = tqueue_body(id, body, sizeof(body));
	/* In two pieces, as a session streams it. */
	if ((ret = queue_writer_write(w, body, len / 2, err)) < 0 ||
	    (ret = queue_writer_write(w, body + len / 2, len - len / 2, err)) < 0) {
		queue_writer_abort(&w);
		return ret;
	}
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	snprintf(env.id, sizeof(env.id), "%s", id);
	snprintf(env.sender, sizeof(env.sender), "sender-%s@example.org", id);
	env.arrival = 1700000000;
	queue_envelope_add_rcpt(&env, "rcpt@example.net", "rfc822;rcpt@example.net",
				QUEUE_NOTIFY_FAILURE);
	ret = queue_writer_commit(&w, &env, err);
	assert_null(w);
	if (ret == 0 && env.size != len)
		fail_msg("commit of %s set size %llu, wrote %zu", id, (unsigned long long)env.size,
			 len);
	queue_envelope_clear(&env);
	return ret;
}

/* Fails the test unless id is queued whole: envelope and data. */
static inline void tqueue_check(struct queue *q, const char *id)
{
	struct queue_envelope env;
	const char *err = NULL;
	int ret = queue_envelope_read(q, id, &env, &err);
	if (ret != 0)
		fail_msg("read %s: %d %s", id, ret, err);
	char want[6000], got[6000];
	size_t len = tqueue_body(id, want, sizeof(want));
	char sender[QUEUE_ADDRESS_MAX];
	snprintf(sender, sizeof(sender), "sender-%s@example.org", id);
	assert_string_equal(env.sender, sender);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpts[0].address, "rcpt@example.net");
	assert_int_equal(env.size, len);
	int fd = -1;
	if ((ret = queue_data_open(q, &env, &fd, &err)) != 0)
		fail_msg("open data of %s: %d %s", id, ret, err);
	close(fd);
	queue_envelope_clear(&env);
	uint64_t size = 0;
	if ((ret = queue_message_open(q, id, &fd, &size, &err)) != 0)
		fail_msg("open %s: %d %s", id, ret, err);
	assert_int_equal(size, len);
	assert_int_equal(pread(fd, got, sizeof(got), 0), (ssize_t)len);
	assert_memory_equal(got, want, len);
	close(fd);
}

/* Entries of <spool>/<sub>, without . and .. */
static inline int tqueue_count(struct queue *q, const char *sub)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", queue_path(q), sub);
	DIR *d = opendir(path);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

#endif
