/*
 * queue_envelope_format: what the envelope encoder and decoder share
 * (storage/queue_envelope.c, storage/queue_envelope_decode.c).
 */
#ifndef CM_STORAGE_QUEUE_ENVELOPE_FORMAT_H
#define CM_STORAGE_QUEUE_ENVELOPE_FORMAT_H

#include <stdbool.h>

#include "storage/queue_internal.h"

#define QUEUE_ENVELOPE_MAGIC "clustermail-queue"
#define QUEUE_ENVELOPE_VERSION 1
/* The longest line the encoder writes is a recipient with every field at
 * its maximum, escaped: about 4,400 bytes. */
#define QUEUE_ENVELOPE_LINE_MAX 8192
#define QUEUE_NOTIFY_ALL 15u

extern const char *const queue_rcpt_state_names[3];
extern const char *const queue_ret_names[3];

/* Whether the byte is written as itself (otherwise as %XX). */
bool queue_byte_literal(unsigned char c);

#endif
