/*
 * DNS blocklists (RFC 5782) for the smtp service: at connect, the
 * client's address is looked up in every configured zone at once
 * (IPv4 "d.c.b.a.ZONE", IPv6 32 reversed nibbles) with libevent's evdns,
 * one evdns_base per worker event loop, all asking the configured
 * resolver. Any A answer in 127.0.0.0/8 means listed. A lookup that
 * times out or fails (SERVFAIL, refused, no resolver) means not listed,
 * and is logged: a broken list must not stop mail.
 *
 * Verdicts are cached per address, across connections and workers:
 * listed for the TTL of the A record that listed it (at least 10 s, at
 * most a day), not listed for 300 s (the usual negative TTL of the
 * lists); failed lookups are not cached. The cache is bounded
 * (SMTP_DNSBL_CACHE_MAX addresses).
 *
 * Threads: smtp_dnsbl_check and smtp_dnsbl_cancel run on the event loop
 * of the connection (base); the cache is shared under a lock.
 */
#ifndef CM_NODE_SMTP_DNSBL_H
#define CM_NODE_SMTP_DNSBL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/cidr.h"
#include "node/node_config.h"

#define SMTP_DNSBL_CACHE_MAX 100000
#define SMTP_DNSBL_NEGATIVE_TTL 300

struct event_base;
struct smtp_dnsbl;
struct smtp_dnsbl_query;

/* resolver: "addr", "addr:port", or "" for /etc/resolv.conf's servers.
 * NULL on out of memory. */
struct smtp_dnsbl *smtp_dnsbl_new(const char *resolver);
/* Frees every worker's resolver and the cache. Call when no connection
 * is left and no loop runs, before the event bases are freed: requests
 * still in flight are failed and their callbacks run here. */
void smtp_dnsbl_free(struct smtp_dnsbl **d);

/* Forgets every cached verdict (the zones changed). */
void smtp_dnsbl_forget(struct smtp_dnsbl *d);

/* The verdict: zone is the listing zone, or NULL when not listed. */
typedef void smtp_dnsbl_cb(const char *zone, void *ctx);

/*
 * Looks addr up in the zones of cfg (which the caller keeps alive until
 * the callback or the cancel). Returns 1 when the cache knows: *listed_r
 * says whether, and zone_r (NODE_CONFIG_DOMAIN_SIZE bytes) names the
 * zone; no callback then. Returns 0 with *q_r when lookups are under
 * way: cb runs once on base's loop, after at most cfg->dnsbl_timeout
 * seconds, unless smtp_dnsbl_cancel comes first. Returns -1 when the
 * lookups could not start (logged): treat as not listed.
 */
int smtp_dnsbl_check(struct smtp_dnsbl *d, struct event_base *base, const struct cidr *addr,
		     const struct node_config_smtp *cfg, unsigned long long conn_id,
		     smtp_dnsbl_cb *cb, void *ctx, struct smtp_dnsbl_query **q_r, bool *listed_r,
		     char *zone_r);
/* Stops waiting: cb will not run. *q becomes NULL; NULL is a no-op. */
void smtp_dnsbl_cancel(struct smtp_dnsbl_query **q);

#endif
