/*
 * Unit tests for delivery (storage/store_deliver.c) and absorption of
 * new/ into the index (storage/mailbox_absorb.c): one copy for many
 * users (hard links), per-recipient results (quota, bad address, missing
 * mailbox), duplicates, and the crash leftovers absorption must handle:
 * an entry already absorbed but not yet unlinked, a stale message file at
 * the next UID, a foreign file in new/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>

#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

struct fixture {
	char *root;
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->root = tstore_mkdtemp();
	f->s = tstore_open(f->root, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(&f->s);
	tstore_rmrf(&f->root);
	free(f);
	return 0;
}

static const char msg[] = "From: a@b.example\r\nSubject: hi\r\n\r\nHello.\r\n";

static void test_deliver_many(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_rcpt r[6];
	memset(r, 0, sizeof(r));
	r[0].address = "one@example.com";
	r[1].address = "two@example.com";
	r[2].address = "ONE@example.com"; /* same user again: one copy */
	r[3].address = "not an address";
	r[4].address = "two@example.com";
	r[4].mailbox = "Nope";
	r[5].address = "three@example.org";
	r[5].quota.bytes = 10; /* too small */
	struct mail_writer *w = tstore_writer(f->s, msg);
	struct store_delivery d = { .flags = MAIL_FLAGGED, .internal_date = 1234567890 };
	assert_int_equal(store_deliver(f->s, &w, &d, r, 6, &err), 0);
	assert_null(w);
	static const int want[] = { 0, 0, 0, STORE_E_INVALID, STORE_E_NOTFOUND, STORE_E_QUOTA };
	for (int i = 0; i < 6; i++)
		if (r[i].result != want[i])
			fail_msg("rcpt %d: got %d (%s), want %d", i, r[i].result, r[i].error, want[i]);

	struct store_user *one = tstore_user(f->s, "one@example.com");
	struct store_user *two = tstore_user(f->s, "two@example.com");
	struct mailbox_status st;
	assert_int_equal(mailbox_status(one, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 1); /* absorbed by STATUS */
	assert_int_equal(st.unseen, 1);
	struct mailbox *b1 = tstore_mailbox(one, "INBOX", 0);
	struct mailbox *b2 = tstore_mailbox(two, "INBOX", 0);
	const struct mail_record *m1 = mailbox_lookup(b1, 1), *m2 = mailbox_lookup(b2, 1);
	assert_non_null(m1);
	assert_non_null(m2);
	assert_int_equal(m1->flags & MAIL_FLAGS_MASK, MAIL_FLAGGED);
	assert_int_equal(m1->internal_date, 1234567890);
	assert_int_equal(m1->size, strlen(msg));
	assert_memory_equal(m1->guid, m2->guid, 16);
	/* One inode, linked into both mailboxes. */
	int fd1, fd2;
	uint64_t size;
	struct stat s1, s2;
	assert_int_equal(mailbox_msg_open(b1, 1, &fd1, &size, &err), 0);
	assert_int_equal(mailbox_msg_open(b2, 1, &fd2, &size, &err), 0);
	assert_int_equal(fstat(fd1, &s1), 0);
	assert_int_equal(fstat(fd2, &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_nlink, 2);
	close(fd1);
	close(fd2);
	/* new/ is empty again; the temporary file is gone. */
	assert_false(mailbox_new_pending(b1));
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(one, &q, &err), 0);
	assert_int_equal(q.bytes, strlen(msg));
	assert_int_equal(q.messages, 1);
	mailbox_close(&b1);
	mailbox_close(&b2);
	store_user_close(&one);
	store_user_close(&two);
}

