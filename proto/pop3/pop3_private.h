/*
 * Internals shared by the POP3 engine's files: the session struct and the
 * small helpers the command handlers use. Not for use outside proto/pop3.
 */
#ifndef CM_PROTO_POP3_PRIVATE_H
#define CM_PROTO_POP3_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/linebuf.h"
#include "lib/textbuf.h"
#include "proto/pop3/pop3.h"
#include "proto/pop3/pop3_stream.h"

enum pop3_state {
	STATE_AUTHORIZATION,
	STATE_TRANSACTION,
	STATE_CLOSED,
};

struct pop3_session {
	const struct pop3_backend *be;
	void *ctx;
	struct pop3_settings set;
	char *set_strings[5]; /* owned copies behind set's pointers */

	enum pop3_state state;
	enum pop3_want want;
	struct linebuf lines;
	struct textbuf pending;  /* input received while not WANT_INPUT */
	unsigned bad_commands;

	char user[POP3_USER_MAX + 1]; /* USER given, or the authenticated user */
	bool user_given;
	bool authenticated;
	bool in_sasl;            /* lines are SASL responses, not commands */

	const struct pop3_message *msgs;
	size_t count;
	bool maildrop_open;
	struct pop3_session_stats stats;
	size_t *commit_indexes;  /* QUIT's deletions, until commit_done */
	bool *deleted;
	size_t deleted_count;
	uint64_t deleted_octets;

	/* RETR/TOP in progress */
	bool streaming;
	size_t stream_index;
	uint64_t stream_offset;
	struct pop3_stream stream;
};

void pop3_out(struct pop3_session *s, const char *text);
void pop3_outf(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum pop3_want pop3_close_session(struct pop3_session *s);
enum pop3_want pop3_bad_command(struct pop3_session *s, const char *text);
enum pop3_want pop3_begin_auth(struct pop3_session *s, const struct pop3_auth_request *req);
/* Command handlers (pop3_commands.c). */
void pop3_write_capabilities(struct pop3_session *s);
enum pop3_want pop3_cmd_authorization(struct pop3_session *s, const char *cmd, char *arg);
enum pop3_want pop3_cmd_transaction(struct pop3_session *s, const char *cmd, char *arg);
enum pop3_want pop3_cmd_quit(struct pop3_session *s);

#endif
