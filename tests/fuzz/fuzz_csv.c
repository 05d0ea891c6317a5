/* libFuzzer harness: lib/csv.c must never read or write out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	char *fields[8];

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	int n = csv_split(line, fields, 8);
	for (int i = 0; i < n; i++)
		(void)strlen(fields[i]);
	free(line);
	return 0;
}
