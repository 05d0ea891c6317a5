/*
 * mailbox_namelist: name -> value files (see mailbox_namelist.h).
 */
#include "storage/mailbox_namelist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/textbuf.h"
#include "storage/mailbox.h"
#include "storage/mailbox_name.h"
#include "storage/store_internal.h"

static size_t namelist_find(const struct mailbox_namelist *l, const char *name, bool *found)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->e[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

bool mailbox_namelist_set(struct mailbox_namelist *l, const char *name, unsigned value)
{
	bool found;
	size_t i = namelist_find(l, name, &found);
	if (found) {
		if (value == l->e[i].value)
			return false;
		if (value != 0) {
			l->e[i].value = value;
			return true;
		}
		free(l->e[i].name);
		memmove(&l->e[i], &l->e[i + 1], (l->n - i - 1) * sizeof(l->e[0]));
		l->n--;
		return true;
	}
	if (value == 0)
		return false;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct mailbox_namelist_entry *e = realloc(l->e, cap * sizeof(*e));
		if (e == NULL)
			abort();
		l->e = e;
		l->cap = cap;
	}
	memmove(&l->e[i + 1], &l->e[i], (l->n - i) * sizeof(l->e[0]));
	l->e[i].name = strdup(name);
	if (l->e[i].name == NULL)
		abort();
	l->e[i].value = value;
	l->n++;
	return true;
}

unsigned mailbox_namelist_get(const struct mailbox_namelist *l, const char *name)
{
	bool found;
	size_t i = namelist_find(l, name, &found);
	return found ? l->e[i].value : 0;
}

bool mailbox_namelist_rename(struct mailbox_namelist *l, const char *from, const char *to)
{
	struct mailbox_namelist moved = { NULL, 0, 0 };
	size_t flen = strlen(from);
	for (size_t i = 0; i < l->n;) {
		const char *n = l->e[i].name;
		if (strcmp(n, from) == 0 || mailbox_name_is_below(n, from)) {
			struct textbuf nn = TEXTBUF_INIT;
			textbuf_puts(&nn, to);
			textbuf_puts(&nn, n + flen);
			char norm[MAILBOX_NAME_MAX + 1];
			int ret = mailbox_name_normalize(textbuf_str(&nn), norm, NULL);
			textbuf_free(&nn);
			/* Too long under the new name: only a name with no mailbox
			 * (the rename checked those), kept as it was, not dropped. */
			if (ret < 0) {
				i++;
				continue;
			}
			mailbox_namelist_set(&moved, norm, l->e[i].value);
			free(l->e[i].name);
			memmove(&l->e[i], &l->e[i + 1], (l->n - i - 1) * sizeof(l->e[0]));
			l->n--;
			continue;
		}
		i++;
	}
	bool changed = moved.n > 0;
	for (size_t i = 0; i < moved.n; i++)
		mailbox_namelist_set(l, moved.e[i].name, moved.e[i].value);
	mailbox_namelist_free(&moved);
	return changed;
}

void mailbox_namelist_free(struct mailbox_namelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	l->e = NULL;
	l->n = l->cap = 0;
}

int mailbox_namelist_read(int dir_fd, const char *file, bool with_value,
			  struct mailbox_namelist *l, const char **error_r)
{
	struct textbuf buf = TEXTBUF_INIT;
	int ret = store_read_small(dir_fd, file, MAILBOX_NAMELIST_MAX, &buf, error_r);
	if (ret < 0) {
		textbuf_free(&buf);
		return ret;
	}
	char *p = buf.data;
	while (p != NULL && *p != '\0') {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		unsigned value = 1;
		char *name = p;
		if (with_value) {
			char *end;
			unsigned long v = strtoul(p, &end, 16);
			value = (*end == ' ' && end != p && v <= MAILBOX_SPECIAL_MASK) ? (unsigned)v : 0;
			name = end + (*end == ' ');
		}
		char norm[MAILBOX_NAME_MAX + 1];
		if (value != 0 && mailbox_name_normalize(name, norm, NULL) == 0)
			mailbox_namelist_set(l, norm, value);
		p = nl != NULL ? nl + 1 : NULL;
	}
	textbuf_free(&buf);
	return 0;
}

int mailbox_namelist_write(int dir_fd, const char *file, bool with_value,
			   const struct mailbox_namelist *l, const char **error_r)
{
	struct textbuf buf = TEXTBUF_INIT;
	for (size_t i = 0; i < l->n; i++) {
		if (with_value)
			textbuf_printf(&buf, "%x ", l->e[i].value);
		textbuf_puts(&buf, l->e[i].name);
		textbuf_putc(&buf, '\n');
	}
	if (buf.len > MAILBOX_NAMELIST_MAX) {
		textbuf_free(&buf);
		return store_fail(error_r, STORE_E_LIMIT, "too many entries in %s", file);
	}
	int ret = store_replace_file(dir_fd, file, textbuf_str(&buf), buf.len, error_r);
	textbuf_free(&buf);
	return ret;
}
