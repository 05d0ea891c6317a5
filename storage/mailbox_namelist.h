/*
 * mailbox_namelist: the small per-user files that map mailbox names to a
 * value: <user>/subscriptions (one name per line) and <user>/special-use
 * ("<hex attributes> <name>" per line). They are read whole and replaced
 * whole (temporary file, fsync, rename) under the user's hierarchy lock;
 * lines that do not hold a valid mailbox name are dropped on reading.
 */
#ifndef CM_STORAGE_MAILBOX_NAMELIST_H
#define CM_STORAGE_MAILBOX_NAMELIST_H

#include <stdbool.h>
#include <stddef.h>

#define MAILBOX_NAMELIST_MAX (4u * 1024 * 1024) /* bytes per file */

struct mailbox_namelist_entry {
	char *name;
	unsigned value;
};

struct mailbox_namelist {
	struct mailbox_namelist_entry *e;   /* sorted by name */
	size_t n, cap;
};

int mailbox_namelist_read(int dir_fd, const char *file, bool with_value,
			  struct mailbox_namelist *l, const char **error_r);
int mailbox_namelist_write(int dir_fd, const char *file, bool with_value,
			   const struct mailbox_namelist *l, const char **error_r);
/* value 0 removes the name. Returns whether anything changed. */
bool mailbox_namelist_set(struct mailbox_namelist *l, const char *name, unsigned value);
unsigned mailbox_namelist_get(const struct mailbox_namelist *l, const char *name);
/* Renames from and every name below it to to; a name too long under to
 * is left as it was. Returns whether anything changed. */
bool mailbox_namelist_rename(struct mailbox_namelist *l, const char *from, const char *to);
void mailbox_namelist_free(struct mailbox_namelist *l);

#endif
