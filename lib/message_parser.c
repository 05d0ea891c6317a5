/*
 * The parser is line-oriented without buffering lines: each chunk is split
 * at LF with memchr, the bytes of a line are pushed to whichever part is
 * open (header fields are accumulated, body bytes only counted), and the
 * decisions that need a whole line (blank line, boundary delimiter) are
 * taken at its LF. A line that may be a delimiter keeps its first 74 bytes
 * aside, which is all a delimiter needs.
 *
 * Open parts form a stack (the path from the root to the part being
 * read); active boundaries form a second stack pointing into it. A part's
 * end is known when a delimiter or the end of input arrives; it is then
 * the start of the line break before the delimiter line, and the line
 * count follows from counting LFs (see struct endpoint).
 */
#include "lib/message_parser.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message_part_fields.h"
#include "lib/rfc822_header.h"

/* "--" boundary "--": all a delimiter line needs to be recognised. */
#define CAND_MAX (2 + MESSAGE_BOUNDARY_MAX + 2)

enum header_line {
	HL_START, /* nothing of this line seen yet */
	HL_CR,	  /* only a CR so far: blank line if LF follows */
	HL_FIELD, /* a line starting a field (or a malformed line) */
	HL_CONT,  /* a continuation line of the current field */
};

struct open_part {
	uint32_t part;
	uint32_t last_child;
	uint64_t lf_at_body; /* LFs before body_offset */
	bool in_header;
};

struct boundary {
	uint32_t level; /* index into open[] of the multipart */
	size_t len;
	char text[MESSAGE_BOUNDARY_MAX];
};

/* Where open parts end: body_end = pos (clamped to the part's body start),
 * lines = LFs before pos minus LFs before the body start, plus one if the
 * byte before pos is not an LF. One exception: a part that began on the
 * delimiter line's own start (an empty part opened by the delimiter just
 * before) ends there, and so do its ancestors closed with it, since a part
 * never ends before its children; line_start and lf_at_line are for that. */
struct endpoint {
	uint64_t pos;
	uint64_t lf_before;
	bool partial;
	uint64_t line_start;
	uint64_t lf_at_line;
};

struct message_parser {
	struct message_result *result;
	size_t parts_cap;

	uint64_t offset;   /* of the next input byte */
	uint64_t lf_total; /* LFs so far */
	unsigned char last_byte;

	uint64_t line_start;	  /* offset of the current line */
	uint64_t prev_term_start; /* line break of the previous line */
	bool prev_had_content;	  /* previous line had bytes before its break */

	bool cand; /* current line may be a delimiter */
	size_t cand_len;
	unsigned char cand_buf[CAND_MAX];

	struct open_part open[MESSAGE_DEPTH_MAX + 1];
	unsigned int open_count;
	struct boundary bounds[MESSAGE_DEPTH_MAX + 1];
	unsigned int bound_count;

	/* The header being read (always the top open part's). */
	enum header_line hline;
	bool field_active;
	unsigned char *field;
	size_t field_len, field_cap;
	uint64_t field_offset, field_size;
	struct message_part_fields seen;
	struct message_field *fields;
	uint32_t field_count, fields_cap;
	bool fields_truncated;

	struct textbuf value; /* unfolded value of the field being handled */
};

static void *xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		abort();
	void *np = realloc(p, n * size);
	if (np == NULL)
		abort();
	return np;
}

static struct message_part *part_at(struct message_parser *p, uint32_t idx)
{
	return &p->result->parts[idx];
}

static struct open_part *top(struct message_parser *p)
{
	return &p->open[p->open_count - 1];
}

static bool over_budget(struct message_parser *p)
{
	return message_part_fields_over_budget(p->result);
}

/* --- parts ------------------------------------------------------------ */

static void message_init_part(struct message_parser *p, struct message_part *part)
{
	part->flags |= MESSAGE_PART_FLAG_MESSAGE;
	part->envelope = message_arena_alloc(p->result->arena, sizeof(*part->envelope));
}

/* A new child of open[level], starting at offset, pushed as the top open
 * part in its header. Returns false at the part or depth limit. */
