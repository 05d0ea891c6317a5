/*
 * libFuzzer harness for storage/directory_record.c: stored directory
 * records may be corrupt, so decoding arbitrary bytes must never read out
 * of bounds, and whatever decodes must survive encode -> decode unchanged
 * and re-encode to the same bytes (the encoding is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/directory_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same_bytes(const struct textbuf *a, const struct textbuf *b)
{
	if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
		abort();
}

static void fuzz_user(const uint8_t *data, size_t size)
{
	struct directory_user u, v;
	struct textbuf e1 = TEXTBUF_INIT, e2 = TEXTBUF_INIT;

	if (directory_record_user_decode(data, size, &u) != DIRECTORY_OK)
		return;
	if (directory_record_user_encode(&u, &e1) != DIRECTORY_OK ||
	    directory_record_user_decode(e1.data, e1.len, &v) != DIRECTORY_OK)
		abort();
	if (strcmp(u.password_hash, v.password_hash) != 0 ||
	    strcmp(u.display_name, v.display_name) != 0 || u.quota_bytes != v.quota_bytes ||
	    u.enabled != v.enabled || u.created != v.created)
		abort();
	if (directory_record_user_encode(&v, &e2) != DIRECTORY_OK)
		abort();
	check_same_bytes(&e1, &e2);
	textbuf_free(&e1);
	textbuf_free(&e2);
}

static void fuzz_group(const uint8_t *data, size_t size)
{
	struct directory_group g, h;
	struct textbuf e1 = TEXTBUF_INIT, e2 = TEXTBUF_INIT;

	if (directory_record_group_decode(data, size, &g) != DIRECTORY_OK)
		return;
	if (directory_record_group_encode(&g, &e1) != DIRECTORY_OK ||
	    directory_record_group_decode(e1.data, e1.len, &h) != DIRECTORY_OK)
		abort();
	if (strcmp(g.display_name, h.display_name) != 0 || g.created != h.created)
		abort();
	if (directory_record_group_encode(&h, &e2) != DIRECTORY_OK)
		abort();
	check_same_bytes(&e1, &e2);
	textbuf_free(&e1);
	textbuf_free(&e2);
}

static void fuzz_domain(const uint8_t *data, size_t size)
{
	struct textbuf e = TEXTBUF_INIT;
	int64_t created, again;

	if (directory_record_domain_decode(data, size, &created) != DIRECTORY_OK)
		return;
	if (directory_record_domain_encode(created, &e) != DIRECTORY_OK ||
	    directory_record_domain_decode(e.data, e.len, &again) != DIRECTORY_OK ||
	    again != created)
		abort();
	textbuf_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size > 0 ? size : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	fuzz_user(copy, size);
	fuzz_group(copy, size);
	fuzz_domain(copy, size);
	free(copy);
	return 0;
}
