/*
 * Unit tests for the operations on an opened mailbox: append (with
 * flags, keywords, internal date), STORE with MODSEQ and UNCHANGEDSINCE
 * (table-driven), expunge and VANISHED, copy and move with COPYUID,
 * reading message bytes by range, the metadata cache hook, status, the
 * keyword limit, \Recent, snapshot rotation, and one session seeing
 * another's changes through mailbox_sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/mailbox_internal.h"
#include "tests/unit/test_store_helpers.h"

struct fixture {
	char *root;
	struct store *s;
	struct store_user *u;
	struct mailbox *b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->root = tstore_mkdtemp();
	f->s = tstore_open(f->root, 2048); /* small: rotations happen in tests */
	f->u = tstore_user(f->s, "carol@example.com");
	f->b = tstore_mailbox(f->u, "INBOX", 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mailbox_close(&f->b);
	store_user_close(&f->u);
	store_close(&f->s);
	tstore_rmrf(&f->root);
	free(f);
	return 0;
}

struct changes {
	char text[4096];
};

static void ch_exp(uint32_t uid, void *ctx)
{
	struct changes *c = ctx;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "x%u ", uid);
}

static void ch_app(const struct mail_record *r, void *ctx)
{
	struct changes *c = ctx;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "+%u ", r->uid);
}

static void ch_chg(const struct mail_record *r, void *ctx)
{
	struct changes *c = ctx;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "~%u:%x ", r->uid, r->flags & MAIL_FLAGS_MASK);
}

static const char *sync_text(struct mailbox *b, struct changes *c)
{
	static const struct mailbox_sync_ops ops = { ch_exp, ch_app, ch_chg };
	const char *err;
	c->text[0] = '\0';
	int ret = mailbox_sync(b, &ops, c, &err);
	if (ret != 0)
		fail_msg("mailbox_sync: %d %s", ret, err);
	return c->text;
}

