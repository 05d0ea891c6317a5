/*
 * auth_fake: the in-memory authentication interface for tests (see
 * node/auth_fake.h). Deliberately simple: a fixed user table, PLAIN,
 * LOGIN, passwords and APOP, outcomes queued until the test asks.
 */
#include "node/auth_fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/auth_private.h"

#define FAKE_USERS 32

struct fake_user {
	char address[DIRECTORY_ADDRESS_MAX];
	char password[128];
	char secret[128];
	bool enabled;
};

/* struct auth_handle stays opaque here (auth_pool.c owns that name); the
 * interface's handles are fake_handle behind a cast. */
struct fake_handle {
	struct auth_fake *fake;
	bool tls, plaintext_allowed;
	int mech; /* AUTH_MECH_PLAIN / LOGIN during an exchange, -1 otherwise */
	int step; /* LOGIN: 1 = user asked, 2 = password asked */
	char login_user[DIRECTORY_ADDRESS_MAX];
	/* the queued outcome */
	bool pending;
	auth_done_cb *done;
	void *arg;
	struct auth_outcome out;
	char user[DIRECTORY_ADDRESS_MAX];
	unsigned char challenge[32];
};

struct auth_fake {
	struct fake_user users[FAKE_USERS];
	unsigned nusers;
	unsigned delay_ms;
	enum auth_reason fail_next;
	struct fake_handle *queue[64];
	unsigned nqueue;
};

struct auth_fake *auth_fake_new(void)
{
	return calloc(1, sizeof(struct auth_fake));
}

void auth_fake_free(struct auth_fake **fake)
{
	free(*fake);
	*fake = NULL;
}

void auth_fake_add_user(struct auth_fake *fake, const char *address, const char *password,
			const char *secret, bool enabled)
{
	if (fake->nusers == FAKE_USERS)
		abort();
	struct fake_user *u = &fake->users[fake->nusers++];
	snprintf(u->address, sizeof(u->address), "%s", address);
	snprintf(u->password, sizeof(u->password), "%s", password);
	snprintf(u->secret, sizeof(u->secret), "%s", secret != NULL ? secret : "");
	u->enabled = enabled;
}

void auth_fake_set_delay(struct auth_fake *fake, unsigned delay_ms)
{
	fake->delay_ms = delay_ms;
}

void auth_fake_fail_next(struct auth_fake *fake, enum auth_reason reason)
{
	fake->fail_next = reason;
}

unsigned auth_fake_pending(const struct auth_fake *fake)
{
	return fake->nqueue;
}

unsigned auth_fake_complete(struct auth_fake *fake)
{
	unsigned n = 0;
	while (fake->nqueue > 0) {
		struct fake_handle *h = fake->queue[0];
		memmove(fake->queue, fake->queue + 1, --fake->nqueue * sizeof(fake->queue[0]));
		h->pending = false;
		h->done(&h->out, h->arg); /* may free h */
		n++;
	}
	return n;
}

static const struct fake_user *fake_find(struct auth_fake *fake, const char *name)
{
	char canon[DIRECTORY_ADDRESS_MAX];
	if (name == NULL || auth_canon_address(name, strlen(name), canon, sizeof(canon)) < 0)
		return NULL;
	for (unsigned i = 0; i < fake->nusers; i++)
		if (strcmp(fake->users[i].address, canon) == 0)
			return &fake->users[i];
	return NULL;
}

static void queue(struct fake_handle *h, auth_done_cb *done, void *arg)
{
	struct auth_fake *fake = h->fake;
	if (h->pending || fake->nqueue == sizeof(fake->queue) / sizeof(fake->queue[0]))
		abort(); /* a test bug: one operation per handle */
	h->done = done;
	h->arg = arg;
	h->pending = true;
	fake->queue[fake->nqueue++] = h;
}

static void set_outcome(struct fake_handle *h, int mech, enum auth_status status,
			enum auth_reason reason, const char *user)
{
	struct auth_fake *fake = h->fake;
	if (fake->fail_next != AUTH_REASON_NONE) {
		status = AUTH_FAIL;
		reason = fake->fail_next;
		fake->fail_next = AUTH_REASON_NONE;
	}
	if (status != AUTH_CONTINUE)
		h->mech = -1;
	snprintf(h->user, sizeof(h->user), "%s", user != NULL ? user : "");
	h->out = (struct auth_outcome){
	    .status = status,
	    .reason = status == AUTH_FAIL ? reason : AUTH_REASON_NONE,
	    .detail = status == AUTH_FAIL ? auth_reason_name(reason) : NULL,
	    .challenge = h->challenge,
	    .user = status == AUTH_OK ? h->user : NULL,
	    .mechanism = mech >= 0 ? auth_mech_name((enum auth_mech)mech) : "",
	    .delay_ms =
		status == AUTH_FAIL && reason == AUTH_REASON_CREDENTIALS ? fake->delay_ms : 0,
	};
}

