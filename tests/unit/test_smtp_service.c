/*
 * Unit tests for the pure parts of the SMTP service (node/smtp_*.c):
 * queue IDs, the Return-Path and Received: fields (golden texts), peer
 * address literals, and the one reply after DATA for every mix of
 * per-mailbox store results; the relay decision for every open-relay
 * trick and client kind, the message rate limiter's sliding minute, and
 * the bounded per-client table. The wiring itself is tested end to end
 * by tests/integration/test_smtp.py, test_smtp_relay.py and
 * test_smtp_dnsbl.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/smtp_client_table.h"
#include "node/smtp_ratelimit.h"
#include "node/smtp_service_private.h"

static void test_queue_id_format(void **state)
{
	static const struct {
		uint64_t us;
		unsigned node;
		const char *want;
	} cases[] = {
	    {0, 1, "000000000000001"},
	    {31, 32, "0000000000Z0010"},
	    {(1ULL << 55) - 1, 65535, "ZZZZZZZZZZZ1ZZZ"},
	    /* 2023-10-03 10:00:00 UTC */
	    {1696327200000000ULL, 7, "1G6SKT2VJ000007"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char got[SMTP_QUEUE_ID_SIZE];
		smtp_queue_id_format(cases[i].us, cases[i].node, got);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got %s, want %s", i, got, cases[i].want);
	}
}

static void test_queue_id_unique_and_ordered(void **state)
{
	char prev[SMTP_QUEUE_ID_SIZE] = "", id[SMTP_QUEUE_ID_SIZE];
	(void)state;
	for (int i = 0; i < 10000; i++) {
		smtp_queue_id_new(3, id);
		assert_int_equal(strlen(id), 15);
		assert_string_equal(id + 11, "0003");
		if (strcmp(prev, id) >= 0)
			fail_msg("id %d: %s not after %s", i, id, prev);
		memcpy(prev, id, sizeof(id));
	}
}

