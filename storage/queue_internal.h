/*
 * queue_internal: what storage/queue_*.c share: the spool handle, its
 * directory descriptors and the small helpers every queue file needs.
 *
 * Layout (docs/storage-format.md, "SMTP queue"):
 *   <store>/spool/<name>/lock      fcntl write lock on byte 0: the run lock
 *   <store>/spool/<name>/tmp/      files being written (d-*, e-*, u-*)
 *   <store>/spool/<name>/data/<id> message data, immutable
 *   <store>/spool/<name>/env/<id>  envelope; the message exists iff this does
 */
#ifndef CM_STORAGE_QUEUE_INTERNAL_H
#define CM_STORAGE_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/queue.h"

#define QUEUE_NAME_MAX 64		    /* spool names: [0-9A-Za-z._-], no leading '.' */
#define QUEUE_ENVELOPE_FILE_MAX (64u << 20) /* a bigger envelope file is corrupt */

struct queue {
	struct store *store;
	char name[QUEUE_NAME_MAX + 1];
	char *path; /* <store>/spool/<name> */
	int dir_fd;
	int tmp_fd, data_fd, env_fd;
	int lock_fd;		 /* open until queue_close: closing any descriptor
				    of the lock file would drop this process's lock */
	pthread_mutex_t lock_mu; /* guards locked and the fcntl calls */
	bool locked;
};

/* Whether a directory entry from the disk is a well-formed message id. */
bool queue_id_valid_len(const char *id, size_t len);

/* A new temporary file tmp/<prefix>-<random hex>; its name goes to
 * name (at least 24 bytes). Returns the descriptor or <0. */
int queue_tmp_create(struct queue *q, char prefix, char *name, const char **error_r);
/* What only the spool's lock holder may do: STORE_E_INVALID without it.
 * maildrop_ok: the maildrop has no owner, any node may do this there
 * (move messages out, clean). */
int queue_need_lock(struct queue *q, bool maildrop_ok, const char *what, const char **error_r);

/* Reads env/<id> and decodes it: NOTFOUND when there is no envelope,
 * CORRUPT when it does not decode. Does not look at the data file. */
int queue_envelope_load(struct queue *q, const char *id, struct queue_envelope *env_r,
			const char **error_r);

/* Whether the data file of a decoded envelope is there with the size the
 * envelope records: STORE_OK, CORRUPT (missing or another size), TEMP. */
int queue_data_check(struct queue *q, const struct queue_envelope *env, const char **error_r);

/* The seconds since st's ctime (link, rename and write all update it). */
struct stat;
int64_t queue_age(const struct stat *st);

#endif
