/*
 * Services of the listener framework: a service is a name, its hooks and
 * one address:port, bound once per worker with SO_REUSEPORT so that the
 * kernel spreads accepts over the workers. This file owns resolving the
 * configured address (numeric only: binding never waits on DNS), binding,
 * the accept back-off when the process runs out of descriptors, and the
 * per-service counters.
 *
 * Binding happens in the calling thread before listener_start (and before
 * privileges are dropped). Every bind error names the service, the
 * address:port and strerror, because it is the line an operator sees when
 * a port is taken.
 */
#include "node/listener_private.h"

#include "node/log.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTENER_ACCEPT_RETRY_SEC 1

static void listener_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener_socket *ls = arg;
	int err = EVUTIL_SOCKET_ERROR();
	/* EMFILE/ENFILE/ENOBUFS: the socket stays readable, so retrying at
	 * once would spin; back off and let closing connections free fds */
	log_error("listener", "accept service=%s worker=%u: %s; pausing accepts for %ds",
		  ls->svc->name, ls->w->index, evutil_socket_error_to_string(err),
		  LISTENER_ACCEPT_RETRY_SEC);
	evconnlistener_disable(evl);
	struct timeval tv = { .tv_sec = LISTENER_ACCEPT_RETRY_SEC, .tv_usec = 0 };
	event_add(ls->retry, &tv);
}

static void listener_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener_socket *ls = arg;
	(void)fd;
	(void)what;
	if (!ls->w->draining && ls->evl != NULL)
		evconnlistener_enable(ls->evl);
}

/* Binds and listens one socket; 0 with *fd_r, or -1 with l->error set. */
static int listener_bind_one(struct listener *l, const struct listener_service *svc,
			     struct sockaddr_storage *ss, socklen_t len, int *fd_r)
{
	const char *fmt = ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d";
	char where[96];
	int one = 1;
	snprintf(where, sizeof(where), fmt, svc->address, svc->port);

	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(l->error, sizeof(l->error), "service %s: socket for %s: %s", svc->name,
			 where, strerror(errno));
		return -1;
	}
	const char *step = "setsockopt";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (ss->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0))
		goto fail;
	step = "bind";
	if (bind(fd, (struct sockaddr *)ss, len) < 0)
		goto fail;
	step = "listen";
	if (listen(fd, SOMAXCONN) < 0)
		goto fail;
	*fd_r = fd;
	return 0;
fail:
	snprintf(l->error, sizeof(l->error), "service %s: %s %s: %s", svc->name, step, where,
		 strerror(errno));
	close(fd);
	return -1;
}

static void listener_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* SO_REUSEPORT would let another process of the same user (a second
 * maild started by mistake) join our sockets and silently take a share of
 * the connections: a plain bind of the port first fails while anyone
 * listens there, ours included, so each side refuses the other. */
static int listener_port_free(struct listener *l, const struct listener_service *svc,
			      const struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0; /* the real bind reports it */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	int ret = 0;
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 && errno == EADDRINUSE) {
		const char *fmt = ss->ss_family == AF_INET6 ? "service %s: bind [%s]:%d: %s"
							    : "service %s: bind %s:%d: %s";
		snprintf(l->error, sizeof(l->error), fmt, svc->name, svc->address, svc->port,
			 strerror(EADDRINUSE));
		ret = -1;
	}
	close(fd);
	return ret;
}

/* Binds svc once per worker; the first socket decides the port. */
static int listener_bind_service(struct listener *l, struct listener_service *svc,
				 struct sockaddr_storage *ss, socklen_t len)
{
	if (svc->port != 0 && listener_port_free(l, svc, ss, len) < 0)
		return -1;
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct listener_socket *ls = &svc->sockets[i];
		int fd;
		ls->svc = svc;
		ls->w = &l->workers[i];
		if (listener_bind_one(l, svc, ss, len, &fd) < 0)
			return -1;
		if (i == 0 && svc->port == 0) {
			struct sockaddr_storage got;
			socklen_t got_len = sizeof(got);
			if (getsockname(fd, (struct sockaddr *)&got, &got_len) < 0) {
				snprintf(l->error, sizeof(l->error), "service %s: getsockname: %s",
					 svc->name, strerror(errno));
				close(fd);
				return -1;
			}
			svc->port = ntohs(got.ss_family == AF_INET6
						  ? ((struct sockaddr_in6 *)&got)->sin6_port
						  : ((struct sockaddr_in *)&got)->sin_port);
			listener_set_port(ss, svc->port);
		}
		/* backlog 0: already listening */
		ls->evl = evconnlistener_new(ls->w->base, conn_accept, ls,
					     LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE |
						     LEV_OPT_CLOSE_ON_EXEC,
					     0, fd);
		ls->retry = evtimer_new(ls->w->base, listener_accept_retry_cb, ls);
		if (ls->evl == NULL || ls->retry == NULL) {
			if (ls->evl == NULL)
				close(fd);
			snprintf(l->error, sizeof(l->error), "service %s: out of memory", svc->name);
			return -1;
		}
		evconnlistener_set_error_cb(ls->evl, listener_accept_error_cb);
	}
	return 0;
}

