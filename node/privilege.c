#include "node/privilege.h"

#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int privilege_lookup(const char *user, struct service_identity *id_r, const char **error_r)
{
	static _Thread_local char msg[160];
	struct passwd *pw;

	memset(id_r, 0, sizeof(*id_r));
	id_r->uid = getuid();
	id_r->gid = getgid();
	if (geteuid() != 0 || user[0] == '\0' || strcmp(user, "root") == 0) {
		snprintf(id_r->name, sizeof(id_r->name), "%s", geteuid() == 0 ? "root" : "");
		return 0;
	}
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(msg, sizeof(msg),
			 "service user '%s' does not exist (create it with: useradd --system %s)",
			 user, user);
		*error_r = msg;
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(msg, sizeof(msg), "service user '%s' has uid 0; choose an unprivileged user", user);
		*error_r = msg;
		return -1;
	}
	id_r->drop = true;
	id_r->uid = pw->pw_uid;
	id_r->gid = pw->pw_gid;
	snprintf(id_r->name, sizeof(id_r->name), "%s", user);
	return 0;
}

int privilege_check_private_dir(const struct service_identity *id, const char *dir,
				const char **error_r)
{
	static _Thread_local char msg[PATH_MAX + 128];
	struct stat st;
	if (lstat(dir, &st) < 0) {
		snprintf(msg, sizeof(msg), "cannot check %s: %s", dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(msg, sizeof(msg), "%s is not a directory", dir);
	} else if (st.st_uid != 0 && st.st_uid != geteuid() && !(id->drop && st.st_uid == id->uid)) {
		snprintf(msg, sizeof(msg), "%s belongs to uid %u, not to root or the service user",
			 dir, (unsigned)st.st_uid);
	} else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(msg, sizeof(msg), "%s is writable by group or others (chmod go-w %s)", dir,
			 dir);
	} else {
		return 0;
	}
	*error_r = msg;
	return -1;
}

int privilege_mkdir(const struct service_identity *id, const char *dir, mode_t mode,
		    const char **error_r)
{
	static _Thread_local char msg[PATH_MAX + 64];
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		*error_r = "path too long";
		return -1;
	}
	for (char *p = path + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, last ? mode : 0755) == 0) {
			if (id->drop && chown(path, id->uid, id->gid) < 0)
				goto fail;
		} else if (errno != EEXIST) {
			goto fail;
		}
		if (last)
			return 0;
		*p = '/';
	}
fail:
	snprintf(msg, sizeof(msg), "cannot create %s: %s", path, strerror(errno));
	*error_r = msg;
	return -1;
}

int privilege_drop(const struct service_identity *id, const char **error_r)
{
	if (!id->drop)
		return 0;
	if (setgroups(0, NULL) < 0 || setgid(id->gid) < 0 || setuid(id->uid) < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	/* A drop that can be undone is not a drop. */
	if (setuid(0) == 0 || geteuid() != id->uid) {
		*error_r = "privileges could be regained after setuid";
		return -1;
	}
	return 0;
}
