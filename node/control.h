/*
 * The control plane, over ZeroMQ (the one file pair that uses libzmq is
 * control_server.c / control_client.c).
 *
 *   <run_dir>/control.sock  A stream socket (ZMQ_STREAM on the server,
 *                           a plain connection for clients): one request
 *                           per connection, in lib/control_wire.h's format,
 *                           ["mailctl/2", argv0, argv1, ...]; the reply is
 *                           [exit code as decimal, stdout text, stderr text]
 *                           and the client then closes. Optionally also
 *                           bound on a tcp:// endpoint.
 *   <run_dir>/events.sock   PUB: live events, one frame each:
 *                           "<topic> node=<id> key=value ..."
 *
 * The sockets are created with mode 0660 in a run directory of mode 0750:
 * only the service user (and root) may control the node.
 */
#ifndef CM_NODE_CONTROL_H
#define CM_NODE_CONTROL_H

#include "lib/textbuf.h"

#define CONTROL_PROTOCOL "mailctl/2"

/* Request limits (docs/limits.md), checked as the request arrives. The
 * largest real request is a `user import-records` batch of IMPORT_BATCH
 * records with secrets (node/user_import.c checks that it fits). */
#define CONTROL_MAX_ARGS 4096           /* items, the protocol name included */
#define CONTROL_MAX_ARG (64 * 1024)     /* bytes of one item */
#define CONTROL_MAX_REQUEST (1024 * 1024) /* bytes of a request, prefixes included */

/* Runs one command for the control socket: returns the exit code. */
typedef int control_handler(int argc, char **argv, struct textbuf *out, struct textbuf *err,
			    void *ctx);

struct control_server;

/* Binds both sockets and starts the control thread. 0 or -1 (error_r). */
int control_server_start(const char *run_dir, const char *tcp_endpoint, unsigned node_id,
			 control_handler *handler, void *ctx, struct control_server **srv_r,
			 const char **error_r);
/* Publishes one event to subscribers; any thread. topic: "connect",
 * "disconnect", "directory", "node", ... */
void control_publish(struct control_server *srv, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Stops answering commands (the one in progress finishes first); events
 * can still be published until control_server_stop. */
void control_server_halt(struct control_server *srv);
void control_server_stop(struct control_server **srv);

/* Client side. Returns 1 when a daemon is listening on run_dir's control
 * socket, 0 when none is (no socket file, or a stale one). */
int control_daemon_running(const char *run_dir);
/* Sends argv, waits up to timeout_ms. Returns the command's exit code
 * (>= 0), or -1 when the daemon could not be reached (err says why). */
int control_call(const char *run_dir, int argc, char **argv, int timeout_ms,
		 struct textbuf *out, struct textbuf *err);
/* Subscribes to events and prints each to stdout until count events were
 * seen (0 = unlimited) or timeout_ms passed without one (0 = wait forever).
 * Returns 0, or -1 (err). */
int control_follow_events(const char *run_dir, const char *topic_prefix, unsigned count,
			  int timeout_ms, struct textbuf *err);

#endif
