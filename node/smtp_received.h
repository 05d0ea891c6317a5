/*
 * Trace header fields of received mail (node/smtp_received.c, pure):
 * Received: as RFC 5321 §4.4 and Postfix write it, and Return-Path: at
 * final delivery.
 */
#ifndef CM_NODE_SMTP_RECEIVED_H
#define CM_NODE_SMTP_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/textbuf.h"

struct smtp_received_info {
	const char *helo;
	bool esmtp;
	const char *peer; /* conn_info: "addr:port" or "[v6]:port" */
	bool tls;
	const char *tls_protocol;
	const char *tls_cipher;
	const char *tls_client_subject; /* "" or NULL: none */
	bool authenticated;
	const char *hostname;
	const char *queue_id;
	const char *for_rcpt; /* NULL unless exactly one recipient */
	time_t when;
};
void smtp_received_format(const struct smtp_received_info *in, struct textbuf *out);
void smtp_return_path_format(const char *sender, struct textbuf *out);
/* "192.0.2.1" or "IPv6:2001:db8::1" from a conn_info peer: 0, or -1
 * when out is too small. */
int smtp_received_peer_literal(const char *peer, char *out, size_t size);
/* RFC 5322 date-time in local time: "Tue, 3 Oct 2023 10:00:00 +0200". */
void smtp_received_date(time_t when, char *out, size_t size);

#endif
