/*
 * Configuration loading with libconfig (see config.h). The embedded
 * defaults live in one table-like function (node_config_defaults) and every key
 * a file may set is listed in the schema tables below: an unknown key is
 * an error, so a typo never silently leaves a default in place.
 */
#include "node/node_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/address.h"
#include "lib/size.h"

static const char *const service_names[SERVICE_COUNT + 1] = { /* NULL-terminated for check_keys */
	[SERVICE_SMTP] = "smtp",       [SERVICE_SUBMISSION] = "submission",
	[SERVICE_SMTPS] = "smtps",     [SERVICE_IMAP] = "imap",
	[SERVICE_IMAPS] = "imaps",     [SERVICE_POP3] = "pop3",
	[SERVICE_POP3S] = "pop3s",     [SERVICE_HTTP] = "http",
};

static const int default_ports[SERVICE_COUNT] = {
	[SERVICE_SMTP] = 2525,  [SERVICE_SUBMISSION] = 2587, [SERVICE_SMTPS] = 2465,
	[SERVICE_IMAP] = 2143,  [SERVICE_IMAPS] = 2993,      [SERVICE_POP3] = 2110,
	[SERVICE_POP3S] = 2995, [SERVICE_HTTP] = 8080,
};

/* The TLS mode each service has by default, and which others it allows:
 * an implicit-TLS service is TLS by definition (disable it instead), and
 * HTTPS comes with the web issue. */
static const enum listener_tls_mode default_tls[SERVICE_COUNT] = {
	[SERVICE_SMTP] = LISTENER_TLS_STARTTLS,  [SERVICE_SUBMISSION] = LISTENER_TLS_STARTTLS,
	[SERVICE_SMTPS] = LISTENER_TLS_IMPLICIT, [SERVICE_IMAP] = LISTENER_TLS_STARTTLS,
	[SERVICE_IMAPS] = LISTENER_TLS_IMPLICIT, [SERVICE_POP3] = LISTENER_TLS_STARTTLS,
	[SERVICE_POP3S] = LISTENER_TLS_IMPLICIT, [SERVICE_HTTP] = LISTENER_TLS_NONE,
};

const char *node_config_service_name(enum node_config_service_id id)
{
	return id < SERVICE_COUNT ? service_names[id] : "?";
}

int node_config_service_id(const char *name)
{
	for (int i = 0; i < SERVICE_COUNT; i++)
		if (strcmp(service_names[i], name) == 0)
			return i;
	return -1;
}

const char *node_config_tls_mode_name(enum listener_tls_mode mode)
{
	switch (mode) {
	case LISTENER_TLS_IMPLICIT:
		return "implicit";
	case LISTENER_TLS_STARTTLS:
		return "starttls";
	case LISTENER_TLS_NONE:
		break;
	}
	return "none";
}

static bool address_is_loopback(const char *address)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, address, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, address, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* One loading pass: the file being read and where errors go. */
struct load_ctx {
	struct node_config *cfg;
	const char *file;
	struct textbuf *errors;
	int nerrors;
};

__attribute__((format(printf, 3, 4)))
static void load_error(struct load_ctx *ctx, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	textbuf_printf(ctx->errors, "%s:%u: ", ctx->file, s ? config_setting_source_line(s) : 0);
	va_start(ap, fmt);
	textbuf_vprintf(ctx->errors, fmt, ap);
	va_end(ap);
	textbuf_putc(ctx->errors, '\n');
	ctx->nerrors++;
}

