/*
 * The SMTP queue: one spool directory per node, <store>/spool/<node-id>/,
 * holding the messages this node accepted for remote recipients (and for
 * local ones it could not deliver at once) until each recipient is
 * delivered, failed or expired. Also the maildrop, <store>/spool/maildrop/,
 * where the sendmail command leaves messages for any node to pick up.
 *
 * A queued message is two files: its data (immutable, written once) and
 * its envelope (sender, per-recipient state, schedule), replaced
 * atomically by rename on every change. Both are durable before
 * queue_writer_commit() or queue_envelope_update() returns; concurrent
 * callers share fsyncs through the store's group commit.
 *
 * Ownership: any process may add messages to a spool (a rename makes a
 * message appear whole), but only the holder of the spool's lock
 * (queue_lock) may deliver from it, update or remove its messages: the
 * lock is what lets a survivor take over a dead node's spool without
 * two processes ever working on one message. It is an fcntl lock, so it
 * dies with its process.
 *
 * Nothing here logs, knows SMTP or opens a socket. Errors are enum
 * store_error values (storage/store.h) with error_r as there.
 * The on-disk format: docs/storage-format.md ("SMTP queue").
 */
#ifndef CM_STORAGE_QUEUE_H
#define CM_STORAGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "storage/store.h"

#define QUEUE_ID_MAX 32	      /* including the NUL; [0-9A-Za-z] only */
#define QUEUE_ADDRESS_MAX 321 /* an RFC 5321 path (320) and a NUL */
#define QUEUE_ORCPT_MAX 501   /* RFC 3461 ORCPT= value (500) and a NUL */
#define QUEUE_REASON_MAX 512
#define QUEUE_RCPT_MAX 10000  /* recipients of one queued message */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,   /* not tried yet, or tried and deferred */
	QUEUE_RCPT_DELIVERED, /* done; kept until the message is removed */
	QUEUE_RCPT_FAILED,    /* permanent failure or expiry; a DSN is due or sent */
};

/* DSN NOTIFY bits, as in proto/smtp (kept equal to enum smtp_notify). */
enum queue_notify {
	QUEUE_NOTIFY_SUCCESS = 1,
	QUEUE_NOTIFY_FAILURE = 2,
	QUEUE_NOTIFY_DELAY = 4,
	QUEUE_NOTIFY_NEVER = 8,
};

struct queue_rcpt {
	char address[QUEUE_ADDRESS_MAX]; /* the envelope recipient */
	char orcpt[QUEUE_ORCPT_MAX];	 /* DSN ORCPT ("rfc822;..."), "" when absent */
	unsigned notify;		 /* QUEUE_NOTIFY_* bits, 0 = default (FAILURE|DELAY) */
	enum queue_rcpt_state state;
	bool dsn_sent;	      /* FAILED: the bounce for it is queued; DELIVERED: the success DSN */
	unsigned attempts;    /* delivery attempts that reached a verdict */
	char status[16];      /* last RFC 3463 status, e.g. "4.4.1", "" if none */
	char remote_mta[256]; /* host that gave the last answer, "" if none */
	char reason[QUEUE_REASON_MAX]; /* last diagnostic ("host said: ...") */
};

enum queue_ret {
	QUEUE_RET_DEFAULT, /* no RET: full message, as Postfix does */
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS,
};

struct queue_envelope {
	char id[QUEUE_ID_MAX];
	char sender[QUEUE_ADDRESS_MAX]; /* "" = null sender <> (bounces: never bounced) */
	char envid[101];		/* DSN ENVID (xtext as received), "" when absent */
	enum queue_ret ret;
	bool body_8bit;	     /* BODY=8BITMIME, or 8-bit bytes seen */
	bool smtputf8;
	bool hold;	     /* operator hold: not delivered until released */
	bool delay_warned;   /* the delay notice was sent */
	int64_t arrival;     /* unix seconds */
	int64_t next_attempt; /* unix seconds; 0 = now */
	unsigned attempts;    /* delivery runs of this message */
	char client[128];     /* who gave it to us, for DSNs: "host [addr]", "" if local */
	uint64_t size;	      /* message bytes (set by queue_writer_commit) */
	struct queue_rcpt *rcpts;
	size_t nrcpt;
};

/* Whether id is a well-formed queue id: 1 to QUEUE_ID_MAX - 1 characters
 * of [0-9A-Za-z]. */
bool queue_id_valid(const char *id);

/* Frees rcpts and zeroes the envelope. */
void queue_envelope_clear(struct queue_envelope *env);
/* Appends a pending recipient (orcpt may be NULL); STORE_E_LIMIT beyond
 * QUEUE_RCPT_MAX, STORE_E_INVALID for an address longer than
 * QUEUE_ADDRESS_MAX - 1, an orcpt longer than QUEUE_ORCPT_MAX - 1 or notify bits beyond QUEUE_NOTIFY_* (> 15). */
int queue_envelope_add_rcpt(struct queue_envelope *env, const char *address, const char *orcpt,
			    unsigned notify);
/* Recipients in each state. */
void queue_envelope_count(const struct queue_envelope *env, size_t *pending_r,
			  size_t *delivered_r, size_t *failed_r);

/* Pure: the envelope file's encoding (exposed for tests and the fuzz
 * harness). decode: STORE_E_CORRUPT on anything malformed, never a crash. */
