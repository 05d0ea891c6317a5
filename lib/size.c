#include "lib/size.h"

#include <ctype.h>
#include <stdio.h>

int size_parse(const char *text, uint64_t *bytes_r)
{
	const char *p = text;
	uint64_t value = 0;
	unsigned shift = 0;

	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return -1;
		value = value * 10 + digit;
	}
	switch (toupper((unsigned char)*p)) {
	case 'K': shift = 10; p++; break;
	case 'M': shift = 20; p++; break;
	case 'G': shift = 30; p++; break;
	case 'T': shift = 40; p++; break;
	default: break;
	}
	if (toupper((unsigned char)*p) == 'B')
		p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0')
		return -1;
	if (shift > 0 && value > (UINT64_MAX >> shift))
		return -1;
	*bytes_r = value << shift;
	return 0;
}

void size_format(uint64_t bytes, char *out, size_t out_size)
{
	static const char units[] = "KMGT";
	double v = (double)bytes;
	int unit = -1;

	while (v >= 1024.0 && unit < 3) {
		v /= 1024.0;
		unit++;
	}
	if (unit < 0)
		snprintf(out, out_size, "%llu", (unsigned long long)bytes);
	else if (v == (double)(uint64_t)v)
		snprintf(out, out_size, "%llu%c", (unsigned long long)v, units[unit]);
	else
		snprintf(out, out_size, "%.1f%c", v, units[unit]);
}
