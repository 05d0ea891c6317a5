/*
 * directory_record: the binary encoding of the values stored in the
 * account directory (user, group and domain records). Keys are the
 * business of storage/directory.c; see docs/storage-format.md, section
 * "Directory", for both.
 *
 * A record is
 *     version (1 byte, DIRECTORY_RECORD_VERSION)
 *     type    (1 byte: 'U' user, 'G' group, 'D' domain)
 *     fields  (tag varint, length varint, length bytes of value)*
 * where varints are unsigned LEB128 of at most 10 bytes. Integer field
 * values are themselves one varint filling the whole field (signed ones
 * zigzag-encoded). Decoders skip unknown tags, so new fields can be added
 * without a version change; the version changes only when old readers
 * must not read a record. A later duplicate of a known tag replaces the
 * earlier value.
 *
 * Stored data may be corrupt (shared storage, operator accidents): every
 * length is checked against what remains and against the destination
 * buffer, and a record that does not decode returns DIRECTORY_E_CORRUPT,
 * never reads out of bounds.
 */
#ifndef CM_STORAGE_DIRECTORY_RECORD_H
#define CM_STORAGE_DIRECTORY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/directory.h"

#define DIRECTORY_RECORD_VERSION 1

enum directory_record_tag {
	DIRECTORY_TAG_PASSWORD_HASH = 1,  /* bytes, no NUL */
	DIRECTORY_TAG_DISPLAY_NAME = 2,	  /* bytes, no NUL */
	DIRECTORY_TAG_QUOTA = 3,	  /* varint bytes */
	DIRECTORY_TAG_FLAGS = 4,	  /* varint: bit 0 enabled */
	DIRECTORY_TAG_CREATED = 5,	  /* zigzag varint unix seconds */
	DIRECTORY_TAG_SECRET = 6,	  /* user: recoverable secret, bytes, no NUL */
	DIRECTORY_TAG_KERBEROS_REALM = 7, /* domain: bytes, no NUL */
};

#define DIRECTORY_FLAG_ENABLED 0x1u		 /* user flags */
#define DIRECTORY_DOMAIN_FLAG_SHARED_SECRET 0x1u /* domain flags */

/* Encoders append to out (cleared first). The address is not encoded: it
 * is the key. Return DIRECTORY_OK, or DIRECTORY_E_INVALID when a string
 * field is not NUL-terminated inside its array. */
int directory_record_user_encode(const struct directory_user *u, struct textbuf *out);
int directory_record_group_encode(const struct directory_group *g, struct textbuf *out);
int directory_record_domain_encode(int64_t created, struct textbuf *out);
/* The whole domain record (d->name is not encoded: it is the key). */
int directory_record_domain_encode_settings(const struct directory_domain *d, struct textbuf *out);

/* Decoders fill the whole struct (address left empty: the caller knows the
 * key). Missing fields read as empty / zero / disabled. Return
 * DIRECTORY_OK or DIRECTORY_E_CORRUPT (out-parameter then zeroed). */
int directory_record_user_decode(const void *data, size_t len, struct directory_user *u_r);
int directory_record_group_decode(const void *data, size_t len, struct directory_group *g_r);
int directory_record_domain_decode(const void *data, size_t len, int64_t *created_r);
/* Fills every field but name (left empty). */
int directory_record_domain_decode_settings(const void *data, size_t len,
					    struct directory_domain *d_r);

#endif
