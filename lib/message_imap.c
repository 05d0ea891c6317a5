#include "lib/message_imap.h"

#include <inttypes.h>
#include <string.h>

#include "lib/mime_params.h"

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define NIL_ENVELOPE "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

void message_imap_append_string(struct textbuf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	bool quotable = true;
	size_t len = 0;
	for (; p[len] != '\0'; len++) {
		if (p[len] >= 0x80 || p[len] == '\r' || p[len] == '\n')
			quotable = false;
	}
	if (!quotable) {
		textbuf_printf(out, "{%zu}\r\n", len);
		textbuf_append(out, s, len);
		return;
	}
	textbuf_putc(out, '"');
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\') {
			textbuf_append(out, s + run, i - run);
			textbuf_putc(out, '\\');
			run = i;
		}
	}
	textbuf_append(out, s + run, len - run);
	textbuf_putc(out, '"');
}

void message_imap_append_nstring(struct textbuf *out, const char *s)
{
	if (s == NULL)
		textbuf_puts(out, "NIL");
	else
		message_imap_append_string(out, s);
}

static bool plain_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p >= 0x80 || *p < 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

static void append_params(struct textbuf *out, const struct message_param *params, uint32_t count)
{
	if (count == 0) {
		textbuf_puts(out, "NIL");
		return;
	}
	textbuf_putc(out, '(');
	for (uint32_t i = 0; i < count; i++) {
		const struct message_param *pm = &params[i];
		if (i > 0)
			textbuf_putc(out, ' ');
		if (pm->charset != NULL && !plain_ascii(pm->value)) {
			struct textbuf tmp = TEXTBUF_INIT;
			textbuf_puts(&tmp, pm->name);
			textbuf_putc(&tmp, '*');
			message_imap_append_string(out, textbuf_str(&tmp));
			textbuf_putc(out, ' ');
			textbuf_truncate(&tmp, 0);
			mime_param_encode_2231(pm->charset, pm->value, &tmp);
			message_imap_append_string(out, textbuf_str(&tmp));
			textbuf_free(&tmp);
		} else {
			message_imap_append_string(out, pm->name);
			textbuf_putc(out, ' ');
			message_imap_append_string(out, pm->value);
		}
	}
	textbuf_putc(out, ')');
}

static void append_extension(struct textbuf *out, const struct message_part *part)
{
	/* body-fld-dsp */
	textbuf_putc(out, ' ');
	if (part->disposition == NULL) {
		textbuf_puts(out, "NIL");
	} else {
		textbuf_putc(out, '(');
		message_imap_append_string(out, part->disposition);
		textbuf_putc(out, ' ');
		append_params(out, part->disp_params, part->disp_param_count);
		textbuf_putc(out, ')');
	}
	/* body-fld-lang: a list of tags */
	textbuf_putc(out, ' ');
	if (part->language == NULL || part->language[0] == '\0') {
		textbuf_puts(out, "NIL");
	} else {
		struct textbuf tag = TEXTBUF_INIT;
		textbuf_putc(out, '(');
		const char *s = part->language;
		bool first = true;
		for (;;) {
			const char *comma = strchr(s, ',');
			size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
			if (n > 0) {
				textbuf_truncate(&tag, 0);
				textbuf_append(&tag, s, n);
				if (!first)
					textbuf_putc(out, ' ');
				message_imap_append_string(out, textbuf_str(&tag));
				first = false;
			}
			if (comma == NULL)
				break;
			s = comma + 1;
		}
		if (first)
			textbuf_puts(out, "\"\"");
		textbuf_putc(out, ')');
		textbuf_free(&tag);
	}
	/* body-fld-loc */
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, part->location);
}

