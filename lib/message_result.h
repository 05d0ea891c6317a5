/*
 * message_result: what the message parser (lib/message_parser.h) learns
 * about one message and what the store caches (lib/message_cache.h), so
 * that IMAP FETCH ENVELOPE/BODYSTRUCTURE/BODY[HEADER.FIELDS]/BODY[n.MIME],
 * SEARCH and SORT never re-parse a message file, and any part can be
 * served by byte range.
 *
 * Shape: a flat array of parts in pre-order (parts[0] is the whole
 * message). A part's children follow it: the first child is at index+1,
 * the next sibling at ->next. Two kinds of node:
 *   - a "message" (MESSAGE_PART_FLAG_MESSAGE): the top-level message, or
 *     the message inside a message/rfc822 part. It has an RFC 5322 header
 *     (kept field by field in ->fields) and an envelope, and is also a MIME
 *     entity in its own right (its Content-Type says what its body is);
 *   - a MIME body part: a child of a multipart. Only its Content-* fields
 *     are kept, parsed; its raw header is served by range.
 * A parsed multipart (MESSAGE_PART_FLAG_MULTIPART) has one child per body
 * part; a parsed message/rfc822 part (MESSAGE_PART_FLAG_RFC822) has exactly
 * one child, the message inside, whose header starts where the part's body
 * starts and which ends where the part ends.
 *
 * Offsets are byte offsets into the whole message file as the parser was
 * fed it, counted on the real bytes (CRLF or bare LF alike):
 *   header_offset <= body_offset <= body_end,
 *   header = [header_offset, body_offset) including the blank line,
 *   body   = [body_offset, body_end), excluding the line break that
 *            belongs to a following boundary delimiter (RFC 2046 5.1.1).
 * Children lie inside their parent's body, in order, without overlap.
 *
 * Strings are NUL-terminated; NUL bytes from the message are stored as 0x80
 * (see message_arena_strndup). Header field raw bytes are the exception:
 * they are length-carrying and exact.
 *
 * Security stance: every value here came from an untrusted message. It is
 * bounded (lib/message_limits.h) but not sanitised beyond the NUL mapping:
 * renderers (lib/message_imap.h) quote everything they emit.
 */
#ifndef CM_LIB_MESSAGE_RESULT_H
#define CM_LIB_MESSAGE_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/message_arena.h"
#include "lib/message_limits.h"
#include "lib/textbuf.h"

#define MESSAGE_PART_NONE UINT32_MAX

enum message_part_flags {
	/* A message: the root, or the child of a message/rfc822 part. Has an
	 * envelope and header fields. */
	MESSAGE_PART_FLAG_MESSAGE = 1 << 0,
	/* A multipart whose boundary was used: children are its body parts
	 * (possibly none if no delimiter was found). A multipart without this
	 * flag (no or bad boundary, too deep, part limit) is an opaque leaf. */
	MESSAGE_PART_FLAG_MULTIPART = 1 << 1,
	/* A message/rfc822 part whose body was parsed: one child, the message.
	 * Without it (too deep, part limit, base64/quoted-printable encoded)
	 * the part is an opaque leaf. */
	MESSAGE_PART_FLAG_RFC822 = 1 << 2,
	/* Header ended by a boundary or end of input, not by a blank line. */
	MESSAGE_PART_FLAG_HEADER_UNTERMINATED = 1 << 3,
	/* Multipart ended without its close delimiter ("--boundary--"). */
	MESSAGE_PART_FLAG_UNTERMINATED = 1 << 4,
	/* Some header field was not kept (limits) or kept cut short. */
	MESSAGE_PART_FLAG_FIELDS_TRUNCATED = 1 << 5,
};
#define MESSAGE_PART_FLAGS_ALL 0x3fu

enum message_result_flags {
	/* MESSAGE_PARTS_MAX reached: some delimiters started no part. */
	MESSAGE_RESULT_FLAG_PARTS_LIMIT = 1 << 0,
	/* MESSAGE_DEPTH_MAX reached: some container was kept opaque. */
	MESSAGE_RESULT_FLAG_DEPTH_LIMIT = 1 << 1,
	/* MESSAGE_RESULT_MAX reached: some fields, parameters or addresses
	 * were dropped. */
	MESSAGE_RESULT_FLAG_BUDGET_LIMIT = 1 << 2,
};
#define MESSAGE_RESULT_FLAGS_ALL 0x7u

