/*
 * The store commands of mailctl (see commands.h): a user's mailboxes,
 * quota usage against the directory's limits, and fsck. They run in maild
 * (control thread) or offline in mailctl, on the same store code that the
 * protocols use. The user must exist in the directory: the store itself
 * would create the mail directory of any address it is given.
 */
#include "node/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "lib/size.h"
#include "storage/directory.h"
#include "storage/mailbox.h"
#include "storage/mailbox_name.h"
#include "storage/store.h"

static const struct {
	const char *name;
	unsigned bit;
} special_uses[] = {
	{ "\\All", MAILBOX_SPECIAL_ALL },         { "\\Archive", MAILBOX_SPECIAL_ARCHIVE },
	{ "\\Drafts", MAILBOX_SPECIAL_DRAFTS },   { "\\Flagged", MAILBOX_SPECIAL_FLAGGED },
	{ "\\Junk", MAILBOX_SPECIAL_JUNK },       { "\\Sent", MAILBOX_SPECIAL_SENT },
	{ "\\Trash", MAILBOX_SPECIAL_TRASH },
};

static int usage_error(struct textbuf *err, const char *text)
{
	textbuf_printf(err, "usage: mailctl %s\n", text);
	return 2;
}

static int store_fail(struct textbuf *err, int rc, const char *what, const char *detail)
{
	textbuf_printf(err, "%s: %s\n", what, detail ? detail : store_strerror(rc));
	return 1;
}

/* Opens the store side of a directory user. */
static int open_user(struct command_env *env, const char *address, struct store_user **user_r,
		     struct textbuf *err)
{
	struct directory_user u;
	const char *error = NULL;
	int rc;

	if (env->store == NULL) {
		textbuf_puts(err, "the mail store is not open\n");
		return -1;
	}
	rc = directory_user_get(env->dir, address, &u, &error);
	if (rc < 0) {
		command_fail(err, rc, address, error);
		return -1;
	}
	rc = store_user_open(env->store, u.address, user_r, &error);
	if (rc < 0) {
		store_fail(err, rc, address, error);
		return -1;
	}
	return 0;
}

static void special_use_names(unsigned bits, struct textbuf *out)
{
	for (size_t i = 0; i < sizeof(special_uses) / sizeof(special_uses[0]); i++)
		if (bits & special_uses[i].bit)
			textbuf_printf(out, " %s", special_uses[i].name);
}

struct list_ctx {
	struct store_user *user;
	struct textbuf *out;
};

static int print_mailbox(const struct mailbox_info *info, void *p)
{
	struct list_ctx *ctx = p;
	struct mailbox_status st = { 0 };
	const char *error = NULL;
	char size[32];

	if (!info->exists || !info->selectable) {
		textbuf_printf(ctx->out, "%s\t-\t-\t-\t%s%s\n", info->name,
			       info->exists ? "\\Noselect" : "\\NonExistent",
			       info->subscribed ? " subscribed" : "");
		return 0;
	}
	if (mailbox_status(ctx->user, info->name, &st, &error) < 0) {
		textbuf_printf(ctx->out, "%s\t?\t?\t?\tstatus unavailable: %s\n", info->name, error ? error : "");
		return 0;
	}
	size_format(st.bytes, size, sizeof(size));
	textbuf_printf(ctx->out, "%s\t%u\t%u\t%s\t%s", info->name, st.messages, st.unseen, size,
		       info->subscribed ? "subscribed" : "");
	special_use_names(info->special_use, ctx->out);
	textbuf_putc(ctx->out, '\n');
	return 0;
}

static int parse_special_use(const char *name, unsigned *bits_r)
{
	for (size_t i = 0; i < sizeof(special_uses) / sizeof(special_uses[0]); i++)
		if (strcasecmp(name, special_uses[i].name) == 0 || strcasecmp(name, special_uses[i].name + 1) == 0) {
			*bits_r = special_uses[i].bit;
			return 0;
		}
	return -1;
}

