/*
 * SMTP commands (RFC 5321 §4.1 and the extensions in smtp.h). Each answers
 * with the reply codes RFC 5321 §4.3.2 lists for it, with enhanced status
 * codes (RFC 3463), and returns what the session waits for next.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/hex.h"
#include "proto/smtp/smtp_path.h"
#include "proto/smtp/smtp_private.h"

static bool in_list(const char *list, const char *mech)
{
	size_t n = strlen(mech);
	if (n == 0 || list == NULL)
		return false;
	for (const char *p = list; (p = strstr(p, mech)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static bool offered(const struct smtp_session *s, const char *mech)
{
	return in_list(s->set.sasl_mechanisms, mech);
}

static enum smtp_want cmd_helo(struct smtp_session *s, char *arg, bool ehlo)
{
	if (arg == NULL || *arg == '\0' || strlen(arg) >= sizeof(s->helo) || strchr(arg, ' ') != NULL)
		return smtp_bad_command(s, 501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
	for (const char *p = arg; *p; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126)
			return smtp_bad_command(s, 501, "5.5.4", "Invalid characters in the host name");
	smtp_transaction_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->esmtp = ehlo;
	if (!ehlo) {
		smtp_replyf(s, 250, NULL, "%s", s->set.hostname);
		return SMTP_WANT_INPUT;
	}
	struct textbuf tb = TEXTBUF_INIT;
	textbuf_printf(&tb, "250-%s\r\n250-PIPELINING\r\n", s->set.hostname);
	if (s->set.max_message_size > 0)
		textbuf_printf(&tb, "250-SIZE %llu\r\n", (unsigned long long)s->set.max_message_size);
	textbuf_puts(&tb, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n");
	if (s->set.starttls_available && !s->set.tls_active)
		textbuf_puts(&tb, "250-STARTTLS\r\n");
	if (!s->authenticated && s->set.sasl_mechanisms[0] != '\0')
		textbuf_printf(&tb, "250-AUTH %s\r\n", s->set.sasl_mechanisms);
	if (s->set.dsn)
		textbuf_puts(&tb, "250-DSN\r\n");
	if (s->set.chunking)
		textbuf_puts(&tb, "250-CHUNKING\r\n");
	/* the last line has a space after the code */
	textbuf_truncate(&tb, tb.len - 2);
	char *last = strrchr(tb.data, '\n');
	last = last ? last + 1 : tb.data;
	last[3] = ' ';
	textbuf_puts(&tb, "\r\n");
	s->be->write(s->ctx, tb.data, tb.len);
	textbuf_free(&tb);
	return SMTP_WANT_INPUT;
}

/* RFC 3461 §4: xtext is printable ASCII with "+XX" escapes, no '=' or '+' otherwise. */
static bool valid_xtext(const char *p, size_t max)
{
	return *p != '\0' && strlen(p) <= max && hex_xtext_valid(p, true);
}

/* Splits "KEY=VALUE KEY2" parameters; returns -1 after replying on error. */
static int next_param(char **cursor, char **key_r, char **value_r)
{
	char *p = *cursor;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	char *end = strchr(p, ' ');
	if (end != NULL)
		*end++ = '\0';
	*cursor = end ? end : p + strlen(p);
	char *eq = strchr(p, '=');
	if (eq != NULL)
		*eq++ = '\0';
	*key_r = p;
	*value_r = eq;
	return 1;
}

/* RFC 1869 / 3461: a parameter given twice is an error (which one would
 * count?). Returns true when key was seen before in this command. */
static bool repeated(unsigned *seen, const char *key, const char *const *keys)
{
	for (unsigned i = 0; keys[i] != NULL; i++)
		if (strcasecmp(key, keys[i]) == 0) {
			bool again = *seen & (1u << i);
			*seen |= 1u << i;
			return again;
		}
	return false;
}

static enum smtp_want cmd_mail(struct smtp_session *s, char *arg)
{
	static const char *const keys[] = { "SIZE", "BODY", "RET", "ENVID", "AUTH", NULL };
	unsigned seen = 0;
	struct smtp_mail_params params = { 0 };
	char path[SMTP_PATH_MAX + 1], *key, *value, *rest;
	const char *error;
	unsigned flags;

