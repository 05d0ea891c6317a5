/*
 * mailbox_walk: LIST. Walks the user's level directories (bounded by
 * MAILBOX_DEPTH_MAX), decodes their names (entries the store did not
 * write are skipped; store_fsck reports them), and merges in
 * subscriptions and special-use attributes, in name order.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "storage/mailbox_namelist.h"

struct walk_node {
	char *name;
	bool selectable, has_children;
};

struct walk {
	struct walk_node *n;
	size_t count, cap;
};

static void walk_add(struct walk *w, const char *name, bool selectable, bool has_children)
{
	if (w->count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 32;
		struct walk_node *n = realloc(w->n, cap * sizeof(*n));
		if (n == NULL)
			abort();
		w->n = n;
		w->cap = cap;
	}
	w->n[w->count].name = strdup(name);
	if (w->n[w->count].name == NULL)
		abort();
	w->n[w->count].selectable = selectable;
	w->n[w->count].has_children = has_children;
	w->count++;
}

/* Adds the levels below fd (whose name is prefix); returns how many
 * child levels fd has. Takes ownership of fd. */
static size_t walk_level(struct walk *w, int fd, const char *prefix, int depth)
{
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return 0;
	}
	size_t children = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char comp[MAILBOX_NAME_MAX + 1];
		if (de->d_name[0] == '.' || mailbox_name_decode(de->d_name, comp, sizeof(comp)) < 0 ||
		    strchr(comp, '/') != NULL)
			continue;
		int cfd = store_open_dir(dirfd(d), de->d_name);
		if (cfd < 0)
			continue;
		struct textbuf name = TEXTBUF_INIT;
		if (prefix[0] != '\0') {
			textbuf_puts(&name, prefix);
			textbuf_putc(&name, '/');
		}
		textbuf_puts(&name, comp);
		char norm[MAILBOX_NAME_MAX + 1];
		if (mailbox_name_normalize(textbuf_str(&name), norm, NULL) < 0) {
			close(cfd);
			textbuf_free(&name);
			continue;
		}
		children++;
		bool selectable = mailbox_level_has_box(cfd);
		size_t idx = w->count;
		walk_add(w, norm, selectable, false);
		size_t below = depth < MAILBOX_DEPTH_MAX ? walk_level(w, cfd, norm, depth + 1)
							 : (close(cfd), 0);
		w->n[idx].has_children = below > 0;
		textbuf_free(&name);
	}
	closedir(d);
	return children;
}

static int walk_cmp(const void *a, const void *b)
{
	return strcmp(((const struct walk_node *)a)->name, ((const struct walk_node *)b)->name);
}

int mailbox_list(struct store_user *user, mailbox_list_cb *cb, void *ctx, const char **error_r)
{
	struct walk w = { NULL, 0, 0 };
	struct mailbox_namelist subs = { NULL, 0, 0 }, special = { NULL, 0, 0 };
	int ret;
	if ((ret = mailbox_namelist_read(user->dir_fd, "subscriptions", false, &subs, error_r)) < 0 ||
	    (ret = mailbox_namelist_read(user->dir_fd, "special-use", true, &special, error_r)) < 0)
		goto out;
	int fd = store_open_dir(user->box_fd, ".");
	if (fd < 0) {
		ret = store_fail_errno(error_r, false, "open", "mailboxes");
		goto out;
	}
	walk_level(&w, fd, "", 1);
	if (w.count > 0)
		qsort(w.n, w.count, sizeof(w.n[0]), walk_cmp);
	size_t i = 0, j = 0;
	while (ret == 0 && (i < w.count || j < subs.n)) {
		int c = i == w.count ? 1 : j == subs.n ? -1 : strcmp(w.n[i].name, subs.e[j].name);
		struct mailbox_info info;
		memset(&info, 0, sizeof(info));
		if (c <= 0) {
			info.name = w.n[i].name;
			info.exists = true;
			info.selectable = w.n[i].selectable;
			info.has_children = w.n[i].has_children;
			info.subscribed = c == 0;
			i++;
			j += c == 0;
		} else {
			info.name = subs.e[j].name;
			info.subscribed = true;
			j++;
		}
		info.special_use = info.selectable ? mailbox_namelist_get(&special, info.name) : 0;
		ret = cb(&info, ctx);
	}
out:
	for (size_t k = 0; k < w.count; k++)
		free(w.n[k].name);
	free(w.n);
	mailbox_namelist_free(&subs);
	mailbox_namelist_free(&special);
	return ret;
}
