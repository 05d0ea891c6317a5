/*
 * Control wire format: encoder and push decoder (see control_wire.h).
 * Limits are checked on each prefix as soon as its four bytes are in, so a
 * peer announcing too much is refused before it sends it; memory grows
 * only with bytes actually received (doubling, capped at the announced
 * length), so the decoder holds at most about limits.max_total plus one
 * pointer and one length per item.
 */
#include "lib/control_wire.h"

#include <stdlib.h>
#include <string.h>

void control_wire_decoder_init(struct control_wire_decoder *d, const struct control_wire_limits *limits)
{
	memset(d, 0, sizeof(*d));
	d->limits = *limits;
	d->state = CONTROL_WIRE_COUNT;
}

static enum control_wire_result fail(struct control_wire_decoder *d, const char *why)
{
	d->error = why;
	return CONTROL_WIRE_ERROR;
}

/* Makes room for item n (and the NULL after the last one). */
static int grow_slots(struct control_wire_decoder *d)
{
	size_t need = (size_t)d->n + 2;
	if (need > (size_t)d->count + 1)
		need = (size_t)d->count + 1;
	if (need <= d->slots)
		return 0;
	size_t slots = d->slots == 0 ? 8 : d->slots * 2;
	if (slots > (size_t)d->count + 1)
		slots = (size_t)d->count + 1;
	char **items = realloc(d->items, slots * sizeof(*items));
	if (items == NULL)
		return -1;
	d->items = items;
	size_t *lens = realloc(d->lens, slots * sizeof(*lens));
	if (lens == NULL)
		return -1;
	d->lens = lens;
	for (size_t i = d->slots; i < slots; i++) {
		d->items[i] = NULL;
		d->lens[i] = 0;
	}
	d->slots = slots;
	return 0;
}

/* Makes room for got + more bytes (and a NUL) in the current item. */
static int grow_item(struct control_wire_decoder *d, size_t more)
{
	size_t need = (size_t)d->got + more + 1;
	if (need <= d->cap)
		return 0;
	size_t cap = d->cap < 64 ? 64 : d->cap * 2;
	if (cap < need)
		cap = need;
	if (cap > (size_t)d->want + 1)
		cap = (size_t)d->want + 1;
	char *p = realloc(d->items[d->n], cap);
	if (p == NULL)
		return -1;
	d->items[d->n] = p;
	d->cap = cap;
	return 0;
}

static uint32_t prefix_value(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The current item is complete: terminate it and go on. 0 or -1 (memory). */
static int item_done(struct control_wire_decoder *d)
{
	if (d->items[d->n] == NULL) /* an empty item: nothing was allocated yet */
		d->items[d->n] = calloc(1, 1);
	if (d->items[d->n] == NULL)
		return -1;
	d->items[d->n][d->got] = '\0';
	d->lens[d->n] = d->got;
	d->n++;
	d->got = d->want = 0;
	d->cap = 0;
	d->state = d->n == d->count ? CONTROL_WIRE_END : CONTROL_WIRE_LENGTH;
	return 0;
}

enum control_wire_result control_wire_decode(struct control_wire_decoder *d, const void *data,
					     size_t size, size_t *used_r)
{
	const unsigned char *p = data;
	size_t off = 0;

	*used_r = 0;
	if (d->error != NULL)
		return CONTROL_WIRE_ERROR;
	while (d->state != CONTROL_WIRE_END) {
		if (d->state == CONTROL_WIRE_DATA) {
			size_t take = d->want - d->got;
			if (take > size - off)
				take = size - off;
			if (take == 0)
				break;
			if (d->limits.refuse_nul && memchr(p + off, '\0', take) != NULL)
				return fail(d, "NUL byte in an argument");
			if (grow_item(d, take) < 0)
				return fail(d, "out of memory");
			memcpy(d->items[d->n] + d->got, p + off, take);
			d->got += (uint32_t)take;
			d->total += take;
			off += take;
			*used_r = off;
			if (d->got == d->want && item_done(d) < 0)
				return fail(d, "out of memory");
			continue;
		}
		/* COUNT or LENGTH: a four-byte prefix */
		if (off == size)
			break;
		d->prefix[d->prefix_len++] = p[off++];
		d->total++;
		*used_r = off;
		if (d->total > d->limits.max_total)
			return fail(d, "message too large");
		if (d->prefix_len < 4)
			continue;
		d->prefix_len = 0;
		uint32_t v = prefix_value(d->prefix);
		if (d->state == CONTROL_WIRE_COUNT) {
			if (v > d->limits.max_items)
				return fail(d, "too many arguments");
			d->count = v;
			d->state = v == 0 ? CONTROL_WIRE_END : CONTROL_WIRE_LENGTH;
			if (grow_slots(d) < 0)
				return fail(d, "out of memory");
			continue;
		}
		if (v > d->limits.max_item)
			return fail(d, "argument too long");
		if (v > d->limits.max_total - d->total)
			return fail(d, "message too large");
		if (grow_slots(d) < 0)
			return fail(d, "out of memory");
		d->want = v;
		d->got = 0;
		if (v == 0) {
			if (item_done(d) < 0)
				return fail(d, "out of memory");
		} else
			d->state = CONTROL_WIRE_DATA;
	}
	if (d->state != CONTROL_WIRE_END)
		return CONTROL_WIRE_NEED_MORE;
	d->items[d->count] = NULL;
	return CONTROL_WIRE_DONE;
}

void control_wire_decoder_free(struct control_wire_decoder *d)
{
	for (size_t i = 0; i < d->slots; i++) {
		if (d->items[i] == NULL)
			continue;
		/* the item being read has got bytes; finished ones lens + NUL */
		size_t len = i == d->n && d->state == CONTROL_WIRE_DATA ? d->got : d->lens[i] + 1;
		explicit_bzero(d->items[i], len);
		free(d->items[i]);
	}
	free(d->items);
	free(d->lens);
	d->items = NULL;
	d->lens = NULL;
	d->slots = 0;
}

static void put_u32(struct textbuf *buf, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 8), (unsigned char)v };
	textbuf_append(buf, b, sizeof(b));
}

void control_wire_encode(struct textbuf *buf, uint32_t count, const char *const *items,
			 const size_t *lens)
{
	put_u32(buf, count);
	for (uint32_t i = 0; i < count; i++) {
		size_t len = lens != NULL ? lens[i] : strlen(items[i]);
		put_u32(buf, (uint32_t)len);
		textbuf_append(buf, items[i], len);
	}
}
