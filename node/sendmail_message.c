/*
 * The sendmail message filter (node/sendmail.h): what Postfix's sendmail
 * and cleanup do to a locally submitted message, as a push filter.
 *
 *  - Lines end in LF or CRLF on input; CRLF on output. A last line
 *    without a line end gets one.
 *  - Without -i, a line of a lone "." ends the input (the rest is
 *    ignored, as sendmail does); a first line "From ..." (mbox) is dropped.
 *  - The header (up to the first empty line, or the first line that is
 *    not a header field: then an empty line is put before it) is held
 *    whole, at most SENDMAIL_HEADER_MAX bytes, and written as:
 *    Received: first, the message's fields without Bcc: and Resent-Bcc:,
 *    then From:, Date: and Message-ID: when the message has none.
 *  - -t: the addresses of To:, Cc: and Bcc: (of Resent-To:, Resent-Cc:
 *    and Resent-Bcc: instead when there are any: a resent message goes
 *    to its new recipients only) go to the rcpt callback.
 *  - Every write is counted against max_size.
 */
#include "node/sendmail.h"

#include <string.h>

#include "lib/message_address.h"
#include "lib/rfc822_header.h"
#include "node/smtp_received.h"

void sendmail_message_init(struct sendmail_message *m, const struct sendmail_message_settings *set)
{
	memset(m, 0, sizeof(*m));
	m->set = *set;
	m->first_line = true;
}

void sendmail_message_free(struct sendmail_message *m)
{
	textbuf_free(&m->line);
	textbuf_free(&m->header);
	textbuf_free(&m->fields);
	textbuf_free(&m->resent);
}

const char *sendmail_message_strerror(int status)
{
	switch (status) {
	case SENDMAIL_MSG_TOO_BIG:
		return "message too large";
	case SENDMAIL_MSG_HEADER_TOO_BIG:
		return "message header too large";
	case SENDMAIL_MSG_WRITE:
		return "cannot write the message";
	case SENDMAIL_MSG_RCPT:
		return "bad recipient in the header";
	default:
		return "ok";
	}
}

static int out(struct sendmail_message *m, const void *data, size_t len)
{
	const unsigned char *p = data;
	if (m->set.max_size != 0 && m->written + len > m->set.max_size)
		return SENDMAIL_MSG_TOO_BIG;
	for (size_t i = 0; i < len && !m->body_8bit; i++)
		m->body_8bit = p[i] >= 0x80;
	m->written += len;
	return m->set.write(m->set.ctx, data, len) < 0 ? SENDMAIL_MSG_WRITE : SENDMAIL_MSG_OK;
}

/* The length of the field name at the start of line, 0 if it is no
 * field; *colon_r: where its colon is (RFC 5322 4.5.3, obsolete syntax:
 * "Bcc : x" is a field too, whitespace between the name and the colon). */
static size_t field_name_len(const char *line, size_t len, size_t *colon_r)
{
	size_t i = 0;
	while (i < len && line[i] > ' ' && line[i] < 127 && line[i] != ':')
		i++;
	size_t name = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	*colon_r = i;
	return name > 0 && i < len && line[i] == ':' ? name : 0;
}

static int extract_list(struct sendmail_message *m, const struct textbuf *values)
{
	for (size_t off = 0; off < values->len;) {
		const char *v = values->data + off;
		size_t n = strlen(v);
		struct message_arena *arena = message_arena_create();
		struct message_address_list list;
		message_address_list_parse(arena, v, n, &list);
		int ret = SENDMAIL_MSG_OK;
		for (uint32_t i = 0; i < list.count && ret == SENDMAIL_MSG_OK; i++) {
			const struct message_address *a = &list.addrs[i];
			if (a->mailbox == NULL || a->host == NULL)
				continue; /* group start or end */
			if (m->set.rcpt(m->set.ctx, a->mailbox, a->host) < 0)
				ret = SENDMAIL_MSG_RCPT;
		}
		message_arena_destroy(&arena);
		if (ret < 0)
			return ret;
		off += n + 1;
	}
	return SENDMAIL_MSG_OK;
}

/* Writes the header held so far, then the empty line that ends it. */
static int emit_header(struct sendmail_message *m)
{
	struct textbuf h = TEXTBUF_INIT;
	char date[64];
	int ret;

	m->in_body = true;
	if (m->set.extract) {
		ret = extract_list(m, m->resent.len > 0 ? &m->resent : &m->fields);
		if (ret < 0)
			return ret;
	}
	smtp_received_date(m->set.now, date, sizeof(date));
	textbuf_printf(&h, "Received: by %s (clustermail, from userid %lu)\r\n\tid %s; %s\r\n",
		       m->set.hostname, (unsigned long)m->set.uid, m->set.queue_id, date);
	textbuf_append(&h, m->header.data, m->header.len);
	if (!m->has_from)
		textbuf_printf(&h, "From: %s\r\n", m->set.from_header);
	if (!m->has_date)
		textbuf_printf(&h, "Date: %s\r\n", date);
	if (!m->has_message_id) {
		struct tm tm;
		char stamp[32] = "0";
		if (gmtime_r(&m->set.now, &tm) != NULL)
			strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		textbuf_printf(&h, "Message-ID: <%s.%s@%s>\r\n", stamp, m->set.queue_id, m->set.hostname);
	}
	textbuf_puts(&h, "\r\n");
	ret = out(m, h.data, h.len);
	textbuf_free(&h);
	return ret;
}

static void field_value_add(struct textbuf *to, const char *value, size_t len)
{
	textbuf_append(to, value, len);
	textbuf_putc(to, '\0');
}

