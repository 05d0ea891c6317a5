#include "lib/hex.h"

int hex_digit_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void hex_unescape(const void *in, size_t len, char esc, struct textbuf *out)
{
	const unsigned char *s = in;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == (unsigned char)esc && i + 2 < len &&
		    (hi = hex_digit_value(s[i + 1])) >= 0 &&
		    (lo = hex_digit_value(s[i + 2])) >= 0) {
			textbuf_putc(out, (char)(hi * 16 + lo));
			i += 2;
		} else {
			textbuf_putc(out, (char)s[i]);
		}
	}
}

static bool xtext_literal(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '+' && c != '=';
}

void hex_xtext_encode(const char *s, struct textbuf *out)
{
	static const char digits[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (xtext_literal(*p)) {
			textbuf_putc(out, (char)*p);
		} else {
			char e[3] = {'+', digits[*p >> 4], digits[*p & 15]};
			textbuf_append(out, e, 3);
		}
	}
}

static bool xtext_hex(unsigned char c, bool any_case)
{
	return hex_digit_value(c) >= 0 && (any_case || !(c >= 'a' && c <= 'f'));
}

bool hex_xtext_valid(const char *s, bool any_case)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '+') {
			if (!xtext_hex(p[1], any_case) || !xtext_hex(p[2], any_case))
				return false;
			p += 2;
		} else if (!xtext_literal(*p)) {
			return false;
		}
	}
	return true;
}
