/* Nexthop parsing, the routes that need no DNS, and this node left out of
 * its own routes (node/outbound_dns.c, node/outbound_self.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/outbound_dns.h"
#include "node/outbound_self.h"

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
	outbound_route_resolve("127.0.0.1:9", 1, "[192.0.2.7]:2525", 25, NULL, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.hosts[0].addr, "192.0.2.7");
	assert_int_equal(r.hosts[0].port, 2525);
	outbound_route_resolve("127.0.0.1:9", 1, "[IPv6:2001:db8::25]", 25, NULL, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	assert_string_equal(r.hosts[0].addr, "2001:db8::25");
	outbound_route_resolve("127.0.0.1:9", 1, "[bad", 25, NULL, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_PERM);
	assert_string_equal(r.status, "5.1.2");
	outbound_route_resolve("not a resolver", 1, "example.net", 25, NULL, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_TEMP);
	assert_string_equal(r.status, "4.4.3");
}

static struct outbound_self self_fixture(void)
{
	struct outbound_self self = {.hostname = "mx.example.net"};
	assert_int_equal(outbound_self_add(&self, "127.0.0.1", 2525), 0);
	assert_int_equal(outbound_self_add(&self, "0.0.0.0", 25), 0);
	assert_int_equal(outbound_self_add(&self, "::", 587), 0);
	assert_int_equal(outbound_self_add(&self, "2001:db8::7", 2525), 0);
	return self;
}

static void test_self_recognised(void **state)
{
	(void)state;
	struct outbound_self self = self_fixture();
	static const struct {
		const char *addr;
		uint16_t port;
		int want;
	} cases[] = {
	    {"127.0.0.1", 2525, 1},
	    {"127.0.0.1", 2526, 0}, /* another node on the same address */
	    {"127.0.0.2", 2525, 0}, /* bound to 127.0.0.1 only */
	    {"127.0.0.9", 25, 1},   /* the wildcard: any loopback address */
	    {"0.0.0.0", 25, 1},
	    {"192.0.2.1", 25, 0},   /* not this machine's */
	    {"::1", 587, 1},
	    {"127.0.0.1", 587, 0},  /* "::" is bound IPv6-only */
	    {"2001:db8:0::7", 2525, 1},
	    {"2001:db8::8", 2525, 0},
	    {"mx.example.net", 25, 0}, /* not an address */
	};
	struct ifaddrs *ifs = NULL;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = outbound_self_has_addr(&self, cases[i].addr, cases[i].port, &ifs);
		if (got != cases[i].want)
			fail_msg("%s:%u: got %d, want %d", cases[i].addr, cases[i].port, got,
				 cases[i].want);
	}
	if (ifs != NULL)
		freeifaddrs(ifs);
	assert_int_equal(outbound_self_has_name(&self, "MX.Example.NET."), 1);
	assert_int_equal(outbound_self_has_name(&self, "example.net"), 0);
	assert_int_equal(outbound_self_has_name(&self, "mx.example.net.org"), 0);
	struct outbound_self nameless = {0};
	assert_int_equal(outbound_self_has_name(&nameless, ""), 0);
	assert_int_equal(outbound_self_add(&nameless, "localhost", 25), -1);
	for (unsigned i = 0; i < OUTBOUND_SELF_MAX; i++)
		assert_int_equal(outbound_self_add(&nameless, "127.0.0.1", (uint16_t)(i + 1)), 0);
	assert_int_equal(outbound_self_add(&nameless, "127.0.0.1", 99), -1);
}

struct drop_case {
	const char *what;
	unsigned best_pref;
	struct {
		const char *name, *addr;
		uint16_t port;
		unsigned pref;
		bool by_mx;
	} hosts[4];
	enum outbound_dns_result want_result;
	const char *want_status;
	const char *want_hosts; /* names kept, space-separated */
};

