/*
 * pop3_jobs: the POP3 engine's maildrop calls (proto/pop3/pop3.h's
 * backend) on the store (node/pop3_maildrop.h).
 *
 * Opening the maildrop (it may absorb deliveries and write the index)
 * and QUIT's expunge (an index write and an fsync) run on the job pool;
 * their outcome comes back on the connection's loop and answers the
 * engine. A connection that goes away meanwhile detaches its job: an
 * open is cancelled (a queued one never runs; a running one's maildrop
 * is closed when it ends); an expunge runs to its end, because the
 * client sent QUIT, and then closes the maildrop itself. The engine's
 * array of indexes is copied into the job for that reason.
 *
 * RETR and TOP read their chunks on the loop (see pop3_maildrop.h).
 * Store errors map to the engine's answers: CORRUPT (fsck needed),
 * INVALID and NOTFOUND are [SYS/PERM], the rest [SYS/TEMP]; each
 * failure is logged with the store's reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/job_pool.h"
#include "node/log.h"
#include "node/pop3_maildrop.h"
#include "node/pop3_service_private.h"
#include "storage/store.h"

enum pop3_job_kind {
	POP3_JOB_OPEN,
	POP3_JOB_COMMIT,
};

/* A store operation on the job pool. Owned by the pool until done runs. */
struct pop3_job {
	struct pop3_conn *pc; /* NULL once the connection is gone */
	struct job *job;
	enum pop3_job_kind kind;
	struct store *store;
	char user[POP3_USER_MAX + 1];
	struct pop3_maildrop *md; /* OPEN: the result; COMMIT: the maildrop expunged from */
	size_t *indexes;	  /* COMMIT: a copy (the engine's may go first) */
	size_t count;
	size_t removed;
	int rc;
	char error[256];
};

static void job_work(void *arg)
{
	struct pop3_job *job = arg;
	const char *error = NULL;

	if (job->kind == POP3_JOB_OPEN)
		job->rc = pop3_maildrop_open(job->store, job->user, &job->md, &error);
	else
		job->rc =
		    pop3_maildrop_commit(job->md, job->indexes, job->count, &job->removed, &error);
	if (job->rc < 0)
		snprintf(job->error, sizeof(job->error), "%s",
			 error != NULL ? error : "unknown error");
}

static void job_free(struct pop3_job *job)
{
	free(job->indexes);
	free(job);
}

static int maildrop_status(int store_rc)
{
	switch (store_rc) {
	case STORE_OK:
		return POP3_MAILDROP_OK;
	case STORE_E_CORRUPT: /* needs fsck: the client must not just retry */
	case STORE_E_INVALID:
	case STORE_E_NOTFOUND:
		return POP3_MAILDROP_PERM;
	default:
		return POP3_MAILDROP_TEMP;
	}
}

static void job_done(void *arg, bool cancelled)
{
	struct pop3_job *job = arg;
	struct pop3_conn *pc = job->pc;

	(void)cancelled; /* a cancelled job has pc == NULL too */
	if (pc == NULL) {
		/* the connection is gone: an opened maildrop is not wanted; a
		 * committed one was handed to the job by the close hook */
		if (job->kind == POP3_JOB_COMMIT && job->rc < 0)
			log_error("pop3",
				  "expunge at QUIT failed user=%s (the client left): %s (%s)",
				  job->user, store_strerror(job->rc), job->error);
		else if (job->kind == POP3_JOB_COMMIT)
			log_info("pop3",
				 "expunge at QUIT done after the client left user=%s deleted=%zu",
				 job->user, job->removed);
		pop3_maildrop_close(&job->md);
		job_free(job);
		return;
	}
	pc->job = NULL;
	if (job->kind == POP3_JOB_OPEN) {
		const struct pop3_message *msgs = NULL;
		if (job->rc < 0) {
			log_warning("pop3",
				    "maildrop open failed user=%s peer=%s conn=%llu: %s (%s)",
				    job->user, pop3_service_peer(pc), pop3_service_id(pc),
				    store_strerror(job->rc), job->error);
		} else {
			pc->md = job->md;
			msgs = pop3_maildrop_messages(pc->md, &pc->messages);
			pc->octets = pop3_maildrop_octets(pc->md);
			pc->logged_in = true;
		}
		pc->want = pop3_session_maildrop_opened(pc->s, maildrop_status(job->rc), msgs,
							pc->messages);
	} else {
		pc->deleted = job->removed;
		if (job->rc < 0)
			log_error("pop3",
				  "expunge at QUIT failed user=%s peer=%s conn=%llu: %s (%s)",
				  job->user, pop3_service_peer(pc), pop3_service_id(pc),
				  store_strerror(job->rc), job->error);
		pc->want = pop3_session_commit_done(pc->s, job->rc < 0 ? -1 : 0);
	}
	job_free(job);
	pop3_service_pump(pc);
}

