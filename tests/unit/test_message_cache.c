/*
 * Unit tests for lib/message_cache.c: round trips (decode(encode(x)) == x
 * and canonical re-encoding) and corrupt records: truncated at every
 * length, every byte changed, every byte changed with the checksum fixed
 * up (so the structural checks are what stands), and records describing
 * impossible messages, each rejected with its own reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/message_cache.h"
#include "lib/message_imap.h"
#include "lib/message_parser.h"

static const char sample_msg[] = "From: \"A, B\" <a@b.example>, Group: c@d;\r\n"
				 "To: x@y\r\n"
				 "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
				 "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
				 "Content-Type: multipart/mixed; boundary=b\r\n"
				 "\r\n"
				 "--b\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Disposition: inline; filename*=utf-8''%E2%82%AC\r\n"
				 "Content-Language: en\r\n"
				 "\r\n"
				 "text\r\n"
				 "--b\r\n"
				 "Content-Type: message/rfc822\r\n"
				 "\r\n"
				 "Subject: inner\r\n"
				 "\r\n"
				 "inner body\r\n"
				 "--b--\r\n";

static void reseal(struct textbuf *buf)
{
	uint64_t sum = message_cache_checksum(buf->data, buf->len - 8);
	for (int i = 0; i < 8; i++)
		buf->data[buf->len - 8 + i] = (char)(sum >> (8 * i));
}

static void encode_sample(struct message_result **r_r, struct textbuf *buf)
{
	assert_int_equal(message_parse(sample_msg, sizeof(sample_msg) - 1, r_r), 0);
	message_cache_encode(*r_r, buf);
}

static void test_roundtrip(void **state)
{
	static const char *const msgs[] = {
	    "",
	    "\r\n",
	    "Subject: only\r\n",
	    sample_msg,
	    "Content-Type: multipart/mixed; boundary=x\r\n\r\nno parts\r\n",
	    "From: a@b\r\nDate: Thu, 13 Feb 69 23:32:54 -0330\r\n\r\nneg date\r\n",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct message_result *r, *d = NULL;
		struct textbuf buf = TEXTBUF_INIT, again = TEXTBUF_INIT;
		const char *error = NULL;
		message_parse(msgs[i], strlen(msgs[i]), &r);
		message_cache_encode(r, &buf);
		if (message_cache_decode(buf.data, buf.len, &d, &error) != 0)
			fail_msg("message %zu: got error '%s' want success", i, error);
		if (!message_result_equal(r, d))
			fail_msg("message %zu: decode(encode(x)) != x", i);
		message_cache_encode(d, &again);
		assert_int_equal(again.len, buf.len);
		assert_memory_equal(again.data, buf.data, buf.len);
		message_result_free(&d);
		message_result_free(&r);
		textbuf_free(&buf);
		textbuf_free(&again);
	}
}

static void test_truncated(void **state)
{
	struct message_result *r;
	struct textbuf buf = TEXTBUF_INIT;
	(void)state;
	encode_sample(&r, &buf);
	for (size_t len = 0; len < buf.len; len++) {
		struct message_result *d = NULL;
		const char *error = NULL;
		/* A copy of exactly len bytes, so ASan sees any overread. */
		char *copy = malloc(len ? len : 1);
		memcpy(copy, buf.data, len);
		if (message_cache_decode(copy, len, &d, &error) != -1)
			fail_msg("truncated to %zu of %zu: got success want -1", len, buf.len);
		if (error == NULL || d != NULL)
			fail_msg("truncated to %zu: no error text or a result", len);
		free(copy);
	}
	message_result_free(&r);
	textbuf_free(&buf);
}

static void test_flipped(void **state)
{
	struct message_result *r;
	struct textbuf buf = TEXTBUF_INIT;
	static const unsigned char masks[] = {0x01, 0x80, 0xff, 0x55};
	(void)state;
	encode_sample(&r, &buf);
	for (size_t i = 0; i < buf.len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			struct message_result *d = NULL;
			const char *error = NULL;
			buf.data[i] ^= (char)masks[m];
			if (message_cache_decode(buf.data, buf.len, &d, &error) != -1)
				fail_msg("byte %zu ^ %#x: got success want -1", i, masks[m]);
			buf.data[i] ^= (char)masks[m];
		}
	}
	message_result_free(&r);
	textbuf_free(&buf);
}

/* With the checksum fixed up, only the structural checks stand between a
 * damaged record and the renderers: whatever decodes must re-encode to
 * the same bytes and render. */
