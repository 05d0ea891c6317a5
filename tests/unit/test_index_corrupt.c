/*
 * Damaged index files, table-driven: each case breaks a mailbox's index
 * in one way and says what opening it must give: CORRUPT (never a crash,
 * never wrong data), or success when the damage is the torn tail of an
 * interrupted write. Then store_fsck with repair must bring the mailbox
 * back with every message file still there, and a second fsck must find
 * nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/index_format.h"
#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

#define MESSAGES 12

struct env {
	char *root;
	struct store *s;
	struct store_user *u;
	int dir_fd;          /* the INBOX .box directory */
	uint64_t log_seq;
	char log[32];
};

static void env_setup(struct env *e, bool rotated)
{
	memset(e, 0, sizeof(*e));
	e->root = tstore_mkdtemp();
	e->s = tstore_open(e->root, rotated ? 1024 : 1u << 30);
	e->u = tstore_user(e->s, "dan@example.com");
	struct mailbox *b = tstore_mailbox(e->u, "INBOX", 0);
	for (int i = 0; i < MESSAGES; i++)
		tstore_append(e->s, b, "Subject: x\r\n\r\nbody\r\n", i % 2 ? MAIL_SEEN : 0,
			      i % 3 ? NULL : "Tag");
	e->dir_fd = dup(b->dir_fd);
	e->log_seq = b->view->log_seq;
	snprintf(e->log, sizeof(e->log), "log.%llu", (unsigned long long)e->log_seq);
	mailbox_close(&b);
}

static void env_teardown(struct env *e)
{
	close(e->dir_fd);
	store_user_close(&e->u);
	store_close(&e->s);
	tstore_rmrf(&e->root);
}

static off_t file_size(int dir_fd, const char *name)
{
	struct stat st;
	return fstatat(dir_fd, name, &st, 0) == 0 ? st.st_size : -1;
}

