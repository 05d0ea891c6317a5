/*
 * SMTP session flow (see smtp.h for the contract): input in the command,
 * SASL, DATA and BDAT phases, pipelined input held while the session
 * waits, the end of a message and its commit, STARTTLS, shutdown. The
 * commands themselves are in smtp_commands.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp/smtp_private.h"

/* Input held while the session waits (pipelined commands). */
#define SMTP_PENDING_MAX (64 * 1024)
/* DATA is decoded in pieces of this size. */
#define SMTP_DATA_PIECE 8192

void smtp_reply(struct smtp_session *s, int code, const char *enhanced, const char *text)
{
	char line[1100];
	int n = enhanced ? snprintf(line, sizeof(line), "%d %s %s\r\n", code, enhanced, text)
			 : snprintf(line, sizeof(line), "%d %s\r\n", code, text);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	s->be->write(s->ctx, line, (size_t)n);
}

void smtp_replyf(struct smtp_session *s, int code, const char *enhanced, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_reply(s, code, enhanced, text);
}

void smtp_reply_backend(struct smtp_session *s, const struct smtp_reply *r, int def_code,
			const char *def_enhanced, const char *def_text)
{
	static const char *const classes[] = { "2.0.0", "4.0.0", "5.0.0" };
	if (r == NULL || r->code == 0) {
		smtp_reply(s, def_code, def_enhanced, def_text);
		return;
	}
	int cls = r->code / 100;
	const char *enh = r->enhanced ? r->enhanced : classes[cls == 2 ? 0 : cls == 4 ? 1 : 2];
	smtp_reply(s, r->code, enh, r->text ? r->text : "Error");
}

static void copy_settings(struct smtp_session *s, const struct smtp_settings *in)
{
	const char *src[2] = { in->hostname, in->sasl_mechanisms };
	for (int i = 0; i < 2; i++) {
		free(s->set_strings[i]);
		s->set_strings[i] = src[i] ? strdup(src[i]) : NULL;
	}
	s->set = *in;
	s->set.hostname = s->set_strings[0] ? s->set_strings[0] : "localhost";
	s->set.sasl_mechanisms = s->set_strings[1] ? s->set_strings[1] : "";
}

struct smtp_session *smtp_session_new(const struct smtp_settings *settings,
				      const struct smtp_backend *backend, void *ctx)
{
	struct smtp_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (linebuf_init(&s->lines, SMTP_SASL_LINE_MAX) < 0) {
		free(s);
		return NULL;
	}
	s->be = backend;
	s->ctx = ctx;
	copy_settings(s, settings);
	s->want = SMTP_WANT_INPUT;
	s->phase = SMTP_PHASE_COMMAND;
	smtp_replyf(s, 220, NULL, "%s ESMTP clustermail", s->set.hostname);
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;
	if (s == NULL)
		return;
	/* a connection that ends mid-message: the backend drops the message */
	if (s->data_started && s->want != SMTP_WANT_COMMIT)
		s->be->data_commit(s->ctx, false, NULL);
	linebuf_free(&s->lines);
	textbuf_free(&s->pending);
	for (int i = 0; i < 2; i++)
		free(s->set_strings[i]);
	free(s);
	*sp = NULL;
}

enum smtp_want smtp_close(struct smtp_session *s)
{
	s->phase = SMTP_PHASE_CLOSED;
	s->want = SMTP_WANT_CLOSE;
	return s->want;
}

enum smtp_want smtp_count_error(struct smtp_session *s)
{
	if (++s->bad_commands >= SMTP_MAX_BAD_COMMANDS) {
		smtp_reply(s, 421, "4.7.0", "Too many errors, closing connection");
		return smtp_close(s);
	}
	return SMTP_WANT_INPUT;
}

enum smtp_want smtp_bad_command(struct smtp_session *s, int code, const char *enhanced, const char *text)
{
	smtp_reply(s, code, enhanced, text);
	return smtp_count_error(s);
}

void smtp_transaction_reset(struct smtp_session *s)
{
	if (s->have_mail || s->data_started)
		s->be->reset(s->ctx);
	s->have_mail = false;
	s->rcpt_count = 0;
	s->data_started = false;
	s->data_size = 0;
	s->data_too_big = false;
	s->data_write_failed = false;
	s->bdat_left = 0;
	s->bdat_last = false;
	s->bdat_failed = false;
	s->bdat_cr = false;
	s->bdat_line_open = false;
	s->bdat_received = 0;
}

