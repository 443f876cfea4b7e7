/*
 * lock.c — writer leases (see lock.h and FORMAT.md section 14).
 *
 * A lock handle holds the lock's current object and a background thread
 * that replaces it every refresh interval: put the next object (seq + 1),
 * then delete the previous one, so that at every moment at least one live
 * object of the holder exists.  Before each refresh the thread checks that
 * the current object still exists: if someone removed it (it looked stale
 * to them, e.g. because of clock skew or a long pause of this process), the
 * lease is lost, and repo_lock_check says so, sticky.
 *
 * Everything the thread touches is either its own (the handle's sealer and
 * buffers, guarded by the handle's mutex) or thread-safe by contract (the
 * storage handle) or read-only (the keys).  It never touches the repo.
 */
#include "repo/lock.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_PREFIX "locks/"
/* Names of earlier objects whose delete failed, retried at each refresh. */
#define LOCK_PENDING_MAX 8

struct repo_lock {
	struct storage *st;           /* borrowed: thread-safe */
	const struct repo_keys *keys; /* borrowed: read-only */

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;
	pthread_t thread;
	int have_thread, stop;

	struct sealer *sealer;
	struct buf plain, sealed;
	struct lock_info info; /* of the current object */
	char name[65];         /* the current object */
	char pending[LOCK_PENDING_MAX][65];
	size_t npending;
	uint64_t refresh_ns;
	int lost;                 /* our object was removed by someone else */
	struct cairn_err last_err; /* of the last failed refresh */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* b - a, clamped to [0, INT64_MAX]. */
static int64_t elapsed(int64_t a, int64_t b)
{
	if (b <= a)
		return 0;
	uint64_t d = (uint64_t)b - (uint64_t)a;
	return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* "5 min", "2 h", "40 s": for messages. */
static void fmt_age(char *out, size_t n, int64_t ns)
{
	int64_t s = ns / 1000000000;
	if (s < 120)
		snprintf(out, n, "%lld s", (long long)s);
	else if (s < 2 * 3600)
		snprintf(out, n, "%lld min", (long long)(s / 60));
	else if (s < 2 * 86400)
		snprintf(out, n, "%lld h", (long long)(s / 3600));
	else
		snprintf(out, n, "%lld days", (long long)(s / 86400));
}

static void this_host(char out[LOCK_HOST_MAX + 1])
{
	if (gethostname(out, LOCK_HOST_MAX + 1) != 0 || !out[0])
		snprintf(out, LOCK_HOST_MAX + 1, "unknown");
	out[LOCK_HOST_MAX] = '\0';
}

/* Who can judge our pid: the same boot of the same machine, in the same PID
 * namespace ("<boot id>/pid:[<inode>]").  Empty where /proc says nothing:
 * then nobody judges locks by pid, only by time. */
static void this_process(char out[LOCK_TEXT_MAX + 1])
{
	char boot[64] = "", ns[64];
	out[0] = '\0';
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (!f)
		return;
	if (!fgets(boot, sizeof(boot), f))
		boot[0] = '\0';
	fclose(f);
	boot[strcspn(boot, "\n")] = '\0';
	ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	if (!boot[0] || n <= 0)
		return;
	ns[n] = '\0';
	snprintf(out, LOCK_TEXT_MAX + 1, "%s/%s", boot, ns);
}

const char *lock_state_name(enum lock_state s)
{
	switch (s) {
	case LOCK_LIVE: return "live";
	case LOCK_EXPIRED: return "expired";
	case LOCK_DEAD: return "process gone";
	case LOCK_SUPERSEDED: return "superseded";
	case LOCK_DAMAGED: return "damaged";
	}
	return "?";
}

static const char *kind_name(uint8_t kind)
{
	return kind == REPO_LOCK_EXCLUSIVE ? "exclusive" : "shared";
}

/* ---- encoding ----------------------------------------------------------- */

int lock_encode(const struct lock_info *li, struct buf *out)
{
	buf_reset(out);
	int rc = buf_put_u8(out, li->kind);
	rc = rc ? rc : buf_put_str16(out, li->host, strlen(li->host));
	rc = rc ? rc : buf_put_u32(out, li->pid);
	rc = rc ? rc : buf_put_u64(out, (uint64_t)li->created_ns);
	rc = rc ? rc : buf_put_u64(out, (uint64_t)li->refreshed_ns);
	rc = rc ? rc : buf_put_u64(out, li->stale_after_ns);
	rc = rc ? rc : buf_append(out, li->id, 16);
	rc = rc ? rc : buf_put_u64(out, li->seq);
	rc = rc ? rc : buf_put_str16(out, li->version, strlen(li->version));
	rc = rc ? rc : buf_put_str16(out, li->process, strlen(li->process));
	/* Optional: a writer's object (role 0) stays as before the field. */
	if (li->role)
		rc = rc ? rc : buf_put_u8(out, li->role);
	return rc;
}

/* A str16 of at most `max` bytes without NUL into out (max + 1 bytes). */
static void rd_text(struct rd *r, char *out, size_t max)
{
	uint16_t n = rd_u16(r);
	const uint8_t *p = rd_bytes(r, n);
	if (!p || n > max || memchr(p, 0, n)) {
		r->bad = 1;
		out[0] = '\0';
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

int lock_decode(const void *p, size_t n, struct lock_info *li, struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	memset(li, 0, sizeof(*li));
	li->kind = rd_u8(&r);
	rd_text(&r, li->host, LOCK_HOST_MAX);
	li->pid = rd_u32(&r);
	li->created_ns = (int64_t)rd_u64(&r);
	li->refreshed_ns = (int64_t)rd_u64(&r);
	li->stale_after_ns = rd_u64(&r);
	rd_copy(&r, li->id, 16);
	li->seq = rd_u64(&r);
	rd_text(&r, li->version, LOCK_TEXT_MAX);
	rd_text(&r, li->process, LOCK_TEXT_MAX);
	if (!r.bad && rd_left(&r) > 0)
		li->role = rd_u8(&r);
	/* Bytes after the known fields belong to a later cairn: ignored. */
	if (r.bad)
		return cairn_err_set(err, CAIRN_ECORRUPT, "lock object is truncated or malformed");
	if (li->kind != REPO_LOCK_SHARED && li->kind != REPO_LOCK_EXCLUSIVE)
		return cairn_err_set(err, CAIRN_ECORRUPT, "lock object has an unknown kind %u",
				     li->kind);
	if (li->stale_after_ns == 0 || li->stale_after_ns > (uint64_t)INT64_MAX)
		return cairn_err_set(err, CAIRN_ECORRUPT, "lock object has an invalid stale time");
	return 0;
}

/* ---- judging ------------------------------------------------------------ */

enum lock_state lock_staleness(const struct lock_info *li, int64_t now,
			       const char *host, const char *process)
{
	/* A refreshed_ns in the future (the holder's clock is ahead) counts
	 * as just refreshed: treating it as stale could let an exclusive
	 * holder run beside a live writer. */
	if ((uint64_t)elapsed(li->refreshed_ns, now) > li->stale_after_ns)
		return LOCK_EXPIRED;
	if (process[0] && !strcmp(li->host, host) && !strcmp(li->process, process) &&
	    li->pid > 0 && li->pid <= INT_MAX && kill((pid_t)li->pid, 0) != 0 && errno == ESRCH)
		return LOCK_DEAD;
	return LOCK_LIVE;
}

/* ---- listing ------------------------------------------------------------ */

struct lock_set {
	struct lock_entry *v;
	size_t n, cap;
	char **names;
	size_t nnames;
};

static void lock_set_free(struct lock_set *s)
{
	free(s->v);
	strlist_free(s->names, s->nnames);
	memset(s, 0, sizeof(*s));
}

static int collect_name(void *arg, const char *key, uint64_t size)
{
	struct lock_set *s = arg;
	const char *name = key + strlen(LOCK_PREFIX);
	uint8_t id[32];
	(void)size;
	/* Not one of ours (FORMAT.md section 3: readers ignore such names). */
	if (strlen(name) != 64 || hex_decode(id, 32, name) != 0)
		return 0;
	return strlist_add(&s->names, &s->nnames, name) ? CAIRN_ENOMEM : 0;
}

/* Reads and judges every lock object.  A lock deleted between the listing
 * and the read (a refresh, an unlock) is left out; one that cannot be read
 * as a lock is LOCK_DAMAGED; any other storage error fails. */
static int load_locks(struct storage *st, const struct repo_keys *keys,
		      struct sealer *sealer, struct lock_set *s, struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	char host[LOCK_HOST_MAX + 1], process[LOCK_TEXT_MAX + 1];
	int rc = storage_list(st, LOCK_PREFIX, collect_name, s, err);
	if (rc == CAIRN_ENOMEM)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory listing locks");
	if (rc)
		goto out;
	this_host(host);
	this_process(process);
	int64_t now = now_ns();
	s->v = calloc(s->nnames ? s->nnames : 1, sizeof(*s->v));
	if (!s->v) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory listing locks");
		goto out;
	}
	for (size_t i = 0; i < s->nnames; i++) {
		struct lock_entry *e = &s->v[s->n];
		char key[80], what[100];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "%s", s->names[i]);
		snprintf(key, sizeof(key), LOCK_PREFIX "%s", e->name);
		snprintf(what, sizeof(what), "lock %.16s", e->name);
		int lrc = storage_get(st, key, 0, STORAGE_WHOLE, &raw, &e->error);
		if (lrc == CAIRN_ENOTFOUND)
			continue;
		if (lrc && lrc != CAIRN_ECORRUPT) {
			*err = e->error;
			rc = lrc;
			goto out;
		}
		if (!lrc)
			lrc = obj_open(sealer, keys, LOCK_MAGIC, e->name, raw.data, raw.len, &plain,
				       what, &e->error);
		if (!lrc) {
			lrc = lock_decode(plain.data, plain.len, &e->info, &e->error);
			if (lrc)
				cairn_err_prefix(&e->error, "%s", what);
		}
		if (lrc) {
			e->state = LOCK_DAMAGED;
		} else {
			e->state = lock_staleness(&e->info, now, host, process);
			e->age_ns = elapsed(e->info.created_ns, now);
			e->since_refresh_ns = elapsed(e->info.refreshed_ns, now);
		}
		s->n++;
	}
	/* Of several objects of one holder only the newest counts. */
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->n; j++) {
			struct lock_entry *a = &s->v[i], *b = &s->v[j];
			if (i == j || a->state == LOCK_DAMAGED || b->state == LOCK_DAMAGED ||
			    memcmp(a->info.id, b->info.id, 16) != 0)
				continue;
			if (a->info.seq < b->info.seq && a->state == LOCK_LIVE)
				a->state = LOCK_SUPERSEDED;
		}
out:
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

int repo_locks_list(struct repo *r, int (*cb)(void *arg, const struct lock_entry *e),
		    void *arg, struct cairn_err *err)
{
	struct lock_set s;
	memset(&s, 0, sizeof(s));
	struct sealer *sealer = sealer_new(1);
	if (!sealer)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	int rc = load_locks(repo_get_storage(r), repo_get_keys(r), sealer, &s, err);
	for (size_t i = 0; i < s.n && !rc; i++)
		rc = cb(arg, &s.v[i]);
	lock_set_free(&s);
	sealer_free(sealer);
	return rc;
}

static int del_lock(struct storage *st, const char *name, struct cairn_err *err)
{
	char key[80];
	snprintf(key, sizeof(key), LOCK_PREFIX "%s", name);
	return storage_del(st, key, err);
}

int repo_unlock_stale(struct repo *r, size_t *removed,
		      int (*cb)(void *arg, const struct lock_entry *e, int removed),
		      void *arg, struct cairn_err *err)
{
	struct lock_set s;
	memset(&s, 0, sizeof(s));
	*removed = 0;
	struct sealer *sealer = sealer_new(1);
	if (!sealer)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	struct storage *st = repo_get_storage(r);
	int rc = load_locks(st, repo_get_keys(r), sealer, &s, err);
	for (size_t i = 0; i < s.n && !rc; i++) {
		struct lock_entry *e = &s.v[i];
		int gone = 0;
		if (e->state == LOCK_LIVE)
			continue;
		/* A damaged object may be a lock that this cairn cannot read
		 * (another key, a later format): an operator decides. */
		if (e->state != LOCK_DAMAGED) {
			rc = del_lock(st, e->name, err);
			if (rc == CAIRN_ENOTFOUND)
				rc = 0;
			if (rc)
				break;
			gone = 1;
			(*removed)++;
		}
		if (cb)
			rc = cb(arg, e, gone);
	}
	lock_set_free(&s);
	sealer_free(sealer);
	return rc;
}

static int same_holder(const struct lock_entry *a, const struct lock_entry *b)
{
	return a->state != LOCK_DAMAGED && b->state != LOCK_DAMAGED &&
	       !memcmp(a->info.id, b->info.id, 16);
}

int repo_unlock_one(struct repo *r, const char *ref, int force, struct lock_entry *which,
		    struct cairn_err *err)
{
	struct lock_set s;
	memset(&s, 0, sizeof(s));
	size_t len = strlen(ref);
	if (len < 8 || len > 64 || strspn(ref, "0123456789abcdef") != len)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "lock '%s': give at least 8 hex digits of an id from 'cairn locks'",
				     ref);
	struct sealer *sealer = sealer_new(1);
	if (!sealer)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	struct storage *st = repo_get_storage(r);
	int rc = load_locks(st, repo_get_keys(r), sealer, &s, err);
	/* A holder id names all of the holder's objects, an object name one
	 * object; the matches must all belong to one holder. */
	const struct lock_entry *first = NULL, *shown = NULL;
	int ambiguous = 0, live = 0;
	uint8_t *match = rc ? NULL : calloc(s.n ? s.n : 1, 1);
	if (!rc && !match)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < s.n && !rc; i++) {
		struct lock_entry *e = &s.v[i];
		char idhex[33];
		hex_encode(idhex, e->info.id, 16);
		match[i] = !strncmp(e->name, ref, len) ||
			   (e->state != LOCK_DAMAGED && len <= 32 && !strncmp(idhex, ref, len));
		if (!match[i])
			continue;
		if (first && !same_holder(first, e))
			ambiguous = 1;
		first = first ? first : e;
		live |= e->state == LOCK_LIVE;
		if (!shown || (same_holder(shown, e) && e->info.seq > shown->info.seq))
			shown = e;
	}
	if (!rc && !first)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "no lock %s", ref);
	else if (!rc && ambiguous)
		rc = cairn_err_set(err, CAIRN_EAMBIG, "lock prefix %s matches several locks", ref);
	else if (!rc && live && !force) {
		char age[32];
		fmt_age(age, sizeof(age), shown->since_refresh_ns);
		rc = cairn_err_set(err, CAIRN_ELOCKED,
				   "lock %s (%s, host %s, pid %u) is live: refreshed %s ago; refusing to "
				   "remove it without --force",
				   ref, kind_name(shown->info.kind), shown->info.host, shown->info.pid, age);
	}
	for (size_t i = 0; i < s.n && !rc; i++) {
		if (!match[i])
			continue;
		rc = del_lock(st, s.v[i].name, err);
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
	}
	if (!rc && which)
		*which = *shown;
	free(match);
	lock_set_free(&s);
	sealer_free(sealer);
	return rc;
}

