/*
 * Unit tests for lib/message_imap.c: BODYSTRUCTURE, BODY and ENVELOPE
 * compared byte for byte with responses derived by hand from RFC 3501
 * section 7.4.2 (sizes and line counts computed from the message text),
 * and the IMAP string quoting they rely on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lib/message_cache.h"
#include "lib/message_imap.h"
#include "lib/message_parser.h"

static const char simple_msg[] = "From: Alice <alice@example.com>\r\n"
				 "To: bob@example.org\r\n"
				 "Subject: Hello\r\n"
				 "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
				 "Message-ID: <a1@example.com>\r\n"
				 "\r\n"
				 "Line one\r\n"
				 "Line two\r\n";

static const char full_msg[] =
    "From: \"Doe, Jane\" <jane@example.com>\r\n"
    "Sender: secretary@example.com\r\n"
    "Reply-To: list@example.com\r\n"
    "To: A Group:Ed Jones <c@a.test>;, \"Q \\\"R\\\"\" <q@r.test>\r\n"
    "Cc: undisclosed-recipients:;\r\n"
    "Bcc: caf\xc3\xa9 <u@x.test>\r\n"
    "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
    "In-Reply-To: <prev@example.com>\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n"
    "Content-Language: en, fr\r\n"
    "\r\n"
    "--=_b\r\n"
    "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=C3=A9\r\n"
    "two\r\n"
    "--=_b\r\n"
    "Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.bin\r\n"
    "Content-Disposition: attachment; filename=\"a \\\"b\\\".bin\"; size=3\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-ID: <part2@example.com>\r\n"
    "Content-Description: binary thing\r\n"
    "Content-MD5: Q2hlY2s=\r\n"
    "Content-Location: a.bin\r\n"
    "\r\n"
    "AAAA\r\n"
    "--=_b\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: x@y.test\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "hi\r\n"
    "--=_b--\r\n";

#define INNER_ENV                                                                                  \
	"(NIL \"inner\" ((NIL NIL \"x\" \"y.test\")) ((NIL NIL \"x\" \"y.test\")) "                \
	"((NIL NIL \"x\" \"y.test\")) NIL NIL NIL NIL NIL)"
#define EMPTY_TEXT "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define NIL_ENV "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

static const struct {
	const char *name;
	const char *msg;
	const char *bodystructure, *body, *envelope;
} cases[] = {
    {"simple", simple_msg,
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2)",
     "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" "
     "((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) "
     "((\"Alice\" NIL \"alice\" \"example.com\")) ((NIL NIL \"bob\" \"example.org\")) "
     "NIL NIL NIL \"<a1@example.com>\")"},
    {"mixed, attachment, message/rfc822", full_msg,
     "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL "
     "\"quoted-printable\" 14 2 NIL NIL NIL NIL)"
     "(\"application\" \"octet-stream\" (\"name*\" \"utf-8''%E2%82%AC.bin\") "
     "\"<part2@example.com>\" \"binary thing\" \"base64\" 4 \"Q2hlY2s=\" "
     "(\"attachment\" (\"filename\" \"a \\\"b\\\".bin\" \"size\" \"3\")) NIL \"a.bin\")"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 36 " INNER_ENV " "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 1 NIL NIL NIL NIL) "
     "4 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"=_b\") NIL (\"en\" \"fr\") NIL)",
     "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL "
     "\"quoted-printable\" 14 2)"
     "(\"application\" \"octet-stream\" (\"name*\" \"utf-8''%E2%82%AC.bin\") "
     "\"<part2@example.com>\" \"binary thing\" \"base64\" 4)"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 36 " INNER_ENV " "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 1) 4) \"mixed\")",
     "(NIL \"=?utf-8?q?caf=C3=A9?=\" ((\"Doe, Jane\" NIL \"jane\" \"example.com\")) "
     "((NIL NIL \"secretary\" \"example.com\")) ((NIL NIL \"list\" \"example.com\")) "
     "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL NIL NIL)"
     "(\"Q \\\"R\\\"\" NIL \"q\" \"r.test\")) "
     "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
     "(({5}\r\ncaf\xc3\xa9 NIL \"u\" \"x.test\")) "
     "\"<prev@example.com>\" \"<m1@example.com>\")"},
    {"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\nxyz",
     "(" EMPTY_TEXT " \"mixed\" NIL NIL NIL NIL)", "(" EMPTY_TEXT " \"mixed\")", NIL_ENV},
    {"base64 message/rfc822",
     "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA",
     "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 4 " NIL_ENV " " EMPTY_TEXT
     " 1 NIL NIL NIL NIL)",
     "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 4 " NIL_ENV " " EMPTY_TEXT " 1)", NIL_ENV},
    {"empty message", "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)", NIL_ENV},
    {"empty sender and reply-to fall back to from",
     "From: a@b\r\nSender:\r\nReply-To: (nobody)\r\nSubject:\r\n\r\n",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
     "(NIL \"\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) "
     "NIL NIL NIL NIL NIL)"},
    {"8-bit parameter, disposition without parameters, language",
     "Content-Type: image/png; name=\"\xc3\xa9.png\"\r\nContent-Disposition: inline\r\n"
     "Content-Language: de\r\n\r\nPNG",
     "(\"image\" \"png\" (\"name\" {6}\r\n\xc3\xa9.png) NIL NIL \"7bit\" 3 NIL "
     "(\"inline\" NIL) (\"de\") NIL)",
     "(\"image\" \"png\" (\"name\" {6}\r\n\xc3\xa9.png) NIL NIL \"7bit\" 3)", NIL_ENV},
    {"multipart/digest",
     "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nb\r\n"
     "--d--\r\n",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 "
     "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 1 NIL NIL NIL NIL) "
     "3 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 "
     "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 1) 3) \"digest\")",
     NIL_ENV},
};

static void test_renderings(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct message_result *r;
		message_parse(cases[i].msg, strlen(cases[i].msg), &r);
		/* The same text from a cached copy. */
		struct textbuf cache = TEXTBUF_INIT;
		struct message_result *d;
		const char *error;
		message_cache_encode(r, &cache);
		assert_int_equal(message_cache_decode(cache.data, cache.len, &d, &error), 0);
		for (int pass = 0; pass < 2; pass++) {
			const struct message_result *x = pass == 0 ? r : d;
			struct textbuf bs = TEXTBUF_INIT, body = TEXTBUF_INIT, env = TEXTBUF_INIT;
			message_imap_bodystructure(x, &x->parts[0], true, &bs);
			message_imap_bodystructure(x, &x->parts[0], false, &body);
			message_imap_envelope(x->parts[0].envelope, &env);
			if (strcmp(textbuf_str(&bs), cases[i].bodystructure) != 0)
				fail_msg("%s: BODYSTRUCTURE\ngot  %s\nwant %s", cases[i].name,
					 textbuf_str(&bs), cases[i].bodystructure);
			if (strcmp(textbuf_str(&body), cases[i].body) != 0)
				fail_msg("%s: BODY\ngot  %s\nwant %s", cases[i].name,
					 textbuf_str(&body), cases[i].body);
			if (strcmp(textbuf_str(&env), cases[i].envelope) != 0)
				fail_msg("%s: ENVELOPE\ngot  %s\nwant %s", cases[i].name,
					 textbuf_str(&env), cases[i].envelope);
			textbuf_free(&bs);
			textbuf_free(&body);
			textbuf_free(&env);
		}
		message_result_free(&d);
		textbuf_free(&cache);
		message_result_free(&r);
	}
}

