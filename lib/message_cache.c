#include "lib/message_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char cache_magic[4] = {'C', 'M', 'M', 'C'};
#define CHECKSUM_SIZE 8
/* The smallest possible encoded part, to bound counts before allocating. */
#define PART_MIN_BYTES 16

uint64_t message_cache_checksum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* --- encoding --------------------------------------------------------- */

static void put_varint(struct textbuf *out, uint64_t v)
{
	unsigned char b[10];
	size_t n = 0;
	do {
		unsigned char byte = v & 0x7f;
		v >>= 7;
		if (v != 0)
			byte |= 0x80;
		b[n++] = byte;
	} while (v != 0);
	textbuf_append(out, b, n);
}

static void put_svarint(struct textbuf *out, int64_t v)
{
	put_varint(out, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_str(struct textbuf *out, const char *s)
{
	size_t len = strlen(s);
	put_varint(out, len);
	textbuf_append(out, s, len);
}

static void put_nstr(struct textbuf *out, const char *s)
{
	if (s == NULL) {
		put_varint(out, 0);
		return;
	}
	size_t len = strlen(s);
	put_varint(out, (uint64_t)len + 1);
	textbuf_append(out, s, len);
}

static void put_params(struct textbuf *out, const struct message_param *params, uint32_t count)
{
	put_varint(out, count);
	for (uint32_t i = 0; i < count; i++) {
		put_str(out, params[i].name);
		put_str(out, params[i].value);
		put_nstr(out, params[i].charset);
	}
}

static void put_envelope(struct textbuf *out, const struct message_envelope *env)
{
	for (int f = 0; f < MESSAGE_ENV_COUNT; f++)
		put_nstr(out, env->raw[f]);
	for (int k = 0; k < MESSAGE_ENV_ADDR_COUNT; k++) {
		const struct message_address_list *l = &env->addr[k];
		put_varint(out, l->count);
		for (uint32_t i = 0; i < l->count; i++) {
			put_nstr(out, l->addrs[i].name);
			put_nstr(out, l->addrs[i].adl);
			put_nstr(out, l->addrs[i].mailbox);
			put_nstr(out, l->addrs[i].host);
		}
	}
	textbuf_putc(out, env->date_valid ? 1 : 0);
	if (env->date_valid) {
		put_svarint(out, env->date);
		put_svarint(out, env->date_tz);
	}
}

static void put_part(struct textbuf *out, const struct message_part *part)
{
	put_varint(out, part->children);
	put_varint(out, part->flags);
	put_varint(out, part->header_offset);
	put_varint(out, part->body_offset - part->header_offset);
	put_varint(out, part->body_end - part->body_offset);
	put_varint(out, part->body_lines);
	put_str(out, part->type);
	put_str(out, part->subtype);
	put_params(out, part->params, part->param_count);
	put_nstr(out, part->disposition);
	put_params(out, part->disp_params, part->disp_param_count);
	put_nstr(out, part->id);
	put_nstr(out, part->description);
	put_nstr(out, part->encoding);
	put_nstr(out, part->language);
	put_nstr(out, part->location);
	put_nstr(out, part->md5);
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) == 0)
		return;
	put_envelope(out, part->envelope);
	put_varint(out, part->field_count);
	for (uint32_t i = 0; i < part->field_count; i++) {
		const struct message_field *f = &part->fields[i];
		put_varint(out, f->offset - part->header_offset);
		put_varint(out, f->size);
		put_varint(out, f->raw_len);
		textbuf_append(out, f->raw, f->raw_len);
		put_varint(out, f->name_len);
		put_varint(out, f->value_offset);
	}
}

void message_cache_encode(const struct message_result *result, struct textbuf *out)
{
	size_t start = out->len;
	textbuf_append(out, cache_magic, sizeof(cache_magic));
	textbuf_putc(out, MESSAGE_CACHE_VERSION);
	put_varint(out, result->size);
	put_varint(out, result->flags);
	put_varint(out, result->part_count);
	for (uint32_t i = 0; i < result->part_count; i++)
		put_part(out, &result->parts[i]);
	uint64_t sum = message_cache_checksum(out->data + start, out->len - start);
	unsigned char b[CHECKSUM_SIZE];
	for (int i = 0; i < CHECKSUM_SIZE; i++)
		b[i] = (unsigned char)(sum >> (8 * i));
	textbuf_append(out, b, sizeof(b));
}

/* --- decoding --------------------------------------------------------- */