	if (s->helo[0] == '\0')
		return smtp_bad_command(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	if (s->set.auth_required && !s->authenticated)
		return smtp_bad_command(s, 530, "5.7.0", "Authentication required");
	if (s->have_mail)
		return smtp_bad_command(s, 503, "5.5.1", "Error: nested MAIL command");
	if (arg == NULL || strncasecmp(arg, "FROM:", 5) != 0)
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if (smtp_path_parse(arg + 5, true, false, path, sizeof(path), &flags, (const char **)&rest, &error) < 0)
		return smtp_bad_command(s, 501, "5.1.7", error);
	if (*rest != '\0' && *rest != ' ')
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
	for (int r; (r = next_param(&rest, &key, &value)) > 0;) {
		if (!s->esmtp)
			return smtp_bad_command(s, 555, "5.5.4", "Parameters need EHLO");
		if (repeated(&seen, key, keys))
			return smtp_bad_command(s, 501, "5.5.4", "Duplicate parameter");
		if (strcasecmp(key, "SIZE") == 0 && value && strspn(value, "0123456789") == strlen(value) &&
		    strlen(value) > 0 && strlen(value) <= 19) {
			params.size = strtoull(value, NULL, 10);
		} else if (strcasecmp(key, "BODY") == 0 && value &&
			   (strcasecmp(value, "8BITMIME") == 0 || strcasecmp(value, "7BIT") == 0)) {
			params.body_8bit = strcasecmp(value, "8BITMIME") == 0;
		} else if (s->set.dsn && strcasecmp(key, "RET") == 0 && value &&
			   (strcasecmp(value, "FULL") == 0 || strcasecmp(value, "HDRS") == 0)) {
			params.ret_full = strcasecmp(value, "FULL") == 0;
			params.ret_hdrs = !params.ret_full;
		} else if (s->set.dsn && strcasecmp(key, "ENVID") == 0 && value && valid_xtext(value, 100)) {
			params.envid = value;
		} else if (strcasecmp(key, "AUTH") == 0 && value && (strcmp(value, "<>") == 0 || valid_xtext(value, SMTP_PATH_MAX * 3))) {
			params.auth = value;
		} else {
			return smtp_bad_command(s, 555, "5.5.4", "Unsupported option or malformed parameter");
		}
	}
	if (s->set.max_message_size > 0 && params.size > s->set.max_message_size)
		return smtp_bad_command(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");

	struct smtp_reply reply = { 0 };
	s->be->mail_from(s->ctx, path, &params, &reply);
	if (reply.code != 0 && reply.code / 100 != 2) {
		smtp_reply_backend(s, &reply, 0, NULL, NULL);
		s->be->reset(s->ctx);
		return SMTP_WANT_INPUT;
	}
	s->have_mail = true;
	smtp_reply_backend(s, &reply, 250, "2.1.0", "Ok");
	return SMTP_WANT_INPUT;
}

static int parse_notify(const char *value, unsigned *notify_r)
{
	char buf[64];
	unsigned bits = 0;
	size_t len = strlen(value);
	if (len == 0 || len >= sizeof(buf) || value[0] == ',' || value[len - 1] == ',' ||
	    strstr(value, ",,") != NULL)
		return -1; /* an empty item */
	snprintf(buf, sizeof(buf), "%s", value);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "NEVER") == 0)
			bits |= SMTP_NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			bits |= SMTP_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			bits |= SMTP_NOTIFY_DELAY;
		else
			return -1;
	}
	/* NEVER excludes the others (RFC 3461 §4.1) */
	if (bits == 0 || ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER))
		return -1;
	*notify_r = bits;
	return 0;
}

unsigned smtp_notify_merge(unsigned a, unsigned b)
{
	const unsigned absent = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	if (a == b)
		return a;
	unsigned u = (a == 0 ? absent : a & ~(unsigned)SMTP_NOTIFY_NEVER) |
		     (b == 0 ? absent : b & ~(unsigned)SMTP_NOTIFY_NEVER);
	return (a == 0 || b == 0) && u == absent ? 0 : u;
}

/* ORCPT=addr-type;xtext, addr-type an atom (RFC 3461 4.2). */
static bool valid_orcpt(const char *value)
{
	const char *semi = strchr(value, ';');
	size_t type_len = semi != NULL ? (size_t)(semi - value) : 0;
	if (type_len == 0 || strlen(value) > SMTP_ORCPT_VALUE_MAX)
		return false;
	for (size_t i = 0; i < type_len; i++)
		if (!isalnum((unsigned char)value[i]) && value[i] != '-')
			return false;
	return valid_xtext(semi + 1, SMTP_ORCPT_VALUE_MAX);
}

static enum smtp_want cmd_rcpt(struct smtp_session *s, char *arg)
{
	static const char *const keys[] = { "NOTIFY", "ORCPT", NULL };
	unsigned seen = 0;
	struct smtp_rcpt_params params = { 0 };
	char path[SMTP_PATH_MAX + 1], *key, *value, *rest;
	const char *error;
	unsigned flags;

