/*
 * index_format: the on-disk encoding of a mailbox index, version 1 (the
 * layout is spelled out in docs/storage-format.md, "Mail store"). Pure:
 * no I/O; every decoder takes untrusted bytes (the shared disk may be
 * corrupt, or written by a crashed process) and returns an error rather
 * than read out of bounds. All integers are little-endian; every header
 * and record carries a CRC-32C.
 *
 *   log.<seq>   header (128 bytes) then records, each:
 *                 u32 size, u32 crc, u16 type, u16 flags, u32 count,
 *                 u64 modseq, state (48 bytes), payload, u32 size, u32 0
 *   index       snapshot: header (128 bytes), keywords, message records
 *               (56 bytes each, by UID), vanished ranges, absorb GUIDs
 */
#ifndef CM_STORAGE_INDEX_FORMAT_H
#define CM_STORAGE_INDEX_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/textbuf.h"
#include "storage/mailbox.h"

#define INDEX_FORMAT_VERSION 1
#define INDEX_LOG_HEADER_SIZE 128
#define INDEX_SNAP_HEADER_SIZE 128
#define INDEX_REC_HEADER_SIZE 72
#define INDEX_REC_TRAILER_SIZE 8
#define INDEX_MSG_SIZE 56
#define INDEX_RANGE_SIZE 8
#define INDEX_VANISHED_SIZE 16
#define INDEX_REC_MAX (256u * 1024 * 1024) /* larger records are corrupt */
#define INDEX_LOG_SYNCED_OFFSET 32          /* where the synced mark lives in a log header */

/* The mailbox summary carried by every record, log header and snapshot:
 * STATUS reads it without looking at message records. */
struct index_state {
	uint32_t uidnext;
	uint32_t messages;
	uint32_t unseen;
	uint32_t recent;
	uint32_t first_recent_uid;
	uint32_t deleted;
	uint64_t highestmodseq;
	uint64_t bytes;
	uint32_t keywords;
};

enum index_rec_type {
	INDEX_REC_APPEND = 1,   /* count messages; flag ABSORBED: from new/, plus carried GUIDs */
	INDEX_REC_FLAGS = 2,    /* op, flags, keyword mask, count UID ranges */
	INDEX_REC_EXPUNGE = 3,  /* count UID ranges */
	INDEX_REC_KEYWORD = 4,  /* defines keyword <index> = name */
	INDEX_REC_RECENT = 5,   /* \Recent claimed up to state.first_recent_uid */
	INDEX_REC_ROTATE = 6,   /* continue in log.<seq> at offset; flag RESET: reload */
	INDEX_REC_DELETED = 7,  /* the mailbox was deleted */
};

#define INDEX_APPEND_ABSORBED 0x1
/* Written in the same commit round as its message files: readers pass it
 * only once its resolve word (the last u32 of the trailer, outside the
 * CRC) says the files are durable. */
#define INDEX_APPEND_PENDING 0x2
#define INDEX_RESOLVED_MAGIC 0x454e4f44u /* "DONE" */
#define INDEX_ROTATE_RESET 0x1

struct index_rec {
	uint32_t size;
	uint16_t type, flags;
	uint32_t count;
	uint64_t modseq;
	struct index_state state;
	const uint8_t *payload;
	size_t payload_len;
	bool resolved;             /* not PENDING, or its resolve word is set */
};

enum index_decode {
	INDEX_DECODE_OK = 0,
	INDEX_DECODE_SHORT = 1,  /* the record runs past the bytes available */
	INDEX_DECODE_BAD = -1,   /* it cannot be a record */
};

/* Decodes the record at buf (avail bytes), checking size, CRC and the
 * payload's shape for its type. */
enum index_decode index_rec_decode(const uint8_t *buf, size_t avail, struct index_rec *rec,
				   const char **error_r);