int cmd_mailbox(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	struct store_user *user = NULL;
	const char *error = NULL;
	int rc = 0;
	char name[MAILBOX_NAME_MAX + 1]; /* as stored: what the operator is told */

	if (!((strcmp(sub, "list") == 0 && argc == 3) ||
	      (strcmp(sub, "create") == 0 && (argc == 4 || (argc == 6 && strcmp(argv[4], "--special-use") == 0))) ||
	      (strcmp(sub, "delete") == 0 && argc == 4)))
		return usage_error(err, "mailbox list USER | create USER NAME [--special-use \\Sent] | delete USER NAME");
	if (open_user(env, argv[2], &user, err) < 0)
		return 1;
	if (strcmp(sub, "list") == 0) {
		struct list_ctx ctx = { user, out };
		rc = mailbox_list(user, print_mailbox, &ctx, &error);
		if (rc < 0)
			store_fail(err, rc, argv[2], error);
	} else if (strcmp(sub, "create") == 0) {
		unsigned special = 0;
		if (argc == 6 && parse_special_use(argv[5], &special) < 0) {
			textbuf_printf(err, "%s: not a special use (\\Archive \\Drafts \\Junk \\Sent \\Trash \\All \\Flagged)\n",
				       argv[5]);
			rc = -1;
		} else if ((rc = mailbox_name_normalize(argv[3], name, &error)) < 0 ||
			   (rc = mailbox_create(user, name, special, &error)) < 0) {
			store_fail(err, rc, argv[3], error);
		} else {
			textbuf_printf(out, "mailbox %s created for %s\n", name, store_user_address(user));
			command_event(env, "op=mailbox-create user=%s mailbox=%s", store_user_address(user), name);
		}
	} else {
		if ((rc = mailbox_name_normalize(argv[3], name, &error)) < 0 ||
		    (rc = mailbox_delete(user, name, &error)) < 0) {
			store_fail(err, rc, argv[3], error);
		} else {
			textbuf_printf(out, "mailbox %s deleted for %s\n", name, store_user_address(user));
			command_event(env, "op=mailbox-delete user=%s mailbox=%s", store_user_address(user), name);
		}
	}
	store_user_close(&user);
	return rc < 0 ? 1 : 0;
}

struct quota_ctx {
	struct command_env *env;
	struct textbuf *out;
	struct textbuf *err;
	unsigned over_percent;
	unsigned users, listed, failed;
};

static int quota_user(const struct directory_user *u, void *p)
{
	struct quota_ctx *ctx = p;
	struct store_quota_usage usage;
	const char *error = NULL;
	char used[32], limit[32];

	ctx->users++;
	if (store_quota_peek(ctx->env->store, u->address, &usage, &error) < 0) {
		textbuf_printf(ctx->err, "%s: %s\n", u->address, error ? error : "quota unavailable");
		ctx->failed++;
		return 0;
	}
	unsigned percent = u->quota_bytes ? (unsigned)(usage.bytes * 100 / u->quota_bytes) : 0;
	if (ctx->over_percent > 0 && (u->quota_bytes == 0 || percent < ctx->over_percent))
		return 0;
	size_format(usage.bytes, used, sizeof(used));
	char share[16] = "-"; /* no limit, no share of it */
	if (u->quota_bytes) {
		size_format(u->quota_bytes, limit, sizeof(limit));
		snprintf(share, sizeof(share), "%u%%", percent);
	} else {
		snprintf(limit, sizeof(limit), "unlimited");
	}
	textbuf_printf(ctx->out, "%s\t%s\t%s\t%s\t%llu messages\n", u->address, used, limit, share,
		       (unsigned long long)usage.messages);
	ctx->listed++;
	return 0;
}

int cmd_quota(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	struct quota_ctx ctx = { .env = env, .out = out, .err = err };
	const char *domain = NULL, *error = NULL;

	if (argc < 2 || strcmp(argv[1], "report") != 0)
		return usage_error(err, "quota report [DOMAIN] [--over PERCENT]");
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--over") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v == 0 || v > 1000)
				return usage_error(err, "quota report [DOMAIN] [--over PERCENT]");
			ctx.over_percent = (unsigned)v;
		} else if (argv[i][0] != '-' && domain == NULL) {
			domain = argv[i];
		} else {
			return usage_error(err, "quota report [DOMAIN] [--over PERCENT]");
		}
	}
	if (env->store == NULL) {
		textbuf_puts(err, "the mail store is not open\n");
		return 1;
	}
	int rc = directory_user_list(env->dir, domain, quota_user, &ctx, &error);
	if (rc < 0)
		return command_fail(err, rc, "quota report", error);
	textbuf_printf(out, "# %u users, %u listed, %u unavailable\n", ctx.users, ctx.listed, ctx.failed);
	return ctx.failed ? 1 : 0;
}

