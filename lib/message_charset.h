/*
 * message_charset: conversion to UTF-8 of the few charsets that cover
 * nearly all real header text: UTF-8 itself, US-ASCII, ISO-8859-1,
 * ISO-8859-15 and Windows-1252 (which senders label ISO-8859-1 anyway).
 * Used for RFC 2047 encoded words and RFC 2231 parameter values.
 *
 * Why not iconv: lib/ does no I/O and iconv loads conversion modules from
 * disk at run time; a caller that needs other charsets converts the raw
 * bytes itself (the parser keeps them raw, with the charset named).
 *
 * Output is always valid UTF-8: invalid input bytes (a bad UTF-8 sequence,
 * an 8-bit byte in US-ASCII, a NUL) become U+FFFD.
 */
#ifndef CM_LIB_MESSAGE_CHARSET_H
#define CM_LIB_MESSAGE_CHARSET_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

/* True if charset (case-insensitive, given length) is one we convert. */
bool message_charset_known(const char *charset, size_t len);
/* Appends in, converted from charset to UTF-8, to out. Returns 0, or -1
 * (nothing appended) for an unknown charset. */
int message_charset_to_utf8(const char *charset, size_t charset_len, const void *in, size_t len,
			    struct textbuf *out);
/* Appends data to out, replacing invalid UTF-8 and NUL by U+FFFD. */
void message_charset_utf8_clean(const void *data, size_t len, struct textbuf *out);
/* True if data is valid UTF-8 without NUL. */
bool message_charset_utf8_valid(const void *data, size_t len);

#endif
