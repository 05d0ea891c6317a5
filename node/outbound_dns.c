#include <arpa/inet.h>
#include <ifaddrs.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/outbound_dns.h"

#define MX_MAX 32

struct mx {
	unsigned pref;
	unsigned shuffle;
	char name[256];
};

int outbound_nexthop_parse(const char *nexthop, uint16_t default_port, char *host,
			   size_t host_size, uint16_t *port_r, bool *mx_r)
{
	const char *p = nexthop, *end;
	*mx_r = true;
	*port_r = default_port;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end == NULL)
			return -1;
		p++;
		*mx_r = false;
	} else {
		end = strrchr(p, ':');
		if (end != NULL && strchr(p, ':') != end)
			return -1; /* a bare IPv6 address: it needs brackets */
		if (end == NULL)
			end = p + strlen(p);
	}
	size_t len = (size_t)(end - p);
	if (len == 0 || len >= host_size)
		return -1;
	memcpy(host, p, len);
	host[len] = '\0';
	if (*end == ']')
		end++;
	if (*end == ':') {
		char *stop;
		unsigned long port = strtoul(end + 1, &stop, 10);
		if (*stop != '\0' || port == 0 || port > 65535)
			return -1;
		*port_r = (uint16_t)port;
	} else if (*end != '\0') {
		return -1;
	}
	if (strncmp(host, "IPv6:", 5) == 0)
		memmove(host, host + 5, strlen(host + 5) + 1);
	return 0;
}

static void route_fail(struct outbound_route *r, enum outbound_dns_result res, const char *status,
		       const char *fmt, const char *name)
{
	r->result = res;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->reason, sizeof(r->reason), fmt, name);
}

static ldns_resolver *resolver_new(const char *resolver, unsigned timeout_s)
{
	ldns_resolver *res = NULL;
	if (resolver[0] == '\0') {
		if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK)
			return NULL;
	} else {
		char host[64];
		uint16_t port;
		bool mx;
		if (outbound_nexthop_parse(resolver, 53, host, sizeof(host), &port, &mx) < 0)
			return NULL;
		ldns_rdf *ns = ldns_rdf_new_frm_str(strchr(host, ':') ? LDNS_RDF_TYPE_AAAA
								     : LDNS_RDF_TYPE_A,
						     host);
		if (ns == NULL)
			return NULL;
		res = ldns_resolver_new();
		if (res == NULL || ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			if (res != NULL)
				ldns_resolver_deep_free(res);
			return NULL;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(res, port);
	}
	ldns_resolver_set_timeout(res, (struct timeval){.tv_sec = timeout_s > 0 ? timeout_s : 5});
	ldns_resolver_set_retry(res, 2);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_dnssec(res, false);
	return res;
}

/* One query: OUTBOUND_DNS_OK with *pkt_r (NOERROR, possibly no answer),
 * PERM for NXDOMAIN, TEMP for anything else. */
static enum outbound_dns_result query(ldns_resolver *res, const char *name, ldns_rr_type type,
				      ldns_pkt **pkt_r)
{
	*pkt_r = NULL;
	ldns_rdf *dname = ldns_dname_new_frm_str(name);
	if (dname == NULL)
		return OUTBOUND_DNS_PERM;
	ldns_pkt *pkt = NULL;
	ldns_status st = ldns_resolver_send(&pkt, res, dname, type, LDNS_RR_CLASS_IN, LDNS_RD);
	ldns_rdf_deep_free(dname);
	if (st != LDNS_STATUS_OK || pkt == NULL) {
		if (pkt != NULL)
			ldns_pkt_free(pkt);
		return OUTBOUND_DNS_TEMP;
	}
	ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);
	if (rc == LDNS_RCODE_NXDOMAIN) {
		ldns_pkt_free(pkt);
		return OUTBOUND_DNS_PERM;
	}
	if (rc != LDNS_RCODE_NOERROR) {
		ldns_pkt_free(pkt);
		return OUTBOUND_DNS_TEMP;
	}
	*pkt_r = pkt;
	return OUTBOUND_DNS_OK;
}

