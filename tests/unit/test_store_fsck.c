/*
 * Unit tests for store_fsck beyond damaged indexes (test_index_corrupt.c):
 * the leftovers every kind of interrupted operation can leave, each
 * reported with its problem code, removed or finished by repair without
 * touching a message, and quota usage recomputed, exactly even while
 * another thread appends, delivers and expunges. A clean store has no
 * problems, also when every user is walked.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "storage/mailbox_internal.h"
#include "storage/quota_usage.h"
#include "tests/unit/test_store_helpers.h"

static void test_clean(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 1024);
	const char *err;
	for (int i = 0; i < 3; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "user%d@example.net", i);
		struct store_user *u = tstore_user(s, addr);
		assert_int_equal(mailbox_create(u, "Work/Projects", MAILBOX_SPECIAL_ARCHIVE, &err), 0);
		struct mailbox *b = tstore_mailbox(u, "Work/Projects", 0);
		for (int k = 0; k < 20; k++)
			tstore_append(s, b, "Subject: k\r\n\r\nx\r\n", k % 2 ? MAIL_DELETED : 0, NULL);
		assert_int_equal(mailbox_expunge(b, NULL, false, NULL, &err), 0);
		mailbox_close(&b);
		store_user_close(&u);
	}
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, NULL, false, &r), 0);
	assert_int_equal(r.progress, 6); /* INBOX and Work/Projects of 3 users */
	assert_int_equal(tstore_fsck(s, "user1@example.net", true, &r), 0);
	store_close(&s);
	tstore_rmrf(&root);
}

static void touch(int dir_fd, const char *name, const char *data)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void test_leftovers(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "kim@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	const char *err;
	for (int i = 0; i < 5; i++)
		tstore_append(s, b, "Subject: left\r\n\r\nover\r\n", 0, NULL);
	/* An orphan above UIDNEXT (append died before its record), one below
	 * (expunge died before unlinking), a cache blob without a message, a
	 * cache temporary, a snapshot temporary, a stale log. */
	touch(b->msg_fd, "0/9", "orphan");
	touch(b->msg_fd, "0/7.cache", "blob");
	touch(b->msg_fd, "0/3.cache.abcd.tmp", "t");
	touch(b->dir_fd, "index.tmp.0011223344556677", "t");
	touch(b->dir_fd, "log.99", "t");
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 5);
	assert_int_equal(mailbox_expunge(b, &one, true, NULL, &err), 0);
	touch(b->msg_fd, "0/5", "expunged but not unlinked");
	/* A foreign file in new/ (renamed so it is delivered), an interrupted
	 * creation, an interrupted deletion, a stray name. */
	touch(b->new_fd, "dropped-by-hand", "Subject: manual\r\n\r\n");
	int level = store_open_dir(u->box_fd, "INBOX");
	assert_int_equal(mkdirat(level, ".box.tmp.0123456789abcdef", 0700), 0);
	close(level);
	assert_int_equal(mkdirat(u->dir_fd, "trash", 0700), 0);
	assert_int_equal(mkdirat(u->dir_fd, "trash/0000111122223333", 0700), 0);
	touch(b->msg_fd, "0/junk", "x");
	/* Quota off by a lot. */
	assert_int_equal(quota_set(u, 1, 1000, &err), 0);
	mailbox_close(&b);

	struct tstore_fsck_report r;
	int found = tstore_fsck(s, "kim@example.com", false, &r);
	assert_int_equal(r.counts[STORE_FSCK_ORPHAN_FILE], 3);
	assert_int_equal(r.counts[STORE_FSCK_LEFTOVER], 5);
	assert_int_equal(r.counts[STORE_FSCK_BAD_NAME], 2);
	assert_int_equal(r.counts[STORE_FSCK_QUOTA], 1);
	assert_int_equal(r.repaired, 0);
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &r), found); /* nothing changed */
	assert_int_equal(tstore_fsck(s, "kim@example.com", true, &r), found);
	/* The bad name in msg/ stays (the store never deletes what it does
	 * not understand); the rest is gone. */
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &r), 1);
	assert_int_equal(r.counts[STORE_FSCK_BAD_NAME], 1);

	b = tstore_mailbox(u, "INBOX", 0);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 5); /* 4 appended + the one dropped into new/ */
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 5);
	assert_int_equal(q.bytes, st.bytes);
	mailbox_close(&b);
	uidset_free(&one);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A temporary message file that an APPEND is still writing carries the
 * message's own date (an old one, often) as its mtime: fsck must judge
 * its age by when it was made, and leave it. */
