/*
 * maild: the clustermail node daemon.
 *
 *   maild [-c FILE] [--store DIR] [--user NAME] [--foreground] [--check-config]
 *
 * Startup order matters for safety: configuration, logging, bind every
 * listening socket (as root if need be), drop to the service user, take
 * the node lock, load the TLS certificates from the store, open the
 * directory, set up authentication (libsasl2 once per process, the
 * password-checking threads), start the control plane, then the
 * workers. Signals are handled on the main thread's event loop: SIGHUP
 * reloads the configuration (with the auth delays and mechanisms and the
 * password cost; what the running parts took at start keeps its value,
 * named in a warning) and the certificates, SIGTERM/SIGINT drain
 * (bounded by server.drain_timeout). `mailctl cert reload` reloads the certificates
 * alone, on the control thread; a failed reload keeps what is served.
 * Fatal signals dump the libqb blackbox to <run_dir>/maild.blackbox.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fd_limit.h"
#include "node/auth.h"
#include "node/auth_pool.h"
#include "node/job_pool.h"
#include "node/queue_manager.h"
#include "node/commands.h"
#include "node/node_config.h"
#include "node/outbound_self.h"
#include "node/control.h"
#include "node/daemonize.h"
#include "node/listener.h"
#include "node/log.h"
#include "node/node_lock.h"
#include "node/privilege.h"
#include "node/services.h"
#include "node/smtp_policy.h"
#include "node/tls.h"
#include "storage/directory.h"
#include "storage/store.h"

struct maild {
	struct node_config *cfg;
	/* A mailctl command (control thread) runs on the configuration it
	 * found at its start; a reload (main thread) that replaces it then
	 * retires it instead of freeing it, and the command's end frees it.
	 * cfg_lock guards the swap and these three, never a whole command. */
	pthread_mutex_t cfg_lock;
	const struct node_config *command_cfg; /* the running command's (control thread) */
	struct node_config *retired;
	const char *config_path;
	const char *store_override;
	const char *user_override;
	time_t started;
	struct event_base *base;
	struct listener *listener;
	struct control_server *control;
	struct directory *dir;
	struct tls_server *tls;
	struct auth *auth;
	struct auth_pool *auth_pool; /* the protocols' auth_iface (auth_pool_iface()) */
	struct store *store;
	struct job_pool *jobs;
	struct queue_manager *queue;
	struct service_env svc_env;
	struct smtp_policy *smtp_policy;
	struct service_instance instances[SERVICE_COUNT];
	struct command_env env;
	int lock_fd;
	int bound_ports[SERVICE_COUNT];
};

#define DIRECTORY_LOCK_RETRIES 50 /* x 100 ms */

static char blackbox_path[1200];

static void fatal_signal(int sig)
{
	log_blackbox_dump(blackbox_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_fatal_handlers(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], fatal_signal);
	signal(SIGPIPE, SIG_IGN);
}

static void limits_from_config(const struct node_config *cfg, struct listener_limits *l)
{
	*l = (struct listener_limits){
		.threads = cfg->server.threads,
		.max_connections = cfg->server.max_connections,
		.max_per_address = cfg->server.max_connections_per_address,
		.max_input = cfg->server.connection_input_limit,
		.max_output = cfg->server.connection_output_limit,
		.idle_timeout_sec = cfg->server.idle_timeout,
	};
}

static int apply_logging(const struct node_config *cfg, bool foreground)
{
	const char *error = NULL;
	enum log_target target = cfg->log.target;

	if (foreground)
		target = LOG_TARGET_STDERR;
	else if (target == LOG_TARGET_STDERR)
		target = LOG_TARGET_SYSLOG; /* nobody reads a daemon's stderr */
	if (log_configure(target, cfg->log.file, cfg->log.facility, cfg->log.level, &error) < 0) {
		log_error("config", "cannot configure logging: %s", error);
		return -1;
	}
	return 0;
}