enum smtp_want smtp_begin_auth(struct smtp_session *s, const struct smtp_auth_request *req)
{
	s->want = SMTP_WANT_AUTH;
	s->be->auth_begin(s->ctx, req);
	return s->want;
}

void smtp_data_bytes(struct smtp_session *s, const char *data, size_t len)
{
	if (len == 0 || s->data_too_big || s->data_write_failed || !s->data_started)
		return;
	if (s->set.max_message_size > 0 && s->data_size + len > s->set.max_message_size) {
		s->data_too_big = true;
		return;
	}
	s->data_size += len;
	if (s->be->data_write(s->ctx, data, len) < 0)
		s->data_write_failed = true;
}

/* Why the message cannot be taken (into s->refusal), or false. */
static bool message_refused(struct smtp_session *s, bool bare)
{
	if (bare)
		smtp_refuse(s, 550, "5.6.11", "Message contains a bare CR or LF; use CRLF line endings");
	else if (s->data_too_big)
		smtp_refuse(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
	else if (s->data_write_failed)
		smtp_refuse(s, 451, "4.3.0", "Error: local problem writing the message, try again later");
	else
		return false;
	return true;
}

/* Tells the backend that the message is dropped for s->refusal. */
static void commit_refused(struct smtp_session *s)
{
	const struct smtp_reply r = {s->refusal.code, s->refusal.enhanced, s->refusal.text};
	s->be->data_commit(s->ctx, false, &r);
}

enum smtp_want smtp_data_finished(struct smtp_session *s)
{
	bool bare = s->phase == SMTP_PHASE_DATA && s->decoder.bare_line_end;

	if (s->phase == SMTP_PHASE_BDAT && s->bdat_line_open)
		smtp_data_bytes(s, "\r\n", 2); /* the last line's end, as DATA's always has */

	s->phase = SMTP_PHASE_COMMAND;
	if (message_refused(s, bare)) {
		commit_refused(s);
		smtp_reply(s, s->refusal.code, s->refusal.enhanced, s->refusal.text);
		smtp_transaction_reset(s);
		return SMTP_WANT_INPUT;
	}
	s->want = SMTP_WANT_COMMIT;
	s->be->data_commit(s->ctx, true, NULL);
	return s->want;
}

static enum smtp_want sasl_line(struct smtp_session *s, const char *line)
{
	struct smtp_auth_request req = { .kind = strcmp(line, "*") == 0 ? SMTP_AUTH_ABORT : SMTP_AUTH_STEP,
					 .response = line };
	s->auth_abort = req.kind == SMTP_AUTH_ABORT;
	return smtp_begin_auth(s, &req);
}

/* Consumes command/SASL lines; returns bytes consumed. */
static size_t run_lines(struct smtp_session *s, const char *data, size_t len)
{
	const char *p = data;
	size_t left = len;

	while (left > 0 && s->want == SMTP_WANT_INPUT &&
	       (s->phase == SMTP_PHASE_COMMAND || s->phase == SMTP_PHASE_SASL)) {
		const char *line;
		bool nul;
		enum linebuf_result r = linebuf_feed(&s->lines, &p, &left, &line, &nul);
		if (r == LINEBUF_NEED_MORE)
			break;
		if (r == LINEBUF_TOO_LONG || nul) {
			if (s->phase == SMTP_PHASE_SASL) {
				s->phase = SMTP_PHASE_COMMAND;
				smtp_reply(s, 501, "5.5.2", "Error: malformed authentication response");
				continue;
			}
			s->want = smtp_bad_command(s, 500, "5.5.2",
						   nul ? "Error: NUL characters are not allowed"
						       : "Error: line too long");
			continue;
		}
		char copy[SMTP_SASL_LINE_MAX + 1];
		snprintf(copy, sizeof(copy), "%s", line);
		if (s->phase == SMTP_PHASE_SASL)
			s->want = sasl_line(s, copy);
		else if (strlen(copy) > (strncasecmp(copy, "AUTH ", 5) == 0 ? SMTP_AUTH_LINE_MAX
									  : SMTP_COMMAND_LINE_MAX))
			s->want = smtp_bad_command(s, 500, "5.5.2", "Error: line too long");
		else
			s->want = smtp_command(s, copy);
		explicit_bzero(copy, sizeof(copy));
	}
	return len - left;
}

static size_t run_data(struct smtp_session *s, const char *data, size_t len)
{
	char out[SMTP_DATA_PIECE + 1];
	size_t take = len < SMTP_DATA_PIECE ? len : SMTP_DATA_PIECE, produced;
	size_t used = smtp_data_decode(&s->decoder, data, take, out, &produced);

	smtp_data_bytes(s, out, produced);
	if (s->decoder.done)
		s->want = smtp_data_finished(s);
	return used;
}

/* BDAT octets as stored: a bare LF becomes CRLF (as Postfix reads it: a
 * line end), so that stored messages have CRLF line ends whatever the
 * command, and what POP3 sends is what it counted. A bare CR is content,
 * as everywhere. out holds 2 * len. */
static size_t bdat_normalize(struct smtp_session *s, const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && !s->bdat_cr)
			out[o++] = '\r';
		out[o++] = in[i];
		s->bdat_cr = in[i] == '\r';
		s->bdat_line_open = in[i] != '\n';
	}
	return o;
}

