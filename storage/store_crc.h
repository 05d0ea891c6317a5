/*
 * store_crc: CRC-32C (Castagnoli), the checksum of every index header,
 * log record and snapshot section. Uses the SSE4.2 instruction when the
 * CPU has it, a slicing-by-8 table otherwise; both give the same values
 * (the format does not depend on the machine).
 */
#ifndef CM_STORAGE_STORE_CRC_H
#define CM_STORAGE_STORE_CRC_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, data, len) for a whole buffer; pass the previous result as
 * crc to continue over several pieces. */
uint32_t store_crc32c(uint32_t crc, const void *data, size_t len);

#endif