static int absolute_path(const char *in, char *out, size_t out_size)
{
	char cwd[PATH_MAX];
	int n;

	if (in[0] == '/')
		n = snprintf(out, out_size, "%s", in);
	else if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	else
		n = snprintf(out, out_size, "%s/%s", cwd, strncmp(in, "./", 2) == 0 ? in + 2 : in);
	if (n < 0 || (size_t)n >= out_size)
		return -1;
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

/* The run directory defaults to "run" beside the store: per machine, not
 * on the shared store, and found by mailctl from the same settings. */
static void derive_run_dir(struct node_config *cfg)
{
	char *slash;

	if (cfg->run_dir_set)
		return;
	snprintf(cfg->run_dir, sizeof(cfg->run_dir), "%s", cfg->store_dir);
	slash = strrchr(cfg->run_dir, '/');
	if (slash == cfg->run_dir)
		slash++;
	snprintf(slash, sizeof(cfg->run_dir) - (size_t)(slash - cfg->run_dir), "%srun",
		 slash[0] == '/' ? "/" : "");
}

/* Postfix's mynetworks_style = host: only this host relays. */
static void smtp_defaults(struct node_config_smtp *smtp)
{
	static const char *const trusted[] = {"127.0.0.0/8", "::1/128"};
	const char *error;

	for (size_t i = 0; i < sizeof(trusted) / sizeof(trusted[0]); i++) {
		struct cidr net;
		if (cidr_parse(trusted[i], &net, &error) == 0)
			cidr_list_add(&smtp->trusted_networks, &net);
	}
	smtp->dnsbl_timeout = 5;
	smtp->max_messages_per_minute = 0;
	smtp->command_timeout = 300;
	smtp->data_timeout = 600;
}

static void node_config_defaults(struct node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->source, sizeof(cfg->source), "(defaults)");
	cfg->node_id = 1;
	absolute_path("var/store", cfg->store_dir, sizeof(cfg->store_dir));
	snprintf(cfg->user, sizeof(cfg->user), "clustermail");
	cfg->log.target = LOG_TARGET_STDERR;
	snprintf(cfg->log.facility, sizeof(cfg->log.facility), "mail");
	cfg->log.level = LOG_INFO;
	cfg->server.threads = 0;
	cfg->server.max_connections = 10000;
	cfg->server.max_connections_per_address = 100;
	cfg->server.connection_input_limit = 64 * 1024;
	cfg->server.connection_output_limit = 256 * 1024;
	cfg->server.idle_timeout = 1800;
	cfg->server.drain_timeout = 30;
	cfg->server.store_threads = 32;
	cfg->password.scheme = PASSWORD_YESCRYPT;
	cfg->password.cost = 2;
	if (gethostname(cfg->hostname, sizeof(cfg->hostname)) < 0 || cfg->hostname[0] == '\0')
		snprintf(cfg->hostname, sizeof(cfg->hostname), "localhost");
	cfg->hostname[sizeof(cfg->hostname) - 1] = '\0';
	cfg->smtp.max_message_size = 25 << 20;
	cfg->smtp.max_recipients = 1000;
	smtp_defaults(&cfg->smtp);
	tls_settings_defaults(&cfg->tls);
	auth_settings_default(&cfg->auth);
	cfg->queue = (struct node_config_queue){
	    .max_lifetime = 5 * 86400,
	    .delay_warning = 4 * 3600,
	    .quota_warning = 90,
	    .min_backoff = 300,
	    .max_backoff = 4000,
	    .max_deliveries = 20,
	    .destination_concurrency = 5,
	    .max_connections = 100,
	    .connect_timeout = 30,
	    .command_timeout = 300,
	    .port = 25,
	    .bounce_size_limit = 50000,
	    .starttls = true,
	};
	cfg->auth_threads = 0;
	for (int i = 0; i < SERVICE_COUNT; i++) {
		cfg->services[i].name = service_names[i];
		cfg->services[i].enabled = true;
		snprintf(cfg->services[i].address, sizeof(cfg->services[i].address), "127.0.0.1");
		cfg->services[i].port = default_ports[i];
		cfg->services[i].tls = default_tls[i];
	}
}

void node_config_service_derive_require_tls(struct node_config_service *svc)
{
	if (!svc->require_tls_set)
		svc->require_tls = svc->tls == LISTENER_TLS_IMPLICIT || !address_is_loopback(svc->address);
}

static void derive_require_tls(struct node_config *cfg)
{
	for (int i = 0; i < SERVICE_COUNT; i++)
		node_config_service_derive_require_tls(&cfg->services[i]);
}

/* Rejects members of group `s` whose names are not in `allowed`. */
static void check_keys(struct load_ctx *ctx, const config_setting_t *s,
		       const char *const *allowed, const char *where)
{
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		bool ok = false;
		for (const char *const *a = allowed; *a != NULL && name != NULL; a++)
			ok |= strcmp(*a, name) == 0;
		if (!ok)
			load_error(ctx, m, "unknown key '%s' in %s", name ? name : "?", where);
	}
}

static const config_setting_t *member(struct load_ctx *ctx, const config_setting_t *group,
				      const char *name, int type)
{
	const config_setting_t *s = config_setting_get_member(group, name);
	if (s == NULL)
		return NULL;
	int t = config_setting_type(s);
	bool ok = t == type || (type == CONFIG_TYPE_INT && t == CONFIG_TYPE_INT64);
	if (!ok) {
		static const char *const names[] = {
			[CONFIG_TYPE_INT] = "an integer", [CONFIG_TYPE_STRING] = "a string",
			[CONFIG_TYPE_BOOL] = "true or false", [CONFIG_TYPE_GROUP] = "a group { ... }",
		};
		load_error(ctx, s, "'%s' must be %s", name,
			     type < (int)(sizeof(names) / sizeof(names[0])) && names[type] ? names[type] : "another type");
		return NULL;
	}
	return s;
}