struct reader {
	const unsigned char *p, *end;
	struct message_arena *arena;
	const char *error;
};

static bool fail(struct reader *r, const char *error)
{
	if (r->error == NULL)
		r->error = error;
	r->p = r->end;
	return false;
}

static size_t left(const struct reader *r)
{
	return (size_t)(r->end - r->p);
}

static bool get_varint(struct reader *r, uint64_t *v_r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return fail(r, "truncated");
		unsigned char b = *r->p++;
		if (shift == 63 && b > 1)
			return fail(r, "integer overflow");
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			if (b == 0 && shift > 0)
				return fail(r, "non-minimal integer");
			*v_r = v;
			return true;
		}
	}
	return fail(r, "integer overflow");
}

static bool get_u32(struct reader *r, uint32_t max, uint32_t *v_r)
{
	uint64_t v;
	if (!get_varint(r, &v))
		return false;
	if (v > max)
		return fail(r, "count or value out of range");
	*v_r = (uint32_t)v;
	return true;
}

static bool get_svarint(struct reader *r, int64_t *v_r)
{
	uint64_t v;
	if (!get_varint(r, &v))
		return false;
	*v_r = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
	return true;
}

static bool get_bytes(struct reader *r, uint64_t len, const unsigned char **p_r)
{
	if (len > left(r))
		return fail(r, "truncated");
	*p_r = r->p;
	r->p += len;
	return true;
}

static bool get_str_len(struct reader *r, uint64_t len, const char **s_r)
{
	const unsigned char *p;
	if (!get_bytes(r, len, &p))
		return false;
	if (len > 0 && memchr(p, '\0', len) != NULL)
		return fail(r, "NUL inside a string");
	*s_r = message_arena_memdup(r->arena, p, len);
	return true;
}

static bool get_str(struct reader *r, const char **s_r)
{
	uint64_t len;
	return get_varint(r, &len) && get_str_len(r, len, s_r);
}

static bool get_nstr(struct reader *r, const char **s_r)
{
	uint64_t len;
	if (!get_varint(r, &len))
		return false;
	if (len == 0) {
		*s_r = NULL;
		return true;
	}
	return get_str_len(r, len - 1, s_r);
}

static bool get_params(struct reader *r, struct message_param **params_r, uint32_t *count_r)
{
	uint32_t count;
	if (!get_u32(r, MESSAGE_PARAMS_MAX, &count))
		return false;
	if (count > left(r) / 3)
		return fail(r, "truncated");
	struct message_param *params = NULL;
	if (count > 0)
		params = message_arena_alloc(r->arena, count * sizeof(*params));
	for (uint32_t i = 0; i < count; i++) {
		if (!get_str(r, &params[i].name) || !get_str(r, &params[i].value) ||
		    !get_nstr(r, &params[i].charset))
			return false;
		if (params[i].name[0] == '\0')
			return fail(r, "empty parameter name");
	}
	*params_r = params;
	*count_r = count;
	return true;
}

static bool get_envelope(struct reader *r, struct message_envelope *env)
{
	for (int f = 0; f < MESSAGE_ENV_COUNT; f++) {
		if (!get_nstr(r, &env->raw[f]))
			return false;
	}
	for (int k = 0; k < MESSAGE_ENV_ADDR_COUNT; k++) {
		struct message_address_list *l = &env->addr[k];
		uint32_t count;
		if (!get_u32(r, UINT32_MAX, &count))
			return false;
		if (count > left(r) / 4)
			return fail(r, "truncated");
		if (count > 0)
			l->addrs = message_arena_alloc(r->arena, count * sizeof(*l->addrs));
		for (uint32_t i = 0; i < count; i++) {
			struct message_address *a = &l->addrs[i];
			if (!get_nstr(r, &a->name) || !get_nstr(r, &a->adl) ||
			    !get_nstr(r, &a->mailbox) || !get_nstr(r, &a->host))
				return false;
		}
		l->count = count;
	}
	const unsigned char *b;
	if (!get_bytes(r, 1, &b))
		return false;
	if (*b > 1)
		return fail(r, "bad date flag");
	env->date_valid = *b == 1;
	if (env->date_valid) {
		int64_t date, tz;
		if (!get_svarint(r, &date) || !get_svarint(r, &tz))
			return false;
		if (tz < -24 * 60 || tz > 24 * 60)
			return fail(r, "bad time zone");
		env->date = date;
		env->date_tz = (int32_t)tz;
	}
	return true;
}