static void test_route_drops_self(void **state)
{
	(void)state;
	struct outbound_self self = self_fixture();
	static const struct drop_case cases[] = {
	    {"backup MX: the primary stays, we and worse go", 10,
	     {{"mx1", "192.0.2.1", 2525, 10, true},
	      {"mx2", "127.0.0.1", 2525, 20, true},
	      {"mx3", "192.0.2.3", 2525, 30, true}},
	     OUTBOUND_DNS_OK, "", "mx1"},
	    {"best MX is us", 10,
	     {{"mx1", "127.0.0.1", 2525, 10, true}, {"mx2", "192.0.2.2", 2525, 20, true}},
	     OUTBOUND_DNS_PERM, "5.4.6", ""},
	    {"equal preference goes with us", 10,
	     {{"a", "192.0.2.1", 2525, 10, true},
	      {"b", "127.0.0.1", 2525, 10, true},
	      {"c", "192.0.2.3", 2525, 20, true}},
	     OUTBOUND_DNS_PERM, "5.4.6", ""},
	    {"a better MX without an address: wait", 10,
	     {{"mx2", "127.0.0.1", 2525, 20, true}, {"mx3", "192.0.2.3", 2525, 30, true}},
	     OUTBOUND_DNS_TEMP, "4.4.4", ""},
	    {"our name with another address", 10,
	     {{"mx0", "192.0.2.1", 25, 5, true}, {"mx.example.net", "192.0.2.9", 25, 10, true}},
	     OUTBOUND_DNS_OK, "", "mx0"},
	    {"our name in a [host] nexthop is only a name", 0,
	     {{"mx.example.net", "192.0.2.9", 25, 0, false}},
	     OUTBOUND_DNS_OK, "", "mx.example.net"},
	    {"another node on our address", 10,
	     {{"mx1", "127.0.0.1", 2526, 10, true}, {"mx2", "192.0.2.2", 2526, 20, true}},
	     OUTBOUND_DNS_OK, "", "mx1 mx2"},
	    {"two of our addresses: the better one counts", 10,
	     {{"mx1", "192.0.2.1", 2525, 10, true},
	      {"mx2", "2001:db8::7", 2525, 20, true},
	      {"mx3", "127.0.0.1", 2525, 30, true}},
	     OUTBOUND_DNS_OK, "", "mx1"},
	    {"the implicit MX is us", 0,
	     {{"example.org", "127.0.0.5", 25, 0, true}},
	     OUTBOUND_DNS_PERM, "5.4.6", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct drop_case *c = &cases[i];
		struct outbound_route r = {.result = OUTBOUND_DNS_OK};
		for (size_t j = 0; j < 4 && c->hosts[j].name != NULL; j++) {
			struct outbound_host *h = &r.hosts[r.n++];
			snprintf(h->name, sizeof(h->name), "%s", c->hosts[j].name);
			snprintf(h->addr, sizeof(h->addr), "%s", c->hosts[j].addr);
			h->port = c->hosts[j].port;
			h->pref = c->hosts[j].pref;
			h->by_mx = c->hosts[j].by_mx;
		}
		outbound_route_drop_self(&r, &self, "example.org", c->best_pref);
		char kept[256] = "";
		for (size_t j = 0; j < r.n; j++)
			snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), "%s%s",
				 j > 0 ? " " : "", r.hosts[j].name);
		if (r.result != c->want_result || strcmp(r.status, c->want_status) != 0 ||
		    strcmp(kept, c->want_hosts) != 0)
			fail_msg("%s: got result %d status '%s' hosts '%s', want %d '%s' '%s'",
				 c->what, r.result, r.status, kept, c->want_result, c->want_status,
				 c->want_hosts);
	}
	struct outbound_route r = {.result = OUTBOUND_DNS_OK, .n = 1};
	snprintf(r.hosts[0].addr, sizeof(r.hosts[0].addr), "127.0.0.1");
	r.hosts[0].port = 2525;
	outbound_route_drop_self(&r, &self, "example.org", 0);
	assert_string_equal(r.reason, "mail for example.org loops back to myself");
}

static void test_literal_route_to_self(void **state)
{
	(void)state;
	struct outbound_self self = self_fixture(), none = {0};
	struct outbound_route r;
	outbound_route_resolve("127.0.0.1:9", 1, "[127.0.0.1]:2525", 25, &self, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_PERM);
	assert_string_equal(r.status, "5.4.6");
	assert_string_equal(r.reason, "mail for 127.0.0.1 loops back to myself");
	/* another node on the same address, or a content filter */
	outbound_route_resolve("127.0.0.1:9", 1, "[127.0.0.1]:10025", 25, &self, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	assert_int_equal(r.n, 1);
	outbound_route_resolve("127.0.0.1:9", 1, "[127.0.0.1]:2525", 25, &none, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
	outbound_route_resolve("127.0.0.1:9", 1, "[127.0.0.1]:2525", 25, NULL, &r);
	assert_int_equal(r.result, OUTBOUND_DNS_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nexthop_forms),
	    cmocka_unit_test(test_nexthop_refused),
	    cmocka_unit_test(test_literal_routes_need_no_dns),
	    cmocka_unit_test(test_self_recognised),
	    cmocka_unit_test(test_route_drops_self),
	    cmocka_unit_test(test_literal_route_to_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
