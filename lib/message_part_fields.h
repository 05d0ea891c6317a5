/*
 * message_part_fields: what a header field means for the part it belongs
 * to, for lib/message_parser.c, which finds the fields in the byte stream.
 * Fills the Content-* values of any part and, for messages, the envelope;
 * applies the defaults when the header ends. The first occurrence of each
 * field wins (RFC 2045 leaves duplicates undefined; first-wins matches what
 * most readers display).
 *
 * Budget: once the result's arena holds MESSAGE_RESULT_MAX bytes, only
 * what the part tree needs is kept (type, subtype, boundary, transfer
 * encoding; the Date as a number) and the result is flagged
 * MESSAGE_RESULT_FLAG_BUDGET_LIMIT.
 */
#ifndef CM_LIB_MESSAGE_PART_FIELDS_H
#define CM_LIB_MESSAGE_PART_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/message_result.h"

/* Which fields one header has seen so far; zero it for each header. */
struct message_part_fields {
	unsigned int seen;
	unsigned int env_seen;
};

/* True (and the result flagged) once the arena is over MESSAGE_RESULT_MAX. */
bool message_part_fields_over_budget(struct message_result *result);

/* Interprets one field of part's header: name as written (whitespace before
 * the colon removed), value unfolded (lib/rfc822_header.h). Fields that
 * mean nothing here are ignored. */
void message_part_fields_apply(struct message_result *result, struct message_part *part,
			       struct message_part_fields *state, const void *name, size_t name_len,
			       const char *value, size_t value_len);

/* The header is over: default Content-Type (text/plain, or message/rfc822
 * under multipart/digest; RFC 2046 5.1.5) and the us-ascii charset of
 * text parts (RFC 2045 5.2). part->parent must already be set. */
void message_part_fields_complete(struct message_result *result, struct message_part *part);

#endif
