/*
 * What mailq, `sendmail -bp` and `mailctl queue list|show` print about the
 * SMTP spools of a store (storage/queue.h): every node's spool and the
 * maildrop, read without any lock (envelopes are replaced by rename, so a
 * reader sees an old or a new one, never a torn one; a message that goes
 * away meanwhile is left out).
 *
 * The listing is Postfix's mailq format: per message its queue id ('!'
 * after it when held), size, arrival time and sender, then every recipient
 * not yet delivered, each failed or deferred one preceded by its reason in
 * parentheses; "Mail queue is empty", or "-- N Kbytes in M Requests." at
 * the end. With counts (mailctl), lines after that count the recipients by
 * state and the undelivered ones by destination domain, and the messages
 * per spool.
 */
#ifndef CM_NODE_QUEUE_REPORT_H
#define CM_NODE_QUEUE_REPORT_H

#include <stdbool.h>

#include "lib/textbuf.h"
#include "storage/queue.h"

struct store;

/* 0, or 1 when a spool could not be read (err says why; what could be
 * read is still listed). */
int queue_report_list(struct store *store, bool counts, struct textbuf *out, struct textbuf *err);

/* Finds the spool holding id: 1 with the open spool in *q_r (the caller
 * closes it) and its envelope in *env_r (the caller clears it), 0 when no
 * spool has it, <0 a store error (error_r). */
int queue_report_find(struct store *store, const char *id, struct queue **q_r,
		      struct queue_envelope *env_r, const char **error_r);

/* `mailctl queue show ID`: the envelope, every recipient with its state
 * and reason, then the message's header. 0, or 1 (err). */
int queue_report_show(struct store *store, const char *id, struct textbuf *out,
		      struct textbuf *err);

#endif