static void format_uptime(time_t secs, char *out, size_t size)
{
	snprintf(out, size, "%lldd %02lld:%02lld:%02lld", (long long)secs / 86400,
		 (long long)(secs % 86400) / 3600, (long long)(secs % 3600) / 60, (long long)secs % 60);
}

static void status_report(struct textbuf *out, void *ctx)
{
	struct maild *d = ctx;
	const struct node_config *cfg = d->command_cfg; /* a command's: control thread */
	struct listener_service_stats stats[SERVICE_COUNT];
	size_t n = listener_stats(d->listener, stats, SERVICE_COUNT);
	char uptime[48];

	format_uptime(time(NULL) - d->started, uptime, sizeof(uptime));
	textbuf_printf(out, "clustermail %s\n", CM_VERSION);
	textbuf_printf(out, "node:        %u\n", cfg->node_id);
	textbuf_printf(out, "pid:         %ld\n", (long)getpid());
	textbuf_printf(out, "uptime:      %s\n", uptime);
	textbuf_printf(out, "config:      %s\n", cfg->source);
	textbuf_printf(out, "store:       %s\n", cfg->store_dir);
	textbuf_printf(out, "run dir:     %s\n", cfg->run_dir);
	textbuf_printf(out, "connections: %u active (limit %u, %u per address)\n",
		      listener_active_total(d->listener), cfg->server.max_connections,
		      cfg->server.max_connections_per_address);
	textbuf_puts(out, "services:\n");
	for (size_t i = 0; i < n; i++) {
		int id = node_config_service_id(stats[i].name);
		const struct node_config_service *svc = id >= 0 ? &cfg->services[id] : NULL;
		textbuf_printf(out, "  %-11s %s:%d  active=%u accepted=%lu refused=%lu tls=%s%s%s\n",
			      stats[i].name, stats[i].address, stats[i].port, stats[i].active,
			      stats[i].accepted, stats[i].refused,
			      svc != NULL ? node_config_tls_mode_name(svc->tls) : "?",
			      svc != NULL && svc->tls != LISTENER_TLS_NONE &&
					      !tls_server_has_certificate(d->tls, svc->name)
				      ? " (no certificate)"
				      : "",
			      svc != NULL && svc->require_tls ? " require_tls" : "");
	}
	for (int i = 0; i < SERVICE_COUNT; i++)
		if (services_engine((enum node_config_service_id)i) == NULL)
			textbuf_printf(out, "  %-11s not served: its protocol engine is not built yet\n",
				      node_config_service_name((enum node_config_service_id)i));
		else if (!cfg->services[i].enabled)
			textbuf_printf(out, "  %-11s disabled in the configuration\n",
				      node_config_service_name((enum node_config_service_id)i));
	if (d->auth != NULL)
		auth_stats_format(d->auth, out);
}

/* The auth group plus the site's password hashing (for the dummy hash
 * unknown users are checked against). */
static void auth_settings_of(const struct node_config *cfg, struct auth_settings *set)
{
	*set = cfg->auth;
	set->password_scheme = cfg->password.scheme;
	set->password_cost = cfg->password.cost;
	set->now_ms = NULL;
}

/* SASL and the authentication threads: after the directory, before any
 * thread that may authenticate. */
static int start_auth(struct maild *d, const char **error_r)
{
	struct auth_settings set;
	auth_settings_of(d->cfg, &set);
	if (auth_create(&set, d->dir, &d->auth, error_r) < 0 ||
	    auth_pool_new(d->auth, d->cfg->auth_threads, &d->auth_pool, error_r) < 0)
		return -1;
	char list[256];
	auth_mechanisms(d->auth, true, true, list, sizeof(list));
	log_info("auth", "mechanisms: %s%s; failure delay %u..%u ms", list[0] ? list : "(none)",
		 auth_apop_available(d->auth) ? " APOP" : "", set.failure_delay_initial_ms,
		 set.failure_delay_max_ms);
	return 0;
}

