/*
 * pop3_service: maild's POP3 and POP3S connections. Wires the pure POP3
 * engine (proto/pop3/pop3.h) to a listener connection (node/listener.h);
 * authentication is pop3_auth.c, the maildrop pop3_jobs.c. One struct
 * pop3_conn per connection (pop3_service_private.h), living on the
 * connection's worker thread. POP3S needs nothing special here: the
 * listener has finished the TLS handshake before open.
 *
 * The pump. Every event (input, output drained, an authentication
 * outcome, a finished store job, TLS up, drain) ends in
 * pop3_service_pump(), which does what the engine's last answer (enum
 * pop3_want) asks for until it has to wait:
 *  INPUT   feed the connection's input to the engine, a piece at a time;
 *          input is fed only while the engine takes commands, so a client
 *          pipelining faster than its replies drain is held back by the
 *          listener's input limit (TCP back-pressure), not by buffering
 *  OUTPUT  a RETR/TOP streams: one more chunk each time the connection's
 *          output has drained to the listener's resume mark
 *          (conn_when_writable), so a message never waits whole in memory
 *  AUTH    an auth_iface operation is in flight; its done callback answers
 *  STORE   a job (maildrop open, or QUIT's expunge) is in flight
 *  TLS     the "+OK Begin TLS" is out; conn_starttls() discards what the
 *          client pipelined after STLS, and the first read hook under TLS
 *          tells the engine (pop3_session_tls_started), which forgets
 *          what it knew; the APOP timestamp stays the greeting's
 *  CLOSE   flush and close
 * Failures that happen while starting an operation (out of memory, a
 * malformed base64 answer) are answered from the pump, never from inside
 * the engine's own backend call, so the engine is never re-entered.
 *
 * Output: replies go to the connection directly while it is below the
 * resume mark; a reply larger than a piece (a RETR chunk, LIST or UIDL of
 * a big maildrop) waits in a spill buffer that is moved to the
 * connection piece by piece as it drains, and no input is fed meanwhile.
 * So no single reply can trip the listener's output limit, however large
 * the maildrop, and a client that does not read stops being read from.
 * The spill holds at most one engine write: a 64 KiB RETR chunk, or a
 * LIST/UIDL listing (about 25 bytes a message, next to the snapshot's
 * 84 bytes a message).
 *
 * Drain (SIGTERM): an idle or authenticating session gets
 * "-ERR [SYS/TEMP] Server shutting down" at once; a RETR/TOP in progress
 * is finished first and QUIT's expunge is waited for (both bounded by
 * server.drain_timeout); DELEs without QUIT are not applied.
 *
 * Policy for one mailbox in several sessions (on any nodes): snapshot
 * semantics, no [IN-USE] lock (node/pop3_maildrop.h).
 *
 * Logs, one line per event: "[auth] login ..." and "[auth] login failed
 * ..." come from the auth layer; here
 *   [pop3] quit user=U peer=P retr=N top=N dele=N deleted=N size=OCTETS messages=N read=OCTETS
 * conn=ID [pop3] disconnect user=U peer=P retr=N top=N size=OCTETS messages=N read=OCTETS
 * reason="..." conn=ID at the end of a logged-in session, with QUIT (dele: messages QUIT was asked
 * to remove; deleted: those this session removed, which is fewer when another session removed some
 * first) or without it (nothing is deleted then); size and messages describe the snapshot, read the
 * message bytes read for RETR and TOP (counted by the engine,
 * pop3_session_stats). pop3_jobs.c logs each failure of the store.
 */
#include "node/pop3_service.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/pop3_maildrop.h"
#include "node/pop3_service_private.h"

/* Replies up to this size go straight to the connection when it is below
 * its resume mark; larger ones are moved in pieces of this size. It must
 * fit between the resume mark (a quarter of the output limit) and the
 * limit for the smallest limit allowed (4 KiB). */
#define POP3_OUT_PIECE 2048
/* Input handed to the engine per call. */
#define POP3_FEED_MAX 4096

const char *pop3_service_peer(const struct pop3_conn *pc)
{
	return conn_info(pc->c)->peer;
}

unsigned long long pop3_service_id(const struct pop3_conn *pc)
{
	return (unsigned long long)conn_info(pc->c)->id;
}

