/*
 * mime_downgrade: turns a message with 8-bit content into a 7-bit one,
 * for a server that did not announce 8BITMIME (RFC 6152 3: a client must
 * not send it 8-bit data).
 *
 * What changes, and nothing else (every other byte, and the MIME
 * structure, stay identical):
 *  - A leaf part (not multipart, not message/...) whose body has a byte
 *    >= 0x80 and whose Content-Transfer-Encoding is absent, 7bit, 8bit or
 *    binary is re-encoded as quoted-printable (RFC 2045 6.7), line by
 *    line: its line breaks stay as they were (LF or CRLF), so decoding
 *    gives back the exact bytes. Its Content-Transfer-Encoding field is
 *    rewritten, or added at the end of its header (with MIME-Version: 1.0
 *    when the part is a message whose header has none).
 *  - A header field with bytes >= 0x80 is encoded as RFC 2047 words
 *    (UTF-8, B encoding) only if it is simple: an unstructured field
 *    (Subject, Comments, Content-Description), valid UTF-8, with no
 *    encoded word in it already. Structured fields (addresses, parameters)
 *    would need their syntax understood to encode only the phrases; they
 *    are left as they are, and so is anything else that cannot be made
 *    7-bit without changing its meaning (a base64 or quoted-printable
 *    part that holds raw 8-bit bytes, a multipart's preamble, an opaque
 *    multipart or message part). The return value says when that happened,
 *    so the caller can send anyway or bounce (5.6.3, conversion needed).
 *
 * Memory: the message is handled whole in memory (the caller bounds it,
 * e.g. by the queue's maximum message size): the input, its parse result
 * (lib/message_parser.h, a few KiB for ordinary mail, bounded by
 * lib/message_limits.h), and the output, which is at most about 3.1
 * times the 8-bit parts plus the rest. One pass over the parse result;
 * no second read of the message.
 */
#ifndef CM_LIB_MIME_DOWNGRADE_H
#define CM_LIB_MIME_DOWNGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

struct mime_downgrade_stats {
	unsigned parts_encoded;	 /* bodies re-encoded as quoted-printable */
	unsigned fields_encoded; /* header fields encoded as RFC 2047 words */
	unsigned fields_left;	 /* 8-bit header fields left as they were */
};

/* Whether data holds a byte >= 0x80. */
bool mime_has_8bit(const void *data, size_t len);

/* Appends the downgraded message to out (data unchanged when it is
 * 7-bit already). Returns 0 when what was appended is all 7-bit, 1 when
 * some 8-bit bytes had to stay (see above). stats_r may be NULL. */
int mime_downgrade(const void *data, size_t len, struct textbuf *out,
		   struct mime_downgrade_stats *stats_r);

#endif