static void publish_event(const char *topic, const char *text, void *ctx)
{
	struct maild *d = ctx;
	control_publish(d->control, topic, "%s", text);
	log_info("control", "%s %s", topic, text);
}

/* Services publish their own events; they log them themselves. */
static void service_event(const char *topic, const char *text, void *ctx)
{
	struct maild *d = ctx;
	control_publish(d->control, topic, "%s", text);
}

/* The mail store, the job threads that touch it, and what every protocol
 * service gets (node/services.h). */
static int start_store(struct maild *d, const char **error_r)
{
	char node[16];
	snprintf(node, sizeof(node), "node%u", d->cfg->node_id);
	struct store_options opts;
	node_config_store_options(d->cfg, node, &opts);
	if (store_open(d->cfg->store_dir, &opts, &d->store, error_r) < 0 ||
	    job_pool_new(d->cfg->server.store_threads, &d->jobs, error_r) < 0 ||
	    smtp_policy_new(&d->cfg->smtp, &d->smtp_policy, error_r) < 0)
		return -1;
	log_info("store", "opened %s: sync=%s reader_locks=%s store_threads=%u", d->cfg->store_dir,
		 opts.sync_mode == STORE_SYNC_FILES ? "fsync" : "syncfs", opts.reader_locks ? "yes" : "no",
		 d->cfg->server.store_threads);
	d->svc_env = (struct service_env){
		.node_id = d->cfg->node_id,
		.dir = d->dir,
		.store = d->store,
		.jobs = d->jobs,
		.auth = auth_pool_iface(),
		.auth_ctx = d->auth_pool,
		.smtp_max_message_size = d->cfg->smtp.max_message_size,
		.smtp_max_recipients = d->cfg->smtp.max_recipients,
		.quota_warning = d->cfg->queue.quota_warning,
		.smtp_policy = d->smtp_policy,
		.publish = service_event,
		.publish_ctx = d,
	};
	snprintf(d->svc_env.hostname, sizeof(d->svc_env.hostname), "%s", d->cfg->hostname);
	d->queue = queue_manager_new(&d->svc_env, d->cfg, error_r);
	if (d->queue == NULL)
		return -1;
	d->svc_env.queue = d->queue;
	snprintf(d->svc_env.archive, sizeof(d->svc_env.archive), "%s", d->cfg->queue.archive);
	return 0;
}

static void listener_event(const char *event, const struct conn_info *info, void *ctx)
{
	struct maild *d = ctx;
	control_publish(d->control, event, "id=%llu service=%s peer=%s", (unsigned long long)info->id,
			info->service, info->peer);
}

/* Reloads the certificates (SIGHUP or mailctl); logs the outcome. */
static int reload_tls(struct maild *d, const char *why, struct textbuf *out, struct textbuf *err)
{
	struct textbuf summary = TEXTBUF_INIT, errors = TEXTBUF_INIT;
	int rc = tls_server_reload(d->tls, &summary, &errors);
	if (rc < 0) {
		/* one line per problem, so that each can be grepped */
		const char *p = textbuf_str(&errors);
		while (*p != '\0') {
			size_t n = strcspn(p, "\n");
			log_error("tls", "reload (%s) refused, still serving the previous certificates: %.*s",
				  why, (int)n, p);
			p += n + (p[n] == '\n');
		}
		if (err != NULL)
			textbuf_printf(err, "cert reload refused, still serving the previous certificates:\n%s",
				       textbuf_str(&errors));
	} else {
		log_info("tls", "reloaded (%s): %s", why, textbuf_str(&summary));
		control_publish(d->control, "tls", "event=reload %s", textbuf_str(&summary));
		if (out != NULL)
			textbuf_printf(out, "certificates reloaded: %s\n", textbuf_str(&summary));
	}
	textbuf_free(&summary);
	textbuf_free(&errors);
	return rc;
}

