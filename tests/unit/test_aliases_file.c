/* Unit tests for lib/aliases_file.c: table-driven, each input parsed whole
 * and one byte at a time, with the same result. The result is rendered as
 * text: "L<line> name: kind=value, ...\n" per entry, "E<line> message\n"
 * per error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/aliases_file.h"

static const char *kind_letter(enum aliases_target_kind k)
{
	static const char *const letters[] = { "A", "L", "F", "C", "I" };
	return letters[k];
}

static int render_entry(const struct aliases_entry *e, void *ctx)
{
	struct textbuf *out = ctx;
	textbuf_printf(out, "L%u %s:", e->line, e->name);
	for (size_t i = 0; i < e->ntargets; i++)
		textbuf_printf(out, "%s %s=%s", i ? "," : "", kind_letter(e->targets[i].kind),
			       e->targets[i].value);
	textbuf_putc(out, '\n');
	return 0;
}

static void render_error(unsigned line, const char *message, void *ctx)
{
	textbuf_printf(ctx, "E%u %s\n", line, message);
}

/* step 0: all at once. */
static int parse(const char *in, size_t len, size_t step, struct textbuf *out)
{
	struct aliases_parser p;
	assert_int_equal(aliases_parser_init(&p, render_entry, render_error, out), 0);
	int ret = 0;
	for (size_t off = 0; off < len && ret == 0;) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		ret = aliases_parser_feed(&p, in + off, n);
		off += n;
	}
	if (ret == 0)
		ret = aliases_parser_finish(&p);
	aliases_parser_free(&p);
	return ret;
}

static const struct {
	const char *in;
	const char *want;
} cases[] = {
	{ "", "" },
	{ "# only a comment\n\n   \n", "" },
	{ "postmaster: root\n", "L1 postmaster: L=root\n" },
	{ "root: alice, bob@example.org\n", "L1 root: L=alice, A=bob@example.org\n" },
	{ "root: alice,\n  bob,\n\tcarol\nnext: x\n", "L1 root: L=alice, L=bob, L=carol\nL4 next: L=x\n" },
	{ "a: b\r\nc: d", "L1 a: L=b\nL2 c: L=d\n" },
	{ "a: b,\n# a comment inside\n  c\n", "L1 a: L=b, L=c\n" },
	{ "\"odd name\": \\dave, \"quoted target\"\n", "L1 odd name: L=dave, L=quoted target\n" },
	{ "\"colon:name\": x\n", "L1 colon:name: L=x\n" },
	{ "a: <b@c.d>\n", "L1 a: A=b@c.d\n" },
	{ "logs: /var/log/x, |/usr/bin/procmail, :include:/etc/list, \"|prog arg, more\"\n",
	  "L1 logs: F=/var/log/x, C=|/usr/bin/procmail, I=:include:/etc/list, C=|prog arg, more\n" },
	{ "a: b,,c,\n", "L1 a: L=b, L=c\n" },
	{ "a: ,\n", "E1 alias a has no target\n" },
	{ "no colon here\nb: c\n", "E1 missing ':' after the alias name\nL2 b: L=c\n" },
	{ ": x\n", "E1 empty alias name\n" },
	{ "  leading: continuation\na: b\n", "E1 continuation line without an alias before it\nL2 a: L=b\n" },
	{ "a: b,\n  c,\n\n  d\n", "L1 a: L=b, L=c, L=d\n" },
	{ "a: b c\n", "L1 a: L=b c\n" },
	{ "a: b\x00z\nc: d\n", "E1 NUL byte in line\nL2 c: L=d\n" },
	{ "\"unterminated: x\n", "E1 missing ':' after the alias name\n" },
	{ "MAILER-DAEMON: postmaster\n", "L1 MAILER-DAEMON: L=postmaster\n" },
};

static void check(size_t i, const char *in, size_t len, const char *want)
{
	for (size_t step = 0; step <= 1; step++) {
		struct textbuf out = TEXTBUF_INIT;
		parse(in, len, step, &out);
		if (strcmp(textbuf_str(&out), want) != 0)
			fail_msg("case %zu (step %zu): got\n%s\nwant\n%s", i, step, textbuf_str(&out),
				 want);
		textbuf_free(&out);
	}
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* the NUL case has a NUL inside: its length is up to the last \n */
		size_t len = strlen(cases[i].in);
		if (strstr(cases[i].want, "NUL") != NULL)
			len = 12;
		check(i, cases[i].in, len, cases[i].want);
	}
}

