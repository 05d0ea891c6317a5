/*
 * Where outbound mail for a destination goes: MX lookup (RFC 5321 §5.1),
 * preference order with equal preferences shuffled, implicit MX (the
 * domain's own A/AAAA) when there is none, null MX (RFC 7505) refused,
 * then the addresses of each exchanger. Nexthops in the Postfix style:
 * "example.net" (MX lookup), "[mail.example.net]" or "[192.0.2.1]" (no
 * MX lookup), each with an optional ":port".
 *
 * This node (node/outbound_self.h, as the caller gives it) is never a
 * host of a route: found among the MX hosts, it is dropped with every host
 * of equal or lower preference (RFC 5321 section 5.1), so that a backup MX
 * waits for a better one instead of sending to itself; when nothing is
 * left the route fails, as Postfix's does: PERM 5.4.6 "mail for X loops
 * back to myself" when this node is the best MX (or the host of a route
 * without MX lookup, or the domain's own address), TEMP 4.4.4 "unable to
 * find primary relay for X" when a better MX exists but has no address.
 *
 * Blocking (ldns's resolver, which does the wire format and the UDP/TCP
 * exchange): call it from a job pool thread, never from an event loop.
 * It queries the configured resolver (or /etc/resolv.conf's), never the
 * system's getaddrinfo, so that tests and operators control every answer.
 */
#ifndef CM_NODE_OUTBOUND_DNS_H
#define CM_NODE_OUTBOUND_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/outbound_self.h"

#define OUTBOUND_HOSTS_MAX 16

enum outbound_dns_result {
	OUTBOUND_DNS_OK,
	OUTBOUND_DNS_TEMP, /* try again later: 4.4.3 */
	OUTBOUND_DNS_PERM, /* bounce: 5.1.2, 5.4.4, 5.1.10 (null MX) */
};

struct outbound_host {
	char name[256]; /* the exchanger's name, or the literal */
	char addr[64];	/* numeric address */
	uint16_t port;
	unsigned pref; /* its MX preference; 0 without MX records */
	bool by_mx;    /* found by MX lookup (or the implicit MX): its name may be ours */
};

struct outbound_route {
	enum outbound_dns_result result;
	char status[16];  /* RFC 3463 code when result != OK */
	char reason[600]; /* for logs and DSNs */
	struct outbound_host hosts[OUTBOUND_HOSTS_MAX];
	size_t n;
};

/* resolver: "" = /etc/resolv.conf, else "addr" or "addr:port" ("[v6]:port").
 * timeout_s: per query. self: this node, dropped from the route as below
 * (NULL: no host is this node). Fills *route (hosts in the order to try). */
void outbound_route_resolve(const char *resolver, unsigned timeout_s, const char *nexthop,
			    uint16_t default_port, const struct outbound_self *self,
			    struct outbound_route *route);

/* The RFC 5321 section 5.1 rule above, on an OK route whose hosts are in
 * preference order: drops the hosts that self says are this node and
 * those of equal or lower preference; dest names the destination in the
 * reasons, best_pref is the lowest preference among its MX records (0
 * without them). Leaves a route without this node as it is. */
void outbound_route_drop_self(struct outbound_route *route, const struct outbound_self *self,
			      const char *dest, unsigned best_pref);

/* Splits a nexthop into host and port and says whether MX lookup applies:
 * 0, or -1 when it is malformed. */
int outbound_nexthop_parse(const char *nexthop, uint16_t default_port, char *host,
			   size_t host_size, uint16_t *port_r, bool *mx_r);

#endif
