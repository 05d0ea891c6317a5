/* Unit tests for node/config.c: defaults, every key, and bad input with
 * the file:line an operator needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_config.h"

static char conf_path[64];

static const char *write_conf(const char *text)
{
	snprintf(conf_path, sizeof(conf_path), "/tmp/cm-test-config-XXXXXX");
	int fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return conf_path;
}

/* Loads text as a file (its path stays in conf_path); the load's rc. */
static int load_text(const char *text, struct node_config **cfg_r, struct textbuf *err)
{
	const char *path = write_conf(text);
	int rc = node_config_load(path, cfg_r, err);
	unlink(path);
	return rc;
}

static void test_defaults(void **state)
{
	struct node_config *cfg = NULL;
	struct textbuf err = TEXTBUF_INIT;
	(void)state;

	assert_int_equal(node_config_load(NULL, &cfg, &err), 0);
	assert_int_equal(cfg->node_id, 1);
	assert_non_null(strstr(cfg->store_dir, "/var/store"));
	assert_non_null(strstr(cfg->run_dir, "/var/run"));
	assert_true(cfg->store_dir[0] == '/');
	assert_string_equal(cfg->user, "clustermail");
	static const int ports[SERVICE_COUNT] = { 2525, 2587, 2465, 2143, 2993, 2110, 2995, 8080 };
	for (int i = 0; i < SERVICE_COUNT; i++) {
		assert_int_equal(cfg->services[i].port, ports[i]);
		assert_true(cfg->services[i].enabled);
	}
	assert_int_equal(cfg->password.scheme, PASSWORD_YESCRYPT);
	assert_true(cfg->hostname[0] != '\0');
	assert_int_equal(cfg->smtp.max_message_size, 25 << 20);
	assert_int_equal(cfg->smtp.max_recipients, 1000);
	/* relay control and limits: Postfix's defaults on a host */
	assert_int_equal(cfg->smtp.trusted_networks.n, 2);
	char net[CIDR_TEXT_MAX];
	cidr_format(&cfg->smtp.trusted_networks.v[0], net, sizeof(net));
	assert_string_equal(net, "127.0.0.0/8");
	cidr_format(&cfg->smtp.trusted_networks.v[1], net, sizeof(net));
	assert_string_equal(net, "::1/128");
	assert_int_equal(cfg->smtp.n_relay_domains, 0);
	assert_int_equal(cfg->smtp.n_dnsbl, 0);
	assert_int_equal(cfg->smtp.dnsbl_exceptions.n, 0);
	assert_string_equal(cfg->smtp.resolver, "");
	assert_int_equal(cfg->smtp.dnsbl_timeout, 5);
	assert_int_equal(cfg->smtp.max_messages_per_minute, 0);
	assert_int_equal(cfg->smtp.command_timeout, 300);
	assert_int_equal(cfg->smtp.data_timeout, 600);
	assert_int_equal(cfg->log.level, LOG_INFO);
	node_config_free(&cfg);
	assert_null(cfg);
	textbuf_free(&err);
}