/* ---- holding a lock ----------------------------------------------------- */

/* Whether waiting for lock `e` to end may help a taker of `me`: a shared
 * taker waits for exclusive locks and forget leases (both short); an
 * exclusive taker that drains waits for shared locks. */
static int waitable(const struct lock_info *me, const struct lock_info *e)
{
	if (me->kind == REPO_LOCK_EXCLUSIVE)
		return e->kind != REPO_LOCK_EXCLUSIVE;
	return e->kind == REPO_LOCK_EXCLUSIVE || e->role == REPO_ROLE_FORGET;
}

/* A live lock of another holder (neither ours nor our companion's) that
 * conflicts with `me`, or NULL; one that waiting cannot end comes first. */
static const struct lock_entry *conflict(const struct lock_set *s, const struct lock_info *me,
					 const uint8_t *companion)
{
	const struct lock_entry *soft = NULL;
	for (size_t i = 0; i < s->n; i++) {
		const struct lock_entry *e = &s->v[i];
		const struct lock_info *o = &e->info;
		if (e->state != LOCK_LIVE || !memcmp(o->id, me->id, 16) ||
		    (companion && !memcmp(o->id, companion, 16)))
			continue;
		int hit = me->kind == REPO_LOCK_EXCLUSIVE || o->kind == REPO_LOCK_EXCLUSIVE ||
			  (me->role == REPO_ROLE_PRUNE &&
			   (o->role == REPO_ROLE_PRUNE || o->role == REPO_ROLE_FORGET)) ||
			  (me->role == REPO_ROLE_FORGET && o->role == REPO_ROLE_PRUNE);
		if (!hit)
			continue;
		if (!waitable(me, o))
			return e;
		soft = soft ? soft : e;
	}
	return soft;
}

