/*
 * Internals shared by the files of maild's POP3 service (not for use
 * outside them): the per-connection state and the calls between
 *   pop3_service.c  the connection: output, the pump, STLS, hooks, logs
 *   pop3_auth.c     the engine's auth_begin on node/auth.h's auth_iface
 *   pop3_jobs.c     the engine's maildrop calls: open and QUIT's expunge
 *                   on the job pool, message reads on the loop
 * Everything here runs on the connection's worker thread.
 */
#ifndef CM_NODE_POP3_SERVICE_PRIVATE_H
#define CM_NODE_POP3_SERVICE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "node/auth.h"
#include "node/listener.h"
#include "node/services.h"
#include "proto/pop3/pop3.h"

struct evbuffer;
struct pop3_job;
struct pop3_maildrop;

/* An answer the engine is owed for an operation that could not even be
 * started; the pump gives it (never from inside the engine's own call). */
enum pop3_local_answer {
	POP3_LOCAL_NONE,
	POP3_LOCAL_AUTH_FAILED,	  /* malformed client data */
	POP3_LOCAL_AUTH_TEMPFAIL, /* could not start the check */
	POP3_LOCAL_STORE_TEMP,	  /* could not start the store job */
};

struct pop3_conn {
	struct conn *c;
	const struct service_env *env;
	struct pop3_session *s;
	enum pop3_want want;	  /* the engine's last answer */
	struct auth_handle *auth; /* created at the first authentication */
	struct pop3_maildrop *md; /* open in TRANSACTION */
	struct pop3_job *job;	  /* in flight on the job pool */
	struct evbuffer *spill;	  /* output waiting for the connection to drain */
	enum pop3_local_answer local;
	char apop_timestamp[AUTH_APOP_TIMESTAMP_MAX]; /* the greeting's; "" if none */
	bool tls_starting;
	bool shutdown_pending;
	bool closing;
	bool logged_in;

	/* For the session's last log line. */
	bool engine_closed;	/* the engine asked to close (QUIT, errors) */
	char last_reply[96];	/* first line of the last status reply */
	uint64_t read_octets; /* message bytes read for RETR and TOP */
	size_t dele, deleted;
	size_t messages;
	uint64_t octets;
	const char *end_reason;
};

/* pop3_service.c */
void pop3_service_pump(struct pop3_conn *pc);
/* Stops what would call back into pc (authentication) and closes. */
void pop3_service_close_now(struct pop3_conn *pc);
const char *pop3_service_user(const struct pop3_conn *pc);
const char *pop3_service_peer(const struct pop3_conn *pc);
unsigned long long pop3_service_id(const struct pop3_conn *pc);

/* pop3_auth.c: backend->auth_begin */
void pop3_auth_begin(void *ctx, const struct pop3_auth_request *req);

/* pop3_jobs.c: the backend's maildrop calls */
void pop3_jobs_maildrop_open(void *ctx, const char *user);
void pop3_jobs_maildrop_commit(void *ctx, const size_t *indexes, size_t count);
ssize_t pop3_jobs_message_read(void *ctx, size_t index, uint64_t offset, void *buf, size_t len);
void pop3_jobs_maildrop_close(void *ctx);
/* The connection is going away: an open in flight is cancelled, an
 * expunge in flight finishes and then frees the maildrop itself. */
void pop3_jobs_detach(struct pop3_conn *pc);
/* True while QUIT's expunge is in flight. */
bool pop3_jobs_committing(const struct pop3_conn *pc);

#endif
