/*
 * Unit tests for the pure parts of the mail store: UID sets
 * (storage/mail_uidset.c), the index record and header encodings
 * (storage/index_format.c) and replaying records into a view
 * (storage/index_apply.c): round trips, and corrupt input of every kind,
 * which must come back as an error, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "storage/index_format.h"
#include "storage/index_view.h"
#include "storage/mail_uidset.h"
#include "storage/store.h"
#include "tests/unit/test_store_helpers.h"

static void test_uidset_table(void **state)
{
	static const struct {
		const char *in, *want;
		uint64_t count;
	} cases[] = {
		{ "1", "1", 1 },
		{ "1,2,3", "1:3", 3 },
		{ "3,2,1", "1:3", 3 },
		{ "5:1", "1:5", 5 },
		{ "1:3,7,9:12", "1:3,7,9:12", 8 },
		{ "9:12,1:3,4", "1:4,9:12", 8 },
		{ "1:10,3:4", "1:10", 10 },
		{ "4294967295", "4294967295", 1 },
		{ "1:4294967295", "1:4294967295", 4294967295ull },
		{ "2,4,6,3,5", "2:6", 5 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct uidset s = UIDSET_INIT;
		struct textbuf out = TEXTBUF_INIT;
		assert_int_equal(uidset_parse(&s, cases[i].in), 0);
		uidset_format(&s, &out);
		if (strcmp(textbuf_str(&out), cases[i].want) != 0 || uidset_count(&s) != cases[i].count)
			fail_msg("case %zu (%s): got %s (%llu), want %s", i, cases[i].in, textbuf_str(&out),
				 (unsigned long long)uidset_count(&s), cases[i].want);
		textbuf_free(&out);
		uidset_free(&s);
	}
	static const char *bad[] = { "", "0", "1:", ":1", "1,,2", "a", "1:0", "4294967296", "1 2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct uidset s = UIDSET_INIT;
		if (uidset_parse(&s, bad[i]) == 0)
			fail_msg("\"%s\" parsed, want an error", bad[i]);
		uidset_free(&s);
	}
}

static void test_uidset_remove_iter(void **state)
{
	struct uidset s = UIDSET_INIT;
	(void)state;
	uidset_add_range(&s, 1, 10);
	uidset_remove(&s, 5);
	uidset_remove(&s, 1);
	uidset_remove(&s, 10);
	uidset_remove(&s, 42);
	struct textbuf out = TEXTBUF_INIT;
	uidset_format(&s, &out);
	assert_string_equal(textbuf_str(&out), "2:4,6:9");
	assert_true(uidset_contains(&s, 3));
	assert_false(uidset_contains(&s, 5));
	struct uidset_iter it;
	uint32_t want[] = { 2, 3, 4, 6, 7, 8, 9 }, n = 0;
	for (uint32_t u = uidset_first(&s, &it); u != 0; u = uidset_next(&s, &it))
		assert_int_equal(u, want[n++]);
	assert_int_equal(n, 7);
	textbuf_free(&out);
	uidset_free(&s);
}

static struct index_state base_state(void)
{
	struct index_state st = { .uidnext = 1, .first_recent_uid = 1, .highestmodseq = 1 };
	return st;
}

/* An APPEND record of n messages starting at uid, with the state after
 * it, carrying record flags. */
static size_t make_append_flagged(struct textbuf *buf, uint32_t uid, uint32_t n, uint64_t modseq,
				  struct index_state *st, uint16_t flags)
{
	size_t start = index_rec_begin(buf);
	for (uint32_t i = 0; i < n; i++) {
		struct mail_record m = { .uid = uid + i, .flags = i % 2 ? MAIL_SEEN : 0, .modseq = modseq,
					 .internal_date = 1700000000, .size = 100 + i };
		memset(m.guid, (int)(uid + i), sizeof(m.guid));
		index_put_msg(buf, &m);
		st->messages++;
		st->unseen += i % 2 ? 0 : 1;
		st->recent++;
		st->bytes += 100 + i;
	}
	index_put_u32(buf, 0);
	index_put_u32(buf, 0);
	st->uidnext = uid + n;
	st->highestmodseq = modseq;
	index_rec_finish(buf, start, INDEX_REC_APPEND, flags, n, modseq, st);
	return start;
}

static size_t make_append(struct textbuf *buf, uint32_t uid, uint32_t n, uint64_t modseq,
			  struct index_state *st)
{
	return make_append_flagged(buf, uid, n, modseq, st, 0);
}

