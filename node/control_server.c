/*
 * Control server: a REP socket served by one thread, and a PUB socket for
 * live events (see control.h). Commands run one at a time on the control
 * thread; they are administrative and short (bulk imports arrive in
 * batches), so a single thread keeps directory writes serialised.
 * Security: the sockets live in the run directory (0750, service user);
 * requests are bounded in frame count and size.
 */
#include "node/control.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define CONTROL_MAX_FRAMES 4096
#define CONTROL_MAX_FRAME (64 * 1024)

struct control_server {
	void *zctx;
	void *rep;
	void *pub;
	pthread_mutex_t pub_lock;
	pthread_t thread;
	bool thread_started;
	int stop_pipe[2];
	unsigned node_id;
	control_handler *handler;
	void *handler_ctx;
	char ctl_path[1100];
	char ev_path[1100];
};

static void send_reply(void *sock, int code, const struct textbuf *out, const struct textbuf *err)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", code);
	zmq_send(sock, num, strlen(num), ZMQ_SNDMORE);
	zmq_send(sock, textbuf_str(out), out->len, ZMQ_SNDMORE);
	zmq_send(sock, textbuf_str(err), err->len, 0);
}

/* Reads one whole multipart request into argv (NUL-terminated copies).
 * Returns argc, or -1 for a malformed request (everything is consumed). */
static int recv_request(void *sock, char ***argv_r)
{
	char **argv = NULL;
	int argc = 0;
	bool bad = false;
	int more = 1;

	while (more) {
		zmq_msg_t msg;
		size_t more_size = sizeof(more);
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, 0) < 0) {
			zmq_msg_close(&msg);
			bad = true;
			break;
		}
		size_t len = zmq_msg_size(&msg);
		if (!bad && (argc >= CONTROL_MAX_FRAMES || len > CONTROL_MAX_FRAME ||
			     memchr(zmq_msg_data(&msg), '\0', len) != NULL))
			bad = true;
		if (!bad) {
			char **n = realloc(argv, sizeof(*argv) * ((size_t)argc + 2));
			char *s = malloc(len + 1);
			if (n == NULL || s == NULL) {
				free(s);
				if (n != NULL)
					argv = n;
				bad = true;
			} else {
				argv = n;
				memcpy(s, zmq_msg_data(&msg), len);
				s[len] = '\0';
				argv[argc++] = s;
				argv[argc] = NULL;
			}
		}
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_size);
		zmq_msg_close(&msg);
	}
	if (bad || argc < 1 || strcmp(argv[0], CONTROL_PROTOCOL) != 0) {
		for (int i = 0; i < argc; i++)
			free(argv[i]);
		free(argv);
		return -1;
	}
	*argv_r = argv;
	return argc;
}

static void *control_thread(void *arg)
{
	struct control_server *srv = arg;
	zmq_pollitem_t items[2] = {
		{ .socket = srv->rep, .events = ZMQ_POLLIN },
		{ .fd = srv->stop_pipe[0], .events = ZMQ_POLLIN },
	};

	for (;;) {
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			break;
		if (!(items[0].revents & ZMQ_POLLIN))
			continue;

		struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
		char **argv = NULL;
		int argc = recv_request(srv->rep, &argv);
		int code;
		if (argc < 0) {
			textbuf_puts(&err, "malformed control request (protocol " CONTROL_PROTOCOL ")\n");
			code = 2;
		} else {
			code = srv->handler(argc - 1, argv + 1, &out, &err, srv->handler_ctx);
			for (int i = 0; i < argc; i++)
				free(argv[i]);
			free(argv);
		}
		send_reply(srv->rep, code, &out, &err);
		textbuf_free(&out);
		textbuf_free(&err);
	}
	return NULL;
}

static int bind_ipc(void *sock, const char *path, const char **error_r)
{
	char endpoint[1200];
	mode_t old;
	int rc;

	unlink(path); /* stale socket of a dead daemon; the node lock proves we are alone */
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", path);
	old = umask(077); /* the service user (and root) only: commands can change anything */
	rc = zmq_bind(sock, endpoint);
	umask(old);
	if (rc < 0) {
		*error_r = zmq_strerror(errno);
		return -1;
	}
	return 0;
}

