/*
 * The SMTP services' policy: who may relay, and the state shared by
 * every connection of the node for the per-client checks (message
 * rates, DNSBL verdicts and resolvers).
 *
 * Relay control (smtp_policy_relay, pure): a recipient in a local domain
 * is the directory's to judge. Any other recipient is relayed only for a
 * client that may relay (authenticated, or its address in
 * smtp.trusted_networks) or when its domain is in smtp.relay_domains.
 * Sender-specified routing is never honoured for a client that may not
 * relay (Postfix's allow_untrusted_routing = no): a local part holding
 * '%', '!' or '@' (quoted) in a local or relay domain is refused as a
 * relay attempt; from a client that may relay, such an address in a
 * local domain is refused as unknown rather than delivered to a
 * catch-all. Address literals (user@[192.0.2.1]) are remote: relayed
 * only for clients that may relay. Source routes never reach here (the
 * engine drops them, RFC 5321 §4.1.1.3 and Appendix C); user@host@host
 * is a syntax error there (501 5.1.3).
 *
 * The shared state is made once by maild (smtp_policy_new) and reaches
 * the services through struct service_env. Connections take a reference
 * to the settings at accept (smtp_policy_settings_get), so a SIGHUP
 * (smtp_policy_configure) applies to new connections while running ones
 * keep what they started with.
 */
#ifndef CM_NODE_SMTP_POLICY_H
#define CM_NODE_SMTP_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>

#include "node/node_config.h"

struct smtp_policy;
struct smtp_ratelimit;
struct smtp_dnsbl;

/* One immutable snapshot of the smtp settings. */
struct smtp_policy_settings {
	atomic_uint refs;
	struct node_config_smtp smtp;
};

/* 0, or -1 (error_r static) on out of memory. */
int smtp_policy_new(const struct node_config_smtp *cfg, struct smtp_policy **p_r,
		    const char **error_r);
/* New settings for new connections (SIGHUP); the DNSBL cache is emptied
 * when the zones change. The resolver changes only on restart (logged). */
void smtp_policy_configure(struct smtp_policy *p, const struct node_config_smtp *cfg);
/* After the listener has drained (no connection left, workers stopped)
 * and before it is destroyed: the resolvers belong to its event bases. */
void smtp_policy_free(struct smtp_policy **p);

/* A reference to the current settings. p NULL (unit tests, tools): a
 * snapshot that trusts no one and limits nothing. */
const struct smtp_policy_settings *smtp_policy_settings_get(struct smtp_policy *p);
void smtp_policy_settings_put(const struct smtp_policy_settings **s);
/* NULL when p is NULL. */
struct smtp_ratelimit *smtp_policy_ratelimit(struct smtp_policy *p);
struct smtp_dnsbl *smtp_policy_dnsbl(struct smtp_policy *p);

enum smtp_relay_verdict {
	SMTP_RELAY_LOCAL,   /* a local domain: resolve it in the directory */
	SMTP_RELAY_REMOTE,  /* relaying permitted: a remote recipient */
	SMTP_RELAY_DENIED,  /* 554 5.7.1 Relay access denied */
	SMTP_RELAY_ROUTING, /* local domain, routing in the local part: 550 5.1.1 */
};

/* The domain of a mailbox as the engine passes it ("local@domain",
 * quotes kept): after its last '@', or NULL when there is none. */
const char *smtp_policy_domain(const char *mailbox);
/* Whether the local part asks us to route ('%', '!', or a quoted '@'). */
bool smtp_policy_routing(const char *mailbox);
/* Whether domain is in relay_domains (".example.org" entries match its
 * subdomains). */
bool smtp_policy_relay_domain(const struct node_config_smtp *cfg, const char *domain);
/* The decision for mailbox; domain_local: its domain is one of ours (the
 * caller asked the directory; ignored for address literals). */
enum smtp_relay_verdict smtp_policy_relay(const struct node_config_smtp *cfg, bool may_relay,
					  const char *mailbox, bool domain_local);

#endif
