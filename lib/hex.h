/*
 * hex: the hexadecimal "escape + two digits" byte encodings the mail
 * formats share: RFC 2231 "%XX" parameter values, RFC 3461 "+XX" xtext,
 * and the "=XX" of RFC 2047 Q words (whose "_" the caller handles).
 * Pure: no I/O; output goes to the caller's textbuf.
 *
 * Security stance: lenient by design, as these decode header text from
 * anyone: a malformed escape is copied as is, never refused; the output
 * is never longer than the input.
 */
#ifndef CM_LIB_HEX_H
#define CM_LIB_HEX_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

/* The value of a hex digit in either case, or -1 for any other byte. */
int hex_digit_value(unsigned char c);

/* Appends in[0..len) to out with each esc followed by two hex digits
 * replaced by the byte they spell. Never fails. */
void hex_unescape(const void *in, size_t len, char esc, struct textbuf *out);

/* Appends s as RFC 3461 xtext: "!" to "~" as they are except "+" and
 * "=", every other byte "+XX" (uppercase). */
void hex_xtext_encode(const char *s, struct textbuf *out);
/* Whether s is xtext as RFC 3461 writes it: printable ASCII, no "=",
 * every "+" followed by two uppercase hex digits (any_case: or lowercase,
 * as a lenient receiver takes them). */
bool hex_xtext_valid(const char *s, bool any_case);

#endif
