/*
 * libFuzzer harness for the 8BITMIME downgrade: any bytes as a message.
 * Checks what the downgrade promises: a 0 return means no byte >= 0x80
 * in the output; the output parses to the same part tree (types, flags,
 * child counts); a part that was not re-encoded has the same body bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_parser.h"
#include "lib/mime_downgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	struct textbuf out = TEXTBUF_INIT;
	struct mime_downgrade_stats st;
	int rc = mime_downgrade(data, size, &out, &st);
	const char *o = textbuf_str(&out);
	if (rc == 0 && mime_has_8bit(o, out.len))
		abort();
	if (st.parts_encoded == 0 && st.fields_encoded == 0 &&
	    (out.len != size || memcmp(o, data, size) != 0))
		abort();

	struct message_result *a, *b;
	message_parse(data, size, &a);
	message_parse(o, out.len, &b);
	if (a->part_count != b->part_count)
		abort();
	for (uint32_t i = 0; i < a->part_count; i++) {
		const struct message_part *pa = &a->parts[i], *pb = &b->parts[i];
		if (strcmp(pa->type, pb->type) != 0 || strcmp(pa->subtype, pb->subtype) != 0 ||
		    pa->children != pb->children ||
		    (pa->flags & ~MESSAGE_PART_FLAG_FIELDS_TRUNCATED) !=
			(pb->flags & ~MESSAGE_PART_FLAG_FIELDS_TRUNCATED))
			abort();
		if (pa->flags & (MESSAGE_PART_FLAG_MULTIPART | MESSAGE_PART_FLAG_RFC822))
			continue;
		bool qp_now = pb->encoding != NULL && strcmp(pb->encoding, "quoted-printable") == 0;
		bool qp_before =
		    pa->encoding != NULL && strcmp(pa->encoding, "quoted-printable") == 0;
		if (qp_now && !qp_before)
			continue; /* re-encoded; the unit tests decode it */
		if (message_part_body_size(pa) != message_part_body_size(pb) ||
		    memcmp((const char *)data + pa->body_offset, o + pb->body_offset,
			   message_part_body_size(pa)) != 0)
			abort();
	}
	message_result_free(&a);
	message_result_free(&b);
	textbuf_free(&out);
	return 0;
}
