/*
 * base64: strict RFC 4648 encoder and decoder (see lib/base64.h).
 * Table-driven; the decoder validates the whole input before it writes
 * the last group, so a rejected string never leaves a partial result that
 * looks complete.
 */
#include "lib/base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for everything else. */
#define B64_PAD 64
#define B64_BAD 255

static unsigned char base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned char)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == '=')
		return B64_PAD;
	return B64_BAD;
}

long base64_encode(const void *in, size_t len, char *out, size_t out_size)
{
	const unsigned char *p = in;
	size_t need = BASE64_ENCODED_LEN(len), o = 0;

	if (out_size < need + 1) {
		if (out_size > 0)
			out[0] = '\0';
		return -1;
	}
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t rest = len - i;
		if (rest > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (rest > 2)
			v |= p[i + 2];
		out[o++] = base64_alphabet[(v >> 18) & 63];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = rest > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = rest > 2 ? base64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

static int base64_fail(const char **error_r, const char *why)
{
	if (error_r != NULL)
		*error_r = why;
	return -1;
}

int base64_decode(const char *in, size_t len, void *out, size_t out_size, size_t *out_len_r,
		  const char **error_r)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char *o = out;
	size_t n = 0;

	*out_len_r = 0;
	if (len % 4 != 0)
		return base64_fail(error_r, "base64 length is not a multiple of 4");
	for (size_t i = 0; i < len; i += 4) {
		unsigned char v[4];
		for (int k = 0; k < 4; k++) {
			v[k] = base64_value(p[i + k]);
			if (v[k] == B64_BAD)
				return base64_fail(error_r, "invalid base64 character");
		}
		bool last = i + 4 == len;
		/* Padding: only in the last group, only as its final one or
		 * two characters ("xx==" or "xxx="). */
		if (v[0] == B64_PAD || v[1] == B64_PAD || (v[2] == B64_PAD && v[3] != B64_PAD) ||
		    ((v[2] == B64_PAD || v[3] == B64_PAD) && !last))
			return base64_fail(error_r, "misplaced base64 padding");
		size_t bytes = v[2] == B64_PAD ? 1 : v[3] == B64_PAD ? 2 : 3;
		/* Canonical form: the bits the padding drops must be zero. */
		if ((bytes == 1 && (v[1] & 0x0f) != 0) || (bytes == 2 && (v[2] & 0x03) != 0))
			return base64_fail(error_r, "non-canonical base64 padding bits");
		if (bytes > out_size - n) /* n <= out_size always holds */
			return base64_fail(error_r, "decoded base64 does not fit the buffer");
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)(bytes > 1 ? v[2] : 0) << 6 |
			     (uint32_t)(bytes > 2 ? v[3] : 0);
		o[n++] = (unsigned char)(w >> 16);
		if (bytes > 1)
			o[n++] = (unsigned char)(w >> 8);
		if (bytes > 2)
			o[n++] = (unsigned char)w;
	}
	*out_len_r = n;
	return 0;
}
