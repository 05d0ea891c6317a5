/*
 * The SMTP server protocol engine (RFC 5321 with PIPELINING 2920, SIZE
 * 1870, 8BITMIME 6152, ENHANCEDSTATUSCODES 2034/3463, STARTTLS 3207, AUTH
 * 4954, DSN 3461, CHUNKING 3030). Pure: bytes in through
 * smtp_session_input(), replies out through backend->write(); the envelope
 * decisions (sender, recipients, relay control), the message body's
 * destination and its durable commit are backend calls that node/ makes.
 *
 * Flow control (as in proto/pop3): every entry point returns what the
 * session waits for next.
 *  SMTP_WANT_INPUT   feed more client bytes
 *  SMTP_WANT_AUTH    backend->auth_begin was called; answer with
 *                    smtp_session_auth_result()
 *  SMTP_WANT_COMMIT  the message is complete: backend->data_commit was
 *                    called; make it durable, then smtp_session_commit_result()
 *                    — only then is 250 sent (never before the fsync)
 *  SMTP_WANT_TLS     "220 Ready to start TLS" is queued: flush it, start
 *                    TLS, call smtp_session_tls_started()
 *  SMTP_WANT_CLOSE   flush and close
 *
 * End of data is CRLF "." CRLF only. A bare LF or bare CR anywhere in DATA
 * makes the message rejected (550 5.6.11) once its end is seen, so no
 * second message can be smuggled through a different reading of line ends
 * (the 2023 SMTP smuggling class); docs/limits.md says why.
 */
#ifndef CM_PROTO_SMTP_H
#define CM_PROTO_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1.4 says 512 for a command line; extensions (SIZE,
 * BODY, RET, ENVID, NOTIFY, ORCPT, AUTH=) make MAIL/RCPT longer. */
#define SMTP_COMMAND_LINE_MAX 2048
/* RFC 4954 §4: an AUTH command with its initial response may be 12,288
 * octets (a GSSAPI token with a Kerberos PAC is often over 2 KB). */
#define SMTP_AUTH_LINE_MAX 12288
#define SMTP_SASL_LINE_MAX 16384
#define SMTP_MAX_BAD_COMMANDS 20
#define SMTP_PATH_MAX 320
/* ORCPT= as RFC 3461 allows it (500), what a queued envelope keeps
 * (QUEUE_ORCPT_MAX - 1). A longer one made for an alias is left out. */
#define SMTP_ORCPT_VALUE_MAX 500

enum smtp_want {
	SMTP_WANT_INPUT,
	SMTP_WANT_AUTH,
	SMTP_WANT_COMMIT,
	SMTP_WANT_TLS,
	SMTP_WANT_CLOSE,
};

/* A reply decided by the backend: code 0 means "accept with the engine's
 * default wording". */
struct smtp_reply {
	int code;             /* e.g. 250, 450, 550 */
	const char *enhanced; /* e.g. "5.1.1"; NULL = derived from the code */
	const char *text;
};

struct smtp_mail_params {
	uint64_t size;         /* SIZE=, 0 when absent */
	bool body_8bit;        /* BODY=8BITMIME */
	bool ret_hdrs;         /* RET=HDRS (DSN) */
	bool ret_full;         /* RET=FULL */
	const char *envid;     /* ENVID=, xtext as received, or NULL */
	const char *auth;      /* AUTH= (RFC 4954 §5), or NULL */
};

enum smtp_notify {
	SMTP_NOTIFY_SUCCESS = 1,
	SMTP_NOTIFY_FAILURE = 2,
	SMTP_NOTIFY_DELAY = 4,
	SMTP_NOTIFY_NEVER = 8,
};

/* NOTIFY for a recipient that two RCPTs named: the union of what each
 * asked for, as Postfix merges duplicate recipients' DSN requests. Absent
 * (0) counts as FAILURE,DELAY, what the queue does without NOTIFY, and
 * stays absent when the union is no more than that; NEVER counts as
 * nothing and stays only when both said NEVER. */
unsigned smtp_notify_merge(unsigned a, unsigned b);

struct smtp_rcpt_params {
	unsigned notify;       /* SMTP_NOTIFY_* bits, 0 when absent */
	const char *orcpt;     /* ORCPT= as received ("rfc822;xtext"), or NULL */
};

enum smtp_auth_kind {
	SMTP_AUTH_START, /* AUTH mech [initial-response] */
	SMTP_AUTH_STEP,  /* the client's base64 answer to a 334 */
	SMTP_AUTH_ABORT, /* the client sent "*" */
};

