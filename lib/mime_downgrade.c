/*
 * 8BITMIME downgrade (lib/mime_downgrade.h). The message parser gives
 * every part's header and body range; parts come in pre-order and their
 * ranges in file order, so the edits (header fields replaced, a header
 * field inserted, a body re-encoded) are met in increasing offset and the
 * output is written in one sweep: copy up to the next edit, write the
 * replacement, skip what it replaces.
 *
 * Quoted-printable keeps every hard line break as it is and never starts
 * a line (hard or soft-broken) with '-', so no line of a re-encoded part
 * can look like a MIME delimiter (a line that starts "--" plus an active
 * boundary): not even "--b=E9" for a boundary that holds "=E9", which a
 * hard line "--b\xe9" would become if its start were kept.
 */
#include "lib/mime_downgrade.h"

#include <stdint.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/message_charset.h"
#include "lib/message_parser.h"
#include "lib/rfc822_header.h"

#define QP_LINE_MAX 76	  /* RFC 2045 6.7 (5), the '=' of a soft break included */
#define EWORD_LINE_MAX 76 /* RFC 2047 2: a line holding encoded words */

struct downgrade {
	const unsigned char *data;
	size_t len;
	struct textbuf *out;
	size_t copied; /* data[0..copied) is in out, or replaced */
	struct mime_downgrade_stats st;
};

bool mime_has_8bit(const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

static void copy_to(struct downgrade *d, size_t pos)
{
	if (pos > d->copied) {
		textbuf_append(d->out, d->data + d->copied, pos - d->copied);
		d->copied = pos;
	}
}

/* The line break a range uses: that of its first line, else CRLF. */
static const char *eol_of(const unsigned char *p, size_t n)
{
	const unsigned char *lf = memchr(p, '\n', n);
	if (lf != NULL && (lf == p || lf[-1] != '\r'))
		return "\n";
	return "\r\n";
}

/* ---- quoted-printable ---- */

static void qp_encode(const unsigned char *p, size_t n, const char *eol, struct textbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '\n') {
			textbuf_putc(out, '\n');
			col = 0;
			continue;
		}
		if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			textbuf_puts(out, "\r\n");
			i++;
			col = 0;
			continue;
		}
		bool at_eol = i + 1 == n || p[i + 1] == '\n' ||
			      (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
		bool literal =
		    (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
		/* A '-' starting any line is encoded: no line of the result can
		 * then be taken for a boundary delimiter, not even one whose
		 * boundary holds "=XX" as the encoding writes it. */
		size_t width = literal && !(col == 0 && c == '-') ? 1 : 3;
		/* leave room for the '=' of a soft break, unless this ends the line */
		if (col + width > (at_eol ? QP_LINE_MAX : QP_LINE_MAX - 1)) {
			textbuf_putc(out, '=');
			textbuf_puts(out, eol);
			col = 0;
			width = literal && c != '-' ? 1 : 3;
		}
		if (width == 1) {
			textbuf_putc(out, (char)c);
		} else {
			char enc[3] = {'=', hex[c >> 4], hex[c & 15]};
			textbuf_append(out, enc, 3);
		}
		col += width;
	}
}

/* ---- header fields ---- */

/* The length of the name of the field at data[fs] whose colon is at
 * data[colon], without the blanks before the colon. */
static size_t field_name_len(const unsigned char *p, size_t fs, size_t colon)
{
	size_t n = colon - fs;
	while (n > 0 && (p[fs + n - 1] == ' ' || p[fs + n - 1] == '\t'))
		n--;
	return n;
}

/* The length of the line break that ends the field data[fs, fe): 2 for
 * CRLF, 1 for a bare LF, 0 for none (the end of the data). */
static size_t field_break_len(const unsigned char *p, size_t fs, size_t fe)
{
	if (fe == fs || p[fe - 1] != '\n')
		return 0;
	return fe - fs >= 2 && p[fe - 2] == '\r' ? 2 : 1;
}

