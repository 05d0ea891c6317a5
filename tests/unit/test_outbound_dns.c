/* Nexthop parsing and the routes that need no DNS (node/outbound_dns.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/outbound_dns.h"

static void parse_ok(const char *in, const char *host, uint16_t port, bool mx)
{
	char h[256];
	uint16_t p = 0;
	bool m = !mx;
	assert_int_equal(outbound_nexthop_parse(in, 25, h, sizeof(h), &p, &m), 0);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_int_equal(m, mx);
}

static void test_nexthop_forms(void **state)
{
	(void)state;
	parse_ok("example.net", "example.net", 25, true);
	parse_ok("example.net:2525", "example.net", 2525, true);
	parse_ok("[mail.example.net]", "mail.example.net", 25, false);
	parse_ok("[mail.example.net]:587", "mail.example.net", 587, false);
	parse_ok("[192.0.2.1]", "192.0.2.1", 25, false);
	parse_ok("[IPv6:2001:db8::1]:26", "2001:db8::1", 26, false);
	parse_ok("[2001:db8::1]", "2001:db8::1", 25, false);
}

static void test_nexthop_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "", "[", "[]", "[host", "host:", "host:0", "host:65536", "host:12x", "[host]x",
	    "[host]:", "2001:db8::1", ":25",
	};
	char h[256];
	uint16_t p;
	bool m;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(outbound_nexthop_parse(bad[i], 25, h, sizeof(h), &p, &m), -1);
	char small[4];
	assert_int_equal(outbound_nexthop_parse("example.net", 25, small, sizeof(small), &p, &m),
			 -1);
}

static void test_literal_routes_need_no_dns(void **state)
{
	(void)state;
	struct outbound_route r;
	/* a resolver that does not exist: a literal never asks it */
	outbound_route_resolve("127.0.0.1:9", 1, "[192.0.2.7]:2525", 25, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.hosts[0].addr, "192.0.2.7");
	assert_int_equal(r.hosts[0].port, 2525);
	outbound_route_resolve("127.0.0.1:9", 1, "[IPv6:2001:db8::25]", 25, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	assert_string_equal(r.hosts[0].addr, "2001:db8::25");
	outbound_route_resolve("127.0.0.1:9", 1, "[bad", 25, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_PERM);
	assert_string_equal(r.status, "5.1.2");
	outbound_route_resolve("not a resolver", 1, "example.net", 25, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_TEMP);
	assert_string_equal(r.status, "4.4.3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nexthop_forms),
	    cmocka_unit_test(test_nexthop_refused),
	    cmocka_unit_test(test_literal_routes_need_no_dns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
