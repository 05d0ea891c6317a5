/*
 * Control server: a ZMQ_STREAM socket served by one thread, and a PUB
 * socket for live events (see control.h). Commands run one at a time on
 * the control thread; they are administrative and short (bulk imports
 * arrive in batches), so a single thread keeps directory writes serialised.
 *
 * Security: the sockets live in the run directory (0750, service user),
 * but control.tcp has no authentication, so what one peer can make maild
 * hold is bounded here, not by trusting peers:
 *  - The socket is ZMQ_STREAM, not REP: libzmq hands us the bytes as they
 *    arrive, in chunks of at most its read batch (8 KiB), one message
 *    each. A REP socket takes in a whole multipart message before the
 *    first part is readable, and neither ZMQ_MAXMSGSIZE (one frame) nor
 *    ZMQ_RCVHWM (whole messages, not parts) bounds how many parts it
 *    buffers: one request of 6,000 64 KiB frames grew maild by 670 MB.
 *  - ZMQ_RCVHWM of CONTROL_RCVHWM chunks per connection: while the thread
 *    runs a command, libzmq stops reading a connection past that, and the
 *    kernel's socket buffer pushes back on the peer.
 *  - Each connection's request goes through lib/control_wire's decoder,
 *    which refuses it at the prefix that crosses CONTROL_MAX_ARGS,
 *    CONTROL_MAX_ARG or CONTROL_MAX_REQUEST (control.h).
 *  - At most CONTROL_PEERS_MAX connections have a request in progress; a
 *    request must arrive whole within CONTROL_REQUEST_TIMEOUT_S of its
 *    first byte, and an answered peer is closed after
 *    CONTROL_ANSWERED_TIMEOUT_S, or earlier when its slot is needed.
 * So one peer holds at most about CONTROL_MAX_REQUEST plus CONTROL_RCVHWM
 * chunks, and all of them together CONTROL_PEERS_MAX times that. A
 * connection that sends nothing costs only libzmq's per-connection state.
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
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lib/control_wire.h"

#define CONTROL_PEERS_MAX 16
#define CONTROL_RCVHWM 4
#define CONTROL_REQUEST_TIMEOUT_S 10
#define CONTROL_ANSWERED_TIMEOUT_S 60
#define CONTROL_ID_MAX 256 /* libzmq's routing ids are at most 255 bytes */

struct control_peer {
	bool used;
	bool answered; /* the reply is sent; waiting for the peer to close */
	time_t since;  /* the first byte, or the reply */
	unsigned char id[CONTROL_ID_MAX];
	size_t id_len;
	struct control_wire_decoder dec;
};

struct control_server {
	void *zctx;
	void *ctl;
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
	struct control_peer peers[CONTROL_PEERS_MAX];
};

static const struct control_wire_limits request_limits = {
	.max_items = CONTROL_MAX_ARGS,
	.max_item = CONTROL_MAX_ARG,
	.max_total = CONTROL_MAX_REQUEST,
	.refuse_nul = true,
};

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Sends [id, data]; a zero-length data closes the connection. Never
 * blocks: a peer that went away or does not read loses its reply. */
