/*
 * message_parser: a push parser for RFC 5322 messages with MIME (RFC 2045,
 * 2046, 2183, 2231), run once per message at delivery. It builds a
 * struct message_result (lib/message_result.h: the part tree with byte
 * offsets, Content-* values, header fields and envelopes) that the store
 * caches (lib/message_cache.h) and IMAP renders (lib/message_imap.h).
 *
 * Feeding: any chunking gives the same result, down to one byte per call;
 * the parser keeps no input beyond the current header field (at most
 * MESSAGE_FIELD_MAX) and the first 74 bytes of the current line.
 *
 * Parsing rules, where mail in the wild needs a choice:
 *  - Lines end in LF or CRLF; offsets count the real bytes. A CR not before
 *    LF is an ordinary byte.
 *  - A header ends at the first empty line. A line without a colon in a
 *    header is kept in the header's byte range but is not a field; so is a
 *    continuation line with no field before it. Field names may carry
 *    whitespace before the colon and any bytes (8-bit, NUL).
 *  - Duplicate fields: the FIRST Content-Type (and every other Content-*
 *    and envelope field) wins; all are kept in ->fields.
 *  - Boundaries (RFC 2046 5.1.1): a line that starts with "--" followed by
 *    an active boundary is a delimiter; anything may follow (transport
 *    padding, junk: the RFC's note to implementors says only the start of
 *    the line is compared), and "--" right after the boundary makes it the
 *    close delimiter. Among active boundaries the longest match wins, then the
 *    innermost, so a boundary that is a prefix of another one is not
 *    confused with it. A delimiter of an outer multipart ends every part
 *    inside it. The line break before a delimiter belongs to it, not to
 *    the body before. Delimiters are recognised in headers too (a part
 *    without a blank line).
 *  - After the close delimiter the boundary is no longer active (epilogue);
 *    text before the first delimiter is the preamble. Both belong to the
 *    multipart's body and to no child.
 *  - End of input ends every open part (unterminated multiparts and
 *    headers are flagged, never an error).
 *  - message/rfc822 is parsed as a message unless its
 *    Content-Transfer-Encoding is other than 7bit/8bit/binary.
 *  - Limits (lib/message_limits.h) degrade detail, never correctness of
 *    the offsets that are reported.
 *
 * Security stance: input is hostile. Memory is bounded by the limits
 * whatever the input, nothing recurses on input structure, every loop
 * consumes input, and malformed input is never an error.
 */
#ifndef CM_LIB_MESSAGE_PARSER_H
#define CM_LIB_MESSAGE_PARSER_H

#include <stddef.h>

#include "lib/message_result.h"

struct message_parser;

/* A parser for one message. Never NULL (allocation failure aborts). */
struct message_parser *message_parser_init(void);
/* Consumes len bytes of the message. Never fails: malformed input is
 * parsed as well as it can be. Must not be called after finish. */
void message_parser_feed(struct message_parser *parser, const void *data, size_t len);
/* Ends the input, hands the result to the caller (free it with
 * message_result_free) and frees the parser; *parser becomes NULL.
 * Returns 0; there is no failure. */
int message_parser_finish(struct message_parser **parser, struct message_result **result_r);
/* Frees a parser without finishing (result discarded). NULL is a no-op. */
void message_parser_deinit(struct message_parser **parser);

/* Convenience: parses a whole message held in memory. Returns 0. */
int message_parse(const void *data, size_t len, struct message_result **result_r);

#endif
