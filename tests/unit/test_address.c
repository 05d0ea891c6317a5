/*
 * Unit tests for lib/address.c: address and domain grammar, normalisation
 * and formatting, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/address.h"

#define L64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LABEL63 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
/* 4 labels of 63 + 3 dots = 255 (too long); 3 * 63 + 61 + 3 dots = 253 (the limit) */
#define DOMAIN_255 LABEL63 "." LABEL63 "." LABEL63 "." LABEL63
#define DOMAIN_253                                                                                 \
	LABEL63 "." LABEL63 "." LABEL63 "."                                                        \
		"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static void test_parse_valid(void **state)
{
	static const struct {
		const char *input;
		bool catchall;
		const char *local, *domain;
	} cases[] = {
	    {"user@example.com", false, "user", "example.com"},
	    {"User@Example.COM", false, "user", "example.com"},
	    {"  <Bob.Smith@Mail.Example.org>\t", false, "bob.smith", "mail.example.org"},
	    {"<a@b.c>", false, "a", "b.c"},
	    {"first.last+tag@x-y.example", false, "first.last+tag", "x-y.example"},
	    {"o'hara@example.com", false, "o'hara", "example.com"},
	    {"#$&'*+-/=?^_`{|}~@example.com", false, "#$&'*+-/=?^_`{|}~", "example.com"},
	    {"user@localhost", false, "user", "localhost"},
	    {"u@1.example", false, "u", "1.example"},
	    {"u@a1", false, "u", "a1"},
	    {L64 "@example.com", false, L64, "example.com"},
	    {"u@" LABEL63 ".com", false, "u", LABEL63 ".com"},
	    {"u@" DOMAIN_253, false, "u", DOMAIN_253},
	    {"@Example.com", true, "", "example.com"},
	    {"<@example.com>", true, "", "example.com"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct address a;
		const char *error = NULL;
		int ret = address_parse(cases[i].input, cases[i].catchall, &a, &error);
		if (ret != 0)
			fail_msg("'%s': got %d (%s) want 0", cases[i].input, ret, error);
		if (strcmp(a.local, cases[i].local) != 0 || strcmp(a.domain, cases[i].domain) != 0)
			fail_msg("'%s': got '%s'@'%s' want '%s'@'%s'", cases[i].input, a.local,
				 a.domain, cases[i].local, cases[i].domain);
	}
}

static void test_parse_invalid(void **state)
{
	static const struct {
		const char *input;
		bool catchall;
		const char *want_error; /* substring of the explanation */
	} cases[] = {
	    {"", false, "empty address"},
	    {"   ", false, "empty address"},
	    {"<>", false, "empty address"},
	    {"user", false, "missing '@'"},
	    {"user@", false, "empty domain"},
	    {"@example.com", false, "empty local part"},
	    {"a@b@example.com", false, "more than one '@'"},
	    {"a@@example.com", false, "more than one '@'"},
	    {"\"quoted\"@example.com", false, "quoted"},
	    {"quo\"ted@example.com", false, "quoted"},
	    {"back\\slash@example.com", false, "quoted"},
	    {"@relay.example:user@example.com", false, "source routes"},
	    {"<@a.example,@b.example:user@example.com>", true, "source routes"},
	    {"user%other@example.com", false, "routing"},
	    {"host!user@example.com", false, "routing"},
	    {"user@[192.0.2.1]", false, "address literals"},
	    {"user@1.2.3.4", false, "numeric top-level"},
	    {".user@example.com", false, "misplaced dot"},
	    {"user.@example.com", false, "misplaced dot"},
	    {"us..er@example.com", false, "misplaced dot"},
	    {"a b@example.com", false, "invalid character in local"},
	    {"a,b@example.com", false, "invalid character in local"},
	    {"caf\xc3\xa9@example.com", false, "invalid character in local"},
	    {"a\tb@example.com", false, "invalid character in local"},
	    {L64 "a@example.com", false, "longer than 64"},
	    {"u@-example.com", false, "starts with a hyphen"},
	    {"u@example-.com", false, "ends with a hyphen"},
	    {"u@example.com-", false, "ends with a hyphen"},
	    {"u@example..com", false, "empty label"},
	    {"u@.example.com", false, "empty label"},
	    {"u@example.com.", false, "ends with a dot"},
	    {"u@exa_mple.com", false, "invalid character in domain"},
	    {"u@exa mple.com", false, "invalid character in domain"},
	    {"u@" LABEL63 "b.com", false, "longer than 63"},
	    {"u@" DOMAIN_255, false, "longer than 253"},
	    {"<user@example.com", false, "unbalanced"},
	    {"user@example.com>", false, "unbalanced"},
	    {"<<user@example.com>>", false, "invalid character in local"},
	    {"< user@example.com>", false, "invalid character in local"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct address a;
		const char *error = NULL;
		int ret = address_parse(cases[i].input, cases[i].catchall, &a, &error);
		if (ret != -1)
			fail_msg("'%s': got %d ('%s'@'%s') want -1", cases[i].input, ret, a.local,
				 a.domain);
		if (error == NULL || strstr(error, cases[i].want_error) == NULL)
			fail_msg("'%s': got error '%s' want one containing '%s'", cases[i].input,
				 error ? error : "(null)", cases[i].want_error);
		if (a.local[0] != '\0' || a.domain[0] != '\0')
			fail_msg("'%s': output not cleared on error", cases[i].input);
	}
	struct address a;
	assert_int_equal(address_parse(NULL, false, &a, NULL), -1);
}

static void test_domain_normalize(void **state)
{
	static const struct {
		const char *input;
		size_t out_size;
		int want;
		const char *want_out;
	} cases[] = {
	    {"Example.COM", 254, 0, "example.com"},
	    {"  mail.example.org \n", 254, 0, "mail.example.org"},
	    {"localhost", 254, 0, "localhost"},
	    {"example.com", 12, 0, "example.com"},
	    {"example.com", 11, -1, ""},
	    {"", 254, -1, ""},
	    {"[10.0.0.1]", 254, -1, ""},
	    {"a@example.com", 254, -1, ""},
	    {"example..com", 254, -1, ""},
	    {"-x.com", 254, -1, ""},
	    {"10.0.0.1", 254, -1, ""},
	    {DOMAIN_255, 300, -1, ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[300];
		const char *error = NULL;
		int ret = domain_normalize(cases[i].input, out, cases[i].out_size, &error);
		if (ret != cases[i].want)
			fail_msg("'%s': got %d (%s) want %d", cases[i].input, ret,
				 error ? error : "", cases[i].want);
		if (strcmp(out, cases[i].want_out) != 0)
			fail_msg("'%s': got '%s' want '%s'", cases[i].input, out,
				 cases[i].want_out);
	}
}

static void test_format(void **state)
{
	static const struct {
		const char *local, *domain;
		size_t size;
		int want;
		const char *want_out;
	} cases[] = {
	    {"user", "example.com", 64, 0, "user@example.com"},
	    {"", "example.com", 64, 0, "@example.com"},
	    {"user", "example.com", 17, 0, "user@example.com"},
	    {"user", "example.com", 16, -1, NULL},
	    {"user", "example.com", 0, -1, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct address a;
		char out[64] = "";
		strcpy(a.local, cases[i].local);
		strcpy(a.domain, cases[i].domain);
		int ret = address_format(&a, out, cases[i].size);
		if (ret != cases[i].want)
			fail_msg("%s@%s size %zu: got %d want %d", cases[i].local, cases[i].domain,
				 cases[i].size, ret, cases[i].want);
		if (cases[i].want_out != NULL && strcmp(out, cases[i].want_out) != 0)
			fail_msg("got '%s' want '%s'", out, cases[i].want_out);
	}
}

/* Parse, format, parse again: the normalised form is a fixed point. */
static void test_roundtrip(void **state)
{
	static const char *const inputs[] = {"<Some.One@Example.ORG>", "@Catch.All", "x@y.z"};
	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct address a, b;
		char text[330];
		assert_int_equal(address_parse(inputs[i], true, &a, NULL), 0);
		assert_int_equal(address_format(&a, text, sizeof(text)), 0);
		assert_int_equal(address_parse(text, true, &b, NULL), 0);
		if (strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0)
			fail_msg("'%s': not a fixed point ('%s')", inputs[i], text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),	     cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_domain_normalize), cmocka_unit_test(test_format),
	    cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
