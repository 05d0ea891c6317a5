/*
 * Delivery status notifications: the report's header and first two parts
 * are written by dsn_begin(), the original is streamed by dsn_original()
 * and the structure closed by dsn_end(). Generated lines end in CRLF;
 * the original's lines are passed through as they are stored, except
 * that a line ending in a bare LF (mail from sendmail may have them)
 * ends in CRLF in the report.
 *
 * Header injection: every value that came from the network (addresses,
 * diagnostics, the client's name, ENVID, ORCPT) goes through put_field(),
 * which turns CR, LF and other control characters into spaces and bytes
 * >= 0x80 into '?' (the report is us-ascii; RFC 6533's utf-8 reports are
 * not made), cuts it at VALUE_MAX and folds it at spaces, so a value can
 * never start a header line or a MIME delimiter of its own.
 *
 * xtext: RFC 3461 4.2 and 4.4 require ORCPT and ENVID to be printable
 * US-ASCII "prior to encoding as xtext" because of the DSN format: the
 * DSN carries the decoded value, and RFC 3464 2.2.1 asks to preserve its
 * case and spelling. Both are therefore decoded ("+2B" -> "+") and then
 * sanitised like any other value.
 *
 * The boundary is the queue id, the time, a process-wide counter and the
 * reporting host, as Postfix makes it: unlikely to appear in a message by
 * chance. Since the original is streamed it cannot be checked in advance,
 * so a collision is prevented instead: a line of the original that starts
 * with "--" and the boundary gets one space in front, which makes it an
 * ordinary line (RFC 2046 5.1.1: a delimiter starts at the line's first
 * byte). Only such a line, which someone must have crafted to match, is
 * changed.
 *
 * Cutting the original: it is returned line by line and stops before the
 * first line that would pass max_original bytes, so it is cut at a line
 * boundary. To stay within a fixed amount of memory a line is held only
 * up to LINE_HOLD bytes; a longer line (RFC 5322 allows 998) is passed on
 * in pieces, and if the bound falls inside one, that line is cut and
 * ended with CRLF. A message cut inside its header gets the empty line
 * that ends a header. headers_only returns the lines before the first
 * empty line (the header), with the same bound.
 */
#include "lib/dsn.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/hex.h"
#include "lib/message_date.h"

#define VALUE_MAX 1000	/* bytes of one header value kept */
#define FOLD_AT 78	/* fold a field line after this many columns if there is a space */
#define HARD_FOLD 990	/* fold even inside a word (RFC 5322 2.1.1: 998) */
#define LINE_HOLD 1000	/* bytes of a line of the original held to decide a cut */
#define BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */

struct dsn_writer {
	char boundary[BOUNDARY_MAX + 1];
	char marker[BOUNDARY_MAX + 3]; /* "--" boundary */
	size_t marker_len;
	bool headers_only;
	uint64_t max;
	uint64_t emitted;
	bool stopped;	   /* cut, or end of header reached */
	bool mid_line;	   /* the line being held continues one partly emitted */
	bool ends_with_lf; /* what was emitted ends a line (or nothing was) */
	bool ends_with_cr; /* what was emitted ends in CR (a CRLF split across pieces) */
	bool in_header;	   /* no empty line of the original emitted yet */
	char hold[LINE_HOLD];
	size_t hold_len;
};

static atomic_uint boundary_counter;

/* ---- values ---- */

static void sanitize(const char *in, struct textbuf *out)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && n < VALUE_MAX;
	     p++, n++) {
		unsigned char c = *p;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80)
			c = '?';
		textbuf_putc(out, (char)c);
	}
}

/* Appends text sanitised, then CRLF, starting at column col: words
 * after the first go on a new line starting with indent when they would
 * pass FOLD_AT, and a word longer than a line may be is cut at
 * HARD_FOLD. */