static void send_to(struct control_server *srv, const unsigned char *id, size_t id_len,
		    const void *data, size_t len)
{
	if (zmq_send(srv->ctl, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	zmq_send(srv->ctl, data, len, ZMQ_DONTWAIT);
}

static void peer_free(struct control_peer *p)
{
	control_wire_decoder_free(&p->dec);
	p->used = false;
}

static void peer_close(struct control_server *srv, struct control_peer *p)
{
	send_to(srv, p->id, p->id_len, "", 0);
	peer_free(p);
}

static struct control_peer *peer_find(struct control_server *srv, const void *id, size_t id_len)
{
	for (int i = 0; i < CONTROL_PEERS_MAX; i++) {
		struct control_peer *p = &srv->peers[i];
		if (p->used && p->id_len == id_len && memcmp(p->id, id, id_len) == 0)
			return p;
	}
	return NULL;
}

/* A slot for a new peer: a free one, else the one answered longest ago
 * (its reply has had time to leave), else NULL. */
static struct control_peer *peer_new(struct control_server *srv, const void *id, size_t id_len)
{
	struct control_peer *p = NULL;

	for (int i = 0; i < CONTROL_PEERS_MAX && (p == NULL || p->used); i++) {
		struct control_peer *q = &srv->peers[i];
		if (!q->used || (q->answered && (p == NULL || q->since < p->since)))
			p = q;
	}
	if (p == NULL || id_len > sizeof(p->id))
		return NULL;
	if (p->used)
		peer_close(srv, p);
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->since = now_s();
	memcpy(p->id, id, id_len);
	p->id_len = id_len;
	control_wire_decoder_init(&p->dec, &request_limits);
	return p;
}

static void send_reply(struct control_server *srv, struct control_peer *p, int code,
		       const struct textbuf *out, const struct textbuf *err)
{
	char num[16];
	struct textbuf msg = TEXTBUF_INIT;
	snprintf(num, sizeof(num), "%d", code);
	const char *items[3] = { num, textbuf_str(out), textbuf_str(err) };
	size_t lens[3] = { strlen(num), out->len, err->len };
	for (int i = 1; i < 3; i++)
		if (lens[i] > UINT32_MAX) /* not reached by any command; the format's limit */
			lens[i] = UINT32_MAX;
	control_wire_encode(&msg, 3, items, lens);
	send_to(srv, p->id, p->id_len, msg.data, msg.len);
	textbuf_free(&msg);
	control_wire_decoder_free(&p->dec); /* the request's memory goes now, not at close */
	p->answered = true;
	p->since = now_s();
}

/* A whole request (or a refused one) from p: runs it and answers. */
static void serve_request(struct control_server *srv, struct control_peer *p, const char *refused)
{
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	struct control_wire_decoder *d = &p->dec;
	time_t started = now_s();
	int code;

	if (refused == NULL && (d->count < 1 || strcmp(d->items[0], CONTROL_PROTOCOL) != 0))
		refused = "not " CONTROL_PROTOCOL;
	if (refused != NULL) {
		textbuf_printf(&err, "malformed control request (protocol " CONTROL_PROTOCOL "): %s\n",
			       refused);
		code = 2;
	} else {
		code = srv->handler((int)d->count - 1, d->items + 1, &out, &err, srv->handler_ctx);
	}
	send_reply(srv, p, code, &out, &err);
	textbuf_free(&out);
	textbuf_free(&err);
	/* While the command ran nobody else was read: their clocks stop for
	 * that long, and only that long (a peer that stalls mid-request still
	 * loses its slot however busy the others keep the server). */
	time_t ran = now_s() - started;
	for (int i = 0; i < CONTROL_PEERS_MAX; i++)
		if (srv->peers[i].used && &srv->peers[i] != p)
			srv->peers[i].since += ran;
}

/* Takes one [id, bytes] message, if one is ready. 1 taken, 0 none. */
static int recv_chunk(struct control_server *srv)
{
	zmq_msg_t id, data;
	int more = 0;
	size_t more_size = sizeof(more);

	zmq_msg_init(&id);
	if (zmq_msg_recv(&id, srv->ctl, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&id);
		return 0;
	}
	zmq_getsockopt(srv->ctl, ZMQ_RCVMORE, &more, &more_size);
	if (!more) { /* a STREAM socket always sends two parts */
		zmq_msg_close(&id);
		return 1;
	}
	zmq_msg_init(&data);
	if (zmq_msg_recv(&data, srv->ctl, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&id);
		zmq_msg_close(&data);
		return 1;
	}
	const void *idp = zmq_msg_data(&id);
	size_t id_len = zmq_msg_size(&id), len = zmq_msg_size(&data);
	struct control_peer *p = peer_find(srv, idp, id_len);
	if (len == 0) {
		/* connected (unknown yet: a slot is taken at the first byte) or gone */
		if (p != NULL)
			peer_free(p);
	} else if (p == NULL && (p = peer_new(srv, idp, id_len)) == NULL) {
		send_to(srv, idp, id_len, "", 0); /* no slot: closed, nothing held */
	} else if (!p->answered) {
		size_t used;
		enum control_wire_result r = control_wire_decode(&p->dec, zmq_msg_data(&data), len, &used);
		if (r == CONTROL_WIRE_ERROR)
			serve_request(srv, p, p->dec.error);
		else if (r == CONTROL_WIRE_DONE)
			serve_request(srv, p, used < len ? "bytes after the request" : NULL);
	} /* else: bytes after the answer are dropped */
	zmq_msg_close(&id);
	zmq_msg_close(&data);
	return 1;
}

/* Closes peers whose request is overdue and answered ones left open. */
static void sweep_peers(struct control_server *srv)
{
	time_t now = now_s();
	for (int i = 0; i < CONTROL_PEERS_MAX; i++) {
		struct control_peer *p = &srv->peers[i];
		if (p->used && now - p->since >= (p->answered ? CONTROL_ANSWERED_TIMEOUT_S
							      : CONTROL_REQUEST_TIMEOUT_S))
			peer_close(srv, p);
	}
}

static void *control_thread(void *arg)
{
	struct control_server *srv = arg;
	zmq_pollitem_t items[2] = {
		{ .socket = srv->ctl, .events = ZMQ_POLLIN },
		{ .fd = srv->stop_pipe[0], .events = ZMQ_POLLIN },
	};

	for (;;) {
		if (zmq_poll(items, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			break;
		/* a bounded batch, so a stop request is seen between batches */
		for (int i = 0; i < 256 && recv_chunk(srv) == 1; i++)
			;
		sweep_peers(srv);
	}
	for (int i = 0; i < CONTROL_PEERS_MAX; i++)
		if (srv->peers[i].used)
			peer_free(&srv->peers[i]);
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
	srv->ctl = zmq_socket(srv->zctx, ZMQ_STREAM);
	srv->pub = zmq_socket(srv->zctx, ZMQ_PUB);
	if (srv->ctl == NULL || srv->pub == NULL) {
		*error_r = zmq_strerror(errno);
		goto fail;
	}
	zmq_setsockopt(srv->ctl, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(srv->pub, ZMQ_LINGER, &linger, sizeof(linger));
	int hwm = CONTROL_RCVHWM; /* chunks per connection; see the header comment */
	zmq_setsockopt(srv->ctl, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (bind_ipc(srv->ctl, srv->ctl_path, error_r) < 0 ||
	    bind_ipc(srv->pub, srv->ev_path, error_r) < 0)
		goto fail;
	if (tcp_endpoint != NULL && tcp_endpoint[0] != '\0' && zmq_bind(srv->ctl, tcp_endpoint) < 0) {
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
	if (srv->ctl != NULL)
		zmq_close(srv->ctl);
	if (srv->pub != NULL)
		zmq_close(srv->pub);
	if (srv->zctx != NULL)
		zmq_ctx_term(srv->zctx);
	if (srv->ctl != NULL) {
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
