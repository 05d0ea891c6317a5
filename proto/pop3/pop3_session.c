/*
 * POP3 session state machine (see pop3.h for the contract). States follow
 * RFC 1939: AUTHORIZATION until credentials are accepted and the maildrop
 * is open, then TRANSACTION; QUIT in TRANSACTION is the UPDATE state, the
 * only place deletions are committed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/pop3/pop3_private.h"

void pop3_out(struct pop3_session *s, const char *text)
{
	s->be->write(s->ctx, text, strlen(text));
}

void pop3_outf(struct pop3_session *s, const char *fmt, ...)
{
	struct textbuf tb = TEXTBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	textbuf_vprintf(&tb, fmt, ap);
	va_end(ap);
	s->be->write(s->ctx, tb.data, tb.len);
	textbuf_free(&tb);
}

static void copy_settings(struct pop3_session *s, const struct pop3_settings *in)
{
	const char *src[5] = { in->hostname, in->implementation, in->apop_timestamp,
			       in->sasl_mechanisms, NULL };
	for (int i = 0; i < 4; i++) {
		free(s->set_strings[i]);
		s->set_strings[i] = src[i] ? strdup(src[i]) : NULL;
	}
	s->set = *in;
	s->set.hostname = s->set_strings[0] ? s->set_strings[0] : "localhost";
	s->set.implementation = s->set_strings[1];
	s->set.apop_timestamp = s->set_strings[2];
	s->set.sasl_mechanisms = s->set_strings[3] ? s->set_strings[3] : "";
}

struct pop3_session *pop3_session_new(const struct pop3_settings *settings,
				      const struct pop3_backend *backend, void *ctx)
{
	struct pop3_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (linebuf_init(&s->lines, POP3_SASL_LINE_MAX) < 0) {
		free(s);
		return NULL;
	}
	s->be = backend;
	s->ctx = ctx;
	copy_settings(s, settings);
	s->state = STATE_AUTHORIZATION;
	s->want = POP3_WANT_INPUT;
	if (s->set.apop_timestamp != NULL)
		pop3_outf(s, "+OK %s POP3 server ready %s\r\n", s->set.hostname, s->set.apop_timestamp);
	else
		pop3_outf(s, "+OK %s POP3 server ready\r\n", s->set.hostname);
	return s;
}

void pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;

	if (s == NULL)
		return;
	if (s->maildrop_open)
		s->be->maildrop_close(s->ctx);
	linebuf_free(&s->lines);
	textbuf_free(&s->pending);
	free(s->deleted);
	free(s->commit_indexes);
	for (int i = 0; i < 4; i++)
		free(s->set_strings[i]);
	free(s);
	*sp = NULL;
}

void pop3_session_stats(const struct pop3_session *s, struct pop3_session_stats *stats_r)
{
	*stats_r = s->stats;
}

const char *pop3_session_user(const struct pop3_session *s)
{
	return s->authenticated ? s->user : NULL;
}

enum pop3_want pop3_close_session(struct pop3_session *s)
{
	s->state = STATE_CLOSED;
	s->want = POP3_WANT_CLOSE;
	return s->want;
}

enum pop3_want pop3_bad_command(struct pop3_session *s, const char *text)
{
	pop3_outf(s, "-ERR %s\r\n", text);
	if (++s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
		pop3_out(s, "-ERR Too many bad commands, closing\r\n");
		return pop3_close_session(s);
	}
	return POP3_WANT_INPUT;
}

enum pop3_want pop3_begin_auth(struct pop3_session *s, const struct pop3_auth_request *req)
{
	s->want = POP3_WANT_AUTH;
	s->be->auth_begin(s->ctx, req);
	return s->want;
}

static enum pop3_want handle_line(struct pop3_session *s, char *line)
{
	char *arg = strchr(line, ' ');

	if (s->in_sasl) {
		struct pop3_auth_request req = { .kind = strcmp(line, "*") == 0 ? POP3_AUTH_SASL_ABORT
										: POP3_AUTH_SASL_STEP,
						 .response = line };
		return pop3_begin_auth(s, &req);
	}
	if (strlen(line) > POP3_LINE_MAX - 2)
		return pop3_bad_command(s, "Line too long");
	if (arg != NULL)
		*arg++ = '\0';
	if (strlen(line) == 0 || strlen(line) > 4)
		return pop3_bad_command(s, "Unknown command");
	if (strcasecmp(line, "QUIT") == 0)
		return pop3_cmd_quit(s);
	if (strcasecmp(line, "CAPA") == 0) {
		pop3_write_capabilities(s);
		return POP3_WANT_INPUT;
	}
	if (strcasecmp(line, "NOOP") == 0) {
		if (s->state != STATE_TRANSACTION)
			return pop3_bad_command(s, "NOOP is for the TRANSACTION state");
		pop3_out(s, "+OK\r\n");
		return POP3_WANT_INPUT;
	}
	if (s->state == STATE_AUTHORIZATION)
		return pop3_cmd_authorization(s, line, arg);
	return pop3_cmd_transaction(s, line, arg);
}

/* Processes buffered lines while the session can take commands. */
static enum pop3_want run(struct pop3_session *s, const char *data, size_t len)
{
	while (s->want == POP3_WANT_INPUT) {
		const char *line;
		bool has_nul;
		enum linebuf_result r = linebuf_feed(&s->lines, &data, &len, &line, &has_nul);
		if (r == LINEBUF_NEED_MORE)
			break;
		if (r == LINEBUF_TOO_LONG) {
			s->in_sasl = false;
			s->want = pop3_bad_command(s, "Line too long");
			continue;
		}
		if (has_nul) {
			s->in_sasl = false;
			s->want = pop3_bad_command(s, "NUL bytes are not allowed");
			continue;
		}
		char copy[POP3_SASL_LINE_MAX + 1];
		snprintf(copy, sizeof(copy), "%s", line);
		s->want = handle_line(s, copy);
		explicit_bzero(copy, sizeof(copy)); /* may have held a password */
	}
	if (s->want == POP3_WANT_TLS) {
		/* Nothing sent before the handshake may count after it. */
		linebuf_reset(&s->lines);
		textbuf_truncate(&s->pending, 0);
		return s->want;
	}
	if (len > 0 && s->want != POP3_WANT_CLOSE) {
		if (s->pending.len + len > POP3_SASL_LINE_MAX * 4) {
			pop3_out(s, "-ERR Too much pipelined input\r\n");
			return pop3_close_session(s);
		}
		textbuf_append(&s->pending, data, len);
	}
	return s->want;
}

