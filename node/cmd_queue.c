/*
 * `mailctl queue ...`: the SMTP spools of the store.
 *
 *   queue list            every spool and the maildrop (node/queue_report.h)
 *   queue show ID         envelope, recipients with state and reason, header
 *   queue flush [ID]      deferred messages (or one) due now
 *   queue delete ID       removed without a bounce
 *   queue hold ID         not delivered until released
 *   queue release ID      held no more, and due now
 *
 * list and show only read, so they work the same with and without maild.
 * The changes go through the node's queue manager when maild runs
 * (env->queue): it holds the spool's lock, and only the lock holder may
 * change a spool. Offline, delete/hold/release take the lock of the spool
 * holding the message themselves, and refuse when a process holds it
 * (another node's maild runs that spool: use its control socket). flush
 * needs a running queue manager: there is nothing to flush into offline.
 */
#include "node/commands.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node/node_config.h"
#include "node/queue_manager.h"
#include "node/queue_report.h"
#include "storage/queue.h"
#include "storage/store.h"

static int queue_usage(struct textbuf *err)
{
	textbuf_puts(err, "usage: mailctl queue list | show ID | flush [ID] | delete ID | hold ID | release ID"
		     " | adopt SPOOL\n");
	return 2;
}

/* Offline: delete, hold or release one message under its spool's lock. */
static int queue_change_offline(struct store *store, const char *verb, const char *id,
				struct textbuf *out, struct textbuf *err)
{
	struct queue_envelope env = { 0 };
	struct queue *q = NULL;
	const char *error = NULL;

	int rc = queue_report_find(store, id, &q, &env, &error);
	if (rc <= 0) {
		textbuf_printf(err, "queue %s: %s: %s\n", verb, id,
			       rc == 0 ? "no such message in any spool" : error ? error : store_strerror(rc));
		return 1;
	}
	rc = queue_lock(q, &error);
	if (rc < 0) {
		int pid = queue_lock_holder(q);
		if (pid > 0)
			textbuf_printf(err, "queue %s: %s: the spool %s is run by pid %d; use the daemon "
				       "(mailctl with that node's configuration)\n",
				       verb, id, queue_name(q), pid);
		else
			textbuf_printf(err, "queue %s: %s: cannot lock the spool %s: %s\n", verb, id,
				       queue_name(q), error ? error : store_strerror(rc));
		goto out;
	}
	/* the lock holder's view is the truth: read again under the lock */
	queue_envelope_clear(&env);
	rc = queue_envelope_read(q, id, &env, &error);
	if (rc == STORE_OK && strcmp(verb, "delete") == 0) {
		rc = queue_remove(q, id, &error);
	} else if (rc == STORE_OK) {
		env.hold = strcmp(verb, "hold") == 0;
		if (!env.hold)
			env.next_attempt = 0;
		rc = queue_envelope_update(q, &env, &error);
	}
	if (rc < 0)
		textbuf_printf(err, "queue %s: %s: %s\n", verb, id,
			       rc == STORE_E_NOTFOUND ? "the message left the spool meanwhile"
						      : error ? error : store_strerror(rc));
	else
		textbuf_printf(out, "%s: %s (spool %s)\n", id,
			       verb[0] == 'd' ? "deleted" : verb[0] == 'h' ? "held" : "released",
			       queue_name(q));
out:
	queue_envelope_clear(&env);
	queue_close(&q);
	return rc < 0 ? 1 : 0;
}

static int queue_change_daemon(struct command_env *env, const char *verb, const char *id,
			       struct textbuf *out, struct textbuf *err)
{
	struct textbuf why = TEXTBUF_INIT;
	int rc;

	if (strcmp(verb, "delete") == 0)
		rc = queue_manager_delete(env->queue, id, &why);
	else if (strcmp(verb, "flush") == 0)
		rc = queue_manager_flush_one(env->queue, id, &why);
	else
		rc = queue_manager_hold(env->queue, id, strcmp(verb, "hold") == 0, &why);
	if (rc < 0)
		textbuf_printf(err, "queue %s: %s: %s\n", verb, id,
			       why.len ? textbuf_str(&why) : "refused by the queue manager");
	else
		textbuf_printf(out, "%s: %s\n", id,
			       verb[0] == 'd' ? "deleted" : verb[0] == 'h' ? "held"
						  : verb[0] == 'f' ? "due now" : "released");
	if (rc >= 0)
		command_event(env, "op=queue-%s id=%s", verb, id);
	textbuf_free(&why);
	return rc < 0 ? 1 : 0;
}

/* Another node's spool into this node's (a dead node's takeover). */
static int queue_adopt(struct command_env *env, const char *spool, struct textbuf *out,
		       struct textbuf *err)
{
	if (env->queue == NULL) {
		textbuf_puts(err, "queue adopt: needs a running maild, whose queue manager then "
				  "delivers what it took over\n");
		return 1;
	}
	struct textbuf why = TEXTBUF_INIT;
	int n = queue_manager_adopt(env->queue, spool, &why);
	if (n < 0)
		textbuf_printf(err, "queue adopt: %s", textbuf_str(&why));
	else
		textbuf_printf(out, "queue adopt: %d message%s moved from spool %s\n", n,
			       n == 1 ? "" : "s", spool);
	if (n >= 0)
		command_event(env, "op=queue-adopt spool=%s count=%d", spool, n);
	textbuf_free(&why);
	return n < 0 ? 1 : 0;
}

int cmd_queue(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *verb = argc >= 2 ? argv[1] : "";
	const char *id = argc == 3 ? argv[2] : NULL;
	int rc;

	bool list = argc == 2 && strcmp(verb, "list") == 0;
	if (argc == 3 && strcmp(verb, "adopt") == 0)
		return queue_adopt(env, argv[2], out, err);
	bool flush = (argc == 2 || argc == 3) && strcmp(verb, "flush") == 0;
	bool change = argc == 3 && (strcmp(verb, "show") == 0 || strcmp(verb, "delete") == 0 ||
				    strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0);
	if (!list && !flush && !change)
		return queue_usage(err);
	if (id != NULL && !queue_id_valid(id)) {
		textbuf_printf(err, "queue %s: %s is not a queue id\n", verb, id);
		return 2;
	}
	if (flush) {
		if (env->queue == NULL && env->publish == NULL) {
			textbuf_puts(err, "queue flush: no maild is running for this store: nothing runs the "
				     "queue (start maild; it tries every message when it starts)\n");
			return 1;
		}
		if (env->queue == NULL) {
			textbuf_puts(err, "queue flush: this maild runs no queue manager\n");
			return 1;
		}
		if (id != NULL)
			return queue_change_daemon(env, verb, id, out, err);
		rc = queue_manager_flush(env->queue);
		if (rc < 0) {
			textbuf_puts(err, "queue flush: refused by the queue manager\n");
			return 1;
		}
		textbuf_printf(out, "queue flush: %d message%s due now\n", rc, rc == 1 ? "" : "s");
		command_event(env, "op=queue-flush count=%d", rc);
		return 0;
	}
	if (env->queue != NULL && strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0)
		return queue_change_daemon(env, verb, id, out, err);

	struct store *store = env->store; /* maild's, or the one mailctl opened offline */
	if (store == NULL) {
		textbuf_puts(err, "queue: no store is open\n");
		return 1;
	}
	if (list)
		rc = queue_report_list(store, true, out, err);
	else if (strcmp(verb, "show") == 0)
		rc = queue_report_show(store, id, out, err);
	else
		rc = queue_change_offline(store, verb, id, out, err);
	return rc;
}