static void poke(int dir_fd, const char *name, off_t off, uint8_t x)
{
	int fd = openat(dir_fd, name, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= x;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void append_bytes(int dir_fd, const char *name, const void *data, size_t len)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* ---- the damage ---- */

static void log_magic(struct env *e) { poke(e->dir_fd, e->log, 0, 0xff); }
static void log_header_crc(struct env *e) { poke(e->dir_fd, e->log, 20, 0x01); }
static void log_first_record(struct env *e) { poke(e->dir_fd, e->log, INDEX_LOG_HEADER_SIZE + 30, 0x10); }
static void log_truncated_below_mark(struct env *e)
{
	int fd = openat(e->dir_fd, e->log, O_RDWR);
	assert_int_equal(ftruncate(fd, file_size(e->dir_fd, e->log) - 100), 0);
	close(fd);
}
static void log_mark_past_end(struct env *e)
{
	int fd = openat(e->dir_fd, e->log, O_RDWR);
	uint8_t b[8];
	index_set_le64(b, 1u << 30);
	assert_int_equal(pwrite(fd, b, 8, INDEX_LOG_SYNCED_OFFSET), 8);
	close(fd);
}
static void log_garbage(struct env *e)
{
	int fd = openat(e->dir_fd, e->log, O_RDWR | O_TRUNC);
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(fd, "garbage!", 8), 8);
	close(fd);
}
static void log_empty(struct env *e)
{
	int fd = openat(e->dir_fd, e->log, O_RDWR | O_TRUNC);
	close(fd);
}
static void log_missing(struct env *e) { assert_int_equal(unlinkat(e->dir_fd, e->log, 0), 0); }
static void snap_body(struct env *e) { poke(e->dir_fd, "index", INDEX_SNAP_HEADER_SIZE + 8, 0x40); }
static void snap_header(struct env *e) { poke(e->dir_fd, "index", 90, 0x01); }
static void snap_truncated(struct env *e)
{
	int fd = openat(e->dir_fd, "index", O_RDWR);
	assert_int_equal(ftruncate(fd, file_size(e->dir_fd, "index") - 7), 0);
	close(fd);
}
static void snap_missing(struct env *e) { assert_int_equal(unlinkat(e->dir_fd, "index", 0), 0); }
static void torn_tail(struct env *e)
{
	/* Part of a record: size says 200, only 40 bytes made it. */
	uint8_t b[40] = { 0 };
	index_set_le32(b, 200);
	append_bytes(e->dir_fd, e->log, b, sizeof(b));
}
static void zero_tail(struct env *e)
{
	uint8_t b[512] = { 0 };
	append_bytes(e->dir_fd, e->log, b, sizeof(b));
}
static void unsynced_record(struct env *e)
{
	/* A whole record a writer appended before dying: lower the mark
	 * below the last record instead of forging one. */
	int fd = openat(e->dir_fd, e->log, O_RDWR);
	uint8_t b[8];
	assert_int_equal(pread(fd, b, 8, INDEX_LOG_SYNCED_OFFSET), 8);
	uint64_t mark = index_le64(b);
	uint8_t tr[8];
	assert_int_equal(pread(fd, tr, 8, (off_t)mark - 8), 8);
	index_set_le64(b, mark - index_le32(tr));
	assert_int_equal(pwrite(fd, b, 8, INDEX_LOG_SYNCED_OFFSET), 8);
	close(fd);
}

static const struct {
	const char *name;
	bool rotated;
	void (*damage)(struct env *);
	int open_result;
	bool new_uidvalidity; /* after repair */
} cases[] = {
	{ "log magic", false, log_magic, STORE_E_CORRUPT, true },
	{ "log header checksum", false, log_header_crc, STORE_E_CORRUPT, true },
	{ "first log record", false, log_first_record, STORE_E_CORRUPT, true },
	{ "log cut below the synced mark", false, log_truncated_below_mark, STORE_E_CORRUPT, true },
	{ "synced mark past the end", false, log_mark_past_end, STORE_E_CORRUPT, false },
	{ "log replaced by garbage", false, log_garbage, STORE_E_CORRUPT, true },
	{ "log emptied", false, log_empty, STORE_E_CORRUPT, true },
	{ "no log, no snapshot", false, log_missing, STORE_E_CORRUPT, true },
	{ "snapshot body", true, snap_body, STORE_E_CORRUPT, true },
	{ "snapshot header", true, snap_header, STORE_E_CORRUPT, true },
	{ "snapshot truncated", true, snap_truncated, STORE_E_CORRUPT, true },
	{ "snapshot names a missing log", true, log_missing, STORE_E_CORRUPT, true },
	{ "snapshot missing after rotation", true, snap_missing, STORE_E_CORRUPT, true },
	{ "torn tail", false, torn_tail, 0, false },
	{ "torn tail after rotation", true, torn_tail, 0, false },
	{ "zeros at the end", false, zero_tail, 0, false },
	{ "record past the synced mark", false, unsynced_record, 0, false },
};

static int count_problems(struct store *s, const char *addr, bool repair)
{
	const char *err = NULL;
	int n = store_fsck(s, addr, repair, NULL, &err);
	if (n < 0)
		fail_msg("store_fsck: %d %s", n, err);
	return n;
}

static void test_damage_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct env e;
		env_setup(&e, cases[i].rotated);
		struct mailbox_status before;
		const char *err = NULL;
		assert_int_equal(mailbox_status(e.u, "INBOX", &before, &err), 0);
		cases[i].damage(&e);
		struct mailbox *b = NULL;
		int ret = mailbox_open(e.u, "INBOX", 0, &b, &err);
		if (ret != cases[i].open_result)
			fail_msg("%s: open gave %d (%s), want %d", cases[i].name, ret, err,
				 cases[i].open_result);
		if (ret == 0) {
			struct mailbox_status st;
			mailbox_get_status(b, &st);
			if (st.messages != MESSAGES)
				fail_msg("%s: %u messages after opening", cases[i].name, st.messages);
			/* A writer gets past a torn tail. */
			tstore_append(e.s, b, "after", 0, NULL);
			mailbox_close(&b);
		}
		int found = count_problems(e.s, "dan@example.com", true);
		if (cases[i].open_result != 0 && found == 0)
			fail_msg("%s: fsck found nothing", cases[i].name);
		int again = count_problems(e.s, "dan@example.com", false);
		if (again != 0)
			fail_msg("%s: %d problems after repair", cases[i].name, again);
		b = tstore_mailbox(e.u, "INBOX", 0);
		struct mailbox_status st;
		mailbox_get_status(b, &st);
		uint32_t want = MESSAGES + (ret == 0);
		if (st.messages != want || (st.uidvalidity != before.uidvalidity) != cases[i].new_uidvalidity)
			fail_msg("%s: after repair %u messages (want %u), uidvalidity %u (was %u)",
				 cases[i].name, st.messages, want, st.uidvalidity, before.uidvalidity);
		/* Every UID kept, every message readable. */
		for (uint32_t uid = 1; uid <= MESSAGES; uid++) {
			char buf[8];
			size_t n;
			if (mailbox_msg_read(b, uid, 0, buf, sizeof(buf), &n, &err) != 0)
				fail_msg("%s: message %u: %s", cases[i].name, uid, err);
		}
		/* Flags survive when nothing was lost. */
		if (!cases[i].new_uidvalidity && !(mailbox_lookup(b, 2)->flags & MAIL_SEEN))
			fail_msg("%s: flags lost", cases[i].name);
		mailbox_close(&b);
		env_teardown(&e);
	}
}