static bool get_fields(struct reader *r, struct message_part *part)
{
	uint32_t count;
	uint64_t header_size = part->body_offset - part->header_offset;
	if (!get_u32(r, MESSAGE_FIELDS_MAX, &count))
		return false;
	if (count > left(r) / 6)
		return fail(r, "truncated");
	if (count > 0)
		part->fields = message_arena_alloc(r->arena, count * sizeof(*part->fields));
	for (uint32_t i = 0; i < count; i++) {
		struct message_field *f = &part->fields[i];
		uint64_t delta, size, raw_len;
		const unsigned char *raw;
		if (!get_varint(r, &delta) || !get_varint(r, &size) || !get_varint(r, &raw_len))
			return false;
		if (delta > header_size || size > header_size - delta)
			return fail(r, "field outside its header");
		if (raw_len > size || raw_len > MESSAGE_FIELD_MAX)
			return fail(r, "bad field length");
		if (!get_bytes(r, raw_len, &raw))
			return false;
		if (!get_u32(r, (uint32_t)raw_len, &f->name_len) ||
		    !get_u32(r, (uint32_t)raw_len, &f->value_offset))
			return false;
		if (f->name_len == 0 || f->value_offset <= f->name_len ||
		    raw[f->value_offset - 1] != ':')
			return fail(r, "bad field name");
		f->raw = message_arena_memdup(r->arena, raw, raw_len);
		f->raw_len = (uint32_t)raw_len;
		f->offset = part->header_offset + delta;
		f->size = size;
	}
	part->field_count = count;
	return true;
}

static bool get_part(struct reader *r, uint64_t msg_size, struct message_part *part)
{
	uint64_t header_size, body_size;
	if (!get_u32(r, MESSAGE_PARTS_MAX, &part->children) ||
	    !get_u32(r, MESSAGE_PART_FLAGS_ALL, &part->flags) ||
	    !get_varint(r, &part->header_offset) || !get_varint(r, &header_size) ||
	    !get_varint(r, &body_size) || !get_varint(r, &part->body_lines))
		return false;
	if (part->header_offset > msg_size || header_size > msg_size - part->header_offset ||
	    body_size > msg_size - part->header_offset - header_size)
		return fail(r, "part outside the message");
	part->body_offset = part->header_offset + header_size;
	part->body_end = part->body_offset + body_size;
	if (part->body_lines > body_size)
		return fail(r, "more lines than bytes");
	if (!get_str(r, &part->type) || !get_str(r, &part->subtype))
		return false;
	if (part->type[0] == '\0' || part->subtype[0] == '\0')
		return fail(r, "empty content type");
	if (!get_params(r, &part->params, &part->param_count) || !get_nstr(r, &part->disposition) ||
	    !get_params(r, &part->disp_params, &part->disp_param_count) ||
	    !get_nstr(r, &part->id) || !get_nstr(r, &part->description) ||
	    !get_nstr(r, &part->encoding) || !get_nstr(r, &part->language) ||
	    !get_nstr(r, &part->location) || !get_nstr(r, &part->md5))
		return false;
	if (part->disposition == NULL && part->disp_param_count > 0)
		return fail(r, "disposition parameters without a disposition");
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0) {
		part->envelope = message_arena_alloc(r->arena, sizeof(*part->envelope));
		if (!get_envelope(r, part->envelope) || !get_fields(r, part))
			return false;
	}
	return true;
}

/* The tree shape and offsets of the decoded parts: links are rebuilt from
 * the pre-order and child counts, and checked against the flags. */
