/*
 * IP networks in CIDR notation ("192.0.2.0/24", "2001:db8::/32", or a
 * bare address for one host) and lists of them, for relay control and
 * DNSBL exceptions. IPv4 and IPv6 are kept apart, except that an
 * IPv4-mapped IPv6 address (::ffff:192.0.2.1, as a dual-stack socket
 * reports an IPv4 client) is read as the IPv4 address it carries, so it
 * matches IPv4 networks. A network with bits set after its prefix
 * ("192.0.2.1/24") is refused rather than silently widened, as Postfix
 * refuses it in mynetworks. Pure: no I/O, no allocation.
 */
#ifndef CM_LIB_CIDR_H
#define CM_LIB_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries one list holds (a configuration list longer than this is
 * refused when loaded). */
#define CIDR_LIST_MAX 256
/* "ffff:...:ffff/128" and a NUL, with room to spare. */
#define CIDR_TEXT_MAX 64

struct cidr {
	bool v6;
	uint8_t prefix;	  /* 0..32 or 0..128 */
	uint8_t addr[16]; /* IPv4 in the first 4 bytes, the rest 0 */
};

struct cidr_list {
	size_t n;
	struct cidr v[CIDR_LIST_MAX];
};

/* Parses a network or a bare address (prefix 32 or 128). No spaces, a
 * decimal prefix without sign or leading zeros. 0, or -1 with a static
 * *error_r. */
int cidr_parse(const char *text, struct cidr *net_r, const char **error_r);
/* Parses one address ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"):
 * 0, or -1 with a static *error_r. The result has the full prefix. */
int cidr_addr_parse(const char *text, struct cidr *addr_r, const char **error_r);
/* The address of a peer as a socket names it: "192.0.2.1:25" or
 * "[2001:db8::1]:25" (the port is ignored). 0 or -1. */
int cidr_peer_parse(const char *peer, struct cidr *addr_r);
/* Whether addr (a full-prefix address) lies in net. */
bool cidr_contains(const struct cidr *net, const struct cidr *addr);
/* The network that counts as one client (connections per address, the
 * authentication throttle): an IPv4 address itself, an IPv6 address's
 * /64, since one host usually owns the whole prefix and can move
 * within it at will. addr has the full prefix. */
void cidr_client(const struct cidr *addr, struct cidr *client_r);
/* Appends net: 0, or -1 when the list is full. */
int cidr_list_add(struct cidr_list *list, const struct cidr *net);
/* Whether any network of the list contains addr. */
bool cidr_list_contains(const struct cidr_list *list, const struct cidr *addr);
/* "192.0.2.0/24" or "2001:db8::/32" into out (CIDR_TEXT_MAX). */
void cidr_format(const struct cidr *net, char *out, size_t size);
/* The DNSBL query prefix of an address (RFC 5782 §2.1 and §2.4): IPv4
 * "1.2.0.192", IPv6 32 nibbles "1.0.0.0...8.b.d.0.1.0.0.2", no trailing
 * dot. 0, or -1 when out (at least 64 bytes for IPv6) is too small. */
int cidr_reverse_name(const struct cidr *addr, char *out, size_t size);

#endif
