/* lib/linebuf.c: complete lines, CRLF and LF, limits, NULs, resets —
 * fed all at once and one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/linebuf.h"
#include "lib/textbuf.h"

/* Runs input through a linebuf with the given limit; returns lines joined
 * with '|', "<LONG>" for a too-long report, "<NUL>" prefix for NUL lines. */
static void collect(const char *in, size_t len, size_t limit, size_t step, struct textbuf *out)
{
	struct linebuf lb;
	assert_int_equal(linebuf_init(&lb, limit), 0);
	for (size_t off = 0; off < len; off += step) {
		const char *p = in + off;
		size_t n = off + step > len ? len - off : step;
		for (;;) {
			const char *line;
			bool nul;
			enum linebuf_result r = linebuf_feed(&lb, &p, &n, &line, &nul);
			if (r == LINEBUF_NEED_MORE)
				break;
			if (r == LINEBUF_TOO_LONG)
				textbuf_puts(out, "<LONG>|");
			else
				textbuf_printf(out, "%s%s|", nul ? "<NUL>" : "", line);
		}
	}
	textbuf_printf(out, "pending=%zu", linebuf_pending(&lb));
	linebuf_free(&lb);
}

static const struct {
	const char *in;
	size_t len;
	size_t limit;
	const char *want;
} cases[] = {
	{ "ONE\r\nTWO\nTHREE", 14, 10, "ONE|TWO|pending=5" },
	{ "\r\n\n", 3, 10, "||pending=0" },
	{ "0123456789\r\n", 12, 10, "0123456789|pending=0" },
	{ "01234567890\r\nOK\r\n", 17, 10, "<LONG>|OK|pending=0" },
	{ "0123456789012345678901234567890123456789\r\nNEXT\r\n", 48, 10, "<LONG>|NEXT|pending=0" },
	{ "A\0B\r\nC\r\n", 8, 10, "<NUL>A|C|pending=0" },
	{ "CR\rIN\r\n", 7, 10, "CR\rIN|pending=0" },
};

static void test_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= cases[i].len; step++) {
			struct textbuf got = TEXTBUF_INIT;
			collect(cases[i].in, cases[i].len, cases[i].limit, step, &got);
			if (strcmp(textbuf_str(&got), cases[i].want) != 0)
				fail_msg("case %zu step %zu: got \"%s\", want \"%s\"", i, step, textbuf_str(&got),
					 cases[i].want);
			textbuf_free(&got);
		}
	}
}

static void test_reset_drops_partial_line(void **state)
{
	struct linebuf lb;
	const char *p = "STLS\r\nINJ";
	size_t n = 9;
	const char *line;
	bool nul;
	(void)state;
	assert_int_equal(linebuf_init(&lb, 100), 0);
	assert_int_equal(linebuf_feed(&lb, &p, &n, &line, &nul), LINEBUF_LINE);
	assert_string_equal(line, "STLS");
	assert_int_equal(linebuf_feed(&lb, &p, &n, &line, &nul), LINEBUF_NEED_MORE);
	assert_int_equal(linebuf_pending(&lb), 3);
	linebuf_reset(&lb);
	p = "ECTED\r\nCAPA\r\n";
	n = strlen(p);
	assert_int_equal(linebuf_feed(&lb, &p, &n, &line, &nul), LINEBUF_LINE);
	assert_string_equal(line, "ECTED");
	linebuf_free(&lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_reset_drops_partial_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