static void get_uint(struct load_ctx *ctx, const config_setting_t *g, const char *name,
		     long long min, long long max, unsigned *out)
{
	const config_setting_t *s = member(ctx, g, name, CONFIG_TYPE_INT);
	if (s == NULL)
		return;
	long long v = config_setting_get_int64(s);
	if (v < min || v > max)
		load_error(ctx, s, "'%s' = %lld is out of range %lld..%lld", name, v, min, max);
	else
		*out = (unsigned)v;
}

/* A size: an integer number of bytes or a string such as "64K". */
static void get_size(struct load_ctx *ctx, const config_setting_t *g, const char *name,
		     uint64_t min, uint64_t max, size_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	uint64_t v;
	if (s == NULL)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (size_parse(config_setting_get_string(s), &v) < 0) {
			load_error(ctx, s, "'%s' is not a size (like 65536, \"64K\", \"10M\")", name);
			return;
		}
	} else if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long i = config_setting_get_int64(s);
		if (i < 0) {
			load_error(ctx, s, "'%s' must not be negative", name);
			return;
		}
		v = (uint64_t)i;
	} else {
		load_error(ctx, s, "'%s' must be a size (integer or string like \"64K\")", name);
		return;
	}
	if (v < min || v > max) {
		load_error(ctx, s, "'%s' = %llu is out of range %llu..%llu", name,
			     (unsigned long long)v, (unsigned long long)min, (unsigned long long)max);
		return;
	}
	*out = (size_t)v;
}

static const config_setting_t *get_string(struct load_ctx *ctx, const config_setting_t *g,
					  const char *name, char *out, size_t out_size)
{
	const config_setting_t *s = member(ctx, g, name, CONFIG_TYPE_STRING);
	if (s == NULL)
		return NULL;
	const char *v = config_setting_get_string(s);
	if (strlen(v) >= out_size) {
		load_error(ctx, s, "'%s' is too long (at most %zu characters)", name, out_size - 1);
		return NULL;
	}
	snprintf(out, out_size, "%s", v);
	return s;
}

static void get_path(struct load_ctx *ctx, const config_setting_t *g, const char *name,
		     char *out, size_t out_size)
{
	char raw[1024];
	const config_setting_t *s = get_string(ctx, g, name, raw, sizeof(raw));
	if (s == NULL)
		return;
	if (raw[0] == '\0' || absolute_path(raw, out, out_size) < 0)
		load_error(ctx, s, "'%s' is not a usable path", name);
}

static void load_queue_transport(struct load_ctx *ctx, const config_setting_t *list)
{
	struct node_config_queue *q = &ctx->cfg->queue;
	int n = config_setting_length(list);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *v = config_setting_get_string(e);
		char domain[256], nexthop[256];
		if (v == NULL || sscanf(v, "%255s %255s", domain, nexthop) != 2 ||
		    q->ntransport >= sizeof(q->transport) / sizeof(q->transport[0])) {
			load_error(ctx, e, "queue.transport entries are \"domain nexthop\" strings "
					   "(at most 64)");
			continue;
		}
		for (char *c = domain; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		snprintf(q->transport[q->ntransport].domain, sizeof(q->transport[0].domain), "%s",
			 domain);
		snprintf(q->transport[q->ntransport].nexthop, sizeof(q->transport[0].nexthop), "%s",
			 nexthop);
		q->ntransport++;
	}
}