static bool child_start(struct message_parser *p, unsigned int level, uint64_t offset,
			bool is_message)
{
	struct message_result *r = p->result;
	uint32_t parent = p->open[level].part;

	if (r->part_count >= MESSAGE_PARTS_MAX) {
		r->flags |= MESSAGE_RESULT_FLAG_PARTS_LIMIT;
		return false;
	}
	if (part_at(p, parent)->depth + 1 > MESSAGE_DEPTH_MAX || level + 1 > MESSAGE_DEPTH_MAX) {
		r->flags |= MESSAGE_RESULT_FLAG_DEPTH_LIMIT;
		return false;
	}
	if (r->part_count == p->parts_cap) {
		p->parts_cap *= 2;
		if (p->parts_cap > MESSAGE_PARTS_MAX)
			p->parts_cap = MESSAGE_PARTS_MAX;
		r->parts = xrealloc(r->parts, p->parts_cap, sizeof(*r->parts));
	}
	uint32_t idx = r->part_count++;
	struct message_part *part = part_at(p, idx);
	memset(part, 0, sizeof(*part));
	part->parent = parent;
	part->next = MESSAGE_PART_NONE;
	part->depth = part_at(p, parent)->depth + 1;
	part->header_offset = offset;
	part->body_offset = offset;
	part->body_end = offset;
	if (is_message)
		message_init_part(p, part);
	if (p->open[level].last_child != MESSAGE_PART_NONE)
		part_at(p, p->open[level].last_child)->next = idx;
	p->open[level].last_child = idx;
	part_at(p, parent)->children++;

	p->open_count = level + 2;
	p->open[level + 1] = (struct open_part){idx, MESSAGE_PART_NONE, 0, true};
	return true;
}

/* --- header fields ---------------------------------------------------- */

static void field_start(struct message_parser *p, uint64_t offset)
{
	p->field_active = true;
	p->field_len = 0;
	p->field_size = 0;
	p->field_offset = offset;
}

static void field_append(struct message_parser *p, const unsigned char *data, size_t len)
{
	p->field_size += len;
	size_t room = MESSAGE_FIELD_MAX - p->field_len;
	if (len > room)
		len = room;
	if (len == 0)
		return;
	if (p->field_len + len > p->field_cap) {
		size_t cap = p->field_cap ? p->field_cap : 1024;
		while (cap < p->field_len + len)
			cap *= 2;
		if (cap > MESSAGE_FIELD_MAX)
			cap = MESSAGE_FIELD_MAX;
		p->field = xrealloc(p->field, cap, 1);
		p->field_cap = cap;
	}
	memcpy(p->field + p->field_len, data, len);
	p->field_len += len;
}

static void field_keep(struct message_parser *p, size_t name_len, size_t value_offset)
{
	if (p->field_count >= MESSAGE_FIELDS_MAX || over_budget(p)) {
		p->fields_truncated = true;
		return;
	}
	if (p->field_len < p->field_size)
		p->fields_truncated = true;
	if (p->field_count == p->fields_cap) {
		p->fields_cap = p->fields_cap ? p->fields_cap * 2 : 32;
		p->fields = xrealloc(p->fields, p->fields_cap, sizeof(*p->fields));
	}
	struct message_field *f = &p->fields[p->field_count++];
	f->raw = message_arena_memdup(p->result->arena, p->field, p->field_len);
	f->raw_len = (uint32_t)p->field_len;
	f->name_len = (uint32_t)name_len;
	f->value_offset = (uint32_t)value_offset;
	f->offset = p->field_offset;
	f->size = p->field_size;
}

