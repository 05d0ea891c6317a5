/*
 * Unit tests for the header-value parsers under the message parser:
 * lib/message_address.c (address lists, groups, comments, quoting),
 * lib/message_date.c, lib/rfc2047.c, lib/mime_params.c (RFC 2231),
 * lib/rfc822_header.c (unfolding, lookup) and lib/message_charset.c.
 * Table-driven; failures say "got X want Y".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <string.h>

#include "lib/message_address.h"
#include "lib/message_charset.h"
#include "lib/message_date.h"
#include "lib/mime_params.h"
#include "lib/rfc2047.h"
#include "lib/rfc822_header.h"

static void nstr(struct textbuf *out, const char *s)
{
	textbuf_puts(out, s == NULL ? "NIL" : s);
}

/* "name|adl|mailbox|host" per address, joined by ";". */
static void render_list(const struct message_address_list *l, struct textbuf *out)
{
	for (uint32_t i = 0; i < l->count; i++) {
		const struct message_address *a = &l->addrs[i];
		if (i > 0)
			textbuf_putc(out, ';');
		nstr(out, a->name);
		textbuf_putc(out, '|');
		nstr(out, a->adl);
		textbuf_putc(out, '|');
		nstr(out, a->mailbox);
		textbuf_putc(out, '|');
		nstr(out, a->host);
	}
}