/* Runs input held back while the session was busy. */
static enum pop3_want drain_pending(struct pop3_session *s)
{
	if (s->want != POP3_WANT_INPUT || s->pending.len == 0)
		return s->want;
	struct textbuf held = s->pending;
	s->pending = (struct textbuf)TEXTBUF_INIT;
	enum pop3_want w = run(s, held.data, held.len);
	textbuf_free(&held);
	return w;
}

enum pop3_want pop3_session_input(struct pop3_session *s, const void *data, size_t len)
{
	if (s->state == STATE_CLOSED)
		return POP3_WANT_CLOSE;
	if (s->want != POP3_WANT_INPUT) {
		if (s->want == POP3_WANT_TLS)
			return s->want; /* discarded: sent after STLS */
		if (s->pending.len + len > POP3_SASL_LINE_MAX * 4) {
			pop3_out(s, "-ERR Too much pipelined input\r\n");
			return pop3_close_session(s);
		}
		textbuf_append(&s->pending, data, len);
		return s->want;
	}
	return run(s, data, len);
}

enum pop3_want pop3_session_resume(struct pop3_session *s)
{
	char in[POP3_STREAM_CHUNK / 2], enc[POP3_STREAM_CHUNK + POP3_STREAM_FINISH_MAX];

	if (!s->streaming)
		return drain_pending(s);
	ssize_t n = s->stream.done ? 0
				   : s->be->message_read(s->ctx, s->stream_index, s->stream_offset, in,
							 sizeof(in));
	if (n < 0) {
		/* The +OK is out; the only honest end is to close the session. */
		s->streaming = false;
		return pop3_close_session(s);
	}
	size_t o = n > 0 ? pop3_stream_encode(&s->stream, in, (size_t)n, enc) : 0;
	s->stream_offset += (uint64_t)n;
	if (n == 0 || s->stream.done) {
		o += pop3_stream_finish(&s->stream, enc + o);
		s->streaming = false;
		s->want = POP3_WANT_INPUT;
	}
	s->be->write(s->ctx, enc, o);
	return s->streaming ? POP3_WANT_OUTPUT : drain_pending(s);
}

