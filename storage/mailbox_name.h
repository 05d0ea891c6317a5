/*
 * mailbox_name: mailbox names as the store accepts them, and their
 * encoding into directory names (see storage/mailbox.h for the rules).
 *
 * Security stance: a name comes from a remote client. It is validated
 * whole (UTF-8, no control characters, no empty, "." or ".." components,
 * bounded length and depth) and every component is encoded before it
 * touches the filesystem: '%' and '/' become %25 and %2F and a leading
 * '.' becomes %2E, so an encoded component is never ".", "..", never
 * contains '/', and never collides with the store's own entries, which
 * all start with '.'. Decoding accepts only what encoding produces.
 */
#ifndef CM_STORAGE_MAILBOX_NAME_H
#define CM_STORAGE_MAILBOX_NAME_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

#define MAILBOX_COMPONENT_ENC_MAX 255

/* Validates name and writes its canonical form (INBOX uppercased when it
 * is the first component) to out (MAILBOX_NAME_MAX + 1 bytes).
 * 0, STORE_E_INVALID or STORE_E_LIMIT. */
int mailbox_name_normalize(const char *name, char *out, const char **error_r);
/* Appends "<enc>/<enc>/..." for a normalised name. */
int mailbox_name_to_path(const char *name, struct textbuf *path, const char **error_r);
/* Encodes bytes [s, s+len) as one directory name into out (256 bytes);
 * -1 when it does not fit. */
int mailbox_name_encode(const char *s, size_t len, char *out);
/* Decodes a directory name; -1 when it is not one encode() produces. */
int mailbox_name_decode(const char *enc, char *out, size_t out_size);
bool mailbox_name_is_inbox(const char *normalized);
/* Whether child lies strictly below parent in the hierarchy. */
bool mailbox_name_is_below(const char *child, const char *parent);

#endif