static void test_peer_literal(void **state)
{
	static const struct {
		const char *peer;
		const char *want; /* NULL: does not fit */
	} cases[] = {
	    {"192.0.2.1:25", "192.0.2.1"},
	    {"[2001:db8::1]:587", "IPv6:2001:db8::1"},
	    {"[::1]:1", "IPv6:::1"},
	    {"[2001:db8:1234:5678:9abc:def0:1234:5678]:25", NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[24];
		int ret = smtp_received_peer_literal(cases[i].peer, out, sizeof(out));
		if (cases[i].want == NULL) {
			if (ret != -1)
				fail_msg("case %zu: got %d (%s), want -1", i, ret, out);
			continue;
		}
		if (ret != 0 || strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, ret, out,
				 cases[i].want);
	}
}

static void test_received_golden(void **state)
{
	static const struct {
		struct smtp_received_info in;
		const char *want;
	} cases[] = {
	    {{.helo = "client.example.org",
	      .esmtp = true,
	      .peer = "192.0.2.1:40000",
	      .hostname = "mx.example.test",
	      .queue_id = "1G4K6NYKG000007",
	      .for_rcpt = "alice@example.test",
	      .when = 1696327200},
	     "Received: from client.example.org (unknown [192.0.2.1])\r\n"
	     "\tby mx.example.test (clustermail) with ESMTP id 1G4K6NYKG000007\r\n"
	     "\tfor <alice@example.test>; Tue, 3 Oct 2023 10:00:00 +0000\r\n"},
	    {{.helo = "laptop",
	      .esmtp = true,
	      .peer = "[2001:db8::5]:5000",
	      .tls = true,
	      .tls_protocol = "TLSv1.3",
	      .tls_cipher = "TLS_AES_256_GCM_SHA384",
	      .tls_client_subject = "CN=laptop (test)",
	      .authenticated = true,
	      .hostname = "mx.example.test",
	      .queue_id = "Q",
	      .when = 1696327200},
	     "Received: from laptop (unknown [IPv6:2001:db8::5])\r\n"
	     "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
	     "\t(Client certificate CN=laptop _test_ (not verified))\r\n"
	     "\tby mx.example.test (clustermail) with ESMTPSA id Q;\r\n"
	     "\tTue, 3 Oct 2023 10:00:00 +0000\r\n"},
	    {{.helo = "a(b);c\"d\\",
	      .esmtp = false,
	      .peer = "192.0.2.9:1",
	      .hostname = "h",
	      .queue_id = "Q",
	      .for_rcpt = "x@y.test",
	      .when = 1696327200},
	     "Received: from a_b__c_d_ (unknown [192.0.2.9])\r\n"
	     "\tby h (clustermail) with SMTP id Q\r\n"
	     "\tfor <x@y.test>; Tue, 3 Oct 2023 10:00:00 +0000\r\n"},
	    {{.helo = "c",
	      .esmtp = true,
	      .peer = "192.0.2.9:1",
	      .tls = true,
	      .tls_protocol = "TLSv1.2",
	      .tls_cipher = "ECDHE-RSA-AES128-GCM-SHA256",
	      .hostname = "h",
	      .queue_id = "Q",
	      .when = 1696327200},
	     "Received: from c (unknown [192.0.2.9])\r\n"
	     "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256)\r\n"
	     "\tby h (clustermail) with ESMTPS id Q;\r\n"
	     "\tTue, 3 Oct 2023 10:00:00 +0000\r\n"},
	    {{.helo = "c",
	      .esmtp = true,
	      .peer = "192.0.2.9:1",
	      .authenticated = true,
	      .hostname = "h",
	      .queue_id = "Q",
	      .when = 1696327200},
	     "Received: from c (unknown [192.0.2.9])\r\n"
	     "\tby h (clustermail) with ESMTPA id Q;\r\n"
	     "\tTue, 3 Oct 2023 10:00:00 +0000\r\n"},
	};
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf tb = TEXTBUF_INIT;
		smtp_received_format(&cases[i].in, &tb);
		if (strcmp(textbuf_str(&tb), cases[i].want) != 0)
			fail_msg("case %zu: got\n%s\nwant\n%s", i, textbuf_str(&tb), cases[i].want);
		textbuf_free(&tb);
	}
	struct textbuf rp = TEXTBUF_INIT;
	smtp_return_path_format("", &rp);
	smtp_return_path_format("bounce+x@example.org", &rp);
	assert_string_equal(textbuf_str(&rp),
			    "Return-Path: <>\r\nReturn-Path: <bounce+x@example.org>\r\n");
	textbuf_free(&rp);
}

static void test_received_date_zone(void **state)
{
	char out[64];
	(void)state;
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	smtp_received_date(1696327200, out, sizeof(out));
	assert_string_equal(out, "Tue, 3 Oct 2023 12:00:00 +0200");
	smtp_received_date(1704067200, out, sizeof(out)); /* 2024-01-01 00:00 UTC */
	assert_string_equal(out, "Mon, 1 Jan 2024 01:00:00 +0100");
	setenv("TZ", "NST3:30NDT,M3.2.0,M11.1.0", 1); /* POSIX form: no tzdata needed */
	tzset();
	smtp_received_date(1704067200, out, sizeof(out));
	assert_string_equal(out, "Sun, 31 Dec 2023 20:30:00 -0330");
	setenv("TZ", "UTC", 1);
	tzset();
}

