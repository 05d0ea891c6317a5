/*
 * libFuzzer harness for storage/queue_envelope_decode.c: envelope files
 * live on a shared disk and carry network-supplied values, so decoding
 * arbitrary bytes must never read out of bounds, and whatever decodes
 * must re-encode to the very same bytes (the encoding is canonical) and
 * decode again to the same envelope. Each input is tried as it is and
 * sealed with a correct checksum line, so that mutations reach the
 * parser behind the CRC check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/textbuf.h"
#include "storage/queue.h"
#include "storage/store_crc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (strcmp(a->id, b->id) != 0 || strcmp(a->sender, b->sender) != 0 ||
	    strcmp(a->envid, b->envid) != 0 || strcmp(a->client, b->client) != 0 ||
	    a->ret != b->ret || a->body_8bit != b->body_8bit || a->smtputf8 != b->smtputf8 ||
	    a->hold != b->hold || a->delay_warned != b->delay_warned || a->arrival != b->arrival ||
	    a->next_attempt != b->next_attempt || a->attempts != b->attempts ||
	    a->size != b->size || a->nrcpt != b->nrcpt)
		abort();
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct queue_rcpt *r = &a->rcpts[i], *s = &b->rcpts[i];
		if (strcmp(r->address, s->address) != 0 || strcmp(r->orcpt, s->orcpt) != 0 ||
		    strcmp(r->status, s->status) != 0 ||
		    strcmp(r->remote_mta, s->remote_mta) != 0 ||
		    strcmp(r->reason, s->reason) != 0 || r->notify != s->notify ||
		    r->state != s->state || r->dsn_sent != s->dsn_sent ||
		    r->attempts != s->attempts)
			abort();
	}
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size > 0 ? size : 1);
	if (copy == NULL)
		return;
	memcpy(copy, data, size);
	struct queue_envelope env, again;
	const char *err = NULL;
	if (queue_envelope_decode(copy, size, &env, &err) == STORE_OK) {
		struct textbuf out = TEXTBUF_INIT;
		queue_envelope_encode(&env, &out);
		if (out.len != size || memcmp(out.data, copy, size) != 0)
			abort();
		if (queue_envelope_decode(out.data, out.len, &again, &err) != STORE_OK)
			abort();
		check_same(&env, &again);
		queue_envelope_clear(&again);
		textbuf_free(&out);
	} else if (err == NULL) {
		abort(); /* every refusal says why */
	}
	queue_envelope_clear(&env);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode(data, size);
	/* The input as the body of an envelope with a correct checksum
	 * line, so that the fuzzer reaches the line parser behind the CRC
	 * (a seed's own checksum line is dropped first). */
	struct textbuf sealed = TEXTBUF_INIT;
	size_t body = size;
	if (body >= 16 && memcmp(data + body - 16, "crc32c ", 7) == 0)
		body -= 16;
	textbuf_append(&sealed, data, body);
	textbuf_printf(&sealed, "crc32c %08x\n", store_crc32c(0, data, body));
	fuzz_decode((const uint8_t *)sealed.data, sealed.len);
	textbuf_free(&sealed);
	return 0;
}
