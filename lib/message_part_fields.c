#include "lib/message_part_fields.h"

#include <string.h>

#include "lib/message_address.h"
#include "lib/message_date.h"
#include "lib/mime_params.h"
#include "lib/rfc822_header.h"

enum content_field {
	CF_TYPE = 1 << 0,
	CF_ENCODING = 1 << 1,
	CF_DISPOSITION = 1 << 2,
	CF_ID = 1 << 3,
	CF_DESCRIPTION = 1 << 4,
	CF_LANGUAGE = 1 << 5,
	CF_LOCATION = 1 << 6,
	CF_MD5 = 1 << 7,
};

bool message_part_fields_over_budget(struct message_result *result)
{
	if (message_arena_used(result->arena) < MESSAGE_RESULT_MAX)
		return false;
	result->flags |= MESSAGE_RESULT_FLAG_BUDGET_LIMIT;
	return true;
}

static char *arena_strdup(struct message_arena *arena, const char *s)
{
	return message_arena_strndup(arena, s, strlen(s));
}

static void params_copy(struct message_arena *arena, const struct message_param *src,
			uint32_t count, struct message_param **dst_r)
{
	struct message_param *dst = NULL;
	if (count > 0) {
		dst = message_arena_alloc(arena, count * sizeof(*dst));
		for (uint32_t i = 0; i < count; i++) {
			dst[i].name = arena_strdup(arena, src[i].name);
			dst[i].value = arena_strdup(arena, src[i].value);
			dst[i].charset =
			    src[i].charset == NULL ? NULL : arena_strdup(arena, src[i].charset);
		}
	}
	*dst_r = dst;
}

/* Parsed in a scratch arena so that, over budget, only what structure
 * needs reaches the result. */
static void content_type(struct message_result *result, struct message_part *part,
			 const char *value, size_t len)
{
	struct message_arena *scratch = message_arena_create();
	struct message_arena *arena = result->arena;
	const char *type, *subtype;
	struct message_param *params;
	uint32_t count;

	if (mime_content_type_parse(scratch, value, len, &type, &subtype, &params, &count) == 0) {
		part->type = arena_strdup(arena, type);
		part->subtype = arena_strdup(arena, subtype);
		if (!message_part_fields_over_budget(result)) {
			params_copy(arena, params, count, &part->params);
			part->param_count = count;
		} else {
			const struct message_param *b =
			    message_param_find(params, count, "boundary");
			if (b != NULL && strlen(b->value) <= MESSAGE_BOUNDARY_MAX + 8) {
				params_copy(arena, b, 1, &part->params);
				part->param_count = 1;
			}
		}
	}
	message_arena_destroy(&scratch);
}

static void content_field(struct message_result *result, struct message_part *part,
			  struct message_part_fields *state, const void *name, size_t name_len,
			  const char *value, size_t len)
{
	static const struct {
		const char *name;
		enum content_field bit;
	} names[] = {
	    {"content-type", CF_TYPE},
	    {"content-transfer-encoding", CF_ENCODING},
	    {"content-disposition", CF_DISPOSITION},
	    {"content-id", CF_ID},
	    {"content-description", CF_DESCRIPTION},
	    {"content-language", CF_LANGUAGE},
	    {"content-location", CF_LOCATION},
	    {"content-md5", CF_MD5},
	};
	struct message_arena *arena = result->arena;
	enum content_field bit = 0;

	if (name_len < 8 || !rfc822_name_equals(name, 8, "content-"))
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (rfc822_name_equals(name, name_len, names[i].name)) {
			bit = names[i].bit;
			break;
		}
	}
	if (bit == 0 || (state->seen & bit) != 0)
		return;
	state->seen |= bit;
	if (bit == CF_TYPE) {
		content_type(result, part, value, len);
		return;
	}
	if (bit == CF_ENCODING) {
		/* Kept even over budget (at most MESSAGE_TOKEN_MAX bytes): it
		 * decides whether a message/rfc822 body is parsed. */
		part->encoding = mime_token_parse(arena, value, len);
		return;
	}
	if (message_part_fields_over_budget(result))
		return;
	switch (bit) {
	case CF_DISPOSITION: {
		const char *disp;
		struct message_param *params;
		uint32_t count;
		if (mime_disposition_parse(arena, value, len, &disp, &params, &count) == 0) {
			part->disposition = disp;
			part->disp_params = params;
			part->disp_param_count = count;
		}
		break;
	}
	case CF_ID:
		part->id = message_arena_strndup(arena, value, len);
		break;
	case CF_DESCRIPTION:
		part->description = message_arena_strndup(arena, value, len);
		break;
	case CF_LANGUAGE:
		part->language = mime_language_parse(arena, value, len);
		break;
	case CF_LOCATION:
		part->location = message_arena_strndup(arena, value, len);
		break;
	case CF_MD5:
		part->md5 = message_arena_strndup(arena, value, len);
		break;
	default:
		break;
	}
}

