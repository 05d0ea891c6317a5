/*
 * A sendmail message into the maildrop (<store>/spool/maildrop/,
 * storage/queue.h), where maild picks it up. The envelope: the sender
 * (-f, or the submitter's login @ the configured hostname), the
 * recipients (arguments and/or -t), client "" (local), arrival now. The
 * message goes through the filter of sendmail_message.c into a
 * queue_writer; queue_writer_commit makes both durable before sendmail
 * exits 0, as an SMTP 250 would.
 *
 * Queue ids have the form of maild's (node/smtp_queue_id.c) with this
 * node's id, so a message keeps one id from sendmail to delivery. Two
 * processes of one node could draw the same id only within the same
 * microsecond; an id already in the maildrop is drawn again, and
 * queue_writer_commit refuses to replace a message (EX_TEMPFAIL then).
 */
#include "node/sendmail.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/address.h"
#include "lib/message_address.h"
#include "node/node_config.h"
#include "node/queue_id.h"

/* 0, or -1 when text does not fit an envelope address. */
static int copy_address(char out[QUEUE_ADDRESS_MAX], const char *text)
{
	size_t n = strlen(text);
	if (n >= QUEUE_ADDRESS_MAX)
		return -1;
	memcpy(out, text, n + 1);
	return 0;
}

int sendmail_sender(const struct node_config *cfg, const struct sendmail_submitter *who,
		    char out[QUEUE_ADDRESS_MAX], struct textbuf *err)
{
	struct address a;
	const char *error = NULL;
	char text[QUEUE_ADDRESS_MAX + 8];

	if (who->sender == NULL) {
		if ((size_t)snprintf(text, sizeof(text), "%s@%s", who->login, cfg->hostname) >= sizeof(text) ||
		    address_parse(text, false, &a, &error) < 0 || copy_address(out, text) < 0) {
			textbuf_printf(err, "sendmail: cannot make a sender address of your login name %s "
				       "and the hostname %s; use -f ADDRESS\n", who->login, cfg->hostname);
			return SENDMAIL_EX_NOUSER;
		}
		return SENDMAIL_EX_OK;
	}
	const char *s = who->sender;
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n == 0) {
		out[0] = '\0'; /* the null sender */
		return SENDMAIL_EX_OK;
	}
	if (n >= QUEUE_ADDRESS_MAX) {
		textbuf_puts(err, "sendmail: -f: address too long\n");
		return SENDMAIL_EX_NOUSER;
	}
	if (memchr(s, '@', n) == NULL)
		snprintf(text, sizeof(text), "%.*s@%s", (int)n, s, cfg->hostname);
	else
		snprintf(text, sizeof(text), "%.*s", (int)n, s);
	if (address_parse(text, false, &a, &error) < 0 || copy_address(out, text) < 0) {
		textbuf_printf(err, "sendmail: -f %s: %s\n", who->sender, error ? error : "too long");
		return SENDMAIL_EX_NOUSER;
	}
	return SENDMAIL_EX_OK;
}

int sendmail_add_rcpt(struct sendmail_submit *s, const char *mailbox, const char *host,
		      struct textbuf *err)
{
	char text[QUEUE_ADDRESS_MAX + 8];
	struct address a;
	const char *error = NULL;

	if ((size_t)snprintf(text, sizeof(text), "%s@%s", mailbox,
			     host[0] != '\0' ? host : s->cfg->hostname) >= QUEUE_ADDRESS_MAX) {
		textbuf_printf(err, "sendmail: recipient %.64s...: address too long\n", mailbox);
		return SENDMAIL_EX_NOUSER;
	}
	if (address_parse(text, false, &a, &error) < 0) {
		textbuf_printf(err, "sendmail: recipient %s: %s\n", text, error);
		return SENDMAIL_EX_NOUSER;
	}
	for (size_t i = 0; i < s->env.nrcpt; i++)
		if (strcasecmp(s->env.rcpts[i].address, text) == 0)
			return SENDMAIL_EX_OK;
	int rc = queue_envelope_add_rcpt(&s->env, text, "", 0);
	if (rc == STORE_E_LIMIT) {
		textbuf_printf(err, "sendmail: more than %d recipients\n", QUEUE_RCPT_MAX);
		return SENDMAIL_EX_DATAERR;
	}
	if (rc < 0) {
		textbuf_printf(err, "sendmail: recipient %s: %s\n", text, store_strerror(rc));
		return SENDMAIL_EX_NOUSER;
	}
	return SENDMAIL_EX_OK;
}