static const char *role_name(const struct lock_info *li)
{
	if (li->kind == REPO_LOCK_EXCLUSIVE)
		return "a prune or repair";
	switch (li->role) {
	case REPO_ROLE_PRUNE: return "a prune";
	case REPO_ROLE_FORGET: return "a forget";
	default: return "a writer";
	}
}

static int refuse(const struct lock_entry *e, const char *when, struct cairn_err *err)
{
	char age[32], ref[32];
	fmt_age(age, sizeof(age), e->age_ns);
	fmt_age(ref, sizeof(ref), e->since_refresh_ns);
	char idhex[33];
	hex_encode(idhex, e->info.id, 16);
	return cairn_err_set(err, CAIRN_ELOCKED,
			     "%s: the repository is locked by %s (%s lock %.8s of host %s, pid %u, "
			     "taken %s ago, refreshed %s ago)",
			     when, role_name(&e->info), kind_name(e->info.kind), idhex, e->info.host,
			     e->info.pid, age, ref);
}

/* 0 when no live lock conflicts with ours; CAIRN_ELOCKED (err names the
 * holder, *wait says whether waiting may end it); other errors. */
static int check_conflicts(struct repo_lock *l, const uint8_t *companion, const char *when,
			   int *wait, struct cairn_err *err)
{
	struct lock_set s;
	memset(&s, 0, sizeof(s));
	*wait = 0;
	int rc = load_locks(l->st, l->keys, l->sealer, &s, err);
	const struct lock_entry *e = rc ? NULL : conflict(&s, &l->info, companion);
	if (e) {
		*wait = waitable(&l->info, &e->info);
		rc = refuse(e, when, err);
	}
	lock_set_free(&s);
	return rc;
}

