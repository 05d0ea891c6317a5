/*
 * Message rate per client (an IPv4 address, an IPv6 /64; Postfix's anvil and
 * smtpd_client_message_rate_limit): how many MAIL commands one address
 * may start over a sliding minute, across every connection and worker
 * of this node. The minute slides by the usual two-window estimate (the
 * previous minute's count weighted by how much of it the window still
 * covers, plus the current minute's), which needs two counters per
 * client instead of one timestamp per message. Thread-safe.
 */
#ifndef CM_NODE_SMTP_RATELIMIT_H
#define CM_NODE_SMTP_RATELIMIT_H

#include <stdint.h>

#include "lib/cidr.h"

/* Clients tracked at once; beyond it (all active within two minutes),
 * new clients are not limited. */
#define SMTP_RATELIMIT_CLIENTS 100000

struct smtp_ratelimit;

struct smtp_ratelimit *smtp_ratelimit_new(void);
void smtp_ratelimit_free(struct smtp_ratelimit **rl);
/* One more message from addr at now_ms (a monotonic clock) under limit
 * per minute (0 = unlimited): 1 allowed and counted, 0 over the limit
 * (not counted, so a client that waits gets through again). */
int smtp_ratelimit_take(struct smtp_ratelimit *rl, const struct cidr *addr, unsigned limit,
			uint64_t now_ms);

#endif
