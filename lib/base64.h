/*
 * Base64 (RFC 4648 section 4, the standard alphabet with '=' padding) as
 * the mail protocols carry SASL exchanges in it (RFC 4954, RFC 3501,
 * RFC 5034). Pure: no I/O, no allocation; the caller owns every buffer.
 *
 * Security stance: decoding is strict, because the input comes from
 * unauthenticated clients and lax decoders let two different strings mean
 * the same bytes. Refused: a length that is not a multiple of 4, any
 * character outside the alphabet (whitespace, line breaks and NUL
 * included), padding anywhere but at the end or more than two '=',
 * non-zero bits in the last character before the padding (so every byte
 * string has exactly one accepted encoding), and output that would not fit
 * the caller's buffer (checked before anything is written past its end).
 * Engines bound the line length themselves before decoding.
 */
#ifndef CM_LIB_BASE64_H
#define CM_LIB_BASE64_H

#include <stddef.h>

/* Characters of the encoding of n bytes (no NUL). n must be below
 * SIZE_MAX / 4 * 3 - 2, which every caller's bounded input is. */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Upper bound of the bytes that len characters decode to. */
#define BASE64_DECODED_MAX(len) (((len) / 4) * 3)

/* Encodes in[0..len) into out followed by a NUL. Returns the encoded
 * length (BASE64_ENCODED_LEN(len)), or -1 when out_size is smaller than
 * that plus one (out is then left an empty string if out_size > 0). */
long base64_encode(const void *in, size_t len, char *out, size_t out_size);

/* Decodes in[0..len) (not NUL-terminated; "" decodes to zero bytes) into
 * out. Returns 0 with *out_len_r set, or -1 with *error_r set to a static
 * explanation and nothing promised about out's contents. */
int base64_decode(const char *in, size_t len, void *out, size_t out_size, size_t *out_len_r,
		  const char **error_r);

#endif
