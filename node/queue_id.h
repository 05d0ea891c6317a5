/*
 * Queue IDs (node/smtp_queue_id.c): one name per accepted message, in
 * replies, Received: fields, log lines and as the queue file's name.
 */
#ifndef CM_NODE_QUEUE_ID_H
#define CM_NODE_QUEUE_ID_H

#include <stdint.h>

/* 15 characters and a NUL. */
#define SMTP_QUEUE_ID_SIZE 16

void smtp_queue_id_new(unsigned node_id, char out[SMTP_QUEUE_ID_SIZE]);
void smtp_queue_id_format(uint64_t us, unsigned node_id, char out[SMTP_QUEUE_ID_SIZE]);

#endif
