/*
 * libFuzzer harness for lib/message_cache.c's decoder: a cache record from
 * shared storage may be anything. Each input is decoded as is (almost
 * always a checksum failure) and again with a valid checksum appended, so
 * the fuzzer reaches the structural checks. Whatever decodes must
 * re-encode to the same bytes and render without fault.
 * Seeds: tests/fuzz/corpus/message_cache/ (records without their 8-byte
 * checksum; the harness appends it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_cache.h"
#include "lib/message_imap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static void exercise(const struct message_result *r, const uint8_t *record, size_t len)
{
	struct textbuf again = TEXTBUF_INIT, out = TEXTBUF_INIT;
	message_cache_encode(r, &again);
	CHECK(again.len == len && memcmp(again.data, record, len) == 0);
	message_imap_bodystructure(r, &r->parts[0], true, &out);
	message_imap_bodystructure(r, &r->parts[0], false, &out);
	for (uint32_t i = 0; i < r->part_count; i++) {
		const struct message_part *p = &r->parts[i];
		if (p->envelope != NULL)
			message_imap_envelope(p->envelope, &out);
		(void)message_part_header_get(p, "subject", 0, &out);
		(void)message_part_message(r, p);
	}
	const struct message_part *p;
	const char *error;
	static const char *const sections[] = {"1", "1.1", "2", "1.2.1", "3.1"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		(void)message_result_find_section(r, sections[i], &p, &error);
	textbuf_free(&again);
	textbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_result *r = NULL;
	const char *error = NULL;

	if (message_cache_decode(data, size, &r, &error) == 0) {
		exercise(r, data, size);
		message_result_free(&r);
	} else {
		CHECK(error != NULL && r == NULL);
	}

	uint8_t *sealed = malloc(size + 8);
	if (sealed == NULL)
		return 0;
	if (size > 0)
		memcpy(sealed, data, size);
	uint64_t sum = message_cache_checksum(data, size);
	for (int i = 0; i < 8; i++)
		sealed[size + i] = (uint8_t)(sum >> (8 * i));
	if (message_cache_decode(sealed, size + 8, &r, &error) == 0) {
		exercise(r, sealed, size + 8);
		message_result_free(&r);
	}
	free(sealed);
	return 0;
}