static void test_deliver_into_folder_and_sync(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_user *u = tstore_user(f->s, "dora@example.com");
	assert_int_equal(mailbox_create(u, "Lists/dev", 0, &err), 0);
	struct mailbox *b = tstore_mailbox(u, "Lists/dev", 0);
	for (int i = 0; i < 3; i++) {
		struct store_rcpt r;
		memset(&r, 0, sizeof(r));
		r.address = "dora@example.com";
		r.mailbox = "lists/dev"; /* names are case-sensitive (only INBOX is not) */
		struct mail_writer *w = tstore_writer(f->s, msg);
		assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
		assert_int_equal(r.result, STORE_E_NOTFOUND);
		r.mailbox = "Lists/dev";
		w = tstore_writer(f->s, msg);
		assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
		assert_int_equal(r.result, 0);
	}
	/* An open session absorbs at its next sync. */
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 3);
	assert_int_equal(st.uidnext, 4);
	assert_int_equal(st.recent, 3);
	mailbox_close(&b);
	store_user_close(&u);
}

/* INBOX of u holds "Subject: n0" .. n<count-1> at UIDs 1..count. */
static void assert_arrival_order(struct store_user *u, uint32_t count)
{
	const char *err;
	struct mailbox *b = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	for (uint32_t uid = 1; uid <= count; uid++) {
		char buf[16], want[16];
		size_t n = 0;
		assert_int_equal(mailbox_msg_read(b, uid, 0, buf, 11, &n, &err), 0);
		buf[n] = '\0';
		snprintf(want, sizeof(want), "Subject: n%u", uid - 1);
		assert_string_equal(buf, want);
	}
	mailbox_close(&b);
}

/* Deliveries within one second get their UIDs in the order they arrived
 * (they were ordered by their random GUIDs after the date). */
static void test_absorb_keeps_arrival_order(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_user *u = tstore_user(f->s, "ordo@example.com");
	for (int i = 0; i < 8; i++) {
		char text[64];
		snprintf(text, sizeof(text), "Subject: n%d\r\n\r\nbody\r\n", i);
		struct store_rcpt r;
		memset(&r, 0, sizeof(r));
		r.address = "ordo@example.com";
		struct mail_writer *w = tstore_writer(f->s, text);
		assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
		assert_int_equal(r.result, 0);
		usleep(25000); /* past the filesystem's timestamp granularity */
	}
	assert_arrival_order(u, 8);
	store_user_close(&u);
}

/* The order survives another mailbox absorbing the same delivery (one
 * inode for both: its links and unlinks change its ctime). */
static void test_absorb_order_with_shared_deliveries(void **state)
{
	struct fixture *f = *state;
	const char *err;
	const char *both[] = { "ann@example.com", "ben@example.com" };
	for (int i = 0; i < 2; i++) {
		char text[64];
		snprintf(text, sizeof(text), "Subject: n%d\r\n\r\nbody\r\n", i);
		struct store_rcpt r[2];
		memset(r, 0, sizeof(r));
		r[0].address = both[0];
		r[1].address = both[1];
		struct mail_writer *w = tstore_writer(f->s, text);
		assert_int_equal(store_deliver(f->s, &w, NULL, r, i == 0 ? 2 : 1, &err), 0);
		usleep(25000);
	}
	struct store_user *ben = tstore_user(f->s, both[1]);
	struct mailbox *b = tstore_mailbox(ben, "INBOX", 0); /* absorbs n0 first */
	mailbox_close(&b);
	store_user_close(&ben);
	struct store_user *ann = tstore_user(f->s, both[0]);
	assert_arrival_order(ann, 2);
	store_user_close(&ann);
}