static int control_tls_reload(struct textbuf *out, struct textbuf *err, void *ctx)
{
	return reload_tls(ctx, "mailctl", out, err);
}

static int control_handle(int argc, char **argv, struct textbuf *out, struct textbuf *err, void *ctx)
{
	struct maild *d = ctx;
	pthread_mutex_lock(&d->cfg_lock);
	struct command_env env = d->env;
	d->command_cfg = env.cfg = d->cfg;
	pthread_mutex_unlock(&d->cfg_lock);
	int rc = commands_run(&env, argc, argv, out, err);
	pthread_mutex_lock(&d->cfg_lock);
	d->command_cfg = NULL;
	node_config_free(&d->retired);
	pthread_mutex_unlock(&d->cfg_lock);
	return rc;
}

static void service_tls(const struct node_config *cfg, int i, struct listener_tls *tls)
{
	*tls = (struct listener_tls){
		.mode = cfg->services[i].tls,
		.require_tls = cfg->services[i].require_tls,
		.handshake_timeout_sec = cfg->tls.handshake_timeout,
	};
}

/* Binds every enabled service whose engine exists (the listener logs each
 * bind and each failure with service, address and port). */
static int bind_services(struct maild *d, const char **error_r)
{
	for (int i = 0; i < SERVICE_COUNT; i++) {
		const struct node_config_service *svc = &d->cfg->services[i];
		const struct service_ops *ops = services_engine((enum node_config_service_id)i);
		struct listener_tls tls;
		if (ops == NULL || !svc->enabled)
			continue;
		service_tls(d->cfg, i, &tls);
		d->instances[i] = (struct service_instance){ .env = &d->svc_env,
							     .id = (enum node_config_service_id)i };
		if (listener_add_service(d->listener, svc->name, ops, &d->instances[i], svc->address, svc->port,
					 &d->bound_ports[i], error_r) < 0 ||
		    listener_service_set_tls(d->listener, svc->name, &tls, error_r) < 0)
			return -1;
	}
	return 0;
}

/* The queue never sends to this node's own SMTP listeners, as bound, nor
 * to an MX host named as this node (node/outbound_self.h). */
static void register_self(const struct maild *d)
{
	static const enum node_config_service_id smtp[] = {SERVICE_SMTP, SERVICE_SUBMISSION,
							    SERVICE_SMTPS};
	struct outbound_self self = {0};
	snprintf(self.hostname, sizeof(self.hostname), "%s", d->cfg->hostname);
	for (size_t i = 0; i < sizeof(smtp) / sizeof(smtp[0]); i++) {
		const struct node_config_service *svc = &d->cfg->services[smtp[i]];
		if (services_engine(smtp[i]) != NULL && svc->enabled &&
		    outbound_self_add(&self, svc->address, (uint16_t)d->bound_ports[smtp[i]]) < 0)
			log_warning("queue", "service=%s: %s is not recognised as this node by the "
					     "queue's loop check",
				    svc->name, svc->address);
	}
	queue_manager_set_self(d->queue, &self);
}

/* Loads the certificates; an implicit-TLS service without one cannot
 * serve at all, a STARTTLS service without one serves without STARTTLS. */