static struct pop3_job *job_new(struct pop3_conn *pc, enum pop3_job_kind kind, const char *user)
{
	struct pop3_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->pc = pc;
	job->kind = kind;
	job->store = pc->env->store;
	snprintf(job->user, sizeof(job->user), "%s", user);
	return job;
}

static bool job_start(struct pop3_conn *pc, struct pop3_job *job)
{
	job->job = job_submit(pc->env->jobs, conn_base(pc->c), job_work, job_done, job);
	if (job->job == NULL) {
		job_free(job);
		return false;
	}
	pc->job = job;
	return true;
}

void pop3_jobs_maildrop_open(void *ctx, const char *user)
{
	struct pop3_conn *pc = ctx;
	struct pop3_job *job = job_new(pc, POP3_JOB_OPEN, user);

	if (job == NULL || !job_start(pc, job)) {
		log_error("pop3", "out of memory opening the maildrop user=%s conn=%llu", user,
			  pop3_service_id(pc));
		pc->local = POP3_LOCAL_STORE_TEMP;
	}
}

void pop3_jobs_maildrop_commit(void *ctx, const size_t *indexes, size_t count)
{
	struct pop3_conn *pc = ctx;
	struct pop3_job *job = job_new(pc, POP3_JOB_COMMIT, pop3_service_user(pc));

	pc->dele = count;
	if (job != NULL &&
	    (job->indexes = malloc((count ? count : 1) * sizeof(*indexes))) != NULL) {
		memcpy(job->indexes, indexes, count * sizeof(*indexes));
		job->count = count;
		job->md = pc->md;
		if (job_start(pc, job))
			return;
		job = NULL;
	}
	if (job != NULL)
		job_free(job);
	log_error("pop3", "out of memory at QUIT user=%s conn=%llu", pop3_service_user(pc),
		  pop3_service_id(pc));
	pc->local = POP3_LOCAL_STORE_TEMP;
}

/* On the loop: one pread from the file kept open while it streams. */
ssize_t pop3_jobs_message_read(void *ctx, size_t index, uint64_t offset, void *buf, size_t len)
{
	struct pop3_conn *pc = ctx;
	const char *error = NULL;

	if (pc->md == NULL)
		return POP3_READ_TEMP;
	ssize_t n = pop3_maildrop_read(pc->md, index, offset, buf, len, &error);
	if (n > 0) {
		if (offset > 0 || len > 1) /* not the engine's probe */
			pc->read_octets += (uint64_t)n;
		return n;
	}
	if (n == POP3_READ_GONE && offset == 0) {
		log_info("pop3", "message %zu removed by another session user=%s peer=%s conn=%llu",
			 index + 1, pop3_service_user(pc), pop3_service_peer(pc),
			 pop3_service_id(pc));
		return n;
	}
	if (n < 0 && offset > 0)
		pc->end_reason = "a message could not be read while it was being sent";
	if (n < 0)
		log_error("pop3",
			  "message read failed user=%s peer=%s msg=%zu offset=%llu conn=%llu: %s",
			  pop3_service_user(pc), pop3_service_peer(pc), index + 1,
			  (unsigned long long)offset, pop3_service_id(pc),
			  error != NULL ? error : "gone while streaming");
	return n;
}

void pop3_jobs_maildrop_close(void *ctx)
{
	struct pop3_conn *pc = ctx;
	pop3_maildrop_close(&pc->md);
}

void pop3_jobs_detach(struct pop3_conn *pc)
{
	struct pop3_job *job = pc->job;

	if (job == NULL)
		return;
	job->pc = NULL;
	if (job->kind == POP3_JOB_OPEN) {
		job_cancel(job->job);
	} else {
		/* QUIT was sent: the expunge finishes, then frees the maildrop */
		job->md = pc->md;
		pc->md = NULL;
	}
	pc->job = NULL;
}

bool pop3_jobs_committing(const struct pop3_conn *pc)
{
	return pc->job != NULL && pc->job->kind == POP3_JOB_COMMIT;
}
