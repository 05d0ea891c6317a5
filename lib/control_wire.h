/*
 * The control plane's wire format (node/control.h): a message is a list of
 * byte strings, each length-prefixed, so the receiver learns every size
 * from the bytes it has and can refuse a message before the rest arrives.
 *
 *   message := count:u32be item{count}
 *   item    := length:u32be bytes{length}
 *
 * A request's first item is CONTROL_PROTOCOL; a reply has three items
 * (exit code as decimal, stdout text, stderr text).
 *
 * The decoder is a push parser: feed it whatever bytes arrived; it copies
 * them into its items as they come (never allocating from an announced
 * length, only from bytes received) and checks the limits while it
 * parses, so what one peer can make it hold is bounded by the limits.
 * Pure code: no I/O, no libzmq.
 */
#ifndef CM_LIB_CONTROL_WIRE_H
#define CM_LIB_CONTROL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"

struct control_wire_limits {
	uint32_t max_items;  /* the count may not exceed this */
	uint32_t max_item;   /* bytes of one item */
	size_t max_total;    /* bytes of the whole message, prefixes included */
	bool refuse_nul;     /* items become C strings: a NUL byte is an error */
};

enum control_wire_result {
	CONTROL_WIRE_NEED_MORE = 0,
	CONTROL_WIRE_DONE = 1, /* a whole message: items/lens/count are set */
	CONTROL_WIRE_ERROR = -1,
};

struct control_wire_decoder {
	struct control_wire_limits limits;
	enum { CONTROL_WIRE_COUNT, CONTROL_WIRE_LENGTH, CONTROL_WIRE_DATA, CONTROL_WIRE_END } state;
	unsigned char prefix[4];
	unsigned prefix_len;
	uint32_t count;  /* items announced */
	uint32_t n;      /* items complete */
	uint32_t want;   /* length of the item being read */
	uint32_t got;    /* bytes of it read so far */
	size_t total;    /* bytes consumed */
	size_t cap;      /* allocated bytes of items[n] */
	size_t slots;    /* allocated entries of items and lens */
	char **items;    /* NUL-terminated copies; items[count] is NULL when DONE */
	size_t *lens;
	const char *error;
};

void control_wire_decoder_init(struct control_wire_decoder *d, const struct control_wire_limits *limits);
/* Consumes bytes from data (at most size; *used_r says how many) and
 * returns NEED_MORE (all of them consumed), DONE (a whole message: bytes
 * after it are not consumed) or ERROR (d->error says why; the decoder
 * stays in error). Feeding after DONE or ERROR returns the same again. */
enum control_wire_result control_wire_decode(struct control_wire_decoder *d, const void *data,
					     size_t size, size_t *used_r);
/* Frees the items (and wipes them: requests can carry secrets). The
 * decoder can be initialised again. */
void control_wire_decoder_free(struct control_wire_decoder *d);

/* Appends the count prefix, then each item (lens may be NULL for C strings). */
void control_wire_encode(struct textbuf *buf, uint32_t count, const char *const *items,
			 const size_t *lens);

#endif
