/*
 * libFuzzer harness for lib/message_date.c: whatever the input, the
 * parser stays within it; an accepted date has a zone within +-2359, and
 * formats (lib's one RFC 5322 date writer) to a text that parses back to
 * the same time and zone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_date.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t t, back;
	int32_t tz, back_tz;
	char text[64];

	if (message_date_parse(data, size, &t, &tz) != 0)
		return 0;
	if (tz < -(23 * 60 + 59) || tz > 23 * 60 + 59)
		abort();
	/* A date near the ends of 1900..9999 may leave the range in UTC. */
	if (message_date_format(t, tz, text, sizeof(text)) != 0)
		return 0;
	if (message_date_parse(text, strlen(text), &back, &back_tz) != 0 || back != t ||
	    back_tz != tz)
		abort();
	return 0;
}