/* Seals and puts `li` as a new object; sets name. */
static int put_lock(struct repo_lock *l, const struct lock_info *li, char name[65],
		    struct cairn_err *err)
{
	char key[80];
	if (lock_encode(li, &l->plain))
		return cairn_err_set(err, CAIRN_EUSAGE, "lock fields too long");
	int rc = obj_seal(l->sealer, l->keys, LOCK_MAGIC, l->plain.data, l->plain.len, &l->sealed,
			  name, err);
	if (rc)
		return rc;
	snprintf(key, sizeof(key), LOCK_PREFIX "%s", name);
	rc = storage_put(l->st, key, l->sealed.data, l->sealed.len, err);
	if (rc)
		cairn_err_prefix(err, "writing lock %.16s", name);
	return rc;
}

static void add_pending(struct repo_lock *l, const char *name)
{
	if (l->npending == LOCK_PENDING_MAX) {
		/* Forget the oldest: superseded, so stale, so unlock --stale
		 * (or any later refresh of ours) can remove it. */
		memmove(l->pending[0], l->pending[1], sizeof(l->pending[0]) * (LOCK_PENDING_MAX - 1));
		l->npending--;
	}
	snprintf(l->pending[l->npending++], 65, "%s", name);
}

static void retry_pending(struct repo_lock *l)
{
	size_t keep = 0;
	for (size_t i = 0; i < l->npending; i++) {
		struct cairn_err e;
		int rc = del_lock(l->st, l->pending[i], &e);
		if (rc && rc != CAIRN_ENOTFOUND)
			memmove(l->pending[keep++], l->pending[i], 65);
	}
	l->npending = keep;
}