static void put_words(struct textbuf *out, const char *text, size_t col, const char *indent)
{
	struct textbuf v = TEXTBUF_INIT;
	sanitize(text, &v);
	const char *s = textbuf_str(&v);
	bool first = true;

	while (*s == ' ')
		s++;
	while (*s != '\0') {
		size_t word = strcspn(s, " ");
		if (!first && col > 0 && col + 1 + word > FOLD_AT) {
			textbuf_printf(out, "\r\n%s", indent);
			col = strlen(indent);
		} else if (col > 0) {
			textbuf_putc(out, ' ');
			col++;
		}
		first = false;
		while (col + word > HARD_FOLD) {
			size_t take = HARD_FOLD - col;
			textbuf_append(out, s, take);
			textbuf_printf(out, "\r\n%s", indent);
			col = strlen(indent);
			s += take;
			word -= take;
		}
		textbuf_append(out, s, word);
		col += word;
		s += word;
		s += strspn(s, " ");
	}
	textbuf_puts(out, "\r\n");
	textbuf_free(&v);
}

/* Appends "Name: value" CRLF, folded at spaces (and, for a word too long
 * for one line, anywhere). */
static void put_field(struct textbuf *out, const char *name, const char *value)
{
	textbuf_printf(out, "%s:", name);
	put_words(out, value, strlen(name) + 1, " ");
}