/* Password check with the same rules as the real one. */
static void finish_password(struct fake_handle *h, int mech, const char *user, const char *pw)
{
	const struct fake_user *u = fake_find(h->fake, user);
	if (u == NULL || strcmp(u->password, pw) != 0)
		set_outcome(h, mech, AUTH_FAIL, AUTH_REASON_CREDENTIALS, NULL);
	else if (!u->enabled)
		set_outcome(h, mech, AUTH_FAIL, AUTH_REASON_DISABLED, NULL);
	else
		set_outcome(h, mech, AUTH_OK, AUTH_REASON_NONE, u->address);
}

static void challenge(struct fake_handle *h, int mech, const char *text)
{
	h->out.challenge_len = strlen(text);
	set_outcome(h, mech, AUTH_CONTINUE, AUTH_REASON_NONE, NULL);
	memcpy(h->challenge, text, strlen(text));
	h->out.challenge_len = strlen(text);
}

/* PLAIN: [authzid] NUL authcid NUL password. */
static void plain_response(struct fake_handle *h, const unsigned char *p, size_t len)
{
	const unsigned char *nul1 = memchr(p, '\0', len);
	const unsigned char *nul2 =
	    nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - p)) : NULL;
	char authz[DIRECTORY_ADDRESS_MAX], authc[DIRECTORY_ADDRESS_MAX], pw[128];
	if (nul2 == NULL || (size_t)(nul1 - p) >= sizeof(authz) ||
	    (size_t)(nul2 - nul1 - 1) >= sizeof(authc) ||
	    len - (size_t)(nul2 + 1 - p) >= sizeof(pw)) {
		set_outcome(h, AUTH_MECH_PLAIN, AUTH_FAIL, AUTH_REASON_MALFORMED, NULL);
		return;
	}
	snprintf(authz, sizeof(authz), "%.*s", (int)(nul1 - p), (const char *)p);
	snprintf(authc, sizeof(authc), "%.*s", (int)(nul2 - nul1 - 1), (const char *)nul1 + 1);
	snprintf(pw, sizeof(pw), "%.*s", (int)(len - (size_t)(nul2 + 1 - p)),
		 (const char *)nul2 + 1);
	if (authz[0] != '\0' && strcasecmp(authz, authc) != 0)
		set_outcome(h, AUTH_MECH_PLAIN, AUTH_FAIL, AUTH_REASON_AUTHZ, NULL);
	else
		finish_password(h, AUTH_MECH_PLAIN, authc, pw);
}

static void fake_start(struct auth_handle *hh, const char *mech, const void *ir, size_t ir_len,
		       bool has_ir, auth_done_cb *done, void *arg)
{
	struct fake_handle *h = (struct fake_handle *)hh;
	h->mech = -1;
	h->out.challenge_len = 0;
	if (mech != NULL && strcasecmp(mech, "PLAIN") == 0) {
		if (!h->tls && !h->plaintext_allowed)
			set_outcome(h, AUTH_MECH_PLAIN, AUTH_FAIL, AUTH_REASON_TOO_WEAK, NULL);
		else if (has_ir)
			plain_response(h, ir, ir_len);
		else {
			h->mech = AUTH_MECH_PLAIN;
			challenge(h, AUTH_MECH_PLAIN, "");
		}
	} else if (mech != NULL && strcasecmp(mech, "LOGIN") == 0) {
		if (!h->tls && !h->plaintext_allowed) {
			set_outcome(h, AUTH_MECH_LOGIN, AUTH_FAIL, AUTH_REASON_TOO_WEAK, NULL);
		} else {
			h->mech = AUTH_MECH_LOGIN;
			h->step = 1;
			challenge(h, AUTH_MECH_LOGIN, "Username:");
		}
	} else {
		set_outcome(h, -1, AUTH_FAIL, AUTH_REASON_MECHANISM, NULL);
	}
	queue(h, done, arg);
}