static void load_queue(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = {
		"max_lifetime", "delay_warning", "min_backoff", "max_backoff", "max_deliveries",
		"destination_concurrency", "max_connections", "connect_timeout", "command_timeout", "port",
		"bounce_size_limit", "starttls", "notify_postmaster", "relayhost", "postmaster",
		"archive", "transport", "quota_warning", NULL };
	struct node_config_queue *q = &ctx->cfg->queue;
	const config_setting_t *s;

	check_keys(ctx, g, keys, "queue");
	get_uint(ctx, g, "max_lifetime", 1, 100 * 86400, &q->max_lifetime);
	get_uint(ctx, g, "delay_warning", 0, 100 * 86400, &q->delay_warning);
	get_uint(ctx, g, "quota_warning", 0, 100, &q->quota_warning);
	get_uint(ctx, g, "min_backoff", 1, 86400, &q->min_backoff);
	get_uint(ctx, g, "max_backoff", 1, 86400, &q->max_backoff);
	get_uint(ctx, g, "max_deliveries", 1, 10000, &q->max_deliveries);
	get_uint(ctx, g, "destination_concurrency", 1, 1000, &q->destination_concurrency);
	get_uint(ctx, g, "max_connections", 1, 10000, &q->max_connections);
	get_uint(ctx, g, "connect_timeout", 1, 3600, &q->connect_timeout);
	get_uint(ctx, g, "command_timeout", 1, 3600, &q->command_timeout);
	get_uint(ctx, g, "port", 1, 65535, &q->port);
	get_uint(ctx, g, "bounce_size_limit", 0, 1u << 30, &q->bounce_size_limit);
	if ((s = member(ctx, g, "starttls", CONFIG_TYPE_BOOL)) != NULL)
		q->starttls = config_setting_get_bool(s);
	if ((s = member(ctx, g, "notify_postmaster", CONFIG_TYPE_BOOL)) != NULL)
		q->notify_postmaster = config_setting_get_bool(s);
	get_string(ctx, g, "relayhost", q->relayhost, sizeof(q->relayhost));
	get_string(ctx, g, "postmaster", q->postmaster, sizeof(q->postmaster));
	get_string(ctx, g, "archive", q->archive, sizeof(q->archive));
	if (q->max_backoff < q->min_backoff)
		load_error(ctx, g, "queue.max_backoff must not be smaller than queue.min_backoff");
	if ((s = config_setting_get_member(g, "transport")) != NULL) {
		if (config_setting_type(s) != CONFIG_TYPE_LIST && config_setting_type(s) != CONFIG_TYPE_ARRAY)
			load_error(ctx, s, "queue.transport must be a list of \"domain nexthop\" strings");
		else
			load_queue_transport(ctx, s);
	}
}

static void load_log(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "target", "file", "facility", "level", NULL };
	struct node_config *cfg = ctx->cfg;
	char buf[32];
	const config_setting_t *s;

	check_keys(ctx, g, keys, "log");
	if ((s = get_string(ctx, g, "target", buf, sizeof(buf))) != NULL) {
		if (strcmp(buf, "stderr") == 0)
			cfg->log.target = LOG_TARGET_STDERR;
		else if (strcmp(buf, "syslog") == 0)
			cfg->log.target = LOG_TARGET_SYSLOG;
		else if (strcmp(buf, "file") == 0)
			cfg->log.target = LOG_TARGET_FILE;
		else
			load_error(ctx, s, "log target '%s' is not one of stderr, syslog, file", buf);
	}
	if (config_setting_get_member(g, "file") != NULL)
		get_path(ctx, g, "file", cfg->log.file, sizeof(cfg->log.file));
	get_string(ctx, g, "facility", cfg->log.facility, sizeof(cfg->log.facility));
	if ((s = get_string(ctx, g, "level", buf, sizeof(buf))) != NULL) {
		int level = log_level_parse(buf);
		if (level < 0)
			load_error(ctx, s, "log level '%s' is not one of debug, info, notice, warning, err, crit", buf);
		else
			cfg->log.level = level;
	}
	if (cfg->log.target == LOG_TARGET_FILE && cfg->log.file[0] == '\0')
		load_error(ctx, g, "log target \"file\" needs log.file");
}

static void load_server(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "threads", "max_connections", "max_connections_per_address",
		"connection_input_limit", "connection_output_limit", "idle_timeout", "drain_timeout",
		"store_threads", NULL };
	struct node_config *cfg = ctx->cfg;

	check_keys(ctx, g, keys, "server");
	get_uint(ctx, g, "threads", 0, 256, &cfg->server.threads);
	get_uint(ctx, g, "max_connections", 0, 10000000, &cfg->server.max_connections);
	get_uint(ctx, g, "max_connections_per_address", 0, 10000000, &cfg->server.max_connections_per_address);
	get_size(ctx, g, "connection_input_limit", 4096, 64 << 20, &cfg->server.connection_input_limit);
	get_size(ctx, g, "connection_output_limit", 4096, 64 << 20, &cfg->server.connection_output_limit);
	get_uint(ctx, g, "idle_timeout", 0, 86400, &cfg->server.idle_timeout);
	get_uint(ctx, g, "drain_timeout", 0, 3600, &cfg->server.drain_timeout);
	get_uint(ctx, g, "store_threads", 1, 1024, &cfg->server.store_threads);
}