static bool is_simple_field(const unsigned char *name, size_t len)
{
	static const char *const names[] = {"Subject", "Comments", "Content-Description"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (rfc822_name_equals(name, len, names[i]))
			return true;
	return false;
}

/* Appends name ":" and value as UTF-8 B-encoded words, each line at most
 * EWORD_LINE_MAX, words split only between characters. */
static void encode_words(const unsigned char *name, size_t name_len, const unsigned char *v,
			 size_t n, const char *eol, struct textbuf *out)
{
	textbuf_append(out, name, name_len);
	textbuf_putc(out, ':');
	size_t col = name_len + 1;
	bool first = true;
	while (n > 0) {
		/* "=?UTF-8?B?" + "?=" and the space before the word */
		long room = (long)EWORD_LINE_MAX - (long)col - 1 - 12;
		size_t max_bytes = room >= 4 ? (size_t)(room / 4) * 3 : 0;
		if (max_bytes == 0 && !first)
			max_bytes = 45; /* cannot happen after a fold: 76 - 13 = 63 */
		if (max_bytes == 0) {
			textbuf_puts(out, eol);
			col = 0;
			first = false;
			continue;
		}
		size_t take = n < max_bytes ? n : max_bytes;
		while (take < n && take > 0 && (v[take] & 0xc0) == 0x80)
			take--;
		if (take == 0) /* one character longer than the room: give it a line */
			take = n < 4 ? n : 4;
		char b64[BASE64_ENCODED_LEN(64) + 1];
		long blen = base64_encode(v, take, b64, sizeof(b64));
		if (!first) {
			textbuf_puts(out, eol);
			col = 0;
		}
		textbuf_printf(out, " =?UTF-8?B?%s?=", blen > 0 ? b64 : "");
		col += 13 + (size_t)(blen > 0 ? blen : 0);
		v += take;
		n -= take;
		first = false;
	}
}

/* Encodes the field data[fs, fe) if it is simple; false when left. */
static bool encode_field(struct downgrade *d, size_t fs, size_t fe, size_t colon)
{
	const unsigned char *p = d->data;
	size_t name_len = field_name_len(p, fs, colon);
	if (!is_simple_field(p + fs, name_len))
		return false;

	size_t term = field_break_len(p, fs, fe);
	struct textbuf value = TEXTBUF_INIT;
	for (size_t i = colon + 1; i < fe - term; i++)
		if (p[i] != '\r' && p[i] != '\n')
			textbuf_putc(&value, (char)p[i]);
	const unsigned char *v = (const unsigned char *)textbuf_str(&value);
	size_t vlen = value.len;
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	bool ok = message_charset_utf8_valid(v, vlen) && memmem(v, vlen, "=?", 2) == NULL &&
		  memchr(v, '\0', vlen) == NULL;
	if (ok) {
		copy_to(d, fs);
		encode_words(p + fs, name_len, v, vlen, term == 1 ? "\n" : "\r\n", d->out);
		textbuf_append(d->out, p + fe - term, term);
		d->copied = fe;
	}
	textbuf_free(&value);
	return ok;
}

/* Walks the header data[h, b) of a part: rewrites its
 * Content-Transfer-Encoding when reencode, encodes simple 8-bit fields,
 * and adds what is missing before the empty line. */
static void rewrite_header(struct downgrade *d, size_t h, size_t b, bool reencode, bool is_message)
{
	const unsigned char *p = d->data;
	const char *eol = eol_of(p + h, b - h);
	bool saw_cte = false, saw_mime_version = false;
	size_t insert_at = b;
	size_t pos = h;

	while (pos < b) {
		const unsigned char *lf = memchr(p + pos, '\n', b - pos);
		size_t line_end = lf ? (size_t)(lf - p) + 1 : b;
		size_t line_len = line_end - pos;
		if ((line_len == 1 && p[pos] == '\n') ||
		    (line_len == 2 && p[pos] == '\r' && p[pos + 1] == '\n')) {
			insert_at = pos; /* the empty line that ends the header */
			break;
		}
		/* the field: this line and its continuation lines */
		size_t fe = line_end;
		while (fe < b && (p[fe] == ' ' || p[fe] == '\t')) {
			const unsigned char *next = memchr(p + fe, '\n', b - fe);
			fe = next ? (size_t)(next - p) + 1 : b;
		}
		const unsigned char *colon = memchr(p + pos, ':', line_end - pos);
		if (colon != NULL && p[pos] != ' ' && p[pos] != '\t') {
			size_t name_len = field_name_len(p, pos, (size_t)(colon - p));
			if (rfc822_name_equals(p + pos, name_len, "Content-Transfer-Encoding")) {
				saw_cte = true;
				if (reencode) {
					size_t term = field_break_len(p, pos, fe);
					copy_to(d, pos);
					textbuf_puts(d->out,
						     "Content-Transfer-Encoding: quoted-printable");
					textbuf_append(d->out, p + fe - term, term);
					d->copied = fe;
					pos = fe;
					continue;
				}
			} else if (rfc822_name_equals(p + pos, name_len, "MIME-Version")) {
				saw_mime_version = true;
			}
		}
		if (mime_has_8bit(p + pos, fe - pos)) {
			if (colon != NULL && encode_field(d, pos, fe, (size_t)(colon - p)))
				d->st.fields_encoded++;
			else
				d->st.fields_left++;
		}
		pos = fe;
	}
	if (reencode && !saw_cte) {
		copy_to(d, insert_at);
		if (is_message && !saw_mime_version)
			textbuf_printf(d->out, "MIME-Version: 1.0%s", eol);
		textbuf_printf(d->out, "Content-Transfer-Encoding: quoted-printable%s", eol);
	}
}

static bool identity_encoding(const char *enc)
{
	return enc == NULL || strcmp(enc, "7bit") == 0 || strcmp(enc, "8bit") == 0 ||
	       strcmp(enc, "binary") == 0;
}

int mime_downgrade(const void *data, size_t len, struct textbuf *out,
		   struct mime_downgrade_stats *stats_r)
{
	struct downgrade d = {.data = data, .len = len, .out = out};
	size_t start = out->len;

	if (mime_has_8bit(data, len)) {
		struct message_result *res;
		message_parse(data, len, &res);
		for (uint32_t i = 0; i < res->part_count; i++) {
			const struct message_part *part = &res->parts[i];
			bool leaf = !(part->flags &
				      (MESSAGE_PART_FLAG_MULTIPART | MESSAGE_PART_FLAG_RFC822));
			bool reencode =
			    leaf && strcmp(part->type, "multipart") != 0 &&
			    strcmp(part->type, "message") != 0 &&
			    identity_encoding(part->encoding) &&
			    mime_has_8bit(d.data + part->body_offset, message_part_body_size(part));
			rewrite_header(&d, part->header_offset, part->body_offset, reencode,
				       (part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0);
			if (reencode) {
				const unsigned char *body = d.data + part->body_offset;
				size_t n = message_part_body_size(part);
				copy_to(&d, part->body_offset);
				qp_encode(body, n, eol_of(body, n), out);
				d.copied = part->body_end;
				d.st.parts_encoded++;
			}
		}
		message_result_free(&res);
	}
	copy_to(&d, len);
	if (stats_r != NULL)
		*stats_r = d.st;
	return mime_has_8bit(textbuf_str(out) + start, out->len - start) ? 1 : 0;
}