static void append_addresses(struct textbuf *out, const struct message_address_list *l)
{
	if (l->count == 0) {
		textbuf_puts(out, "NIL");
		return;
	}
	textbuf_putc(out, '(');
	for (uint32_t i = 0; i < l->count; i++) {
		const struct message_address *a = &l->addrs[i];
		textbuf_putc(out, '(');
		message_imap_append_nstring(out, a->name);
		textbuf_putc(out, ' ');
		message_imap_append_nstring(out, a->adl);
		textbuf_putc(out, ' ');
		message_imap_append_nstring(out, a->mailbox);
		textbuf_putc(out, ' ');
		message_imap_append_nstring(out, a->host);
		textbuf_putc(out, ')');
	}
	textbuf_putc(out, ')');
}

void message_imap_envelope(const struct message_envelope *env, struct textbuf *out)
{
	if (env == NULL) {
		textbuf_puts(out, NIL_ENVELOPE);
		return;
	}
	const struct message_address_list *from = &env->addr[MESSAGE_ENV_FROM - MESSAGE_ENV_FROM];
	textbuf_putc(out, '(');
	message_imap_append_nstring(out, env->raw[MESSAGE_ENV_DATE]);
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, env->raw[MESSAGE_ENV_SUBJECT]);
	for (int f = MESSAGE_ENV_FROM; f <= MESSAGE_ENV_BCC; f++) {
		const struct message_address_list *l = &env->addr[f - MESSAGE_ENV_FROM];
		if ((f == MESSAGE_ENV_SENDER || f == MESSAGE_ENV_REPLY_TO) && l->count == 0)
			l = from;
		textbuf_putc(out, ' ');
		append_addresses(out, l);
	}
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, env->raw[MESSAGE_ENV_IN_REPLY_TO]);
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, env->raw[MESSAGE_ENV_MESSAGE_ID]);
	textbuf_putc(out, ')');
}

static void append_part(const struct message_result *r, const struct message_part *part,
			bool extended, struct textbuf *out)
{
	textbuf_putc(out, '(');
	if (strcmp(part->type, "multipart") == 0) {
		if (part->children == 0 || (part->flags & MESSAGE_PART_FLAG_MULTIPART) == 0) {
			textbuf_puts(out, EMPTY_BODY);
		} else {
			for (uint32_t idx = (uint32_t)(part - r->parts) + 1;
			     idx != MESSAGE_PART_NONE; idx = r->parts[idx].next)
				append_part(r, &r->parts[idx], extended, out);
		}
		textbuf_putc(out, ' ');
		message_imap_append_string(out, part->subtype);
		if (extended) {
			textbuf_putc(out, ' ');
			append_params(out, part->params, part->param_count);
			append_extension(out, part);
		}
		textbuf_putc(out, ')');
		return;
	}

	message_imap_append_string(out, part->type);
	textbuf_putc(out, ' ');
	message_imap_append_string(out, part->subtype);
	textbuf_putc(out, ' ');
	append_params(out, part->params, part->param_count);
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, part->id);
	textbuf_putc(out, ' ');
	message_imap_append_nstring(out, part->description);
	textbuf_putc(out, ' ');
	message_imap_append_string(out, part->encoding != NULL ? part->encoding : "7bit");
	textbuf_printf(out, " %" PRIu64, message_part_body_size(part));

	if (strcmp(part->type, "message") == 0 && strcmp(part->subtype, "rfc822") == 0) {
		textbuf_putc(out, ' ');
		if ((part->flags & MESSAGE_PART_FLAG_RFC822) != 0 && part->children == 1) {
			const struct message_part *msg = part + 1;
			message_imap_envelope(msg->envelope, out);
			textbuf_putc(out, ' ');
			append_part(r, msg, extended, out);
		} else {
			textbuf_puts(out, NIL_ENVELOPE " " EMPTY_BODY);
		}
		textbuf_printf(out, " %" PRIu64, part->body_lines);
	} else if (strcmp(part->type, "text") == 0) {
		textbuf_printf(out, " %" PRIu64, part->body_lines);
	}
	if (extended) {
		textbuf_putc(out, ' ');
		message_imap_append_nstring(out, part->md5);
		append_extension(out, part);
	}
	textbuf_putc(out, ')');
}

void message_imap_bodystructure(const struct message_result *result,
				const struct message_part *part, bool extended, struct textbuf *out)
{
	append_part(result, part, extended, out);
}
