#include "lib/rfc2047.h"

#include <string.h>
#include <strings.h>

#include "lib/hex.h"
#include "lib/message_charset.h"
#include "lib/rfc822_header.h"

/* The longest charset name we accept in a word; real ones are < 20. */
#define CHARSET_NAME_MAX 64
/* The longest encoded word we accept. RFC 2047 2 says 75; some mailers
 * write longer ones. The cap keeps a run of "=?" without "?=" linear. */
#define WORD_MAX 1000

struct encoded_word {
	const unsigned char *charset;
	size_t charset_len;
	char encoding; /* 'B' or 'Q' */
	const unsigned char *text;
	size_t text_len;
	size_t total_len; /* of the whole "=?...?=" */
};

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Parses an encoded word at s (which starts with "=?"). 0 or -1. */
static int word_parse(const unsigned char *s, size_t len, struct encoded_word *w)
{
	size_t i = 2;
	if (len > WORD_MAX)
		len = WORD_MAX;
	w->charset = s + i;
	while (i < len && s[i] != '?' && s[i] > ' ' && s[i] < 0x7f)
		i++;
	if (i >= len || s[i] != '?')
		return -1;
	w->charset_len = (size_t)(s + i - w->charset);
	/* RFC 2231 language suffix: charset*lang */
	const unsigned char *star = memchr(w->charset, '*', w->charset_len);
	if (star != NULL)
		w->charset_len = (size_t)(star - w->charset);
	if (w->charset_len == 0 || w->charset_len > CHARSET_NAME_MAX)
		return -1;
	i++;
	if (i + 1 >= len || s[i + 1] != '?')
		return -1;
	w->encoding = (char)(s[i] & ~0x20);
	if (w->encoding != 'B' && w->encoding != 'Q')
		return -1;
	i += 2;
	w->text = s + i;
	while (i + 1 < len && !(s[i] == '?' && s[i + 1] == '=')) {
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return -1;
		i++;
	}
	if (i + 1 >= len)
		return -1;
	w->text_len = (size_t)(s + i - w->text);
	w->total_len = i + 2;
	return 0;
}

static void word_decode(const struct encoded_word *w, struct textbuf *out)
{
	if (w->encoding == 'Q') {
		for (size_t i = 0; i < w->text_len; i++) {
			unsigned char c = w->text[i];
			int hi, lo;
			if (c == '_') {
				textbuf_putc(out, ' ');
			} else if (c == '=' && i + 2 < w->text_len &&
				   (hi = hex_digit_value(w->text[i + 1])) >= 0 &&
				   (lo = hex_digit_value(w->text[i + 2])) >= 0) {
				textbuf_putc(out, (char)(hi * 16 + lo));
				i += 2;
			} else {
				textbuf_putc(out, (char)c);
			}
		}
		return;
	}
	unsigned int acc = 0, bits = 0;
	for (size_t i = 0; i < w->text_len; i++) {
		int v = b64val(w->text[i]);
		if (v < 0)
			continue; /* '=' padding and junk */
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			textbuf_putc(out, (char)((acc >> bits) & 0xFF));
		}
	}
}

struct pending {
	struct textbuf bytes;
	const unsigned char *charset;
	size_t charset_len;
};

static void pending_flush(struct pending *pd, struct textbuf *out)
{
	if (pd->charset == NULL)
		return;
	message_charset_to_utf8((const char *)pd->charset, pd->charset_len, pd->bytes.data,
				pd->bytes.len, out);
	textbuf_truncate(&pd->bytes, 0);
	pd->charset = NULL;
}

void rfc2047_decode(const void *in, size_t len, struct textbuf *out)
{
	const unsigned char *s = in, *end = s + len;
	struct pending pd = {TEXTBUF_INIT, NULL, 0};
	/* Whitespace seen after a decoded word, held back in case another
	 * word follows (then it is dropped). */
	const unsigned char *held = NULL;
	size_t held_len = 0;

	while (s < end) {
		const unsigned char *q = s;
		while (q + 1 < end && !(q[0] == '=' && q[1] == '?'))
			q++;
		if (q + 1 >= end)
			q = end;
		/* Plain text before the next candidate word. */
		if (q > s) {
			bool all_ws = true;
			for (const unsigned char *t = s; t < q; t++) {
				if (!rfc822_is_wsp(*t) && *t != '\r' && *t != '\n') {
					all_ws = false;
					break;
				}
			}
			if (all_ws && pd.charset != NULL && q < end) {
				held = s;
				held_len = (size_t)(q - s);
			} else {
				pending_flush(&pd, out);
				if (held != NULL)
					textbuf_append(out, held, held_len);
				held = NULL;
				textbuf_append(out, s, (size_t)(q - s));
			}
			s = q;
			if (s >= end)
				break;
		}
		struct encoded_word w;
		if (word_parse(s, (size_t)(end - s), &w) < 0 ||
		    !message_charset_known((const char *)w.charset, w.charset_len)) {
			pending_flush(&pd, out);
			if (held != NULL)
				textbuf_append(out, held, held_len);
			held = NULL;
			/* Copy "=?" and go on scanning after it. */
			textbuf_append(out, s, 2);
			s += 2;
			continue;
		}
		held = NULL; /* whitespace between two words is dropped */
		if (pd.charset != NULL &&
		    !(pd.charset_len == w.charset_len &&
		      strncasecmp((const char *)pd.charset, (const char *)w.charset,
				  w.charset_len) == 0))
			pending_flush(&pd, out);
		if (pd.charset == NULL) {
			pd.charset = w.charset;
			pd.charset_len = w.charset_len;
		}
		word_decode(&w, &pd.bytes);
		s += w.total_len;
	}
	pending_flush(&pd, out);
	if (held != NULL)
		textbuf_append(out, held, held_len);
	textbuf_free(&pd.bytes);
}