/* Sessions that have the mailbox open when fsck rebuilds it reload: with
 * the same UIDVALIDITY they carry on, with a new one they are told. */
static void test_open_view_sees_reset(void **state)
{
	(void)state;
	struct env e;
	const char *err;
	env_setup(&e, false);
	struct mailbox *b = tstore_mailbox(e.u, "INBOX", 0);
	log_mark_past_end(&e);
	assert_true(count_problems(e.s, "dan@example.com", true) > 0);
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	tstore_append(e.s, b, "more", 0, NULL);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, MESSAGES + 1);
	e.log_seq = b->view->log_seq;
	snprintf(e.log, sizeof(e.log), "log.%llu", (unsigned long long)e.log_seq);
	log_first_record(&e);
	assert_true(count_problems(e.s, "dan@example.com", true) > 0);
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), STORE_E_CORRUPT);
	mailbox_close(&b);
	b = tstore_mailbox(e.u, "INBOX", 0);
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, MESSAGES + 1);
	mailbox_close(&b);
	env_teardown(&e);
}

/* Writes the finished record rec at the end of v's log (past its synced
 * mark) and returns where. */
static off_t log_append_raw(struct index_view *v, const struct textbuf *rec)
{
	struct stat st;
	assert_int_equal(fstat(v->log_fd, &st), 0);
	assert_int_equal(pwrite(v->log_fd, rec->data, rec->len, st.st_size), (ssize_t)rec->len);
	return st.st_size;
}

/* A ROTATE past the synced mark whose target is not there (fsck killed
 * between writing it and raising the mark) sends every writer back to
 * reload: after a few the writer must give up, never write from where the
 * last reload left it (at the mark, over the ROTATE). fsck then repairs
 * it and nothing is lost. */