static void envelope_field(struct message_result *result, struct message_part *part,
			   struct message_part_fields *state, const void *name, size_t name_len,
			   const char *value, size_t len)
{
	static const char *const names[MESSAGE_ENV_COUNT] = {
	    [MESSAGE_ENV_DATE] = "date",
	    [MESSAGE_ENV_SUBJECT] = "subject",
	    [MESSAGE_ENV_FROM] = "from",
	    [MESSAGE_ENV_SENDER] = "sender",
	    [MESSAGE_ENV_REPLY_TO] = "reply-to",
	    [MESSAGE_ENV_TO] = "to",
	    [MESSAGE_ENV_CC] = "cc",
	    [MESSAGE_ENV_BCC] = "bcc",
	    [MESSAGE_ENV_IN_REPLY_TO] = "in-reply-to",
	    [MESSAGE_ENV_MESSAGE_ID] = "message-id",
	    [MESSAGE_ENV_REFERENCES] = "references",
	};
	struct message_envelope *env = part->envelope;
	int f;

	for (f = 0; f < MESSAGE_ENV_COUNT; f++) {
		if (rfc822_name_equals(name, name_len, names[f]))
			break;
	}
	if (f == MESSAGE_ENV_COUNT || (state->env_seen & (1u << f)) != 0)
		return;
	state->env_seen |= 1u << f;
	if (f == MESSAGE_ENV_DATE) {
		int64_t t;
		int32_t tz;
		if (message_date_parse(value, len, &t, &tz) == 0) {
			env->date_valid = true;
			env->date = t;
			env->date_tz = tz;
		}
	}
	if (message_part_fields_over_budget(result))
		return;
	env->raw[f] = message_arena_strndup(result->arena, value, len);
	if (MESSAGE_ENV_IS_ADDR(f))
		message_address_list_parse(result->arena, value, len,
					   &env->addr[f - MESSAGE_ENV_FROM]);
}

void message_part_fields_apply(struct message_result *result, struct message_part *part,
			       struct message_part_fields *state, const void *name, size_t name_len,
			       const char *value, size_t value_len)
{
	content_field(result, part, state, name, name_len, value, value_len);
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0)
		envelope_field(result, part, state, name, name_len, value, value_len);
}

void message_part_fields_complete(struct message_result *result, struct message_part *part)
{
	struct message_arena *arena = result->arena;

	if (part->type == NULL) {
		bool digest = false;
		if (part->parent != MESSAGE_PART_NONE) {
			const struct message_part *parent = &result->parts[part->parent];
			digest = strcmp(parent->type, "multipart") == 0 &&
				 strcmp(parent->subtype, "digest") == 0;
		}
		part->type = arena_strdup(arena, digest ? "message" : "text");
		part->subtype = arena_strdup(arena, digest ? "rfc822" : "plain");
		/* RFC 2045 5.2: the parameters of an invalid field go too. */
		part->params = NULL;
		part->param_count = 0;
	}
	if (strcmp(part->type, "text") == 0 &&
	    message_param_find(part->params, part->param_count, "charset") == NULL) {
		struct message_param *params =
		    message_arena_alloc(arena, (part->param_count + 1) * sizeof(*params));
		if (part->param_count > 0)
			memcpy(params, part->params, part->param_count * sizeof(*params));
		params[part->param_count] = (struct message_param){
		    arena_strdup(arena, "charset"), arena_strdup(arena, "us-ascii"), NULL};
		part->params = params;
		part->param_count++;
	}
}
