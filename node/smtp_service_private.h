/*
 * Internals shared by the files of the SMTP service (node/smtp_*.c) and
 * their unit test. Nothing else includes this; the service's manual is
 * node/smtp_service.h.
 *
 *  smtp_service.c   the listener hooks, the input pump, what the engine
 *                   waits for (AUTH, COMMIT, TLS, CLOSE), drain
 *  smtp_auth.c      AUTH: base64 and the asynchronous auth layer
 *  smtp_envelope.c  MAIL and RCPT policy: directory, quota, relay, rate
 *  smtp_policy.c    the relay decision and the node-wide policy state
 *  smtp_dnsbl.c     DNSBL lookups at connect, their cache
 *  smtp_ratelimit.c messages per client address per minute
 *  smtp_delivery.c  DATA/BDAT into a mail_writer, the commit job, its one
 *                   reply, the delivery log lines and event
 *  smtp_received.c  Return-Path and Received: header fields (pure)
 *  smtp_queue_id.c  queue IDs
 */
#ifndef CM_NODE_SMTP_SERVICE_PRIVATE_H
#define CM_NODE_SMTP_SERVICE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/cidr.h"
#include "lib/textbuf.h"
#include "node/queue_id.h"
#include "node/services.h"
#include "node/smtp_received.h"
#include "node/smtp_policy.h"
#include "proto/smtp/smtp.h"
#include "storage/directory.h"
#include "storage/queue.h"
#include "storage/store.h"

/* Client bytes handed to the engine per step; the pump checks the output
 * queue between steps (replies to a pipelined batch stay bounded). */
#define SMTP_INPUT_PIECE 16384

struct auth_handle;
struct conn;
struct event;
struct job;
struct smtp_dnsbl_query;

/* One local mailbox of the current transaction. */
struct smtp_local_rcpt {
	char address[DIRECTORY_ADDRESS_MAX]; /* normalised local@domain */
	uint64_t quota_bytes;		     /* the directory's limit, 0 = none */
	unsigned notify;		     /* the RCPT's SMTP_NOTIFY_* bits, 0 = none */
	uint32_t orcpt;	/* its DSN ORCPT: offset + 1 in the transaction's orcpts, 0 = none */
	uint32_t seq;	/* its place among the transaction's, for a stable dedup */
};

/* A recipient in another domain that the relay policy permitted
 * (smtp_policy.c). The transaction keeps them for the queue. */
struct smtp_remote_rcpt {
	char address[SMTP_PATH_MAX + 1]; /* as the client named it */
	unsigned notify;		 /* SMTP_NOTIFY_* bits, 0 when absent */
	char orcpt[SMTP_ORCPT_VALUE_MAX + 1]; /* "" when absent */
	size_t seq;			      /* its place among the remote RCPTs */
};

/* The envelope and message of the transaction in progress. */
struct smtp_txn {
	bool active; /* MAIL accepted */
	char queue_id[SMTP_QUEUE_ID_SIZE];
	char sender[SMTP_PATH_MAX + 1];	    /* "" for <> */
	uint64_t declared_size;		    /* MAIL SIZE=, 0 if none */
	struct timespec started;	    /* MAIL accepted (CLOCK_MONOTONIC) */
	unsigned nrcpt;			    /* RCPT commands accepted */
	char first_rcpt[SMTP_PATH_MAX + 1]; /* as the client named it */
	struct smtp_local_rcpt *rcpts;	    /* may repeat; deduplicated at commit */
	size_t nlocal, cap;
	struct textbuf orcpts; /* the local recipients' ORCPTs, NUL-separated, once per RCPT */
	struct mail_writer *writer; /* from the first DATA/BDAT */
	uint64_t header_bytes;	    /* trace fields we wrote first */
	/* relay (smtp_envelope.c): permitted remote recipients, in order */
	struct smtp_remote_rcpt *remote;
	size_t nremote, remote_cap;
	/* a local recipient asked for NOTIFY=SUCCESS: the message goes through
	 * the queue, whose local delivery sends the report (RFC 3461) */
	bool notify_success;
	/* for the queue (smtp_queue.c): MAIL's DSN and BODY parameters */
	bool body_8bit;
	bool ret_hdrs, ret_full;
	char envid[101];
	struct queue_writer *qwriter; /* instead of writer when remote recipients exist */
};

/* A reply the engine must get later, never from inside one of its own
 * backend calls (which would re-enter it). */
enum smtp_deferred {
	SMTP_DEFER_NONE,
	SMTP_DEFER_AUTH,
	SMTP_DEFER_COMMIT,
};

struct smtp_commit;
struct smtp_queued;

struct smtp_conn {
	struct conn *c;
	const struct service_env *env;
	enum node_config_service_id service;
	struct smtp_session *sess;
	enum smtp_want want;
	bool closing;	       /* conn_close() called: nothing more to do */
	bool shutdown_pending; /* drain began during a commit: 421 after its reply */
	struct auth_handle *auth;
	bool auth_malformed; /* the client's response was not base64 */
	struct event *ev_defer;
	enum smtp_deferred deferred;
	enum smtp_auth_status deferred_auth;
	struct smtp_txn txn;
	struct smtp_commit *commit; /* the commit job in flight, or NULL */
	struct smtp_queued *queued; /* the spool commit in flight, or NULL */
	struct job *job;
	char mechanisms[256]; /* what EHLO offers now */
	char mechanisms_tls[256]; /* what it would offer with TLS */
	char reply_text[512]; /* a RCPT refusal, until the engine sent it */
	/* client policy (smtp_policy.h): taken at accept, kept for the
	 * connection's life */
	const struct smtp_policy_settings *policy;
	struct cidr client; /* the peer's address, if client_known */
	bool client_known;
	bool trusted;			 /* client in smtp.trusted_networks */
	struct smtp_dnsbl_query *dnsbl;	 /* lookups the greeting waits for */
	struct event *ev_command_timeout; /* smtp.command_timeout, re-armed by input */
	struct event *ev_data_timeout;	 /* smtp.data_timeout, from the first DATA/BDAT */
};

