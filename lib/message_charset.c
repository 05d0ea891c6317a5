#include "lib/message_charset.h"

#include <stdint.h>
#include <string.h>

#include "lib/rfc822_header.h"

enum charset_id { CS_UNKNOWN, CS_UTF8, CS_ASCII, CS_LATIN1, CS_LATIN9, CS_CP1252 };

static const struct {
	const char *name;
	enum charset_id id;
} charset_names[] = {
    {"utf-8", CS_UTF8},	       {"utf8", CS_UTF8},	    {"us-ascii", CS_ASCII},
    {"ascii", CS_ASCII},       {"iso-8859-1", CS_LATIN1},   {"iso8859-1", CS_LATIN1},
    {"latin1", CS_LATIN1},     {"iso_8859-1", CS_LATIN1},   {"iso-8859-15", CS_LATIN9},
    {"iso8859-15", CS_LATIN9}, {"windows-1252", CS_CP1252}, {"cp1252", CS_CP1252},
};

/* Windows-1252 0x80..0x9f; 0 marks the five unassigned positions. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0,	    0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,	    0x017D, 0,	    0,	    0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,	    0x017E, 0x0178,
};

static enum charset_id charset_lookup(const char *charset, size_t len)
{
	for (size_t i = 0; i < sizeof(charset_names) / sizeof(charset_names[0]); i++) {
		if (rfc822_name_equals(charset, len, charset_names[i].name))
			return charset_names[i].id;
	}
	return CS_UNKNOWN;
}

bool message_charset_known(const char *charset, size_t len)
{
	return charset_lookup(charset, len) != CS_UNKNOWN;
}

static void put_utf8(struct textbuf *out, uint32_t cp)
{
	char b[4];
	if (cp < 0x80) {
		b[0] = (char)cp;
		textbuf_append(out, b, 1);
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3F));
		textbuf_append(out, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		textbuf_append(out, b, 3);
	} else {
		b[0] = (char)(0xF0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		textbuf_append(out, b, 4);
	}
}

#define REPLACEMENT 0xFFFD

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return c == 0 ? 0 : 1;
	size_t n;
	uint32_t min;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	uint32_t cp = c & (0x7F >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void message_charset_utf8_clean(const void *data, size_t len, struct textbuf *out)
{
	const unsigned char *s = data;
	size_t i = 0;
	while (i < len) {
		size_t run = i;
		while (run < len && s[run] >= 0x01 && s[run] < 0x80)
			run++;
		if (run > i) {
			textbuf_append(out, s + i, run - i);
			i = run;
			continue;
		}
		size_t n = utf8_seq_len(s + i, len - i);
		if (n == 0) {
			put_utf8(out, REPLACEMENT);
			i++;
		} else {
			textbuf_append(out, s + i, n);
			i += n;
		}
	}
}

bool message_charset_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static uint32_t latin9_map(unsigned char c)
{
	switch (c) {
	case 0xA4:
		return 0x20AC;
	case 0xA6:
		return 0x0160;
	case 0xA8:
		return 0x0161;
	case 0xB4:
		return 0x017D;
	case 0xB8:
		return 0x017E;
	case 0xBC:
		return 0x0152;
	case 0xBD:
		return 0x0153;
	case 0xBE:
		return 0x0178;
	default:
		return c;
	}
}

int message_charset_to_utf8(const char *charset, size_t charset_len, const void *in, size_t len,
			    struct textbuf *out)
{
	enum charset_id id = charset_lookup(charset, charset_len);
	const unsigned char *s = in;

	if (id == CS_UNKNOWN)
		return -1;
	if (id == CS_UTF8) {
		message_charset_utf8_clean(in, len, out);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		uint32_t cp = c;
		if (c == 0)
			cp = REPLACEMENT;
		else if (c >= 0x80) {
			if (id == CS_ASCII)
				cp = REPLACEMENT;
			else if (id == CS_LATIN9)
				cp = latin9_map(c);
			else if (id == CS_CP1252 && c < 0xA0)
				cp = cp1252_high[c - 0x80] ? cp1252_high[c - 0x80] : REPLACEMENT;
		}
		put_utf8(out, cp);
	}
	return 0;
}