static const char *const fsck_problems[] = {
	[STORE_FSCK_TORN_LOG] = "torn log",
	[STORE_FSCK_CORRUPT_INDEX] = "corrupt index",
	[STORE_FSCK_MISSING_FILE] = "missing message file",
	[STORE_FSCK_ORPHAN_FILE] = "orphan message file",
	[STORE_FSCK_LEFTOVER] = "leftover file",
	[STORE_FSCK_UNSYNCED] = "unsynced records",
	[STORE_FSCK_QUOTA] = "quota usage",
	[STORE_FSCK_BAD_NAME] = "unexpected entry",
	[STORE_FSCK_UNCHECKED] = "not checked",
};

struct fsck_report {
	struct textbuf *out;
	unsigned repaired, open; /* problems mended; left for the operator */
	unsigned users, boxes;
	char user[320];          /* the user being checked */
	time_t shown;            /* when progress was last shown */
	bool printed;
};

/* mailctl on a terminal: a line rewritten at most once a second. */
static void fsck_progress(const char *address, const char *mailbox, void *ctx)
{
	struct fsck_report *r = ctx;
	(void)mailbox;
	r->boxes++;
	if (address != NULL && strcmp(address, r->user) != 0) {
		snprintf(r->user, sizeof(r->user), "%s", address);
		r->users++;
	}
	time_t now = time(NULL);
	if (now == r->shown)
		return;
	r->shown = now;
	r->printed = true;
	fprintf(stderr, "\rfsck: %u users, %u mailboxes checked ", r->users, r->boxes);
	fflush(stderr);
}

static void fsck_problem(const char *address, const char *mailbox, enum store_fsck_problem p,
			 const char *detail, bool repaired, void *ctx)
{
	struct fsck_report *r = ctx;
	if (repaired)
		r->repaired++;
	else
		r->open++;
	textbuf_printf(r->out, "%s\t%s\t%s\t%s\t%s\n", address ? address : "-", mailbox ? mailbox : "-",
		       (size_t)p < sizeof(fsck_problems) / sizeof(fsck_problems[0]) && fsck_problems[p]
			       ? fsck_problems[p] : "problem",
		       repaired ? "repaired" : "found", detail ? detail : "");
}

int cmd_fsck(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *address = NULL, *error = NULL;
	bool repair = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--repair") == 0)
			repair = true;
		else if (argv[i][0] != '-' && address == NULL)
			address = argv[i];
		else
			return usage_error(err, "fsck [USER] [--repair]");
	}
	if (env->store == NULL) {
		textbuf_puts(err, "the mail store is not open\n");
		return 1;
	}
	struct fsck_report r = { .out = out, .shown = time(NULL) };
	struct store_fsck_callbacks cb = { .problem = fsck_problem, .ctx = &r };
	if (env->progress)
		cb.progress = fsck_progress;
	int found = store_fsck(env->store, address, repair, &cb, &error);
	if (r.printed)
		fputs("\r\033[K", stderr);
	struct directory_user u;
	if (found == STORE_E_NOTFOUND && address != NULL &&
	    directory_user_get(env->dir, address, &u, NULL) == 0) {
		/* an account that has had no mail yet: nothing to check */
		textbuf_printf(out, "# fsck: 0 problems (%s has no mail yet)\n", u.address);
		return 0;
	}
	if (found < 0)
		return store_fail(err, found, "fsck", error);
	textbuf_printf(out, "# fsck%s: %d problem%s", address ? "" : " (all users)", found,
		       found == 1 ? "" : "s");
	if (found > 0 && !repair)
		textbuf_puts(out, " found (run with --repair)");
	else if (found > 0)
		textbuf_printf(out, ": %u repaired, %u left for the operator", r.repaired, r.open);
	textbuf_puts(out, "\n");
	if (found > 0)
		command_event(env, "op=fsck user=%s problems=%d repaired=%u left=%u repair=%d",
			      address ? address : "*", found, r.repaired, r.open, repair);
	/* 0: clean, or all repaired; 1: something needs the operator */
	return (found > 0 && !repair) || r.open > 0 ? 1 : 0;
}
