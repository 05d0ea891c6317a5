/*
 * The SMTP client engine's session: greeting, EHLO/HELO, STARTTLS, the
 * transaction (pipelined or one command at a time), the body and the
 * verdicts. Replies are assembled by smtp_client_reply.c, EHLO keywords
 * read by smtp_client_caps.c, the body encoded by smtp_client_body.c.
 *
 * Pipelining (RFC 2920): MAIL, every RCPT and DATA go out in one write
 * and replies are matched to them in order. A refused MAIL decides every
 * recipient (the 503s that follow for RCPT say nothing new). When no
 * RCPT was accepted the server should refuse DATA, but if it answers 354
 * anyway the client must end the empty message with a lone "." (3.1)
 * and throw that reply away.
 *
 * Security stance: nothing the server sends can make the engine write
 * anything but the next command; input after a 220 to STARTTLS is
 * thrown away (it could be a man in the middle's injection); strings from
 * the queue that would break the command syntax are never sent.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hex.h"
#include "lib/linebuf.h"
#include "lib/textbuf.h"
#include "proto/smtp/smtp.h"
#include "proto/smtp/smtp_client_private.h"

enum phase {
	PHASE_GREETING,
	PHASE_EHLO,
	PHASE_HELO,
	PHASE_STARTTLS,
	PHASE_TLS, /* waiting for the caller's handshake */
	PHASE_TRANSACTION,
	PHASE_BODY,
	PHASE_DOT,
	PHASE_LONE_DOT, /* the "." that ends an empty pipelined DATA */
	PHASE_DONE,
};

enum awaiting {
	AWAIT_MAIL,
	AWAIT_RCPT,
	AWAIT_DATA,
};

struct rcpt {
	char *address;
	char *orcpt; /* NULL when absent or unusable */
	unsigned notify;
	bool skip;     /* not sendable: decided before the session */
	bool accepted; /* RCPT got 2xx */
	struct smtp_client_reply result;
};

struct smtp_client {
	const struct smtp_client_backend *be;
	void *ctx;

	char *helo_name;
	char *sender;
	char *envid; /* NULL when absent or unusable */
	bool sender_bad;
	bool want_starttls, tls_active, body_8bit, smtputf8;
	uint64_t message_size;
	enum smtp_client_ret ret;
	struct rcpt *rcpts;
	size_t nrcpt;

	enum phase phase;
	struct linebuf lines;
	struct smtp_client_reply_reader reader;
	unsigned ext, new_ext; /* announced; being read from an EHLO reply */
	uint64_t size_limit, new_size_limit;
	bool tls_started;
	bool greeted;              /* the server said 220 */
	const char *stage;

	bool pipelined;
	enum awaiting awaiting;
	size_t await_rcpt;
	bool mail_ok;
	size_t accepted;
	struct smtp_client_body_encoder body;
};

static void send_str(struct smtp_client *c, const char *s)
{
	c->be->write(c->ctx, s, strlen(s));
}

/* Writes b and frees it. */
static void send_buffer(struct smtp_client *c, struct textbuf *b)
{
	c->be->write(c->ctx, b->data, b->len);
	textbuf_free(b);
}

