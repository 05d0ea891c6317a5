/*
 * libFuzzer harness for lib/base64.c: client SASL responses arrive in
 * base64. Decoding arbitrary bytes must never read or write out of bounds;
 * whatever decodes must re-encode to exactly the input (the decoder
 * accepts only the one canonical encoding); and encoding arbitrary bytes
 * must decode back to them, including into an exactly sized buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size heap copies, so ASan sees any access past the end. */
	char *in = malloc(size > 0 ? size : 1);
	size_t max = BASE64_DECODED_MAX(size);
	unsigned char *out = malloc(max > 0 ? max : 1);
	size_t enc_size = BASE64_ENCODED_LEN(size) + 1;
	char *enc = malloc(enc_size);
	size_t n;

	if (in == NULL || out == NULL || enc == NULL)
		abort();
	memcpy(in, data, size);
	if (base64_decode(in, size, out, max, &n, NULL) == 0) {
		if (n > max || base64_encode(out, n, enc, enc_size) != (long)size ||
		    memcmp(enc, in, size) != 0)
			abort();
	}
	/* The other direction: any bytes encode and decode back, exactly. */
	long e = base64_encode(in, size, enc, enc_size);
	unsigned char *back = malloc(size > 0 ? size : 1);
	if (back == NULL || e != (long)BASE64_ENCODED_LEN(size) ||
	    base64_decode(enc, (size_t)e, back, size, &n, NULL) != 0 || n != size ||
	    memcmp(back, in, size) != 0)
		abort();
	free(back);
	free(enc);
	free(out);
	free(in);
	return 0;
}
