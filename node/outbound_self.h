/*
 * This node as a destination of its own queue. RFC 5321 section 5.1: a
 * client that finds itself among a domain's MX hosts must not send to
 * itself nor to any host of equal or lower preference
 * (node/outbound_dns.c applies that to each route).
 *
 * A host is this node when its address and the port the queue would use
 * reach one of this node's SMTP listeners (smtp, submission, smtps), a
 * wildcard-bound one (0.0.0.0, ::) matching any address of this machine;
 * or, for a host found by MX lookup, when its name is this node's
 * hostname. The port counts because nodes may share an address and
 * differ only in port (the integration tests run several on 127.0.0.1,
 * and queue.port picks the port outbound uses); a content filter on
 * [127.0.0.1]:10025 is not this node.
 *
 * maild gives its bindings to the queue manager once its listeners are
 * bound (queue_manager_set_self), which hands them to each
 * outbound_route_resolve. An empty set = no host is this node.
 */
#ifndef CM_NODE_OUTBOUND_SELF_H
#define CM_NODE_OUTBOUND_SELF_H

#include <stdbool.h>
#include <stdint.h>

struct ifaddrs;

#include "lib/cidr.h"

#define OUTBOUND_SELF_MAX 8

struct outbound_self_listener {
	struct cidr addr;
	bool wildcard; /* 0.0.0.0 or :: */
	uint16_t port;
};

struct outbound_self {
	char hostname[256]; /* "" = recognised by address only */
	struct outbound_self_listener listeners[OUTBOUND_SELF_MAX];
	unsigned n;
};

/* Adds a listener bound to addr (numeric) and port: 0, or -1 when addr is
 * not a numeric address or the table is full. */
int outbound_self_add(struct outbound_self *self, const char *addr, uint16_t port);
/* 1 when addr:port (addr numeric) reaches one of self's listeners, else 0.
 * A wildcard listener matches a loopback address or one of this machine's
 * interfaces: *ifs holds them once asked for (getifaddrs; start with NULL,
 * freeifaddrs when non-NULL), so that the hosts of one route ask once,
 * and each route anew (addresses come and go). */
int outbound_self_has_addr(const struct outbound_self *self, const char *addr, uint16_t port,
			   struct ifaddrs **ifs);
/* 1 when name is self's hostname (case ignored, a trailing dot too). */
int outbound_self_has_name(const struct outbound_self *self, const char *name);


#endif