/* The refresh itself; l->mu held. */
static int refresh_locked(struct repo_lock *l, struct cairn_err *err)
{
	char key[80], name[65];
	uint64_t size;
	struct cairn_err e;
	/* Is our object still there?  If not, someone judged it stale and
	 * removed it: an exclusive holder may have run since.  Go on holding
	 * (a new object still tells others we write) but the lease is lost. */
	snprintf(key, sizeof(key), LOCK_PREFIX "%s", l->name);
	int rc = storage_stat(l->st, key, &size, &e);
	if (rc == CAIRN_ENOTFOUND && !l->lost) {
		l->lost = 1;
		cairn_err_set(&l->last_err, CAIRN_ELOCKED,
			      "lock %.16s was removed by another process (it looked stale to it)",
			      l->name);
	} else if (rc) {
		*err = e;
		l->last_err = e;
		return rc;
	}
	struct lock_info next = l->info;
	next.seq++;
	next.refreshed_ns = now_ns();
	rc = put_lock(l, &next, name, err);
	if (rc) {
		l->last_err = *err;
		return rc;
	}
	/* The new object is durable: only now may the old one go.  A delete
	 * that fails is retried later; one that finds nothing is fine (an
	 * unlock --stale took it once it was superseded). */
	rc = del_lock(l->st, l->name, &e);
	if (rc && rc != CAIRN_ENOTFOUND)
		add_pending(l, l->name);
	retry_pending(l);
	l->info = next;
	memcpy(l->name, name, sizeof(l->name));
	if (l->lost)
		return cairn_err_set(err, CAIRN_ELOCKED, "%s", l->last_err.msg);
	return 0;
}