	if (!s->have_mail)
		return smtp_bad_command(s, 503, "5.5.1", "Error: need MAIL command");
	/* the message and its trace fields have begun for the recipients so far */
	if (s->data_started || s->bdat_failed)
		return smtp_bad_command(s, 503, "5.5.1", "Error: BDAT transfer in progress");
	if (arg == NULL || strncasecmp(arg, "TO:", 3) != 0)
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (smtp_path_parse(arg + 3, false, true, path, sizeof(path), &flags, (const char **)&rest, &error) < 0)
		return smtp_bad_command(s, 501, "5.1.3", error);
	if (*rest != '\0' && *rest != ' ')
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
	for (int r; (r = next_param(&rest, &key, &value)) > 0;) {
		if (repeated(&seen, key, keys))
			return smtp_bad_command(s, 501, "5.5.4", "Duplicate parameter");
		if (s->esmtp && s->set.dsn && strcasecmp(key, "NOTIFY") == 0 && value &&
		    parse_notify(value, &params.notify) == 0)
			continue;
		if (s->esmtp && s->set.dsn && strcasecmp(key, "ORCPT") == 0 && value && valid_orcpt(value)) {
			params.orcpt = value;
			continue;
		}
		return smtp_bad_command(s, 555, "5.5.4", "Unsupported option or malformed parameter");
	}
	if (s->set.max_recipients > 0 && s->rcpt_count >= s->set.max_recipients) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return SMTP_WANT_INPUT;
	}
	struct smtp_reply reply = { 0 };
	s->be->rcpt_to(s->ctx, path, &params, &reply);
	if (reply.code == 0 || reply.code / 100 == 2) {
		s->rcpt_count++;
		smtp_reply_backend(s, &reply, 250, "2.1.5", "Ok");
		return SMTP_WANT_INPUT;
	}
	/* A refused recipient is an error too (Postfix's hard error limit):
	 * relay probing and address harvesting end after a few. */
	smtp_reply_backend(s, &reply, 250, "2.1.5", "Ok");
	return smtp_count_error(s);
}

void smtp_refuse(struct smtp_session *s, int code, const char *enhanced, const char *text)
{
	s->refusal.code = code;
	snprintf(s->refusal.enhanced, sizeof(s->refusal.enhanced), "%s", enhanced);
	snprintf(s->refusal.text, sizeof(s->refusal.text), "%s", text);
}

/* Common checks for DATA and the first BDAT. Returns true when the
 * transaction may carry a message (data_started is then set); otherwise
 * s->refusal says why, for the caller to answer when it should. */
static bool start_message(struct smtp_session *s)
{
	if (!s->have_mail) {
		smtp_refuse(s, 503, "5.5.1", "Error: need MAIL command");
		return false;
	}
	if (s->rcpt_count == 0) {
		smtp_refuse(s, 554, "5.5.1", "Error: no valid recipients");
		return false;
	}
	struct smtp_reply reply = { 0 };
	s->be->data_begin(s->ctx, &reply);
	if (reply.code != 0 && reply.code / 100 != 3 && reply.code / 100 != 2) {
		smtp_refuse(s, reply.code, reply.enhanced ? reply.enhanced : reply.code / 100 == 4 ? "4.0.0" : "5.0.0",
		       reply.text ? reply.text : "Error");
		return false;
	}
	s->data_started = true;
	s->data_size = 0;
	return true;
}

static enum smtp_want cmd_data(struct smtp_session *s, const char *arg)
{
	if (arg != NULL)
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: DATA");
	if (s->data_started || s->bdat_failed)
		return smtp_bad_command(s, 503, "5.5.1", "Error: BDAT transfer in progress");
	if (!start_message(s))
		return smtp_bad_command(s, s->refusal.code, s->refusal.enhanced, s->refusal.text);
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtp_data_init(&s->decoder);
	s->phase = SMTP_PHASE_DATA;
	return SMTP_WANT_INPUT;
}

static enum smtp_want cmd_bdat(struct smtp_session *s, char *arg)
{
	char *last = arg ? strchr(arg, ' ') : NULL;

	if (last != NULL)
		*last++ = '\0';
	if (arg == NULL || *arg == '\0' || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 18 ||
	    (last != NULL && strcasecmp(last, "LAST") != 0)) {
		/* the chunk's length is unknown: the stream cannot be followed */
		smtp_reply(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]; closing connection");
		return smtp_close(s);
	}
	s->bdat_left = strtoull(arg, NULL, 10);
	s->bdat_last = last != NULL;
	s->phase = SMTP_PHASE_BDAT;
	/* Refused: its octets, and those of every later chunk of this
	 * transaction, are read and dropped, each chunk answered with the
	 * refusal (RFC 3030 §3: a pipelining client has sent them already;
	 * taking a later chunk as a new message would store a truncated one). */
	if (!s->data_started && !s->bdat_failed && !start_message(s))
		s->bdat_failed = s->have_mail; /* without MAIL there is no stream to fail */
	return SMTP_WANT_INPUT;
}

