/*
 * rfc2047: decoding of MIME encoded-words ("=?charset?B?...?=" and
 * "=?charset?Q?...?=", RFC 2047, with RFC 2231 "charset*language") in
 * unstructured header text such as Subject, for SEARCH, SORT and display.
 * The message parser itself keeps header values raw, as IMAP ENVELOPE
 * wants them; callers decode when they need text.
 *
 * Rules: whitespace between two adjacent encoded-words is dropped (RFC 2047
 * 6.2); consecutive words in the same charset are joined before conversion,
 * so a multi-byte character split across words survives. A word in a
 * charset lib/message_charset.h cannot convert, or a malformed word, is
 * copied undecoded. Text outside words is copied as is (so the output is
 * UTF-8 only if that text was). Words inside quoted strings or phrases
 * are decoded the same way (common practice, though RFC 2047 5 forbids
 * quoted ones).
 *
 * Security stance: linear in the input (an encoded word is at most 1000
 * bytes); output at most 3 times the input.
 */
#ifndef CM_LIB_RFC2047_H
#define CM_LIB_RFC2047_H

#include <stddef.h>

#include "lib/textbuf.h"

/* Appends the decoded form of in to out. Never fails. */
void rfc2047_decode(const void *in, size_t len, struct textbuf *out);

#endif