static void load_password(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "scheme", "cost", NULL };
	char buf[32];
	const config_setting_t *s;
	unsigned cost = (unsigned)ctx->cfg->password.cost;

	check_keys(ctx, g, keys, "password");
	if ((s = get_string(ctx, g, "scheme", buf, sizeof(buf))) != NULL &&
	    password_scheme_parse(buf, &ctx->cfg->password.scheme) < 0)
		load_error(ctx, s, "password scheme '%s' is not one of yescrypt, sha512-crypt, bcrypt", buf);
	const config_setting_t *c = config_setting_get_member(g, "cost");
	int before = ctx->nerrors;
	enum password_scheme scheme = ctx->cfg->password.scheme;
	unsigned long lo, hi;
	/* the default cost (2) is yescrypt's; another scheme named without a
	 * cost gets libcrypt's default for it */
	if (c == NULL && scheme != PASSWORD_YESCRYPT)
		cost = 0;
	get_uint(ctx, g, "cost", 0, UINT_MAX, &cost);
	/* checked here, or maild would fail to start (a reload: every
	 * password change would fail) on a cost the scheme refuses */
	if (ctx->nerrors == before && cost != 0 && password_cost_range(scheme, &lo, &hi) == 0 &&
	    (cost < lo || cost > hi))
		load_error(ctx, c != NULL ? c : g,
			   "password.cost = %u is out of range for %s: %lu..%lu, or 0 for libcrypt's "
			   "default", cost, password_scheme_name(scheme), lo, hi);
	ctx->cfg->password.cost = cost;
}

static void load_auth(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "failure_delay_initial_ms", "failure_delay_max_ms",
		"failure_forget_sec", "failure_table_size", "threads", "mechanisms", "hostname",
		"kerberos_keytab", "kerberos_default_realm", NULL };
	struct auth_settings *a = &ctx->cfg->auth;
	const config_setting_t *s;

	check_keys(ctx, g, keys, "auth");
	get_uint(ctx, g, "failure_delay_initial_ms", 0, 60000, &a->failure_delay_initial_ms);
	get_uint(ctx, g, "failure_delay_max_ms", 0, 600000, &a->failure_delay_max_ms);
	get_uint(ctx, g, "failure_forget_sec", 1, 86400, &a->failure_forget_sec);
	get_uint(ctx, g, "failure_table_size", 64, 16777216, &a->failure_table_size);
	get_uint(ctx, g, "threads", 0, 256, &ctx->cfg->auth_threads);
	if ((s = get_string(ctx, g, "mechanisms", a->mechanisms, sizeof(a->mechanisms))) != NULL) {
		const char *bad = NULL;
		if (auth_mechanism_list_check(a->mechanisms, &bad) < 0)
			load_error(ctx, s, "auth.mechanisms: '%s' is not one of PLAIN, LOGIN, CRAM-MD5, "
				   "DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256, GSSAPI", bad);
	}
	get_string(ctx, g, "hostname", a->hostname, sizeof(a->hostname));
	if (config_setting_get_member(g, "kerberos_keytab") != NULL)
		get_path(ctx, g, "kerberos_keytab", a->kerberos_keytab, sizeof(a->kerberos_keytab));
	get_string(ctx, g, "kerberos_default_realm", a->kerberos_default_realm,
		   sizeof(a->kerberos_default_realm));
	if (a->failure_delay_max_ms < a->failure_delay_initial_ms)
		load_error(ctx, g, "auth.failure_delay_max_ms is below failure_delay_initial_ms");
}

static void load_bool(struct load_ctx *ctx, const config_setting_t *g, const char *name, bool *out)
{
	const config_setting_t *s = member(ctx, g, name, CONFIG_TYPE_BOOL);
	if (s != NULL)
		*out = config_setting_get_bool(s);
}

static void load_storage(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "sync", "reader_locks", NULL };
	struct node_config *cfg = ctx->cfg;
	char buf[16];
	const config_setting_t *s;

	check_keys(ctx, g, keys, "storage");
	if ((s = get_string(ctx, g, "sync", buf, sizeof(buf))) != NULL) {
		if (strcmp(buf, "syncfs") == 0 || strcmp(buf, "fsync") == 0)
			cfg->storage.fsync_each = strcmp(buf, "fsync") == 0;
		else
			load_error(ctx, s, "storage.sync '%s' is not one of syncfs, fsync", buf);
	}
	load_bool(ctx, g, "reader_locks", &cfg->storage.reader_locks);
}

