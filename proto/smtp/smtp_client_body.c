/*
 * The DATA stream for the SMTP client (RFC 5321 4.5.2): the stored
 * message has LF or CRLF line ends; on the wire every line ends in CRLF
 * and a line starting with "." gets another one. A bare CR (not before
 * LF) is taken as a line end too and becomes CRLF, so the encoder never
 * emits a bare CR or LF: a receiver that treats either as a line end
 * (the SMTP smuggling family of bugs) sees the same lines we do.
 * Output goes out in pieces of at most sizeof(out) bytes; nothing of the
 * message is held between calls but two flags.
 */
#include "proto/smtp/smtp_client_private.h"

void smtp_client_body_encoder_init(struct smtp_client_body_encoder *e)
{
	e->line_start = true;
	e->pending_cr = false;
}

struct out {
	char buf[4096];
	size_t len;
	void (*write)(void *ctx, const void *data, size_t len);
	void *ctx;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > sizeof(o->buf)) {
		o->write(o->ctx, o->buf, o->len);
		o->len = 0;
	}
	for (size_t i = 0; i < n; i++)
		o->buf[o->len++] = s[i];
}

static void out_flush(struct out *o)
{
	if (o->len > 0)
		o->write(o->ctx, o->buf, o->len);
	o->len = 0;
}

void smtp_client_body_encode(struct smtp_client_body_encoder *e, const void *data, size_t len,
			     void (*write)(void *ctx, const void *data, size_t len), void *ctx)
{
	struct out o = {.len = 0, .write = write, .ctx = ctx};
	const char *p = data;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (e->pending_cr) {
			e->pending_cr = false;
			out_put(&o, "\r\n", 2);
			e->line_start = true;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			e->pending_cr = true;
			continue;
		}
		if (c == '\n') {
			out_put(&o, "\r\n", 2);
			e->line_start = true;
			continue;
		}
		if (e->line_start && c == '.')
			out_put(&o, ".", 1);
		e->line_start = false;
		out_put(&o, &c, 1);
	}
	out_flush(&o);
}

void smtp_client_body_encode_end(struct smtp_client_body_encoder *e,
				 void (*write)(void *ctx, const void *data, size_t len), void *ctx)
{
	if (e->pending_cr || !e->line_start)
		write(ctx, "\r\n.\r\n", 5);
	else
		write(ctx, ".\r\n", 3);
	e->pending_cr = false;
	e->line_start = true;
}