static void test_record_roundtrip(void **state)
{
	(void)state;
	struct textbuf buf = TEXTBUF_INIT;
	struct index_state st = base_state();
	make_append(&buf, 1, 3, 2, &st);
	struct index_rec rec;
	const char *err = NULL;
	assert_int_equal(index_rec_decode((uint8_t *)buf.data, buf.len, &rec, &err), INDEX_DECODE_OK);
	assert_int_equal(rec.type, INDEX_REC_APPEND);
	assert_int_equal(rec.count, 3);
	assert_int_equal(rec.size, buf.len);
	struct mail_record m;
	index_rec_msg(&rec, 2, &m);
	assert_int_equal(m.uid, 3);
	assert_int_equal(m.size, 102);
	assert_int_equal(rec.state.uidnext, 4);
	/* Every shorter prefix is SHORT, never BAD or OK. */
	for (size_t len = 0; len < buf.len; len++)
		if (index_rec_decode((uint8_t *)buf.data, len, &rec, &err) != INDEX_DECODE_SHORT)
			fail_msg("prefix of %zu bytes: want SHORT", len);
	textbuf_free(&buf);
}

static void test_record_corrupt(void **state)
{
	(void)state;
	struct textbuf good = TEXTBUF_INIT;
	struct index_state st = base_state();
	make_append(&good, 1, 2, 2, &st);
	/* Flip every single byte: each must be caught (checksum or shape). */
	for (size_t i = 0; i < good.len; i++) {
		struct textbuf b = TEXTBUF_INIT;
		textbuf_append(&b, good.data, good.len);
		b.data[i] ^= 0x5a;
		struct index_rec rec;
		const char *err = NULL;
		enum index_decode d = index_rec_decode((uint8_t *)b.data, b.len, &rec, &err);
		if (d == INDEX_DECODE_OK)
			fail_msg("byte %zu flipped: still decodes", i);
		textbuf_free(&b);
	}
	static const uint32_t sizes[] = { 0, 7, 8, 79, 81, 0x7fffffff, 0xffffffff };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t b[128] = { 0 };
		index_set_le32(b, sizes[i]);
		struct index_rec rec;
		enum index_decode d = index_rec_decode(b, sizeof(b), &rec, NULL);
		if (d == INDEX_DECODE_OK)
			fail_msg("size %u decodes", sizes[i]);
	}
	textbuf_free(&good);
}

/* Flags a reader knows decode; one it does not is refused, not ignored. */
static void test_record_unknown_flags(void **state)
{
	(void)state;
	static const struct {
		uint16_t flags;
		enum index_decode want;
	} cases[] = {
		{ INDEX_APPEND_ABSORBED, INDEX_DECODE_OK },
		{ INDEX_APPEND_PENDING, INDEX_DECODE_OK },
		{ 0x4, INDEX_DECODE_BAD },
		{ 0x8000 | INDEX_APPEND_ABSORBED, INDEX_DECODE_BAD },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf b = TEXTBUF_INIT;
		struct index_state st = base_state();
		make_append_flagged(&b, 1, 1, 2, &st, cases[i].flags);
		struct index_rec rec;
		const char *err = NULL;
		enum index_decode d = index_rec_decode((uint8_t *)b.data, b.len, &rec, &err);
		if (d != cases[i].want)
			fail_msg("flags 0x%x: decode %d, want %d", cases[i].flags, d, cases[i].want);
		textbuf_free(&b);
	}
}

static void test_log_header(void **state)
{
	(void)state;
	struct index_log_header h = { .seq = 7, .uidvalidity = 1234, .synced = 999, .state = base_state() };
	uint8_t b[INDEX_LOG_HEADER_SIZE];
	index_log_header_encode(&h, b);
	struct index_log_header got;
	assert_int_equal(index_log_header_decode(b, sizeof(b), &got, NULL), 0);
	assert_int_equal(got.seq, 7);
	assert_int_equal(got.uidvalidity, 1234);
	assert_int_equal(got.synced, 999);
	/* The synced mark is outside the checksum; everything else is inside. */
	for (size_t i = 0; i < sizeof(b); i++) {
		uint8_t c[INDEX_LOG_HEADER_SIZE];
		memcpy(c, b, sizeof(c));
		c[i] ^= 1;
		int ret = index_log_header_decode(c, sizeof(c), &got, NULL);
		bool in_mark = i >= INDEX_LOG_SYNCED_OFFSET && i < INDEX_LOG_SYNCED_OFFSET + 8;
		if (in_mark ? ret != 0 : ret != STORE_E_CORRUPT)
			fail_msg("byte %zu flipped: got %d", i, ret);
	}
	assert_int_equal(index_log_header_decode(b, 10, &got, NULL), STORE_E_CORRUPT);
}

