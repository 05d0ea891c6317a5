/*
 * index_format: encoders and bounds-checked decoders for index logs and
 * snapshots (see index_format.h; fuzzed by tests/fuzz/fuzz_mail_index.c).
 */
#include "storage/index_format.h"

#include <string.h>

#include "storage/store_crc.h"
#include "storage/store_internal.h"

static const char log_magic[8] = { 'C', 'M', 'M', 'B', 'X', 'L', 'O', 'G' };
static const char snap_magic[8] = { 'C', 'M', 'M', 'B', 'X', 'I', 'D', 'X' };

uint32_t index_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t index_le64(const uint8_t *p)
{
	return (uint64_t)index_le32(p) | (uint64_t)index_le32(p + 4) << 32;
}

void index_set_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void index_set_le64(uint8_t *p, uint64_t v)
{
	index_set_le32(p, (uint32_t)v);
	index_set_le32(p + 4, (uint32_t)(v >> 32));
}

static void state_encode(const struct index_state *s, uint8_t *p)
{
	memset(p, 0, 48);
	index_set_le32(p, s->uidnext);
	index_set_le32(p + 4, s->messages);
	index_set_le32(p + 8, s->unseen);
	index_set_le32(p + 12, s->recent);
	index_set_le32(p + 16, s->first_recent_uid);
	index_set_le32(p + 20, s->deleted);
	index_set_le64(p + 24, s->highestmodseq);
	index_set_le64(p + 32, s->bytes);
	index_set_le32(p + 40, s->keywords);
}

static int state_decode(const uint8_t *p, struct index_state *s)
{
	s->uidnext = index_le32(p);
	s->messages = index_le32(p + 4);
	s->unseen = index_le32(p + 8);
	s->recent = index_le32(p + 12);
	s->first_recent_uid = index_le32(p + 16);
	s->deleted = index_le32(p + 20);
	s->highestmodseq = index_le64(p + 24);
	s->bytes = index_le64(p + 32);
	s->keywords = index_le32(p + 40);
	if (s->uidnext == 0 || s->keywords > MAILBOX_KEYWORDS_MAX || s->messages >= s->uidnext ||
	    s->unseen > s->messages || s->recent > s->messages || s->deleted > s->messages ||
	    s->first_recent_uid == 0 || s->first_recent_uid > s->uidnext || s->highestmodseq == 0)
		return -1;
	return 0;
}

bool index_keyword_valid(const char *name, size_t len)
{
	if (len == 0 || len > MAILBOX_KEYWORD_LEN_MAX || name[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"]\\", c) != NULL)
			return false;
	}
	return true;
}

/* count UID ranges at p: each first >= 1 and first <= last. */
static bool ranges_ok(const uint8_t *p, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++, p += INDEX_RANGE_SIZE) {
		uint32_t first = index_le32(p), last = index_le32(p + 4);
		if (first < 1 || first > last)
			return false;
	}
	return true;
}