struct textbuf;
void queue_envelope_encode(const struct queue_envelope *env, struct textbuf *out);
int queue_envelope_decode(const void *data, size_t len, struct queue_envelope *env_r,
			  const char **error_r);

struct queue;

/* Opens (creating) the spool named name under <store>/spool/: a node id
 * ("1", "node-a"), or "maildrop". Names are [0-9A-Za-z._-], at most 64
 * bytes, no leading '.' (STORE_E_INVALID otherwise). A struct queue may
 * be used by all threads of a process at once. Another handle of the
 * same spool in the same process (mailctl queue list inside maild) may
 * be opened and closed freely: the run lock belongs to the handle that
 * took it. */
int queue_open(struct store *store, const char *name, struct queue **q_r, const char **error_r);
void queue_close(struct queue **q);
const char *queue_name(const struct queue *q);
/* The spool directory's path (for messages and mailctl). */
const char *queue_path(const struct queue *q);

/* Takes the spool's run lock without waiting: STORE_OK (also when this
 * handle holds it already), or STORE_E_TEMP with "held by pid N" in
 * error_r when another process holds it. queue_close() releases it. */
int queue_lock(struct queue *q, const char **error_r);
bool queue_locked(const struct queue *q);
/* The pid holding the lock (written into the lock file by its holder;
 * our own pid when this handle holds it), 0 if none, <0 on error. */
int queue_lock_holder(struct queue *q);

/*
 * A new message. Create, write the data, then commit with its envelope
 * (env->id names it; env->size is set). On return STORE_OK the message
 * and envelope are durable and visible to queue_list(). Aborting or
 * failing leaves nothing behind (but a temporary file fsck-like cleanup
 * removes: queue_cleanup). commit consumes the writer in every case:
 * STORE_E_INVALID for a malformed env->id, STORE_E_EXISTS when the spool
 * has that id already, STORE_E_TEMP on I/O or fsync failure.
 */
struct queue_writer;
int queue_writer_create(struct queue *q, struct queue_writer **w_r, const char **error_r);
int queue_writer_write(struct queue_writer *w, const void *data, size_t len, const char **error_r);
uint64_t queue_writer_size(const struct queue_writer *w);
int queue_writer_commit(struct queue_writer **w, struct queue_envelope *env, const char **error_r);
void queue_writer_abort(struct queue_writer **w);

/* Every queued message id, in no particular order. The callback returns
 * false to stop. */
int queue_list(struct queue *q, bool (*cb)(const char *id, void *ctx), void *ctx,
	       const char **error_r);

/* Reads one envelope (STORE_E_NOTFOUND when gone). Any process may read;
 * the lock holder's view is the truth. STORE_E_CORRUPT when the envelope
 * does not decode or the data file is missing or not env->size bytes
 * (what a crash during a commit that never returned leaves). */
int queue_envelope_read(struct queue *q, const char *id, struct queue_envelope *env_r,
			const char **error_r);
/* Replaces the envelope durably (lock holder only: STORE_E_INVALID
 * otherwise; STORE_E_NOTFOUND when the message is not there). The lock
 * holder's threads must not update and remove one message at once. */
int queue_envelope_update(struct queue *q, const struct queue_envelope *env, const char **error_r);

/* Opens the message data read-only: a descriptor and its size, which is
 * checked against the envelope's (STORE_E_CORRUPT if they differ,
 * STORE_E_NOTFOUND when the message is gone). */
int queue_message_open(struct queue *q, const char *id, int *fd_r, uint64_t *size_r,
		       const char **error_r);
/* The same for a message whose envelope the caller has just read
 * (queue_envelope_read): opens its data checked against env->size,
 * without reading the envelope again. */
int queue_data_open(struct queue *q, const struct queue_envelope *env, int *fd_r,
		    const char **error_r);

/* Removes a message (envelope first, then data); lock holder only.
 * STORE_E_NOTFOUND when it is not there. */
int queue_remove(struct queue *q, const char *id, const char **error_r);

/* Moves a message whole from one spool to another (maildrop pickup,
 * takeover of single messages): the data is hard-linked into to and made
 * durable, then the envelope renamed (last), then from's data link
 * removed, so that it is in exactly one spool at any time. Needs from's
 * lock unless from is the maildrop (STORE_E_INVALID). STORE_E_NOTFOUND
 * when from has no such message (e.g. another node picked it up first;
 * a data link may then be left in to for queue_cleanup), STORE_E_EXISTS
 * when to has it already. Both spools must be on one filesystem. */
int queue_move(struct queue *from, struct queue *to, const char *id, const char **error_r);

/* Removes leftovers of interrupted writers older than max_age seconds
 * (data without envelope, temporary files, and torn commits: envelopes
 * that do not decode or whose data is missing or short, with their data);
 * lock holder only (STORE_E_INVALID). Returns the number removed, or <0.
 * max_age must exceed the time a writer may take. */
int queue_cleanup(struct queue *q, int64_t max_age, const char **error_r);

/* ---- spools of the whole store (storage/queue_spools.c) ---- */

/* The name of every spool under <store>/spool/ (node ids in numeric
 * order, then the other names such as "maildrop"), without opening or
 * locking any. The callback returns false to stop. STORE_OK (also when
 * there is no spool directory yet), STORE_E_LIMIT beyond 65537 spools,
 * STORE_E_TEMP on I/O errors. */
int queue_list_spools(struct store *store, bool (*cb)(const char *name, void *ctx), void *ctx,
		      const char **error_r);

#endif
