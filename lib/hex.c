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