/* The crash windows of absorption, recreated by hand. */
static void test_absorb_leftovers(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_user *u = tstore_user(f->s, "eve@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "eve@example.com";
	struct mail_writer *w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	/* Remember the new/ entry before it is absorbed. */
	DIR *d = fdopendir(openat(b->new_fd, ".", O_RDONLY | O_DIRECTORY));
	struct dirent *de;
	char name[256] = "";
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(name, sizeof(name), "%s", de->d_name);
	closedir(d);
	assert_int_not_equal(name[0], '\0');
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_lookup(b, 1) != NULL, 1);
	/* 1: crash after the record, before the unlink: the entry reappears. */
	assert_int_equal(linkat(b->msg_fd, "0/1", b->new_fd, name, 0), 0);
	/* 2: crash after linking the next UID, before the record: a stale file. */
	assert_int_equal(linkat(b->msg_fd, "0/1", b->msg_fd, "0/2", 0), 0);
	/* 3: something the store never writes. */
	int fd = openat(b->new_fd, "foreign-file", O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* A real new delivery goes to UID 2, replacing the stale file. */
	w = tstore_writer(f->s, "Subject: second\r\n\r\n");
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 2); /* not 3: the leftover was not absorbed twice */
	char buf[32];
	size_t n;
	assert_int_equal(mailbox_msg_read(b, 2, 0, buf, sizeof(buf), &n, &err), 0);
	assert_memory_equal(buf, "Subject: second", 15);
	struct stat sst;
	assert_int_not_equal(fstatat(b->new_fd, name, &sst, 0), 0); /* leftover unlinked */
	assert_int_equal(fstatat(b->new_fd, "foreign-file", &sst, 0), 0); /* left for fsck */
	mailbox_close(&b);
	store_user_close(&u);
}

/* The name of the one entry in new/ ("" when none). */
static void only_new_entry(struct mailbox *b, char name[256])
{
	DIR *d = fdopendir(openat(b->new_fd, ".", O_RDONLY | O_DIRECTORY));
	assert_non_null(d);
	struct dirent *de;
	name[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(name, 256, "%s", de->d_name);
	closedir(d);
}

/* A power failure in an absorber's round can keep its record and lose its
 * msg/ link, leaving the delivery only in new/ (its GUID in the absorb
 * set). The next full sync must link it again, not delete the entry as
 * a done leftover; fsck must do the same instead of expunging. */
static void test_absorbed_link_lost(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_user *u = tstore_user(f->s, "lost@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "lost@example.com";
	for (int round = 0; round < 2; round++) {
		uint32_t uid = (uint32_t)round + 1;
		char msgname[32], name[256], buf[32];
		snprintf(msgname, sizeof(msgname), "0/%u", uid);
		struct mail_writer *w = tstore_writer(f->s, msg);
		assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
		only_new_entry(b, name);
		assert_int_not_equal(name[0], '\0');
		assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
		assert_non_null(mailbox_lookup(b, uid));
		/* the crash: the entry back in new/, the link gone */
		assert_int_equal(linkat(b->msg_fd, msgname, b->new_fd, name, 0), 0);
		assert_int_equal(unlinkat(b->msg_fd, msgname, 0), 0);
		if (round == 0) {
			mailbox_close(&b);
			b = tstore_mailbox(u, "INBOX", 0);
			assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
		} else {
			int problems = store_fsck(f->s, "lost@example.com", true, NULL, &err);
			assert_true(problems > 0);
			assert_int_equal(store_fsck(f->s, "lost@example.com", false, NULL, &err), 0);
			mailbox_close(&b);
			b = tstore_mailbox(u, "INBOX", 0);
		}
		size_t n;
		if (mailbox_msg_read(b, uid, 0, buf, sizeof(buf), &n, &err) != 0)
			fail_msg("round %d: message %u lost: %s", round, uid, err);
		only_new_entry(b, name);
		assert_string_equal(name, ""); /* the leftover went once the link was back */
	}
	struct mailbox_status st;
	mailbox_get_status(b, &st);
	assert_int_equal(st.messages, 2);
	mailbox_close(&b);
	store_user_close(&u);
}

/* Deleting a mailbox gives back exactly its usage: a delivery still
 * waiting in new/ once, and an entry an earlier absorb already recorded
 * (a leftover: its bytes are in the index's usage) not a second time. */
static void test_delete_gives_back_exact_usage(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_user *u = tstore_user(f->s, "del@example.com");
	assert_int_equal(mailbox_create(u, "Old", 0, &err), 0);
	struct mailbox *b = tstore_mailbox(u, "Old", 0);
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "del@example.com";
	struct mail_writer *w = tstore_writer(f->s, msg); /* INBOX keeps this one */
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	struct store_quota_usage q, inbox;
	assert_int_equal(store_quota_get(u, &inbox, &err), 0);
	r.mailbox = "Old";
	w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	char name[256];
	only_new_entry(b, name);
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0); /* absorbed */
	assert_int_equal(linkat(b->msg_fd, "0/1", b->new_fd, name, 0), 0); /* its leftover */
	w = tstore_writer(f->s, "Subject: waiting\r\n\r\nnot yet absorbed\r\n");
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	mailbox_close(&b);
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 3);
	assert_int_equal(mailbox_delete(u, "Old", &err), 0);
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, inbox.messages);
	assert_int_equal(q.bytes, inbox.bytes);
	assert_int_equal(store_fsck(f->s, "del@example.com", false, NULL, &err), 0);
	store_user_close(&u);
}