static void test_tmp_age_is_not_the_message_date(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/mail/.tmp/test-node/w1", root);
	mkdir(dir, 0700); /* the node's area exists once the store is open */
	snprintf(path, sizeof(path), "%s/inflight", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	struct timespec old[2] = { { 631152000, 0 }, { 631152000, 0 } }; /* 1990 */
	assert_int_equal(futimens(fd, old), 0);
	close(fd);
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, NULL, true, &r), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	store_close(&s);
	tstore_rmrf(&root);
}

static void test_missing_file(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "lee@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	for (int i = 0; i < 3; i++)
		tstore_append(s, b, "Subject: m\r\n\r\nx\r\n", 0, NULL);
	assert_int_equal(unlinkat(b->msg_fd, "0/2", 0), 0);
	struct mailbox_status st0;
	mailbox_get_status(b, &st0);
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, "lee@example.com", true, &r), 2); /* missing + quota */
	assert_int_equal(r.counts[STORE_FSCK_MISSING_FILE], 1);
	const char *err;
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	assert_null(mailbox_lookup(b, 2));
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.uidvalidity, st0.uidvalidity);
	assert_int_equal(tstore_fsck(s, "lee@example.com", false, &r), 0);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A mailbox that lost its new/ directory is given one again; one user
 * fsck cannot check (here a mailbox whose msg/ is a file) is reported and
 * the walk over all users goes on to the next. */
static void test_damaged_mailbox_directories(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	const char *err;
	struct store_user *a = tstore_user(s, "amy@example.com");
	struct store_user *z = tstore_user(s, "zed@example.com");
	struct mailbox *b = tstore_mailbox(a, "INBOX", 0);
	tstore_append(s, b, "Subject: m\r\n\r\nx\r\n", 0, NULL);
	assert_int_equal(unlinkat(b->dir_fd, "new", AT_REMOVEDIR), 0);
	mailbox_close(&b);
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, "amy@example.com", true, &r), 1);
	assert_int_equal(r.counts[STORE_FSCK_MISSING_FILE], 1);
	assert_int_equal(tstore_fsck(s, "amy@example.com", false, &r), 0);
	struct store_rcpt rc;
	memset(&rc, 0, sizeof(rc));
	rc.address = "amy@example.com";
	struct mail_writer *w = tstore_writer(s, "Subject: after\r\n\r\ny\r\n");
	assert_int_equal(store_deliver(s, &w, NULL, &rc, 1, &err), 0);
	assert_int_equal(rc.result, 0);

	/* amy's msg/ becomes a file; zed gets a problem fsck must still find */
	b = tstore_mailbox(a, "INBOX", 0);
	int box = dup(b->dir_fd);
	mailbox_close(&b);
	char path[512];
	snprintf(path, sizeof(path), "%s/mail/.tmp/zz-moved-msg", root);
	assert_int_equal(renameat(box, "msg", AT_FDCWD, path), 0);
	int fd = openat(box, "msg", O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	close(box);
	struct mailbox *zb = tstore_mailbox(z, "INBOX", 0);
	tstore_append(s, zb, "Subject: z\r\n\r\nz\r\n", 0, NULL);
	assert_int_equal(unlinkat(zb->msg_fd, "0/1", 0), 0);
	mailbox_close(&zb);
	memset(&r, 0, sizeof(r));
	struct store_fsck_callbacks cb = { tstore_fsck_on_progress, tstore_fsck_on_problem, &r };
	assert_true(store_fsck(s, NULL, false, &cb, &err) < 0);
	assert_non_null(strstr(err, "amy@example.com"));
	assert_int_equal(r.counts[STORE_FSCK_UNCHECKED], 1);
	assert_true(r.counts[STORE_FSCK_MISSING_FILE] >= 1); /* zed's, found all the same */
	store_user_close(&a);
	store_user_close(&z);
	store_close(&s);
	tstore_rmrf(&root);
}

/* An absorber killed between linking a delivery from new/ to its UID and
 * writing the record: the link is an orphan, the new/ entry (same inode)
 * is still the acknowledged delivery. fsck removes the orphan and keeps
 * the entry, which the next open absorbs. */