static void test_changed_and_resealed(void **state)
{
	struct message_result *r;
	struct textbuf buf = TEXTBUF_INIT;
	static const unsigned char values[] = {0x00, 0x01, 0x02, 0x3a, 0x7f, 0x80, 0xff};
	size_t accepted = 0, rejected = 0;
	(void)state;
	encode_sample(&r, &buf);
	for (size_t i = 5; i < buf.len - 8; i++) {
		unsigned char orig = (unsigned char)buf.data[i];
		for (size_t v = 0; v < sizeof(values) + 2; v++) {
			unsigned char nv =
			    v < sizeof(values)
				? values[v]
				: (unsigned char)(orig + (v == sizeof(values) ? 1 : -1));
			if (nv == orig)
				continue;
			buf.data[i] = (char)nv;
			reseal(&buf);
			struct message_result *d = NULL;
			const char *error = NULL;
			if (message_cache_decode(buf.data, buf.len, &d, &error) == 0) {
				struct textbuf again = TEXTBUF_INIT, out = TEXTBUF_INIT;
				message_cache_encode(d, &again);
				if (again.len != buf.len ||
				    memcmp(again.data, buf.data, buf.len) != 0)
					fail_msg("byte %zu = %#x: accepted but not canonical", i,
						 nv);
				message_imap_bodystructure(d, &d->parts[0], true, &out);
				message_imap_envelope(d->parts[0].envelope, &out);
				textbuf_free(&again);
				textbuf_free(&out);
				message_result_free(&d);
				accepted++;
			} else {
				assert_non_null(error);
				rejected++;
			}
		}
		buf.data[i] = (char)orig;
	}
	/* Damage to lengths, counts, offsets and flags is caught; a changed
	 * letter inside a string is just another valid message. */
	print_message("resealed changes: %zu rejected, %zu accepted\n", rejected, accepted);
	assert_true(rejected > 0 && accepted > 0);
	message_result_free(&r);
	textbuf_free(&buf);
}

enum mutation {
	MUT_CHILD_BEFORE_PARENT,
	MUT_ROOT_SHORT,
	MUT_LINES,
	MUT_RFC822_ON_TEXT,
	MUT_EXTRA_CHILD,
	MUT_EMPTY_TYPE,
	MUT_FIELD_OUTSIDE,
	MUT_FIELD_NO_COLON,
	MUT_MESSAGE_FLAG,
	MUT_OVERLAP,
	MUT_DISP_PARAMS,
	MUT_RESULT_FLAGS,
};

static void mutate(struct message_result *r, enum mutation m)
{
	struct message_part *p = r->parts;
	switch (m) {
	case MUT_CHILD_BEFORE_PARENT:
		p[1].header_offset = p[0].body_offset - 1;
		break;
	case MUT_ROOT_SHORT:
		r->size++;
		break;
	case MUT_LINES:
		p[2].body_lines = message_part_body_size(&p[2]) + 1;
		break;
	case MUT_RFC822_ON_TEXT:
		p[1].flags |= MESSAGE_PART_FLAG_RFC822;
		break;
	case MUT_EXTRA_CHILD:
		p[1].children = 1;
		break;
	case MUT_EMPTY_TYPE:
		p[1].subtype = "";
		break;
	case MUT_FIELD_OUTSIDE:
		p[0].fields[0].offset = p[0].body_offset;
		break;
	case MUT_FIELD_NO_COLON:
		p[0].fields[0].value_offset = 2;
		break;
	case MUT_MESSAGE_FLAG:
		p[1].flags |= MESSAGE_PART_FLAG_MESSAGE;
		p[1].envelope = p[0].envelope;
		break;
	case MUT_OVERLAP:
		p[2].header_offset = p[1].body_end - 1;
		break;
	case MUT_DISP_PARAMS:
		p[1].disposition = NULL;
		break;
	case MUT_RESULT_FLAGS:
		r->flags = 0x80;
		break;
	}
}

