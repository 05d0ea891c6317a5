/*
 * Configuration loading with libconfig (see config.h). The embedded
 * defaults live in one table-like function (node_config_defaults) and every key
 * a file may set is listed in the schema tables below: an unknown key is
 * an error, so a typo never silently leaves a default in place.
 */
#include "node/node_config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

const char *node_config_service_name(enum node_config_service_id id)
{
	return id < SERVICE_COUNT ? service_names[id] : "?";
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
	cfg->password.scheme = PASSWORD_YESCRYPT;
	cfg->password.cost = 2;
	for (int i = 0; i < SERVICE_COUNT; i++) {
		cfg->services[i].name = service_names[i];
		cfg->services[i].enabled = true;
		snprintf(cfg->services[i].address, sizeof(cfg->services[i].address), "127.0.0.1");
		cfg->services[i].port = default_ports[i];
	}
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
		"connection_input_limit", "connection_output_limit", "idle_timeout", "drain_timeout", NULL };
	struct node_config *cfg = ctx->cfg;

	check_keys(ctx, g, keys, "server");
	get_uint(ctx, g, "threads", 0, 256, &cfg->server.threads);
	get_uint(ctx, g, "max_connections", 0, 10000000, &cfg->server.max_connections);
	get_uint(ctx, g, "max_connections_per_address", 0, 10000000, &cfg->server.max_connections_per_address);
	get_size(ctx, g, "connection_input_limit", 4096, 64 << 20, &cfg->server.connection_input_limit);
	get_size(ctx, g, "connection_output_limit", 4096, 64 << 20, &cfg->server.connection_output_limit);
	get_uint(ctx, g, "idle_timeout", 0, 86400, &cfg->server.idle_timeout);
	get_uint(ctx, g, "drain_timeout", 0, 3600, &cfg->server.drain_timeout);
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
	get_uint(ctx, g, "cost", 0, 1000000000, &cost);
	ctx->cfg->password.cost = cost;
}

static void load_services(struct load_ctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "enabled", "address", "port", NULL };

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
	}
}

static void load_root(struct load_ctx *ctx, const config_setting_t *root)
{
	static const char *const keys[] = { "node_id", "store", "run_dir", "user", "log", "server",
		"control", "password", "services", NULL };
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
	if ((g = member(ctx, root, "server", CONFIG_TYPE_GROUP)) != NULL)
		load_server(ctx, g);
	if ((g = member(ctx, root, "control", CONFIG_TYPE_GROUP)) != NULL) {
		const config_setting_t *s;
		check_keys(ctx, g, control_keys, "control");
		if ((s = get_string(ctx, g, "tcp", cfg->control.tcp, sizeof(cfg->control.tcp))) != NULL &&
		    cfg->control.tcp[0] != '\0' && strncmp(cfg->control.tcp, "tcp://", 6) != 0)
			load_error(ctx, s, "control.tcp must be a ZeroMQ tcp:// endpoint");
	}
	if ((g = member(ctx, root, "password", CONFIG_TYPE_GROUP)) != NULL)
		load_password(ctx, g);
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

void node_config_free(struct node_config **cfg)
{
	free(*cfg);
	*cfg = NULL;
}