/* The field in progress is complete: interpret and keep it. */
static void field_finish(struct message_parser *p)
{
	if (!p->field_active)
		return;
	p->field_active = false;

	const unsigned char *raw = p->field;
	const unsigned char *colon = p->field_len > 0 ? memchr(raw, ':', p->field_len) : NULL;
	if (colon == NULL)
		return; /* not a field: a stray line in the header */
	size_t name_len = (size_t)(colon - raw);
	while (name_len > 0 && rfc822_is_wsp(raw[name_len - 1]))
		name_len--;
	if (name_len == 0 || rfc822_is_wsp(raw[0]) || raw[0] == '\r')
		return;

	struct message_part *part = part_at(p, top(p)->part);
	size_t value_offset = (size_t)(colon - raw) + 1;
	textbuf_truncate(&p->value, 0);
	rfc822_unfold(raw + value_offset, p->field_len - value_offset, &p->value);
	textbuf_putc(&p->value, '\0'); /* so value.data is never NULL */
	textbuf_truncate(&p->value, p->value.len - 1);

	message_part_fields_apply(p->result, part, &p->seen, raw, name_len, p->value.data,
				  p->value.len);
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0)
		field_keep(p, name_len, value_offset);
}

/* The top part's header is over: keep its fields and apply defaults. */
static void header_complete(struct message_parser *p)
{
	struct open_part *op = top(p);
	struct message_part *part = part_at(p, op->part);
	struct message_arena *arena = p->result->arena;

	field_finish(p);
	op->in_header = false;
	if ((part->flags & MESSAGE_PART_FLAG_MESSAGE) != 0) {
		if (p->field_count > 0) {
			part->fields =
			    message_arena_alloc(arena, p->field_count * sizeof(*part->fields));
			memcpy(part->fields, p->fields, p->field_count * sizeof(*part->fields));
			part->field_count = p->field_count;
		}
		if (p->fields_truncated)
			part->flags |= MESSAGE_PART_FLAG_FIELDS_TRUNCATED;
	}
	message_part_fields_complete(p->result, part);
	p->seen = (struct message_part_fields){0, 0};
	p->field_count = 0;
	p->fields_truncated = false;
}

/* The top part's body starts: decide whether it has children. */
static void body_begin(struct message_parser *p)
{
	unsigned int level = p->open_count - 1;
	uint32_t idx = top(p)->part;
	struct message_part *part = part_at(p, idx);

	if (strcmp(part->type, "multipart") == 0) {
		const struct message_param *b =
		    message_param_find(part->params, part->param_count, "boundary");
		if (b == NULL)
			return;
		size_t len = strlen(b->value);
		while (len > 0 && b->value[len - 1] == ' ')
			len--;
		if (len == 0 || len > MESSAGE_BOUNDARY_MAX)
			return;
		if (part->depth + 1 > MESSAGE_DEPTH_MAX) {
			p->result->flags |= MESSAGE_RESULT_FLAG_DEPTH_LIMIT;
			return;
		}
		if (p->result->part_count >= MESSAGE_PARTS_MAX) {
			p->result->flags |= MESSAGE_RESULT_FLAG_PARTS_LIMIT;
			return;
		}
		struct boundary *bd = &p->bounds[p->bound_count++];
		bd->level = level;
		bd->len = len;
		memcpy(bd->text, b->value, len);
		part->flags |= MESSAGE_PART_FLAG_MULTIPART | MESSAGE_PART_FLAG_UNTERMINATED;
		return;
	}
	if (strcmp(part->type, "message") == 0 && strcmp(part->subtype, "rfc822") == 0) {
		if (part->encoding != NULL && strcmp(part->encoding, "7bit") != 0 &&
		    strcmp(part->encoding, "8bit") != 0 && strcmp(part->encoding, "binary") != 0)
			return;
		uint64_t offset = part->body_offset;
		if (child_start(p, level, offset, true))
			part_at(p, idx)->flags |= MESSAGE_PART_FLAG_RFC822;
	}
}

/* --- ends of parts ---------------------------------------------------- */