static bool link_parts(struct reader *r, struct message_result *res)
{
	uint32_t stack[MESSAGE_DEPTH_MAX + 1];
	uint32_t remaining[MESSAGE_DEPTH_MAX + 1];
	uint32_t last[MESSAGE_DEPTH_MAX + 1];
	unsigned int sp = 0;
	struct message_part *parts = res->parts;

	if (parts[0].header_offset != 0 || parts[0].body_end != res->size)
		return fail(r, "root does not span the message");
	for (uint32_t i = 0; i < res->part_count; i++) {
		struct message_part *part = &parts[i];
		while (sp > 0 && remaining[sp - 1] == 0)
			sp--;
		if (i > 0 && sp == 0)
			return fail(r, "more parts than the tree holds");
		part->next = MESSAGE_PART_NONE;
		if (i == 0) {
			part->parent = MESSAGE_PART_NONE;
			part->depth = 0;
		} else {
			uint32_t pi = stack[sp - 1];
			struct message_part *parent = &parts[pi];
			part->parent = pi;
			part->depth = parent->depth + 1;
			remaining[sp - 1]--;
			if (part->header_offset < parent->body_offset ||
			    part->body_end > parent->body_end)
				return fail(r, "part outside its parent");
			if (last[sp - 1] != MESSAGE_PART_NONE) {
				if (part->header_offset < parts[last[sp - 1]].body_end)
					return fail(r, "parts overlap");
				parts[last[sp - 1]].next = i;
			}
			last[sp - 1] = i;
			if ((parent->flags & MESSAGE_PART_FLAG_RFC822) != 0 &&
			    (part->header_offset != parent->body_offset ||
			     part->body_end != parent->body_end))
				return fail(r, "message does not fill its message/rfc822 part");
		}
		bool is_message = i == 0 || (parts[part->parent].flags & MESSAGE_PART_FLAG_RFC822);
		if (is_message != ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0))
			return fail(r, "message flag does not match the tree");
		bool multipart = (part->flags & MESSAGE_PART_FLAG_MULTIPART) != 0;
		bool rfc822 = (part->flags & MESSAGE_PART_FLAG_RFC822) != 0;
		if (multipart && (rfc822 || strcmp(part->type, "multipart") != 0))
			return fail(r, "multipart flag on a non-multipart");
		if (rfc822 && (strcmp(part->type, "message") != 0 ||
			       strcmp(part->subtype, "rfc822") != 0 || part->children != 1))
			return fail(r, "rfc822 flag on a non-message/rfc822");
		if (!multipart && !rfc822 && part->children != 0)
			return fail(r, "children under a leaf");
		if (part->children > 0) {
			if (sp > MESSAGE_DEPTH_MAX || part->depth >= MESSAGE_DEPTH_MAX)
				return fail(r, "parts nested too deep");
			stack[sp] = i;
			remaining[sp] = part->children;
			last[sp] = MESSAGE_PART_NONE;
			sp++;
		}
	}
	while (sp > 0 && remaining[sp - 1] == 0)
		sp--;
	if (sp != 0)
		return fail(r, "fewer parts than the tree holds");
	return true;
}

int message_cache_decode(const void *data, size_t len, struct message_result **result_r,
			 const char **error_r)
{
	const unsigned char *d = data;
	struct reader r = {NULL, NULL, NULL, NULL};
	uint64_t size = 0;
	uint32_t flags = 0, count = 0;

	if (len < sizeof(cache_magic) + 1 + CHECKSUM_SIZE ||
	    memcmp(d, cache_magic, sizeof(cache_magic)) != 0) {
		*error_r = "not a message cache record";
		return -1;
	}
	if (d[4] != MESSAGE_CACHE_VERSION) {
		*error_r = "unsupported message cache version";
		return -1;
	}
	uint64_t want = 0;
	for (int i = 0; i < CHECKSUM_SIZE; i++)
		want |= (uint64_t)d[len - CHECKSUM_SIZE + i] << (8 * i);
	if (message_cache_checksum(d, len - CHECKSUM_SIZE) != want) {
		*error_r = "checksum mismatch";
		return -1;
	}

	struct message_result *res = message_result_create();
	r.p = d + 5;
	r.end = d + len - CHECKSUM_SIZE;
	r.arena = res->arena;
	if (get_varint(&r, &size) && get_u32(&r, MESSAGE_RESULT_FLAGS_ALL, &flags) &&
	    get_u32(&r, MESSAGE_PARTS_MAX, &count)) {
		if (count == 0 || count > left(&r) / PART_MIN_BYTES + 1)
			fail(&r, "bad part count");
	}
	if (r.error == NULL) {
		res->size = size;
		res->flags = flags;
		free(res->parts);
		res->parts = calloc(count, sizeof(*res->parts));
		if (res->parts == NULL)
			abort();
		res->part_count = count;
		for (uint32_t i = 0; i < count && r.error == NULL; i++)
			get_part(&r, size, &res->parts[i]);
		if (r.error == NULL && r.p != r.end)
			fail(&r, "trailing bytes");
		if (r.error == NULL)
			link_parts(&r, res);
	}
	if (r.error != NULL) {
		*error_r = r.error;
		message_result_free(&res);
		return -1;
	}
	*result_r = res;
	return 0;
}