static void test_append_and_read(void **state)
{
	struct fixture *f = *state;
	const char *err;
	const char *kws[] = { "$Forwarded", "Work" };
	struct mail_append a[2];
	memset(a, 0, sizeof(a));
	a[0].writer = tstore_writer(f->s, "Subject: a\r\n\r\nhello world\r\n");
	a[0].flags = MAIL_SEEN | MAIL_FLAGGED;
	a[0].keywords = kws;
	a[0].n_keywords = 2;
	a[0].internal_date = 1000000000;
	a[1].writer = tstore_writer(f->s, "Subject: b\r\n\r\nsecond\r\n");
	uint32_t uids[2];
	bool warn = true;
	assert_int_equal(mailbox_append(f->b, a, 2, NULL, uids, &warn, &err), 0);
	assert_int_equal(uids[0], 1);
	assert_int_equal(uids[1], 2);
	assert_false(warn);
	const struct mail_record *r = mailbox_lookup(f->b, 1);
	assert_non_null(r);
	assert_int_equal(r->flags & MAIL_FLAGS_MASK, MAIL_SEEN | MAIL_FLAGGED);
	assert_int_equal(r->internal_date, 1000000000);
	assert_int_equal(r->size, strlen("Subject: a\r\n\r\nhello world\r\n"));
	assert_int_equal(mailbox_keyword_count(f->b), 2);
	assert_string_equal(mailbox_keyword(f->b, 1), "Work");
	assert_int_equal(r->keywords, 3);
	assert_null(mailbox_keyword(f->b, 2));
	assert_int_not_equal(mailbox_lookup(f->b, 2)->internal_date, 0);

	char buf[16];
	size_t n;
	assert_int_equal(mailbox_msg_read(f->b, 1, 14, buf, 5, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(mailbox_msg_read(f->b, 1, 25, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 2); /* the rest: "\r\n" */
	assert_int_equal(mailbox_msg_read(f->b, 1, 1000, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mailbox_msg_read(f->b, 99, 0, buf, sizeof(buf), &n, &err), STORE_E_NOTFOUND);
	int fd;
	uint64_t size;
	assert_int_equal(mailbox_msg_open(f->b, 2, &fd, &size, &err), 0);
	assert_int_equal(size, strlen("Subject: b\r\n\r\nsecond\r\n"));
	close(fd);

	/* Bad input changes nothing. */
	const char *badkw[] = { "has space" };
	a[0].writer = tstore_writer(f->s, "x");
	a[0].keywords = badkw;
	a[0].n_keywords = 1;
	assert_int_equal(mailbox_append(f->b, a, 1, NULL, uids, NULL, &err), STORE_E_INVALID);
	a[0].writer = tstore_writer(f->s, "x");
	a[0].keywords = NULL;
	a[0].n_keywords = 0;
	a[0].flags = 0x40;
	assert_int_equal(mailbox_append(f->b, a, 1, NULL, uids, NULL, &err), STORE_E_INVALID);
	struct mailbox_status st;
	mailbox_get_status(f->b, &st);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.uidnext, 3);
}

static void test_store_table(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum mail_flags_op op;
		uint32_t flags;
		const char *kw;
		const char *uids;
		/* 0 = none; 1 = "the MODSEQ before this step"; 2 = before the
		 * previous step; 3 = UNCHANGEDSINCE 0 */
		uint64_t unchanged_since;
		const char *want;         /* flags of UIDs 1..4 after the step */
		const char *failed;
		bool modseq_changes;
	} steps[] = {
		/* flags printed in hex, 0x20 marks "has keywords" */
		{ MAIL_FLAGS_ADD, MAIL_SEEN, NULL, "1:4", 0, "1 1 1 1", "", true },
		{ MAIL_FLAGS_ADD, MAIL_SEEN, NULL, "1:4", 0, "1 1 1 1", "", false }, /* no-op */
		{ MAIL_FLAGS_REMOVE, MAIL_SEEN, NULL, "2,4", 0, "1 0 1 0", "", true },
		{ MAIL_FLAGS_REPLACE, MAIL_FLAGGED | MAIL_DRAFT, NULL, "3", 0, "1 0 14 0", "", true },
		{ MAIL_FLAGS_ADD, MAIL_ANSWERED, "Later", "1:*", 0, "23 22 36 22", "", true },
		{ MAIL_FLAGS_REMOVE, 0, "Later", "1", 0, "3 22 36 22", "", true },
		{ MAIL_FLAGS_ADD, MAIL_DELETED, NULL, "2,4", 1, "3 2a 36 2a", "", true },
		{ MAIL_FLAGS_REMOVE, MAIL_SEEN | MAIL_DELETED, NULL, "1:9", 2, "2 2a 36 2a", "2,4", true },
		{ MAIL_FLAGS_REMOVE, MAIL_DELETED, NULL, "7:9", 0, "2 2a 36 2a", "", false },
		{ MAIL_FLAGS_ADD, MAIL_SEEN, NULL, "1:4", 3, "2 2a 36 2a", "1:4", false },
	};
	const char *err;
	for (int i = 0; i < 4; i++)
		tstore_append(f->s, f->b, "Subject: t\r\n\r\nx\r\n", 0, NULL);
	uint64_t before = 0;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct mailbox_status st;
		mailbox_get_status(f->b, &st);
		struct uidset uids = UIDSET_INIT, failed = UIDSET_INIT;
		if (strcmp(steps[i].uids, "1:*") == 0)
			uidset_add_range(&uids, 1, UINT32_MAX);
		else
			assert_int_equal(uidset_parse(&uids, steps[i].uids), 0);
		const char *kw[1] = { steps[i].kw };
		struct mail_flags_update upd = { .op = steps[i].op, .flags = steps[i].flags, .keywords = kw,
						 .n_keywords = steps[i].kw != NULL };
		upd.conditional = steps[i].unchanged_since != 0;
		if (steps[i].unchanged_since == 1)
			upd.unchanged_since = st.highestmodseq;
		else if (steps[i].unchanged_since == 2)
			upd.unchanged_since = before; /* UIDs 2 and 4 changed since */
		uint64_t modseq = 0;
		int ret = mailbox_store(f->b, &uids, &upd, &failed, &modseq, &err);
		if (ret != 0)
			fail_msg("step %zu: %d %s", i, ret, err);
		char got[64] = "";
		for (uint32_t u = 1; u <= 4; u++) {
			const struct mail_record *r = mailbox_lookup(f->b, u);
			size_t n = strlen(got);
			snprintf(got + n, sizeof(got) - n, "%s%x", u > 1 ? " " : "",
				 (r->flags & MAIL_FLAGS_MASK) | (r->keywords ? 0x20 : 0));
		}
		struct textbuf ft = TEXTBUF_INIT;
		uidset_format(&failed, &ft);
		if (strcmp(got, steps[i].want) != 0 || strcmp(textbuf_str(&ft), steps[i].failed) != 0)
			fail_msg("step %zu: flags \"%s\" failed \"%s\", want \"%s\" \"%s\"", i, got,
				 textbuf_str(&ft), steps[i].want, steps[i].failed);
		if ((modseq != 0) != steps[i].modseq_changes || (modseq != 0 && modseq <= st.highestmodseq))
			fail_msg("step %zu: modseq %llu (was %llu)", i, (unsigned long long)modseq,
				 (unsigned long long)st.highestmodseq);
		if (i == 5)
			before = modseq;
		textbuf_free(&ft);
		uidset_free(&uids);
		uidset_free(&failed);
	}
	/* Keywords that are not atoms are refused. */
	const char *bad[] = { "\\Seen" };
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .keywords = bad, .n_keywords = 1 };
	assert_int_equal(mailbox_store(f->b, &one, &upd, NULL, NULL, &err), STORE_E_INVALID);
	uidset_free(&one);
}