static void close_top(struct message_parser *p, const struct endpoint *ep)
{
	struct open_part *op = top(p);
	uint32_t idx = op->part;

	if (op->in_header) {
		struct message_part *part = part_at(p, idx);
		uint64_t end = ep->pos > part->header_offset ? ep->pos : part->header_offset;
		part->body_offset = end;
		part->body_end = end;
		part->body_lines = 0;
		part->flags |= MESSAGE_PART_FLAG_HEADER_UNTERMINATED;
		header_complete(p);
		/* The line break before a delimiter is not the last field's. */
		for (uint32_t i = 0; i < part->field_count; i++) {
			struct message_field *f = &part->fields[i];
			if (f->offset + f->size > end) {
				f->size = end - f->offset;
				if (f->raw_len > f->size)
					f->raw_len = (uint32_t)f->size;
			}
		}
	} else {
		struct message_part *part = part_at(p, idx);
		if (ep->pos <= part->body_offset) {
			part->body_end = part->body_offset;
			part->body_lines = 0;
		} else {
			part->body_end = ep->pos;
			part->body_lines = ep->lf_before - op->lf_at_body + (ep->partial ? 1 : 0);
		}
		if (op->last_child != MESSAGE_PART_NONE &&
		    part_at(p, op->last_child)->body_end > part->body_end &&
		    part_at(p, op->last_child)->body_end == ep->line_start) {
			part->body_end = ep->line_start;
			part->body_lines = ep->lf_at_line - op->lf_at_body;
		}
	}
	p->open_count--;
	while (p->bound_count > 0 && p->bounds[p->bound_count - 1].level >= p->open_count)
		p->bound_count--;
}

/* The current line is a delimiter of bounds[bidx]. */
static void delimiter(struct message_parser *p, unsigned int bidx, bool close,
		      const struct endpoint *ep)
{
	unsigned int level = p->bounds[bidx].level;

	/* The delimiter line began a field in the header being read: it
	 * was never one. */
	if (top(p)->in_header && p->field_active && p->field_offset == p->line_start)
		p->field_active = false;
	while (p->open_count - 1 > level)
		close_top(p, ep);
	p->bound_count = bidx + 1;
	if (close) {
		p->bound_count = bidx;
		part_at(p, p->open[level].part)->flags &= ~(uint32_t)MESSAGE_PART_FLAG_UNTERMINATED;
		return;
	}
	/* The next part starts after the delimiter line (or at the end of
	 * input if the line has no line break). */
	(void)child_start(p, level, p->offset, false);
}

/* Index of the boundary the candidate line delimits, or -1. */
static int boundary_match(const struct message_parser *p, bool *close_r)
{
	const unsigned char *b = p->cand_buf;
	int best = -1;

	if (p->cand_len < 2 || b[0] != '-' || b[1] != '-')
		return -1;
	for (int i = (int)p->bound_count - 1; i >= 0; i--) {
		const struct boundary *bd = &p->bounds[i];
		if (2 + bd->len <= p->cand_len && memcmp(b + 2, bd->text, bd->len) == 0 &&
		    (best < 0 || bd->len > p->bounds[best].len))
			best = i;
	}
	if (best >= 0) {
		size_t n = 2 + p->bounds[best].len;
		*close_r = p->cand_len >= n + 2 && b[n] == '-' && b[n + 1] == '-';
	}
	return best;
}

/* --- input ------------------------------------------------------------ */

static void header_bytes(struct message_parser *p, const unsigned char *s, size_t n)
{
	size_t i = 0;

	if (p->hline == HL_START && s[0] == '\r') {
		p->hline = HL_CR;
		i = 1;
		if (n == 1)
			return;
	}
	if (p->hline == HL_CR) {
		/* CR then something other than LF: a (malformed) line. */
		static const unsigned char cr = '\r';
		field_finish(p);
		field_start(p, p->line_start);
		field_append(p, &cr, 1);
		p->hline = HL_FIELD;
	} else if (p->hline == HL_START) {
		if (rfc822_is_wsp(s[0]) && p->field_active) {
			p->hline = HL_CONT;
		} else {
			field_finish(p);
			field_start(p, p->line_start);
			p->hline = HL_FIELD;
		}
	}
	field_append(p, s + i, n - i);
}