static void test_strings(void **state)
{
	static const struct {
		const char *input;
		const char *want;
	} strings[] = {
	    {NULL, "NIL"},
	    {"", "\"\""},
	    {"plain", "\"plain\""},
	    {"NIL", "\"NIL\""},
	    {"a\"b\\c", "\"a\\\"b\\\\c\""},
	    {"tab\there", "\"tab\there\""},
	    {"{3}", "\"{3}\""},
	    {"caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"},
	    {"a\r\nb", "{4}\r\na\r\nb"},
	    {"\x80", "{1}\r\n\x80"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		struct textbuf out = TEXTBUF_INIT;
		message_imap_append_nstring(&out, strings[i].input);
		if (strcmp(textbuf_str(&out), strings[i].want) != 0)
			fail_msg("'%s': got '%s' want '%s'",
				 strings[i].input ? strings[i].input : "NULL", textbuf_str(&out),
				 strings[i].want);
		textbuf_free(&out);
	}
	struct textbuf out = TEXTBUF_INIT;
	message_imap_envelope(NULL, &out);
	assert_string_equal(textbuf_str(&out), NIL_ENV);
	textbuf_free(&out);
}

/* Renderings of a sub-part use its own fields. */
static void test_subpart(void **state)
{
	struct message_result *r;
	const struct message_part *p;
	struct textbuf out = TEXTBUF_INIT;
	(void)state;
	message_parse(full_msg, sizeof(full_msg) - 1, &r);
	assert_int_equal(message_result_find_section(r, "3", &p, NULL), 1);
	message_imap_envelope(message_part_message(r, p)->envelope, &out);
	assert_string_equal(textbuf_str(&out), INNER_ENV);
	textbuf_truncate(&out, 0);
	assert_int_equal(message_result_find_section(r, "3.1", &p, NULL), 1);
	message_imap_bodystructure(r, p, false, &out);
	assert_string_equal(textbuf_str(&out),
			    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 1)");
	textbuf_free(&out);
	message_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_renderings),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_subpart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
