/*
 * libFuzzer harness for lib/control_wire.c: control requests come from any
 * peer that reaches the control socket (control.tcp has no authentication).
 * The input is decoded whole and again in pieces whose sizes come from its
 * first byte; both must agree, never exceed the limits, and a decoded
 * message must re-encode to exactly the bytes it consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/control_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct control_wire_limits limits = {
	.max_items = 64, .max_item = 1024, .max_total = 4096, .refuse_nul = true
};

static enum control_wire_result decode(struct control_wire_decoder *d, const uint8_t *in, size_t size,
				       size_t step, size_t *used_r)
{
	enum control_wire_result r = CONTROL_WIRE_NEED_MORE;
	size_t off = 0, used;

	control_wire_decoder_init(d, &limits);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		r = control_wire_decode(d, in + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (r != CONTROL_WIRE_NEED_MORE)
			break;
	}
	*used_r = off;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] % 16 + 1;
	/* Exact-size heap copy, so ASan sees any access past the end. */
	uint8_t *in = malloc(size - 1 > 0 ? size - 1 : 1);
	struct control_wire_decoder whole, pieces;
	size_t used_whole, used_pieces;

	if (in == NULL)
		abort();
	memcpy(in, data + 1, size - 1);
	enum control_wire_result a = decode(&whole, in, size - 1, size, &used_whole);
	enum control_wire_result b = decode(&pieces, in, size - 1, step, &used_pieces);
	/* an error may have counted the prefix byte that crossed a limit */
	if (a != b || (a != CONTROL_WIRE_ERROR && used_whole != used_pieces) ||
	    (a != CONTROL_WIRE_ERROR &&
	     (whole.total > limits.max_total || whole.count > limits.max_items)))
		abort();
	if (a == CONTROL_WIRE_DONE) {
		struct textbuf enc = TEXTBUF_INIT;
		control_wire_encode(&enc, whole.count, (const char *const *)whole.items, whole.lens);
		if (enc.len != used_whole || memcmp(enc.data, in, enc.len) != 0)
			abort();
		for (uint32_t i = 0; i < whole.count; i++)
			if (whole.lens[i] > limits.max_item || strcmp(whole.items[i], pieces.items[i]) != 0)
				abort();
		textbuf_free(&enc);
	}
	control_wire_decoder_free(&whole);
	control_wire_decoder_free(&pieces);
	free(in);
	return 0;
}