/* True if svc is bound to the same address and port as ss (two spellings
 * of one address count as the same). Port 0 never clashes. */
static bool listener_same_socket(const struct listener_service *svc,
				 const struct sockaddr_storage *ss, int port)
{
	if (port == 0 || svc->port != port || svc->sa.ss_family != ss->ss_family)
		return false;
	if (ss->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)&svc->sa)->sin6_addr,
			      &((const struct sockaddr_in6 *)ss)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return memcmp(&((const struct sockaddr_in *)&svc->sa)->sin_addr,
		      &((const struct sockaddr_in *)ss)->sin_addr, sizeof(struct in_addr)) == 0;
}

void listener_service_free(struct listener *l, struct listener_service *svc)
{
	for (unsigned i = 0; i < l->n_workers; i++) {
		if (svc->sockets[i].evl != NULL)
			evconnlistener_free(svc->sockets[i].evl);
		if (svc->sockets[i].retry != NULL)
			event_free(svc->sockets[i].retry);
	}
	free(svc->sockets);
	free(svc->refuse_message);
	free(svc);
}

int listener_add_service(struct listener *l, const char *name, const struct service_ops *ops,
			 void *service_ctx, const char *address, int port, int *bound_port_r,
			 const char **error_r)
{
	if (l->state != LISTENER_NEW)
		return listener_fail(l, error_r, "service %s: listener already started", name);
	if (name[0] == '\0' || strlen(name) >= sizeof(((struct listener_service *)0)->name))
		return listener_fail(l, error_r, "service name '%s': empty or too long", name);
	if (ops == NULL || ops->open == NULL || ops->read == NULL || ops->close == NULL)
		return listener_fail(l, error_r, "service %s: open, read and close are required",
				     name);
	if (port < 0 || port > 65535)
		return listener_fail(l, error_r, "service %s: port %d out of range", name, port);
	if (strlen(address) >= sizeof(((struct listener_service *)0)->address))
		return listener_fail(l, error_r, "service %s: address too long", name);

	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(address, NULL, &hints, &ai);
	if (gai != 0 || ai == NULL)
		return listener_fail(l, error_r, "service %s: address '%s': %s", name, address,
				     gai != 0 ? gai_strerror(gai) : "no result");
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)ai->ai_addrlen;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	listener_set_port(&ss, port);

	struct listener_service *svc = calloc(1, sizeof(*svc));
	if (svc != NULL)
		svc->sockets = calloc(l->n_workers, sizeof(*svc->sockets));
	if (svc != NULL && ops->refuse_message != NULL) {
		svc->refuse_message = strdup(ops->refuse_message);
		svc->refuse_len = strlen(ops->refuse_message);
	}
	if (svc == NULL || svc->sockets == NULL ||
	    (ops->refuse_message != NULL && svc->refuse_message == NULL)) {
		if (svc != NULL) {
			free(svc->sockets);
			free(svc->refuse_message);
		}
		free(svc);
		return listener_fail(l, error_r, "service %s: out of memory", name);
	}
	svc->l = l;
	snprintf(svc->name, sizeof(svc->name), "%s", name);
	snprintf(svc->address, sizeof(svc->address), "%s", address);
	svc->port = port;
	svc->ops = *ops;
	svc->ops.refuse_message = svc->refuse_message;
	svc->ctx = service_ctx;

	struct listener_service **tail = &l->services;
	for (; *tail != NULL; tail = &(*tail)->next) {
		if (listener_same_socket(*tail, &ss, port)) {
			listener_fail(l, error_r, "service %s: %s port %d is already service %s",
				      name, address, port, (*tail)->name);
			goto fail;
		}
	}
	if (listener_bind_service(l, svc, &ss, len) < 0) {
		*error_r = l->error;
		goto fail;
	}
	svc->sa = ss;
	/* stats may be read from another thread meanwhile */
	pthread_mutex_lock(&l->config_lock);
	*tail = svc;
	pthread_mutex_unlock(&l->config_lock);
	if (bound_port_r != NULL)
		*bound_port_r = svc->port;
	log_info("listener", "bound service=%s address=%s port=%d workers=%u", svc->name,
		 svc->address, svc->port, l->n_workers);
	return 0;
fail:
	listener_service_free(l, svc);
	return -1;
}

size_t listener_stats(struct listener *l, struct listener_service_stats *out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&l->config_lock);
	for (struct listener_service *svc = l->services; svc != NULL && n < max;
	     svc = svc->next, n++) {
		struct listener_service_stats *st = &out[n];
		memset(st, 0, sizeof(*st));
		snprintf(st->name, sizeof(st->name), "%s", svc->name);
		snprintf(st->address, sizeof(st->address), "%s", svc->address);
		st->port = svc->port;
		st->active = atomic_load(&svc->active);
		st->accepted = atomic_load(&svc->accepted);
		st->refused = atomic_load(&svc->refused);
	}
	pthread_mutex_unlock(&l->config_lock);
	return n;
}
