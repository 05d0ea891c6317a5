/* lib/control_wire.c: messages decoded whole and in every piece size,
 * limits refused at the prefix that crosses them, round trips through the
 * encoder, and memory that grows only with the bytes received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/control_wire.h"

static const struct control_wire_limits small = {
	.max_items = 3, .max_item = 5, .max_total = 40, .refuse_nul = true
};

/* Feeds in, step bytes at a time; describes the outcome as
 * "a|b|c +rest" (DONE, rest = bytes not consumed), "MORE" or "ERR why". */
static void run(const char *in, size_t len, size_t step, const struct control_wire_limits *lim,
		char *got, size_t size)
{
	struct control_wire_decoder d;
	enum control_wire_result r = CONTROL_WIRE_NEED_MORE;
	size_t off = 0;

	control_wire_decoder_init(&d, lim);
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used;
		r = control_wire_decode(&d, in + off, n, &used);
		off += used;
		if (r != CONTROL_WIRE_NEED_MORE)
			break;
		assert_int_equal(used, n);
	}
	if (r == CONTROL_WIRE_ERROR) {
		snprintf(got, size, "ERR %s", d.error);
	} else if (r == CONTROL_WIRE_NEED_MORE) {
		snprintf(got, size, "MORE");
	} else {
		size_t w = 0;
		got[0] = '\0';
		for (uint32_t i = 0; i < d.count; i++) {
			assert_int_equal(strlen(d.items[i]) == d.lens[i] || !lim->refuse_nul, 1);
			w += (size_t)snprintf(got + w, size - w, "%s%s", i ? "|" : "", d.items[i]);
		}
		assert_null(d.items[d.count]);
		snprintf(got + w, size - w, " +%zu", len - off);
	}
	control_wire_decoder_free(&d);
}

#define M(s) s, sizeof(s) - 1

static const struct {
	const char *in;
	size_t len;
	const char *want;
} cases[] = {
	{ M("\0\0\0\0"), " +0" },
	{ M("\0\0\0\1\0\0\0\0"), " +0" },
	{ M("\0\0\0\2\0\0\0\2ab\0\0\0\3cde"), "ab|cde +0" },
	{ M("\0\0\0\1\0\0\0\1xTAIL"), "x +4" },
	{ M("\0\0\0\3\0\0\0\5abcde\0\0\0\0\0\0\0\1z"), "abcde||z +0" },
	{ M("\0\0\0\2\0\0\0\2ab"), "MORE" },
	{ M("\0\0\0"), "MORE" },
	/* limits: refused at the prefix, whatever follows */
	{ M("\0\0\0\4"), "ERR too many arguments" },
	{ M("\xff\xff\xff\xff"), "ERR too many arguments" },
	{ M("\0\0\0\1\0\0\0\6"), "ERR argument too long" },
	{ M("\0\0\0\1\xff\xff\xff\xff"), "ERR argument too long" },
	{ M("\0\0\0\1\0\0\0\2a\0"), "ERR NUL byte in an argument" },
};

static void test_cases(void **state)
{
	(void)state;
	char got[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= cases[i].len; step++) {
			run(cases[i].in, cases[i].len, step, &small, got, sizeof(got));
			if (strcmp(got, cases[i].want) != 0)
				fail_msg("case %zu step %zu: got \"%s\", want \"%s\"", i, step, got,
					 cases[i].want);
		}
	}
}

/* The total counts prefixes: 3 items of 5 bytes are 4 + 3 * 9 = 31. */
static void test_total_limit(void **state)
{
	(void)state;
	struct control_wire_limits lim = small;
	const char in[] = "\0\0\0\3\0\0\0\5abcde\0\0\0\5fghij\0\0\0\5klmno";
	char got[128];

	lim.max_total = 31;
	run(in, sizeof(in) - 1, 1, &lim, got, sizeof(got));
	assert_string_equal(got, "abcde|fghij|klmno +0");
	lim.max_total = 30;
	for (size_t step = 1; step < sizeof(in); step++) {
		run(in, sizeof(in) - 1, step, &lim, got, sizeof(got));
		assert_string_equal(got, "ERR message too large");
	}
	/* the last length prefix itself does not fit: refused at 23 bytes */
	lim.max_total = 22;
	struct control_wire_decoder d;
	size_t used;
	control_wire_decoder_init(&d, &lim);
	assert_int_equal(control_wire_decode(&d, in, sizeof(in) - 1, &used), CONTROL_WIRE_ERROR);
	assert_int_equal(used, 23);
	control_wire_decoder_free(&d);
}

static void test_nul_allowed_for_replies(void **state)
{
	(void)state;
	struct control_wire_limits lim = small;
	char got[64];

	lim.refuse_nul = false;
	run(M("\0\0\0\1\0\0\0\2a\0"), 1, &lim, got, sizeof(got));
	assert_string_equal(got, "a +0");
}

static void test_round_trip(void **state)
{
	(void)state;
	const char *items[] = { "mailctl/2", "user", "", "import-records", "a@b.test" };
	struct textbuf buf = TEXTBUF_INIT;
	struct control_wire_limits lim = { 16, 64, 1024, true };
	struct control_wire_decoder d;
	size_t used;

	control_wire_encode(&buf, 5, items, NULL);
	control_wire_decoder_init(&d, &lim);
	assert_int_equal(control_wire_decode(&d, buf.data, buf.len, &used), CONTROL_WIRE_DONE);
	assert_int_equal(used, buf.len);
	assert_int_equal(d.count, 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(d.items[i], items[i]);
	/* after DONE the decoder consumes nothing more */
	assert_int_equal(control_wire_decode(&d, "x", 1, &used), CONTROL_WIRE_DONE);
	assert_int_equal(used, 0);
	control_wire_decoder_free(&d);
	textbuf_free(&buf);
}

/* A peer announcing the maximum and sending a little makes the decoder
 * hold about what it sent, not what it announced. */
static void test_memory_follows_received_bytes(void **state)
{
	(void)state;
	struct control_wire_limits lim = { 4096, 65536, 1 << 20, true };
	const char in[] = "\0\0\x10\0\0\1\0\0abc";
	struct control_wire_decoder d;
	size_t used;

	control_wire_decoder_init(&d, &lim);
	assert_int_equal(control_wire_decode(&d, in, sizeof(in) - 1, &used), CONTROL_WIRE_NEED_MORE);
	assert_true(d.cap <= 64);
	assert_true(d.slots <= 8);
	control_wire_decoder_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_total_limit),
		cmocka_unit_test(test_nul_allowed_for_replies),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_memory_follows_received_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