static void test_deliver_quota_warning(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "fay@example.com";
	r.quota.bytes = 3 * strlen(msg);
	r.quota.warn_percent = 60;
	bool warned[4];
	int results[4];
	for (int i = 0; i < 4; i++) {
		struct mail_writer *w = tstore_writer(f->s, msg);
		assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
		results[i] = r.result;
		warned[i] = r.quota_warning;
	}
	assert_int_equal(results[0], 0);
	assert_int_equal(results[1], 0);
	assert_int_equal(results[2], 0);
	assert_int_equal(results[3], STORE_E_QUOTA);
	assert_false(warned[0]);
	assert_true(warned[1]); /* 2/3 crosses 60% */
	assert_false(warned[2]);
	assert_false(warned[3]);
}

/* Peeking at a user's usage (quota report) creates nothing for an address
 * that has no mail yet, and reads what deliveries charged. */
static void test_quota_peek(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_quota_usage q = { 1, 1 };
	assert_int_equal(store_quota_peek(f->s, "gil@example.com", &q, &err), 0);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(q.messages, 0);
	char path[1024];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mail/example.com", f->root);
	assert_int_equal(stat(path, &st), -1);
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "gil@example.com";
	struct mail_writer *w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	assert_int_equal(r.result, 0);
	assert_int_equal(store_quota_peek(f->s, "GIL@example.com", &q, &err), 0);
	assert_int_equal(q.bytes, strlen(msg));
	assert_int_equal(q.messages, 1);
}

/* A mailbox named twice in one delivery holds one copy, charged once: the
 * second naming is not refused by a quota the first one just filled. */
static void test_deliver_twice_at_quota(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_rcpt r[2];
	memset(r, 0, sizeof(r));
	r[0].address = "gus@example.com";
	r[1].address = "Gus@example.com";
	r[0].quota.messages = r[1].quota.messages = 1;
	struct mail_writer *w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, r, 2, &err), 0);
	assert_int_equal(r[0].result, 0);
	assert_int_equal(r[1].result, 0);
	struct store_user *u = tstore_user(f->s, "gus@example.com");
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 1);
	assert_int_equal(q.bytes, strlen(msg));
	struct mailbox_status st;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 1);
	/* A new message is refused all the same. */
	memset(r, 0, sizeof(r));
	r[0].address = "gus@example.com";
	r[0].quota.messages = 1;
	w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, r, 1, &err), 0);
	assert_int_equal(r[0].result, STORE_E_QUOTA);
	store_user_close(&u);
}

/* Keywords travel in the new/ entry's name and are set when the index
 * absorbs it; a mailbox with a full keyword table gets what fits. */