static int mx_cmp(const void *a, const void *b)
{
	const struct mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->shuffle < y->shuffle ? -1 : x->shuffle > y->shuffle;
}

/* The MX records of domain, sorted: count, 0 for none (implicit MX), -1
 * with *fail_r set for a failure, -2 for a null MX. */
static int lookup_mx(ldns_resolver *res, const char *domain, struct mx *mx, size_t max,
		     enum outbound_dns_result *fail_r)
{
	ldns_pkt *pkt;
	enum outbound_dns_result q = query(res, domain, LDNS_RR_TYPE_MX, &pkt);
	if (q != OUTBOUND_DNS_OK) {
		*fail_r = q;
		return -1;
	}
	ldns_rr_list *rrs = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_MX, LDNS_SECTION_ANSWER);
	size_t n = 0;
	bool null_mx = false;
	for (size_t i = 0; rrs != NULL && i < ldns_rr_list_rr_count(rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) != 2)
			continue;
		char *name = ldns_rdf2str(ldns_rr_rdf(rr, 1));
		if (name == NULL)
			continue;
		size_t len = strlen(name);
		if (len > 0 && name[len - 1] == '.')
			name[--len] = '\0';
		if (len == 0)
			null_mx = true;
		else if (n < max && len < sizeof(mx[n].name)) {
			mx[n].pref = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
			mx[n].shuffle = (unsigned)random();
			memcpy(mx[n].name, name, len + 1);
			n++;
		}
		free(name);
	}
	if (rrs != NULL)
		ldns_rr_list_deep_free(rrs);
	ldns_pkt_free(pkt);
	if (null_mx && n == 0)
		return -2;
	qsort(mx, n, sizeof(*mx), mx_cmp);
	return (int)n;
}

/* Adds the A and AAAA addresses of name to the route, with pref and by_mx
 * (struct outbound_host): how many were added, or -1 when a lookup failed
 * temporarily (*temp_r) and nothing was found. */
static int add_addresses(ldns_resolver *res, const char *name, uint16_t port, unsigned pref,
			 bool by_mx, struct outbound_route *r, bool *temp_r)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	int added = 0;
	for (size_t t = 0; t < 2; t++) {
		ldns_pkt *pkt;
		enum outbound_dns_result q = query(res, name, types[t], &pkt);
		if (q == OUTBOUND_DNS_TEMP)
			*temp_r = true;
		if (q != OUTBOUND_DNS_OK)
			continue;
		ldns_rr_list *rrs = ldns_pkt_rr_list_by_type(pkt, types[t], LDNS_SECTION_ANSWER);
		for (size_t i = 0; rrs != NULL && i < ldns_rr_list_rr_count(rrs); i++) {
			ldns_rr *rr = ldns_rr_list_rr(rrs, i);
			if (r->n >= OUTBOUND_HOSTS_MAX || ldns_rr_rd_count(rr) != 1)
				break;
			char *addr = ldns_rdf2str(ldns_rr_rdf(rr, 0));
			if (addr == NULL)
				continue;
			struct outbound_host *h = &r->hosts[r->n];
			snprintf(h->name, sizeof(h->name), "%s", name);
			snprintf(h->addr, sizeof(h->addr), "%s", addr);
			h->port = port;
			h->pref = pref;
			h->by_mx = by_mx;
			free(addr);
			r->n++;
			added++;
		}
		if (rrs != NULL)
			ldns_rr_list_deep_free(rrs);
		ldns_pkt_free(pkt);
	}
	return added;
}