struct smtp_auth_request {
	enum smtp_auth_kind kind;
	const char *mechanism; /* START, uppercased */
	const char *response;  /* START: NULL = none, "" = "="; STEP: base64 text */
};

enum smtp_auth_status {
	SMTP_AUTH_OK,
	SMTP_AUTH_CONTINUE,   /* send 334 challenge (base64 text) */
	SMTP_AUTH_FAILED,     /* 535 5.7.8 */
	SMTP_AUTH_TEMPFAIL,   /* 454 4.7.0 */
	SMTP_AUTH_UNSUPPORTED,/* 504 5.5.4 */
	SMTP_AUTH_MALFORMED,  /* 501 5.5.2: the client's data does not follow the mechanism */
	SMTP_AUTH_TOO_WEAK,   /* 538 5.7.11: the mechanism needs TLS first */
};

struct smtp_backend {
	void (*write)(void *ctx, const void *data, size_t len);
	void (*auth_begin)(void *ctx, const struct smtp_auth_request *req);
	/* reverse_path: "" for the null sender <>. Fill *reply to refuse. */
	void (*mail_from)(void *ctx, const char *reverse_path, const struct smtp_mail_params *p,
			  struct smtp_reply *reply);
	/* forward_path: the mailbox ("Postmaster" alone is passed as is). */
	void (*rcpt_to)(void *ctx, const char *forward_path, const struct smtp_rcpt_params *p,
			struct smtp_reply *reply);
	/* The first DATA/BDAT of a transaction. Fill *reply to refuse. */
	void (*data_begin)(void *ctx, struct smtp_reply *reply);
	/* Message bytes as they arrive: dot-unstuffed, exactly as the client
	 * meant them. Return <0 on a local write error (the message then
	 * fails with 451 at its end). */
	int (*data_write)(void *ctx, const void *data, size_t len);
	/* The message is complete (or was rejected: accepted=false, discard
	 * it; refusal is then the reply the client gets, or NULL when the
	 * message was cut short: QUIT, shutdown, a lost connection). For
	 * accepted=true make it durable and answer later with
	 * smtp_session_commit_result(). */
	void (*data_commit)(void *ctx, bool accepted, const struct smtp_reply *refusal);
	/* RSET, a new EHLO, or the end of a transaction: forget the envelope. */
	void (*reset)(void *ctx);
};

struct smtp_settings {
	const char *hostname;
	const char *sasl_mechanisms;  /* for EHLO AUTH, already filtered for this connection */
	/* What AUTH would offer once TLS is up (asked for before it: 538,
	 * anything else 504); NULL = the same as now. */
	const char *sasl_mechanisms_tls;
	uint64_t max_message_size;    /* 0 = no limit advertised or enforced */
	unsigned max_recipients;      /* per transaction */
	bool tls_active;
	bool starttls_available;
	bool plaintext_auth_allowed;  /* AUTH before TLS */
	bool auth_required;           /* submission: MAIL needs AUTH first */
	bool chunking;                /* advertise and accept BDAT */
	bool dsn;                     /* advertise DSN and accept its parameters */
};

struct smtp_session;

/* Writes the 220 greeting. Strings are copied. NULL on out of memory. */
struct smtp_session *smtp_session_new(const struct smtp_settings *settings,
				      const struct smtp_backend *backend, void *ctx);
void smtp_session_free(struct smtp_session **s);

enum smtp_want smtp_session_input(struct smtp_session *s, const void *data, size_t len);
enum smtp_want smtp_session_auth_result(struct smtp_session *s, enum smtp_auth_status status,
					const char *user, const char *challenge);
/* reply: NULL or code 0 for "250 2.0.0 Ok: queued as <queue_id>". */
enum smtp_want smtp_session_commit_result(struct smtp_session *s, const struct smtp_reply *reply,
					  const char *queue_id);
enum smtp_want smtp_session_tls_started(struct smtp_session *s, const struct smtp_settings *new_settings);
/* "421 4.3.2 Service shutting down" and close; an open transaction is dropped. */
enum smtp_want smtp_session_shutdown(struct smtp_session *s);

/* For Received: headers and logs. */
const char *smtp_session_helo(const struct smtp_session *s);   /* "" before HELO/EHLO */
bool smtp_session_esmtp(const struct smtp_session *s);          /* EHLO rather than HELO */
/* From DATA (or the first BDAT) until the message is answered: a drain
 * lets such a transfer finish rather than throw it away. */
bool smtp_session_in_data(const struct smtp_session *s);
const char *smtp_session_user(const struct smtp_session *s);    /* NULL unless authenticated */

#endif
