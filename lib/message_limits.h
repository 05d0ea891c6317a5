/*
 * Limits of the RFC 5322 + MIME message parser (lib/message_parser.c) and
 * of the cached parse result (lib/message_cache.c), in one place. Each
 * bounds memory or recursion for hostile input; exceeding one is never an
 * error, it only makes the result less detailed (and says so in a flag).
 * With these defaults a parser plus its result never holds more than
 * about MESSAGE_RESULT_MAX + MESSAGE_PARTS_MAX * 1 KiB + a few
 * MESSAGE_FIELD_MAX (about 20 MiB), whatever is fed to it; a typical
 * message needs a few KiB.
 */
#ifndef CM_LIB_MESSAGE_LIMITS_H
#define CM_LIB_MESSAGE_LIMITS_H

/* Bytes of one header field (name, colon, value, folding and line ends)
 * kept for the cache and used for parsing. Real fields are far below this
 * (RFC 5322 2.1.1 caps lines at 998 bytes; only long References and To
 * lists fold past a few KiB). A longer field is cut here; its offset and
 * full size stay exact so the store can serve it by byte range. */
#define MESSAGE_FIELD_MAX (64 * 1024)

/* Header fields kept per message header (the top-level message and each
 * message/rfc822 inside). Real headers carry 20-100 fields; spam with
 * thousands of Received lines is still served by byte range. Fields past
 * this are still parsed for the MIME and envelope values. */
#define MESSAGE_FIELDS_MAX 1000

/* Deepest part in the tree (the top-level message is depth 0; a
 * message/rfc822 counts two levels: the part and the message inside).
 * Real mail nests fewer than 10 levels. A multipart or message/rfc822 whose
 * children would be deeper is kept as an opaque leaf. Also bounds the
 * recursion of every renderer and the parser's stacks. */
#define MESSAGE_DEPTH_MAX 50

/* Parts in one message, the root included. Bounds the part array (each
 * entry is about 200 bytes, plus its type strings). Beyond it, delimiters still end parts but
 * start no new ones; the rest is body of the enclosing multipart. */
#define MESSAGE_PARTS_MAX 10000

/* Longest multipart boundary (RFC 2046 5.1.1: 1*70 bchars). A multipart
 * with a longer or empty boundary is an opaque leaf. */
#define MESSAGE_BOUNDARY_MAX 70

/* Parameters per Content-Type or Content-Disposition field, counting each
 * RFC 2231 continuation section. Real fields have fewer than 5. */
#define MESSAGE_PARAMS_MAX 64

/* Longest media type, subtype or parameter name (RFC 6838 4.2: 127). */
#define MESSAGE_TOKEN_MAX 127

/* Bytes of strings and arrays kept in one result (fields, parameters,
 * addresses): a budget checked before each header field is kept or
 * parsed, so one field's worth (at most a few times MESSAGE_FIELD_MAX) may
 * go over it. Beyond it, structure and offsets are still complete but
 * further fields, parameters and addresses are dropped. Real messages use
 * a few KiB. */
#define MESSAGE_RESULT_MAX (8 * 1024 * 1024)

#endif
