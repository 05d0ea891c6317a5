/*
 * Internals shared by the SMTP engine's files. Not for use outside
 * proto/smtp.
 */
#ifndef CM_PROTO_SMTP_PRIVATE_H
#define CM_PROTO_SMTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/linebuf.h"
#include "lib/textbuf.h"
#include "proto/smtp/smtp.h"
#include "proto/smtp/smtp_data.h"

enum smtp_phase {
	SMTP_PHASE_COMMAND,
	SMTP_PHASE_SASL,   /* lines are answers to 334 */
	SMTP_PHASE_DATA,   /* DATA stream until CRLF.CRLF */
	SMTP_PHASE_BDAT,   /* bdat_left raw octets */
	SMTP_PHASE_CLOSED,
};

struct smtp_session {
	const struct smtp_backend *be;
	void *ctx;
	struct smtp_settings set;
	char *set_strings[2];

	enum smtp_phase phase;
	enum smtp_want want;
	struct linebuf lines;
	struct textbuf pending;
	unsigned bad_commands;

	char helo[256];
	bool esmtp;
	bool authenticated;
	bool auth_abort;       /* the pending auth answer is for a "*" */
	char user[SMTP_PATH_MAX + 1];

	/* the transaction */
	bool have_mail;
	unsigned rcpt_count;
	bool data_started;     /* data_begin accepted for this transaction */
	uint64_t data_size;
	bool data_too_big;
	bool data_write_failed;
	struct smtp_data decoder;
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_failed;      /* this transaction's BDAT stream was refused or failed */
	bool bdat_cr;          /* the last BDAT octet was a CR */
	bool bdat_line_open;   /* BDAT octets since the last LF */
	uint64_t bdat_received; /* octets of the chunks so far, as sent */
	/* why a message could not start (replied when its BDAT octets are read) */
	struct {
		int code;
		char enhanced[16];
		char text[256];
	} refusal;
};

void smtp_reply(struct smtp_session *s, int code, const char *enhanced, const char *text);
void smtp_replyf(struct smtp_session *s, int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Sends a backend decision, or the default when reply->code is 0. */
void smtp_reply_backend(struct smtp_session *s, const struct smtp_reply *r, int def_code,
			const char *def_enhanced, const char *def_text);
enum smtp_want smtp_close(struct smtp_session *s);
/* Records why a message could not start or go on (s->refusal). */
void smtp_refuse(struct smtp_session *s, int code, const char *enhanced, const char *text);
enum smtp_want smtp_bad_command(struct smtp_session *s, int code, const char *enhanced, const char *text);
/* Counts one error (a bad command, a refused recipient); past
 * SMTP_MAX_BAD_COMMANDS since the last accepted message: 421 and close. */
enum smtp_want smtp_count_error(struct smtp_session *s);
void smtp_transaction_reset(struct smtp_session *s);
enum smtp_want smtp_begin_auth(struct smtp_session *s, const struct smtp_auth_request *req);
/* Message bytes for the current transaction (counts size, calls the backend). */
void smtp_data_bytes(struct smtp_session *s, const char *data, size_t len);
/* The message is complete: reject or hand to the backend for commit. */
enum smtp_want smtp_data_finished(struct smtp_session *s);

enum smtp_want smtp_command(struct smtp_session *s, char *line);

#endif