int control_server_start(const char *run_dir, const char *tcp_endpoint, unsigned node_id,
			 control_handler *handler, void *ctx, struct control_server **srv_r,
			 const char **error_r)
{
	struct control_server *srv = calloc(1, sizeof(*srv));
	int linger = 0;

	if (srv == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	srv->node_id = node_id;
	srv->handler = handler;
	srv->handler_ctx = ctx;
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->pub_lock, NULL);
	snprintf(srv->ctl_path, sizeof(srv->ctl_path), "%s/control.sock", run_dir);
	snprintf(srv->ev_path, sizeof(srv->ev_path), "%s/events.sock", run_dir);
	if (strlen(srv->ctl_path) >= 100) { /* sun_path */
		*error_r = "run_dir path too long for a unix socket (keep it under 90 characters)";
		goto fail;
	}
	if (control_daemon_running(run_dir) == 1) {
		*error_r = "another maild already serves this run_dir (give each node its own run_dir)";
		goto fail;
	}
	srv->zctx = zmq_ctx_new();
	srv->rep = zmq_socket(srv->zctx, ZMQ_REP);
	srv->pub = zmq_socket(srv->zctx, ZMQ_PUB);
	if (srv->rep == NULL || srv->pub == NULL) {
		*error_r = zmq_strerror(errno);
		goto fail;
	}
	zmq_setsockopt(srv->rep, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(srv->pub, ZMQ_LINGER, &linger, sizeof(linger));
	/* libzmq takes in a whole frame before we see it: a peer announcing a
	 * huge one is dropped at the limit, not buffered (control.tcp has no
	 * authentication of its own). */
	int64_t max_frame = CONTROL_MAX_FRAME;
	zmq_setsockopt(srv->rep, ZMQ_MAXMSGSIZE, &max_frame, sizeof(max_frame));
	if (bind_ipc(srv->rep, srv->ctl_path, error_r) < 0 ||
	    bind_ipc(srv->pub, srv->ev_path, error_r) < 0)
		goto fail;
	if (tcp_endpoint != NULL && tcp_endpoint[0] != '\0' && zmq_bind(srv->rep, tcp_endpoint) < 0) {
		*error_r = zmq_strerror(errno);
		goto fail;
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC) < 0) {
		*error_r = strerror(errno);
		goto fail;
	}
	if (pthread_create(&srv->thread, NULL, control_thread, srv) != 0) {
		*error_r = "cannot start the control thread";
		goto fail;
	}
	srv->thread_started = true;
	*srv_r = srv;
	return 0;
fail:
	control_server_stop(&srv);
	return -1;
}

void control_publish(struct control_server *srv, const char *topic, const char *fmt, ...)
{
	struct textbuf line = TEXTBUF_INIT;
	va_list ap;

	if (srv == NULL)
		return;
	textbuf_printf(&line, "%s node=%u ", topic, srv->node_id);
	va_start(ap, fmt);
	textbuf_vprintf(&line, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&srv->pub_lock);
	zmq_send(srv->pub, line.data, line.len, ZMQ_DONTWAIT);
	pthread_mutex_unlock(&srv->pub_lock);
	textbuf_free(&line);
}

void control_server_halt(struct control_server *srv)
{
	if (srv == NULL || !srv->thread_started)
		return;
	ssize_t w = write(srv->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(srv->thread, NULL);
	srv->thread_started = false;
}

void control_server_stop(struct control_server **srvp)
{
	struct control_server *srv = *srvp;

	if (srv == NULL)
		return;
	control_server_halt(srv);
	if (srv->rep != NULL)
		zmq_close(srv->rep);
	if (srv->pub != NULL)
		zmq_close(srv->pub);
	if (srv->zctx != NULL)
		zmq_ctx_term(srv->zctx);
	if (srv->rep != NULL) {
		unlink(srv->ctl_path);
		unlink(srv->ev_path);
	}
	for (int i = 0; i < 2; i++)
		if (srv->stop_pipe[i] >= 0)
			close(srv->stop_pipe[i]);
	pthread_mutex_destroy(&srv->pub_lock);
	free(srv);
	*srvp = NULL;
}
