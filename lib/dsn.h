/*
 * Delivery status notifications (RFC 3464 in an RFC 6522 multipart/report,
 * RFC 3461 semantics): the bounce, delay notice or success notice the
 * queue sends to a message's envelope sender. Pure and streaming: the
 * header and the two report parts are produced from the report; the
 * original message (or its header, for RET=HDRS) is fed through after
 * and cut at a size bound, so a bounce of a large message never needs it
 * whole in memory.
 *
 * Layout: From "Mail Delivery System" <from>, To <to>, Subject by kind,
 * Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version,
 * multipart/report; report-type=delivery-status with three parts: a
 * text/plain explanation in Postfix's words, the message/delivery-status
 * fields (RFC 3464 2.2 and 2.3), and the original as message/rfc822 (or
 * its header as text/rfc822-headers when headers_only).
 *
 * Every value from the network is sanitised and folded (no header line or
 * MIME delimiter can be injected); ENVID and ORCPT are xtext-decoded, as
 * RFC 3461 4.2/4.4 and RFC 3464 2.2.1/2.3.1 want. The original is cut
 * before the first line that would pass max_original bytes (0 returns
 * none of it); a line of it that would look like the report's boundary
 * is made harmless. Memory: the writer holds about 1 KiB whatever the
 * original. The original part carries no Content-Transfer-Encoding: when
 * the original was 8-bit, queue the DSN with body_8bit set so that the
 * sending side declares or downgrades it. Details: lib/dsn.c.
 */
#ifndef CM_LIB_DSN_H
#define CM_LIB_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"

enum dsn_kind {
	DSN_FAILURE, /* "Undelivered Mail Returned to Sender" */
	DSN_DELAY,   /* "Delayed Mail (still being retried)" */
	DSN_SUCCESS, /* "Successful Mail Delivery Report" */
};

struct dsn_rcpt {
	const char *address;	 /* final recipient (rfc822;) */
	const char *orcpt;	 /* "rfc822;..." as the client gave it (xtext), or NULL */
	const char *status;	 /* "5.1.1" */
	const char *remote_mta;	 /* "mx.example.net": the Remote-MTA field's host name, or NULL */
	const char *remote_said; /* how the text names the host that answered
				    ("mx.example.net[192.0.2.1]:25"), NULL = remote_mta */
	bool relayed;		 /* DSN_SUCCESS: handed to an MTA that does not report (RFC 3461 "relayed") */
	const char *diagnostic;	 /* the remote reply ("550 5.1.1 no such user"), or NULL */
	int64_t last_attempt;	 /* unix seconds, 0 = none */
	int64_t will_retry_until; /* DSN_DELAY: unix seconds, 0 = omit */
};

struct dsn_report {
	enum dsn_kind kind;
	const char *reporting_mta; /* our host name */
	const char *from;	   /* "MAILER-DAEMON@host" */
	const char *to;		   /* the original envelope sender */
	const char *queue_id;
	const char *envid;		 /* original ENVID (xtext, decoded in the report), or NULL */
	const char *received_from_mta; /* "client.example [192.0.2.7]", or NULL */
	int64_t arrival;		 /* unix seconds */
	int64_t now;			 /* for Date: and boundaries; unix seconds */
	const struct dsn_rcpt *rcpts;
	size_t nrcpt;
	bool headers_only; /* return only the original header (RET=HDRS or too large) */
	uint64_t max_original; /* bytes of the original to return (0: none); beyond, it is cut */
	const char *message_id_domain; /* right side of the DSN's Message-ID */
};

struct dsn_writer;

/* Appends the DSN's header, the human-readable part and the
 * message/delivery-status part to out, and opens the part that returns
 * the original. NULL on out of memory. */
struct dsn_writer *dsn_begin(const struct dsn_report *r, struct textbuf *out);
/* Feeds the original message in pieces; appends what of it is returned. */
void dsn_original(struct dsn_writer *w, const void *data, size_t len, struct textbuf *out);
/* Closes the MIME structure and frees w. */
void dsn_end(struct dsn_writer **w, struct textbuf *out);

/* The ORCPT (RFC 3461 4.2) an address gets when it is handed on without
 * one, as for an alias's targets: "rfc822;" and the address as xtext, in
 * out (size bytes). False, with out "", when it does not fit. */
bool dsn_orcpt_for(const char *address, char *out, size_t size);

#endif