static void test_address_lists(void **state)
{
	static const struct {
		const char *input;
		const char *want;
	} cases[] = {
	    {"", ""},
	    {"   ", ""},
	    {"Alice <alice@example.com>", "Alice|NIL|alice|example.com"},
	    {"\"Doe, John\" <john@x.y>", "Doe, John|NIL|john|x.y"},
	    {"\"Joe Q. Public\" <john.q.public@example.com>",
	     "Joe Q. Public|NIL|john.q.public|example.com"},
	    {"John Q. Public <jqp@x>", "John Q. Public|NIL|jqp|x"},
	    {"john.q.public@example.com (John Q. Public)",
	     "John Q. Public|NIL|john.q.public|example.com"},
	    {"Mary Smith <@relay1.example,@relay2.example:mary@x.test>",
	     "Mary Smith|@relay1.example,@relay2.example|mary|x.test"},
	    {"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	     "NIL|NIL|A Group|NIL;Ed Jones|NIL|c|a.test;NIL|NIL|joe|where.test;"
	     "John|NIL|jdoe|one.test;NIL|NIL|NIL|NIL"},
	    {"Undisclosed recipients:;", "NIL|NIL|Undisclosed recipients|NIL;NIL|NIL|NIL|NIL"},
	    {"Group: a@b", "NIL|NIL|Group|NIL;NIL|NIL|a|b;NIL|NIL|NIL|NIL"},
	    {"g1: a@b;, g2: c@d;", "NIL|NIL|g1|NIL;NIL|NIL|a|b;NIL|NIL|NIL|NIL;"
				   "NIL|NIL|g2|NIL;NIL|NIL|c|d;NIL|NIL|NIL|NIL"},
	    {"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	     "Pete|NIL|pete|silly.test"},
	    {"\"john doe\"@example.com", "NIL|NIL|john doe|example.com"},
	    {"\"a\\\"b\" <q@x>", "a\"b|NIL|q|x"},
	    {"undisclosed-recipients", "NIL|NIL|undisclosed-recipients|"},
	    {"<user>", "NIL|NIL|user|"},
	    {"<>", "NIL|NIL||"},
	    {"=?utf-8?q?J=C3=B6rg?= <j@x>", "=?utf-8?q?J=C3=B6rg?=|NIL|j|x"},
	    {"a@b, , ,c@d", "NIL|NIL|a|b;NIL|NIL|c|d"},
	    {"Bad <unterminated@x", "Bad|NIL|unterminated|x"},
	    {"\"unterminated quote <a@b>", "NIL|NIL|unterminated quote <a@b>|"},
	    {"a@[192.0.2.1]", "NIL|NIL|a|[192.0.2.1]"},
	    {"first . last @ example . com", "NIL|NIL|first.last|example.com"},
	    {"(Only Comment) <x@y>", "Only Comment|NIL|x|y"},
	    {"x@y (a)(b)", "b|NIL|x|y"},
	    {"caf\xc3\xa9 <u@h\xc3\xa9.example>", "caf\xc3\xa9|NIL|u|h\xc3\xa9.example"},
	    {"@host.only", "NIL|NIL||host.only"},
	    {">@<,;:", "NIL|NIL||"},
	    /* display names as written; junk after an address is not another */
	    {"J.R.R. Tolkien <jrr@x.test>", "J.R.R. Tolkien|NIL|jrr|x.test"},
	    {"John Q.Public <j@x.test>", "John Q.Public|NIL|j|x.test"},
	    {"John (the) Smith <j@x>", "John Smith|NIL|j|x"},
	    {"<a@b> Extra Junk, c@d", "NIL|NIL|a|b;NIL|NIL|c|d"},
	    {"john.doe@example.com <john.doe@example.com>", "NIL|NIL|john.doe|example.com"},
	    {"undisclosed recipients", "NIL|NIL|undisclosed|"},
	    {"G: <a@b> junk, c@d; e@f, g@h", "NIL|NIL|G|NIL;NIL|NIL|a|b;NIL|NIL|c|d;NIL|NIL|NIL|NIL;NIL|NIL|g|h"},
	    {": a@b;", "NIL|NIL|a|b"},
	    {"a:b:c@d;", "NIL|NIL|a|NIL;NIL|NIL|b|;NIL|NIL|NIL|NIL"}, /* no nested groups */
	    {"x@y\r\n\t(folded comment)", "folded comment|NIL|x|y"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_arena *arena = message_arena_create();
		struct message_address_list l;
		struct textbuf got = TEXTBUF_INIT;
		message_address_list_parse(arena, cases[i].input, strlen(cases[i].input), &l);
		render_list(&l, &got);
		if (strcmp(textbuf_str(&got), cases[i].want) != 0)
			fail_msg("'%s': got '%s' want '%s'", cases[i].input, textbuf_str(&got),
				 cases[i].want);
		textbuf_free(&got);
		message_arena_destroy(&arena);
		assert_null(arena);
	}
}

static void test_address_nul(void **state)
{
	static const char input[] = "N\0ame <a\0b@c>";
	struct message_arena *arena = message_arena_create();
	struct message_address_list l;
	(void)state;
	message_address_list_parse(arena, input, sizeof(input) - 1, &l);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.addrs[0].name, "N\x80"
					     "ame");
	assert_string_equal(l.addrs[0].mailbox, "a\x80"
						"b");
	message_arena_destroy(&arena);
}

static void test_dates(void **state)
{
	static const struct {
		const char *input;
		int ret;
		int64_t time;
		int32_t tz;
	} cases[] = {
	    {"Tue, 1 Jul 2003 10:52:37 +0200", 0, 1057049557, 120},
	    {"1 Jul 2003 10:52 -0000", 0, 1057056720, 0},
	    {"Tue, 1 Jul 2003 (c) 10:52:37 +0200 (CEST)", 0, 1057049557, 120},
	    {"Thu, 13 Feb 69 23:32:54 -0330", 0, -27723426, -210},
	    {"Fri, 21 Nov 1997 09:55:06 -0600", 0, 880127706, -360},
	    {"21 Nov 97 09:55:06 GMT", 0, 880106106, 0},
	    {"Mon, 7 Feb 1994 21:52:25 PST", 0, 760686745, -480},
	    {"Mon, 7 Feb 1994 21:52:25 -0800 (PST)", 0, 760686745, -480},
	    {"Sat, 29 Feb 2020 00:00:00 +0000", 0, 1582934400, 0},
	    {"1 Jan 2020 00:00:00", 0, 1577836800, 0},
	    {"1 January 2020 00:00:00 Z", 0, 1577836800, 0},
	    {"1-Jan-2020 00:00:00 +0000", 0, 1577836800, 0},
	    {"Wed, 1 Jan 2020 00:00:00 XYZ", 0, 1577836800, 0},
	    {"31 Dec 2049 23:59:60 +0000", 0, 2524608000, 0},
	    {"1 Jan 120 00:00:00 +0000", 0, 1577836800, 0},
	    {"Sun, 29 Feb 2021 00:00:00 +0000", -1, 0, 0},
	    {"32 Jan 2020 00:00", -1, 0, 0},
	    {"0 Jan 2020 00:00", -1, 0, 0},
	    {"1 Jan 2020 24:00", -1, 0, 0},
	    {"1 Jan 2020 10:60", -1, 0, 0},
	    {"1 Jan 2020 10:00:61", -1, 0, 0},
	    {"1 Jan 2020 10:00 +2400", -1, 0, 0},
	    {"1 Jan 2020 10:00 +0060", -1, 0, 0},
	    {"1 Jan 2020 10:00 +060", -1, 0, 0},
	    {"1 Foo 2020 00:00", -1, 0, 0},
	    {"1 Jan 1899 00:00", -1, 0, 0},
	    {"1 Jan 12345 00:00", -1, 0, 0},
	    {"1 Jan 2020", -1, 0, 0},
	    {"1 Jan 2020 10", -1, 0, 0},
	    {"garbage", -1, 0, 0},
	    {"", -1, 0, 0},
	    {"Mon Jan  1 10:00:00 2024", -1, 0, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = 0;
		int32_t tz = 0;
		int ret = message_date_parse(cases[i].input, strlen(cases[i].input), &t, &tz);
		if (ret != cases[i].ret)
			fail_msg("'%s': got %d want %d", cases[i].input, ret, cases[i].ret);
		if (ret == 0 && (t != cases[i].time || tz != cases[i].tz))
			fail_msg("'%s': got %" PRId64 " %+d want %" PRId64 " %+d", cases[i].input,
				 t, tz, cases[i].time, cases[i].tz);
	}
}

/* message_date_format: fixed points, then a round trip through the parser
 * over days before and after 1970, leap days and zones on both sides. */
static void test_date_format(void **state)
{
	static const struct {
		int64_t when;
		int32_t tz;
		const char *want;
	} cases[] = {
	    {0, 0, "Thu, 1 Jan 1970 00:00:00 +0000"},
	    {1696327200, 120, "Tue, 3 Oct 2023 12:00:00 +0200"},
	    {1704067200, -300, "Sun, 31 Dec 2023 19:00:00 -0500"},
	    {951782400, 0, "Tue, 29 Feb 2000 00:00:00 +0000"},
	    {-1, 0, "Wed, 31 Dec 1969 23:59:59 +0000"},
	    {-2208988800, 0, "Mon, 1 Jan 1900 00:00:00 +0000"},
	    {253402300799, 0, "Fri, 31 Dec 9999 23:59:59 +0000"},
	    {1704067200, 23 * 60 + 59, "Mon, 1 Jan 2024 23:59:00 +2359"},
	};
	(void)state;
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(message_date_format(cases[i].when, cases[i].tz, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].want);
	}
	assert_int_equal(message_date_format(-2208988801, 0, out, sizeof(out)), -1);
	assert_int_equal(message_date_format(253402300800, 0, out, sizeof(out)), -1);
	assert_int_equal(message_date_format(0, 24 * 60, out, sizeof(out)), -1);
	assert_int_equal(message_date_format(0, 0, out, 10), -1);
	for (int64_t t = -2208988800 + 86400; t < 10000000000; t += 86400 * 37 + 3701) {
		for (int32_t tz = -720; tz <= 840; tz += 345) {
			int64_t back;
			int32_t back_tz;
			assert_int_equal(message_date_format(t, tz, out, sizeof(out)), 0);
			assert_int_equal(message_date_parse(out, strlen(out), &back, &back_tz), 0);
			if (back != t || back_tz != tz)
				fail_msg("%" PRId64 " %+d -> '%s' -> %" PRId64 " %+d", t, tz, out, back, back_tz);
		}
	}
}

static void test_rfc2047(void **state)
{
	static const struct {
		const char *input;
		const char *want;
	} cases[] = {
	    {"plain text", "plain text"},
	    {"=?utf-8?q?caf=C3=A9?= test", "caf\xc3\xa9 test"},
	    {"=?UTF-8?Q?caf=c3=a9?=", "caf\xc3\xa9"},
	    {"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"},
	    {"=?ISO-8859-1?Q?a?=\r\n =?ISO-8859-1?Q?b?=", "ab"},
	    {"=?utf-8?b?w6k=?=", "\xc3\xa9"},
	    {"=?utf-8?b?ww==?= =?utf-8?b?qQ==?=", "\xc3\xa9"},
	    {"=?utf-8?b?ww==?= =?iso-8859-1?q?x?=", "\xef\xbf\xbdx"},
	    {"a =?utf-8?q?x?= b", "a x b"},
	    {"=?utf-8?q?x?=, =?utf-8?q?y?=", "x, y"},
	    {"=?utf-8*en?q?x?=", "x"},
	    {"=?iso-8859-1?q?=E9t=E9?=", "\xc3\xa9t\xc3\xa9"},
	    {"=?iso-8859-15?q?=A4?=", "\xe2\x82\xac"},
	    {"=?windows-1252?q?=80=81?=", "\xe2\x82\xac\xef\xbf\xbd"},
	    {"=?us-ascii?q?=FF?=", "\xef\xbf\xbd"},
	    {"=?utf-8?q?a_b?=", "a b"},
	    {"=?utf-8?q?=ZZ=4?=", "=ZZ=4"},
	    {"=?koi8-r?b?abc?=", "=?koi8-r?b?abc?="},
	    {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
	    {"=?utf-8?q?abc", "=?utf-8?q?abc"},
	    {"=?utf-8?q?a b?=", "=?utf-8?q?a b?="},
	    {"=??q?x?=", "=??q?x?="},
	    {"=?", "=?"},
	    {"x =?utf-8?q?a?= =?bad", "x a =?bad"},
	    {"=?utf-8?q?a?= =?koi8-r?q?b?=", "a =?koi8-r?q?b?="},
	    {"=?utf-8?b?/w==?=", "\xef\xbf\xbd"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf out = TEXTBUF_INIT;
		rfc2047_decode(cases[i].input, strlen(cases[i].input), &out);
		if (strcmp(textbuf_str(&out), cases[i].want) != 0)
			fail_msg("'%s': got '%s' want '%s'", cases[i].input, textbuf_str(&out),
				 cases[i].want);
		textbuf_free(&out);
	}
}

/* "name=value(charset)" per parameter, joined by ";". */
static void render_params(const struct message_param *p, uint32_t n, struct textbuf *out)
{
	for (uint32_t i = 0; i < n; i++) {
		textbuf_printf(out, "%s%s=%s", i ? ";" : "", p[i].name, p[i].value);
		if (p[i].charset != NULL)
			textbuf_printf(out, "(%s)", p[i].charset);
	}
}

static void test_rfc2231(void **state)
{
	static const struct {
		const char *input;
		int ret;
		const char *want; /* "type/subtype|params" */
	} cases[] = {
	    {"application/x; name*=utf-8''%E2%82%AC.txt", 0,
	     "application/x|name=\xe2\x82\xac.txt(utf-8)"},
	    {"application/x; name*=iso-8859-1'de'%E9", 0, "application/x|name=\xc3\xa9(utf-8)"},
	    {"application/x; name*=koi8-r''%C1%C2", 0, "application/x|name=\xc1\xc2(koi8-r)"},
	    {"application/x; name*=KOI8-R''a", 0, "application/x|name=a(koi8-r)"},
	    {"application/x; name*=''plain%20space", 0, "application/x|name=plain space"},
	    {"application/x; name*=no-quotes%41", 0, "application/x|name=no-quotesA"},
	    {"application/x; name*0*=utf-8''%E2%82; name*1*=%AC; name*2=\".txt\"", 0,
	     "application/x|name=\xe2\x82\xac.txt(utf-8)"},
	    {"application/x; name*0=\"a b\"; name*1=\" c\"", 0, "application/x|name=a b c"},
	    {"application/x; name*2=c; name*0=a; name*1=b", 0, "application/x|name=abc"},
	    {"application/x; name*0=a; name*00=b; name*01=c", 0,
	     "application/x|name=a;name*00=b;name*01=c"},
	    {"application/x; name=\"old\"; name*=utf-8''new", 0, "application/x|name=new(utf-8)"},
	    {"application/x; name*=utf-8''new; name=\"old\"", 0, "application/x|name=new(utf-8)"},
	    {"application/x; name=first; name=second", 0, "application/x|name=first"},
	    {"application/x; NAME=Upper", 0, "application/x|name=Upper"},
	    {"application/x; name*=utf-8''%00", 0, "application/x|name=\xef\xbf\xbd(utf-8)"},
	    {"application/x; name*=utf-8''%zz%4", 0, "application/x|name=%zz%4(utf-8)"},
	    {"application/x; name*1000=x; name**=y; name*a=z", 0,
	     "application/x|name*1000=x;name**=y;name*a=z"},
	    {"application/x; name=\"=?utf-8?q?encoded?=\"", 0,
	     "application/x|name==?utf-8?q?encoded?="},
	    {"x/y;a=1;b=2;c=3", 0, "x/y|a=1;b=2;c=3"},
	    {"  TEXT / HTML  ; Charset = \"UTF-8\"", 0, "text/html|charset=UTF-8"},
	    {"text/", -1, NULL},
	    {"/plain", -1, NULL},
	    {"text plain", -1, NULL},
	    {"te<xt/plain", -1, NULL},
	    {"", -1, NULL},
	    {"text/pl\xc3\xa4in", 0, "text/pl|"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_arena *arena = message_arena_create();
		const char *type = NULL, *subtype = NULL;
		struct message_param *params = NULL;
		uint32_t n = 0;
		int ret = mime_content_type_parse(arena, cases[i].input, strlen(cases[i].input),
						  &type, &subtype, &params, &n);
		if (ret != cases[i].ret)
			fail_msg("'%s': got %d want %d", cases[i].input, ret, cases[i].ret);
		if (ret == 0) {
			struct textbuf got = TEXTBUF_INIT;
			textbuf_printf(&got, "%s/%s|", type, subtype);
			render_params(params, n, &got);
			if (strcmp(textbuf_str(&got), cases[i].want) != 0)
				fail_msg("'%s': got '%s' want '%s'", cases[i].input,
					 textbuf_str(&got), cases[i].want);
			textbuf_free(&got);
		}
		message_arena_destroy(&arena);
	}
}

static void test_params_limit(void **state)
{
	struct textbuf in = TEXTBUF_INIT;
	struct message_arena *arena = message_arena_create();
	const char *type, *subtype;
	struct message_param *params;
	uint32_t n;
	(void)state;
	textbuf_puts(&in, "a/b");
	for (int i = 0; i < 500; i++)
		textbuf_printf(&in, "; p%d=%d", i, i);
	assert_int_equal(
	    mime_content_type_parse(arena, in.data, in.len, &type, &subtype, &params, &n), 0);
	assert_int_equal(n, MESSAGE_PARAMS_MAX);
	assert_string_equal(params[MESSAGE_PARAMS_MAX - 1].name, "p63");
	message_arena_destroy(&arena);
	textbuf_free(&in);
}

static void test_other_mime_fields(void **state)
{
	static const struct {
		const char *input;
		const char *token, *language, *disposition;
	} cases[] = {
	    {"base64", "base64", "base64", "base64"},
	    {" (c) Quoted-Printable (qp)", "quoted-printable", "Quoted-Printable",
	     "quoted-printable"},
	    {"en, fr-CA (french)", "en", "en,fr-CA", "en"},
	    {"attachment; filename=x", "attachment", "attachment,filename,x", "attachment"},
	    {"", NULL, NULL, NULL},
	    {"(only a comment)", NULL, NULL, NULL},
	    {",,;", NULL, NULL, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_arena *arena = message_arena_create();
		size_t len = strlen(cases[i].input);
		const char *tok = mime_token_parse(arena, cases[i].input, len);
		const char *lang = mime_language_parse(arena, cases[i].input, len);
		const char *disp = NULL;
		struct message_param *dp;
		uint32_t dn;
		if (mime_disposition_parse(arena, cases[i].input, len, &disp, &dp, &dn) < 0)
			disp = NULL;
#define CHECK(got, want)                                                                           \
	if (!((got) == NULL ? (want) == NULL : (want) != NULL && strcmp(got, want) == 0))          \
		fail_msg("'%s': %s got '%s' want '%s'", cases[i].input, #got,                      \
			 (got) ? (got) : "NULL", (want) ? (want) : "NULL");
		CHECK(tok, cases[i].token);
		CHECK(lang, cases[i].language);
		CHECK(disp, cases[i].disposition);
#undef CHECK
		message_arena_destroy(&arena);
	}
	struct textbuf enc = TEXTBUF_INIT;
	mime_param_encode_2231("utf-8", "\xe2\x82\xac a.txt", &enc);
	assert_string_equal(textbuf_str(&enc), "utf-8''%E2%82%AC%20a.txt");
	textbuf_free(&enc);
}

static void test_unfold_and_lookup(void **state)
{
	static const struct {
		const char *input;
		const char *want;
	} unfold[] = {
	    {"  value  ", "value"}, {" a\r\n b\r\n", "a b"}, {" a\n\tb\n", "a\tb"}, {"a\rb", "a b"},
	    {"\r\n", ""},	    {"a \r\n ", "a"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(unfold) / sizeof(unfold[0]); i++) {
		struct textbuf out = TEXTBUF_INIT;
		rfc822_unfold(unfold[i].input, strlen(unfold[i].input), &out);
		if (strcmp(textbuf_str(&out), unfold[i].want) != 0)
			fail_msg("unfold '%s': got '%s' want '%s'", unfold[i].input,
				 textbuf_str(&out), unfold[i].want);
		textbuf_free(&out);
	}

	static const char header[] = "Received: a\r\n  b\r\nSubject: one\r\n"
				     " continued\r\nsubject : two\r\nbroken line\r\n"
				     "X-Last: z\r\n\r\nBody: not a field\r\n";
	static const struct {
		const char *name;
		uint32_t index;
		int found;
		const char *want;
	} lookups[] = {
	    {"SUBJECT", 0, 1, "one continued"}, {"subject", 1, 1, "two"}, {"subject", 2, 0, NULL},
	    {"received", 0, 1, "a  b"},		{"x-last", 0, 1, "z"},	  {"body", 0, 0, NULL},
	    {"broken line", 0, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		struct textbuf out = TEXTBUF_INIT;
		int ret = rfc822_header_find(header, sizeof(header) - 1, lookups[i].name,
					     lookups[i].index, &out);
		if (ret != lookups[i].found)
			fail_msg("find %s[%u]: got %d want %d", lookups[i].name, lookups[i].index,
				 ret, lookups[i].found);
		if (ret == 1 && strcmp(textbuf_str(&out), lookups[i].want) != 0)
			fail_msg("find %s[%u]: got '%s' want '%s'", lookups[i].name,
				 lookups[i].index, textbuf_str(&out), lookups[i].want);
		textbuf_free(&out);
	}
}

static void test_charset(void **state)
{
	static const struct {
		const char *input;
		const char *want;
		bool valid;
	} cases[] = {
	    {"ascii", "ascii", true},
	    {"caf\xc3\xa9", "caf\xc3\xa9", true},
	    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", true},
	    {"\xc3", "\xef\xbf\xbd", false},
	    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", false},
	    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", false},
	    {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", false},
	    {"\xff", "\xef\xbf\xbd", false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf out = TEXTBUF_INIT;
		size_t len = strlen(cases[i].input);
		message_charset_utf8_clean(cases[i].input, len, &out);
		if (strcmp(textbuf_str(&out), cases[i].want) != 0)
			fail_msg("clean case %zu: got '%s' want '%s'", i, textbuf_str(&out),
				 cases[i].want);
		if (message_charset_utf8_valid(cases[i].input, len) != cases[i].valid)
			fail_msg("valid case %zu: got %d want %d", i, !cases[i].valid,
				 cases[i].valid);
		textbuf_free(&out);
	}
	struct textbuf out = TEXTBUF_INIT;
	assert_int_equal(message_charset_to_utf8("big5", 4, "x", 1, &out), -1);
	assert_int_equal(out.len, 0);
	assert_int_equal(message_charset_to_utf8("Latin1", 6, "\xe9\0", 2, &out), 0);
	assert_string_equal(textbuf_str(&out), "\xc3\xa9\xef\xbf\xbd");
	textbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_address_lists),
	    cmocka_unit_test(test_address_nul),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_date_format),
	    cmocka_unit_test(test_rfc2047),
	    cmocka_unit_test(test_rfc2231),
	    cmocka_unit_test(test_params_limit),
	    cmocka_unit_test(test_other_mime_fields),
	    cmocka_unit_test(test_unfold_and_lookup),
	    cmocka_unit_test(test_charset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
