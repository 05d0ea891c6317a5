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

/* A store with kim's INBOX open for writing (w, one message in it) and
 * for reading (r). */
struct fixture {
	char *root;
	struct store *s;
	struct store_user *u;
	struct mailbox *w, *r;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->root = tstore_mkdtemp();
	f->s = tstore_open(f->root, 0);
	f->u = tstore_user(f->s, "kim@example.com");
	f->w = tstore_mailbox(f->u, "INBOX", 0);
	tstore_append(f->s, f->w, "Subject: 1\r\n\r\nx\r\n", 0, NULL);
	f->r = tstore_mailbox(f->u, "INBOX", MAILBOX_OPEN_READONLY);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mailbox_close(&f->r);
	mailbox_close(&f->w);
	store_user_close(&f->u);
	store_close(&f->s);
	tstore_rmrf(&f->root);
	free(f);
	return 0;
}

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
	struct fixture *f = *state;
	tstore_append(f->s, f->w, "Subject: 2\r\n\r\nx\r\n", 0, NULL);
	rotate_killed_before_mark(f->s, f->w);

	struct tstore_fsck_report rep;
	assert_int_equal(tstore_fsck(f->s, "kim@example.com", false, &rep), 1);
	assert_int_equal(rep.counts[STORE_FSCK_UNSYNCED], 1);
	assert_int_equal(rep.repaired, 0);

	for (int i = 3; i <= 5; i++)
		tstore_append(f->s, f->w, "Subject: n\r\n\r\nx\r\n", 0, NULL);
	const char *err = NULL;
	struct mailbox_status st;
	assert_int_equal(mailbox_sync(f->r, NULL, NULL, &err), 0);
	mailbox_get_status(f->r, &st);
	assert_int_equal(st.messages, 5);
	assert_int_equal(mailbox_status(f->u, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 5);
	assert_int_equal(st.uidnext, 6);
	assert_int_equal(tstore_fsck(f->s, "kim@example.com", false, &rep), 0);
}

/* fsck --repair marks it as well, with no writer around. */
static void test_fsck_marks_killed_rotation(void **state)
{
	struct fixture *f = *state;
	rotate_killed_before_mark(f->s, f->w);
	mailbox_close(&f->w);
	struct tstore_fsck_report rep;
	assert_int_equal(tstore_fsck(f->s, "kim@example.com", true, &rep), 1);
	assert_int_equal(rep.counts[STORE_FSCK_UNSYNCED], 1);
	assert_int_equal(rep.repaired, 1);
	assert_int_equal(tstore_fsck(f->s, "kim@example.com", false, &rep), 0);
	/* The reader can follow the rotation now. */
	f->w = tstore_mailbox(f->u, "INBOX", MAILBOX_OPEN_APPEND_ONLY);
	tstore_append(f->s, f->w, "Subject: 2\r\n\r\nx\r\n", 0, NULL);
	const char *err = NULL;
	struct mailbox_status st;
	assert_int_equal(mailbox_sync(f->r, NULL, NULL, &err), 0);
	mailbox_get_status(f->r, &st);
	assert_int_equal(st.messages, 2);
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
	struct fixture *f = *state;
	struct mailbox *w = f->w;
	for (int i = 0; i < 2; i++)
		tstore_append(f->s, w, "Subject: n\r\n\r\nx\r\n", 0, NULL);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_killed_rotation_does_not_strand_readers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fsck_marks_killed_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_raise_waits_for_the_rotation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
