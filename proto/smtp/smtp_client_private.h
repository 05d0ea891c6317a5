/*
 * Internals shared by the SMTP client engine's files (smtp_client*.c).
 * Not for use outside proto/smtp.
 */
#ifndef CM_PROTO_SMTP_CLIENT_PRIVATE_H
#define CM_PROTO_SMTP_CLIENT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp/smtp_client.h"

/* One server reply being assembled line by line (smtp_client_reply.c). */
struct smtp_client_reply_reader {
	struct smtp_client_reply reply;
	unsigned lines;
	size_t text_len;
};

enum smtp_client_line_result {
	SMTP_CLIENT_LINE_MORE,	/* a continuation line: the reply goes on */
	SMTP_CLIENT_LINE_LAST,	/* the reply is complete in reader->reply */
	SMTP_CLIENT_LINE_ERROR, /* malformed: *error_r says why */
};

void smtp_client_reply_reader_reset(struct smtp_client_reply_reader *r);
/* One line without its CRLF. *text_r points at the line's text (after the
 * code and separator) for the EHLO keyword parser. */
enum smtp_client_line_result smtp_client_reply_line(struct smtp_client_reply_reader *r,
						    const char *line, const char **text_r,
						    const char **error_r);
/* "d.d.d" of class cls at the start of text: its length (5..9), or 0. */
size_t smtp_client_enhanced_code(const char *text, char cls);

/* EHLO keywords (smtp_client_caps.c): one line of an EHLO reply's text
 * adds its extension to *ext; SIZE's limit goes to *size_limit (0 = none). */
void smtp_client_caps_line(const char *text, unsigned *ext, uint64_t *size_limit);

/* The body encoder (smtp_client_body.c): raw message bytes with LF or
 * CRLF line ends in, CRLF dot-stuffed DATA bytes out. */
struct smtp_client_body_encoder {
	bool line_start;
	bool pending_cr;
};

void smtp_client_body_encoder_init(struct smtp_client_body_encoder *e);
/* Writes the encoding of data through write(ctx, ...), in pieces. */
void smtp_client_body_encode(struct smtp_client_body_encoder *e, const void *data, size_t len,
			     void (*write)(void *ctx, const void *data, size_t len), void *ctx);
/* Ends the last line if needed and writes "." CRLF. */
void smtp_client_body_encode_end(struct smtp_client_body_encoder *e,
				 void (*write)(void *ctx, const void *data, size_t len), void *ctx);

#endif