/* One Content-Type or Content-Disposition parameter. name is lowercased,
 * without RFC 2231 "*" or "*N*" suffixes. value has RFC 2231 continuations
 * joined and %XX decoded; when the parameter carried an RFC 2231 charset
 * that lib/message_charset.h knows, value is converted to UTF-8 and charset
 * is "utf-8"; with another charset, value keeps the raw decoded bytes and
 * charset names it (lowercased). charset is NULL for plain parameters,
 * whose value is exactly the token or unescaped quoted-string (RFC 2047
 * words inside are not decoded). */
struct message_param {
	const char *name;
	const char *value;
	const char *charset;
};

/* One header field as it appears in the message. raw is exact (NULs
 * kept), raw_len <= MESSAGE_FIELD_MAX; raw_len < size means it was cut.
 * The name is raw[0..name_len) (whitespace before the colon dropped), the
 * value starts at raw[value_offset] (just after the colon) and runs to the
 * end including folding and the final line break. */
struct message_field {
	const char *raw;
	uint32_t raw_len;
	uint32_t name_len;
	uint32_t value_offset;
	uint64_t offset; /* of the field in the message */
	uint64_t size;	 /* of the whole field in the message */
};

/* An address as RFC 3501 ENVELOPE wants it. Group syntax (RFC 3501 7.4.2):
 * the start of a group is {NULL, NULL, "group name", NULL}, its end is all
 * NULL. A plain address always has mailbox and host non-NULL ("" when the
 * message left them out). name is the display name with quotes and
 * escapes removed and words joined by one space, RFC 2047 words NOT
 * decoded (or, with no display name, the comment after the address); adl
 * is an obsolete source route "@a,@b" or NULL. mailbox is the local part
 * (unquoted), host the domain (domain literals keep their brackets). */
struct message_address {
	const char *name;
	const char *adl;
	const char *mailbox;
	const char *host;
};

struct message_address_list {
	struct message_address *addrs;
	uint32_t count;
};

enum message_env_field {
	MESSAGE_ENV_DATE,
	MESSAGE_ENV_SUBJECT,
	MESSAGE_ENV_FROM,
	MESSAGE_ENV_SENDER,
	MESSAGE_ENV_REPLY_TO,
	MESSAGE_ENV_TO,
	MESSAGE_ENV_CC,
	MESSAGE_ENV_BCC,
	MESSAGE_ENV_IN_REPLY_TO,
	MESSAGE_ENV_MESSAGE_ID,
	MESSAGE_ENV_REFERENCES,
	MESSAGE_ENV_COUNT
};
/* Address fields are MESSAGE_ENV_FROM..MESSAGE_ENV_BCC. */
#define MESSAGE_ENV_ADDR_COUNT 6
#define MESSAGE_ENV_IS_ADDR(f) ((f) >= MESSAGE_ENV_FROM && (f) <= MESSAGE_ENV_BCC)

/* What IMAP ENVELOPE, SORT and THREAD need from a message header. raw[f]
 * is the unfolded value of the FIRST field named f (line breaks of folding
 * removed, leading and trailing whitespace trimmed, RFC 2047 words not
 * decoded), NULL when absent. addr[f - MESSAGE_ENV_FROM] is the parsed
 * address list of an address field (count 0 when absent or empty). The
 * RFC 3501 rule that Sender and Reply-To default to From is applied by the
 * renderer, not here. date is the Date field as UTC seconds since the
 * epoch and date_tz its zone in minutes east of UTC, both 0 unless
 * date_valid. */
struct message_envelope {
	const char *raw[MESSAGE_ENV_COUNT];
	struct message_address_list addr[MESSAGE_ENV_ADDR_COUNT];
	bool date_valid;
	int64_t date;
	int32_t date_tz;
};

struct message_part {
	uint32_t parent;   /* MESSAGE_PART_NONE for the root */
	uint32_t next;	   /* next sibling, MESSAGE_PART_NONE if last */
	uint32_t children; /* count; the first child is this part's index + 1 */
	uint32_t depth;	   /* root 0 */
	uint32_t flags;	   /* enum message_part_flags */

