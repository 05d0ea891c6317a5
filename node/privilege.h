/*
 * Running as root: maild binds its ports as root, then becomes the
 * service user for everything else; mailctl run by root becomes the
 * service user before it touches the store, so every file on the store
 * has one owner. The user "root" means "do not drop" (logged as a warning
 * by the caller); a non-root caller keeps its identity.
 */
#ifndef CM_NODE_PRIVILEGE_H
#define CM_NODE_PRIVILEGE_H

#include <stdbool.h>
#include <sys/types.h>

struct service_identity {
	bool drop;      /* started as root and user is not root */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Resolves user when running as root. 0 or -1 (error_r). */
int privilege_lookup(const char *user, struct service_identity *id_r, const char **error_r);
/* Creates dir (and missing parents) with mode; as root, new directories
 * are given to the service user. 0 or -1 (error_r). */
int privilege_mkdir(const struct service_identity *id, const char *dir, mode_t mode,
		    const char **error_r);
/* dir, which holds the control socket, may be trusted: a directory
 * owned by root, the service user or this process, not writable by group
 * or others (who could put their own socket in its place). 0 or -1
 * (error_r, naming what to fix). */
int privilege_check_private_dir(const struct service_identity *id, const char *dir,
				const char **error_r);
/* setgroups/setgid/setuid to the service user, verified irreversible.
 * No-op unless id->drop. 0 or -1 (error_r). */
int privilege_drop(const struct service_identity *id, const char **error_r);

#endif