static size_t run_bdat(struct smtp_session *s, const char *data, size_t len)
{
	char out[2 * SMTP_DATA_PIECE];
	size_t take = (uint64_t)len < s->bdat_left ? len : (size_t)s->bdat_left;
	if (take > SMTP_DATA_PIECE)
		take = SMTP_DATA_PIECE;

	if (s->data_started)
		smtp_data_bytes(s, out, bdat_normalize(s, data, take, out));
	s->bdat_left -= take;
	s->bdat_received += take;
	if (s->bdat_left == 0) {
		/* The chunk that pushed the message over the size limit, or could
		 * not be written, fails the transaction now rather than at BDAT
		 * LAST: the client hears it at once, the rest of its chunks are
		 * dropped. */
		if (s->data_started && !s->bdat_last && message_refused(s, false)) {
			commit_refused(s);
			s->data_started = false;
			s->bdat_failed = true;
		}
		if (!s->data_started) {
			/* refused when its command came (or by the chunk before):
			 * answered now, after its octets, so replies stay in order */
			s->phase = SMTP_PHASE_COMMAND;
			s->want = smtp_bad_command(s, s->refusal.code, s->refusal.enhanced, s->refusal.text);
			if (s->bdat_last && s->want == SMTP_WANT_INPUT)
				smtp_transaction_reset(s);
		} else if (s->bdat_last) {
			s->want = smtp_data_finished(s);
		} else {
			s->phase = SMTP_PHASE_COMMAND;
			smtp_replyf(s, 250, "2.0.0", "Ok: %llu octets received",
				    (unsigned long long)s->bdat_received);
		}
	}
	return take;
}

static enum smtp_want run(struct smtp_session *s, const char *data, size_t len)
{
	while (s->want == SMTP_WANT_INPUT && s->phase != SMTP_PHASE_CLOSED) {
		enum smtp_phase before = s->phase;
		size_t used;
		if (s->phase == SMTP_PHASE_DATA)
			used = len ? run_data(s, data, len) : 0;
		else if (s->phase == SMTP_PHASE_BDAT)
			used = s->bdat_left == 0 || len ? run_bdat(s, data, len) : 0;
		else
			used = run_lines(s, data, len);
		data += used;
		len -= used;
		if (used == 0 && s->phase == before)
			break; /* nothing more can happen without more input */
	}
	if (s->want == SMTP_WANT_TLS) {
		/* Nothing sent before the handshake may count after it. */
		linebuf_reset(&s->lines);
		textbuf_truncate(&s->pending, 0);
		return s->want;
	}
	if (len > 0 && s->want != SMTP_WANT_CLOSE) {
		if (s->pending.len + len > SMTP_PENDING_MAX) {
			smtp_reply(s, 421, "4.7.0", "Too much pipelined input, closing connection");
			return smtp_close(s);
		}
		textbuf_append(&s->pending, data, len);
	}
	return s->want;
}

static enum smtp_want drain_pending(struct smtp_session *s)
{
	if (s->want != SMTP_WANT_INPUT || s->pending.len == 0)
		return s->want;
	struct textbuf held = s->pending;
	s->pending = (struct textbuf)TEXTBUF_INIT;
	enum smtp_want w = run(s, held.data, held.len);
	textbuf_free(&held);
	return w;
}