static int start_tls(struct maild *d, const char **error_r)
{
	static char error[512];
	if (tls_server_create(&d->cfg->tls, d->cfg->store_dir, &d->tls, error_r) < 0)
		return -1;
	struct textbuf errors = TEXTBUF_INIT;
	if (reload_tls(d, "startup", NULL, &errors) < 0) {
		/* the first reason is what a waiting parent prints */
		const char *text = textbuf_str(&errors);
		const char *first = strchr(text, '\n');
		first = first != NULL ? first + 1 : text;
		snprintf(error, sizeof(error), "cannot load the TLS certificates: %.*s",
			 (int)strcspn(first, "\n"), first);
		textbuf_free(&errors);
		*error_r = error;
		return -1;
	}
	textbuf_free(&errors);
	listener_set_tls_server(d->listener, d->tls);
	for (int i = 0; i < SERVICE_COUNT; i++) {
		const struct node_config_service *svc = &d->cfg->services[i];
		if (services_engine((enum node_config_service_id)i) == NULL || !svc->enabled ||
		    svc->tls == LISTENER_TLS_NONE || tls_server_has_certificate(d->tls, svc->name))
			continue;
		if (svc->tls == LISTENER_TLS_IMPLICIT) {
			snprintf(error, sizeof(error),
				 "service %s is TLS-only and has no certificate: mailctl cert generate "
				 "or import, then mailctl cert assign NAME --default",
				 svc->name);
			*error_r = error;
			return -1;
		}
		log_warning("tls", "service=%s has no certificate: STARTTLS is not offered", svc->name);
	}
	return 0;
}

/* Settings the running parts took at start and cannot take again: each
 * changed one is named in a warning and keeps its running value, so that
 * the configuration maild reports is the one it runs. A string is
 * compared up to its NUL, anything else byte for byte. The services'
 * listening addresses and TLS modes are kept below, per service. */
#define RESTART_ONLY(field, name, text)                                                          \
	{ name, offsetof(struct node_config, field), sizeof(((struct node_config *)0)->field), \
	  text }

static const struct restart_only {
	const char *name;
	size_t offset, size;
	bool text;
} restart_only[] = {
	RESTART_ONLY(node_id, "node_id", false),
	RESTART_ONLY(store_dir, "store", true),
	RESTART_ONLY(run_dir, "run_dir", true),
	RESTART_ONLY(user, "user", true),
	/* copied into every service's environment and the queue manager */
	RESTART_ONLY(hostname, "hostname", true),
	/* bound once by the control server */
	RESTART_ONLY(control.tcp, "control.tcp", true),
	RESTART_ONLY(server.threads, "server.threads", false),
	RESTART_ONLY(server.store_threads, "server.store_threads", false),
	RESTART_ONLY(storage, "storage", false),
	RESTART_ONLY(log, "log", false),
	RESTART_ONLY(queue, "queue", false),
	RESTART_ONLY(smtp.max_message_size, "smtp.max_message_size", false),
	RESTART_ONLY(smtp.max_recipients, "smtp.max_recipients", false),
	RESTART_ONLY(auth_threads, "auth.threads", false),
	/* sizes the failure tables: resizing would forget every failure */
	RESTART_ONLY(auth.failure_table_size, "auth.failure_table_size", false),
	RESTART_ONLY(auth.hostname, "auth.hostname", true),
	RESTART_ONLY(auth.kerberos_keytab, "auth.kerberos_keytab", true),
	RESTART_ONLY(auth.kerberos_default_realm, "auth.kerberos_default_realm", true),
};

static void keep_restart_only(struct node_config *fresh, const struct node_config *run)
{
	for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]); i++) {
		const struct restart_only *r = &restart_only[i];
		char *to = (char *)fresh + r->offset;
		const char *from = (const char *)run + r->offset;
		if (r->text ? strcmp(to, from) != 0 : memcmp(to, from, r->size) != 0)
			log_warning("config", "%s changes only on restart; keeping the running value",
				    r->name);
		memcpy(to, from, r->size);
	}
	/* A service's require_tls changes at once; the rest of it does not.
	 * An explicit require_tls is taken as written; a derived one is
	 * derived again from the running address and TLS mode, since it was
	 * worked out from the file's: a listener kept on 0.0.0.0 whose file
	 * now says 127.0.0.1 must not turn plaintext logins on. */
	for (int i = 0; i < SERVICE_COUNT; i++) {
		struct node_config_service *f = &fresh->services[i];
		const struct node_config_service *r = &run->services[i];
		if (f->tls != r->tls)
			log_warning("config", "service=%s: the TLS mode changes only on restart",
				    f->name);
		if (f->port != r->port || f->enabled != r->enabled ||
		    strcmp(f->address, r->address) != 0)
			log_warning("config", "service=%s: listening address changes only on restart",
				    f->name);
		bool require_tls = f->require_tls, require_tls_set = f->require_tls_set;
		*f = *r;
		f->require_tls = require_tls;
		f->require_tls_set = require_tls_set;
		node_config_service_derive_require_tls(f);
	}
}

