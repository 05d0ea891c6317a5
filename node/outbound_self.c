#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "node/outbound_self.h"

static pthread_mutex_t registered_lock = PTHREAD_MUTEX_INITIALIZER;
static struct outbound_self registered;

static int parse(const char *text, int *family_r, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family_r = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*family_r = AF_INET6;
		return 0;
	}
	return -1;
}

int outbound_self_add(struct outbound_self *self, const char *addr, uint16_t port)
{
	if (self->n >= OUTBOUND_SELF_MAX)
		return -1;
	struct outbound_self_listener *l = &self->listeners[self->n];
	if (parse(addr, &l->family, l->addr) < 0)
		return -1;
	static const unsigned char zero[16];
	l->wildcard = memcmp(l->addr, zero, sizeof(zero)) == 0;
	l->port = port;
	self->n++;
	return 0;
}

static bool is_loopback(int family, const unsigned char *a)
{
	if (family == AF_INET)
		return a[0] == 127;
	static const unsigned char one[16] = {[15] = 1};
	return memcmp(a, one, 16) == 0;
}

/* a is one of this machine's addresses (the unspecified address reaches
 * this machine too). */
static bool is_local(int family, const unsigned char *a)
{
	static const unsigned char zero[16];
	if (is_loopback(family, a) || memcmp(a, zero, family == AF_INET ? 4 : 16) == 0)
		return true;
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) < 0)
		return false;
	bool found = false;
	for (struct ifaddrs *i = ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != family)
			continue;
		if (family == AF_INET)
			found = memcmp(&((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, a,
				       4) == 0;
		else
			found = memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, a,
				       16) == 0;
	}
	freeifaddrs(ifs);
	return found;
}

int outbound_self_has_addr(const struct outbound_self *self, const char *addr, uint16_t port)
{
	int family;
	unsigned char a[16];
	if (parse(addr, &family, a) < 0)
		return 0;
	bool wildcard_port = false;
	for (unsigned i = 0; i < self->n; i++) {
		const struct outbound_self_listener *l = &self->listeners[i];
		if (l->port != port || l->family != family)
			continue;
		if (!l->wildcard && memcmp(l->addr, a, sizeof(a)) == 0)
			return 1;
		wildcard_port |= l->wildcard;
	}
	return wildcard_port && is_local(family, a) ? 1 : 0;
}

int outbound_self_has_name(const struct outbound_self *self, const char *name)
{
	size_t a = strlen(self->hostname), b = strlen(name);
	if (a > 0 && self->hostname[a - 1] == '.')
		a--;
	if (b > 0 && name[b - 1] == '.')
		b--;
	return a > 0 && a == b && strncasecmp(self->hostname, name, a) == 0 ? 1 : 0;
}

void outbound_self_set(const struct outbound_self *self)
{
	pthread_mutex_lock(&registered_lock);
	registered = *self;
	pthread_mutex_unlock(&registered_lock);
}

void outbound_self_get(struct outbound_self *self_r)
{
	pthread_mutex_lock(&registered_lock);
	*self_r = registered;
	pthread_mutex_unlock(&registered_lock);
}