static void put_fieldf(struct textbuf *out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put_fieldf(struct textbuf *out, const char *name, const char *fmt, ...)
{
	struct textbuf v = TEXTBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	textbuf_vprintf(&v, fmt, ap);
	va_end(ap);
	put_field(out, name, textbuf_str(&v));
	textbuf_free(&v);
}

/* RFC 5322 3.3 in UTC. */
static void format_date(int64_t when, char *buf, size_t size)
{
	if (message_date_format(when, 0, buf, size) < 0)
		snprintf(buf, size, "Thu, 1 Jan 1970 00:00:00 +0000");
}

static void put_date(struct textbuf *out, const char *name, int64_t when)
{
	char date[64];
	format_date(when, date, sizeof(date));
	put_field(out, name, date);
}

/* "d.d.d" with 1-3 digits after the class (RFC 3463). */
static bool valid_status(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(s, "0123456789");
		if (n < 1 || n > 3)
			return false;
		s += n;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

static bool is_bchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       strchr("'()+_,-./:=?", c) != NULL;
}

/* ---- the notification ---- */

static const char *subject_of(enum dsn_kind kind)
{
	switch (kind) {
	case DSN_DELAY:
		return "Delayed Mail (still being retried)";
	case DSN_SUCCESS:
		return "Successful Mail Delivery Report";
	case DSN_FAILURE:
		break;
	}
	return "Undelivered Mail Returned to Sender";
}

static const char *action_of(enum dsn_kind kind)
{
	return kind == DSN_DELAY ? "delayed" : kind == DSN_SUCCESS ? "delivered" : "failed";
}

static const char *default_status(enum dsn_kind kind)
{
	return kind == DSN_DELAY ? "4.0.0" : kind == DSN_SUCCESS ? "2.0.0" : "5.0.0";
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* A plain-text paragraph line, sanitised and wrapped at spaces with the
 * given indent on continuation lines. */
static void put_text(struct textbuf *out, const char *text, const char *indent)
{
	put_words(out, text, 0, indent);
}

static void put_human_part(const struct dsn_report *r, struct textbuf *out)
{
	const char *host = or_empty(r->reporting_mta);

	textbuf_puts(out, "Content-Description: Notification\r\n"
			  "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	if (r->kind == DSN_DELAY)
		textbuf_puts(
		    out,
		    "####################################################################\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
		    "####################################################################\r\n\r\n");
	struct textbuf intro = TEXTBUF_INIT;
	textbuf_printf(&intro, "This is the mail system at host %s.", host);
	put_text(out, textbuf_str(&intro), "");
	textbuf_free(&intro);
	textbuf_puts(out, "\r\n");
	switch (r->kind) {
	case DSN_FAILURE:
		textbuf_puts(out,
			     "I'm sorry to have to inform you that your message could not\r\n"
			     "be delivered to one or more recipients. It's attached below.\r\n\r\n"
			     "For further assistance, please send mail to postmaster.\r\n\r\n"
			     "If you do so, please include this problem report. You can\r\n"
			     "delete your own text from the attached returned message.\r\n");
		break;
	case DSN_DELAY:
		textbuf_puts(out, "Your message could not be delivered yet to one or more\r\n"
				  "recipients listed below. The mail system will keep trying,\r\n"
				  "and will tell you if it finally gives up.\r\n");
		break;
	case DSN_SUCCESS:
		textbuf_puts(out,
			     "Your message was successfully delivered to the destination(s)\r\n"
			     "listed below. If the message was delivered to a mailbox you will\r\n"
			     "receive no further notifications. Otherwise you may still receive\r\n"
			     "notifications of mail delivery errors from other systems.\r\n");
		break;
	}
	textbuf_puts(out, "\r\n                   The mail system\r\n");
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		struct textbuf line = TEXTBUF_INIT;
		textbuf_printf(&line, "<%s>: ", or_empty(rc->address));
		const char *said = rc->remote_said != NULL ? rc->remote_said : rc->remote_mta;
		if (said != NULL && said[0] != '\0' && rc->diagnostic != NULL)
			textbuf_printf(&line, "host %s said: %s", said, rc->diagnostic);
		else if (rc->diagnostic != NULL)
			textbuf_puts(&line, rc->diagnostic);
		else
			textbuf_printf(&line, "%s (status %s)",
				       r->kind == DSN_SUCCESS ? "delivered" : "not delivered",
				       valid_status(rc->status) ? rc->status
								: default_status(r->kind));
		if (r->kind == DSN_DELAY && rc->will_retry_until > 0) {
			char date[64];
			format_date(rc->will_retry_until, date, sizeof(date));
			textbuf_printf(&line, " (will be retried until %s)", date);
		}
		textbuf_puts(out, "\r\n");
		put_text(out, textbuf_str(&line), "    ");
		textbuf_free(&line);
	}
}

static void put_orcpt(struct textbuf *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	if (semi == NULL)
		return;
	struct textbuf v = TEXTBUF_INIT;
	size_t type_len = (size_t)(semi - orcpt);
	while (type_len > 0 && orcpt[type_len - 1] == ' ')
		type_len--;
	textbuf_append(&v, orcpt, type_len);
	textbuf_puts(&v, "; ");
	const char *addr = semi + 1;
	while (*addr == ' ')
		addr++;
	/* RFC 3461 4 xtext: "+XX" is the byte 0xXX */
	hex_unescape(addr, strlen(addr), '+', &v);
	put_field(out, "Original-Recipient", textbuf_str(&v));
	textbuf_free(&v);
}

static void put_status_part(const struct dsn_report *r, struct textbuf *out)
{
	textbuf_puts(out, "Content-Description: Delivery report\r\n"
			  "Content-Type: message/delivery-status\r\n\r\n");
	put_fieldf(out, "Reporting-MTA", "dns; %s", or_empty(r->reporting_mta));
	if (r->queue_id != NULL)
		put_field(out, "X-Clustermail-Queue-ID", r->queue_id);
	put_fieldf(out, "X-Clustermail-Sender", "rfc822; %s", or_empty(r->to));
	if (r->envid != NULL && r->envid[0] != '\0') {
		struct textbuf v = TEXTBUF_INIT;
		hex_unescape(r->envid, strlen(r->envid), '+', &v);
		put_field(out, "Original-Envelope-Id", textbuf_str(&v));
		textbuf_free(&v);
	}
	if (r->received_from_mta != NULL && r->received_from_mta[0] != '\0')
		put_fieldf(out, "Received-From-MTA", "dns; %s", r->received_from_mta);
	if (r->arrival > 0)
		put_date(out, "Arrival-Date", r->arrival);

	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		textbuf_puts(out, "\r\n");
		if (rc->orcpt != NULL && rc->orcpt[0] != '\0')
			put_orcpt(out, rc->orcpt);
		put_fieldf(out, "Final-Recipient", "rfc822; %s", or_empty(rc->address));
		put_field(out, "Action", r->kind == DSN_SUCCESS && rc->relayed ? "relayed" : action_of(r->kind));
		put_field(out, "Status",
			  valid_status(rc->status) ? rc->status : default_status(r->kind));
		if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0')
			put_fieldf(out, "Remote-MTA", "dns; %s", rc->remote_mta);
		if (rc->diagnostic != NULL && rc->diagnostic[0] != '\0') {
			const char *d = rc->diagnostic;
			bool smtp = strspn(d, "0123456789") == 3 && (d[3] == ' ' || d[3] == '\0');
			put_fieldf(out, "Diagnostic-Code", "%s; %s",
				   smtp ? "smtp" : "X-Clustermail", d);
		}
		if (rc->last_attempt > 0)
			put_date(out, "Last-Attempt-Date", rc->last_attempt);
		if (r->kind == DSN_DELAY && rc->will_retry_until > 0)
			put_date(out, "Will-Retry-Until", rc->will_retry_until);
	}
}

static void make_boundary(struct dsn_writer *w, const struct dsn_report *r)
{
	char raw[256];
	unsigned n = atomic_fetch_add(&boundary_counter, 1);
	snprintf(raw, sizeof(raw), "%s.%lld.%u/%s", or_empty(r->queue_id), (long long)r->now, n,
		 or_empty(r->reporting_mta));
	size_t len = 0;
	for (const char *p = raw; *p != '\0' && len < BOUNDARY_MAX; p++)
		w->boundary[len++] = is_bchar(*p) ? *p : '_';
	w->boundary[len] = '\0';
	w->marker_len = (size_t)snprintf(w->marker, sizeof(w->marker), "--%s", w->boundary);
}

struct dsn_writer *dsn_begin(const struct dsn_report *r, struct textbuf *out)
{
	struct dsn_writer *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	make_boundary(w, r);
	w->headers_only = r->headers_only;
	w->max = r->max_original;
	w->ends_with_lf = true;
	w->in_header = true;

	const char *host = or_empty(r->reporting_mta);
	if (r->from != NULL && r->from[0] != '\0')
		put_fieldf(out, "From", "\"Mail Delivery System\" <%s>", r->from);
	else
		put_fieldf(out, "From", "\"Mail Delivery System\" <MAILER-DAEMON@%s>", host);
	put_fieldf(out, "To", "<%s>", or_empty(r->to));
	put_field(out, "Subject", subject_of(r->kind));
	put_date(out, "Date", r->now);
	{
		char date[32];
		time_t t = (time_t)r->now;
		struct tm tm;
		if (gmtime_r(&t, &tm) != NULL)
			snprintf(date, sizeof(date), "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		else
			snprintf(date, sizeof(date), "0");
		const char *domain = r->message_id_domain ? r->message_id_domain : host;
		struct textbuf id = TEXTBUF_INIT;
		textbuf_printf(&id, "<%s.%s.%u@%s>", date, or_empty(r->queue_id),
			       atomic_fetch_add(&boundary_counter, 1), domain);
		/* a Message-ID has no spaces: sanitize, then drop them */
		struct textbuf clean = TEXTBUF_INIT;
		sanitize(textbuf_str(&id), &clean);
		for (size_t i = 0; i < clean.len; i++)
			if (clean.data[i] == ' ')
				clean.data[i] = '_';
		put_field(out, "Message-ID", textbuf_str(&clean));
		textbuf_free(&id);
		textbuf_free(&clean);
	}
	put_field(out, "Auto-Submitted", "auto-replied");
	put_field(out, "MIME-Version", "1.0");
	textbuf_printf(out,
		       "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		       "\tboundary=\"%s\"\r\n\r\n",
		       w->boundary);
	textbuf_puts(out, "This is a MIME-encapsulated message.\r\n\r\n");

	textbuf_printf(out, "%s\r\n", w->marker);
	put_human_part(r, out);
	textbuf_printf(out, "\r\n%s\r\n", w->marker);
	put_status_part(r, out);
	textbuf_printf(out, "\r\n%s\r\n", w->marker);
	if (r->headers_only)
		textbuf_puts(out, "Content-Description: Undelivered Message Headers\r\n"
				  "Content-Type: text/rfc822-headers\r\n\r\n");
	else
		textbuf_puts(out, "Content-Description: Undelivered Message\r\n"
				  "Content-Type: message/rfc822\r\n\r\n");
	return w;
}

/* ---- the original ---- */

static void emit(struct dsn_writer *w, const char *data, size_t len, struct textbuf *out)
{
	if (len == 0)
		return;
	bool bare_lf = data[len - 1] == '\n' &&
		       (len >= 2 ? data[len - 2] != '\r' : !w->ends_with_cr);
	textbuf_append(out, data, bare_lf ? len - 1 : len);
	if (bare_lf)
		textbuf_puts(out, "\r\n");
	w->emitted += len;
	w->ends_with_lf = data[len - 1] == '\n';
	w->ends_with_cr = data[len - 1] == '\r';
}

/* The held bytes: a whole line (complete) or a piece of a long one. */
static void release_hold(struct dsn_writer *w, bool complete, struct textbuf *out)
{
	const char *p = w->hold;
	size_t len = w->hold_len;
	w->hold_len = 0;
	if (w->stopped)
		return;
	bool line_start = !w->mid_line;
	bool empty = complete && line_start &&
		     ((len == 1 && p[0] == '\n') || (len == 2 && p[0] == '\r' && p[1] == '\n'));
	if (empty && w->headers_only) {
		w->stopped = true; /* the end of the header */
		return;
	}
	if (w->emitted + len > w->max) {
		w->stopped = true;
		if (!line_start)
			textbuf_puts(out, "\r\n"); /* a long line is cut: end it */
		w->ends_with_lf = true;
		return;
	}
	if (line_start && len >= w->marker_len && memcmp(p, w->marker, w->marker_len) == 0)
		textbuf_putc(out, ' ');
	emit(w, p, len, out);
	w->mid_line = !complete;
	if (empty)
		w->in_header = false;
}

void dsn_original(struct dsn_writer *w, const void *data, size_t len, struct textbuf *out)
{
	const char *p = data;
	while (len > 0 && !w->stopped) {
		const char *lf = memchr(p, '\n', len);
		size_t take = lf != NULL ? (size_t)(lf - p) + 1 : len;
		size_t room = sizeof(w->hold) - w->hold_len;
		bool complete = lf != NULL && take <= room;
		if (take > room)
			take = room;
		memcpy(w->hold + w->hold_len, p, take);
		w->hold_len += take;
		p += take;
		len -= take;
		if (complete || w->hold_len == sizeof(w->hold))
			release_hold(w, complete, out);
	}
}

void dsn_end(struct dsn_writer **wp, struct textbuf *out)
{
	struct dsn_writer *w = *wp;
	if (w == NULL)
		return;
	if (w->hold_len > 0)
		release_hold(w, true, out);
	if (!w->ends_with_lf)
		textbuf_puts(out, "\r\n");
	/* A message cut inside its header still gets the empty line that
	 * ends one, so that message/rfc822 holds a well-formed message. */
	if (!w->headers_only && w->in_header && w->emitted > 0)
		textbuf_puts(out, "\r\n");
	textbuf_printf(out, "\r\n%s--\r\n", w->marker);
	free(w);
	*wp = NULL;
}

bool dsn_orcpt_for(const char *address, char *out, size_t size)
{
	struct textbuf x = TEXTBUF_INIT;
	textbuf_puts(&x, "rfc822;");
	hex_xtext_encode(address, &x);
	bool fits = x.len < size;
	snprintf(out, size, "%s", fits ? textbuf_str(&x) : "");
	textbuf_free(&x);
	return fits;
}