static void load_tls(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "min_protocol", "ciphers", "ciphersuites", "groups",
		"prefer_server_ciphers", "session_cache_size", "session_timeout", "ticket_key_rotation",
		"ticket_key_file", "request_client_certificate", "handshake_timeout", NULL };
	struct tls_settings *t = &ctx->cfg->tls;
	const config_setting_t *s;
	char buf[32];
	int before = ctx->nerrors;

	check_keys(ctx, g, keys, "tls");
	if ((s = get_string(ctx, g, "min_protocol", buf, sizeof(buf))) != NULL &&
	    tls_protocol_parse(buf, &t->min_protocol) < 0)
		load_error(ctx, s, "tls.min_protocol '%s' is not one of TLSv1.2, TLSv1.3", buf);
	get_string(ctx, g, "ciphers", t->ciphers, sizeof(t->ciphers));
	get_string(ctx, g, "ciphersuites", t->ciphersuites, sizeof(t->ciphersuites));
	get_string(ctx, g, "groups", t->groups, sizeof(t->groups));
	load_bool(ctx, g, "prefer_server_ciphers", &t->prefer_server_ciphers);
	get_uint(ctx, g, "session_cache_size", 0, 10000000, &t->session_cache_size);
	get_uint(ctx, g, "session_timeout", 1, 86400, &t->session_timeout);
	get_uint(ctx, g, "ticket_key_rotation", 0, 7 * 86400, &t->ticket_key_rotation);
	if (config_setting_get_member(g, "ticket_key_file") != NULL)
		get_path(ctx, g, "ticket_key_file", t->ticket_key_file, sizeof(t->ticket_key_file));
	load_bool(ctx, g, "request_client_certificate", &t->request_client_certificate);
	get_uint(ctx, g, "handshake_timeout", 1, 3600, &t->handshake_timeout);
	const char *error = NULL;
	if (ctx->nerrors == before && tls_settings_check(t, &error) < 0)
		load_error(ctx, g, "tls: %s", error);
}

static void load_service_tls(struct load_ctx *ctx, const config_setting_t *sg, int i)
{
	struct node_config_service *svc = &ctx->cfg->services[i];
	const config_setting_t *s;
	char buf[16];

	if ((s = get_string(ctx, sg, "tls_mode", buf, sizeof(buf))) != NULL) {
		int want = -1;
		if (strcmp(buf, "implicit") == 0)
			want = LISTENER_TLS_IMPLICIT;
		else if (strcmp(buf, "starttls") == 0)
			want = LISTENER_TLS_STARTTLS;
		else if (strcmp(buf, "none") == 0)
			want = LISTENER_TLS_NONE;
		bool ok = want == (int)default_tls[i] ||
			  (default_tls[i] == LISTENER_TLS_STARTTLS && want == LISTENER_TLS_NONE);
		if (!ok)
			load_error(ctx, s, "services.%s.tls_mode = \"%s\": this service allows %s", svc->name,
				   buf,
				   default_tls[i] == LISTENER_TLS_STARTTLS
					   ? "\"starttls\" or \"none\""
					   : default_tls[i] == LISTENER_TLS_IMPLICIT
						     ? "only \"implicit\" (disable the service instead)"
						     : "only \"none\" for now");
		else
			svc->tls = (enum listener_tls_mode)want;
	}
	if (config_setting_get_member(sg, "require_tls") != NULL) {
		load_bool(ctx, sg, "require_tls", &svc->require_tls);
		svc->require_tls_set = true;
	}
}

static void load_services(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "enabled", "address", "port", "tls_mode", "require_tls",
		NULL };

	check_keys(ctx, g, service_names, "services");
	for (int i = 0; i < SERVICE_COUNT; i++) {
		const config_setting_t *sg = member(ctx, g, service_names[i], CONFIG_TYPE_GROUP);
		struct node_config_service *svc = &ctx->cfg->services[i];
		const config_setting_t *s;
		unsigned port = (unsigned)svc->port;
		char where[48];

		if (sg == NULL)
			continue;
		snprintf(where, sizeof(where), "services.%s", service_names[i]);
		check_keys(ctx, sg, keys, where);
		if ((s = member(ctx, sg, "enabled", CONFIG_TYPE_BOOL)) != NULL)
			svc->enabled = config_setting_get_bool(s);
		get_string(ctx, sg, "address", svc->address, sizeof(svc->address));
		get_uint(ctx, sg, "port", 0, 65535, &port);
		svc->port = (int)port;
		load_service_tls(ctx, sg, i);
	}
}

/* A list of strings ["a", "b"] (or an array): the list setting, or NULL
 * after an error. */
static const config_setting_t *get_string_list(struct load_ctx *ctx, const config_setting_t *g,
					       const char *name)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	if (s == NULL)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		load_error(ctx, s, "'%s' must be a list of strings, like [\"a\", \"b\"]", name);
		return NULL;
	}
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			load_error(ctx, e, "'%s' must be a list of strings, like [\"a\", \"b\"]", name);
			return NULL;
		}
	}
	return s;
}

static void get_cidr_list(struct load_ctx *ctx, const config_setting_t *g, const char *name,
			  struct cidr_list *out)
{
	const config_setting_t *s = get_string_list(ctx, g, name);
	if (s == NULL)
		return;
	out->n = 0;
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *text = config_setting_get_string(e), *error = NULL;
		struct cidr net;
		if (cidr_parse(text, &net, &error) < 0)
			load_error(ctx, e, "'%s': \"%s\" is not a network: %s", name, text, error);
		else if (cidr_list_add(out, &net) < 0) {
			load_error(ctx, e, "'%s' has more than %d networks", name, CIDR_LIST_MAX);
			return;
		}
	}
}