static void test_writer_never_writes_short_of_the_end(void **state)
{
	(void)state;
	struct env e;
	const char *err;
	env_setup(&e, false);
	struct mailbox *b = tstore_mailbox(e.u, "INBOX", 0);
	struct index_view *v = b->view;
	struct textbuf rec = TEXTBUF_INIT;
	size_t start = index_rec_begin(&rec);
	index_put_u64(&rec, v->log_seq + 1);
	index_put_u64(&rec, 128);
	index_rec_finish(&rec, start, INDEX_REC_ROTATE, INDEX_ROTATE_RESET, 0, 0, &v->state);
	uint8_t written[256];
	size_t rec_len = rec.len;
	assert_true(rec_len <= sizeof(written));
	memcpy(written, rec.data, rec_len);
	off_t at = log_append_raw(v, &rec);
	textbuf_free(&rec);
	mailbox_close(&b);

	b = tstore_mailbox(e.u, "INBOX", MAILBOX_OPEN_APPEND_ONLY);
	struct mail_append a = { .writer = tstore_writer(e.s, "Subject: late\r\n\r\nx\r\n") };
	uint32_t uid;
	int ret = mailbox_append(b, &a, 1, NULL, &uid, NULL, &err);
	mailbox_close(&b);
	uint8_t now[256];
	int fd = openat(e.dir_fd, e.log, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, now, rec_len, at), (ssize_t)rec_len);
	close(fd);
	if (memcmp(now, written, rec_len) != 0)
		fail_msg("the append (returned %d) wrote over the ROTATE record", ret);
	assert_int_equal(ret, STORE_E_TEMP);
	assert_true(count_problems(e.s, "dan@example.com", true) > 0);
	assert_int_equal(count_problems(e.s, "dan@example.com", false), 0);
	b = tstore_mailbox(e.u, "INBOX", 0);
	tstore_append(e.s, b, "after repair", 0, NULL);
	struct mailbox_status ms;
	mailbox_get_status(b, &ms);
	assert_int_equal(ms.messages, MESSAGES + 1);
	mailbox_close(&b);
	env_teardown(&e);
}

/* A record that decodes but does not apply (its state block disagrees)
 * fails every sync with CORRUPT. The view is then broken: later syncs
 * start from the files again instead of applying the record once more on
 * top of what it already added (the same UIDs again, per retry, in an
 * array searched as sorted). */
static void test_failed_record_leaves_view_alone(void **state)
{
	(void)state;
	struct env e;
	const char *err;
	env_setup(&e, false);
	struct mailbox *b = tstore_mailbox(e.u, "INBOX", 0);
	struct index_view *v = b->view;
	struct textbuf rec = TEXTBUF_INIT;
	size_t start = index_rec_begin(&rec);
	struct mail_record m;
	memset(&m, 0, sizeof(m));
	m.uid = v->state.uidnext;
	m.modseq = v->state.highestmodseq + 1;
	m.size = 10;
	index_put_msg(&rec, &m);
	index_put_u32(&rec, 0);
	index_put_u32(&rec, 0);
	struct index_state bad = v->state;
	bad.uidnext += 1; /* but not messages */
	index_rec_finish(&rec, start, INDEX_REC_APPEND, 0, 1, m.modseq, &bad);
	off_t at = log_append_raw(v, &rec);
	assert_int_equal(index_log_mark_synced(v->log_fd, (uint64_t)at + rec.len, &err), 0);
	textbuf_free(&rec);
	size_t first_n = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mailbox_sync(b, NULL, NULL, &err), STORE_E_CORRUPT);
		size_t n;
		const struct mail_record *recs = mailbox_records(b, &n);
		if (i == 0)
			first_n = n;
		assert_int_equal(n, first_n);
		assert_true(n <= MESSAGES + 1);
		for (size_t k = 1; k < n; k++)
			assert_true(recs[k].uid > recs[k - 1].uid);
	}
	mailbox_close(&b);
	assert_true(count_problems(e.s, "dan@example.com", true) > 0);
	assert_int_equal(count_problems(e.s, "dan@example.com", false), 0);
	env_teardown(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_damage_table),
		cmocka_unit_test(test_open_view_sees_reset),
		cmocka_unit_test(test_writer_never_writes_short_of_the_end),
		cmocka_unit_test(test_failed_record_leaves_view_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