static void test_keyword_limit(void **state)
{
	struct fixture *f = *state;
	const char *err;
	tstore_append(f->s, f->b, "x", 0, NULL);
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	for (int i = 0; i < MAILBOX_KEYWORDS_MAX; i++) {
		char name[16];
		snprintf(name, sizeof(name), "kw%d", i);
		const char *kw[1] = { name };
		struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .keywords = kw, .n_keywords = 1 };
		assert_int_equal(mailbox_store(f->b, &one, &upd, NULL, NULL, &err), 0);
	}
	const char *kw[1] = { "one-too-many" };
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .keywords = kw, .n_keywords = 1 };
	assert_int_equal(mailbox_store(f->b, &one, &upd, NULL, NULL, &err), STORE_E_LIMIT);
	/* Existing ones (any case) still work; removing an unknown one is fine. */
	kw[0] = "KW63";
	upd.op = MAIL_FLAGS_REMOVE;
	assert_int_equal(mailbox_store(f->b, &one, &upd, NULL, NULL, &err), 0);
	kw[0] = "never-defined";
	assert_int_equal(mailbox_store(f->b, &one, &upd, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_lookup(f->b, 1)->keywords, UINT64_MAX >> 1);
	uidset_free(&one);
}

static void test_expunge_vanished(void **state)
{
	struct fixture *f = *state;
	const char *err;
	for (int i = 0; i < 6; i++)
		tstore_append(f->s, f->b, "Subject: e\r\n\r\nbody\r\n", i % 2 ? MAIL_DELETED : 0, NULL);
	struct mailbox_status st;
	mailbox_get_status(f->b, &st);
	uint64_t m0 = st.highestmodseq;
	struct uidset ex = UIDSET_INIT, sel = UIDSET_INIT, v = UIDSET_INIT;
	struct textbuf t = TEXTBUF_INIT;
	/* UID EXPUNGE 1:4 removes only the \Deleted ones in range. */
	uidset_add_range(&sel, 1, 4);
	assert_int_equal(mailbox_expunge(f->b, &sel, false, &ex, &err), 0);
	uidset_format(&ex, &t);
	assert_string_equal(textbuf_str(&t), "2,4");
	mailbox_get_status(f->b, &st);
	uint64_t m1 = st.highestmodseq;
	assert_true(m1 > m0);
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.deleted, 1);
	uidset_clear(&ex);
	assert_int_equal(mailbox_expunge(f->b, NULL, false, &ex, &err), 0);
	textbuf_truncate(&t, 0);
	uidset_format(&ex, &t);
	assert_string_equal(textbuf_str(&t), "6");
	/* The files are gone. */
	char buf[4];
	size_t n;
	assert_int_equal(mailbox_msg_read(f->b, 2, 0, buf, 4, &n, &err), STORE_E_NOTFOUND);
	/* VANISHED since m0: 2,4,6; since m1: 6. */
	assert_int_equal(mailbox_vanished_since(f->b, m0, &v, &err), 0);
	textbuf_truncate(&t, 0);
	uidset_format(&v, &t);
	assert_string_equal(textbuf_str(&t), "2,4,6");
	uidset_clear(&v);
	assert_int_equal(mailbox_vanished_since(f->b, m1, &v, &err), 0);
	textbuf_truncate(&t, 0);
	uidset_format(&v, &t);
	assert_string_equal(textbuf_str(&t), "6");
	/* MOVE-style expunge ignores \Deleted. */
	uidset_clear(&sel);
	uidset_add(&sel, 1);
	uidset_clear(&ex);
	assert_int_equal(mailbox_expunge(f->b, &sel, true, &ex, &err), 0);
	assert_true(uidset_contains(&ex, 1));
	/* Quota usage followed. */
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(f->u, &q, &err), 0);
	assert_int_equal(q.messages, 2);
	assert_int_equal(q.bytes, 2 * strlen("Subject: e\r\n\r\nbody\r\n"));
	textbuf_free(&t);
	uidset_free(&ex);
	uidset_free(&sel);
	uidset_free(&v);
}

