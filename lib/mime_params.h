/*
 * mime_params: the values of MIME header fields (RFC 2045, RFC 2183,
 * RFC 2231, RFC 3282): Content-Type "type/subtype; params",
 * Content-Disposition "type; params", Content-Transfer-Encoding and
 * Content-Language. Results are allocated in the caller's message arena.
 *
 * Parameters (the format is documented at struct message_param): names are
 * lowercased; RFC 2231 continuations ("name*0", "name*1*", ...) are joined
 * in index order from 0 up to the first missing index, %XX-decoded where
 * marked "*", and converted to UTF-8 when their charset is one
 * lib/message_charset.h knows (else kept raw with the charset named). When
 * a name appears both plain and in RFC 2231 form, the RFC 2231 form wins
 * (senders add the plain one for old readers); otherwise the first
 * occurrence of a name wins. Unquoted values are accepted leniently (any
 * bytes up to ';', whitespace, '"' or '('), since "boundary=----=_Part"
 * and "name=a/b.pdf" are common; a parameter without '=' or a run of
 * garbage is skipped up to the next ';'. At most MESSAGE_PARAMS_MAX raw
 * parameters are read per field.
 *
 * Security stance: input hostile; bounded by its length and the limits
 * above; no recursion.
 */
#ifndef CM_LIB_MIME_PARAMS_H
#define CM_LIB_MIME_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/message_arena.h"
#include "lib/message_result.h"

/* Content-Type. Returns 0 with lowercased type and subtype (RFC 2045
 * tokens, each at most MESSAGE_TOKEN_MAX) and the parameters, or -1 if the
 * value has no valid "type/subtype" (the caller then applies the default;
 * outputs untouched). */
int mime_content_type_parse(struct message_arena *arena, const void *value, size_t len,
			    const char **type_r, const char **subtype_r,
			    struct message_param **params_r, uint32_t *count_r);

/* Content-Disposition. Returns 0 with the lowercased disposition type and
 * parameters, or -1 if there is no valid type (outputs untouched). */
int mime_disposition_parse(struct message_arena *arena, const void *value, size_t len,
			   const char **disposition_r, struct message_param **params_r,
			   uint32_t *count_r);

/* The first token of value (comments skipped), lowercased, or NULL if
 * there is none: Content-Transfer-Encoding. */
const char *mime_token_parse(struct message_arena *arena, const void *value, size_t len);

/* Content-Language: the language tags joined by ",", or NULL if none. */
const char *mime_language_parse(struct message_arena *arena, const void *value, size_t len);

/* Appends the RFC 2231 extended form "charset''%XX..." of value to out
 * (attribute-chars kept, everything else %-encoded). */
void mime_param_encode_2231(const char *charset, const char *value, struct textbuf *out);

#endif
