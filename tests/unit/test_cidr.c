/*
 * Unit tests for lib/cidr.c: parsing (table of accepted and refused
 * texts), matching at prefix boundaries, IPv4-mapped addresses, peers as
 * sockets name them, and DNSBL reverse names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/cidr.h"

static void test_parse_table(void **state)
{
	static const struct {
		const char *in;
		const char *want; /* formatted, or NULL: refused */
	} cases[] = {
	    {"127.0.0.0/8", "127.0.0.0/8"},
	    {"192.0.2.1", "192.0.2.1/32"},
	    {"0.0.0.0/0", "0.0.0.0/0"},
	    {"::1/128", "::1/128"},
	    {"::1", "::1/128"},
	    {"2001:db8::/32", "2001:db8::/32"},
	    {"::/0", "::/0"},
	    {"::ffff:192.0.2.7", "192.0.2.7/32"},
	    {"10.1.2.128/25", "10.1.2.128/25"},
	    {"192.0.2.1/24", NULL},   /* host bits */
	    {"2001:db8::1/32", NULL}, /* host bits */
	    {"192.0.2.0/33", NULL},
	    {"2001:db8::/129", NULL},
	    {"192.0.2.0/", NULL},
	    {"192.0.2.0/024", NULL},
	    {"192.0.2.0/+24", NULL},
	    {"192.0.2.0/24 ", NULL},
	    {" 192.0.2.0/24", NULL},
	    {"/24", NULL},
	    {"", NULL},
	    {"192.0.2", NULL},
	    {"256.0.0.0/8", NULL},
	    {"example.org", NULL},
	    {"::ffff:192.0.2.0/120", NULL},
	    {"192.0.2.0/99999999999999999999", NULL},
	    {"1111:2222:3333:4444:5555:6666:7777:8888:9999/128", NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr net;
		const char *error = NULL;
		char got[CIDR_TEXT_MAX];
		int ret = cidr_parse(cases[i].in, &net, &error);
		if (cases[i].want == NULL) {
			if (ret != -1 || error == NULL)
				fail_msg("case %zu \"%s\": accepted, want refused", i, cases[i].in);
			continue;
		}
		if (ret != 0)
			fail_msg("case %zu \"%s\": refused (%s)", i, cases[i].in, error);
		cidr_format(&net, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu \"%s\": got %s, want %s", i, cases[i].in, got,
				 cases[i].want);
	}
}

static void test_contains(void **state)
{
	static const struct {
		const char *net, *addr;
		bool want;
	} cases[] = {
	    {"127.0.0.0/8", "127.0.0.1", true},
	    {"127.0.0.0/8", "127.255.255.255", true},
	    {"127.0.0.0/8", "128.0.0.1", false},
	    {"10.1.2.128/25", "10.1.2.128", true},
	    {"10.1.2.128/25", "10.1.2.255", true},
	    {"10.1.2.128/25", "10.1.2.127", false},
	    {"192.0.2.7", "192.0.2.7", true},
	    {"192.0.2.7", "192.0.2.8", false},
	    {"0.0.0.0/0", "203.0.113.9", true},
	    {"0.0.0.0/0", "::1", false}, /* families never mix */
	    {"::/0", "192.0.2.1", false},
	    {"::1/128", "::1", true},
	    {"::1/128", "::2", false},
	    {"2001:db8::/33", "2001:db8:7fff::1", true},
	    {"2001:db8::/33", "2001:db8:8000::1", false},
	    {"192.0.2.0/24", "::ffff:192.0.2.9", true}, /* mapped: IPv4 */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr net, addr;
		const char *error = NULL;
		assert_int_equal(cidr_parse(cases[i].net, &net, &error), 0);
		assert_int_equal(cidr_addr_parse(cases[i].addr, &addr, &error), 0);
		if (cidr_contains(&net, &addr) != cases[i].want)
			fail_msg("case %zu: %s in %s: got %d, want %d", i, cases[i].addr,
				 cases[i].net, !cases[i].want, cases[i].want);
	}
}

static void test_list(void **state)
{
	static struct cidr_list list; /* large: not on the stack */
	struct cidr net, addr;
	const char *error = NULL;
	(void)state;

	memset(&list, 0, sizeof(list));
	assert_int_equal(cidr_addr_parse("192.0.2.1", &addr, &error), 0);
	assert_false(cidr_list_contains(&list, &addr));
	assert_int_equal(cidr_parse("198.51.100.0/24", &net, &error), 0);
	assert_int_equal(cidr_list_add(&list, &net), 0);
	assert_false(cidr_list_contains(&list, &addr));
	assert_int_equal(cidr_parse("192.0.2.0/30", &net, &error), 0);
	assert_int_equal(cidr_list_add(&list, &net), 0);
	assert_true(cidr_list_contains(&list, &addr));
	while (list.n < CIDR_LIST_MAX)
		assert_int_equal(cidr_list_add(&list, &net), 0);
	assert_int_equal(cidr_list_add(&list, &net), -1);
	assert_int_equal(list.n, CIDR_LIST_MAX);
}

static void test_peer_parse(void **state)
{
	static const struct {
		const char *peer;
		const char *want; /* NULL: refused */
	} cases[] = {
	    {"192.0.2.1:25", "192.0.2.1/32"},
	    {"[2001:db8::1]:587", "2001:db8::1/128"},
	    {"[::ffff:127.0.0.1]:4000", "127.0.0.1/32"},
	    {"192.0.2.1", NULL},
	    {"[2001:db8::1:25", NULL},
	    {"[]:25", NULL},
	    {":25", NULL},
	    {"unix:25", NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr a;
		char got[CIDR_TEXT_MAX];
		int ret = cidr_peer_parse(cases[i].peer, &a);
		if (cases[i].want == NULL) {
			if (ret == 0)
				fail_msg("case %zu \"%s\": accepted", i, cases[i].peer);
			continue;
		}
		if (ret != 0)
			fail_msg("case %zu \"%s\": refused", i, cases[i].peer);
		cidr_format(&a, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got %s, want %s", i, got, cases[i].want);
	}
}

static void test_client(void **state)
{
	static const struct {
		const char *addr;
		const char *want;
	} cases[] = {
	    {"192.0.2.1", "192.0.2.1/32"},
	    {"::ffff:192.0.2.1", "192.0.2.1/32"},
	    {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
	    {"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
	    {"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	    {"::1", "::/64"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr a, c;
		const char *error = NULL;
		char got[CIDR_TEXT_MAX];
		assert_int_equal(cidr_addr_parse(cases[i].addr, &a, &error), 0);
		cidr_client(&a, &c);
		cidr_format(&c, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu \"%s\": got %s, want %s", i, cases[i].addr, got,
				 cases[i].want);
		if (!cidr_contains(&c, &a))
			fail_msg("case %zu \"%s\": not in its own client network", i,
				 cases[i].addr);
	}
}

static void test_reverse_name(void **state)
{
	struct cidr a;
	const char *error = NULL;
	char out[64];
	(void)state;

	assert_int_equal(cidr_addr_parse("192.0.2.99", &a, &error), 0);
	assert_int_equal(cidr_reverse_name(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "99.2.0.192");
	assert_int_equal(cidr_reverse_name(&a, out, 15), -1);
	/* RFC 5782 §2.4's example */
	assert_int_equal(cidr_addr_parse("2001:db8:1:2:3:4:567:89ab", &a, &error), 0);
	assert_int_equal(cidr_reverse_name(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2");
	assert_int_equal(cidr_reverse_name(&a, out, 63), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),	 cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_list),	 cmocka_unit_test(test_peer_parse),
	    cmocka_unit_test(test_reverse_name), cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
