/*
 * directory_record: encoder and bounds-checked decoder of directory values
 * (format in storage/directory_record.h and docs/storage-format.md).
 * Pure: no I/O; the decoders never allocate.
 */
#include "storage/directory_record.h"

#include <stdbool.h>
#include <string.h>

#define RECORD_TYPE_USER 'U'
#define RECORD_TYPE_GROUP 'G'
#define RECORD_TYPE_DOMAIN 'D'

/* ---- encoding ---- */

static void record_put_varint(struct textbuf *out, uint64_t v)
{
	unsigned char buf[10];
	size_t n = 0;

	do {
		unsigned char b = v & 0x7f;
		v >>= 7;
		buf[n++] = v != 0 ? (unsigned char)(b | 0x80) : b;
	} while (v != 0);
	textbuf_append(out, buf, n);
}

static size_t record_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint64_t record_zigzag(int64_t v)
{
	return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int64_t record_unzigzag(uint64_t v)
{
	return (int64_t)((v >> 1) ^ (~(v & 1) + 1));
}

static void record_put_uint(struct textbuf *out, unsigned tag, uint64_t v)
{
	record_put_varint(out, tag);
	record_put_varint(out, record_varint_len(v));
	record_put_varint(out, v);
}

/* Appends a string field unless empty; INVALID if the array holds no NUL. */
static int record_put_string(struct textbuf *out, unsigned tag, const char *s, size_t size)
{
	size_t len = strnlen(s, size);
	if (len == size)
		return DIRECTORY_E_INVALID;
	if (len == 0)
		return DIRECTORY_OK;
	record_put_varint(out, tag);
	record_put_varint(out, len);
	textbuf_append(out, s, len);
	return DIRECTORY_OK;
}

static void record_begin(struct textbuf *out, char type)
{
	textbuf_truncate(out, 0);
	textbuf_putc(out, (char)DIRECTORY_RECORD_VERSION);
	textbuf_putc(out, type);
}

int directory_record_user_encode(const struct directory_user *u, struct textbuf *out)
{
	record_begin(out, RECORD_TYPE_USER);
	if (record_put_string(out, DIRECTORY_TAG_PASSWORD_HASH, u->password_hash,
			      sizeof(u->password_hash)) < 0 ||
	    record_put_string(out, DIRECTORY_TAG_DISPLAY_NAME, u->display_name,
			      sizeof(u->display_name)) < 0 ||
	    record_put_string(out, DIRECTORY_TAG_SECRET, u->secret, sizeof(u->secret)) < 0) {
		textbuf_truncate(out, 0);
		return DIRECTORY_E_INVALID;
	}
	if (u->quota_bytes != 0)
		record_put_uint(out, DIRECTORY_TAG_QUOTA, u->quota_bytes);
	record_put_uint(out, DIRECTORY_TAG_FLAGS, u->enabled ? DIRECTORY_FLAG_ENABLED : 0);
	record_put_uint(out, DIRECTORY_TAG_CREATED, record_zigzag(u->created));
	return DIRECTORY_OK;
}

int directory_record_group_encode(const struct directory_group *g, struct textbuf *out)
{
	record_begin(out, RECORD_TYPE_GROUP);
	if (record_put_string(out, DIRECTORY_TAG_DISPLAY_NAME, g->display_name,
			      sizeof(g->display_name)) < 0) {
		textbuf_truncate(out, 0);
		return DIRECTORY_E_INVALID;
	}
	record_put_uint(out, DIRECTORY_TAG_CREATED, record_zigzag(g->created));
	return DIRECTORY_OK;
}

int directory_record_domain_encode(int64_t created, struct textbuf *out)
{
	struct directory_domain d = {.created = created};
	return directory_record_domain_encode_settings(&d, out);
}

/* Flags are written only when set, so a domain without settings encodes
 * exactly as records did before settings existed. */
int directory_record_domain_encode_settings(const struct directory_domain *d, struct textbuf *out)
{
	record_begin(out, RECORD_TYPE_DOMAIN);
	if (record_put_string(out, DIRECTORY_TAG_KERBEROS_REALM, d->kerberos_realm,
			      sizeof(d->kerberos_realm)) < 0) {
		textbuf_truncate(out, 0);
		return DIRECTORY_E_INVALID;
	}
	if (d->shared_secret_auth)
		record_put_uint(out, DIRECTORY_TAG_FLAGS, DIRECTORY_DOMAIN_FLAG_SHARED_SECRET);
	record_put_uint(out, DIRECTORY_TAG_CREATED, record_zigzag(d->created));
	return DIRECTORY_OK;
}

/* ---- decoding ---- */

struct record_reader {
	const unsigned char *p, *end;
};

/* Reads one LEB128 varint; false when truncated or over 64 bits. */
static bool record_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v_r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return false;
		unsigned char b = *(*p)++;
		if (shift == 63 && (b & 0x7e) != 0)
			return false;
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v_r = v;
			return true;
		}
	}
	return false;
}

static bool record_open(struct record_reader *r, const void *data, size_t len, char type)
{
	if (data == NULL || len < 2)
		return false;
	r->p = data;
	r->end = r->p + len;
	if (r->p[0] != DIRECTORY_RECORD_VERSION || r->p[1] != (unsigned char)type)
		return false;
	r->p += 2;
	return true;
}