static void test_full_file(void **state)
{
	struct node_config *cfg = NULL;
	struct textbuf err = TEXTBUF_INIT;
	(void)state;

	const char *path = write_conf(
		"node_id = 3;\nstore = \"/srv/mail/store/\";\nuser = \"mail\";\nhostname = \"mx3.example.org\";\n"
		"smtp = { max_message_size = \"10M\"; max_recipients = 50;\n"
		"  trusted_networks = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"];\n"
		"  relay_domains = [\"Relay.Example\", \".sub.example\"]; dnsbl = [\"zen.example\"];\n"
		"  dnsbl_exceptions = [\"203.0.113.0/24\"]; resolver = \"127.0.0.1:5353\";\n"
		"  dnsbl_timeout = 2; max_messages_per_minute = 30; command_timeout = 60;\n"
		"  data_timeout = 120; };\n"
		"log = { target = \"file\"; file = \"/var/log/maild.log\"; level = \"debug\"; };\n"
		"server = { threads = 4; max_connections = 500; max_connections_per_address = 7;\n"
		"  connection_input_limit = \"128K\"; connection_output_limit = 1048576;\n"
		"  idle_timeout = 60; drain_timeout = 9; store_threads = 8; };\n"
		"control = { tcp = \"tcp://127.0.0.1:7025\"; };\n"
		"password = { scheme = \"sha512-crypt\"; cost = 5000; };\n"
		"services = { imap = { port = 143; address = \"::\"; }; http = { enabled = false; }; };\n");
	int rc = node_config_load(path, &cfg, &err);
	unlink(path);
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->node_id, 3);
	assert_string_equal(cfg->store_dir, "/srv/mail/store");
	assert_string_equal(cfg->run_dir, "/srv/mail/run");
	assert_string_equal(cfg->user, "mail");
	assert_string_equal(cfg->hostname, "mx3.example.org");
	assert_int_equal(cfg->smtp.max_message_size, 10 << 20);
	assert_int_equal(cfg->smtp.max_recipients, 50);
	assert_int_equal(cfg->smtp.trusted_networks.n, 3);
	char net[CIDR_TEXT_MAX];
	cidr_format(&cfg->smtp.trusted_networks.v[2], net, sizeof(net));
	assert_string_equal(net, "198.51.100.7/32");
	assert_int_equal(cfg->smtp.n_relay_domains, 2);
	assert_string_equal(cfg->smtp.relay_domains[0], "relay.example");
	assert_string_equal(cfg->smtp.relay_domains[1], ".sub.example");
	assert_int_equal(cfg->smtp.n_dnsbl, 1);
	assert_string_equal(cfg->smtp.dnsbl[0], "zen.example");
	assert_int_equal(cfg->smtp.dnsbl_exceptions.n, 1);
	assert_string_equal(cfg->smtp.resolver, "127.0.0.1:5353");
	assert_int_equal(cfg->smtp.dnsbl_timeout, 2);
	assert_int_equal(cfg->smtp.max_messages_per_minute, 30);
	assert_int_equal(cfg->smtp.command_timeout, 60);
	assert_int_equal(cfg->smtp.data_timeout, 120);
	assert_int_equal(cfg->log.target, LOG_TARGET_FILE);
	assert_int_equal(cfg->log.level, LOG_DEBUG);
	assert_int_equal(cfg->server.threads, 4);
	assert_int_equal(cfg->server.max_connections_per_address, 7);
	assert_int_equal(cfg->server.store_threads, 8);
	assert_int_equal(cfg->server.connection_input_limit, 128 * 1024);
	assert_int_equal(cfg->server.connection_output_limit, 1048576);
	assert_string_equal(cfg->control.tcp, "tcp://127.0.0.1:7025");
	assert_int_equal(cfg->password.scheme, PASSWORD_SHA512);
	assert_int_equal(cfg->password.cost, 5000);
	assert_int_equal(cfg->services[SERVICE_IMAP].port, 143);
	assert_string_equal(cfg->services[SERVICE_IMAP].address, "::");
	assert_false(cfg->services[SERVICE_HTTP].enabled);
	assert_int_equal(cfg->services[SERVICE_SMTP].port, 2525);
	node_config_free(&cfg);
	textbuf_free(&err);
}

static const struct {
	const char *text;
	const char *want; /* expected substring of the error, after "file:" */
} bad_configs[] = {
	{ "node_id = 1;\nstore = = \"x\";\n", ":2: syntax error" },
	{ "node_id = 0;\n", ":1: 'node_id' = 0 is out of range 1..65535" },
	{ "node_id = \"one\";\n", ":1: 'node_id' must be an integer" },
	{ "\n\nfoo = 1;\n", ":3: unknown key 'foo' in the top level" },
	{ "log = { target = \"printer\"; };\n", "log target 'printer'" },
	{ "log = { target = \"file\"; };\n", "needs log.file" },
	{ "log = { level = \"chatty\"; };\n", "log level 'chatty'" },
	{ "server = { colour = 1; };\n", "unknown key 'colour' in server" },
	{ "server = { connection_input_limit = \"lots\"; };\n", "not a size" },
	{ "server = { connection_input_limit = 10; };\n", "out of range" },
	{ "services = { gopher = { port = 70; }; };\n", "unknown key 'gopher' in services" },
	{ "services = { imap = { port = 70000; }; };\n", "'port' = 70000 is out of range" },
	{ "services = { imap = { enabled = 1; }; };\n", "'enabled' must be true or false" },
	{ "services = { imap = { tls = true; }; };\n", "unknown key 'tls' in services.imap" },
	{ "control = { tcp = \"ipc:///x\"; };\n", "tcp:// endpoint" },
	{ "password = { scheme = \"rot13\"; };\n", "password scheme 'rot13'" },
	{ "password = { cost = 12; };\n",
	  ":1: password.cost = 12 is out of range for yescrypt: 1..11, or 0 for libcrypt's default" },
	{ "password = {\n scheme = \"bcrypt\";\n cost = 3; };\n",
	  ":3: password.cost = 3 is out of range for bcrypt: 4..31" },
	{ "password = { scheme = \"bcrypt\"; cost = 32; };\n", "out of range for bcrypt: 4..31" },
	{ "password = { scheme = \"sha512-crypt\"; cost = 999; };\n",
	  "out of range for sha512-crypt: 1000..999999999" },
	{ "password = { cost = -1; };\n", "'cost' = -1 is out of range" },
	{ "store = \"\";\n", "'store' is not a usable path" },
	{ "log = 5;\n", "'log' must be a group" },
	{ "hostname = \"two words\";\n", "'hostname' must be a host name without spaces" },
	{ "smtp = { max_recipients = 0; };\n", "'max_recipients' = 0 is out of range" },
	{ "smtp = { max_message_size = \"1\"; };\n", "out of range" },
	{ "smtp = {\n trusted_networks = [\"10.0.0.1/8\"]; };\n",
	  ":2: 'trusted_networks': \"10.0.0.1/8\" is not a network: address has bits set" },
	{ "smtp = { trusted_networks = \"127.0.0.0/8\"; };\n", "'trusted_networks' must be a list of strings" },
	{ "smtp = { trusted_networks = [1]; };\n", "'trusted_networks' must be a list of strings" },
	{ "smtp = { dnsbl_exceptions = [\"::1/200\"]; };\n", "prefix length above 128" },
	{ "smtp = { relay_domains = [\"bad domain\"]; };\n", "is not a domain name" },
	{ "smtp = { dnsbl = [\".zen.example\"]; };\n", "'dnsbl': \".zen.example\" is not a domain name" },
	{ "smtp = { resolver = \"dns.example\"; };\n", "'resolver' must be an IP address" },
	{ "smtp = { resolver = \"127.0.0.1:0\"; };\n", "'resolver' must be an IP address" },
	{ "smtp = { resolver = \"127.0.0.1:99999\"; };\n", "'resolver' must be an IP address" },
	{ "smtp = { dnsbl_timeout = 0; };\n", "'dnsbl_timeout' = 0 is out of range 1..60" },
	{ "smtp = { command_timeout = 0; };\n", "'command_timeout' = 0 is out of range" },
	{ "smtp = { data_timeout = -1; };\n", "'data_timeout' = -1 is out of range" },
	{ "smtp = { relay = [\"x\"]; };\n", "unknown key 'relay' in smtp" },
};

