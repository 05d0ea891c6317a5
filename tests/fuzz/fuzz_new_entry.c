/*
 * libFuzzer harness for the names of new/ entries (storage/
 * mailbox_absorb.c), which any process able to write a mailbox's new/
 * directory can choose. Whatever the name, parsing never reads or writes
 * out of bounds; an accepted name has flags within the mask, keywords the
 * index accepts, and is exactly what mailbox_new_name writes for what was
 * parsed. The other way round: keywords taken from the input (split at
 * NUL bytes) are encoded, and when they fit, parse back to themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/index_format.h"
#include "storage/mailbox_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_name(const char *name)
{
	uint8_t guid[16];
	int64_t date;
	uint32_t flags;
	const char *enc;
	if (mailbox_new_parse(name, guid, &date, &flags, &enc) < 0)
		return;
	if (flags & ~(uint32_t)MAIL_FLAGS_MASK)
		abort();
	char buf[MAILBOX_NEW_NAME_MAX], again[MAILBOX_NEW_NAME_MAX];
	const char *kw[MAILBOX_KEYWORDS_MAX];
	int n = mailbox_new_keywords(enc, buf, kw);
	if (n < 0)
		abort(); /* accepted names have decodable keywords */
	for (int i = 0; i < n; i++)
		if (!index_keyword_valid(kw[i], strlen(kw[i])))
			abort();
	if (mailbox_new_name(guid, date, flags, kw, (size_t)n, again) < 0 ||
	    strcmp(again, name) != 0)
		abort();
}

static void encode_keywords(const char *text, size_t size)
{
	const char *kw[MAILBOX_KEYWORDS_MAX];
	size_t n = 0;
	for (size_t at = 0; at < size && n < MAILBOX_KEYWORDS_MAX; at += strlen(text + at) + 1) {
		size_t len = strlen(text + at);
		if (!index_keyword_valid(text + at, len))
			return; /* delivery checks keywords before naming */
		kw[n++] = text + at;
	}
	static const uint8_t guid[16] = { 1, 2, 3 };
	char name[MAILBOX_NEW_NAME_MAX], buf[MAILBOX_NEW_NAME_MAX];
	if (mailbox_new_name(guid, 1234567890, MAIL_SEEN, kw, n, name) < 0)
		return;
	if (strlen(name) >= MAILBOX_NEW_NAME_MAX)
		abort();
	uint8_t g[16];
	int64_t date;
	uint32_t flags;
	const char *enc;
	const char *back[MAILBOX_KEYWORDS_MAX];
	if (mailbox_new_parse(name, g, &date, &flags, &enc) < 0 || memcmp(g, guid, 16) != 0 ||
	    date != 1234567890 || flags != MAIL_SEEN ||
	    mailbox_new_keywords(enc, buf, back) != (int)n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (strcmp(back[i], kw[i]) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	char *text = malloc(size);
	if (text == NULL)
		return 0;
	/* The first byte picks the direction; the rest, NUL-terminated, is
	 * the name (or the keywords, split at NUL bytes). */
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] & 1)
		encode_keywords(text, size - 1);
	else
		parse_name(text);
	free(text);
	return 0;
}
