/*
 * mailctl's administrative commands, run in one place for both paths:
 * in maild on its control thread (when a daemon runs), or inside mailctl
 * itself against the store (offline). The client-only parts (reading
 * passwords, hashing, progress bars, following events) live in mailctl.c
 * and user_import.c; what reaches here never contains a plaintext
 * password except for "user auth-test" and the --password-secret mailctl
 * adds for users of a domain with shared-secret-auth on (docs/security.md).
 *
 * Each command writes its normal output to `out`, problems to `err`, and
 * returns the exit code (0 ok, 1 failure, 2 usage).
 *
 * Certificates (cmd_cert.c) follow the same split: mailctl reads the files
 * named in `cert import` as the invoking user and sends their contents;
 * key material is never logged nor published, and the argument that
 * carried a key is wiped once used.
 */
#ifndef CM_NODE_COMMANDS_H
#define CM_NODE_COMMANDS_H

#include <stdbool.h>
#include "lib/textbuf.h"

struct node_config;
struct directory;
struct store;
struct auth;
struct queue_manager;

struct command_env {
	const struct node_config *cfg;
	struct directory *dir;
	struct store *store;      /* the mail store (mailbox, quota, fsck) */
	/* mailctl on a terminal: long commands show progress on stderr. */
	bool progress;
	/* Daemon only (NULL offline): fills `status` output. */
	void (*status)(struct textbuf *out, void *ctx);
	/* Daemon only (NULL offline): publishes a live event. */
	void (*publish)(const char *topic, const char *text, void *ctx);
	/* Daemon only (NULL offline): the node's authentication layer
	 * (auth stats, cache refresh after "domain set", auth-test). */
	struct auth *auth;
	/* Daemon only (NULL offline): reloads the TLS certificates; appends a
	 * summary to out, or the reasons to err. 0 or -1. */
	int (*tls_reload)(struct textbuf *out, struct textbuf *err, void *ctx);
	/* Daemon only (NULL offline): the node's queue manager, which runs
	 * its spool (queue flush|delete|hold|release go through it). */
	struct queue_manager *queue;
	void *ctx;
};

int commands_run(struct command_env *env, int argc, char **argv, struct textbuf *out,
		 struct textbuf *err);
void commands_usage(struct textbuf *out);

/* Shared by the command files: */
void command_event(struct command_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int command_fail(struct textbuf *err, int dir_error, const char *what, const char *detail);

int cmd_domain(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_user(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_alias(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_group(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_mailbox(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_quota(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_fsck(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_resolve(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
/* node/auth_commands.c: "domain set|show", "auth stats". */
int cmd_domain_settings(struct command_env *env, int argc, char **argv, struct textbuf *out,
			struct textbuf *err);
int cmd_auth(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
int cmd_cert(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);
/* node/cmd_alias_import.c: "alias import FILE [--domain DOMAIN]". */
int cmd_alias_import(struct command_env *env, int argc, char **argv, struct textbuf *out,
		     struct textbuf *err);
/* node/cmd_queue.c: "queue list|show|flush|delete|hold|release". */
int cmd_queue(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err);

#endif