static int rec_check_payload(const struct index_rec *r, const char **error_r)
{
	size_t len = r->payload_len;
	const uint8_t *p = r->payload;
	switch (r->type) {
	case INDEX_REC_APPEND: {
		if (r->count > INDEX_REC_MAX / INDEX_MSG_SIZE ||
		    len < (size_t)r->count * INDEX_MSG_SIZE + 8)
			break;
		size_t off = (size_t)r->count * INDEX_MSG_SIZE;
		uint32_t carry = index_le32(p + off);
		if (carry > INDEX_REC_MAX / 16 || len != off + 8 + (size_t)carry * 16)
			break;
		for (uint32_t i = 0; i < r->count; i++) {
			const uint8_t *m = p + (size_t)i * INDEX_MSG_SIZE;
			if (index_le32(m) == 0 || (index_le32(m + 4) & ~(uint32_t)MAIL_FLAGS_MASK) != 0)
				return store_fail(error_r, INDEX_DECODE_BAD, "bad message entry");
		}
		return 0;
	}
	case INDEX_REC_FLAGS:
		if (r->count > INDEX_REC_MAX / INDEX_RANGE_SIZE ||
		    len != 16 + (size_t)r->count * INDEX_RANGE_SIZE || index_le32(p) > MAIL_FLAGS_REMOVE ||
		    (index_le32(p + 4) & ~(uint32_t)MAIL_FLAGS_MASK) != 0)
			break;
		if (!ranges_ok(p + 16, r->count))
			return store_fail(error_r, INDEX_DECODE_BAD, "bad UID range");
		return 0;
	case INDEX_REC_EXPUNGE:
		if (r->count > INDEX_REC_MAX / INDEX_RANGE_SIZE ||
		    len != (size_t)r->count * INDEX_RANGE_SIZE)
			break;
		if (!ranges_ok(p, r->count))
			return store_fail(error_r, INDEX_DECODE_BAD, "bad UID range");
		return 0;
	case INDEX_REC_KEYWORD: {
		if (r->count != 1 || len < 8)
			break;
		uint32_t idx = index_le32(p), nlen = index_le32(p + 4);
		if (idx >= MAILBOX_KEYWORDS_MAX || nlen > MAILBOX_KEYWORD_LEN_MAX ||
		    len != 8 + (((size_t)nlen + 7) & ~(size_t)7) ||
		    !index_keyword_valid((const char *)p + 8, nlen))
			break;
		return 0;
	}
	case INDEX_REC_RECENT:
	case INDEX_REC_DELETED:
		if (len != 0 || r->count != 0)
			break;
		return 0;
	case INDEX_REC_ROTATE:
		if (len != 16 || r->count != 0 || index_le64(p) == 0 ||
		    index_le64(p + 8) < INDEX_LOG_HEADER_SIZE)
			break;
		return 0;
	default:
		return store_fail(error_r, INDEX_DECODE_BAD, "unknown record type %u", r->type);
	}
	return store_fail(error_r, INDEX_DECODE_BAD, "malformed record of type %u", r->type);
}

enum index_decode index_rec_decode(const uint8_t *buf, size_t avail, struct index_rec *rec,
				   const char **error_r)
{
	if (avail < 8)
		return INDEX_DECODE_SHORT;
	uint32_t size = index_le32(buf);
	if (size < INDEX_REC_HEADER_SIZE + INDEX_REC_TRAILER_SIZE || size % 8 != 0 ||
	    size > INDEX_REC_MAX)
		return store_fail(error_r, INDEX_DECODE_BAD, "bad record size %u", size);
	if (avail < size)
		return INDEX_DECODE_SHORT;
	/* A PENDING APPEND's last word is its resolve word: checksummed as 0,
	 * it is 0 or INDEX_RESOLVED_MAGIC. */
	uint16_t type = (uint16_t)(buf[8] | buf[9] << 8);
	uint16_t flags = (uint16_t)(buf[10] | buf[11] << 8);
	bool pending = type == INDEX_REC_APPEND && (flags & INDEX_APPEND_PENDING);
	uint32_t word = index_le32(buf + size - 4);
	static const uint8_t zero4[4] = { 0 };
	uint32_t crc = store_crc32c(0, buf + 8, size - 12);
	crc = store_crc32c(crc, pending ? zero4 : buf + size - 4, 4);
	if (crc != index_le32(buf + 4))
		return store_fail(error_r, INDEX_DECODE_BAD, "record checksum mismatch");
	if (index_le32(buf + size - 8) != size ||
	    (word != 0 && !(pending && word == INDEX_RESOLVED_MAGIC)))
		return store_fail(error_r, INDEX_DECODE_BAD, "bad record trailer");
	/* A flag this reader does not know may change what the record means
	 * (PENDING did): refused, never ignored. */
	uint16_t known = type == INDEX_REC_APPEND   ? INDEX_APPEND_ABSORBED | INDEX_APPEND_PENDING
			 : type == INDEX_REC_ROTATE ? INDEX_ROTATE_RESET
						    : 0;
	if (flags & ~known)
		return store_fail(error_r, INDEX_DECODE_BAD, "unknown record flags 0x%x", flags);
	rec->resolved = !pending || word == INDEX_RESOLVED_MAGIC;
	rec->size = size;
	rec->type = type;
	rec->flags = flags;
	rec->count = index_le32(buf + 12);
	rec->modseq = index_le64(buf + 16);
	if (state_decode(buf + 24, &rec->state) < 0)
		return store_fail(error_r, INDEX_DECODE_BAD, "bad state in record");
	rec->payload = buf + INDEX_REC_HEADER_SIZE;
	rec->payload_len = size - INDEX_REC_HEADER_SIZE - INDEX_REC_TRAILER_SIZE;
	if (rec_check_payload(rec, error_r) != 0)
		return INDEX_DECODE_BAD;
	return INDEX_DECODE_OK;
}

