/*
 * Helpers shared by the mail store's unit tests (test_store_*.c,
 * test_mailbox_*.c, test_index_*.c): temporary stores and one-line
 * appends. Included by exactly one .c per test binary; static inline so
 * that a test that does not use one does not warn.
 */
#ifndef CM_TEST_STORE_HELPERS_H
#define CM_TEST_STORE_HELPERS_H

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox.h"
#include "storage/store.h"

static inline char *tstore_mkdtemp(void)
{
	char *dir = strdup("/tmp/cm-store-test-XXXXXX");
	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static inline int tstore_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static inline void tstore_rmrf(char **dir)
{
	if (*dir == NULL)
		return;
	nftw(*dir, tstore_rm_one, 32, FTW_DEPTH | FTW_PHYS);
	free(*dir);
	*dir = NULL;
}

/* A store as node "test-node" with o's other options. */
static inline struct store *tstore_open_with(const char *root, struct store_options o)
{
	o.node_id = "test-node";
	struct store *s = NULL;
	const char *err = NULL;
	int ret = store_open(root, &o, &s, &err);
	if (ret != 0)
		fail_msg("store_open: %d %s", ret, err);
	return s;
}

static inline struct store *tstore_open(const char *root, uint32_t rotate_bytes)
{
	return tstore_open_with(root, (struct store_options){.rotate_bytes = rotate_bytes});
}

static inline struct store_user *tstore_user(struct store *s, const char *address)
{
	struct store_user *u = NULL;
	const char *err = NULL;
	int ret = store_user_open(s, address, &u, &err);
	if (ret != 0)
		fail_msg("store_user_open(%s): %d %s", address, ret, err);
	return u;
}

static inline struct mailbox *tstore_mailbox(struct store_user *u, const char *name, unsigned flags)
{
	struct mailbox *b = NULL;
	const char *err = NULL;
	int ret = mailbox_open(u, name, flags, &b, &err);
	if (ret != 0)
		fail_msg("mailbox_open(%s): %d %s", name, ret, err);
	return b;
}

static inline struct mail_writer *tstore_writer(struct store *s, const char *text)
{
	struct mail_writer *w = NULL;
	const char *err = NULL;
	assert_int_equal(mail_writer_create(s, &w, &err), 0);
	assert_int_equal(mail_writer_write(w, text, strlen(text), &err), 0);
	return w;
}

/* Appends text with flags (and at most one keyword) and returns the UID. */
static inline uint32_t tstore_append(struct store *s, struct mailbox *b, const char *text,
				     uint32_t flags, const char *keyword)
{
	const char *kw[1] = { keyword };
	struct mail_append a;
	memset(&a, 0, sizeof(a));
	a.writer = tstore_writer(s, text);
	a.flags = flags;
	a.keywords = kw;
	a.n_keywords = keyword != NULL ? 1 : 0;
	uint32_t uid = 0;
	const char *err = NULL;
	int ret = mailbox_append(b, &a, 1, NULL, &uid, NULL, &err);
	if (ret != 0)
		fail_msg("mailbox_append: %d %s", ret, err);
	return uid;
}

/* The path of a user's mailbox directory (.box), for tests that poke files. */
static inline void tstore_box_path(const char *root, const char *user_rel, const char *box,
				   char *out, size_t size)
{
	snprintf(out, size, "%s/mail/%s/box/%s/.box", root, user_rel, box);
}

static inline void tstore_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static inline size_t tstore_read_file(const char *path, char **data_r)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*data_r = buf;
	return (size_t)st.st_size;
}

/* fsck's findings counted by kind (and how many were repaired), and its
 * progress calls. */
struct tstore_fsck_report {
	int counts[STORE_FSCK_KINDS];
	int repaired;
	int progress;
};

static inline void tstore_fsck_on_problem(const char *address, const char *mailbox,
					  enum store_fsck_problem p, const char *detail,
					  bool repaired, void *ctx)
{
	struct tstore_fsck_report *r = ctx;
	(void)address;
	(void)mailbox;
	(void)detail;
	r->counts[p]++;
	r->repaired += repaired;
}

static inline void tstore_fsck_on_progress(const char *address, const char *mailbox, void *ctx)
{
	struct tstore_fsck_report *r = ctx;
	(void)address;
	(void)mailbox;
	r->progress++;
}

/* fsck of addr (NULL: every user); fails the test on an error. */
static inline int tstore_fsck(struct store *s, const char *addr, bool repair,
			      struct tstore_fsck_report *r)
{
	memset(r, 0, sizeof(*r));
	struct store_fsck_callbacks cb = { tstore_fsck_on_progress, tstore_fsck_on_problem, r };
	const char *err = NULL;
	int n = store_fsck(s, addr, repair, &cb, &err);
	if (n < 0)
		fail_msg("store_fsck: %d %s", n, err);
	return n;
}

#endif