/* Results of one commit: code 0 = the engine's 250. */
static void test_delivery_reply(void **state)
{
	enum { OK = STORE_OK, TEMP = STORE_E_TEMP, QUOTA = STORE_E_QUOTA };
	static const struct {
		int results[3];
		uint64_t quota[3];
		size_t n;
		int ret;
		bool precheck_full;
		uint64_t size;
		int code;
		const char *enhanced;
		const char *text;
	} cases[] = {
	    {{OK}, {0}, 1, 0, false, 100, 0, NULL, NULL},
	    {{OK, OK, OK}, {0}, 3, 0, false, 100, 0, NULL, NULL},
	    {{TEMP},
	     {0},
	     1,
	     0,
	     false,
	     100,
	     451,
	     "4.3.0",
	     "Error: the message could not be stored, try again later"},
	    {{OK, TEMP},
	     {0},
	     2,
	     0,
	     false,
	     100,
	     451,
	     "4.3.0",
	     "Error: delivered to 1 of 2 mailboxes only, try again later"},
	    {{OK, QUOTA, OK},
	     {0, 50, 0},
	     3,
	     0,
	     false,
	     100,
	     451,
	     "4.3.0",
	     "Error: delivered to 2 of 3 mailboxes only, try again later"},
	    {{QUOTA},
	     {1000},
	     1,
	     0,
	     false,
	     100,
	     452,
	     "4.2.2",
	     "<r0@example.test>: Mailbox full, try again later"},
	    {{QUOTA},
	     {50},
	     1,
	     0,
	     false,
	     100,
	     552,
	     "5.2.2",
	     "<r0@example.test>: Mailbox full: the message is larger than its quota"},
	    /* the pre-check: nothing delivered, the full mailbox named */
	    {{TEMP, QUOTA},
	     {0, 50},
	     2,
	     0,
	     true,
	     100,
	     452,
	     "4.2.2",
	     "<r1@example.test>: Mailbox full, try again later"},
	    /* the group commit failed: every link was undone */
	    {{OK, OK},
	     {0},
	     2,
	     STORE_E_TEMP,
	     false,
	     100,
	     451,
	     "4.3.0",
	     "Error: the message could not be stored, try again later"},
	    {{QUOTA, TEMP},
	     {10, 0},
	     2,
	     0,
	     false,
	     100,
	     452,
	     "4.2.2",
	     "<r0@example.test>: Mailbox full, try again later"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_rcpt r[3];
		char addr[3][48], text[256];
		struct smtp_reply reply;
		memset(r, 0, sizeof(r));
		for (size_t k = 0; k < cases[i].n; k++) {
			snprintf(addr[k], sizeof(addr[k]), "r%zu@example.test", k);
			r[k].address = addr[k];
			r[k].result = cases[i].results[k];
			r[k].quota.bytes = cases[i].quota[k];
		}
		smtp_delivery_reply(r, cases[i].n, cases[i].ret, cases[i].precheck_full,
				    cases[i].size, &reply, text, sizeof(text));
		if (reply.code != cases[i].code)
			fail_msg("case %zu: got code %d, want %d", i, reply.code, cases[i].code);
		if (cases[i].code == 0)
			continue;
		if (strcmp(reply.enhanced, cases[i].enhanced) != 0 ||
		    strcmp(reply.text, cases[i].text) != 0)
			fail_msg("case %zu: got %s \"%s\", want %s \"%s\"", i, reply.enhanced,
				 reply.text, cases[i].enhanced, cases[i].text);
	}
}

static const char *const verdict_names[] = {"LOCAL", "REMOTE", "DENIED", "ROUTING"};

static void test_relay_policy(void **state)
{
	static struct node_config_smtp cfg; /* large: not on the stack */
	static const struct {
		const char *mailbox; /* as the engine passes it (source route gone) */
		bool local;	     /* the domain is ours */
		enum smtp_relay_verdict stranger, may_relay;
	} cases[] = {
	    {"alice@example.test", true, SMTP_RELAY_LOCAL, SMTP_RELAY_LOCAL},
	    {"someone@elsewhere.test", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    /* percent hack, bang path, quoted @: routing through us */
	    {"user%elsewhere.test@example.test", true, SMTP_RELAY_DENIED, SMTP_RELAY_ROUTING},
	    {"elsewhere.test!user@example.test", true, SMTP_RELAY_DENIED, SMTP_RELAY_ROUTING},
	    {"\"user@elsewhere.test\"@example.test", true, SMTP_RELAY_DENIED, SMTP_RELAY_ROUTING},
	    {"\"user%x\"@example.test", true, SMTP_RELAY_DENIED, SMTP_RELAY_ROUTING},
	    /* a quoted local part without routing is the directory's */
	    {"\"john smith\"@example.test", true, SMTP_RELAY_LOCAL, SMTP_RELAY_LOCAL},
	    /* address literals: remote, whatever "local" says */
	    {"user@[192.0.2.1]", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user@[127.0.0.1]", true, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user@[IPv6:2001:db8::1]", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    /* relay domains: for anyone, but not with routing from strangers */
	    {"user@relay.example", false, SMTP_RELAY_REMOTE, SMTP_RELAY_REMOTE},
	    {"user@RELAY.Example", false, SMTP_RELAY_REMOTE, SMTP_RELAY_REMOTE},
	    {"user@a.sub.example", false, SMTP_RELAY_REMOTE, SMTP_RELAY_REMOTE},
	    {"user@sub.example", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user@notrelay.example", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user@xrelay.example", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user%elsewhere.test@relay.example", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    {"user!x@relay.example", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    /* remote with routing is the remote's business, if we may relay */
	    {"user%x@elsewhere.test", false, SMTP_RELAY_DENIED, SMTP_RELAY_REMOTE},
	    /* no domain at all */
	    {"user@", false, SMTP_RELAY_DENIED, SMTP_RELAY_ROUTING},
	};
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.relay_domains[0], sizeof(cfg.relay_domains[0]), "relay.example");
	snprintf(cfg.relay_domains[1], sizeof(cfg.relay_domains[1]), ".sub.example");
	cfg.n_relay_domains = 2;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int may = 0; may < 2; may++) {
			enum smtp_relay_verdict want = may ? cases[i].may_relay : cases[i].stranger;
			enum smtp_relay_verdict got =
			    smtp_policy_relay(&cfg, may, cases[i].mailbox, cases[i].local);
			if (got != want)
				fail_msg("case %zu <%s> may_relay=%d: got %s, want %s", i,
					 cases[i].mailbox, may, verdict_names[got], verdict_names[want]);
		}
	}
	assert_string_equal(smtp_policy_domain("\"a@b\"@c.example"), "c.example");
	assert_null(smtp_policy_domain("postmaster"));
	assert_false(smtp_policy_routing("\"a b\"@c.example"));
	assert_true(smtp_policy_routing("a!b@c.example"));
}

static void test_policy_settings_refs(void **state)
{
	static struct node_config_smtp a, b;
	struct smtp_policy *p = NULL;
	const char *error = NULL;
	(void)state;

	/* no shared state: nobody trusted, nothing limited */
	const struct smtp_policy_settings *none = smtp_policy_settings_get(NULL);
	assert_int_equal(none->smtp.trusted_networks.n, 0);
	assert_int_equal(none->smtp.max_messages_per_minute, 0);
	smtp_policy_settings_put(&none);
	assert_null(none);
	assert_null(smtp_policy_ratelimit(NULL));

	memset(&a, 0, sizeof(a));
	a.max_messages_per_minute = 5;
	b = a;
	b.max_messages_per_minute = 7;
	assert_int_equal(smtp_policy_new(&a, &p, &error), 0);
	const struct smtp_policy_settings *old = smtp_policy_settings_get(p);
	smtp_policy_configure(p, &b);
	const struct smtp_policy_settings *fresh = smtp_policy_settings_get(p);
	/* a running connection keeps what it started with */
	assert_int_equal(old->smtp.max_messages_per_minute, 5);
	assert_int_equal(fresh->smtp.max_messages_per_minute, 7);
	smtp_policy_settings_put(&old);
	smtp_policy_settings_put(&fresh);
	smtp_policy_free(&p);
	assert_null(p);
}

static void test_ratelimit_sliding_minute(void **state)
{
	struct smtp_ratelimit *rl = smtp_ratelimit_new();
	struct cidr a, b;
	const char *error = NULL;
	uint64_t t0 = 1000000;
	(void)state;

	assert_non_null(rl);
	assert_int_equal(cidr_addr_parse("192.0.2.1", &a, &error), 0);
	assert_int_equal(cidr_addr_parse("2001:db8::1", &b, &error), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + (uint64_t)i), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 10), 0);
	/* refused attempts are not counted; other clients are apart */
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 20), 0);
	assert_int_equal(smtp_ratelimit_take(rl, &b, 3, t0 + 20), 1);
	/* 0 is unlimited */
	assert_int_equal(smtp_ratelimit_take(rl, &a, 0, t0 + 30), 1);
	/* 30 s into the next minute half of the previous minute still counts
	 * (3 * 0.5 = 1.5): two more messages fit (1.5, 2.5), a third not */
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 90000), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 90000), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 90000), 0);
	/* 50 s in, a sixth of it (0.5) is left: 0.5 + 2 fits one more */
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 110000), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 110000), 0);
	/* two quiet minutes later the client starts afresh */
	for (int i = 0; i < 3; i++)
		assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 300000 + (uint64_t)i), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &a, 3, t0 + 300010), 0);
	smtp_ratelimit_free(&rl);
	assert_null(rl);
}