void index_rec_msg(const struct index_rec *rec, uint32_t i, struct mail_record *m)
{
	const uint8_t *p = rec->payload + (size_t)i * INDEX_MSG_SIZE;
	m->uid = index_le32(p);
	m->flags = index_le32(p + 4);
	m->modseq = index_le64(p + 8);
	m->keywords = index_le64(p + 16);
	m->internal_date = (int64_t)index_le64(p + 24);
	m->size = index_le64(p + 32);
	memcpy(m->guid, p + 40, 16);
}

uint32_t index_rec_carry_count(const struct index_rec *rec)
{
	return index_le32(rec->payload + (size_t)rec->count * INDEX_MSG_SIZE);
}

const uint8_t *index_rec_carry_guid(const struct index_rec *rec, uint32_t i)
{
	return rec->payload + (size_t)rec->count * INDEX_MSG_SIZE + 8 + (size_t)i * 16;
}

void index_rec_flags(const struct index_rec *rec, struct index_flags_payload *out)
{
	out->op = (enum mail_flags_op)index_le32(rec->payload);
	out->flags = index_le32(rec->payload + 4);
	out->keywords = index_le64(rec->payload + 8);
}

struct uid_range index_rec_range(const struct index_rec *rec, uint32_t i)
{
	size_t base = rec->type == INDEX_REC_FLAGS ? 16 : 0;
	const uint8_t *p = rec->payload + base + (size_t)i * INDEX_RANGE_SIZE;
	struct uid_range r = { index_le32(p), index_le32(p + 4) };
	return r;
}

void index_rec_keyword(const struct index_rec *rec, uint32_t *idx_r, const char **name_r,
		       size_t *len_r)
{
	*idx_r = index_le32(rec->payload);
	*len_r = index_le32(rec->payload + 4);
	*name_r = (const char *)rec->payload + 8;
}

void index_rec_rotate(const struct index_rec *rec, uint64_t *seq_r, uint64_t *offset_r)
{
	*seq_r = index_le64(rec->payload);
	*offset_r = index_le64(rec->payload + 8);
}

size_t index_rec_begin(struct textbuf *buf)
{
	size_t start = buf->len;
	uint8_t zero[INDEX_REC_HEADER_SIZE] = { 0 };
	textbuf_append(buf, zero, sizeof(zero));
	return start;
}

void index_put_u32(struct textbuf *buf, uint32_t v)
{
	uint8_t b[4];
	index_set_le32(b, v);
	textbuf_append(buf, b, 4);
}

void index_put_u64(struct textbuf *buf, uint64_t v)
{
	uint8_t b[8];
	index_set_le64(b, v);
	textbuf_append(buf, b, 8);
}

void index_put_msg(struct textbuf *buf, const struct mail_record *m)
{
	uint8_t b[INDEX_MSG_SIZE];
	index_set_le32(b, m->uid);
	index_set_le32(b + 4, m->flags & MAIL_FLAGS_MASK);
	index_set_le64(b + 8, m->modseq);
	index_set_le64(b + 16, m->keywords);
	index_set_le64(b + 24, (uint64_t)m->internal_date);
	index_set_le64(b + 32, m->size);
	memcpy(b + 40, m->guid, 16);
	textbuf_append(buf, b, sizeof(b));
}

void index_put_range(struct textbuf *buf, uint32_t first, uint32_t last)
{
	index_put_u32(buf, first);
	index_put_u32(buf, last);
}

void index_put_bytes_padded(struct textbuf *buf, const void *data, size_t len)
{
	static const uint8_t zero[8] = { 0 };
	textbuf_append(buf, data, len);
	textbuf_append(buf, zero, (8 - len % 8) % 8);
}