/* Domains, lowercased; subdomains_ok lets ".example.org" stand for every
 * subdomain. Returns the count kept. */
static size_t get_domain_list(struct load_ctx *ctx, const config_setting_t *g, const char *name,
			      bool subdomains_ok, char (*out)[NODE_CONFIG_DOMAIN_SIZE], size_t max,
			      size_t old)
{
	const config_setting_t *s = get_string_list(ctx, g, name);
	size_t n = 0;
	if (s == NULL)
		return old;
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *text = config_setting_get_string(e), *error = NULL;
		bool dot = subdomains_ok && text[0] == '.';
		if (n == max) {
			load_error(ctx, e, "'%s' has more than %zu entries", name, max);
			break;
		}
		out[n][0] = '.';
		if (domain_normalize(text + dot, out[n] + dot, NODE_CONFIG_DOMAIN_SIZE - 1, &error) < 0)
			load_error(ctx, e, "'%s': \"%s\" is not a domain name: %s", name, text, error);
		else
			n++;
	}
	return n;
}

/* "addr" or "addr:port" ("[v6]:port" for IPv6 with a port), as
 * evdns_base_nameserver_ip_add takes it. */
static bool resolver_valid(const char *text)
{
	struct cidr a;
	const char *error, *colon;
	if (cidr_addr_parse(text, &a, &error) == 0)
		return true;
	if (cidr_peer_parse(text, &a) < 0 || (colon = strrchr(text, ':')) == NULL)
		return false;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	return colon[1] >= '1' && colon[1] <= '9' && *end == '\0' && port <= 65535;
}

static void load_smtp(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "max_message_size", "max_recipients", "trusted_networks",
		"relay_domains", "dnsbl", "dnsbl_exceptions", "resolver", "dnsbl_timeout",
		"max_messages_per_minute", "command_timeout", "data_timeout", NULL };
	struct node_config_smtp *smtp = &ctx->cfg->smtp;
	size_t size = (size_t)smtp->max_message_size;
	const config_setting_t *s;

	check_keys(ctx, g, keys, "smtp");
	get_size(ctx, g, "max_message_size", 1024, (uint64_t)1 << 34, &size);
	smtp->max_message_size = size;
	get_uint(ctx, g, "max_recipients", 1, 100000, &smtp->max_recipients);
	get_cidr_list(ctx, g, "trusted_networks", &smtp->trusted_networks);
	smtp->n_relay_domains = get_domain_list(ctx, g, "relay_domains", true, smtp->relay_domains,
						NODE_CONFIG_RELAY_DOMAINS_MAX, smtp->n_relay_domains);
	smtp->n_dnsbl = get_domain_list(ctx, g, "dnsbl", false, smtp->dnsbl, NODE_CONFIG_DNSBL_MAX,
					smtp->n_dnsbl);
	get_cidr_list(ctx, g, "dnsbl_exceptions", &smtp->dnsbl_exceptions);
	if ((s = get_string(ctx, g, "resolver", smtp->resolver, sizeof(smtp->resolver))) != NULL &&
	    smtp->resolver[0] != '\0' && !resolver_valid(smtp->resolver))
		load_error(ctx, s, "'resolver' must be an IP address, \"addr:port\" or \"[v6addr]:port\"");
	get_uint(ctx, g, "dnsbl_timeout", 1, 60, &smtp->dnsbl_timeout);
	get_uint(ctx, g, "max_messages_per_minute", 0, 1000000, &smtp->max_messages_per_minute);
	get_uint(ctx, g, "command_timeout", 1, 86400, &smtp->command_timeout);
	get_uint(ctx, g, "data_timeout", 1, 86400, &smtp->data_timeout);
}

