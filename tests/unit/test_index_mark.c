/*
 * The synced mark of an index log around a rotation. Readers stop at the
 * mark, and after a ROTATE no commit raises that log's mark again, so:
 *  - a rotator killed between writing its ROTATE record and marking it
 *    must not leave readers before the ROTATE for good (the next writer
 *    that reads through it marks it; fsck reports it);
 *  - a committer raising the mark late (no index lock) must not write a
 *    value below a rotation's over it (the mark's bytes are locked).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>

#include "storage/index_format.h"
#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

/* What index_rotate has done when killed inside its fsync of the old log:
 * the next log exists, the ROTATE record is in the old one, unmarked. */
static void rotate_killed_before_mark(struct store *s, struct mailbox *box)
{
	const char *err = NULL;
	struct index_view *v = NULL;
	assert_int_equal(index_view_open(s, box->dir_fd, true, &v, &err), 0);
	assert_int_equal(index_view_lock(v, &err), 0);
	assert_int_equal(index_log_create(v->dir_fd, v->log_seq + 1, v->uidvalidity, &v->state, NULL,
					  0, &err),
			 0);
	struct textbuf rec = TEXTBUF_INIT;
	size_t start = index_rec_begin(&rec);
	index_put_u64(&rec, v->log_seq + 1);
	index_put_u64(&rec, INDEX_LOG_HEADER_SIZE);
	index_rec_finish(&rec, start, INDEX_REC_ROTATE, 0, 0, 0, &v->state);
	assert_int_equal(pwrite(v->log_fd, rec.data, rec.len, (off_t)v->log_pos), (ssize_t)rec.len);
	textbuf_free(&rec);
	index_view_unlock(v);
	index_view_free(&v);
}

static void test_killed_rotation_does_not_strand_readers(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "kim@example.com");
	struct mailbox *w = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, w, "Subject: 1\r\n\r\nx\r\n", 0, NULL);
	tstore_append(s, w, "Subject: 2\r\n\r\nx\r\n", 0, NULL);
	struct mailbox *r = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	rotate_killed_before_mark(s, w);

	struct tstore_fsck_report rep;
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &rep), 1);
	assert_int_equal(rep.counts[STORE_FSCK_UNSYNCED], 1);
	assert_int_equal(rep.repaired, 0);

	for (int i = 3; i <= 5; i++)
		tstore_append(s, w, "Subject: n\r\n\r\nx\r\n", 0, NULL);
	const char *err = NULL;
	struct mailbox_status st;
	assert_int_equal(mailbox_sync(r, NULL, NULL, &err), 0);
	mailbox_get_status(r, &st);
	assert_int_equal(st.messages, 5);
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 5);
	assert_int_equal(st.uidnext, 6);
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &rep), 0);
	mailbox_close(&r);
	mailbox_close(&w);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

/* fsck --repair marks it as well, with no writer around. */
static void test_fsck_marks_killed_rotation(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "kim@example.com");
	struct mailbox *w = tstore_mailbox(u, "INBOX", 0);
	tstore_append(s, w, "Subject: 1\r\n\r\nx\r\n", 0, NULL);
	struct mailbox *r = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	rotate_killed_before_mark(s, w);
	mailbox_close(&w);
	struct tstore_fsck_report rep;
	assert_int_equal(tstore_fsck(s, "kim@example.com", true, &rep), 1);
	assert_int_equal(rep.counts[STORE_FSCK_UNSYNCED], 1);
	assert_int_equal(rep.repaired, 1);
	assert_int_equal(tstore_fsck(s, "kim@example.com", false, &rep), 0);
	/* The reader can follow the rotation now. */
	w = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_APPEND_ONLY);
	tstore_append(s, w, "Subject: 2\r\n\r\nx\r\n", 0, NULL);
	mailbox_close(&w);
	const char *err = NULL;
	struct mailbox_status st;
	assert_int_equal(mailbox_sync(r, NULL, NULL, &err), 0);
	mailbox_get_status(r, &st);
	assert_int_equal(st.messages, 2);
	mailbox_close(&r);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

struct late_raise {
	int fd;
	uint64_t end;
	int ret;
};

static void *raise_mark(void *p)
{
	struct late_raise *a = p;
	const char *err = NULL;
	a->ret = index_log_mark_synced(a->fd, a->end, &err);
	return NULL;
}

static uint64_t mark_of(int fd)
{
	uint64_t m = 0;
	const char *err = NULL;
	assert_int_equal(index_log_synced(fd, &m, &err), 0);
	return m;
}

/* A committer raising the mark while a rotation holds it (writing its
 * higher value) waits, then finds the higher value and leaves it. */
static void test_late_raise_waits_for_the_rotation(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	struct store *s = tstore_open(root, 0);
	struct store_user *u = tstore_user(s, "kim@example.com");
	struct mailbox *w = tstore_mailbox(u, "INBOX", 0);
	for (int i = 0; i < 3; i++)
		tstore_append(s, w, "Subject: n\r\n\r\nx\r\n", 0, NULL);
	char name[32];
	index_log_name(w->view->log_seq, name, sizeof(name));
	int fd_rotator = openat(w->dir_fd, name, O_RDWR | O_CLOEXEC);
	int fd_committer = openat(w->dir_fd, name, O_RDWR | O_CLOEXEC);
	assert_true(fd_rotator >= 0 && fd_committer >= 0);
	uint64_t end = mark_of(fd_rotator);
	uint64_t low = end - 1; /* still above what is on disk (the committer's view) */
	/* Lower it first, so that the committer's raise is a real write. */
	const char *err = NULL;
	assert_int_equal(index_log_set_synced(fd_rotator, low - 1, &err), 0);

	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = INDEX_LOG_SYNCED_OFFSET, .l_len = 8 };
	assert_int_equal(fcntl(fd_rotator, F_OFD_SETLK, &fl), 0);
	struct late_raise a = { fd_committer, low, -1 };
	pthread_t t;
	pthread_create(&t, NULL, raise_mark, &a);
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	assert_int_equal(mark_of(fd_rotator), low - 1); /* it waits for the lock */
	uint8_t b[8];
	index_set_le64(b, end);
	assert_int_equal(pwrite(fd_rotator, b, 8, INDEX_LOG_SYNCED_OFFSET), 8);
	fl.l_type = F_UNLCK;
	assert_int_equal(fcntl(fd_rotator, F_OFD_SETLK, &fl), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(mark_of(fd_rotator), end);
	close(fd_rotator);
	close(fd_committer);
	mailbox_close(&w);
	store_user_close(&u);
	store_close(&s);
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_killed_rotation_does_not_strand_readers),
		cmocka_unit_test(test_fsck_marks_killed_rotation),
		cmocka_unit_test(test_late_raise_waits_for_the_rotation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