const char *pop3_service_user(const struct pop3_conn *pc)
{
	const char *u = pc->s != NULL ? pop3_session_user(pc->s) : NULL;
	return u != NULL ? u : "-";
}

void pop3_service_close_now(struct pop3_conn *pc)
{
	if (pc->closing)
		return;
	pc->closing = true;
	if (pc->auth != NULL)
		pc->env->auth->handle_free(&pc->auth);
	conn_close(pc->c);
}

static void pc_writable(struct conn *c, void *state)
{
	(void)c;
	pop3_service_pump(state);
}

/* Moves spilled output to the connection while it is below its resume
 * mark. true when nothing is left in the spill. */
static bool pc_flush(struct pop3_conn *pc)
{
	if (pc->spill == NULL)
		return true;
	size_t left;
	while ((left = evbuffer_get_length(pc->spill)) > 0) {
		if (pc->closing || conn_when_writable(pc->c, pc_writable) == 0)
			return false;
		size_t n = left < POP3_OUT_PIECE ? left : POP3_OUT_PIECE;
		unsigned char *p = evbuffer_pullup(pc->spill, (ev_ssize_t)n);
		if (p == NULL || conn_write(pc->c, p, n) < 0) {
			pc->closing = true; /* the connection is closing itself */
			return false;
		}
		evbuffer_drain(pc->spill, n);
	}
	return true;
}

static void pc_note_reply(struct pop3_conn *pc, const char *data, size_t len)
{
	if ((len >= 3 && memcmp(data, "+OK", 3) == 0) ||
	    (len >= 4 && memcmp(data, "-ERR", 4) == 0)) {
		size_t n = 0;
		while (n < len && n < sizeof(pc->last_reply) - 1 && data[n] != '\r' &&
		       data[n] != '\n')
			n++;
		memcpy(pc->last_reply, data, n);
		pc->last_reply[n] = '\0';
	}
}

/* backend->write */
static void pc_write(void *ctx, const void *data, size_t len)
{
	struct pop3_conn *pc = ctx;

	pc_note_reply(pc, data, len);
	if (pc->closing || len == 0)
		return;
	bool spilled = pc->spill != NULL && evbuffer_get_length(pc->spill) > 0;
	if (!spilled && len <= POP3_OUT_PIECE && conn_when_writable(pc->c, pc_writable) == 1) {
		if (conn_write(pc->c, data, len) < 0)
			pc->closing = true;
		return;
	}
	if (pc->spill == NULL && (pc->spill = evbuffer_new()) == NULL) {
		log_error("pop3", "out of memory user=%s peer=%s conn=%llu", pop3_service_user(pc),
			  pop3_service_peer(pc), pop3_service_id(pc));
		pop3_service_close_now(pc);
		return;
	}
	if (evbuffer_add(pc->spill, data, len) < 0) {
		log_error("pop3", "out of memory user=%s peer=%s conn=%llu", pop3_service_user(pc),
			  pop3_service_peer(pc), pop3_service_id(pc));
		pop3_service_close_now(pc);
		return;
	}
	pc_flush(pc);
}

static const struct pop3_backend pc_backend = {
    .write = pc_write,
    .auth_begin = pop3_auth_begin,
    .maildrop_open = pop3_jobs_maildrop_open,
    .message_read = pop3_jobs_message_read,
    .maildrop_commit = pop3_jobs_maildrop_commit,
    .maildrop_close = pop3_jobs_maildrop_close,
};

/* ---- the pump ---- */

static void pc_settings(struct pop3_conn *pc, struct pop3_settings *set, char *mechs, size_t size)
{
	const struct service_env *env = pc->env;
	bool tls = conn_is_tls(pc->c);
	bool plain = conn_plaintext_auth_allowed(pc->c);

	env->auth->mechanisms(env->auth_ctx, tls, plain, mechs, size);
	*set = (struct pop3_settings){
	    .hostname = env->hostname,
	    .implementation = "clustermail",
	    .apop_timestamp = pc->apop_timestamp[0] != '\0' ? pc->apop_timestamp : NULL,
	    .sasl_mechanisms = mechs,
	    .tls_active = tls,
	    .stls_available = conn_starttls_available(pc->c),
	    .plaintext_auth_allowed = plain,
	};
}