/* Keeps a header line or continuation line, unless its field is dropped. */
static int header_keep(struct sendmail_message *m, const char *line, size_t len)
{
	if (m->in_dropped)
		return 0;
	if (m->header.len + len + 2 > SENDMAIL_HEADER_MAX)
		return SENDMAIL_MSG_HEADER_TOO_BIG;
	textbuf_append(&m->header, line, len);
	textbuf_puts(&m->header, "\r\n");
	return 0;
}

/* One complete header line (no line end). Returns 1 when it was no
 * header line at all: the header is over and the line is body. */
static int header_line(struct sendmail_message *m, const char *line, size_t len)
{
	if (len > 0 && (line[0] == ' ' || line[0] == '\t') && m->in_field) {
		if (m->in_wanted) {
			/* continue the value kept for -t: replace its NUL */
			struct textbuf *t = m->in_resent ? &m->resent : &m->fields;
			if (m->fields.len + m->resent.len + len > SENDMAIL_HEADER_MAX)
				return SENDMAIL_MSG_HEADER_TOO_BIG;
			textbuf_truncate(t, t->len - 1);
			textbuf_putc(t, ' ');
			field_value_add(t, line, len);
		}
		return header_keep(m, line, len);
	}
	size_t colon;
	size_t n = field_name_len(line, len, &colon);
	if (n == 0)
		return 1;
	m->in_field = true;
	m->in_dropped =
	    rfc822_name_equals(line, n, "Bcc") || rfc822_name_equals(line, n, "Resent-Bcc");
	m->in_wanted = m->in_resent = false;
	m->has_from |= rfc822_name_equals(line, n, "From");
	m->has_date |= rfc822_name_equals(line, n, "Date");
	m->has_message_id |= rfc822_name_equals(line, n, "Message-ID");
	if (m->set.extract) {
		bool plain = rfc822_name_equals(line, n, "To") ||
			     rfc822_name_equals(line, n, "Cc") ||
			     rfc822_name_equals(line, n, "Bcc");
		bool resent = rfc822_name_equals(line, n, "Resent-To") ||
			      rfc822_name_equals(line, n, "Resent-Cc") ||
			      rfc822_name_equals(line, n, "Resent-Bcc");
		if (plain || resent) {
			if (m->fields.len + m->resent.len + len > SENDMAIL_HEADER_MAX)
				return SENDMAIL_MSG_HEADER_TOO_BIG;
			m->in_wanted = true;
			m->in_resent = resent;
			field_value_add(resent ? &m->resent : &m->fields, line + colon + 1,
					len - colon - 1);
		}
	}
	return header_keep(m, line, len);
}

/* A complete line (without its line end, CR removed). */
static int complete_line(struct sendmail_message *m, const char *line, size_t len)
{
	bool first = m->first_line;

	m->first_line = false;
	if (m->set.dot_ends && !m->line_continued && len == 1 && line[0] == '.') {
		m->done = true;
		return SENDMAIL_MSG_DONE;
	}
	if (!m->in_body) {
		if (first && m->set.skip_from_line && len >= 5 && memcmp(line, "From ", 5) == 0)
			return SENDMAIL_MSG_OK;
		if (len == 0)
			return emit_header(m);
		int ret = header_line(m, line, len);
		if (ret <= 0)
			return ret;
		/* not a header field: the body starts here, after an empty line */
		if ((ret = emit_header(m)) < 0)
			return ret;
	}
	int ret = out(m, line, len);
	return ret < 0 ? ret : out(m, "\r\n", 2);
}

int sendmail_message_feed(struct sendmail_message *m, const void *data, size_t len)
{
	const char *p = data;

	if (m->done)
		return SENDMAIL_MSG_DONE;
	while (len > 0) {
		const char *lf = memchr(p, '\n', len);
		size_t take = lf ? (size_t)(lf - p) : len;
		size_t limit = m->in_body ? SENDMAIL_LINE_PIECE : SENDMAIL_HEADER_MAX;
		if (m->line.len + take > limit) {
			if (!m->in_body)
				return m->done = true, SENDMAIL_MSG_HEADER_TOO_BIG;
			/* a long body line goes out in pieces; keep a possible
			 * CR at the end of the piece back (CRLF may straddle) */
			textbuf_append(&m->line, p, take);
			size_t keep = m->line.data[m->line.len - 1] == '\r' ? 1 : 0;
			int ret = out(m, m->line.data, m->line.len - keep);
			if (ret < 0)
				return m->done = true, ret;
			textbuf_truncate(&m->line, 0);
			if (keep)
				textbuf_putc(&m->line, '\r');
			m->line_continued = true;
			m->first_line = false;
			p += take;
			len -= take;
			continue;
		}
		textbuf_append(&m->line, p, take);
		p += take;
		len -= take;
		if (lf == NULL)
			break;
		p++;
		len--;
		size_t n = m->line.len;
		if (n > 0 && m->line.data[n - 1] == '\r')
			n--;
		int ret = complete_line(m, textbuf_str(&m->line), n);
		textbuf_truncate(&m->line, 0);
		m->line_continued = false;
		if (ret != SENDMAIL_MSG_OK) {
			m->done = true;
			return ret;
		}
	}
	return SENDMAIL_MSG_OK;
}

int sendmail_message_finish(struct sendmail_message *m)
{
	int ret = SENDMAIL_MSG_OK;
	if (!m->done && (m->line.len > 0 || m->line_continued)) {
		size_t n = m->line.len;
		if (n > 0 && m->line.data[n - 1] == '\r')
			n--;
		ret = complete_line(m, textbuf_str(&m->line), n);
		textbuf_truncate(&m->line, 0);
	}
	/* a message that ended inside its header (or was empty) */
	if (ret >= 0 && !m->in_body)
		ret = emit_header(m);
	m->done = true;
	return ret == SENDMAIL_MSG_DONE ? SENDMAIL_MSG_OK : ret;
}