static void load_root(struct load_ctx *ctx, const config_setting_t *root)
{
	static const char *const keys[] = { "node_id", "store", "run_dir", "user", "hostname", "log",
		"server", "storage", "control", "password", "tls", "auth", "smtp", "queue", "services",
		NULL };
	static const char *const control_keys[] = { "tcp", NULL };
	struct node_config *cfg = ctx->cfg;
	const config_setting_t *g;

	check_keys(ctx, root, keys, "the top level");
	get_uint(ctx, root, "node_id", 1, 65535, &cfg->node_id);
	get_path(ctx, root, "store", cfg->store_dir, sizeof(cfg->store_dir));
	if (config_setting_get_member(root, "run_dir") != NULL) {
		get_path(ctx, root, "run_dir", cfg->run_dir, sizeof(cfg->run_dir));
		cfg->run_dir_set = true;
	}
	get_string(ctx, root, "user", cfg->user, sizeof(cfg->user));
	if ((g = member(ctx, root, "log", CONFIG_TYPE_GROUP)) != NULL)
		load_log(ctx, g);
	if ((g = member(ctx, root, "queue", CONFIG_TYPE_GROUP)) != NULL)
		load_queue(ctx, g);
	if ((g = member(ctx, root, "server", CONFIG_TYPE_GROUP)) != NULL)
		load_server(ctx, g);
	if ((g = member(ctx, root, "storage", CONFIG_TYPE_GROUP)) != NULL)
		load_storage(ctx, g);
	if ((g = member(ctx, root, "control", CONFIG_TYPE_GROUP)) != NULL) {
		const config_setting_t *s;
		check_keys(ctx, g, control_keys, "control");
		if ((s = get_string(ctx, g, "tcp", cfg->control.tcp, sizeof(cfg->control.tcp))) != NULL &&
		    cfg->control.tcp[0] != '\0' && strncmp(cfg->control.tcp, "tcp://", 6) != 0)
			load_error(ctx, s, "control.tcp must be a ZeroMQ tcp:// endpoint");
	}
	if ((g = member(ctx, root, "password", CONFIG_TYPE_GROUP)) != NULL)
		load_password(ctx, g);
	if ((g = member(ctx, root, "tls", CONFIG_TYPE_GROUP)) != NULL)
		load_tls(ctx, g);
	if ((g = member(ctx, root, "auth", CONFIG_TYPE_GROUP)) != NULL)
		load_auth(ctx, g);
	if ((g = member(ctx, root, "smtp", CONFIG_TYPE_GROUP)) != NULL)
		load_smtp(ctx, g);
	if (config_setting_get_member(root, "hostname") != NULL) {
		const config_setting_t *s = get_string(ctx, root, "hostname", cfg->hostname, sizeof(cfg->hostname));
		if (s != NULL && (cfg->hostname[0] == '\0' || strpbrk(cfg->hostname, " \t\r\n") != NULL))
			load_error(ctx, s, "'hostname' must be a host name without spaces");
	}
	if ((g = member(ctx, root, "services", CONFIG_TYPE_GROUP)) != NULL)
		load_services(ctx, g);
}

int node_config_load(const char *path, struct node_config **cfg_r, struct textbuf *errors)
{
	struct node_config *cfg = calloc(1, sizeof(*cfg));
	config_t lc;

	if (cfg == NULL) {
		textbuf_puts(errors, "out of memory\n");
		return -1;
	}
	node_config_defaults(cfg);
	if (path == NULL) {
		derive_run_dir(cfg);
		derive_require_tls(cfg);
		*cfg_r = cfg;
		return 0;
	}
	snprintf(cfg->source, sizeof(cfg->source), "%s", path);
	config_init(&lc);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			textbuf_printf(errors, "%s: cannot read: %s\n", path, strerror(errno));
		else
			textbuf_printf(errors, "%s:%d: %s\n", config_error_file(&lc) ? config_error_file(&lc) : path,
				      config_error_line(&lc), config_error_text(&lc));
		config_destroy(&lc);
		free(cfg);
		return -1;
	}
	struct load_ctx ctx = { .cfg = cfg, .file = path, .errors = errors };
	load_root(&ctx, config_root_setting(&lc));
	config_destroy(&lc);
	if (ctx.nerrors > 0) {
		free(cfg);
		return -1;
	}
	derive_run_dir(cfg);
	derive_require_tls(cfg);
	*cfg_r = cfg;
	return 0;
}

int node_config_set_store(struct node_config *cfg, const char *dir, struct textbuf *errors)
{
	if (dir[0] == '\0' || absolute_path(dir, cfg->store_dir, sizeof(cfg->store_dir)) < 0) {
		textbuf_printf(errors, "--store %s: not a usable path\n", dir);
		return -1;
	}
	derive_run_dir(cfg);
	return 0;
}

void node_config_set_user(struct node_config *cfg, const char *user)
{
	snprintf(cfg->user, sizeof(cfg->user), "%s", user);
}

void node_config_store_options(const struct node_config *cfg, const char *node_id,
			       struct store_options *o)
{
	*o = (struct store_options){
		.node_id = node_id,
		.sync_mode = cfg->storage.fsync_each ? STORE_SYNC_FILES : STORE_SYNC_SYNCFS,
		.reader_locks = cfg->storage.reader_locks,
	};
}

void node_config_free(struct node_config **cfg)
{
	free(*cfg);
	*cfg = NULL;
}