static void sendf(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sendf(struct smtp_client *c, const char *fmt, ...)
{
	struct textbuf b = TEXTBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	textbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	send_buffer(c, &b);
}

static struct smtp_client_reply make_reply(int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct smtp_client_reply make_reply(int code, const char *enhanced, const char *fmt, ...)
{
	struct smtp_client_reply r = {.code = code};
	va_list ap;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced ? enhanced : "");
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	return r;
}

/* Every recipient still without a verdict gets r. */
static void decide_all(struct smtp_client *c, const struct smtp_client_reply *r)
{
	for (size_t i = 0; i < c->nrcpt; i++)
		if (c->rcpts[i].result.code == 0)
			c->rcpts[i].result = *r;
}

static enum smtp_client_want want_of(const struct smtp_client *c)
{
	switch (c->phase) {
	case PHASE_TLS:
		return SMTP_CLIENT_WANT_TLS;
	case PHASE_BODY:
		return SMTP_CLIENT_WANT_BODY;
	case PHASE_DONE:
		return SMTP_CLIENT_WANT_DONE;
	default:
		return SMTP_CLIENT_WANT_INPUT;
	}
}

static enum smtp_client_want finish(struct smtp_client *c, bool quit)
{
	if (quit) {
		send_str(c, "QUIT\r\n");
		c->stage = "QUIT";
	}
	c->phase = PHASE_DONE;
	return SMTP_CLIENT_WANT_DONE;
}

static enum smtp_client_want end_session(struct smtp_client *c, const struct smtp_client_reply *r,
					 bool quit)
{
	decide_all(c, r);
	return finish(c, quit);
}

static enum smtp_client_want protocol_error(struct smtp_client *c, const char *why)
{
	struct smtp_client_reply r =
	    make_reply(451, "4.5.0", "protocol error: %s (in reply to %s)", why, c->stage);
	/* In the body a QUIT would be taken as message text. */
	return end_session(c, &r, c->phase != PHASE_BODY);
}

static int reply_class(const struct smtp_client_reply *r)
{
	return r->code / 100;
}

/* An address may hold spaces (in a quoted local part) and UTF-8, but no
 * control character that could end or split the command line. */
static bool is_address_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

static size_t next_rcpt(const struct smtp_client *c, size_t from)
{
	while (from < c->nrcpt && c->rcpts[from].skip)
		from++;
	return from;
}

/* ---- commands ---- */

static void append_mail(struct smtp_client *c, struct textbuf *b)
{
	textbuf_printf(b, "MAIL FROM:<%s>", c->sender);
	if (c->ext & SMTP_EXT_SIZE)
		textbuf_printf(b, " SIZE=%llu", (unsigned long long)c->message_size);
	if (c->body_8bit && (c->ext & SMTP_EXT_8BITMIME))
		textbuf_puts(b, " BODY=8BITMIME");
	if (c->smtputf8)
		textbuf_puts(b, " SMTPUTF8");
	if (c->ext & SMTP_EXT_DSN) {
		if (c->ret == SMTP_CLIENT_RET_FULL)
			textbuf_puts(b, " RET=FULL");
		else if (c->ret == SMTP_CLIENT_RET_HDRS)
			textbuf_puts(b, " RET=HDRS");
		if (c->envid != NULL)
			textbuf_printf(b, " ENVID=%s", c->envid);
	}
	textbuf_puts(b, "\r\n");
}

static void append_rcpt(struct smtp_client *c, size_t i, struct textbuf *b)
{
	const struct rcpt *r = &c->rcpts[i];
	textbuf_printf(b, "RCPT TO:<%s>", r->address);
	if (c->ext & SMTP_EXT_DSN) {
		if (r->notify & SMTP_NOTIFY_NEVER) {
			textbuf_puts(b, " NOTIFY=NEVER");
		} else if (r->notify != 0) {
			const char *sep = " NOTIFY=";
			static const struct {
				unsigned bit;
				const char *name;
			} names[] = {{SMTP_NOTIFY_SUCCESS, "SUCCESS"},
				     {SMTP_NOTIFY_FAILURE, "FAILURE"},
				     {SMTP_NOTIFY_DELAY, "DELAY"}};
			for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
				if (r->notify & names[k].bit) {
					textbuf_printf(b, "%s%s", sep, names[k].name);
					sep = ",";
				}
			}
		}
		if (r->orcpt != NULL)
			textbuf_printf(b, " ORCPT=%s", r->orcpt);
	}
	textbuf_puts(b, "\r\n");
}

static void send_ehlo(struct smtp_client *c)
{
	c->new_ext = 0;
	c->new_size_limit = 0;
	sendf(c, "EHLO %s\r\n", c->helo_name);
	c->stage = "EHLO";
	c->phase = PHASE_EHLO;
}

static enum smtp_client_want start_transaction(struct smtp_client *c)
{
	struct smtp_client_reply r;

	if (c->sender_bad) {
		r = make_reply(553, "5.1.7", "invalid sender address: not sent");
		return end_session(c, &r, true);
	}
	if (c->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		r = make_reply(550, "5.6.7",
			       "SMTPUTF8 is required, but was not offered by the server");
		return end_session(c, &r, true);
	}
	if ((c->ext & SMTP_EXT_SIZE) && c->size_limit > 0 && c->message_size > c->size_limit) {
		r = make_reply(
		    552, "5.3.4", "message size %llu exceeds the server's size limit of %llu",
		    (unsigned long long)c->message_size, (unsigned long long)c->size_limit);
		return end_session(c, &r, true);
	}
	size_t first = next_rcpt(c, 0);
	if (first == c->nrcpt)
		return finish(c, true);

