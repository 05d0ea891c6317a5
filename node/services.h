/*
 * Which protocol engines this build serves, and what their wiring gets.
 * Each service of the configuration (smtp, submission, smtps, imap, imaps,
 * pop3, pop3s, http) is listened on only when its engine is registered in
 * services.c; a service without an engine is reported by `mailctl status`
 * and `maild --check-config` as not built, never bound to a socket that
 * would accept and close.
 *
 * Every service gets a struct service_instance as its listener
 * service_ctx: which service it is, and the node's shared pieces. They are
 * all in place before the first connection is accepted and outlive the
 * last one; the values copied from the configuration change on restart.
 */
#ifndef CM_NODE_SERVICES_H
#define CM_NODE_SERVICES_H

#include "node/listener.h"
#include "node/node_config.h"

struct auth_iface;
struct directory;
struct job_pool;
struct queue_manager;
struct smtp_policy;
struct store;

struct service_env {
	unsigned node_id;
	char hostname[256];
	struct directory *dir;
	struct store *store;
	struct job_pool *jobs;            /* blocking store work (node/job_pool.h) */
	struct queue_manager *queue;      /* this node's SMTP queue (node/queue_manager.h) */
	char archive[321];                /* queue.archive: a copy of every message, "" = none */
	const struct auth_iface *auth;    /* node/auth.h, asynchronous */
	void *auth_ctx;
	uint64_t smtp_max_message_size;
	unsigned smtp_max_recipients;
	unsigned quota_warning;           /* queue.quota_warning: percent, 0 = none */
	struct smtp_policy *smtp_policy; /* relay, DNSBL, rates (node/smtp_policy.h); NULL: none */
	/* live events ("delivery", ...); any thread */
	void (*publish)(const char *topic, const char *text, void *ctx);
	void *publish_ctx;
};

struct service_instance {
	const struct service_env *env;
	enum node_config_service_id id;
};

/* The engine serving service id, or NULL when this build has none. */
const struct service_ops *services_engine(enum node_config_service_id id);

#endif