static void pc_start_tls(struct pop3_conn *pc)
{
	if (pc->tls_starting)
		return;
	pc->tls_starting = true;
	if (conn_starttls(pc->c) < 0) {
		log_warning("pop3", "STLS failed to start peer=%s conn=%llu", pop3_service_peer(pc),
			    pop3_service_id(pc));
		pop3_service_close_now(pc);
	}
}

/* The first read under TLS: the engine forgets what it knew before. */
static void pc_tls_up(struct pop3_conn *pc)
{
	struct pop3_settings set;
	char mechs[256];

	pc->tls_starting = false;
	if (pc->auth != NULL)
		pc->env->auth->handle_set_tls(pc->auth, true);
	pc_settings(pc, &set, mechs, sizeof(mechs));
	pc->want = pop3_session_tls_started(pc->s, &set);
}

/* Hands the engine waiting input up to the end of its first line (or
 * POP3_FEED_MAX bytes of one); false when none waits. One command at a
 * time: the pump feeds again only once its reply has left the spill, so
 * a client that pipelines commands and reads nothing holds one reply in
 * memory, not one per command. */
static bool pc_feed(struct pop3_conn *pc)
{
	struct evbuffer *in = conn_input(pc->c);
	size_t len = evbuffer_get_length(in);

	if (len == 0)
		return false;
	if (len > POP3_FEED_MAX)
		len = POP3_FEED_MAX;
	unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (p == NULL) {
		pop3_service_close_now(pc);
		return false;
	}
	const unsigned char *lf = memchr(p, '\n', len);
	if (lf != NULL)
		len = (size_t)(lf - p) + 1;
	pc->want = pop3_session_input(pc->s, p, len);
	evbuffer_drain(in, len);
	return true;
}

/* Answers what could not be started (see the header comment). */
static bool pc_answer_local(struct pop3_conn *pc)
{
	enum pop3_local_answer a = pc->local;

	pc->local = POP3_LOCAL_NONE;
	switch (a) {
	case POP3_LOCAL_AUTH_FAILED:
		pc->want = pop3_session_auth_result(pc->s, POP3_AUTH_FAILED, NULL, NULL);
		return true;
	case POP3_LOCAL_AUTH_TEMPFAIL:
		pc->want = pop3_session_auth_result(pc->s, POP3_AUTH_TEMPFAIL, NULL, NULL);
		return true;
	case POP3_LOCAL_STORE_TEMP:
		if (pop3_session_user(pc->s) != NULL && pc->md == NULL)
			pc->want = pop3_session_maildrop_opened(pc->s, POP3_MAILDROP_TEMP, NULL, 0);
		else
			pc->want = pop3_session_commit_done(pc->s, -1);
		return true;
	case POP3_LOCAL_NONE:
	default:
		return false;
	}
}

void pop3_service_pump(struct pop3_conn *pc)
{
	while (!pc->closing) {
		if (!pc_flush(pc))
			return; /* pc_writable runs when the client has read */
		switch (pc->want) {
		case POP3_WANT_INPUT:
			if (pc->shutdown_pending) {
				pc->want = pop3_session_shutdown(pc->s);
				break;
			}
			if (!pc_feed(pc))
				return;
			break;
		case POP3_WANT_OUTPUT:
			/* drain waits for the message to end: it is bounded by
			 * drain_timeout, and a cut message helps nobody */
			if (conn_when_writable(pc->c, pc_writable) == 0)
				return;
			pc->want = pop3_session_resume(pc->s);
			break;
		case POP3_WANT_AUTH:
			if (pc_answer_local(pc))
				break;
			if (pc->shutdown_pending) {
				pc->want = pop3_session_shutdown(pc->s);
				break;
			}
			return;
		case POP3_WANT_STORE:
			if (pc_answer_local(pc))
				break;
			/* QUIT's expunge runs to its end; an open is abandoned */
			if (pc->shutdown_pending && !pop3_jobs_committing(pc)) {
				pc->want = pop3_session_shutdown(pc->s);
				break;
			}
			return;
		case POP3_WANT_TLS:
			if (pc->shutdown_pending) {
				pop3_service_close_now(pc);
				return;
			}
			pc_start_tls(pc);
			return;
		case POP3_WANT_CLOSE:
		default:
			pc->engine_closed = true;
			pop3_service_close_now(pc);
			return;
		}
	}
}