/* "a@b, c": plain addresses split at commas, each checked strictly. */
static int add_plain_rcpts(struct sendmail_submit *s, const char *list, struct textbuf *err)
{
	int rc = SENDMAIL_EX_OK, n = 0;
	for (const char *p = list; *p != '\0' && rc == SENDMAIL_EX_OK;) {
		size_t len = strcspn(p, ",");
		char one[QUEUE_ADDRESS_MAX + 1];
		const char *b = p, *e = p + len;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		p += len + (p[len] == ',' ? 1 : 0);
		if (b == e)
			continue;
		if ((size_t)(e - b) >= sizeof(one)) {
			textbuf_printf(err, "sendmail: recipient %.64s...: address too long\n", b);
			return SENDMAIL_EX_NOUSER;
		}
		snprintf(one, sizeof(one), "%.*s", (int)(e - b), b);
		char *at = strrchr(one, '@');
		if (at != NULL)
			*at = '\0';
		rc = sendmail_add_rcpt(s, one, at != NULL ? at + 1 : "", err);
		if (rc == SENDMAIL_EX_OK && at != NULL && at[1] == '\0') {
			textbuf_printf(err, "sendmail: recipient %s@: no domain\n", one);
			rc = SENDMAIL_EX_NOUSER;
		}
		n++;
	}
	if (rc == SENDMAIL_EX_OK && n == 0) {
		textbuf_printf(err, "sendmail: no address in \"%s\"\n", list);
		rc = SENDMAIL_EX_NOUSER;
	}
	return rc;
}

int sendmail_add_rcpts(struct sendmail_submit *s, const char *list, struct textbuf *err)
{
	if (strpbrk(list, "<\"(") == NULL)
		return add_plain_rcpts(s, list, err);
	struct message_arena *arena = message_arena_create();
	struct message_address_list l;
	int rc = SENDMAIL_EX_OK;

	message_address_list_parse(arena, list, strlen(list), &l);
	for (uint32_t i = 0; i < l.count && rc == SENDMAIL_EX_OK; i++)
		if (l.addrs[i].mailbox != NULL && l.addrs[i].host != NULL)
			rc = sendmail_add_rcpt(s, l.addrs[i].mailbox, l.addrs[i].host, err);
	if (rc == SENDMAIL_EX_OK && l.count == 0) {
		textbuf_printf(err, "sendmail: no address in \"%s\"\n", list);
		rc = SENDMAIL_EX_NOUSER;
	}
	message_arena_destroy(&arena);
	return rc;
}

static int submit_write(void *ctx, const void *data, size_t len)
{
	struct sendmail_submit *s = ctx;
	return queue_writer_write(s->writer, data, len, NULL) < 0 ? -1 : 0;
}

/* -t recipients come during the header; their errors wait in s. */
static int submit_rcpt(void *ctx, const char *mailbox, const char *host)
{
	struct sendmail_submit *s = ctx;
	return sendmail_add_rcpt(s, mailbox, host, &s->rcpt_errors) == SENDMAIL_EX_OK ? 0 : -1;
}

/* The From: field to add: "Full Name <sender>", the name quoted when it
 * needs to be. */
static void from_header(const struct sendmail_submitter *who, const char *sender,
			const char *hostname, char *out, size_t size)
{
	const char *name = who->full_name != NULL ? who->full_name
			 : who->sender == NULL	  ? who->gecos
						  : "";
	struct textbuf t = TEXTBUF_INIT;
	if (sender[0] == '\0')
		textbuf_printf(&t, "MAILER-DAEMON@%s", hostname);
	else if (name[0] == '\0')
		textbuf_puts(&t, sender);
	else {
		textbuf_putc(&t, '"');
		for (const char *p = name; *p != '\0'; p++) {
			if (*p == '\r' || *p == '\n')
				continue;
			if (*p == '"' || *p == '\\')
				textbuf_putc(&t, '\\');
			textbuf_putc(&t, *p);
		}
		textbuf_printf(&t, "\" <%s>", sender);
	}
	snprintf(out, size, "%s", textbuf_str(&t));
	textbuf_free(&t);
}