	struct textbuf b = TEXTBUF_INIT;
	append_mail(c, &b);
	c->pipelined = (c->ext & SMTP_EXT_PIPELINING) != 0;
	if (c->pipelined) {
		for (size_t i = first; i < c->nrcpt; i = next_rcpt(c, i + 1))
			append_rcpt(c, i, &b);
		textbuf_puts(&b, "DATA\r\n");
	}
	send_buffer(c, &b);
	c->phase = PHASE_TRANSACTION;
	c->awaiting = AWAIT_MAIL;
	c->stage = "MAIL FROM";
	return SMTP_CLIENT_WANT_INPUT;
}

static enum smtp_client_want after_hello(struct smtp_client *c)
{
	if ((c->ext & SMTP_EXT_STARTTLS) && c->want_starttls && !c->tls_active && !c->tls_started) {
		send_str(c, "STARTTLS\r\n");
		c->stage = "STARTTLS";
		c->phase = PHASE_STARTTLS;
		return SMTP_CLIENT_WANT_INPUT;
	}
	return start_transaction(c);
}

/* Moves to the next RCPT, or DATA, or the end once RCPTs are done. */
static enum smtp_client_want after_rcpt(struct smtp_client *c, size_t i)
{
	size_t j = next_rcpt(c, i + 1);
	if (j < c->nrcpt) {
		c->awaiting = AWAIT_RCPT;
		c->await_rcpt = j;
		c->stage = "RCPT TO";
		if (!c->pipelined) {
			struct textbuf b = TEXTBUF_INIT;
			append_rcpt(c, j, &b);
			send_buffer(c, &b);
		}
		return SMTP_CLIENT_WANT_INPUT;
	}
	if (!c->pipelined && c->accepted == 0)
		return finish(c, true);
	if (!c->pipelined)
		send_str(c, "DATA\r\n");
	c->awaiting = AWAIT_DATA;
	c->stage = "DATA";
	return SMTP_CLIENT_WANT_INPUT;
}

/* ---- replies ---- */

static enum smtp_client_want on_transaction_reply(struct smtp_client *c,
						  const struct smtp_client_reply *r)
{
	int cls = reply_class(r);

	switch (c->awaiting) {
	case AWAIT_MAIL:
		if (cls != 2 && cls != 4 && cls != 5)
			return protocol_error(c, "unexpected reply to MAIL FROM");
		c->mail_ok = cls == 2;
		if (!c->mail_ok && !c->pipelined)
			return end_session(c, r, true);
		if (!c->mail_ok)
			decide_all(c, r); /* what follows in the batch says nothing new */
		return after_rcpt(c, (size_t)-1);
	case AWAIT_RCPT:
		if (cls != 2 && cls != 4 && cls != 5)
			return protocol_error(c, "unexpected reply to RCPT TO");
		if (c->mail_ok) {
			if (cls == 2) {
				c->rcpts[c->await_rcpt].accepted = true;
				c->accepted++;
			} else {
				c->rcpts[c->await_rcpt].result = *r;
			}
		}
		return after_rcpt(c, c->await_rcpt);
	case AWAIT_DATA:
		if (r->code != 354 && cls != 4 && cls != 5)
			return protocol_error(c, "unexpected reply to DATA");
		if (r->code == 354) {
			if (c->mail_ok && c->accepted > 0) {
				smtp_client_body_encoder_init(&c->body);
				c->phase = PHASE_BODY;
				c->stage = "message body";
				return SMTP_CLIENT_WANT_BODY;
			}
			send_str(c, ".\r\n");
			c->phase = PHASE_LONE_DOT;
			c->stage = "end of data";
			return SMTP_CLIENT_WANT_INPUT;
		}
		return end_session(c, r, true);
	}
	return protocol_error(c, "internal state");
}