static void test_two_sessions_sync(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct changes c;
	struct mailbox *other = tstore_mailbox(f->u, "INBOX", 0);
	assert_string_equal(sync_text(other, &c), "");
	tstore_append(f->s, f->b, "one", 0, NULL);
	tstore_append(f->s, f->b, "two", 0, NULL);
	tstore_append(f->s, f->b, "three", 0, NULL);
	assert_string_equal(sync_text(other, &c), "+1 +2 +3 ");
	assert_string_equal(sync_text(other, &c), "");
	struct uidset s2 = UIDSET_INIT;
	uidset_add(&s2, 2);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_SEEN };
	assert_int_equal(mailbox_store(f->b, &s2, &upd, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_expunge(f->b, &s2, true, NULL, &err), 0);
	tstore_append(f->s, f->b, "four", 0, NULL);
	/* Changed then expunged: only the expunge is reported. */
	assert_string_equal(sync_text(other, &c), "x2 +4 ");
	/* The writer's own session hears of its own changes too (2 came and
	 * went since its last sync). */
	assert_string_equal(sync_text(f->b, &c), "+1 +3 +4 ");
	/* \Recent: the first session to sync after they arrived claimed them. */
	struct mailbox_status st;
	mailbox_get_status(other, &st);
	assert_int_equal(st.messages, 3);
	assert_int_equal(st.recent, 3);
	mailbox_get_status(f->b, &st);
	assert_int_equal(st.recent, 0);
	mailbox_close(&other);
	uidset_free(&s2);
}

static void test_copy_move(void **state)
{
	struct fixture *f = *state;
	const char *err;
	assert_int_equal(mailbox_create(f->u, "Archive", 0, &err), 0);
	struct mailbox *dst = tstore_mailbox(f->u, "Archive", MAILBOX_OPEN_APPEND_ONLY);
	tstore_append(f->s, dst, "already there", 0, NULL);
	for (int i = 0; i < 5; i++)
		tstore_append(f->s, f->b, "Subject: c\r\n\r\ncopy me\r\n", i == 1 ? MAIL_FLAGGED : 0,
			      i == 1 ? "Important" : NULL);
	struct uidset sel = UIDSET_INIT, su = UIDSET_INIT, du = UIDSET_INIT;
	assert_int_equal(uidset_parse(&sel, "2:3,5,9"), 0);
	assert_int_equal(mailbox_copy(f->b, &sel, dst, false, NULL, &su, &du, &err), 0);
	struct textbuf t = TEXTBUF_INIT;
	uidset_format(&su, &t);
	textbuf_puts(&t, " ");
	uidset_format(&du, &t);
	assert_string_equal(textbuf_str(&t), "2:3,5 2:4");
	mailbox_close(&dst);
	dst = tstore_mailbox(f->u, "Archive", 0);
	const struct mail_record *r = mailbox_lookup(dst, 2);
	assert_non_null(r);
	assert_int_equal(r->flags & MAIL_FLAGS_MASK, MAIL_FLAGGED);
	assert_string_equal(mailbox_keyword(dst, 0), "Important");
	assert_int_equal(r->keywords, 1);
	assert_memory_equal(r->guid, mailbox_lookup(f->b, 2)->guid, 16);
	char buf[32];
	size_t n;
	assert_int_equal(mailbox_msg_read(dst, 3, 0, buf, sizeof(buf), &n, &err), 0);
	assert_memory_equal(buf, "Subject: c", 10);
	/* MOVE: gone from the source, present in the destination. */
	uidset_clear(&su);
	uidset_clear(&du);
	uidset_clear(&sel);
	uidset_add_range(&sel, 1, 2);
	assert_int_equal(mailbox_copy(f->b, &sel, dst, true, NULL, &su, &du, &err), 0);
	assert_null(mailbox_lookup(f->b, 1));
	assert_null(mailbox_lookup(f->b, 2));
	struct changes c;
	assert_string_equal(sync_text(dst, &c), "+5 +6 ");
	/* Copy within the same mailbox. */
	uidset_clear(&sel);
	uidset_add(&sel, 3);
	uidset_clear(&du);
	assert_int_equal(mailbox_copy(f->b, &sel, f->b, false, NULL, NULL, &du, &err), 0);
	assert_true(uidset_contains(&du, 6));
	/* The source expunged: the copy survives (its own link). */
	assert_int_equal(mailbox_expunge(f->b, &sel, true, NULL, &err), 0);
	assert_int_equal(mailbox_msg_read(f->b, 6, 0, buf, 9, &n, &err), 0);
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(f->u, &q, &err), 0);
	assert_int_equal(q.messages, 3 + 6); /* INBOX 4,5,6; Archive 1..6 */
	mailbox_close(&dst);
	textbuf_free(&t);
	uidset_free(&sel);
	uidset_free(&su);
	uidset_free(&du);
}