/* ---- listener hooks ---- */

static void *pc_open(struct conn *c, void *service_ctx)
{
	const struct service_instance *inst = service_ctx;
	struct pop3_conn *pc = calloc(1, sizeof(*pc));
	struct pop3_settings set;
	char mechs[256];

	if (pc == NULL) {
		log_error("pop3", "out of memory accepting conn=%llu",
			  (unsigned long long)conn_info(c)->id);
		return NULL;
	}
	pc->c = c;
	pc->env = inst->env;
	if (!pc->env->auth->apop_timestamp(pc->env->auth_ctx, pc->apop_timestamp,
					   sizeof(pc->apop_timestamp)))
		pc->apop_timestamp[0] = '\0';
	pc_settings(pc, &set, mechs, sizeof(mechs));
	pc->want = POP3_WANT_INPUT;
	pc->s = pop3_session_new(&set, &pc_backend, pc);
	if (pc->s == NULL) {
		log_error("pop3", "out of memory accepting conn=%llu", pop3_service_id(pc));
		if (pc->spill != NULL)
			evbuffer_free(pc->spill);
		free(pc);
		return NULL;
	}
	pop3_service_pump(pc); /* the greeting may be waiting in the spill */
	return pc;
}

static void pc_read(struct conn *c, void *state)
{
	struct pop3_conn *pc = state;

	if (pc->want == POP3_WANT_TLS && pc->tls_starting && conn_is_tls(c))
		pc_tls_up(pc);
	pop3_service_pump(pc);
}

static void pc_shutdown(struct conn *c, void *state)
{
	struct pop3_conn *pc = state;
	(void)c;

	pc->shutdown_pending = true;
	pc->end_reason = "server shutting down";
	pop3_service_pump(pc);
}

static void pc_log_end(struct pop3_conn *pc)
{
	char line[512];
	const char *user = pop3_service_user(pc);
	struct pop3_session_stats st = { 0 };
	if (pc->s != NULL)
		pop3_session_stats(pc->s, &st);
	/* a QUIT whose expunge failed is still a QUIT (the failure has its own line) */
	bool quit = st.quit;

	if (!pc->logged_in)
		return;
	if (quit)
		snprintf(line, sizeof(line),
			 "quit user=%s peer=%s retr=%u top=%u dele=%zu deleted=%zu size=%llu "
			 "messages=%zu read=%llu conn=%llu",
			 user, pop3_service_peer(pc), st.retr, st.top, pc->dele, pc->deleted,
			 (unsigned long long)pc->octets, pc->messages,
			 (unsigned long long)pc->read_octets, pop3_service_id(pc));
	else
		snprintf(
		    line, sizeof(line),
		    "disconnect user=%s peer=%s retr=%u top=%u size=%llu messages=%zu read=%llu "
		    "reason=\"%s\" conn=%llu",
		    user, pop3_service_peer(pc), st.retr, st.top, (unsigned long long)pc->octets,
		    pc->messages, (unsigned long long)pc->read_octets,
		    pop3_jobs_committing(pc) ? "the client left during QUIT; the expunge goes on"
		    : pc->end_reason != NULL ? pc->end_reason
		    : pc->engine_closed	     ? pc->last_reply
					     : "connection closed without QUIT, nothing deleted",
		    pop3_service_id(pc));
	log_info("pop3", "%s", line);
	if (pc->env->publish != NULL)
		pc->env->publish("pop3", line, pc->env->publish_ctx);
}

static void pc_closed(struct conn *c, void *state)
{
	struct pop3_conn *pc = state;
	(void)c;

	pc_log_end(pc);
	pc->closing = true;
	pop3_jobs_detach(pc);
	if (pc->auth != NULL)
		pc->env->auth->handle_free(&pc->auth);
	pop3_session_free(&pc->s);
	pop3_maildrop_close(&pc->md);
	if (pc->spill != NULL)
		evbuffer_free(pc->spill);
	free(pc);
}

const struct service_ops pop3_service_ops = {
    .open = pc_open,
    .read = pc_read,
    .close = pc_closed,
    .shutdown = pc_shutdown,
    .refuse_message = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
};