/* Payload accessors; valid only on a decoded record of the right type. */
void index_rec_msg(const struct index_rec *rec, uint32_t i, struct mail_record *out);
uint32_t index_rec_carry_count(const struct index_rec *rec);
const uint8_t *index_rec_carry_guid(const struct index_rec *rec, uint32_t i);
struct index_flags_payload {
	enum mail_flags_op op;
	uint32_t flags;
	uint64_t keywords;
};
void index_rec_flags(const struct index_rec *rec, struct index_flags_payload *out);
struct uid_range index_rec_range(const struct index_rec *rec, uint32_t i); /* FLAGS, EXPUNGE */
void index_rec_keyword(const struct index_rec *rec, uint32_t *idx_r, const char **name_r,
		       size_t *len_r);
void index_rec_rotate(const struct index_rec *rec, uint64_t *seq_r, uint64_t *offset_r);

/* Building records: begin, append the payload, finish. */
size_t index_rec_begin(struct textbuf *buf);
void index_put_msg(struct textbuf *buf, const struct mail_record *m);
void index_put_range(struct textbuf *buf, uint32_t first, uint32_t last);
void index_put_u32(struct textbuf *buf, uint32_t v);
void index_put_u64(struct textbuf *buf, uint64_t v);
void index_put_bytes_padded(struct textbuf *buf, const void *data, size_t len);
void index_rec_finish(struct textbuf *buf, size_t start, uint16_t type, uint16_t flags,
		      uint32_t count, uint64_t modseq, const struct index_state *state);

/* The resolve word of a PENDING record of the given size starting at
 * log offset off: where to write INDEX_RESOLVED_MAGIC. */
static inline uint64_t index_rec_resolve_offset(uint64_t off, uint32_t size)
{
	return off + size - 4;
}

/* Replaces the state block of a finished record (and its checksum). */
void index_rec_set_state(uint8_t *rec, const struct index_state *state);

/* Log header. */
struct index_log_header {
	uint64_t seq;
	uint32_t uidvalidity;
	uint64_t synced;           /* readers stop here: everything before is durable */
	struct index_state state;  /* the state before the first record */
};
void index_log_header_encode(const struct index_log_header *h, uint8_t out[INDEX_LOG_HEADER_SIZE]);
int index_log_header_decode(const uint8_t *buf, size_t len, struct index_log_header *h,
			    const char **error_r);

/* Snapshot. The decoded form points into the buffer. */
struct index_snap {
	uint64_t log_seq, log_offset;
	uint32_t uidvalidity;
	struct index_state state;
	uint32_t record_count;
	const uint8_t *keywords;   /* state.keywords NUL-terminated names */
	size_t keyword_bytes;
	const uint8_t *records;
	uint32_t vanished_count;
	const uint8_t *vanished;   /* u32 first, u32 last, u64 modseq */
	uint64_t vanished_floor;
	uint32_t absorb_count;
	const uint8_t *absorb;     /* GUIDs */
};
int index_snap_decode(const uint8_t *buf, size_t len, struct index_snap *snap,
		      const char **error_r);
/* Header fields only (the first INDEX_SNAP_HEADER_SIZE bytes). */
int index_snap_header_decode(const uint8_t *buf, size_t len, struct index_snap *snap,
			     const char **error_r);
/* 0 when [p, p+bytes) holds exactly count valid NUL-terminated keyword
 * names, -1 otherwise. */
int index_snap_keywords_check(const uint8_t *p, size_t bytes, uint32_t count);
void index_snap_vanished(const struct index_snap *snap, uint32_t i, uint32_t *first_r,
			 uint32_t *last_r, uint64_t *modseq_r);

/* Encoders for the snapshot writer: header last (it covers the body). */
void index_snap_encode_header(const struct index_snap *snap, uint32_t body_crc,
			      uint8_t out[INDEX_SNAP_HEADER_SIZE]);

/* Keyword names as the store accepts them: 1..128 bytes, printable ASCII
 * without space, '\\' first, or IMAP specials "(){%*\"]". */
bool index_keyword_valid(const char *name, size_t len);

/* Little-endian helpers shared with the snapshot writer. */
uint32_t index_le32(const uint8_t *p);
uint64_t index_le64(const uint8_t *p);
void index_set_le32(uint8_t *p, uint32_t v);
void index_set_le64(uint8_t *p, uint64_t v);

#endif
