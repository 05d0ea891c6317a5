/*
 * POP3 command handlers for the AUTHORIZATION and TRANSACTION states and
 * the UPDATE step of QUIT (RFC 1939, RFC 2449, RFC 2595, RFC 5034). They
 * answer through pop3_out/pop3_outf and return what the session waits for.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/pop3/pop3_private.h"

/* Parses a message number argument: 1..count, not deleted. Returns the
 * 0-based index or -1 after answering the error. */
static long message_arg(struct pop3_session *s, const char *arg)
{
	unsigned long n = 0;

	if (arg == NULL || *arg == '\0') {
		pop3_bad_command(s, "Message number required");
		return -1;
	}
	for (const char *p = arg; *p; p++) {
		if (!isdigit((unsigned char)*p) || n > 100000000UL) {
			pop3_bad_command(s, "Invalid message number");
			return -1;
		}
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n == 0 || n > s->count) {
		pop3_out(s, "-ERR No such message\r\n");
		return -1;
	}
	if (s->deleted[n - 1]) {
		pop3_out(s, "-ERR Message is deleted\r\n");
		return -1;
	}
	return (long)(n - 1);
}

void pop3_write_capabilities(struct pop3_session *s)
{
	pop3_out(s, "+OK Capability list follows\r\n");
	pop3_out(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (s->state == STATE_AUTHORIZATION) {
		if (s->set.plaintext_auth_allowed || s->set.tls_active)
			pop3_out(s, "USER\r\n");
		if (s->set.sasl_mechanisms[0] != '\0')
			pop3_outf(s, "SASL %s\r\n", s->set.sasl_mechanisms);
		if (s->set.stls_available && !s->set.tls_active)
			pop3_out(s, "STLS\r\n");
	}
	if (s->set.login_delay > 0)
		pop3_outf(s, "LOGIN-DELAY %u\r\n", s->set.login_delay);
	if (s->set.implementation != NULL)
		pop3_outf(s, "IMPLEMENTATION %s\r\n", s->set.implementation);
	pop3_out(s, ".\r\n");
}

static bool plaintext_ok(const struct pop3_session *s)
{
	return s->set.tls_active || s->set.plaintext_auth_allowed;
}

/* Only what CAPA advertised for this connection may be used. */
static bool mechanism_offered(const struct pop3_session *s, const char *mech)
{
	size_t n = strlen(mech);
	if (n == 0)
		return false;
	for (const char *p = s->set.sasl_mechanisms; (p = strstr(p, mech)) != NULL; p += n)
		if ((p == s->set.sasl_mechanisms || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* AUTHORIZATION state commands. */
enum pop3_want pop3_cmd_authorization(struct pop3_session *s, const char *cmd, char *arg)
{
	if (strcasecmp(cmd, "USER") == 0) {
		if (!plaintext_ok(s))
			return pop3_bad_command(s, "[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS");
		if (arg == NULL || *arg == '\0' || strlen(arg) > POP3_USER_MAX || strchr(arg, ' '))
			return pop3_bad_command(s, "USER needs one argument");
		snprintf(s->user, sizeof(s->user), "%s", arg);
		s->user_given = true;
		pop3_out(s, "+OK\r\n");
		return POP3_WANT_INPUT;
	}
	if (strcasecmp(cmd, "PASS") == 0) {
		if (!s->user_given)
			return pop3_bad_command(s, "USER first");
		if (arg == NULL)
			return pop3_bad_command(s, "PASS needs an argument");
		struct pop3_auth_request req = { .kind = POP3_AUTH_PASS, .user = s->user, .secret = arg };
		s->user_given = false;
		return pop3_begin_auth(s, &req);
	}
	if (strcasecmp(cmd, "APOP") == 0) {
		char *digest = arg ? strchr(arg, ' ') : NULL;
		if (s->set.apop_timestamp == NULL)
			return pop3_bad_command(s, "APOP not available");
		if (digest == NULL)
			return pop3_bad_command(s, "APOP needs a name and a digest");
		*digest++ = '\0';
		if (strlen(digest) != 32 || strspn(digest, "0123456789abcdefABCDEF") != 32 ||
		    strlen(arg) > POP3_USER_MAX)
			return pop3_bad_command(s, "APOP digest must be 32 hex digits");
		snprintf(s->user, sizeof(s->user), "%s", arg);
		s->user_given = false; /* a PASS pairs with the USER right before it only */
		struct pop3_auth_request req = { .kind = POP3_AUTH_APOP, .user = s->user, .secret = digest,
						 .timestamp = s->set.apop_timestamp };
		return pop3_begin_auth(s, &req);
	}
	if (strcasecmp(cmd, "AUTH") == 0) {
		if (arg == NULL || *arg == '\0') {
			/* RFC 1734-era clients list mechanisms with a bare AUTH */
			pop3_out(s, "+OK\r\n");
			char *list = strdup(s->set.sasl_mechanisms);
			for (char *tok = list ? strtok(list, " ") : NULL; tok; tok = strtok(NULL, " "))
				pop3_outf(s, "%s\r\n", tok);
			free(list);
			pop3_out(s, ".\r\n");
			return POP3_WANT_INPUT;
		}
		char *ir = strchr(arg, ' ');
		if (ir != NULL)
			*ir++ = '\0';
		for (char *p = arg; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (!mechanism_offered(s, arg))
			return pop3_bad_command(s, "Unsupported authentication mechanism");
		struct pop3_auth_request req = { .kind = POP3_AUTH_SASL_START, .mechanism = arg,
						 .response = ir == NULL ? NULL : strcmp(ir, "=") == 0 ? "" : ir };
		s->in_sasl = true;
		s->user_given = false;
		return pop3_begin_auth(s, &req);
	}
	if (strcasecmp(cmd, "STLS") == 0) {
		if (s->set.tls_active || !s->set.stls_available)
			return pop3_bad_command(s, "STLS not available");
		pop3_out(s, "+OK Begin TLS negotiation\r\n");
		s->want = POP3_WANT_TLS;
		return s->want;
	}
	return pop3_bad_command(s, "Unknown command in AUTHORIZATION state");
}

static enum pop3_want start_stream(struct pop3_session *s, size_t index, bool top, unsigned long lines)
{
	char probe;
	/* Find out before the +OK whether the message can be read at all
	 * (another session may have removed it since our snapshot). */
	ssize_t r = s->msgs[index].size > 0 ? s->be->message_read(s->ctx, index, 0, &probe, 1) : 0;
	if (r == POP3_READ_GONE) {
		pop3_out(s, "-ERR Message was removed by another session\r\n");
		return POP3_WANT_INPUT;
	}
	if (r < 0) {
		pop3_out(s, "-ERR [SYS/TEMP] Message cannot be read now\r\n");
		return POP3_WANT_INPUT;
	}
	if (top)
		s->stats.top++;
	else
		s->stats.retr++;
	s->streaming = true;
	s->stream_index = index;
	s->stream_offset = 0;
	pop3_stream_init(&s->stream, top, lines);
	if (top)
		pop3_out(s, "+OK\r\n");
	else
		pop3_outf(s, "+OK %llu octets\r\n", (unsigned long long)s->msgs[index].size);
	s->want = POP3_WANT_OUTPUT;
	return pop3_session_resume(s);
}

static enum pop3_want cmd_list_or_uidl(struct pop3_session *s, char *arg, bool uidl)
{
	if (arg != NULL && *arg != '\0') {
		long i = message_arg(s, arg);
		if (i < 0)
			return s->want;
		if (uidl)
			pop3_outf(s, "+OK %ld %s\r\n", i + 1, s->msgs[i].uid);
		else
			pop3_outf(s, "+OK %ld %llu\r\n", i + 1, (unsigned long long)s->msgs[i].size);
		return POP3_WANT_INPUT;
	}
	struct textbuf tb = TEXTBUF_INIT;
	textbuf_puts(&tb, "+OK\r\n");
	for (size_t i = 0; i < s->count; i++) {
		if (s->deleted[i])
			continue;
		if (uidl)
			textbuf_printf(&tb, "%zu %s\r\n", i + 1, s->msgs[i].uid);
		else
			textbuf_printf(&tb, "%zu %llu\r\n", i + 1, (unsigned long long)s->msgs[i].size);
	}
	textbuf_puts(&tb, ".\r\n");
	s->be->write(s->ctx, tb.data, tb.len);
	textbuf_free(&tb);
	return POP3_WANT_INPUT;
}

enum pop3_want pop3_cmd_transaction(struct pop3_session *s, const char *cmd, char *arg)
{
	if (strcasecmp(cmd, "STAT") == 0) {
		uint64_t octets = 0;
		for (size_t i = 0; i < s->count; i++)
			octets += s->msgs[i].size;
		pop3_outf(s, "+OK %zu %llu\r\n", s->count - s->deleted_count,
		     (unsigned long long)(octets - s->deleted_octets));
		return POP3_WANT_INPUT;
	}
	if (strcasecmp(cmd, "LIST") == 0)
		return cmd_list_or_uidl(s, arg, false);
	if (strcasecmp(cmd, "UIDL") == 0)
		return cmd_list_or_uidl(s, arg, true);
	if (strcasecmp(cmd, "RETR") == 0) {
		long i = message_arg(s, arg);
		return i < 0 ? s->want : start_stream(s, (size_t)i, false, 0);
	}
	if (strcasecmp(cmd, "TOP") == 0) {
		char *lines = arg ? strchr(arg, ' ') : NULL;
		unsigned long n = 0;
		if (lines == NULL)
			return pop3_bad_command(s, "TOP needs a message number and a line count");
		*lines++ = '\0';
		if (*lines == '\0' || strspn(lines, "0123456789") != strlen(lines) || strlen(lines) > 9)
			return pop3_bad_command(s, "Invalid line count");
		n = strtoul(lines, NULL, 10);
		long i = message_arg(s, arg);
		return i < 0 ? s->want : start_stream(s, (size_t)i, true, n);
	}
	if (strcasecmp(cmd, "DELE") == 0) {
		long i = message_arg(s, arg);
		if (i < 0)
			return s->want;
		s->deleted[i] = true;
		s->deleted_count++;
		s->deleted_octets += s->msgs[i].size;
		pop3_outf(s, "+OK Message %ld deleted\r\n", i + 1);
		return POP3_WANT_INPUT;
	}
	if (strcasecmp(cmd, "RSET") == 0) {
		memset(s->deleted, 0, s->count * sizeof(*s->deleted));
		s->deleted_count = 0;
		s->deleted_octets = 0;
		pop3_outf(s, "+OK %zu messages\r\n", s->count);
		return POP3_WANT_INPUT;
	}
	return pop3_bad_command(s, "Unknown command in TRANSACTION state");
}

enum pop3_want pop3_cmd_quit(struct pop3_session *s)
{
	s->stats.quit = true;
	if (s->state != STATE_TRANSACTION || s->deleted_count == 0) {
		if (s->state == STATE_TRANSACTION)
			pop3_outf(s, "+OK %s POP3 server signing off (0 messages deleted)\r\n", s->set.hostname);
		else
			pop3_outf(s, "+OK %s POP3 server signing off\r\n", s->set.hostname);
		return pop3_close_session(s);
	}
	/* UPDATE state: only now is anything removed */
	s->commit_indexes = malloc(s->deleted_count * sizeof(*s->commit_indexes));
	if (s->commit_indexes == NULL) {
		pop3_out(s, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
		return pop3_close_session(s);
	}
	size_t n = 0;
	for (size_t i = 0; i < s->count; i++)
		if (s->deleted[i])
			s->commit_indexes[n++] = i;
	s->want = POP3_WANT_STORE;
	s->be->maildrop_commit(s->ctx, s->commit_indexes, n);
	return s->want;
}

