#include "lib/csv.h"

int csv_split(char *line, char **fields, int max_fields)
{
	char *r = line, *w = line;
	int n = 0;

	for (;;) {
		if (n >= max_fields)
			return CSV_E_TOO_MANY;
		fields[n++] = w;
		if (*r == '"') {
			r++;
			for (;;) {
				if (*r == '\0')
					return CSV_E_QUOTE;
				if (*r == '"') {
					if (r[1] != '"')
						break;
					r++;
				}
				*w++ = *r++;
			}
			r++; /* closing quote */
			if (*r != ',' && *r != '\0')
				return CSV_E_QUOTE;
		} else {
			while (*r != ',' && *r != '\0')
				*w++ = *r++;
		}
		if (*r == '\0') {
			*w = '\0';
			return n;
		}
		*w++ = '\0';
		r++; /* the comma */
	}
}