static void test_deliver_keywords(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_rcpt r[2];
	memset(r, 0, sizeof(r));
	r[0].address = "kw@example.com";
	r[1].address = "full@example.com";
	/* full@ already knows $Known and has no room for more. */
	struct store_user *full = tstore_user(f->s, "full@example.com");
	struct mailbox *fb = tstore_mailbox(full, "INBOX", 0);
	tstore_append(f->s, fb, msg, 0, "$Known");
	for (int i = 1; i < MAILBOX_KEYWORDS_MAX; i++) {
		char kw[16];
		snprintf(kw, sizeof(kw), "k%d", i);
		tstore_append(f->s, fb, msg, 0, kw);
	}
	mailbox_close(&fb);

	static const char *const kws[] = { "$Junk", "a/b", "$Known" };
	struct store_delivery d = { .flags = MAIL_SEEN, .keywords = kws, .n_keywords = 3 };
	struct mail_writer *w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, &d, r, 2, &err), 0);
	assert_int_equal(r[0].result, 0);
	assert_int_equal(r[1].result, 0);

	struct store_user *u = tstore_user(f->s, "kw@example.com");
	struct mailbox *b = tstore_mailbox(u, "INBOX", 0);
	const struct mail_record *m = mailbox_lookup(b, 1);
	assert_non_null(m);
	assert_int_equal(m->flags & MAIL_FLAGS_MASK, MAIL_SEEN);
	assert_int_equal(mailbox_keyword_count(b), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_string_equal(mailbox_keyword(b, i), kws[i]);
		assert_true(m->keywords & (UINT64_C(1) << i));
	}
	mailbox_close(&b);

	fb = tstore_mailbox(full, "INBOX", 0);
	m = mailbox_lookup(fb, MAILBOX_KEYWORDS_MAX + 1);
	assert_non_null(m);
	assert_int_equal(m->keywords, 1); /* $Known only: no room for the others */
	mailbox_close(&fb);

	/* Malformed and oversized keyword sets are refused before anything is
	 * written. */
	static const char *const bad[] = { "has space" };
	struct store_delivery dbad = { .keywords = bad, .n_keywords = 1 };
	w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, &dbad, r, 1, &err), STORE_E_INVALID);
	assert_null(w);
	char longkw[4][101];
	const char *longs[4];
	for (int i = 0; i < 4; i++) {
		memset(longkw[i], 'a' + i, 100);
		longkw[i][100] = '\0';
		longs[i] = longkw[i];
	}
	struct store_delivery dlong = { .keywords = longs, .n_keywords = 4 };
	w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, &dlong, r, 1, &err), STORE_E_LIMIT);
	struct mailbox_status st;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 1);

	/* Entry names: round trip, and strict parsing. */
	uint8_t guid[16] = { 1, 2, 3 };
	char name[MAILBOX_NEW_NAME_MAX];
	assert_int_equal(mailbox_new_name(guid, 7, MAIL_SEEN, kws, 3, name), 0);
	uint8_t g2[16];
	int64_t date;
	uint32_t flags;
	const char *enc;
	assert_int_equal(mailbox_new_parse(name, g2, &date, &flags, &enc), 0);
	assert_string_equal(enc, "*$Junk*a%2Fb*$Known");
	char buf[MAILBOX_NEW_NAME_MAX];
	const char *names[MAILBOX_KEYWORDS_MAX];
	assert_int_equal(mailbox_new_keywords(enc, buf, names), 3);
	assert_string_equal(names[1], "a/b");
	static const char *const bad_encodings[] = { "*", "**a", "*a%2", "*a%41", "*a b", "x" };
	for (size_t i = 0; i < sizeof(bad_encodings) / sizeof(bad_encodings[0]); i++)
		if (mailbox_new_keywords(bad_encodings[i], buf, names) != -1)
			fail_msg("\"%s\" decoded, want -1", bad_encodings[i]);
	store_user_close(&u);
	store_user_close(&full);
}

static void test_user_delete(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_rcpt r;
	memset(&r, 0, sizeof(r));
	r.address = "gus@example.com";
	struct mail_writer *w = tstore_writer(f->s, msg);
	assert_int_equal(store_deliver(f->s, &w, NULL, &r, 1, &err), 0);
	assert_int_equal(store_user_delete(f->s, "gus@example.com", &err), 0);
	assert_int_equal(store_user_delete(f->s, "gus@example.com", &err), 0);
	struct store_user *u = tstore_user(f->s, "gus@example.com");
	struct mailbox_status st;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	assert_int_equal(st.messages, 0);
	store_user_close(&u);
	assert_int_equal(store_user_delete(f->s, "bad address", &err), STORE_E_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_into_folder_and_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absorb_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absorb_keeps_arrival_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absorb_order_with_shared_deliveries, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_absorbed_link_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_gives_back_exact_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_quota_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_peek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_twice_at_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_keywords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_delete, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