static int build_blob(int fd, uint64_t size, struct textbuf *out, void *ctx)
{
	int *calls = ctx;
	char buf[8];
	(*calls)++;
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	textbuf_printf(out, "size=%llu first=%.*s", (unsigned long long)size, (int)(n > 0 ? n : 0), buf);
	return 0;
}

static void test_cache_hook(void **state)
{
	struct fixture *f = *state;
	const char *err;
	uint32_t uid = tstore_append(f->s, f->b, "Subject: cache\r\n\r\n", 0, NULL);
	int calls = 0;
	struct textbuf blob = TEXTBUF_INIT;
	assert_int_equal(mailbox_cache_get(f->b, uid, 1, build_blob, &calls, &blob, &err), 0);
	assert_string_equal(textbuf_str(&blob), "size=18 first=Subject:");
	textbuf_truncate(&blob, 0);
	assert_int_equal(mailbox_cache_get(f->b, uid, 1, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(calls, 1); /* second time from the cache */
	assert_string_equal(textbuf_str(&blob), "size=18 first=Subject:");
	textbuf_truncate(&blob, 0);
	assert_int_equal(mailbox_cache_get(f->b, uid, 2, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(calls, 2); /* another format version rebuilds */
	/* A damaged blob is rebuilt. */
	char name[32];
	snprintf(name, sizeof(name), "0/%u.cache", uid);
	int fd = openat(f->b->msg_fd, name, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 40), 1);
	close(fd);
	textbuf_truncate(&blob, 0);
	assert_int_equal(mailbox_cache_get(f->b, uid, 2, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(calls, 3);
	assert_string_equal(textbuf_str(&blob), "size=18 first=Subject:");
	textbuf_free(&blob);
}

/* A COPY that died after linking its files but before its record leaves
 * a message and its blob past the destination's UIDNEXT; the message
 * later placed at that UID is described by its own metadata. */
static void test_cache_of_orphan_not_reused(void **state)
{
	struct fixture *f = *state;
	const char *err;
	uint32_t uid = tstore_append(f->s, f->b, "Subject: OLD message\r\n\r\n", 0, NULL);
	int calls = 0;
	struct textbuf blob = TEXTBUF_INIT;
	assert_int_equal(mailbox_cache_get(f->b, uid, 1, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(mailbox_create(f->u, "Other", 0, &err), 0);
	struct mailbox *o = tstore_mailbox(f->u, "Other", 0);
	assert_int_equal(mkdirat(o->msg_fd, "0", 0700), 0);
	char name[32], cache[32];
	snprintf(name, sizeof(name), "0/%u", uid);
	snprintf(cache, sizeof(cache), "0/%u.cache", uid);
	assert_int_equal(linkat(f->b->msg_fd, name, o->msg_fd, "0/1", 0), 0);
	assert_int_equal(linkat(f->b->msg_fd, cache, o->msg_fd, "0/1.cache", 0), 0);
	assert_int_equal(tstore_append(f->s, o, "Subject: NEW\r\n\r\n", 0, NULL), 1);
	textbuf_truncate(&blob, 0);
	assert_int_equal(mailbox_cache_get(o, 1, 1, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(calls, 2);
	assert_string_equal(textbuf_str(&blob), "size=16 first=Subject:");
	textbuf_truncate(&blob, 0);
	assert_int_equal(mailbox_cache_get(o, 1, 1, build_blob, &calls, &blob, &err), 0);
	assert_int_equal(calls, 2); /* its own blob is kept */
	textbuf_free(&blob);
	mailbox_close(&o);
}

/* Another session's flag change since this session's last sync travels
 * with COPY and MOVE (a MOVE would lose it for good). */
static void test_copy_move_carry_current_flags(void **state)
{
	struct fixture *f = *state;
	const char *err;
	tstore_append(f->s, f->b, "Subject: a\r\n\r\n", 0, NULL);
	tstore_append(f->s, f->b, "Subject: b\r\n\r\n", 0, NULL);
	assert_int_equal(mailbox_create(f->u, "Archive", 0, &err), 0);
	struct mailbox *other = tstore_mailbox(f->u, "INBOX", 0);
	struct uidset both = UIDSET_INIT;
	uidset_add_range(&both, 1, 2);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_FLAGGED | MAIL_SEEN };
	uint64_t modseq = 0;
	assert_int_equal(mailbox_store(other, &both, &upd, NULL, &modseq, &err), 0);
	mailbox_close(&other);
	struct mailbox *dst = tstore_mailbox(f->u, "Archive", MAILBOX_OPEN_APPEND_ONLY);
	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	assert_int_equal(mailbox_copy(f->b, &one, dst, false, NULL, NULL, NULL, &err), 0);
	uidset_clear(&one);
	uidset_add(&one, 2);
	assert_int_equal(mailbox_copy(f->b, &one, dst, true, NULL, NULL, NULL, &err), 0);
	mailbox_close(&dst);
	dst = tstore_mailbox(f->u, "Archive", MAILBOX_OPEN_READONLY);
	for (uint32_t uid = 1; uid <= 2; uid++) {
		const struct mail_record *r = mailbox_lookup(dst, uid);
		assert_non_null(r);
		assert_int_equal(r->flags & MAIL_FLAGS_MASK, MAIL_FLAGGED | MAIL_SEEN);
	}
	struct mailbox_status st;
	mailbox_get_status(dst, &st);
	assert_int_equal(st.unseen, 0);
	mailbox_close(&dst);
	uidset_free(&one);
	uidset_free(&both);
}

static void test_status_and_rotation(void **state)
{
	struct fixture *f = *state;
	const char *err;
	/* Enough records for several rotations at rotate_bytes=2048. */
	for (int i = 0; i < 60; i++)
		tstore_append(f->s, f->b, "Subject: r\r\n\r\nrotate\r\n", i % 3 ? MAIL_SEEN : 0,
			      i % 7 ? NULL : "$Seven");
	struct uidset all = UIDSET_INIT;
	uidset_add_range(&all, 1, 30);
	struct mail_flags_update upd = { .op = MAIL_FLAGS_ADD, .flags = MAIL_DELETED };
	assert_int_equal(mailbox_store(f->b, &all, &upd, NULL, NULL, &err), 0);
	assert_int_equal(mailbox_expunge(f->b, NULL, false, NULL, &err), 0);
	struct mailbox_status a, b, c;
	mailbox_get_status(f->b, &a);
	assert_int_equal(mailbox_status(f->u, "INBOX", &b, &err), 0);
	struct mailbox *fresh = tstore_mailbox(f->u, "INBOX", MAILBOX_OPEN_READONLY);
	mailbox_get_status(fresh, &c);
	assert_int_equal(a.messages, 30);
	assert_int_equal(b.messages, 30);
	assert_int_equal(c.messages, 30);
	assert_int_equal(a.unseen, b.unseen);
	assert_int_equal(a.uidnext, 61);
	assert_int_equal(b.uidnext, 61);
	assert_int_equal(a.highestmodseq, b.highestmodseq);
	assert_int_equal(c.highestmodseq, b.highestmodseq);
	assert_int_equal(a.bytes, c.bytes);
	size_t n1, n2;
	const struct mail_record *r1 = mailbox_records(f->b, &n1), *r2 = mailbox_records(fresh, &n2);
	assert_int_equal(n1, n2);
	for (size_t i = 0; i < n1; i++) {
		assert_int_equal(r1[i].uid, r2[i].uid);
		assert_int_equal(r1[i].flags & MAIL_FLAGS_MASK, r2[i].flags & MAIL_FLAGS_MASK);
		assert_int_equal(r1[i].modseq, r2[i].modseq);
		assert_int_equal(r1[i].keywords, r2[i].keywords);
	}
	/* The log was rotated: no log.1 any more, a snapshot exists. */
	struct stat st;
	assert_int_not_equal(fstatat(f->b->dir_fd, "log.1", &st, 0), 0);
	assert_int_equal(fstatat(f->b->dir_fd, "index", &st, 0), 0);
	assert_true(f->b->view->log_seq > 2);
	mailbox_close(&fresh);
	uidset_free(&all);
	assert_int_equal(mailbox_status(f->u, "Nope", &b, &err), STORE_E_NOTFOUND);
}

static void test_quota(void **state)
{
	struct fixture *f = *state;
	const char *err;
	struct store_quota_limit q = { .bytes = 100, .messages = 10, .warn_percent = 50 };
	struct mail_append a;
	memset(&a, 0, sizeof(a));
	uint32_t uid;
	bool warn;
	char text[41];
	memset(text, 'q', 40);
	text[40] = '\0';
	a.writer = tstore_writer(f->s, text);
	assert_int_equal(mailbox_append(f->b, &a, 1, &q, &uid, &warn, &err), 0);
	assert_false(warn); /* 40 of 100 */
	a.writer = tstore_writer(f->s, text);
	assert_int_equal(mailbox_append(f->b, &a, 1, &q, &uid, &warn, &err), 0);
	assert_true(warn); /* 80 of 100 crosses 50% */
	a.writer = tstore_writer(f->s, text);
	const char *kw[1] = { "$Refused" };
	a.keywords = kw;
	a.n_keywords = 1;
	unsigned keywords = mailbox_keyword_count(f->b);
	assert_int_equal(mailbox_append(f->b, &a, 1, &q, &uid, &warn, &err), STORE_E_QUOTA);
	assert_false(warn);
	assert_int_equal(mailbox_keyword_count(f->b), keywords); /* a refusal defines nothing */
	a.keywords = NULL;
	a.n_keywords = 0;
	struct mailbox_status st;
	mailbox_get_status(f->b, &st);
	assert_int_equal(st.messages, 2);
	struct store_quota_usage u;
	assert_int_equal(store_quota_get(f->u, &u, &err), 0);
	assert_int_equal(u.bytes, 80);
	assert_int_equal(u.messages, 2);
	/* Message-count limit. */
	q.bytes = 0;
	q.messages = 2;
	a.writer = tstore_writer(f->s, "x");
	assert_int_equal(mailbox_append(f->b, &a, 1, &q, &uid, &warn, &err), STORE_E_QUOTA);
}

static void assert_usage(struct store_user *u, uint64_t bytes, uint64_t messages)
{
	struct store_quota_usage q;
	const char *err;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	if (q.bytes != bytes || q.messages != messages)
		fail_msg("usage %llu bytes %llu messages, want %llu %llu", (unsigned long long)q.bytes,
			 (unsigned long long)q.messages, (unsigned long long)bytes,
			 (unsigned long long)messages);
}

static uint32_t box_messages(struct mailbox *b)
{
	struct mailbox_status st;
	const char *err;
	assert_int_equal(mailbox_sync(b, NULL, NULL, &err), 0);
	mailbox_get_status(b, &st);
	return st.messages;
}

/* COPY and a MOVE to another user are checked against the destination
 * user's quota (nothing changes when refused); a MOVE within one user
 * changes nothing, so it is neither refused nor counted twice. */
static void test_copy_move_quota(void **state)
{
	struct fixture *f = *state;
	const char *err;
	char text[41];
	memset(text, 'q', 40);
	text[40] = '\0';
	tstore_append(f->s, f->b, text, 0, "$Copied");
	tstore_append(f->s, f->b, text, 0, NULL);
	assert_usage(f->u, 80, 2);
	assert_int_equal(mailbox_create(f->u, "Archive", 0, &err), 0);
	struct mailbox *arch = tstore_mailbox(f->u, "Archive", 0);
	struct store_quota_limit limit = { .bytes = 100 };
	struct uidset both = UIDSET_INIT, du = UIDSET_INIT;
	uidset_add_range(&both, 1, 2);

	assert_int_equal(mailbox_copy(f->b, &both, arch, false, &limit, NULL, &du, &err),
			 STORE_E_QUOTA);
	assert_true(uidset_empty(&du));
	assert_int_equal(mailbox_keyword_count(arch), 0); /* a refusal defines nothing */
	assert_int_equal(box_messages(arch), 0);
	assert_int_equal(box_messages(f->b), 2);
	assert_usage(f->u, 80, 2);

	assert_int_equal(mailbox_copy(f->b, &both, arch, true, &limit, NULL, &du, &err), 0);
	assert_int_equal(box_messages(arch), 2);
	assert_int_equal(box_messages(f->b), 0);
	assert_usage(f->u, 80, 2);

	struct store_user *dave = tstore_user(f->s, "dave@example.com");
	struct mailbox *dbox = tstore_mailbox(dave, "INBOX", 0);
	struct store_quota_limit small = { .bytes = 50 };
	uidset_clear(&both);
	uidset_add_range(&both, 1, 2);
	uidset_clear(&du);
	assert_int_equal(mailbox_copy(arch, &both, dbox, true, &small, NULL, &du, &err),
			 STORE_E_QUOTA);
	assert_int_equal(box_messages(arch), 2);
	assert_int_equal(box_messages(dbox), 0);
	assert_usage(f->u, 80, 2);
	assert_usage(dave, 0, 0);

	struct uidset one = UIDSET_INIT;
	uidset_add(&one, 1);
	assert_int_equal(mailbox_copy(arch, &one, dbox, true, &small, NULL, &du, &err), 0);
	assert_int_equal(box_messages(arch), 1);
	assert_int_equal(box_messages(dbox), 1);
	assert_usage(f->u, 40, 1);
	assert_usage(dave, 40, 1);
	/* And a COPY to another user charges only the destination. */
	uidset_clear(&one);
	uidset_add(&one, 2);
	assert_int_equal(mailbox_copy(arch, &one, dbox, false, &small, NULL, &du, &err),
			 STORE_E_QUOTA);
	assert_int_equal(mailbox_copy(arch, &one, dbox, false, NULL, NULL, &du, &err), 0);
	assert_usage(f->u, 40, 1);
	assert_usage(dave, 80, 2);

	mailbox_close(&dbox);
	store_user_close(&dave);
	mailbox_close(&arch);
	uidset_free(&both);
	uidset_free(&one);
	uidset_free(&du);
}

/* A message that is gone by the time the COPY links it is given back to
 * the quota, its count too when it has no bytes. */
static void test_copy_gives_back_what_it_skipped(void **state)
{
	struct fixture *f = *state;
	const char *err;
	tstore_append(f->s, f->b, "", 0, NULL);
	assert_usage(f->u, 0, 1);
	assert_int_equal(unlinkat(f->b->msg_fd, "0/1", 0), 0); /* expunged meanwhile */
	assert_int_equal(mailbox_create(f->u, "Archive", 0, &err), 0);
	struct mailbox *arch = tstore_mailbox(f->u, "Archive", 0);
	struct uidset one = UIDSET_INIT, du = UIDSET_INIT;
	uidset_add(&one, 1);
	assert_int_equal(mailbox_copy(f->b, &one, arch, false, NULL, NULL, &du, &err), 0);
	assert_true(uidset_empty(&du));
	assert_usage(f->u, 0, 1);
	mailbox_close(&arch);
	uidset_free(&one);
	uidset_free(&du);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyword_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_sessions_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move_carry_current_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_of_orphan_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_and_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_gives_back_what_it_skipped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