static void test_absorber_killed_before_its_record(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	const char *err;
	struct store_user *u = tstore_user(s, "kim@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, b, "Subject: one\r\n\r\nx\r\n", 0, NULL);
	int box = dup(b->dir_fd), new_fd = dup(b->new_fd);
	mailbox_close(&b);
	struct store_rcpt rc;
	memset(&rc, 0, sizeof(rc));
	rc.address = "kim@example.com";
	struct mail_writer *w = tstore_writer(s, "Subject: delivered\r\n\r\nacknowledged\r\n");
	assert_int_equal(store_deliver(s, &w, NULL, &rc, 1, &err), 0);
	assert_int_equal(rc.result, 0);
	DIR *d = fdopendir(dup(new_fd));
	struct dirent *de;
	char entry[300] = "";
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(entry, sizeof(entry), "%s", de->d_name);
	closedir(d);
	assert_true(entry[0] != '\0');
	assert_int_equal(linkat(new_fd, entry, box, "msg/0/2", 0), 0); /* the absorber's link */

	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, "kim@example.com", true, &r), 1);
	assert_int_equal(r.counts[STORE_FSCK_ORPHAN_FILE], 1);
	assert_int_equal(r.counts[STORE_FSCK_LEFTOVER], 0);
	struct stat st;
	assert_int_equal(fstatat(new_fd, entry, &st, 0), 0);
	b = tstore_mailbox(u, "INBOX", 0);
	struct mailbox_status ms;
	mailbox_get_status(b, &ms);
	assert_int_equal(ms.messages, 2);
	mailbox_close(&b);
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &r), 0);
	close(new_fd);
	close(box);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* One delivery naming INBOX and Sub of one user; INBOX absorbs it and a
 * COPY puts it into Sub before Sub absorbs its own: Sub's entry shares the
 * copy's inode but is still a pending delivery (not in Sub's absorb set). */
static void test_pending_entry_sharing_a_copy(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	const char *err;
	struct store_user *u = tstore_user(s, "kim@example.com");
	assert_int_equal(mailbox_create(u, "Sub", 0, &err), 0);
	struct store_rcpt rc[2];
	memset(rc, 0, sizeof(rc));
	rc[0].address = rc[1].address = "kim@example.com";
	rc[1].mailbox = "Sub";
	struct mailbox *sub = tstore_mailbox(u, "Sub", MAILBOX_OPEN_APPEND_ONLY); /* before */
	struct mail_writer *w = tstore_writer(s, "Subject: both\r\n\r\nx\r\n");
	assert_int_equal(store_deliver(s, &w, NULL, rc, 2, &err), 0);
	assert_int_equal(rc[0].result, 0);
	assert_int_equal(rc[1].result, 0);
	struct mailbox *inbox = tstore_mailbox(u, "INBOX", 0);
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	assert_int_equal(mailbox_copy(inbox, &one, sub, false, NULL, NULL, NULL, &err), 0);
	uidset_free(&one);
	mailbox_close(&sub);
	mailbox_close(&inbox);

	struct tstore_fsck_report r;
	tstore_fsck(s, "kim@example.com", true, &r);
	assert_int_equal(r.counts[STORE_FSCK_LEFTOVER], 0);
	sub = tstore_mailbox(u, "Sub", 0);
	struct mailbox_status ms;
	mailbox_get_status(sub, &ms);
	assert_int_equal(ms.messages, 2);
	mailbox_close(&sub);
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &r), 0);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A dry run changes nothing: no directory for an address without mail,
 * no INBOX where one is missing (reported; --repair makes it). */
static void test_dry_run_creates_nothing(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	const char *err;
	struct tstore_fsck_report r;
	assert_int_equal(store_fsck(s, "nobody@example.com", false, NULL, &err), STORE_E_NOTFOUND);
	assert_int_equal(store_fsck(s, "nobody@example.com", true, NULL, &err), STORE_E_NOTFOUND);
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mail/example.com", root);
	assert_int_equal(stat(path, &st), -1);

	struct store_user *u = tstore_user(s, "ann@example.com");
	int box = dup(u->box_fd);
	store_user_close(&u);
	assert_int_equal(renameat(box, "INBOX", box, "Gone"), 0);
	assert_int_equal(tstore_fsck(s, "ann@example.com", false, &r), 1);
	assert_int_equal(r.counts[STORE_FSCK_LEFTOVER], 1);
	assert_int_equal(fstatat(box, "INBOX", &st, 0), -1);
	assert_int_equal(tstore_fsck(s, "ann@example.com", true, &r), 1);
	assert_int_equal(fstatat(box, "INBOX/.box", &st, 0), 0);
	assert_int_equal(tstore_fsck(s, "ann@example.com", false, &r), 0);
	close(box);
	store_close(&s);
	tstore_rmrf(&root);
}

