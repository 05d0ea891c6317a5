/*
 * libFuzzer harness for lib/cidr.c: whatever the input, parsing never
 * reads or writes out of bounds; an accepted network formats to a text
 * that parses back to the same network, contains its own address, and
 * has a reverse name that fits; the peer parser never overruns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct cidr net, again, addr;
	const char *error = NULL;
	char formatted[CIDR_TEXT_MAX], rev[64];

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cidr_parse(text, &net, &error) == 0) {
		if (net.prefix > (net.v6 ? 128 : 32))
			abort();
		cidr_format(&net, formatted, sizeof(formatted));
		if (cidr_parse(formatted, &again, &error) != 0 ||
		    memcmp(&net, &again, sizeof(net)) != 0)
			abort();
		addr = net;
		addr.prefix = net.v6 ? 128 : 32;
		if (!cidr_contains(&net, &addr))
			abort();
		if (cidr_reverse_name(&addr, rev, sizeof(rev)) != 0 || strlen(rev) >= sizeof(rev))
			abort();
	} else if (error == NULL) {
		abort();
	}
	if (cidr_peer_parse(text, &addr) == 0 && addr.prefix != (addr.v6 ? 128 : 32))
		abort();
	free(text);
	return 0;
}