enum pop3_want pop3_session_maildrop_opened(struct pop3_session *s, int rc,
					    const struct pop3_message *msgs, size_t count)
{
	if (s->want != POP3_WANT_STORE || s->state != STATE_AUTHORIZATION)
		return s->want;
	s->want = POP3_WANT_INPUT;
	if (rc != POP3_MAILDROP_OK) {
		s->authenticated = false;
		if (rc == POP3_MAILDROP_IN_USE)
			pop3_out(s, "-ERR [IN-USE] Mailbox is locked by another session\r\n");
		else if (rc == POP3_MAILDROP_PERM)
			pop3_out(s, "-ERR [SYS/PERM] Mailbox cannot be opened\r\n");
		else
			pop3_out(s, "-ERR [SYS/TEMP] Mailbox is temporarily unavailable\r\n");
		return pop3_close_session(s);
	}
	s->msgs = msgs;
	s->count = count;
	s->maildrop_open = true;
	s->deleted = calloc(s->count ? s->count : 1, sizeof(*s->deleted));
	if (s->deleted == NULL) {
		pop3_out(s, "-ERR [SYS/TEMP] Out of memory\r\n");
		return pop3_close_session(s);
	}
	s->state = STATE_TRANSACTION;
	pop3_outf(s, "+OK Logged in, %zu messages\r\n", s->count);
	return drain_pending(s);
}

enum pop3_want pop3_session_commit_done(struct pop3_session *s, int rc)
{
	if (s->want != POP3_WANT_STORE || s->state != STATE_TRANSACTION)
		return s->want;
	if (rc < 0)
		pop3_out(s, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
	else
		pop3_outf(s, "+OK %s POP3 server signing off (%zu messages deleted)\r\n", s->set.hostname,
			  s->deleted_count);
	return pop3_close_session(s);
}

enum pop3_want pop3_session_auth_result(struct pop3_session *s, enum pop3_auth_status status,
					const char *user, const char *challenge)
{
	if (s->want != POP3_WANT_AUTH)
		return s->want;
	s->want = POP3_WANT_INPUT;
	switch (status) {
	case POP3_AUTH_CONTINUE:
		pop3_outf(s, "+ %s\r\n", challenge ? challenge : "");
		return drain_pending(s); /* the next line is the client's response */
	case POP3_AUTH_OK:
		s->in_sasl = false;
		if (user != NULL) /* else the name the client gave stays */
			snprintf(s->user, sizeof(s->user), "%s", user);
		s->authenticated = true;
		s->want = POP3_WANT_STORE;
		s->be->maildrop_open(s->ctx, s->user);
		return s->want;
	case POP3_AUTH_FAILED:
		s->in_sasl = false;
		s->want = pop3_bad_command(s, "[AUTH] Authentication failed");
		return drain_pending(s);
	case POP3_AUTH_UNSUPPORTED:
		s->in_sasl = false;
		s->want = pop3_bad_command(s, "Unsupported authentication mechanism");
		return drain_pending(s);
	case POP3_AUTH_TEMPFAIL:
	default:
		s->in_sasl = false;
		pop3_out(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable\r\n");
		return drain_pending(s);
	}
}

enum pop3_want pop3_session_tls_started(struct pop3_session *s, const struct pop3_settings *new_settings)
{
	if (s->want != POP3_WANT_TLS)
		return s->want;
	if (new_settings != NULL)
		copy_settings(s, new_settings);
	s->set.tls_active = true;
	s->user_given = false;
	s->user[0] = '\0';
	linebuf_reset(&s->lines);
	textbuf_truncate(&s->pending, 0);
	s->want = POP3_WANT_INPUT;
	return s->want;
}

enum pop3_want pop3_session_shutdown(struct pop3_session *s)
{
	if (s->state == STATE_CLOSED)
		return POP3_WANT_CLOSE;
	s->streaming = false;
	pop3_out(s, "-ERR [SYS/TEMP] Server shutting down\r\n");
	return pop3_close_session(s);
}