static enum smtp_want cmd_auth(struct smtp_session *s, char *arg)
{
	if (!s->esmtp)
		return smtp_bad_command(s, 503, "5.5.1", "Error: send EHLO first");
	if (s->authenticated)
		return smtp_bad_command(s, 503, "5.5.1", "Error: already authenticated");
	if (s->have_mail)
		return smtp_bad_command(s, 503, "5.5.1", "Error: MAIL transaction in progress");
	if (arg == NULL || *arg == '\0')
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	char *ir = strchr(arg, ' ');
	if (ir != NULL)
		*ir++ = '\0';
	for (char *p = arg; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	if (!offered(s, arg)) {
		if (!s->set.tls_active && in_list(s->set.sasl_mechanisms_tls, arg))
			return smtp_bad_command(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
		return smtp_bad_command(s, 504, "5.5.4", "Unrecognized authentication type");
	}
	struct smtp_auth_request req = { .kind = SMTP_AUTH_START, .mechanism = arg,
					 .response = ir == NULL ? NULL : strcmp(ir, "=") == 0 ? "" : ir };
	return smtp_begin_auth(s, &req);
}

static enum smtp_want cmd_starttls(struct smtp_session *s, const char *arg)
{
	if (arg != NULL)
		return smtp_bad_command(s, 501, "5.5.4", "Syntax: STARTTLS");
	if (s->set.tls_active)
		return smtp_bad_command(s, 554, "5.5.1", "Error: TLS already active");
	if (!s->set.starttls_available)
		return smtp_bad_command(s, 502, "5.5.1", "Error: STARTTLS not available");
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	s->want = SMTP_WANT_TLS;
	return s->want;
}

enum smtp_want smtp_command(struct smtp_session *s, char *line)
{
	char *arg = strchr(line, ' ');
	if (arg != NULL) {
		*arg++ = '\0';
		while (*arg == ' ')
			arg++;
		size_t n = strlen(arg);
		while (n > 0 && arg[n - 1] == ' ')
			arg[--n] = '\0';
		if (*arg == '\0')
			arg = NULL;
	}
	if (strcasecmp(line, "EHLO") == 0)
		return cmd_helo(s, arg, true);
	if (strcasecmp(line, "HELO") == 0)
		return cmd_helo(s, arg, false);
	if (strcasecmp(line, "MAIL") == 0)
		return cmd_mail(s, arg);
	if (strcasecmp(line, "RCPT") == 0)
		return cmd_rcpt(s, arg);
	if (strcasecmp(line, "DATA") == 0)
		return cmd_data(s, arg);
	if (strcasecmp(line, "BDAT") == 0 && s->set.chunking)
		return cmd_bdat(s, arg);
	if (strcasecmp(line, "RSET") == 0) {
		if (arg != NULL)
			return smtp_bad_command(s, 501, "5.5.4", "Syntax: RSET");
		smtp_transaction_reset(s);
		smtp_reply(s, 250, "2.0.0", "Ok");
		return SMTP_WANT_INPUT;
	}
	if (strcasecmp(line, "NOOP") == 0) {
		smtp_reply(s, 250, "2.0.0", "Ok");
		return SMTP_WANT_INPUT;
	}
	if (strcasecmp(line, "QUIT") == 0) {
		smtp_reply(s, 221, "2.0.0", "Bye");
		if (s->data_started)
			s->be->data_commit(s->ctx, false, NULL);
		smtp_transaction_reset(s);
		return smtp_close(s);
	}
	if (strcasecmp(line, "AUTH") == 0)
		return cmd_auth(s, arg);
	if (strcasecmp(line, "STARTTLS") == 0)
		return cmd_starttls(s, arg);
	if (strcasecmp(line, "VRFY") == 0) {
		smtp_reply(s, 502, "5.5.1", "VRFY command is disabled");
		return SMTP_WANT_INPUT;
	}
	if (strcasecmp(line, "EXPN") == 0) {
		smtp_reply(s, 502, "5.5.1", "EXPN command is disabled");
		return SMTP_WANT_INPUT;
	}
	if (strcasecmp(line, "HELP") == 0) {
		smtp_reply(s, 214, "2.0.0", "See RFC 5321");
		return SMTP_WANT_INPUT;
	}
	return smtp_bad_command(s, 500, "5.5.2", "Error: command not recognized");
}