void index_rec_finish(struct textbuf *buf, size_t start, uint16_t type, uint16_t flags,
		      uint32_t count, uint64_t modseq, const struct index_state *state)
{
	static const uint8_t zero[8] = { 0 };
	textbuf_append(buf, zero, (8 - (buf->len - start) % 8) % 8);
	uint32_t size = (uint32_t)(buf->len - start + INDEX_REC_TRAILER_SIZE);
	index_put_u32(buf, size);
	index_put_u32(buf, 0);
	uint8_t *p = (uint8_t *)buf->data + start;
	index_set_le32(p, size);
	p[8] = (uint8_t)type;
	p[9] = (uint8_t)(type >> 8);
	p[10] = (uint8_t)flags;
	p[11] = (uint8_t)(flags >> 8);
	index_set_le32(p + 12, count);
	index_set_le64(p + 16, modseq);
	state_encode(state, p + 24);
	index_set_le32(p + 4, store_crc32c(0, p + 8, size - 8));
}

void index_rec_set_state(uint8_t *p, const struct index_state *state)
{
	uint32_t size = index_le32(p);
	state_encode(state, p + 24);
	index_set_le32(p + 4, store_crc32c(0, p + 8, size - 8));
}

static uint32_t log_header_crc(const uint8_t *p)
{
	uint32_t c = store_crc32c(0, p, INDEX_LOG_SYNCED_OFFSET);
	return store_crc32c(c, p + 40, INDEX_LOG_HEADER_SIZE - 40 - 4);
}

void index_log_header_encode(const struct index_log_header *h, uint8_t out[INDEX_LOG_HEADER_SIZE])
{
	memset(out, 0, INDEX_LOG_HEADER_SIZE);
	memcpy(out, log_magic, 8);
	index_set_le32(out + 8, INDEX_FORMAT_VERSION);
	index_set_le32(out + 12, INDEX_LOG_HEADER_SIZE);
	index_set_le64(out + 16, h->seq);
	index_set_le32(out + 24, h->uidvalidity);
	index_set_le64(out + INDEX_LOG_SYNCED_OFFSET, h->synced);
	state_encode(&h->state, out + 40);
	index_set_le32(out + INDEX_LOG_HEADER_SIZE - 4, log_header_crc(out));
}

int index_log_header_decode(const uint8_t *buf, size_t len, struct index_log_header *h,
			    const char **error_r)
{
	if (len < INDEX_LOG_HEADER_SIZE)
		return store_fail(error_r, STORE_E_CORRUPT, "log header truncated (%zu bytes)", len);
	if (memcmp(buf, log_magic, 8) != 0)
		return store_fail(error_r, STORE_E_CORRUPT, "not an index log (bad magic)");
	if (index_le32(buf + 8) != INDEX_FORMAT_VERSION ||
	    index_le32(buf + 12) != INDEX_LOG_HEADER_SIZE)
		return store_fail(error_r, STORE_E_CORRUPT, "unsupported index log version %u",
				  index_le32(buf + 8));
	if (log_header_crc(buf) != index_le32(buf + INDEX_LOG_HEADER_SIZE - 4))
		return store_fail(error_r, STORE_E_CORRUPT, "log header checksum mismatch");
	h->seq = index_le64(buf + 16);
	h->uidvalidity = index_le32(buf + 24);
	h->synced = index_le64(buf + INDEX_LOG_SYNCED_OFFSET);
	if (h->seq == 0 || h->uidvalidity == 0 || state_decode(buf + 40, &h->state) < 0)
		return store_fail(error_r, STORE_E_CORRUPT, "bad log header fields");
	return 0;
}

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

int index_snap_header_decode(const uint8_t *buf, size_t len, struct index_snap *s,
			     const char **error_r)
{
	if (len < INDEX_SNAP_HEADER_SIZE)
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot truncated (%zu bytes)", len);
	if (memcmp(buf, snap_magic, 8) != 0)
		return store_fail(error_r, STORE_E_CORRUPT, "not an index snapshot (bad magic)");
	if (index_le32(buf + 8) != INDEX_FORMAT_VERSION ||
	    index_le32(buf + 12) != INDEX_SNAP_HEADER_SIZE || index_le32(buf + 36) != INDEX_MSG_SIZE)
		return store_fail(error_r, STORE_E_CORRUPT, "unsupported snapshot version %u",
				  index_le32(buf + 8));
	if (store_crc32c(0, buf, INDEX_SNAP_HEADER_SIZE - 4) !=
	    index_le32(buf + INDEX_SNAP_HEADER_SIZE - 4))
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot header checksum mismatch");
	memset(s, 0, sizeof(*s));
	s->log_seq = index_le64(buf + 16);
	s->log_offset = index_le64(buf + 24);
	s->uidvalidity = index_le32(buf + 32);
	s->record_count = index_le32(buf + 88);
	s->keyword_bytes = index_le32(buf + 92);
	s->vanished_count = index_le32(buf + 96);
	s->absorb_count = index_le32(buf + 100);
	s->vanished_floor = index_le64(buf + 104);
	if (s->log_seq == 0 || s->log_offset < INDEX_LOG_HEADER_SIZE || s->uidvalidity == 0 ||
	    state_decode(buf + 40, &s->state) < 0 || s->record_count != s->state.messages)
		return store_fail(error_r, STORE_E_CORRUPT, "bad snapshot header fields");
	return 0;
}