enum smtp_want smtp_session_input(struct smtp_session *s, const void *data, size_t len)
{
	if (s->phase == SMTP_PHASE_CLOSED)
		return SMTP_WANT_CLOSE;
	if (s->want == SMTP_WANT_TLS)
		return s->want; /* discarded: sent after STARTTLS */
	if (s->want != SMTP_WANT_INPUT) {
		if (s->pending.len + len > SMTP_PENDING_MAX) {
			smtp_reply(s, 421, "4.7.0", "Too much pipelined input, closing connection");
			return smtp_close(s);
		}
		textbuf_append(&s->pending, data, len);
		return s->want;
	}
	return run(s, data, len);
}

enum smtp_want smtp_session_auth_result(struct smtp_session *s, enum smtp_auth_status status,
					const char *user, const char *challenge)
{
	if (s->want != SMTP_WANT_AUTH)
		return s->want;
	s->want = SMTP_WANT_INPUT;
	if (status == SMTP_AUTH_CONTINUE) {
		s->phase = SMTP_PHASE_SASL;
		smtp_replyf(s, 334, NULL, "%s", challenge ? challenge : "");
		return drain_pending(s);
	}
	bool cancelled = s->auth_abort;
	s->auth_abort = false;
	s->phase = SMTP_PHASE_COMMAND;
	if (cancelled && status != SMTP_AUTH_OK) {
		smtp_reply(s, 501, "5.0.0", "Authentication cancelled");
		return drain_pending(s);
	}
	switch (status) {
	case SMTP_AUTH_OK:
		s->authenticated = true;
		snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
		smtp_reply(s, 235, "2.7.0", "Authentication successful");
		break;
	case SMTP_AUTH_FAILED:
		s->want = smtp_bad_command(s, 535, "5.7.8", "Error: authentication failed");
		break;
	case SMTP_AUTH_UNSUPPORTED:
		s->want = smtp_bad_command(s, 504, "5.5.4", "Unrecognized authentication type");
		break;
	case SMTP_AUTH_MALFORMED:
		s->want = smtp_bad_command(s, 501, "5.5.2", "Error: malformed authentication response");
		break;
	case SMTP_AUTH_TOO_WEAK:
		s->want = smtp_bad_command(s, 538, "5.7.11",
					   "Encryption required for requested authentication mechanism");
		break;
	case SMTP_AUTH_TEMPFAIL:
	default:
		smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
		break;
	}
	return drain_pending(s);
}

enum smtp_want smtp_session_commit_result(struct smtp_session *s, const struct smtp_reply *reply,
					  const char *queue_id)
{
	if (s->want != SMTP_WANT_COMMIT)
		return s->want;
	s->want = SMTP_WANT_INPUT;
	if (reply == NULL || reply->code == 0)
		smtp_replyf(s, 250, "2.0.0", "Ok: queued as %s", queue_id ? queue_id : "?");
	else
		smtp_reply_backend(s, reply, 250, "2.0.0", "Ok");
	if (reply == NULL || reply->code == 0 || reply->code / 100 == 2)
		s->bad_commands = 0; /* errors count "without delivering mail" (Postfix) */
	smtp_transaction_reset(s);
	return drain_pending(s);
}

enum smtp_want smtp_session_tls_started(struct smtp_session *s, const struct smtp_settings *new_settings)
{
	if (s->want != SMTP_WANT_TLS)
		return s->want;
	if (new_settings != NULL)
		copy_settings(s, new_settings);
	s->set.tls_active = true;
	/* RFC 3207 §4.2: forget everything not learned over TLS. */
	smtp_transaction_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->authenticated = false;
	s->user[0] = '\0';
	linebuf_reset(&s->lines);
	textbuf_truncate(&s->pending, 0);
	s->phase = SMTP_PHASE_COMMAND;
	s->want = SMTP_WANT_INPUT;
	return s->want;
}

enum smtp_want smtp_session_shutdown(struct smtp_session *s)
{
	if (s->phase == SMTP_PHASE_CLOSED)
		return SMTP_WANT_CLOSE;
	if (s->data_started && s->want != SMTP_WANT_COMMIT)
		s->be->data_commit(s->ctx, false, NULL);
	smtp_reply(s, 421, "4.3.2", "Service shutting down, closing connection");
	return smtp_close(s);
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->helo;
}

bool smtp_session_in_data(const struct smtp_session *s)
{
	return s->data_started;
}

bool smtp_session_esmtp(const struct smtp_session *s)
{
	return s->esmtp;
}

const char *smtp_session_user(const struct smtp_session *s)
{
	return s->authenticated ? s->user : NULL;
}