static enum smtp_client_want on_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	int cls = reply_class(r);

	/* 421: the server is closing the connection, whatever was asked. */
	if (r->code == 421 && c->phase != PHASE_LONE_DOT)
		return end_session(c, r, false);

	switch (c->phase) {
	case PHASE_GREETING:
		if (r->code == 220) {
			c->greeted = true;
			send_ehlo(c);
			return SMTP_CLIENT_WANT_INPUT;
		}
		if (cls == 4 || cls == 5)
			return end_session(c, r, true);
		return protocol_error(c, "unexpected greeting");
	case PHASE_EHLO:
		if (cls == 2) {
			c->ext = c->new_ext;
			c->size_limit = c->new_size_limit;
			return after_hello(c);
		}
		if (cls == 5) {
			sendf(c, "HELO %s\r\n", c->helo_name);
			c->stage = "HELO";
			c->phase = PHASE_HELO;
			return SMTP_CLIENT_WANT_INPUT;
		}
		if (cls == 4)
			return end_session(c, r, true);
		return protocol_error(c, "unexpected reply to EHLO");
	case PHASE_HELO:
		if (cls == 2) {
			c->ext = 0;
			c->size_limit = 0;
			return start_transaction(c);
		}
		if (cls == 4 || cls == 5)
			return end_session(c, r, true);
		return protocol_error(c, "unexpected reply to HELO");
	case PHASE_STARTTLS:
		if (r->code == 220) {
			/* Whatever came with or after the 220 predates TLS. */
			linebuf_reset(&c->lines);
			c->phase = PHASE_TLS;
			return SMTP_CLIENT_WANT_TLS;
		}
		if (cls == 4 || cls == 5)
			return start_transaction(c); /* opportunistic: go on in plaintext */
		return protocol_error(c, "unexpected reply to STARTTLS");
	case PHASE_TRANSACTION:
		return on_transaction_reply(c, r);
	case PHASE_BODY:
		/* A reply before the end of the data: the server gave up on it. */
		if (cls == 4 || cls == 5)
			return end_session(c, r, false);
		return protocol_error(c, "reply before the end of the message");
	case PHASE_DOT:
		if (cls != 2 && cls != 4 && cls != 5)
			return protocol_error(c, "unexpected reply to end of data");
		return end_session(c, r, true);
	case PHASE_LONE_DOT:
		return finish(c, true);
	case PHASE_TLS:
	case PHASE_DONE:
		break;
	}
	return want_of(c);
}

enum smtp_client_want smtp_client_input(struct smtp_client *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0 && c->phase != PHASE_DONE && c->phase != PHASE_TLS) {
		const char *line, *text, *error;
		bool has_nul;
		enum linebuf_result lr = linebuf_feed(&c->lines, &p, &len, &line, &has_nul);
		if (lr == LINEBUF_NEED_MORE)
			break;
		if (lr == LINEBUF_TOO_LONG)
			return protocol_error(c, "reply line too long");
		if (has_nul)
			return protocol_error(c, "NUL in reply");
		enum smtp_client_line_result res =
		    smtp_client_reply_line(&c->reader, line, &text, &error);
		if (res == SMTP_CLIENT_LINE_ERROR)
			return protocol_error(c, error);
		if (c->phase == PHASE_EHLO && c->reader.lines > 1)
			smtp_client_caps_line(text, &c->new_ext, &c->new_size_limit);
		if (res == SMTP_CLIENT_LINE_LAST) {
			struct smtp_client_reply r = c->reader.reply;
			smtp_client_reply_reader_reset(&c->reader);
			on_reply(c, &r);
		}
	}
	return want_of(c);
}

enum smtp_client_want smtp_client_tls_started(struct smtp_client *c)
{
	if (c->phase != PHASE_TLS)
		return want_of(c);
	c->tls_started = true;
	c->ext = 0;
	c->size_limit = 0;
	linebuf_reset(&c->lines);
	smtp_client_reply_reader_reset(&c->reader);
	send_ehlo(c);
	return SMTP_CLIENT_WANT_INPUT;
}

enum smtp_client_want smtp_client_tls_failed(struct smtp_client *c)
{
	if (c->phase != PHASE_TLS)
		return want_of(c);
	struct smtp_client_reply r = make_reply(451, "4.7.5", "TLS handshake failed");
	return end_session(c, &r, false);
}

