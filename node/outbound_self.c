#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "node/outbound_self.h"

int outbound_self_add(struct outbound_self *self, const char *addr, uint16_t port)
{
	const char *error;
	if (self->n >= OUTBOUND_SELF_MAX)
		return -1;
	struct outbound_self_listener *l = &self->listeners[self->n];
	if (cidr_addr_parse(addr, &l->addr, &error) < 0)
		return -1;
	static const uint8_t zero[16];
	l->wildcard = memcmp(l->addr.addr, zero, sizeof(zero)) == 0;
	l->port = port;
	self->n++;
	return 0;
}

static bool is_loopback(const struct cidr *a)
{
	static const uint8_t one[16] = {[15] = 1};
	return a->v6 ? memcmp(a->addr, one, 16) == 0 : a->addr[0] == 127;
}

/* a is one of this machine's addresses (the unspecified address reaches
 * this machine too). *ifs: the interfaces, asked for on the first need. */
static bool is_local(const struct cidr *a, struct ifaddrs **ifs)
{
	static const uint8_t zero[16];
	if (is_loopback(a) || memcmp(a->addr, zero, sizeof(zero)) == 0)
		return true;
	if (*ifs == NULL && getifaddrs(ifs) < 0) {
		*ifs = NULL;
		return false;
	}
	bool found = false;
	for (struct ifaddrs *i = *ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != (a->v6 ? AF_INET6 : AF_INET))
			continue;
		if (!a->v6)
			found = memcmp(&((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, a->addr,
				       4) == 0;
		else
			found = memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, a->addr,
				       16) == 0;
	}
	return found;
}

int outbound_self_has_addr(const struct outbound_self *self, const char *addr, uint16_t port,
			   struct ifaddrs **ifs)
{
	struct cidr a;
	const char *error;
	if (cidr_addr_parse(addr, &a, &error) < 0)
		return 0;
	bool wildcard_port = false;
	for (unsigned i = 0; i < self->n; i++) {
		const struct outbound_self_listener *l = &self->listeners[i];
		if (l->port != port || l->addr.v6 != a.v6)
			continue;
		if (!l->wildcard && memcmp(l->addr.addr, a.addr, sizeof(a.addr)) == 0)
			return 1;
		wildcard_port |= l->wildcard;
	}
	return wildcard_port && is_local(&a, ifs) ? 1 : 0;
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