/* An IPv6 client is its /64 (as for connections and logins): the
 * addresses of one network share a count, another network has its own. */
static void test_ratelimit_ipv6_network(void **state)
{
	struct smtp_ratelimit *rl = smtp_ratelimit_new();
	struct cidr one, same_net, other_net;
	const char *error = NULL;
	(void)state;
	assert_int_equal(cidr_addr_parse("2001:db8:1:2::1", &one, &error), 0);
	assert_int_equal(cidr_addr_parse("2001:db8:1:2:ffff::7", &same_net, &error), 0);
	assert_int_equal(cidr_addr_parse("2001:db8:1:3::1", &other_net, &error), 0);
	assert_int_equal(smtp_ratelimit_take(rl, &one, 2, 1000), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &same_net, 2, 1001), 1);
	assert_int_equal(smtp_ratelimit_take(rl, &one, 2, 1002), 0);
	assert_int_equal(smtp_ratelimit_take(rl, &same_net, 2, 1003), 0);
	assert_int_equal(smtp_ratelimit_take(rl, &other_net, 2, 1004), 1);
	smtp_ratelimit_free(&rl);
}

static void test_client_table_bounded(void **state)
{
	struct smtp_client_table *t = smtp_client_table_new(3, sizeof(int));
	struct cidr addr[4];
	const char *error = NULL;
	uint64_t *exp;
	char text[32];
	(void)state;

	assert_non_null(t);
	for (int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "198.51.100.%d", i + 1);
		assert_int_equal(cidr_addr_parse(text, &addr[i], &error), 0);
	}
	for (int i = 0; i < 3; i++) {
		int *v = smtp_client_table_get(t, &addr[i], 100, true, &exp);
		assert_non_null(v);
		assert_int_equal(*v, 0);
		*v = i + 10;
		*exp = 1000 + (uint64_t)i * 1000; /* 1000, 2000, 3000 */
	}
	/* full of live records: nothing new */
	assert_null(smtp_client_table_get(t, &addr[3], 500, true, &exp));
	int *v = smtp_client_table_get(t, &addr[1], 500, false, &exp);
	assert_non_null(v);
	assert_int_equal(*v, 11);
	/* expired records are absent, and swept for newcomers */
	assert_null(smtp_client_table_get(t, &addr[0], 1500, false, &exp));
	v = smtp_client_table_get(t, &addr[3], 1500, true, &exp);
	assert_non_null(v);
	assert_int_equal(*v, 0);
	*exp = 5000;
	assert_int_equal(smtp_client_table_count(t), 3);
	smtp_client_table_clear(t);
	assert_int_equal(smtp_client_table_count(t), 0);
	assert_null(smtp_client_table_get(t, &addr[3], 1500, false, &exp));
	smtp_client_table_free(&t);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queue_id_format),
	    cmocka_unit_test(test_queue_id_unique_and_ordered),
	    cmocka_unit_test(test_peer_literal),
	    cmocka_unit_test(test_received_golden),
	    cmocka_unit_test(test_received_date_zone),
	    cmocka_unit_test(test_delivery_reply),
	    cmocka_unit_test(test_relay_policy),
	    cmocka_unit_test(test_policy_settings_refs),
	    cmocka_unit_test(test_ratelimit_sliding_minute),
	    cmocka_unit_test(test_ratelimit_ipv6_network),
	    cmocka_unit_test(test_client_table_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
