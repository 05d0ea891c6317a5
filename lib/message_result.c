#include "lib/message_result.h"

#include <stdlib.h>
#include <string.h>

#include "lib/rfc822_header.h"

struct message_result *message_result_create(void)
{
	struct message_result *r = calloc(1, sizeof(*r));
	if (r == NULL)
		abort();
	r->parts = calloc(1, sizeof(*r->parts));
	if (r->parts == NULL)
		abort();
	r->part_count = 1;
	r->parts[0].parent = MESSAGE_PART_NONE;
	r->parts[0].next = MESSAGE_PART_NONE;
	r->arena = message_arena_create();
	return r;
}

void message_result_free(struct message_result **result_p)
{
	struct message_result *r = *result_p;
	if (r == NULL)
		return;
	message_arena_destroy(&r->arena);
	free(r->parts);
	free(r);
	*result_p = NULL;
}

const struct message_part *message_part_child(const struct message_result *result,
					      const struct message_part *part, uint32_t n)
{
	if (n == 0 || n > part->children)
		return NULL;
	uint32_t idx = (uint32_t)(part - result->parts) + 1;
	for (uint32_t k = 1; k < n; k++) {
		idx = result->parts[idx].next;
		if (idx == MESSAGE_PART_NONE)
			return NULL;
	}
	return &result->parts[idx];
}

int message_result_find_section(const struct message_result *result, const char *section,
				const struct message_part **part_r, const char **error_r)
{
	const struct message_part *cur = &result->parts[0];
	const char *p = section;
	bool in_message = true; /* cur is a message whose body we number */

	if (*p == '\0') {
		*part_r = cur;
		return 1;
	}
	for (;;) {
		uint32_t n = 0;
		if (*p < '1' || *p > '9') {
			*error_r = "section part numbers are non-zero numbers separated by dots";
			return -1;
		}
		while (*p >= '0' && *p <= '9') {
			uint32_t d = (uint32_t)(*p++ - '0');
			if (n > (UINT32_MAX - d) / 10) {
				*error_r = "section part number too large";
				return -1;
			}
			n = n * 10 + d;
		}
		if (*p != '\0' && *p != '.') {
			*error_r = "section part numbers are non-zero numbers separated by dots";
			return -1;
		}
		const struct message_part *next = NULL;
		const struct message_part *container = cur;
		if (!in_message && (cur->flags & MESSAGE_PART_FLAG_RFC822) != 0) {
			/* Numbers under a message/rfc822 part number its message. */
			container = &result->parts[(cur - result->parts) + 1];
			in_message = true;
		}
		if ((container->flags & MESSAGE_PART_FLAG_MULTIPART) != 0)
			next = message_part_child(result, container, n);
		else if (in_message && n == 1)
			next = container;
		if (next == NULL) {
			/* Keep checking the syntax of the rest. */
			while (*p == '.' || (*p >= '0' && *p <= '9')) {
				if (*p == '.' && (p[1] < '1' || p[1] > '9')) {
					*error_r = "section part numbers are non-zero numbers "
						   "separated by dots";
					return -1;
				}
				p++;
			}
			return 0;
		}
		cur = next;
		in_message = false;
		if (*p == '\0')
			break;
		p++;
	}
	*part_r = cur;
	return 1;
}

const struct message_part *message_part_message(const struct message_result *result,
						const struct message_part *part)
{
	if ((part->flags & MESSAGE_PART_FLAG_RFC822) != 0)
		return &result->parts[(part - result->parts) + 1];
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0)
		return part;
	return NULL;
}

const struct message_field *message_part_field_find(const struct message_part *part,
						    const char *name, uint32_t index)
{
	for (uint32_t i = 0; i < part->field_count; i++) {
		const struct message_field *f = &part->fields[i];
		if (rfc822_name_equals(f->raw, f->name_len, name)) {
			if (index == 0)
				return f;
			index--;
		}
	}
	return NULL;
}

int message_part_header_get(const struct message_part *part, const char *name, uint32_t index,
			    struct textbuf *value_r)
{
	const struct message_field *f = message_part_field_find(part, name, index);
	if (f == NULL)
		return 0;
	rfc822_unfold(f->raw + f->value_offset, f->raw_len - f->value_offset, value_r);
	return 1;
}

const struct message_param *message_param_find(const struct message_param *params, uint32_t count,
					       const char *name)
{
	for (uint32_t i = 0; i < count; i++) {
		if (rfc822_name_equals(params[i].name, strlen(params[i].name), name))
			return &params[i];
	}
	return NULL;
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool params_eq(const struct message_param *a, uint32_t na, const struct message_param *b,
		      uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++) {
		if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value) ||
		    !str_eq(a[i].charset, b[i].charset))
			return false;
	}
	return true;
}

static bool envelope_eq(const struct message_envelope *a, const struct message_envelope *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	for (int f = 0; f < MESSAGE_ENV_COUNT; f++) {
		if (!str_eq(a->raw[f], b->raw[f]))
			return false;
	}
	for (int k = 0; k < MESSAGE_ENV_ADDR_COUNT; k++) {
		const struct message_address_list *la = &a->addr[k], *lb = &b->addr[k];
		if (la->count != lb->count)
			return false;
		for (uint32_t i = 0; i < la->count; i++) {
			const struct message_address *x = &la->addrs[i], *y = &lb->addrs[i];
			if (!str_eq(x->name, y->name) || !str_eq(x->adl, y->adl) ||
			    !str_eq(x->mailbox, y->mailbox) || !str_eq(x->host, y->host))
				return false;
		}
	}
	return a->date_valid == b->date_valid && a->date == b->date && a->date_tz == b->date_tz;
}

static bool part_eq(const struct message_part *a, const struct message_part *b)
{
	if (a->parent != b->parent || a->next != b->next || a->children != b->children ||
	    a->depth != b->depth || a->flags != b->flags || a->header_offset != b->header_offset ||
	    a->body_offset != b->body_offset || a->body_end != b->body_end ||
	    a->body_lines != b->body_lines)
		return false;
	if (!str_eq(a->type, b->type) || !str_eq(a->subtype, b->subtype) ||
	    !params_eq(a->params, a->param_count, b->params, b->param_count) ||
	    !str_eq(a->disposition, b->disposition) ||
	    !params_eq(a->disp_params, a->disp_param_count, b->disp_params, b->disp_param_count))
		return false;
	if (!str_eq(a->id, b->id) || !str_eq(a->description, b->description) ||
	    !str_eq(a->encoding, b->encoding) || !str_eq(a->language, b->language) ||
	    !str_eq(a->location, b->location) || !str_eq(a->md5, b->md5))
		return false;
	if (a->field_count != b->field_count)
		return false;
	for (uint32_t i = 0; i < a->field_count; i++) {
		const struct message_field *x = &a->fields[i], *y = &b->fields[i];
		if (x->raw_len != y->raw_len || x->name_len != y->name_len ||
		    x->value_offset != y->value_offset || x->offset != y->offset ||
		    x->size != y->size || memcmp(x->raw, y->raw, x->raw_len) != 0)
			return false;
	}
	return envelope_eq(a->envelope, b->envelope);
}

bool message_result_equal(const struct message_result *a, const struct message_result *b)
{
	if (a->size != b->size || a->flags != b->flags || a->part_count != b->part_count)
		return false;
	for (uint32_t i = 0; i < a->part_count; i++) {
		if (!part_eq(&a->parts[i], &b->parts[i]))
			return false;
	}
	return true;
}