static void fake_step(struct auth_handle *hh, const void *resp, size_t len, auth_done_cb *done,
		      void *arg)
{
	struct fake_handle *h = (struct fake_handle *)hh;
	if (h->mech == AUTH_MECH_PLAIN) {
		plain_response(h, resp, len);
	} else if (h->mech == AUTH_MECH_LOGIN && h->step == 1 && len < sizeof(h->login_user)) {
		snprintf(h->login_user, sizeof(h->login_user), "%.*s", (int)len,
			 (const char *)resp);
		h->step = 2;
		challenge(h, AUTH_MECH_LOGIN, "Password:");
	} else if (h->mech == AUTH_MECH_LOGIN && h->step == 2 && len < 128) {
		char pw[128];
		snprintf(pw, sizeof(pw), "%.*s", (int)len, (const char *)resp);
		finish_password(h, AUTH_MECH_LOGIN, h->login_user, pw);
	} else {
		set_outcome(h, h->mech, AUTH_FAIL, AUTH_REASON_MALFORMED, NULL);
	}
	queue(h, done, arg);
}

static void fake_abort(struct auth_handle *hh, auth_done_cb *done, void *arg)
{
	struct fake_handle *h = (struct fake_handle *)hh;
	set_outcome(h, h->mech, AUTH_FAIL, AUTH_REASON_ABORTED, NULL);
	queue(h, done, arg);
}

static void fake_password(struct auth_handle *hh, const char *user, const char *password,
			  auth_done_cb *done, void *arg)
{
	struct fake_handle *h = (struct fake_handle *)hh;
	if (!h->tls && !h->plaintext_allowed)
		set_outcome(h, AUTH_MECH_PASSWORD, AUTH_FAIL, AUTH_REASON_TOO_WEAK, NULL);
	else
		finish_password(h, AUTH_MECH_PASSWORD, user, password != NULL ? password : "");
	queue(h, done, arg);
}

static void fake_apop(struct auth_handle *hh, const char *user, const char *timestamp,
		      const char *digest, auth_done_cb *done, void *arg)
{
	struct fake_handle *h = (struct fake_handle *)hh;
	const struct fake_user *u = fake_find(h->fake, user);
	char want[33];
	if (u == NULL || u->secret[0] == '\0' || timestamp == NULL || digest == NULL ||
	    auth_apop_digest(timestamp, u->secret, want) < 0 || strcasecmp(want, digest) != 0)
		set_outcome(h, AUTH_MECH_APOP, AUTH_FAIL, AUTH_REASON_CREDENTIALS, NULL);
	else if (!u->enabled)
		set_outcome(h, AUTH_MECH_APOP, AUTH_FAIL, AUTH_REASON_DISABLED, NULL);
	else
		set_outcome(h, AUTH_MECH_APOP, AUTH_OK, AUTH_REASON_NONE, u->address);
	queue(h, done, arg);
}

static size_t fake_mechanisms(void *ctx, bool tls, bool plaintext_allowed, char *out, size_t size)
{
	(void)ctx;
	return (size_t)snprintf(out, size, "%s", tls || plaintext_allowed ? "PLAIN LOGIN" : "");
}

static bool fake_apop_timestamp(void *ctx, char *out, size_t size)
{
	(void)ctx;
	return snprintf(out, size, "<1.2.3@fake.test>") < (int)size;
}

static struct auth_handle *fake_handle_new(void *ctx, struct event_base *base,
					   const struct auth_session_params *p)
{
	struct fake_handle *h = calloc(1, sizeof(*h));
	(void)base;
	if (h == NULL)
		return NULL;
	h->fake = ctx;
	h->tls = p->tls;
	h->plaintext_allowed = p->plaintext_allowed;
	h->mech = -1;
	return (struct auth_handle *)h;
}

static void fake_handle_set_tls(struct auth_handle *hh, bool tls)
{
	((struct fake_handle *)hh)->tls = tls;
}

static void fake_handle_free(struct auth_handle **hp)
{
	struct fake_handle *h = (struct fake_handle *)*hp;
	if (h == NULL)
		return;
	struct auth_fake *fake = h->fake;
	for (unsigned i = 0; i < fake->nqueue; i++) {
		if (fake->queue[i] == h) {
			memmove(fake->queue + i, fake->queue + i + 1,
				(fake->nqueue - i - 1) * sizeof(fake->queue[0]));
			fake->nqueue--;
			break;
		}
	}
	free(h);
	*hp = NULL;
}

static const struct auth_iface fake_iface = {
    .mechanisms = fake_mechanisms,
    .apop_timestamp = fake_apop_timestamp,
    .handle_new = fake_handle_new,
    .handle_set_tls = fake_handle_set_tls,
    .handle_free = fake_handle_free,
    .start = fake_start,
    .step = fake_step,
    .abort = fake_abort,
    .password = fake_password,
    .apop = fake_apop,
};

const struct auth_iface *auth_fake_iface(void)
{
	return &fake_iface;
}