	uint64_t header_offset;
	uint64_t body_offset;
	uint64_t body_end;
	/* Lines of the body: line breaks in it, plus one for a last line
	 * without a line break. What BODYSTRUCTURE calls body-fld-lines. */
	uint64_t body_lines;

	/* Content-Type, lowercased, never NULL. Default (absent or invalid
	 * field) text/plain, or message/rfc822 inside multipart/digest. A
	 * text/ part without a charset parameter gets charset=us-ascii
	 * appended (RFC 2045 5.2, RFC 2046 4.1.2). */
	const char *type;
	const char *subtype;
	struct message_param *params;
	uint32_t param_count;

	/* Content-Disposition type (lowercased) and parameters; NULL/0 when
	 * absent or invalid. */
	const char *disposition;
	struct message_param *disp_params;
	uint32_t disp_param_count;

	/* Unfolded, trimmed values of the first such field; NULL when absent.
	 * encoding (Content-Transfer-Encoding) is one lowercased token.
	 * language (Content-Language) is the tags joined by "," without spaces
	 * or comments. */
	const char *id;		 /* Content-ID */
	const char *description; /* Content-Description */
	const char *encoding;	 /* Content-Transfer-Encoding */
	const char *language;	 /* Content-Language */
	const char *location;	 /* Content-Location */
	const char *md5;	 /* Content-MD5 */

	/* Messages only (else NULL/0). */
	struct message_field *fields;
	uint32_t field_count;
	struct message_envelope *envelope;
};

struct message_result {
	uint64_t size;	/* bytes in the message */
	uint32_t flags; /* enum message_result_flags */
	uint32_t part_count;
	struct message_part *parts; /* part_count >= 1 */
	struct message_arena *arena;
};

/* An empty result with one zeroed root part; for the parser and the cache
 * decoder, which fill it in. */
struct message_result *message_result_create(void);
/* Frees everything; sets *result to NULL. NULL is a no-op. */
void message_result_free(struct message_result **result);

static inline uint64_t message_part_header_size(const struct message_part *part)
{
	return part->body_offset - part->header_offset;
}
static inline uint64_t message_part_body_size(const struct message_part *part)
{
	return part->body_end - part->body_offset;
}

/* The n-th child (1-based) of part, or NULL. */
const struct message_part *message_part_child(const struct message_result *result,
					      const struct message_part *part, uint32_t n);

/* Resolves an IMAP section part number ("1", "2.3", "4.2.1"; RFC 3501
 * 6.4.5) to a part. "" is the whole message (the root). Numbering: inside a
 * message, a multipart body has parts 1..n and any other body is part 1
 * (the message itself); a message/rfc822 part's numbers continue inside the
 * message it carries. Returns 1 and *part_r, 0 when no such part exists,
 * -1 with *error_r for bad syntax (not digits and dots, a zero, overflow). */
int message_result_find_section(const struct message_result *result, const char *section,
				const struct message_part **part_r, const char **error_r);

/* The message whose HEADER and TEXT a section names: the root for the
 * empty section, the carried message for a parsed message/rfc822 part, the
 * part itself if it is a message; otherwise NULL (HEADER/TEXT are not
 * valid there). */
const struct message_part *message_part_message(const struct message_result *result,
						const struct message_part *part);

/* Header field lookup on a message part (parts without kept fields find
 * nothing). Names compare case-insensitively. Finds the index-th (0-based)
 * field of that name and appends its unfolded value (line breaks of
 * folding removed, leading/trailing whitespace trimmed, bytes otherwise
 * exact) to value_r. Returns 1 found, 0 not found. A field cut by
 * MESSAGE_FIELD_MAX gives its cut value; check field->size to know. */
int message_part_header_get(const struct message_part *part, const char *name, uint32_t index,
			    struct textbuf *value_r);
/* The index-th field of that name, or NULL. */
const struct message_field *message_part_field_find(const struct message_part *part,
						    const char *name, uint32_t index);

/* The parameter named name (case-insensitive) or NULL. */
const struct message_param *message_param_find(const struct message_param *params, uint32_t count,
					       const char *name);

/* Deep equality of two results (every part, string, field, address).
 * For round-trip tests and the fuzzers. */
bool message_result_equal(const struct message_result *a, const struct message_result *b);

#endif