void smtp_client_body(struct smtp_client *c, const void *data, size_t len)
{
	if (c->phase == PHASE_BODY)
		smtp_client_body_encode(&c->body, data, len, c->be->write, c->ctx);
}

enum smtp_client_want smtp_client_body_end(struct smtp_client *c)
{
	if (c->phase != PHASE_BODY)
		return want_of(c);
	smtp_client_body_encode_end(&c->body, c->be->write, c->ctx);
	c->phase = PHASE_DOT;
	c->stage = "end of data";
	return SMTP_CLIENT_WANT_INPUT;
}

enum smtp_client_want smtp_client_abort(struct smtp_client *c, int code, const char *enhanced,
					const char *text)
{
	struct smtp_client_reply r = make_reply(code, enhanced, "%s", text ? text : "");
	return end_session(c, &r, false);
}

const char *smtp_client_stage(const struct smtp_client *c)
{
	return c->stage;
}

bool smtp_client_greeted(const struct smtp_client *c)
{
	return c->greeted;
}

unsigned smtp_client_extensions(const struct smtp_client *c)
{
	return c->ext;
}

bool smtp_client_tls(const struct smtp_client *c)
{
	return c->tls_active || c->tls_started;
}

const struct smtp_client_reply *smtp_client_rcpt_reply(const struct smtp_client *c, size_t i)
{
	return i < c->nrcpt ? &c->rcpts[i].result : NULL;
}

/* ---- lifetime ---- */

static char *dup_or_null(const char *s, bool *failed)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*failed = true;
	return d;
}

struct smtp_client *smtp_client_new(const struct smtp_client_settings *set,
				    const struct smtp_client_backend *backend, void *ctx)
{
	struct smtp_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	bool failed = false;
	c->be = backend;
	c->ctx = ctx;
	c->helo_name = dup_or_null(set->helo_name ? set->helo_name : "localhost", &failed);
	c->sender = dup_or_null(set->sender ? set->sender : "", &failed);
	if (set->envid != NULL && hex_xtext_valid(set->envid, false) && set->envid[0] != '\0')
		c->envid = dup_or_null(set->envid, &failed);
	c->want_starttls = set->starttls;
	c->tls_active = set->tls_active;
	c->body_8bit = set->body_8bit;
	c->smtputf8 = set->smtputf8;
	c->message_size = set->message_size;
	c->ret = set->ret;
	c->stage = "greeting";
	c->phase = PHASE_GREETING;
	if (set->nrcpt > 0) {
		c->rcpts = calloc(set->nrcpt, sizeof(*c->rcpts));
		if (c->rcpts == NULL)
			failed = true;
		else
			c->nrcpt = set->nrcpt;
	}
	for (size_t i = 0; i < c->nrcpt && !failed; i++) {
		const struct smtp_client_rcpt *in = &set->rcpts[i];
		struct rcpt *r = &c->rcpts[i];
		const char *addr = in->address ? in->address : "";
		r->address = dup_or_null(addr, &failed);
		r->notify = in->notify;
		/* ORCPT and ENVID as they came in may not be valid xtext: such a
		 * value is left out (both are optional) rather than refused
		 * downstream with 501 and the recipient bounced. */
		if (in->orcpt != NULL && hex_xtext_valid(in->orcpt, false) && strchr(in->orcpt, ';') != NULL)
			r->orcpt = dup_or_null(in->orcpt, &failed);
		if (addr[0] == '\0' || !is_address_safe(addr)) {
			r->skip = true;
			r->result = make_reply(553, "5.1.3", "invalid recipient address: not sent");
		}
	}
	if (!failed && c->sender != NULL)
		c->sender_bad = !is_address_safe(c->sender);
	if (failed || linebuf_init(&c->lines, SMTP_CLIENT_LINE_MAX) < 0) {
		smtp_client_free(&c);
		return NULL;
	}
	smtp_client_reply_reader_reset(&c->reader);
	return c;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nrcpt; i++) {
		free(c->rcpts[i].address);
		free(c->rcpts[i].orcpt);
	}
	free(c->rcpts);
	free(c->helo_name);
	free(c->sender);
	free(c->envid);
	linebuf_free(&c->lines);
	free(c);
	*cp = NULL;
}