static void test_keyword_valid(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "$Forwarded", true }, { "NonJunk", true }, { "a", true },
		{ "", false },          { "\\Seen", false }, { "has space", false },
		{ "par(en", false },    { "star*", false },  { "quote\"", false },
		{ "brack]", false },    { "caf\xc3\xa9", false },
		{ "x\x01", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (index_keyword_valid(cases[i].name, strlen(cases[i].name)) != cases[i].ok)
			fail_msg("keyword \"%s\": want %d", cases[i].name, cases[i].ok);
	char longname[MAILBOX_KEYWORD_LEN_MAX + 2];
	memset(longname, 'k', sizeof(longname));
	assert_true(index_keyword_valid(longname, MAILBOX_KEYWORD_LEN_MAX));
	assert_false(index_keyword_valid(longname, MAILBOX_KEYWORD_LEN_MAX + 1));
}

/* Replay of a log image: a valid one, then semantic corruption that
 * passes the checksum (the writer's state block lies, UIDs go back). */
static void test_replay_semantics(void **state)
{
	(void)state;
	struct textbuf img = TEXTBUF_INIT;
	struct index_log_header h = { .seq = 1, .uidvalidity = 42, .synced = 0, .state = base_state() };
	uint8_t hb[INDEX_LOG_HEADER_SIZE];
	index_log_header_encode(&h, hb);
	textbuf_append(&img, hb, sizeof(hb));
	struct index_state st = base_state();
	make_append(&img, 1, 4, 2, &st);
	size_t good_len = img.len;

	struct index_view v;
	index_view_init(&v, true);
	assert_int_equal(index_replay_buffer(&v, (uint8_t *)img.data, img.len, NULL), 0);
	assert_int_equal(v.state.messages, 4);
	assert_int_equal(v.state.unseen, 2);
	assert_non_null(index_find(&v, 3));
	index_view_clear(&v);

	/* UIDs that do not grow. */
	struct index_state st2 = st;
	make_append(&img, 2, 1, 3, &st2);
	index_view_init(&v, true);
	assert_int_equal(index_replay_buffer(&v, (uint8_t *)img.data, img.len, NULL), STORE_E_CORRUPT);
	index_view_clear(&v);

	/* A state block that does not match what the record does. */
	textbuf_truncate(&img, good_len);
	struct index_state st3 = st;
	size_t start = make_append(&img, 5, 1, 3, &st3);
	st3.unseen += 7;
	index_rec_set_state((uint8_t *)img.data + start, &st3);
	index_view_init(&v, true);
	assert_int_equal(index_replay_buffer(&v, (uint8_t *)img.data, img.len, NULL), STORE_E_CORRUPT);
	index_view_clear(&v);

	/* MODSEQ that does not grow. */
	textbuf_truncate(&img, good_len);
	struct index_state st4 = st;
	make_append(&img, 5, 1, 2, &st4);
	index_view_init(&v, true);
	assert_int_equal(index_replay_buffer(&v, (uint8_t *)img.data, img.len, NULL), STORE_E_CORRUPT);
	index_view_clear(&v);
	textbuf_free(&img);
}

/* A transient store (mailctl: a node id per run) removes its temporary
 * area at close when nothing was left in it; a node keeps its own. */
static void test_transient_tmp_area(void **state)
{
	(void)state;
	char *root = tstore_mkdtemp();
	for (int transient = 0; transient < 2; transient++) {
		const char *id = transient ? "once" : "node";
		struct store_options o = { .transient = transient };
		struct store *s = NULL;
		const char *err = NULL;
		o.node_id = id;
		assert_int_equal(store_open(root, &o, &s, &err), 0);
		struct mail_writer *w = tstore_writer(s, "Subject: x\r\n\r\n");
		mail_writer_abort(&w);
		store_close(&s);
		char path[PATH_MAX];
		struct stat st;
		snprintf(path, sizeof(path), "%s/mail/.tmp/%s", root, id);
		assert_int_equal(stat(path, &st) == 0, !transient);
	}
	tstore_rmrf(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uidset_table),
		cmocka_unit_test(test_uidset_remove_iter),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_corrupt),
		cmocka_unit_test(test_record_unknown_flags),
		cmocka_unit_test(test_log_header),
		cmocka_unit_test(test_keyword_valid),
		cmocka_unit_test(test_replay_semantics),
		cmocka_unit_test(test_transient_tmp_area),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