static void test_bad_configs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		struct node_config *cfg = NULL;
		struct textbuf err = TEXTBUF_INIT;
		int rc = load_text(bad_configs[i].text, &cfg, &err);
		if (rc != -1 || strstr(textbuf_str(&err), bad_configs[i].want) == NULL ||
		    strncmp(textbuf_str(&err), conf_path, strlen(conf_path)) != 0)
			fail_msg("config %zu: got rc %d error \"%s\", want rc -1 and \"%s\" prefixed by the path",
				 i, rc, textbuf_str(&err), bad_configs[i].want);
		assert_null(cfg);
		textbuf_free(&err);
	}
}

/* Each scheme's costs as lib/password takes them; a scheme named without
 * a cost gets libcrypt's default (0), not yescrypt's 2. */
static void test_password_costs(void **state)
{
	static const struct {
		const char *text;
		enum password_scheme scheme;
		unsigned long cost;
	} cases[] = {
		{ "password = { cost = 11; };\n", PASSWORD_YESCRYPT, 11 },
		{ "password = { cost = 0; };\n", PASSWORD_YESCRYPT, 0 },
		{ "password = { scheme = \"yescrypt\"; };\n", PASSWORD_YESCRYPT, 2 },
		{ "password = { scheme = \"bcrypt\"; };\n", PASSWORD_BCRYPT, 0 },
		{ "password = { scheme = \"bcrypt\"; cost = 4; };\n", PASSWORD_BCRYPT, 4 },
		{ "password = { scheme = \"bcrypt\"; cost = 31; };\n", PASSWORD_BCRYPT, 31 },
		{ "password = { scheme = \"sha512-crypt\"; };\n", PASSWORD_SHA512, 0 },
		{ "password = { scheme = \"sha512-crypt\"; cost = 999999999; };\n", PASSWORD_SHA512,
		  999999999 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct node_config *cfg = NULL;
		struct textbuf err = TEXTBUF_INIT;
		int rc = load_text(cases[i].text, &cfg, &err);
		if (rc != 0 || cfg->password.scheme != cases[i].scheme ||
		    cfg->password.cost != cases[i].cost)
			fail_msg("case %zu: got rc %d scheme %d cost %lu (%s), want scheme %d cost %lu", i,
				 rc, cfg ? (int)cfg->password.scheme : -1, cfg ? cfg->password.cost : 0,
				 textbuf_str(&err), (int)cases[i].scheme, cases[i].cost);
		node_config_free(&cfg);
		textbuf_free(&err);
	}
}

static void test_missing_file(void **state)
{
	struct node_config *cfg = NULL;
	struct textbuf err = TEXTBUF_INIT;
	(void)state;
	assert_int_equal(node_config_load("/nonexistent/maild.conf", &cfg, &err), -1);
	assert_non_null(strstr(textbuf_str(&err), "cannot read"));
	textbuf_free(&err);
}

static void test_store_override_moves_run_dir(void **state)
{
	struct node_config *cfg = NULL;
	struct textbuf err = TEXTBUF_INIT;
	(void)state;
	assert_int_equal(node_config_load(NULL, &cfg, &err), 0);
	assert_int_equal(node_config_set_store(cfg, "/data/cm/store", &err), 0);
	assert_string_equal(cfg->store_dir, "/data/cm/store");
	assert_string_equal(cfg->run_dir, "/data/cm/run");
	assert_int_equal(node_config_set_store(cfg, "", &err), -1);
	node_config_set_user(cfg, "root");
	assert_string_equal(cfg->user, "root");
	node_config_free(&cfg);
	textbuf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_password_costs),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_store_override_moves_run_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