/* 1 with the next field, 0 at the end, -1 when the record is corrupt. */
static int record_next(struct record_reader *r, uint64_t *tag_r, const unsigned char **val_r,
		       size_t *len_r)
{
	uint64_t len;

	if (r->p == r->end)
		return 0;
	if (!record_get_varint(&r->p, r->end, tag_r) || !record_get_varint(&r->p, r->end, &len))
		return -1;
	if (len > (uint64_t)(r->end - r->p))
		return -1;
	*val_r = r->p;
	*len_r = (size_t)len;
	r->p += len;
	return 1;
}

static bool record_get_string(const unsigned char *val, size_t len, char *dst, size_t dst_size)
{
	if (len >= dst_size || memchr(val, '\0', len) != NULL)
		return false;
	memcpy(dst, val, len);
	dst[len] = '\0';
	return true;
}

/* An integer field is exactly one varint. */
static bool record_get_uint(const unsigned char *val, size_t len, uint64_t *v_r)
{
	const unsigned char *p = val;
	return record_get_varint(&p, val + len, v_r) && p == val + len;
}

int directory_record_user_decode(const void *data, size_t len, struct directory_user *u_r)
{
	struct record_reader r;
	const unsigned char *val;
	size_t vlen;
	uint64_t tag, v;
	int ret;

	memset(u_r, 0, sizeof(*u_r));
	if (!record_open(&r, data, len, RECORD_TYPE_USER))
		goto corrupt;
	while ((ret = record_next(&r, &tag, &val, &vlen)) > 0) {
		bool ok = true;
		switch (tag) {
		case DIRECTORY_TAG_PASSWORD_HASH:
			ok = record_get_string(val, vlen, u_r->password_hash,
					       sizeof(u_r->password_hash));
			break;
		case DIRECTORY_TAG_DISPLAY_NAME:
			ok = record_get_string(val, vlen, u_r->display_name,
					       sizeof(u_r->display_name));
			break;
		case DIRECTORY_TAG_QUOTA:
			ok = record_get_uint(val, vlen, &u_r->quota_bytes);
			break;
		case DIRECTORY_TAG_FLAGS:
			ok = record_get_uint(val, vlen, &v);
			u_r->enabled = ok && (v & DIRECTORY_FLAG_ENABLED) != 0;
			break;
		case DIRECTORY_TAG_CREATED:
			ok = record_get_uint(val, vlen, &v);
			u_r->created = record_unzigzag(v);
			break;
		case DIRECTORY_TAG_SECRET:
			ok = record_get_string(val, vlen, u_r->secret, sizeof(u_r->secret));
			break;
		default:
			break;
		}
		if (!ok)
			goto corrupt;
	}
	if (ret == 0)
		return DIRECTORY_OK;
corrupt:
	memset(u_r, 0, sizeof(*u_r));
	return DIRECTORY_E_CORRUPT;
}

int directory_record_group_decode(const void *data, size_t len, struct directory_group *g_r)
{
	struct record_reader r;
	const unsigned char *val;
	size_t vlen;
	uint64_t tag, v;
	int ret;

	memset(g_r, 0, sizeof(*g_r));
	if (!record_open(&r, data, len, RECORD_TYPE_GROUP))
		goto corrupt;
	while ((ret = record_next(&r, &tag, &val, &vlen)) > 0) {
		bool ok = true;
		if (tag == DIRECTORY_TAG_DISPLAY_NAME) {
			ok = record_get_string(val, vlen, g_r->display_name,
					       sizeof(g_r->display_name));
		} else if (tag == DIRECTORY_TAG_CREATED) {
			ok = record_get_uint(val, vlen, &v);
			g_r->created = record_unzigzag(v);
		}
		if (!ok)
			goto corrupt;
	}
	if (ret == 0)
		return DIRECTORY_OK;
corrupt:
	memset(g_r, 0, sizeof(*g_r));
	return DIRECTORY_E_CORRUPT;
}

int directory_record_domain_decode(const void *data, size_t len, int64_t *created_r)
{
	struct directory_domain d;
	int ret = directory_record_domain_decode_settings(data, len, &d);
	*created_r = d.created;
	return ret;
}

int directory_record_domain_decode_settings(const void *data, size_t len,
					    struct directory_domain *d_r)
{
	struct record_reader r;
	const unsigned char *val;
	size_t vlen;
	uint64_t tag, v = 0;
	int ret;

	memset(d_r, 0, sizeof(*d_r));
	if (!record_open(&r, data, len, RECORD_TYPE_DOMAIN))
		return DIRECTORY_E_CORRUPT;
	while ((ret = record_next(&r, &tag, &val, &vlen)) > 0) {
		bool ok = true;
		if (tag == DIRECTORY_TAG_CREATED) {
			ok = record_get_uint(val, vlen, &v);
			d_r->created = record_unzigzag(v);
		} else if (tag == DIRECTORY_TAG_FLAGS) {
			ok = record_get_uint(val, vlen, &v);
			d_r->shared_secret_auth =
			    ok && (v & DIRECTORY_DOMAIN_FLAG_SHARED_SECRET) != 0;
		} else if (tag == DIRECTORY_TAG_KERBEROS_REALM) {
			ok = record_get_string(val, vlen, d_r->kerberos_realm,
					       sizeof(d_r->kerberos_realm));
		}
		if (!ok) {
			memset(d_r, 0, sizeof(*d_r));
			return DIRECTORY_E_CORRUPT;
		}
	}
	if (ret < 0) {
		memset(d_r, 0, sizeof(*d_r));
		return DIRECTORY_E_CORRUPT;
	}
	return DIRECTORY_OK;
}