int index_snap_keywords_check(const uint8_t *p, size_t bytes, uint32_t count)
{
	/* Exactly count valid NUL-terminated names, nothing after them. */
	size_t off = 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *nul = memchr(p + off, '\0', bytes - off);
		if (nul == NULL || !index_keyword_valid((const char *)p + off, (size_t)(nul - (p + off))))
			return -1;
		off = (size_t)(nul - p) + 1;
	}
	return off == bytes ? 0 : -1;
}

int index_snap_decode(const uint8_t *buf, size_t len, struct index_snap *s, const char **error_r)
{
	int ret = index_snap_header_decode(buf, len, s, error_r);
	if (ret < 0)
		return ret;
	uint64_t kw = pad8(s->keyword_bytes);
	uint64_t want = INDEX_SNAP_HEADER_SIZE + kw + (uint64_t)s->record_count * INDEX_MSG_SIZE +
			(uint64_t)s->vanished_count * INDEX_VANISHED_SIZE +
			(uint64_t)s->absorb_count * 16;
	if (want != len)
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot is %zu bytes, header says %llu",
				  len, (unsigned long long)want);
	if (store_crc32c(0, buf + INDEX_SNAP_HEADER_SIZE, len - INDEX_SNAP_HEADER_SIZE) !=
	    index_le32(buf + 112))
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot body checksum mismatch");
	const uint8_t *p = buf + INDEX_SNAP_HEADER_SIZE;
	s->keywords = p;
	if (index_snap_keywords_check(p, s->keyword_bytes, s->state.keywords) < 0)
		return store_fail(error_r, STORE_E_CORRUPT, "bad keyword table in snapshot");
	p += kw;
	s->records = p;
	p += (size_t)s->record_count * INDEX_MSG_SIZE;
	s->vanished = p;
	p += (size_t)s->vanished_count * INDEX_VANISHED_SIZE;
	s->absorb = p;
	return 0;
}

void index_snap_vanished(const struct index_snap *snap, uint32_t i, uint32_t *first_r,
			 uint32_t *last_r, uint64_t *modseq_r)
{
	const uint8_t *p = snap->vanished + (size_t)i * INDEX_VANISHED_SIZE;
	*first_r = index_le32(p);
	*last_r = index_le32(p + 4);
	*modseq_r = index_le64(p + 8);
}

void index_snap_encode_header(const struct index_snap *s, uint32_t body_crc,
			      uint8_t out[INDEX_SNAP_HEADER_SIZE])
{
	memset(out, 0, INDEX_SNAP_HEADER_SIZE);
	memcpy(out, snap_magic, 8);
	index_set_le32(out + 8, INDEX_FORMAT_VERSION);
	index_set_le32(out + 12, INDEX_SNAP_HEADER_SIZE);
	index_set_le64(out + 16, s->log_seq);
	index_set_le64(out + 24, s->log_offset);
	index_set_le32(out + 32, s->uidvalidity);
	index_set_le32(out + 36, INDEX_MSG_SIZE);
	state_encode(&s->state, out + 40);
	index_set_le32(out + 88, s->record_count);
	index_set_le32(out + 92, (uint32_t)s->keyword_bytes);
	index_set_le32(out + 96, s->vanished_count);
	index_set_le32(out + 100, s->absorb_count);
	index_set_le64(out + 104, s->vanished_floor);
	index_set_le32(out + 112, body_crc);
	index_set_le32(out + INDEX_SNAP_HEADER_SIZE - 4,
		       store_crc32c(0, out, INDEX_SNAP_HEADER_SIZE - 4));
}