static void line_bytes(struct message_parser *p, const unsigned char *s, size_t n)
{
	if (p->offset == p->line_start && p->bound_count > 0 && s[0] == '-') {
		p->cand = true;
		p->cand_len = 0;
	}
	if (p->cand && p->cand_len < CAND_MAX) {
		size_t k = CAND_MAX - p->cand_len;
		if (k > n)
			k = n;
		memcpy(p->cand_buf + p->cand_len, s, k);
		p->cand_len += k;
	}
	if (top(p)->in_header)
		header_bytes(p, s, n);
	p->offset += n;
	p->last_byte = s[n - 1];
}

static void line_end(struct message_parser *p)
{
	uint64_t lf_pos = p->offset;
	bool cr = lf_pos > p->line_start && p->last_byte == '\r';
	uint64_t term_start = cr ? lf_pos - 1 : lf_pos;
	bool had_content = term_start > p->line_start;
	bool close = false;
	int bidx = p->cand ? boundary_match(p, &close) : -1;
	uint64_t lf_before = p->lf_total;

	p->offset++;
	p->lf_total++;
	p->last_byte = '\n';
	if (bidx >= 0) {
		struct endpoint ep = {p->prev_term_start, lf_before > 0 ? lf_before - 1 : 0,
				      p->prev_had_content, p->line_start, lf_before};
		delimiter(p, (unsigned int)bidx, close, &ep);
	} else if (top(p)->in_header) {
		if (p->hline == HL_START || p->hline == HL_CR) {
			/* The blank line: the body starts after it. */
			struct open_part *op = top(p);
			struct message_part *part = part_at(p, op->part);
			part->body_offset = p->offset;
			part->body_end = p->offset;
			op->lf_at_body = p->lf_total;
			header_complete(p);
			body_begin(p);
		} else {
			static const unsigned char lf = '\n';
			field_append(p, &lf, 1);
		}
	}
	p->prev_term_start = term_start;
	p->prev_had_content = had_content;
	p->line_start = p->offset;
	p->cand = false;
	p->hline = HL_START;
}

void message_parser_feed(struct message_parser *p, const void *data, size_t len)
{
	const unsigned char *d = data, *end = d + len;

	while (d < end) {
		const unsigned char *nl = memchr(d, '\n', (size_t)(end - d));
		const unsigned char *seg_end = nl != NULL ? nl : end;
		if (seg_end > d)
			line_bytes(p, d, (size_t)(seg_end - d));
		d = seg_end;
		if (nl != NULL) {
			line_end(p);
			d++;
		}
	}
}

struct message_parser *message_parser_init(void)
{
	struct message_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->result = message_result_create();
	p->parts_cap = 1;
	message_init_part(p, &p->result->parts[0]);
	p->open[0] = (struct open_part){0, MESSAGE_PART_NONE, 0, true};
	p->open_count = 1;
	p->hline = HL_START;
	return p;
}

void message_parser_deinit(struct message_parser **parser)
{
	struct message_parser *p = *parser;
	if (p == NULL)
		return;
	message_result_free(&p->result);
	free(p->field);
	free(p->fields);
	textbuf_free(&p->value);
	free(p);
	*parser = NULL;
}

int message_parser_finish(struct message_parser **parser, struct message_result **result_r)
{
	struct message_parser *p = *parser;

	/* A last line without a line break may still be a delimiter. */
	if (p->offset > p->line_start && p->cand) {
		bool close = false;
		int bidx = boundary_match(p, &close);
		if (bidx >= 0) {
			struct endpoint ep = {p->prev_term_start,
					      p->lf_total > 0 ? p->lf_total - 1 : 0,
					      p->prev_had_content, p->line_start, p->lf_total};
			delimiter(p, (unsigned int)bidx, close, &ep);
		}
	}
	struct endpoint eof = {p->offset, p->lf_total, p->offset > 0 && p->last_byte != '\n',
			       p->offset, p->lf_total};
	while (p->open_count > 0)
		close_top(p, &eof);
	p->result->size = p->offset;
	*result_r = p->result;
	p->result = NULL;
	message_parser_deinit(parser);
	return 0;
}

int message_parse(const void *data, size_t len, struct message_result **result_r)
{
	struct message_parser *p = message_parser_init();
	message_parser_feed(p, data, len);
	return message_parser_finish(&p, result_r);
}