/* smtp_service.c */
/* Feeds buffered client bytes to the engine while it wants input. */
void smtp_conn_pump(struct smtp_conn *sc);
/* Acts on what the engine returned (TLS, CLOSE), then pumps on. */
void smtp_conn_want(struct smtp_conn *sc, enum smtp_want w);
/* Schedules sc->deferred for the next loop iteration. */
void smtp_conn_defer(struct smtp_conn *sc);
/* The engine settings for this connection as it is now. */
void smtp_conn_settings(struct smtp_conn *sc, struct smtp_settings *set);

/* smtp_auth.c */
void smtp_auth_begin(void *ctx, const struct smtp_auth_request *req);

/* smtp_envelope.c */
void smtp_envelope_mail_from(void *ctx, const char *reverse_path, const struct smtp_mail_params *p,
			     struct smtp_reply *reply);
void smtp_envelope_rcpt_to(void *ctx, const char *forward_path, const struct smtp_rcpt_params *p,
			   struct smtp_reply *reply);
void smtp_envelope_reset(void *ctx);
/* Adds one local mailbox (no quota check): 0, or -1 out of memory. */
int smtp_txn_add_mailbox(struct smtp_txn *t, const char *address);
/* Frees the transaction's recipients and aborts its message. */
void smtp_txn_clear(struct smtp_txn *t);
/* The remote recipients once each, in the order the client named them:
 * a repeat of an earlier one (the same address, case aside: aliases and
 * groups reach the same target) is folded into it, which keeps its ORCPT
 * and takes both NOTIFYs (smtp_notify_merge). In place, as
 * smtp_txn_unique_mailboxes; returns the new nremote. */
size_t smtp_txn_unique_remotes(struct smtp_txn *t);
/* Whether address has room for size more bytes under limit (0 = none):
 * 1 yes, 0 no, <0 a store error (error_r). Opens the user's mail
 * directory: a few metadata reads, and its creation on first use. */
int smtp_quota_room(struct store *store, const char *address, uint64_t limit, uint64_t size,
		    const char **error_r);
/* Whether the client may relay: authenticated, or trusted by address. */
bool smtp_conn_may_relay(const struct smtp_conn *sc);
/* Postfix-style "proto" for logs: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
const char *smtp_conn_proto(const struct smtp_conn *sc);

/* smtp_queue.c: a transaction with remote recipients, or with a local one
 * that asked NOTIFY=SUCCESS (the queue's delivery reports it), goes whole
 * (local mailboxes too) into this node's spool; the queue manager
 * delivers it.
 * At DATA: 1 when the message goes to the queue (t->qwriter is open),
 * 0 when it is local only, <0 on a spool error (*reply filled). */
int smtp_queue_begin(struct smtp_conn *sc, struct smtp_reply *reply);
int smtp_queue_write(struct smtp_conn *sc, const void *data, size_t len);
/* The commit into the spool on the job pool: the engine's reply comes
 * when the message is durable there. */
void smtp_queue_commit(struct smtp_conn *sc);
/* The connection is going away with a commit in flight. */
void smtp_queue_detach(struct smtp_conn *sc);

/* smtp_delivery.c */
void smtp_delivery_begin(void *ctx, struct smtp_reply *reply);
/* Sorts the transaction's mailboxes and drops repeats (a user reached
 * directly and through a group gets one copy): their number. */
size_t smtp_txn_unique_mailboxes(struct smtp_txn *t);
/* Received: (and Return-Path: for final delivery) of this transaction. */
void smtp_delivery_trace(struct smtp_conn *sc, bool return_path, struct textbuf *hdr);
int smtp_delivery_write(void *ctx, const void *data, size_t len);
void smtp_delivery_commit(void *ctx, bool accepted, const struct smtp_reply *refusal);
/* One refusal's log line, Postfix's "reject:" with the envelope; stage ""
 * (a RCPT) or "END-OF-MESSAGE ". */
void smtp_log_reject(struct smtp_conn *sc, const char *stage, const struct smtp_reply *reply,
		     const char *rcpt);
/* The close hook: the job in flight (if any) goes on without the
 * connection; its result is logged, never replied. */
void smtp_delivery_detach(struct smtp_conn *sc);
/* The engine's answer to a commit that could not even start (deferred). */
void smtp_delivery_deferred(struct smtp_conn *sc);
/* The engine's answer to a commit with remote recipients (deferred). */
/* The single reply after DATA for per-recipient store results (pure).
 * ret: store_deliver's return; precheck_full: the pre-check found a
 * recipient without room and nothing was delivered. Sets *reply (code 0:
 * all delivered, "250 ... queued as"); its text points into text. */
void smtp_delivery_reply(const struct store_rcpt *r, size_t n, int ret, bool precheck_full,
			 uint64_t size, struct smtp_reply *reply, char *text, size_t text_size);

#endif
