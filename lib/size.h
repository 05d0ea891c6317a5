/*
 * Byte sizes as operators write them: "1048576", "512K", "10M", "2G",
 * "1T" (binary multiples, case-insensitive, optional trailing "B").
 * Pure; overflow is an error, never a wrap.
 */
#ifndef CM_LIB_SIZE_H
#define CM_LIB_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* 0 and *bytes_r, or -1 (empty, junk, overflow). */
int size_parse(const char *text, uint64_t *bytes_r);
/* Human form, e.g. "10M", "1.5G", "123"; out needs 16 bytes. */
void size_format(uint64_t bytes, char *out, size_t out_size);

#endif
