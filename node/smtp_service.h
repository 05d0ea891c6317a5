/*
 * The SMTP services of maild: smtp (MX, port 25), submission (587) and
 * smtps (465, implicit TLS), all three on one struct service_ops that
 * node/services.c registers. Each connection is one proto/smtp engine
 * session whose backend is node/smtp_*.c; the service context is the
 * struct service_instance maild fills (node/services.h).
 *
 * What each service does:
 *  - smtp: accepts mail for local recipients from anyone. AUTH is offered
 *    as the TLS policy allows (plaintext mechanisms only under TLS when
 *    the service has require_tls); STARTTLS when a certificate exists.
 *  - submission: the same, but MAIL needs AUTH first (530 5.7.0).
 *  - smtps: submission over implicit TLS (RFC 8314 "submissions"): the
 *    listener finishes the handshake before the session starts; AUTH
 *    required as on submission.
 *
 * Recipients (smtp_envelope.c): resolved against the directory at RCPT
 * (users, aliases, groups, catch-all). Unknown in a local domain: 550
 * 5.1.1 there, never accepted and bounced later. A mailbox without room
 * (usage at its quota, or usage plus MAIL's SIZE= above it): 452 4.2.2
 * (552 5.2.2 when the message is larger than the whole quota). Disabled
 * users still receive mail. Other domains: relayed for authenticated
 * clients, clients in smtp.trusted_networks, and smtp.relay_domains, and
 * refused with 554 5.7.1 otherwise (node/smtp_policy.h; every open-relay
 * trick is refused). A transaction with remote recipients (relayed, or
 * reached through an alias or group) goes whole, local mailboxes
 * included, into this node's spool (smtp_queue.c).
 *
 * Per client (smtp_service.c, smtp_dnsbl.c, smtp_ratelimit.c): DNSBL
 * lookups before the greeting (smtp service only), a message rate at
 * MAIL, command and data timeouts.
 *
 * Messages (smtp_delivery.c): written to the store as they arrive,
 * behind a Return-Path and a Received: header (smtp_received.c); the
 * 250 comes only after store_deliver made the message durable in every
 * recipient's mailbox, on the job pool. docs/operator-guide.md ("SMTP")
 * gives the reply for partial failures and what a vanished client means.
 *
 * Blocking: the event loop never waits for an fsync. It does make short
 * synchronous store and directory calls: the directory point reads of
 * RCPT, the quota read of a recipient that has a quota (its mail
 * directory is created on first use), creating the message's temporary
 * file, and writing each piece of message data as it arrives (at most
 * SMTP_INPUT_PIECE bytes per step, into the page cache). The engine's
 * backend interface is synchronous for RCPT; an asynchronous RCPT is the
 * way to take the quota read off the loop too.
 *
 * Logging (subsystem "smtp"; connect and disconnect are the listener's):
 *   reject conn=N id=Q peer=P: 550 5.1.1 <rcpt>: ...; from=<s> to=<r> proto=ESMTP helo=<h>
 *   id=Q conn=N from=<s> size=N nrcpt=N proto=ESMTPS user=U status=sent delay=0.012s
 *   id=Q to=<r> status=delivered | status=failed reason="..."
 * and a "delivery" event on the control plane's event stream for each
 * message that was delivered to at least one mailbox.
 */
#ifndef CM_NODE_SMTP_SERVICE_H
#define CM_NODE_SMTP_SERVICE_H

#include "node/listener.h"

extern const struct service_ops smtp_service_ops;

#endif
