/*
 * CIDR networks (lib/cidr.h): inet_pton does the address syntax, this
 * file the prefix and the matching.
 */
#include "lib/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int cidr_addr_parse(const char *text, struct cidr *addr_r, const char **error_r)
{
	struct cidr a = {0};

	if (inet_pton(AF_INET, text, a.addr) == 1) {
		a.prefix = 32;
	} else if (inet_pton(AF_INET6, text, a.addr) == 1) {
		if (memcmp(a.addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
			memmove(a.addr, a.addr + 12, 4);
			memset(a.addr + 4, 0, 12);
			a.prefix = 32;
		} else {
			a.v6 = true;
			a.prefix = 128;
		}
	} else {
		*error_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	*addr_r = a;
	return 0;
}

/* Whether any bit of addr after the first `prefix` bits is set. */
static bool cidr_host_bits(const uint8_t *addr, unsigned prefix, unsigned bits)
{
	for (unsigned i = prefix; i < bits; i++)
		if (addr[i / 8] & (0x80u >> (i % 8)))
			return true;
	return false;
}

int cidr_parse(const char *text, struct cidr *net_r, const char **error_r)
{
	char buf[CIDR_TEXT_MAX];
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	struct cidr net;

	if (alen == 0 || alen >= sizeof(buf)) {
		*error_r = alen == 0 ? "empty address" : "address too long";
		return -1;
	}
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	/* a mapped address is an IPv4 host, but its prefix would count IPv6
	 * bits: only the bare form is accepted */
	bool v6_text = strchr(buf, ':') != NULL;
	if (cidr_addr_parse(buf, &net, error_r) < 0)
		return -1;
	if (slash == NULL) {
		*net_r = net;
		return 0;
	}
	if (v6_text && !net.v6) {
		*error_r =
		    "an IPv4-mapped IPv6 address cannot have a prefix; write the IPv4 network";
		return -1;
	}
	const char *p = slash + 1;
	unsigned bits = net.v6 ? 128 : 32, prefix = 0;
	if (*p == '\0' || (p[0] == '0' && p[1] != '\0')) {
		*error_r = "malformed prefix length";
		return -1;
	}
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			*error_r = "malformed prefix length";
			return -1;
		}
		prefix = prefix * 10 + (unsigned)(*p - '0');
		if (prefix > bits) {
			*error_r = net.v6 ? "prefix length above 128" : "prefix length above 32";
			return -1;
		}
	}
	if (cidr_host_bits(net.addr, prefix, bits)) {
		*error_r = "address has bits set after the prefix (write the network address)";
		return -1;
	}
	net.prefix = (uint8_t)prefix;
	*net_r = net;
	return 0;
}

int cidr_peer_parse(const char *peer, struct cidr *addr_r)
{
	char buf[CIDR_TEXT_MAX];
	const char *start = peer, *end;
	const char *error;

	if (*peer == '[') {
		start = peer + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(peer, ':');
	}
	if (end == NULL || end == start || (size_t)(end - start) >= sizeof(buf))
		return -1;
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
	return cidr_addr_parse(buf, addr_r, &error);
}

bool cidr_contains(const struct cidr *net, const struct cidr *addr)
{
	unsigned full = net->prefix / 8, rest = net->prefix % 8;

	if (net->v6 != addr->v6)
		return false;
	if (memcmp(net->addr, addr->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (net->addr[full] & mask) == (addr->addr[full] & mask);
}

void cidr_client(const struct cidr *addr, struct cidr *client_r)
{
	*client_r = *addr;
	if (addr->v6) {
		memset(client_r->addr + 8, 0, 8);
		client_r->prefix = 64;
	}
}

int cidr_list_add(struct cidr_list *list, const struct cidr *net)
{
	if (list->n >= CIDR_LIST_MAX)
		return -1;
	list->v[list->n++] = *net;
	return 0;
}

bool cidr_list_contains(const struct cidr_list *list, const struct cidr *addr)
{
	for (size_t i = 0; i < list->n; i++)
		if (cidr_contains(&list->v[i], addr))
			return true;
	return false;
}

void cidr_format(const struct cidr *net, char *out, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(net->v6 ? AF_INET6 : AF_INET, net->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(out, size, "%s/%u", a, net->prefix);
}

int cidr_reverse_name(const struct cidr *addr, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t need = addr->v6 ? 64 : 16;
	size_t o = 0;

	if (size < need)
		return -1;
	if (!addr->v6) {
		snprintf(out, size, "%u.%u.%u.%u", addr->addr[3], addr->addr[2], addr->addr[1],
			 addr->addr[0]);
		return 0;
	}
	for (int i = 15; i >= 0; i--) {
		out[o++] = hex[addr->addr[i] & 0xf];
		out[o++] = '.';
		out[o++] = hex[addr->addr[i] >> 4];
		out[o++] = '.';
	}
	out[o - 1] = '\0';
	return 0;
}
