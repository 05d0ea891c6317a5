/*
 * Outbound SMTP: delivers one queued message to the recipients of one
 * destination over the hosts of its route (node/outbound_dns.h), in
 * order, on an event loop, with the client engine of proto/smtp/
 * smtp_client.h. Opportunistic STARTTLS (no certificate check, as
 * Postfix's "may" level); a failed handshake is retried once in
 * plaintext on the same host.
 *
 * The next host is tried after a connection failure, a timeout, or a
 * refusal before any recipient was answered (greeting, EHLO, MAIL);
 * the first host that answers recipients gives the verdicts. Each host
 * moved past is logged, one line (id=ID when the request names it):
 *   [queue] id=ID relay=NAME[ADDR]:PORT skipped: CODE X.Y.Z REASON
 */
#ifndef CM_NODE_OUTBOUND_H
#define CM_NODE_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/outbound_dns.h"
#include "proto/smtp/smtp_client.h"

struct event_base;
struct ssl_ctx_st;

struct outbound_request {
	struct event_base *base;
	struct ssl_ctx_st *tls; /* client context for STARTTLS, NULL = never */
	const char *helo_name;
	const char *queue_id; /* for log lines; NULL: they carry none */
	const struct outbound_route *route;
	const char *sender;
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpt;
	int data_fd; /* the message; read with pread, not closed here */
	uint64_t size;
	bool body_8bit;
	bool smtputf8;
	const char *envid;
	enum smtp_client_ret ret;
	unsigned connect_timeout;
	unsigned command_timeout;
	/* On the base's loop when every recipient has a verdict; replies
	 * (nrcpt of them) and remote ("name[addr]" of the last host tried)
	 * are valid during the call only. dsn: that host offered DSN, so the
	 * NOTIFY and ORCPT parameters went on with the recipients. */
	void (*done)(void *ctx, const struct smtp_client_reply *replies, const char *remote,
		     bool tls, bool dsn);
	void *ctx;
};

struct outbound;

/* The host name in a remote as done() names it ("name[addr]:port"), cut
 * to fit size: what a DSN's Remote-MTA field gives. */
void outbound_remote_host(const char *remote, char *host, size_t size);

/* NULL on out of memory. */
struct outbound *outbound_start(const struct outbound_request *req);
/* Stops without calling done (shutdown). */
void outbound_cancel(struct outbound **o);

/* A client TLS context for opportunistic STARTTLS. NULL on failure. */
struct ssl_ctx_st *outbound_tls_context(void);

#endif