static void test_long_lines(void **state)
{
	(void)state;
	struct textbuf in = TEXTBUF_INIT;
	char want[512];

	/* an overlong first line: that entry is dropped, the next one kept */
	textbuf_puts(&in, "a: b\nlong: ");
	for (int i = 0; i < ALIASES_LINE_MAX; i++)
		textbuf_putc(&in, 'x');
	textbuf_puts(&in, "\n  cont\nz: y\n");
	snprintf(want, sizeof(want), "E2 line longer than %d bytes\nL1 a: L=b\nL4 z: L=y\n",
		 ALIASES_LINE_MAX);
	check(100, in.data, in.len, want);

	/* an overlong continuation: its entry is dropped */
	textbuf_truncate(&in, 0);
	textbuf_puts(&in, "a: b,\n ");
	for (int i = 0; i < ALIASES_LINE_MAX; i++)
		textbuf_putc(&in, 'x');
	textbuf_puts(&in, "\nz: y\n");
	snprintf(want, sizeof(want),
		 "E1 alias entry dropped: a line of it is longer than %d bytes\nL3 z: L=y\n",
		 ALIASES_LINE_MAX);
	check(101, in.data, in.len, want);
	textbuf_free(&in);
}

static void test_entry_too_long(void **state)
{
	(void)state;
	struct textbuf in = TEXTBUF_INIT;
	textbuf_puts(&in, "big: a\n");
	for (int i = 0; i < ALIASES_ENTRY_MAX / 1000 + 1; i++) {
		textbuf_puts(&in, " ");
		for (int k = 0; k < 999; k++)
			textbuf_putc(&in, 'q');
		textbuf_puts(&in, "\n");
	}
	textbuf_puts(&in, "ok: fine\n");
	struct textbuf out = TEXTBUF_INIT;
	assert_int_equal(parse(in.data, in.len, 0, &out), 0);
	assert_string_equal(textbuf_str(&out),
			    "E1 alias entry longer than 65536 bytes\nL68 ok: L=fine\n");
	textbuf_free(&out);
	textbuf_free(&in);
}

static void test_too_many_targets(void **state)
{
	(void)state;
	struct textbuf in = TEXTBUF_INIT, out = TEXTBUF_INIT;
	textbuf_puts(&in, "many: t");
	for (int i = 0; i < ALIASES_TARGETS_MAX; i++)
		textbuf_puts(&in, ",t");
	textbuf_puts(&in, "\nok: x\n");
	assert_int_equal(parse(in.data, in.len, 0, &out), 0);
	assert_string_equal(textbuf_str(&out), "E1 alias many has too many targets\nL2 ok: L=x\n");
	textbuf_free(&out);
	textbuf_free(&in);
}

static int count_entry(const struct aliases_entry *e, void *ctx)
{
	(void)e;
	(*(size_t *)ctx)++;
	return 0;
}

static void test_entry_limit(void **state)
{
	(void)state;
	struct aliases_parser p;
	size_t n = 0;
	assert_int_equal(aliases_parser_init(&p, count_entry, NULL, &n), 0);
	int ret = 0;
	for (size_t i = 0; i <= ALIASES_ENTRIES_MAX + 1 && ret == 0; i++)
		ret = aliases_parser_feed(&p, "a: b\n", 5);
	if (ret == 0)
		ret = aliases_parser_finish(&p);
	assert_int_equal(ret, -1);
	assert_int_equal(n, ALIASES_ENTRIES_MAX);
	/* once stopped, it stays stopped */
	assert_int_equal(aliases_parser_feed(&p, "x: y\n", 5), -1);
	assert_int_equal(aliases_parser_finish(&p), -1);
	aliases_parser_free(&p);
}

static int stop_at_second(const struct aliases_entry *e, void *ctx)
{
	(void)ctx;
	return e->line == 2 ? -5 : 0;
}

static void test_callback_stops(void **state)
{
	(void)state;
	struct aliases_parser p;
	assert_int_equal(aliases_parser_init(&p, stop_at_second, NULL, NULL), 0);
	assert_int_equal(aliases_parser_feed(&p, "a: b\nc: d\ne: f\n", 15), -5);
	assert_int_equal(aliases_parser_finish(&p), -1);
	aliases_parser_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_entry_too_long),
		cmocka_unit_test(test_too_many_targets),
		cmocka_unit_test(test_entry_limit),
		cmocka_unit_test(test_callback_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
