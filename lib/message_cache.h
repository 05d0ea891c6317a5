/*
 * message_cache: the binary form in which the store caches a parsed
 * message (struct message_result) next to the message file, so that
 * FETCH/SEARCH/SORT never re-parse. Compact, versioned, self-checking.
 *
 * Format version 1 (all integers unsigned LEB128 varints, minimal length;
 * signed ones zigzag-encoded):
 *   "CMMC" 0x01              magic and version
 *   size flags part_count    the result
 *   part_count parts, pre-order, each:
 *     children flags header_offset header_size body_size body_lines
 *     type subtype params disposition disp_params
 *     id description encoding language location md5
 *     [messages only] envelope fields
 *   FNV-1a 64 of everything before it, 8 bytes little-endian
 * where a string is varint length + bytes, an optional string is varint
 * (length + 1) + bytes with 0 meaning absent, params are a count then
 * (name, value, optional charset) each, an envelope is 11 optional raw
 * values, 6 address lists (count, then 4 optional strings each), a
 * date_valid byte and, if 1, zigzag date and zone, and fields are a count
 * then (offset - header_offset, size, raw length, raw bytes, name_len,
 * value_offset) each. Parent, sibling and depth links are implied by the
 * pre-order and child counts.
 *
 * Security stance: the cache lives on shared storage and may be corrupt
 * or hostile. The decoder checks the checksum, every length against the
 * bytes left, every count against the limits, and the invariants the
 * store and renderers rely on (offsets nested and ordered inside the
 * message size, tree shape matching the flags, no NUL inside strings,
 * depth bounded), so a decoded result is one the parser could have
 * produced. Encoding is canonical: for any accepted input,
 * encode(decode(bytes)) == bytes.
 */
#ifndef CM_LIB_MESSAGE_CACHE_H
#define CM_LIB_MESSAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/message_result.h"
#include "lib/textbuf.h"

#define MESSAGE_CACHE_VERSION 1

/* Appends the cache form of result to out. Never fails. */
void message_cache_encode(const struct message_result *result, struct textbuf *out);

/* Decodes a cache record. Returns 0 with a new result (free it with
 * message_result_free), or -1 with *error_r (static text) if the record is
 * corrupt, truncated, of another version, or describes an impossible
 * message; nothing is allocated then. */
int message_cache_decode(const void *data, size_t len, struct message_result **result_r,
			 const char **error_r);

/* The checksum the format uses (FNV-1a 64), for tools and the fuzzer. */
uint64_t message_cache_checksum(const void *data, size_t len);

#endif
