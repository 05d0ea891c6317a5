/*
 * pop3_maildrop: the POP3 view of a user's INBOX on the shared store
 * (storage/mailbox.h), for node/pop3_service.c.
 *
 * Snapshot semantics. pop3_maildrop_open() takes the maildrop as it is at
 * login: it absorbs pending deliveries, then copies every message's UID
 * and size into the snapshot that the session numbers 1..n. Nothing the
 * session does changes the store until pop3_maildrop_commit() at QUIT,
 * which expunges the deleted messages by UID in one durable step. Other
 * sessions, on this node or another, may open the same INBOX at the same
 * time (no [IN-USE] lock: that would need a cluster-wide lock and a
 * dropped node would hold it); a message one of them has expunged since
 * reads as gone (POP3_READ_GONE) and expunging it again is not an error.
 *
 * UIDL: "%08x%08x" of UIDVALIDITY and UID (16 lowercase hex digits). Both
 * live in the mailbox index on the shared store, so the same message has
 * the same UIDL on every node and in every session; UIDVALIDITY changes
 * only when fsck has to rebuild an index that lost records (clients then
 * see new UIDLs and fetch again, which is the safe direction).
 *
 * Sizes: the stored message size in octets. Messages arrive by SMTP with
 * CRLF line ends and an ended last line (DATA refuses bare LF; BDAT stores
 * it as CRLF), so this is exactly what RETR sends before dot-stuffing, as
 * RFC 1939 asks. A message stored with bare LF (written by another path)
 * is sent with CRLF and is then longer than reported by one octet per bare
 * LF (two more without a final line end).
 *
 * Threads: open and commit touch the disk (index reads and writes, lock
 * waits, fsync) and run on the job pool; read runs on the connection's
 * event loop and costs one pread of at most the engine's chunk (the file
 * of the message being streamed stays open between chunks, so a chunk is
 * one system call); close only closes descriptors and frees memory. A
 * maildrop is used by one thread at a time (the job pool's hand-off
 * orders the accesses).
 *
 * Return values: open and commit return 0 or a negative enum
 * store_error with *error_r set (a static or thread-local string, valid
 * until that thread's next store call, so copy it before leaving the job).
 */
#ifndef CM_NODE_POP3_MAILDROP_H
#define CM_NODE_POP3_MAILDROP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/pop3/pop3.h"

struct store;
struct pop3_maildrop;

/* Opens user's INBOX (creating the user's directory on first access) and
 * takes the snapshot. Blocking: job pool only. */
int pop3_maildrop_open(struct store *store, const char *user, struct pop3_maildrop **md_r,
		       const char **error_r);
/* The snapshot, in UID order, as the engine takes it; valid until close. */
const struct pop3_message *pop3_maildrop_messages(const struct pop3_maildrop *md, size_t *count_r);
/* Sum of the snapshot's sizes. */
uint64_t pop3_maildrop_octets(const struct pop3_maildrop *md);
/* The engine's message_read: up to len bytes of message index (0-based)
 * from offset; the count read, 0 at the end, POP3_READ_GONE when another
 * session has expunged it, POP3_READ_TEMP on an I/O error (*error_r set).
 * Event loop safe (see above). */
ssize_t pop3_maildrop_read(struct pop3_maildrop *md, size_t index, uint64_t offset, void *buf,
			   size_t len, const char **error_r);
/* Expunges the messages at indexes (0-based, into the snapshot) by UID;
 * those already gone are skipped. 0 once the removal is durable, with
 * *removed_r the number this call removed; <0 (nothing promised about
 * which were removed; none is removed twice). Blocking: job pool only. */
int pop3_maildrop_commit(struct pop3_maildrop *md, const size_t *indexes, size_t count,
			 size_t *removed_r, const char **error_r);
/* Closes descriptors and frees; *md = NULL. NULL or *md == NULL: no-op. */
void pop3_maildrop_close(struct pop3_maildrop **md);

#endif
