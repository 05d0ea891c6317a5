#include "lib/linebuf.h"

#include <stdlib.h>
#include <string.h>

int linebuf_init(struct linebuf *lb, size_t limit)
{
	memset(lb, 0, sizeof(*lb));
	lb->buf = malloc(limit + 2); /* line + CR + NUL */
	if (lb->buf == NULL)
		return -1;
	lb->limit = limit;
	return 0;
}

void linebuf_free(struct linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
}

void linebuf_reset(struct linebuf *lb)
{
	lb->len = 0;
	lb->discarding = false;
	lb->has_nul = false;
}

size_t linebuf_pending(const struct linebuf *lb)
{
	return lb->len;
}

enum linebuf_result linebuf_feed(struct linebuf *lb, const char **data, size_t *len,
				 const char **line_r, bool *has_nul_r)
{
	while (*len > 0) {
		const char *p = *data;
		const char *lf = memchr(p, '\n', *len);
		size_t take = lf ? (size_t)(lf - p) : *len;

		if (lb->discarding) {
			*data += take + (lf ? 1 : 0);
			*len -= take + (lf ? 1 : 0);
			if (lf)
				lb->discarding = false;
			continue;
		}
		/* room for limit bytes plus the CR that CRLF brings */
		if (lb->len + take > lb->limit + 1) {
			lb->len = 0;
			lb->has_nul = false;
			lb->discarding = lf == NULL;
			*data += take + (lf ? 1 : 0);
			*len -= take + (lf ? 1 : 0);
			return LINEBUF_TOO_LONG;
		}
		if (memchr(p, '\0', take) != NULL)
			lb->has_nul = true;
		memcpy(lb->buf + lb->len, p, take);
		lb->len += take;
		*data += take;
		*len -= take;
		if (lf == NULL)
			return LINEBUF_NEED_MORE;
		(*data)++;
		(*len)--;
		if (lb->len > 0 && lb->buf[lb->len - 1] == '\r')
			lb->len--;
		if (lb->len > lb->limit) {
			lb->len = 0;
			lb->has_nul = false;
			return LINEBUF_TOO_LONG;
		}
		lb->buf[lb->len] = '\0';
		*line_r = lb->buf;
		*has_nul_r = lb->has_nul;
		lb->len = 0;
		lb->has_nul = false;
		return LINEBUF_LINE;
	}
	return LINEBUF_NEED_MORE;
}
