/*
 * libFuzzer harness for lib/message_parser.c and everything it calls
 * (header, MIME parameter, address, date parsers), plus the cache encoder
 * and decoder and the IMAP renderers on the parsed result. Beyond memory
 * safety it checks that chunked feeding gives the all-at-once result, that
 * offsets are nested and in range, and that decode(encode(x)) == x.
 * Seeds: tests/fuzz/corpus/message_parser/ (whole messages).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_cache.h"
#include "lib/message_imap.h"
#include "lib/message_parser.h"
#include "lib/rfc2047.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static void check_offsets(const struct message_result *r)
{
	CHECK(r->part_count >= 1 && r->part_count <= MESSAGE_PARTS_MAX);
	CHECK(r->parts[0].header_offset == 0 && r->parts[0].body_end == r->size);
	for (uint32_t i = 0; i < r->part_count; i++) {
		const struct message_part *p = &r->parts[i];
		CHECK(p->header_offset <= p->body_offset && p->body_offset <= p->body_end);
		CHECK(p->body_end <= r->size && p->depth <= MESSAGE_DEPTH_MAX);
		CHECK(p->body_lines <= p->body_end - p->body_offset);
		if (p->parent != MESSAGE_PART_NONE) {
			const struct message_part *parent = &r->parts[p->parent];
			CHECK(p->parent < i);
			CHECK(p->header_offset >= parent->body_offset &&
			      p->body_end <= parent->body_end);
		}
		if (p->next != MESSAGE_PART_NONE)
			CHECK(r->parts[p->next].header_offset >= p->body_end);
		for (uint32_t k = 0; k < p->field_count; k++) {
			const struct message_field *f = &p->fields[k];
			CHECK(f->offset >= p->header_offset &&
			      f->offset + f->size <= p->body_offset);
		}
	}
}

/* Walks every section number that exists and resolves it back. */
static void check_sections(const struct message_result *r)
{
	struct textbuf s = TEXTBUF_INIT;
	const struct message_part *p;
	const char *error;
	for (uint32_t n = 1; n <= 3; n++) {
		for (uint32_t m = 0; m <= 3; m++) {
			textbuf_truncate(&s, 0);
			if (m == 0)
				textbuf_printf(&s, "%u", n);
			else
				textbuf_printf(&s, "%u.%u", n, m);
			int ret = message_result_find_section(r, textbuf_str(&s), &p, &error);
			CHECK(ret == 0 || ret == 1);
			if (ret == 1)
				(void)message_part_message(r, p);
		}
	}
	textbuf_free(&s);
}

static void render(const struct message_result *r, struct textbuf *out)
{
	message_imap_bodystructure(r, &r->parts[0], true, out);
	message_imap_bodystructure(r, &r->parts[0], false, out);
	for (uint32_t i = 0; i < r->part_count; i++) {
		const struct message_part *p = &r->parts[i];
		if ((p->flags & MESSAGE_PART_FLAG_MESSAGE) != 0) {
			message_imap_envelope(p->envelope, out);
			if (p->envelope->raw[MESSAGE_ENV_SUBJECT] != NULL) {
				const char *subj = p->envelope->raw[MESSAGE_ENV_SUBJECT];
				rfc2047_decode(subj, strlen(subj), out);
			}
			struct textbuf v = TEXTBUF_INIT;
			(void)message_part_header_get(p, "received", 0, &v);
			(void)message_part_header_get(p, "content-type", 1, &v);
			textbuf_free(&v);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_result *whole, *chunked, *decoded = NULL;

	message_parse(data, size, &whole);
	check_offsets(whole);

	/* Uneven chunks, chosen from the input so a crash reproduces. */
	struct message_parser *p = message_parser_init();
	uint32_t seed = (uint32_t)size * 2654435761u;
	for (size_t off = 0; off < size;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 97;
		if (n > size - off)
			n = size - off;
		message_parser_feed(p, data + off, n);
		off += n;
	}
	message_parser_finish(&p, &chunked);
	CHECK(message_result_equal(whole, chunked));
	message_result_free(&chunked);

	struct textbuf cache = TEXTBUF_INIT, again = TEXTBUF_INIT, out = TEXTBUF_INIT;
	const char *error;
	message_cache_encode(whole, &cache);
	CHECK(message_cache_decode(cache.data, cache.len, &decoded, &error) == 0);
	CHECK(message_result_equal(whole, decoded));
	message_cache_encode(decoded, &again);
	CHECK(again.len == cache.len && memcmp(again.data, cache.data, cache.len) == 0);

	check_sections(whole);
	render(whole, &out);

	textbuf_free(&cache);
	textbuf_free(&again);
	textbuf_free(&out);
	message_result_free(&decoded);
	message_result_free(&whole);
	return 0;
}
