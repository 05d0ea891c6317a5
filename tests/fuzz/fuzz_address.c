/*
 * libFuzzer harness for lib/address.c: whatever the input, parsing never
 * reads or writes out of bounds, and an accepted address is normalised
 * (lowercase, within the length limits) and a fixed point of
 * parse(format(parse(x))). address_parse_cased accepts exactly the same
 * inputs and differs only in the local part's case. Same for
 * domain_normalize.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_normalised(const char *s, size_t max)
{
	size_t len = strlen(s);
	if (len > max)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (s[i] >= 'A' && s[i] <= 'Z')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	for (int catchall = 0; catchall < 2; catchall++) {
		struct address a, b, c;
		const char *error = NULL;
		char formatted[ADDRESS_LOCAL_MAX + 1 + ADDRESS_DOMAIN_MAX + 1];
		int cased = address_parse_cased(text, catchall, &c, NULL);
		if (address_parse(text, catchall, &a, &error) < 0) {
			if (error == NULL || a.local[0] != '\0' || a.domain[0] != '\0' || cased == 0)
				abort();
			continue;
		}
		if (cased < 0 || strcasecmp(a.local, c.local) != 0 || strcmp(a.domain, c.domain) != 0)
			abort();
		check_normalised(a.local, ADDRESS_LOCAL_MAX);
		check_normalised(a.domain, ADDRESS_DOMAIN_MAX);
		if ((a.local[0] == '\0' && !catchall) || a.domain[0] == '\0')
			abort();
		if (address_format(&a, formatted, sizeof(formatted)) < 0)
			abort();
		if (address_parse(formatted, catchall, &b, &error) < 0 ||
		    strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0)
			abort();
	}

	char domain[ADDRESS_DOMAIN_MAX + 1], again[ADDRESS_DOMAIN_MAX + 1];
	size_t out_size = size > 0 ? (size_t)data[0] % sizeof(domain) : sizeof(domain);
	if (domain_normalize(text, domain, sizeof(domain), NULL) == 0) {
		check_normalised(domain, ADDRESS_DOMAIN_MAX);
		if (domain_normalize(domain, again, sizeof(again), NULL) < 0 ||
		    strcmp(domain, again) != 0)
			abort();
	}
	/* A short output buffer is refused, never overrun. */
	char *small = malloc(out_size + 1);
	if (small != NULL) {
		if (domain_normalize(text, small, out_size, NULL) == 0 && strlen(small) >= out_size)
			abort();
		free(small);
	}
	free(text);
	return 0;
}