void outbound_route_drop_self(struct outbound_route *r, const struct outbound_self *self,
			      const char *dest, unsigned best_pref)
{
	bool found = false;
	unsigned self_pref = 0, best_found = 0;
	struct ifaddrs *ifs = NULL;
	for (size_t i = 0; i < r->n; i++) {
		const struct outbound_host *h = &r->hosts[i];
		if (i == 0 || h->pref < best_found)
			best_found = h->pref;
		if ((!found || h->pref < self_pref) &&
		    (outbound_self_has_addr(self, h->addr, h->port, &ifs) ||
		     (h->by_mx && outbound_self_has_name(self, h->name)))) {
			self_pref = h->pref;
			found = true;
		}
	}
	if (ifs != NULL)
		freeifaddrs(ifs);
	if (!found)
		return;
	size_t kept = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->hosts[i].pref < self_pref)
			r->hosts[kept++] = r->hosts[i];
	r->n = kept;
	if (kept > 0)
		return;
	/* Postfix's smtp_domain_addr(): a better MX that has no address is
	 * not a loop, only a wait */
	if (best_found != best_pref)
		route_fail(r, OUTBOUND_DNS_TEMP, "4.4.4", "unable to find primary relay for %s",
			   dest);
	else
		route_fail(r, OUTBOUND_DNS_PERM, "5.4.6", "mail for %s loops back to myself", dest);
}

static bool is_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void outbound_route_resolve(const char *resolver, unsigned timeout_s, const char *nexthop,
			    uint16_t default_port, const struct outbound_self *self,
			    struct outbound_route *r)
{
	char host[256];
	uint16_t port;
	bool use_mx;

	memset(r, 0, sizeof(*r));
	if (outbound_nexthop_parse(nexthop, default_port, host, sizeof(host), &port, &use_mx) < 0) {
		route_fail(r, OUTBOUND_DNS_PERM, "5.1.2", "bad destination '%s'", nexthop);
		return;
	}
	if (is_literal(host)) {
		size_t len = strlen(host); /* a literal is at most 45 characters */
		memcpy(r->hosts[0].name, host, len + 1);
		memcpy(r->hosts[0].addr, host, len + 1);
		r->hosts[0].port = port;
		r->n = 1;
		r->result = OUTBOUND_DNS_OK;
		if (self != NULL)
			outbound_route_drop_self(r, self, host, 0);
		return;
	}
	ldns_resolver *res = resolver_new(resolver, timeout_s);
	if (res == NULL) {
		route_fail(r, OUTBOUND_DNS_TEMP, "4.4.3", "no usable DNS resolver (%s)",
			   resolver[0] != '\0' ? resolver : "/etc/resolv.conf");
		return;
	}
	struct mx mx[MX_MAX];
	int nmx = 0;
	bool temp = false;
	if (use_mx) {
		enum outbound_dns_result fail = OUTBOUND_DNS_OK;
		nmx = lookup_mx(res, host, mx, MX_MAX, &fail);
		if (nmx == -2) {
			route_fail(r, OUTBOUND_DNS_PERM, "5.1.10",
				   "domain %s does not accept mail (null MX)", host);
			goto out;
		}
		if (nmx < 0) {
			if (fail == OUTBOUND_DNS_PERM)
				route_fail(r, OUTBOUND_DNS_PERM, "5.1.2",
					   "Host or domain name not found: %s", host);
			else
				route_fail(r, OUTBOUND_DNS_TEMP, "4.4.3",
					   "Host or domain name lookup failed: %s", host);
			goto out;
		}
	}
	if (nmx == 0) {
		add_addresses(res, host, port, 0, use_mx, r, &temp); /* implicit MX, or [name] */
	} else {
		for (int i = 0; i < nmx && r->n < OUTBOUND_HOSTS_MAX; i++)
			add_addresses(res, mx[i].name, port, mx[i].pref, true, r, &temp);
	}
	if (r->n > 0) {
		r->result = OUTBOUND_DNS_OK;
		if (self != NULL)
			outbound_route_drop_self(r, self, host, nmx > 0 ? mx[0].pref : 0);
	} else if (temp)
		route_fail(r, OUTBOUND_DNS_TEMP, "4.4.3", "Host or domain name lookup failed: %s",
			   host);
	else
		route_fail(r, OUTBOUND_DNS_PERM, "5.4.4", "Host or domain name not found: %s", host);
out:
	ldns_resolver_deep_free(res);
}
