/*
 * One CSV record (RFC 4180 fields: comma-separated, optionally enclosed
 * in double quotes with "" as an escaped quote), split in place. Records
 * spanning lines are not supported: the caller passes one line without
 * its line ending. Pure; bounded by max_fields.
 */
#ifndef CM_LIB_CSV_H
#define CM_LIB_CSV_H

#include <stddef.h>

#define CSV_E_QUOTE (-1)      /* unterminated quote, or text after a closing quote */
#define CSV_E_TOO_MANY (-2)   /* more than max_fields fields */

/* Rewrites line in place; fields[i] point into it. Returns the number of
 * fields (>= 1), or CSV_E_*. */
int csv_split(char *line, char **fields, int max_fields);

#endif