static void test_impossible_messages(void **state)
{
	static const struct {
		enum mutation m;
		const char *error;
	} cases[] = {
	    {MUT_CHILD_BEFORE_PARENT, "part outside its parent"},
	    {MUT_ROOT_SHORT, "root does not span the message"},
	    {MUT_LINES, "more lines than bytes"},
	    {MUT_RFC822_ON_TEXT, "rfc822 flag on a non-message/rfc822"},
	    {MUT_EXTRA_CHILD, "children under a leaf"},
	    {MUT_EMPTY_TYPE, "empty content type"},
	    {MUT_FIELD_OUTSIDE, "field outside its header"},
	    {MUT_FIELD_NO_COLON, "bad field name"},
	    {MUT_MESSAGE_FLAG, "message flag does not match the tree"},
	    {MUT_OVERLAP, "parts overlap"},
	    {MUT_DISP_PARAMS, "disposition parameters without a disposition"},
	    {MUT_RESULT_FLAGS, "count or value out of range"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_result *r, *d = NULL;
		struct textbuf buf = TEXTBUF_INIT;
		const char *error = NULL;
		message_parse(sample_msg, sizeof(sample_msg) - 1, &r);
		mutate(r, cases[i].m);
		message_cache_encode(r, &buf);
		int ret = message_cache_decode(buf.data, buf.len, &d, &error);
		if (ret != -1 || error == NULL || strcmp(error, cases[i].error) != 0)
			fail_msg("mutation %zu: got %d '%s' want -1 '%s'", i, ret,
				 error ? error : "", cases[i].error);
		message_result_free(&r);
		textbuf_free(&buf);
	}
}

static void test_bad_records(void **state)
{
	struct message_result *r;
	struct textbuf buf = TEXTBUF_INIT;
	const char *error;
	struct message_result *d = NULL;
	(void)state;
	encode_sample(&r, &buf);

	struct textbuf b = TEXTBUF_INIT;
	/* Wrong magic, wrong version, too short. */
	textbuf_append(&b, buf.data, buf.len);
	b.data[0] = 'X';
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "not a message cache record");
	b.data[0] = 'C';
	b.data[4] = 2;
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "unsupported message cache version");
	assert_int_equal(message_cache_decode(b.data, 12, &d, &error), -1);
	assert_string_equal(error, "not a message cache record");

	/* A byte changed: the checksum says so. */
	textbuf_truncate(&b, 0);
	textbuf_append(&b, buf.data, buf.len);
	b.data[20] ^= 1;
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "checksum mismatch");

	/* Trailing bytes before the checksum. */
	textbuf_truncate(&b, 0);
	textbuf_append(&b, buf.data, buf.len - 8);
	textbuf_putc(&b, 0);
	textbuf_append(&b, "12345678", 8);
	reseal(&b);
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "trailing bytes");

	/* A non-minimal varint: the size as two bytes. */
	textbuf_truncate(&b, 0);
	textbuf_append(&b, buf.data, 5);
	unsigned char size_byte0 = (unsigned char)buf.data[5];
	assert_true(size_byte0 & 0x80); /* the sample is > 127 bytes */
	size_t vlen = 1;
	while ((unsigned char)buf.data[5 + vlen - 1] & 0x80)
		vlen++;
	textbuf_append(&b, buf.data + 5, vlen);
	b.data[b.len - 1] |= (char)0x80;
	textbuf_putc(&b, 0);
	textbuf_append(&b, buf.data + 5 + vlen, buf.len - 5 - vlen);
	reseal(&b);
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "non-minimal integer");

	/* A NUL inside a string ("inner" in the inner subject). */
	textbuf_truncate(&b, 0);
	textbuf_append(&b, buf.data, buf.len);
	char *s = memmem(b.data, b.len, "inner", 5);
	assert_non_null(s);
	s[2] = '\0';
	reseal(&b);
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "NUL inside a string");

	/* Part count zero and absurd. */
	textbuf_truncate(&b, 0);
	textbuf_append(&b, "CMMC\x01\x00\x00\x00", 8);
	textbuf_append(&b, "12345678", 8);
	reseal(&b);
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "bad part count");
	textbuf_truncate(&b, 0);
	textbuf_append(&b, "CMMC\x01\x00\x00\x90\x4e", 9); /* 10000 parts */
	textbuf_append(&b, "12345678", 8);
	reseal(&b);
	assert_int_equal(message_cache_decode(b.data, b.len, &d, &error), -1);
	assert_string_equal(error, "bad part count");
	assert_null(d);

	textbuf_free(&b);
	textbuf_free(&buf);
	message_result_free(&r);
}

/* A chain one level deeper than MESSAGE_DEPTH_MAX must be refused, since
 * the renderers recurse on it. */
static void test_too_deep(void **state)
{
	struct textbuf msg = TEXTBUF_INIT, buf = TEXTBUF_INIT;
	struct message_result *r, *d = NULL;
	const char *error = NULL;
	(void)state;
	for (int i = 0; i < 100; i++)
		textbuf_puts(&msg, "Content-Type: message/rfc822\r\n\r\n");
	message_parse(msg.data, msg.len, &r);
	assert_int_equal(r->part_count, MESSAGE_DEPTH_MAX + 1);

	/* Accepted as parsed... */
	message_cache_encode(r, &buf);
	assert_int_equal(message_cache_decode(buf.data, buf.len, &d, &error), 0);
	message_result_free(&d);

	/* ...but not with one more level. */
	uint32_t n = r->part_count;
	r->parts = realloc(r->parts, (n + 1) * sizeof(*r->parts));
	r->parts[n] = r->parts[n - 1];
	r->parts[n - 1].flags |= MESSAGE_PART_FLAG_RFC822;
	r->parts[n - 1].children = 1;
	r->parts[n].depth++;
	r->parts[n].parent = n - 1;
	r->part_count++;
	textbuf_truncate(&buf, 0);
	message_cache_encode(r, &buf);
	assert_int_equal(message_cache_decode(buf.data, buf.len, &d, &error), -1);
	assert_string_equal(error, "parts nested too deep");

	message_result_free(&r);
	textbuf_free(&msg);
	textbuf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_flipped),
	    cmocka_unit_test(test_changed_and_resealed),
	    cmocka_unit_test(test_impossible_messages),
	    cmocka_unit_test(test_bad_records),
	    cmocka_unit_test(test_too_deep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