static void reload(struct maild *d)
{
	struct node_config *fresh = NULL;
	struct textbuf errors = TEXTBUF_INIT;
	struct listener_limits limits;

	if (node_config_load(d->config_path, &fresh, &errors) < 0 ||
	    (d->store_override && node_config_set_store(fresh, d->store_override, &errors) < 0)) {
		log_error("config", "reload refused, keeping the running configuration: %s",
			  textbuf_str(&errors));
		textbuf_free(&errors);
		node_config_free(&fresh);
		return;
	}
	textbuf_free(&errors);
	keep_restart_only(fresh, d->cfg);
	pthread_mutex_lock(&d->cfg_lock);
	struct node_config *old = d->cfg;
	d->cfg = fresh;
	d->env.cfg = fresh;
	if (old == d->command_cfg) /* NULL when no command runs */
		d->retired = old; /* the command's end frees it */
	else
		node_config_free(&old);
	pthread_mutex_unlock(&d->cfg_lock);
	limits_from_config(fresh, &limits);
	listener_set_limits(d->listener, &limits);
	struct auth_settings auth_set;
	auth_settings_of(fresh, &auth_set);
	auth_configure(d->auth, &auth_set);
	for (int i = 0; i < SERVICE_COUNT; i++) {
		struct listener_tls tls;
		const char *error = NULL;
		if (services_engine((enum node_config_service_id)i) == NULL || !fresh->services[i].enabled)
			continue;
		service_tls(fresh, i, &tls);
		if (listener_service_set_tls(d->listener, fresh->services[i].name, &tls, &error) < 0)
			log_warning("config", "%s", error);
	}
	tls_server_set_settings(d->tls, &fresh->tls);
	if (d->smtp_policy != NULL)
		smtp_policy_configure(d->smtp_policy, &fresh->smtp);
	/* TLS settings live in the contexts of a certificate set: refused,
	 * the running set keeps the old ones, and says so */
	if (reload_tls(d, "SIGHUP", NULL, NULL) < 0)
		log_warning("config", "tls settings not applied: the certificates were refused; "
			    "they take effect with the next certificate reload that succeeds");
	log_info("config", "reloaded %s: max_connections=%u per_address=%u", fresh->source,
		 fresh->server.max_connections, fresh->server.max_connections_per_address);
	control_publish(d->control, "node", "event=reload config=%s", fresh->source);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct maild *d = arg;
	(void)what;
	if (sig == SIGHUP) {
		log_info("node", "SIGHUP: reloading configuration");
		reload(d);
		return;
	}
	log_notice("node", "%s: draining connections (up to %u s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		   d->cfg->server.drain_timeout);
	event_base_loopbreak(d->base);
}

static int print_check(const struct node_config *cfg)
{
	printf("%s: configuration OK\n", cfg->source);
	printf("node_id %u, store %s, run_dir %s, user %s\n", cfg->node_id, cfg->store_dir, cfg->run_dir,
	       cfg->user);
	for (int i = 0; i < SERVICE_COUNT; i++)
		printf("service %-11s %s %s:%d tls=%s require_tls=%s%s\n", cfg->services[i].name,
		       cfg->services[i].enabled ? "enabled " : "disabled", cfg->services[i].address,
		       cfg->services[i].port, node_config_tls_mode_name(cfg->services[i].tls),
		       cfg->services[i].require_tls ? "yes" : "no",
		       services_engine((enum node_config_service_id)i) ? "" : " (engine not built yet)");
	return 0;
}

/* An offline mailctl may hold the directory for a moment: wait for it,
 * briefly, rather than fail the start. */
static int open_directory(const char *path, struct directory **dir_r, const char **error_r)
{
	for (int attempt = 0;; attempt++) {
		int rc = directory_open(path, DIRECTORY_WRITER, NULL, dir_r, error_r);
		if (rc != DIRECTORY_E_LOCKED || attempt >= DIRECTORY_LOCK_RETRIES)
			return rc < 0 ? -1 : 0;
		if (attempt == 0)
			log_notice("directory", "%s is busy (an offline mailctl?); waiting", path);
		usleep(100 * 1000);
	}
}

/* Everything between configuration and serving. On failure logs why and
 * returns -1 (the message is also handed to a waiting parent). */
static int start(struct maild *d)
{
	struct service_identity id;
	struct listener_limits limits;
	const char *error = NULL;
	char path[1200];

	if (privilege_lookup(d->cfg->user, &id, &error) < 0 ||
	    privilege_mkdir(&id, d->cfg->store_dir, 0750, &error) < 0 ||
	    privilege_mkdir(&id, d->cfg->run_dir, 0750, &error) < 0 ||
	    privilege_check_private_dir(&id, d->cfg->run_dir, &error) < 0)
		goto fail;
	snprintf(blackbox_path, sizeof(blackbox_path), "%s/maild.blackbox", d->cfg->run_dir);
	limits_from_config(d->cfg, &limits);
	if (listener_create(&limits, &d->listener, &error) < 0)
		goto fail;
	listener_set_event_hook(d->listener, listener_event, d);
	if (bind_services(d, &error) < 0)
		goto fail;
	if (privilege_drop(&id, &error) < 0)
		goto fail;
	if (geteuid() == 0)
		log_warning("node", "running as root: set 'user' to an unprivileged account");
	else if (id.drop)
		log_info("node", "dropped privileges to user=%s uid=%u", id.name, (unsigned)id.uid);
	d->lock_fd = node_lock_acquire(d->cfg->store_dir, d->cfg->node_id, &error);
	if (d->lock_fd < 0)
		goto fail;
	if (start_tls(d, &error) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/directory", d->cfg->store_dir);
	if (open_directory(path, &d->dir, &error) < 0)
		goto fail;
	if (start_auth(d, &error) < 0 || start_store(d, &error) < 0)
		goto fail;
	register_self(d);
	d->env = (struct command_env){ .cfg = d->cfg, .dir = d->dir, .status = status_report,
				       .publish = publish_event, .tls_reload = control_tls_reload,
				       .ctx = d };
	d->env.auth = d->auth;
	d->env.store = d->store;
	d->env.queue = d->queue;
	if (control_server_start(d->cfg->run_dir, d->cfg->control.tcp, d->cfg->node_id, control_handle, d,
				 &d->control, &error) < 0)
		goto fail;
	if (listener_start(d->listener, &error) < 0 || queue_manager_start(d->queue, &error) < 0)
		goto fail;
	return 0;
fail:
	log_error("node", "startup failed: %s", error ? error : "unknown error");
	daemonize_failed(error ? error : "startup failed");
	return -1;
}

static void stop(struct maild *d)
{
	if (d->listener != NULL) {
		unsigned forced = listener_drain(d->listener, d->cfg->server.drain_timeout);
		if (forced > 0)
			log_warning("node", "drain timeout: closed %u connections by force", forced);
	}
	/* No command may reach the queue manager once its loop has stopped
	 * (a `mailctl queue` step posted to a gone loop would wait forever). */
	control_server_halt(d->control);
	/* The queue's attempts end (their messages stay queued) while the job
	 * threads still run their last steps. */
	queue_manager_stop(d->queue);
	/* Store work still running finishes before the workers' event bases
	 * are freed (a job of a force-closed connection may still be writing). */
	job_pool_free(&d->jobs);
	/* the DNSBL resolvers live on the workers' event bases */
	smtp_policy_free(&d->smtp_policy);
	/* The workers' last pass runs the completions of jobs that outlived
	 * their force-closed connections: a spool commit's tells the queue
	 * manager of its message, which must still exist. */
	listener_destroy(&d->listener);
	queue_manager_free(&d->queue);
	control_server_stop(&d->control);
	store_close(&d->store);
	auth_pool_free(&d->auth_pool); /* after the connections, before the directory */
	auth_destroy(&d->auth);
	tls_server_destroy(&d->tls);
	if (d->dir != NULL)
		directory_close(&d->dir);
	if (d->lock_fd > 0)
		close(d->lock_fd);
}

int main(int argc, char **argv)
{
	struct maild d = { .lock_fd = -1, .cfg_lock = PTHREAD_MUTEX_INITIALIZER };
	struct textbuf errors = TEXTBUF_INIT;
	bool foreground = false, check = false;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			d.config_path = argv[++i];
		else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
			d.store_override = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			d.user_override = argv[++i];
		else if (strcmp(argv[i], "--foreground") == 0 || strcmp(argv[i], "-f") == 0)
			foreground = true;
		else if (strcmp(argv[i], "--check-config") == 0)
			check = true;
		else if (strcmp(argv[i], "--version") == 0) {
			printf("maild (clustermail) %s\n", CM_VERSION);
			return 0;
		} else {
			fprintf(stderr, "usage: maild [-c FILE] [--store DIR] [--user NAME] [--foreground] [--check-config]\n");
			return 2;
		}
	}
	if (node_config_load(d.config_path, &d.cfg, &errors) < 0 ||
	    (d.store_override && node_config_set_store(d.cfg, d.store_override, &errors) < 0)) {
		fputs(textbuf_str(&errors), stderr);
		textbuf_free(&errors);
		return 1;
	}
	textbuf_free(&errors);
	if (d.user_override != NULL)
		node_config_set_user(d.cfg, d.user_override);
	if (check) {
		rc = print_check(d.cfg);
		node_config_free(&d.cfg);
		return rc;
	}
	umask(027); /* store files: service user rw, its group r, nobody else */
	fd_limit_raise();
	if (!foreground && daemonize_start() < 0) {
		fprintf(stderr, "maild: cannot start in the background: %s\n", strerror(errno));
		return 1;
	}
	log_init("maild", d.cfg->node_id);
	install_fatal_handlers();
	/* A SIGHUP (log rotation, a certificate deployment) before the loop
	 * handles it or during the drain after it must not kill the node:
	 * libevent puts this disposition back when its handler goes. */
	signal(SIGHUP, SIG_IGN);
	if (apply_logging(d.cfg, foreground) < 0) {
		daemonize_failed("cannot configure logging");
		goto out;
	}
	evthread_use_pthreads();
	d.started = time(NULL);
	d.base = event_base_new();
	if (d.base == NULL || start(&d) < 0)
		goto out;

	struct event *sigs[3];
	const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d.base, signums[i], on_signal, &d);
		event_add(sigs[i], NULL);
	}
	log_notice("node", "maild %s node=%u serving store=%s pid=%ld", CM_VERSION, d.cfg->node_id,
		   d.cfg->store_dir, (long)getpid());
	control_publish(d.control, "node", "event=started pid=%ld", (long)getpid());
	if (!foreground)
		daemonize_ready();
	event_base_dispatch(d.base);
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	control_publish(d.control, "node", "event=stopping");
	rc = 0;
out:
	stop(&d);
	if (rc == 0)
		log_notice("node", "maild node=%u stopped", d.cfg->node_id);
	if (d.base != NULL)
		event_base_free(d.base);
	log_fini();
	node_config_free(&d.cfg);
	return rc;
}