int repo_lock_refresh(struct repo_lock *l, struct cairn_err *err)
{
	pthread_mutex_lock(&l->mu);
	int rc = refresh_locked(l, err);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static void deadline_after(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	uint64_t t = (uint64_t)ts->tv_nsec + ns % 1000000000;
	ts->tv_sec += (time_t)(ns / 1000000000 + t / 1000000000);
	ts->tv_nsec = (long)(t % 1000000000);
}

static void *refresher(void *arg)
{
	struct repo_lock *l = arg;
	uint64_t wait = l->refresh_ns;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec ts;
		deadline_after(&ts, wait);
		while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
			;
		if (l->stop)
			break;
		struct cairn_err e;
		/* After a failure, try again sooner: the lease must not lapse
		 * because of one storage hiccup. */
		wait = refresh_locked(l, &e) && !l->lost ? l->refresh_ns / 6 + 1 : l->refresh_ns;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static void lock_free(struct repo_lock *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	buf_free(&l->plain);
	buf_free(&l->sealed);
	sealer_free(l->sealer);
	free(l);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A fresh lease object: new holder id, times now, seq 0. */
static void lease_start(struct repo_lock *l)
{
	l->info.created_ns = l->info.refreshed_ns = now_ns();
	l->info.seq = 0;
	randombytes_buf(l->info.id, sizeof(l->info.id));
}

/* One attempt: look, write, look again (lock.h says why this closes the
 * race); an exclusive taker with drain_ns looks again until the shared
 * locks it found are gone.  On failure nothing of ours is left. */
static int lock_attempt(struct repo_lock *l, const struct repo_lock_opts *o,
			const uint8_t *companion, int *wait, struct cairn_err *err)
{
	int excl = l->info.kind == REPO_LOCK_EXCLUSIVE;
	int rc = check_conflicts(l, companion, "cannot take a lock", wait, err);
	if (rc == CAIRN_ELOCKED && excl && o->drain_ns && *wait)
		rc = 0; /* put ours first, so that new writers wait for us */
	rc = rc ? rc : put_lock(l, &l->info, l->name, err);
	if (rc)
		return rc;
	uint64_t until = mono_ns() + (excl ? o->drain_ns : 0);
	const char *when = excl && o->drain_ns ? "writers did not finish in time"
					       : "another process took a lock at the same time";
	for (;;) {
		rc = check_conflicts(l, companion, when, wait, err);
		if (rc != CAIRN_ELOCKED || !excl || !*wait || mono_ns() >= until)
			break;
		sleep_ns(20000000 + randombytes_uniform(20000000));
	}
	if (rc) {
		struct cairn_err e;
		del_lock(l->st, l->name, &e);
	}
	return rc;
}

int repo_lock_with(struct repo *r, int kind, const struct repo_lock_opts *o,
		   struct repo_lock **out, struct cairn_err *err)
{
	struct repo_lock_opts def;
	memset(&def, 0, sizeof(def));
	*out = NULL;
	if (!o)
		o = &def;
	if (kind != REPO_LOCK_SHARED && kind != REPO_LOCK_EXCLUSIVE)
		return cairn_err_set(err, CAIRN_EUSAGE, "unknown lock kind %d", kind);
	uint8_t companion[16];
	if (o->companion)
		repo_lock_current(o->companion, NULL, companion);
	struct repo_lock *l = calloc(1, sizeof(*l));
	if (!l)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	l->st = repo_get_storage(r);
	l->keys = repo_get_keys(r);
	l->sealer = sealer_new(1);
	if (!l->sealer) {
		lock_free(l);
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	struct lock_info *li = &l->info;
	li->kind = (uint8_t)kind;
	li->role = kind == REPO_LOCK_SHARED ? o->role : 0;
	if (o->host)
		snprintf(li->host, sizeof(li->host), "%s", o->host);
	else
		this_host(li->host);
	li->pid = (uint32_t)getpid();
	li->stale_after_ns = o->stale_after_ns ? o->stale_after_ns : LOCK_DEFAULT_STALE_AFTER_NS;
	if (li->stale_after_ns > (uint64_t)INT64_MAX)
		li->stale_after_ns = (uint64_t)INT64_MAX;
	snprintf(li->version, sizeof(li->version), "cairn %s", CAIRN_VERSION_STRING);
	this_process(li->process);
	l->refresh_ns = o->refresh_ns ? o->refresh_ns : li->stale_after_ns / 3;
	if (!l->refresh_ns)
		l->refresh_ns = 1;

	uint64_t until = mono_ns() + o->wait_ns, backoff = 20000000;
	int rc, noted = 0;
	for (;;) {
		int wait = 0;
		lease_start(l);
		rc = lock_attempt(l, o, o->companion ? companion : NULL, &wait, err);
		if (rc != CAIRN_ELOCKED || !wait || !o->wait_ns || mono_ns() >= until)
			break;
		if (!noted && o->note) {
			char msg[sizeof(err->msg) + 40];
			snprintf(msg, sizeof(msg), "waiting: %s", err->msg);
			o->note(o->note_arg, msg);
		}
		noted = 1;
		/* An exclusive taker steps back longer, to let writers through. */
		uint64_t pause = kind == REPO_LOCK_EXCLUSIVE ? 500000000 : backoff;
		sleep_ns(pause / 2 + randombytes_uniform((uint32_t)(pause / 1000 + 1)) * 1000ull);
		backoff = backoff * 2 > 500000000 ? 500000000 : backoff * 2;
	}
	if (!rc && pthread_create(&l->thread, NULL, refresher, l) != 0) {
		struct cairn_err e;
		del_lock(l->st, l->name, &e);
		rc = cairn_err_set(err, CAIRN_EIO, "cannot start the lock refresh thread");
	}
	if (rc) {
		lock_free(l);
		return rc;
	}
	l->have_thread = 1;
	*out = l;
	return 0;
}

int repo_lock(struct repo *r, int kind, struct repo_lock **out, struct cairn_err *err)
{
	return repo_lock_with(r, kind, NULL, out, err);
}

int repo_lock_check(struct repo_lock *l, struct cairn_err *err)
{
	int rc = 0;
	pthread_mutex_lock(&l->mu);
	int64_t since = elapsed(l->info.refreshed_ns, now_ns());
	if (l->lost) {
		rc = cairn_err_set(err, CAIRN_ELOCKED, "lost the repository lock: %s", l->last_err.msg);
	} else if ((uint64_t)since > l->info.stale_after_ns / 3 * 2) {
		/* Two refreshes missed: others' clocks may already call it
		 * stale (the margin left is for their skew). */
		char age[32];
		fmt_age(age, sizeof(age), since);
		rc = cairn_err_set(err, CAIRN_ELOCKED,
				   "lost the repository lock: it could not be refreshed for %s (%s)", age,
				   l->last_err.msg[0] ? l->last_err.msg : "no error recorded");
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void repo_lock_current(struct repo_lock *l, char name[65], uint8_t id[16])
{
	pthread_mutex_lock(&l->mu);
	if (name)
		memcpy(name, l->name, 65);
	if (id)
		memcpy(id, l->info.id, 16);
	pthread_mutex_unlock(&l->mu);
}

void repo_unlock(struct repo_lock *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (l->have_thread)
		pthread_join(l->thread, NULL);
	struct cairn_err e;
	/* A failed delete leaves an object that expires by itself. */
	del_lock(l->st, l->name, &e);
	retry_pending(l);
	lock_free(l);
}