/* A deletion that died after its DELETED record: fsck finishes it. */
static void test_half_deleted(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "max@example.com");
	const char *err;
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	struct mailbox *b = tstore_mailbox(u, "Old", 0);
	tstore_append(s, b, "x", 0, NULL);
	assert_int_equal(index_view_lock(b->view, &err), 0);
	textbuf_truncate(&b->buf, 0);
	size_t start = index_rec_begin(&b->buf);
	assert_int_equal(index_view_write(b->view, &b->buf, start, INDEX_REC_DELETED, 0, 0, 0, NULL, &err), 0);
	index_view_unlock(b->view);
	assert_int_equal(index_view_durable(b->view, NULL, 0, &err), 0);
	mailbox_close(&b);
	struct mailbox *gone;
	assert_int_equal(mailbox_open(u, "Old", 0, &gone, &err), STORE_E_NOTFOUND);
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, "max@example.com", true, &r), 2); /* leftover + quota */
	assert_int_equal(mailbox_open(u, "Old", 0, &gone, &err), STORE_E_INVALID); /* level left */
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	assert_int_equal(tstore_fsck(s, "max@example.com", false, &r), 0);
	/* Creating over a half-deleted mailbox finishes the deletion first. */
	b = tstore_mailbox(u, "Old", 0);
	tstore_append(s, b, "y", 0, NULL);
	assert_int_equal(index_view_lock(b->view, &err), 0);
	textbuf_truncate(&b->buf, 0);
	start = index_rec_begin(&b->buf);
	assert_int_equal(index_view_write(b->view, &b->buf, start, INDEX_REC_DELETED, 0, 0, 0, NULL, &err), 0);
	index_view_unlock(b->view);
	assert_int_equal(index_view_durable(b->view, NULL, 0, &err), 0);
	mailbox_close(&b);
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	b = tstore_mailbox(u, "Old", 0);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 0);
	mailbox_close(&b);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

struct busy_arg {
	struct store *s;
	volatile int stop;
	long ops;
};

/* Appends to two mailboxes, delivers and expunges until told to stop. */
static void *busy_user(void *p)
{
	struct busy_arg *a = p;
	const char *err;
	struct store_user *u = tstore_user(a->s, "busy@example.net");
	struct mailbox *inbox = tstore_mailbox(u, "INBOX", 0);
	struct mailbox *work = tstore_mailbox(u, "Work", MAILBOX_OPEN_APPEND_ONLY);
	while (!a->stop) {
		tstore_append(a->s, inbox, "Subject: a\r\n\r\nappended\r\n", MAIL_DELETED, NULL);
		tstore_append(a->s, work, "Subject: w\r\n\r\nwork\r\n", 0, NULL);
		struct store_rcpt r;
		memset(&r, 0, sizeof(r));
		r.address = "busy@example.net";
		struct mail_writer *w = tstore_writer(a->s, "Subject: d\r\n\r\ndelivered\r\n");
		if (store_deliver(a->s, &w, NULL, &r, 1, &err) != 0 || r.result != 0)
			fail_msg("deliver: %s", r.error);
		if (a->ops % 4 == 3 && mailbox_expunge(inbox, NULL, false, NULL, &err) != 0)
			fail_msg("expunge: %s", err);
		a->ops++;
	}
	mailbox_close(&work);
	mailbox_close(&inbox);
	store_user_close(&u);
	return NULL;
}

/* The recount holds the counters lock across counting and writing, so a
 * user in full swing never shows a quota difference, and the usage
 * stays right afterwards. */
static void test_quota_exact_while_active(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 4096);
	const char *err;
	struct store_user *u = tstore_user(s, "busy@example.net");
	assert_int_equal(mailbox_create(u, "Work", 0, &err), 0);
	struct busy_arg a = { s, 0, 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, busy_user, &a), 0);
	int quota_reports = 0, runs = 0;
	for (; runs < 40 || a.ops < 20; runs++) {
		struct tstore_fsck_report r;
		tstore_fsck(s, "busy@example.net", true, &r);
		quota_reports += r.counts[STORE_FSCK_QUOTA];
		usleep(1000);
	}
	a.stop = 1;
	pthread_join(t, NULL);
	if (quota_reports != 0)
		fail_msg("%d of %d fsck runs during %ld operations saw a quota difference",
			 quota_reports, runs, a.ops);
	struct tstore_fsck_report r;
	assert_int_equal(tstore_fsck(s, "busy@example.net", false, &r), 0);
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_true(q.messages > 0);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_leftovers),
		cmocka_unit_test(test_tmp_age_is_not_the_message_date),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_damaged_mailbox_directories),
		cmocka_unit_test(test_absorber_killed_before_its_record),
		cmocka_unit_test(test_pending_entry_sharing_a_copy),
		cmocka_unit_test(test_dry_run_creates_nothing),
		cmocka_unit_test(test_half_deleted),
		cmocka_unit_test(test_quota_exact_while_active),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