int sendmail_submit_begin(struct sendmail_submit *s, const struct node_config *cfg,
			  struct queue *maildrop, const struct sendmail_submitter *who,
			  const char *sender, bool from_stdin, struct textbuf *err)
{
	const char *error = NULL;
	char id[SMTP_QUEUE_ID_SIZE];

	s->cfg = cfg;
	s->maildrop = maildrop;
	for (int tries = 0;; tries++) {
		struct queue_envelope probe = { 0 };
		smtp_queue_id_new(cfg->node_id, id);
		int rc = queue_envelope_read(maildrop, id, &probe, NULL);
		queue_envelope_clear(&probe);
		if (rc == STORE_E_NOTFOUND)
			break;
		if (tries == 100) {
			textbuf_puts(err, "sendmail: cannot find a free queue id\n");
			return SENDMAIL_EX_TEMPFAIL;
		}
	}
	snprintf(s->env.id, sizeof(s->env.id), "%s", id);
	snprintf(s->env.sender, sizeof(s->env.sender), "%s", sender);
	s->env.arrival = time(NULL);
	s->env.client[0] = '\0';
	int rc = queue_writer_create(maildrop, &s->writer, &error);
	if (rc < 0) {
		textbuf_printf(err, "sendmail: cannot write into the maildrop %s: %s\n", queue_path(maildrop),
			       error ? error : store_strerror(rc));
		return SENDMAIL_EX_TEMPFAIL;
	}
	from_header(who, sender, cfg->hostname, s->from_header, sizeof(s->from_header));
	struct sendmail_message_settings set = {
		.hostname = cfg->hostname,
		.queue_id = s->env.id,
		.now = (time_t)s->env.arrival,
		.uid = who->uid,
		.from_header = s->from_header,
		.dot_ends = from_stdin && who->dot_ends,
		.skip_from_line = from_stdin,
		.extract = from_stdin && who->extract,
		.max_size = cfg->smtp.max_message_size,
		.write = submit_write,
		.rcpt = submit_rcpt,
		.ctx = s,
	};
	sendmail_message_init(&s->msg, &set);
	s->msg_started = true;
	return SENDMAIL_EX_OK;
}

static int message_error(struct sendmail_submit *s, int status, struct textbuf *err)
{
	if (status == SENDMAIL_MSG_RCPT) {
		textbuf_puts(err, textbuf_str(&s->rcpt_errors));
		textbuf_truncate(&s->rcpt_errors, 0);
		return SENDMAIL_EX_NOUSER;
	}
	if (status == SENDMAIL_MSG_TOO_BIG) {
		textbuf_printf(err, "sendmail: message too large: the limit is %llu bytes\n",
			       (unsigned long long)s->cfg->smtp.max_message_size);
		return SENDMAIL_EX_DATAERR;
	}
	if (status == SENDMAIL_MSG_HEADER_TOO_BIG) {
		textbuf_printf(err, "sendmail: message header larger than %d bytes\n", SENDMAIL_HEADER_MAX);
		return SENDMAIL_EX_DATAERR;
	}
	textbuf_printf(err, "sendmail: cannot write into the maildrop %s\n", queue_path(s->maildrop));
	return SENDMAIL_EX_TEMPFAIL;
}

int sendmail_submit_feed(struct sendmail_submit *s, const void *data, size_t len, bool *done_r,
			 struct textbuf *err)
{
	int status = sendmail_message_feed(&s->msg, data, len);
	*done_r = status == SENDMAIL_MSG_DONE;
	return status < 0 ? message_error(s, status, err) : SENDMAIL_EX_OK;
}

int sendmail_submit_commit(struct sendmail_submit *s, struct textbuf *err)
{
	const char *error = NULL;
	int status = sendmail_message_finish(&s->msg);

	if (status < 0)
		return message_error(s, status, err);
	if (s->env.nrcpt == 0) {
		textbuf_puts(err, s->msg.set.extract ? "sendmail: no recipient addresses found in the message header\n"
						     : "sendmail: no recipients given\n");
		return SENDMAIL_EX_USAGE;
	}
	s->env.body_8bit = s->msg.body_8bit;
	int rc = queue_writer_commit(&s->writer, &s->env, &error);
	if (rc < 0) {
		textbuf_printf(err, "sendmail: cannot queue the message in %s: %s\n", queue_path(s->maildrop),
			       error ? error : store_strerror(rc));
		return SENDMAIL_EX_TEMPFAIL;
	}
	return SENDMAIL_EX_OK;
}

void sendmail_submit_abort(struct sendmail_submit *s)
{
	if (s->writer != NULL)
		queue_writer_abort(&s->writer);
	if (s->msg_started)
		sendmail_message_free(&s->msg);
	s->msg_started = false;
	queue_envelope_clear(&s->env);
	textbuf_free(&s->rcpt_errors);
}
