/*
 * message_imap: RFC 3501 renderings of a parsed message (section 7.4.2):
 * BODYSTRUCTURE, BODY and ENVELOPE, and the string quoting they use. Pure:
 * text is appended to a textbuf; the IMAP engine writes it out.
 *
 * Choices, where RFC 3501 leaves room:
 *  - Strings are quoted when every byte is 7-bit and not CR/LF/NUL, else
 *    sent as literals {n}\r\n (values with 8-bit bytes: RFC 3501 allows
 *    8-bit in literals only). NIL for absent values.
 *  - Types, subtypes, parameter names and encodings are written
 *    lowercased as cached (clients compare them case-insensitively); an
 *    absent Content-Transfer-Encoding is "7bit".
 *  - A parameter decoded from RFC 2231 whose value is not plain ASCII is
 *    re-encoded as name* "charset''%XX" so the response stays 7-bit and
 *    the client can decode it (RFC 2231 4).
 *  - A multipart without parsed children (no boundary, too deep, no
 *    delimiter) is written with one empty text/plain part, as the grammar
 *    needs at least one. A message/rfc822 part whose message was not
 *    parsed gets an all-NIL envelope and that empty body.
 *  - BODYSTRUCTURE always writes the four extension fields (md5 or params,
 *    disposition, language, location); BODY writes none.
 *  - ENVELOPE: Sender and Reply-To fall back to From when absent or
 *    empty; group syntax per 7.4.2.
 *
 * Security stance: every value is hostile; all of them go through
 * message_imap_append_string, so nothing can break out of the response
 * syntax. Recursion is bounded by MESSAGE_DEPTH_MAX (the parser and the
 * cache decoder enforce it).
 */
#ifndef CM_LIB_MESSAGE_IMAP_H
#define CM_LIB_MESSAGE_IMAP_H

#include <stdbool.h>

#include "lib/message_result.h"
#include "lib/textbuf.h"

/* Appends s as an IMAP string (quoted or literal). */
void message_imap_append_string(struct textbuf *out, const char *s);
/* Same, or NIL for NULL. */
void message_imap_append_nstring(struct textbuf *out, const char *s);

/* Appends the BODYSTRUCTURE (extended) or BODY (!extended) of part; pass
 * &result->parts[0] for the whole message. */
void message_imap_bodystructure(const struct message_result *result,
				const struct message_part *part, bool extended,
				struct textbuf *out);

/* Appends the ENVELOPE of a message part (one with
 * MESSAGE_PART_FLAG_MESSAGE); NULL gives an envelope of NILs. */
void message_imap_envelope(const struct message_envelope *env, struct textbuf *out);

#endif
