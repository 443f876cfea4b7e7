/*
 * test_lock.c — writer leases (repo/lock.c): the payload codec, shared and
 * exclusive locks, staleness by time, by a dead process and by a newer
 * object of the same holder, damaged objects, refresh (by hand and by the
 * background thread), a lease lost to someone else's unlock, and the
 * unlock functions.  A local repository in a mkdtemp folder.
 */
#include "repo/lock.h"
#include "repo/repo.h"
#include "tests/unit/t.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sample_info(struct lock_info *li)
{
	memset(li, 0, sizeof(*li));
	li->kind = REPO_LOCK_SHARED;
	snprintf(li->host, sizeof(li->host), "db1");
	li->pid = 4242;
	li->created_ns = 1700000000000000000;
	li->refreshed_ns = 1700000060000000000;
	li->stale_after_ns = LOCK_DEFAULT_STALE_AFTER_NS;
	for (int i = 0; i < 16; i++)
		li->id[i] = (uint8_t)(0xa0 + i);
	li->seq = 1;
	snprintf(li->version, sizeof(li->version), "cairn 0.1.0");
	snprintf(li->process, sizeof(li->process), "b00t/pid:[4026531836]");
}

static void test_codec(void)
{
	struct lock_info li, back;
	struct buf b = BUF_INIT;
	char hex[400];
	sample_info(&li);
	CHECK_RC(lock_encode(&li, &b), 0);
	/* The layout of FORMAT.md section 14, byte for byte. */
	static const char want[] =
		"01" "0300" "646231" "92100000" "00002a36fe9c9717" "0058712e0c9d9717"
		"00505c18a3010000" "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" "0100000000000000"
		"0b00" "636169726e20302e312e30" "1500" "623030742f7069643a5b343032363533313833365d";
	CHECK(b.len * 2 + 1 <= sizeof(hex));
	hex_encode(hex, b.data, b.len);
	CHECK(strcmp(hex, want) == 0);
	CHECK_RC(lock_decode(b.data, b.len, &back, NULL), 0);
	CHECK(memcmp(&li, &back, sizeof(li)) == 0);
	/* Fields of a later cairn after the known ones are ignored. */
	CHECK_RC(buf_append(&b, "later", 5), 0);
	CHECK_RC(lock_decode(b.data, b.len, &back, NULL), 0);
	CHECK(back.seq == 1 && strcmp(back.process, li.process) == 0);
	b.len -= 5;
	/* Every truncation is refused, none crashes. */
	int refused = 0;
	for (size_t n = 0; n < b.len; n++)
		refused += lock_decode(b.data, n, &back, NULL) == CAIRN_ECORRUPT;
	CHECK(refused == (int)b.len);
	/* An unknown kind, a zero stale time, a NUL in a string. */
	b.data[0] = 3;
	CHECK_RC(lock_decode(b.data, b.len, &back, NULL), CAIRN_ECORRUPT);
	b.data[0] = 1;
	li.stale_after_ns = 0;
	CHECK_RC(lock_encode(&li, &b), 0);
	CHECK_RC(lock_decode(b.data, b.len, &back, NULL), CAIRN_ECORRUPT);
	sample_info(&li);
	CHECK_RC(lock_encode(&li, &b), 0);
	b.data[3] = 0; /* "db1" -> "d\0" "1" */
	CHECK_RC(lock_decode(b.data, b.len, &back, NULL), CAIRN_ECORRUPT);
	buf_free(&b);
}

static void test_staleness_rules(void)
{
	struct lock_info li;
	sample_info(&li);
	int64_t t = li.refreshed_ns;
	uint64_t sa = li.stale_after_ns;
	CHECK(lock_staleness(&li, t, "other", "x") == LOCK_LIVE);
	CHECK(lock_staleness(&li, t + (int64_t)sa, "other", "x") == LOCK_LIVE);
	CHECK(lock_staleness(&li, t + (int64_t)sa + 1, "other", "x") == LOCK_EXPIRED);
	/* A holder whose clock is ahead: just refreshed, not stale. */
	CHECK(lock_staleness(&li, t - 3600ll * 1000000000, "other", "x") == LOCK_LIVE);
	/* The pid is judged only on the same host, boot and PID namespace. */
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	CHECK(child > 0);
	waitpid(child, NULL, 0);
	li.pid = (uint32_t)child;
	CHECK(lock_staleness(&li, t, "db1", li.process) == LOCK_DEAD);
	CHECK(lock_staleness(&li, t, "db2", li.process) == LOCK_LIVE);
	CHECK(lock_staleness(&li, t, "db1", "other-boot/pid:[1]") == LOCK_LIVE);
	CHECK(lock_staleness(&li, t, "db1", "") == LOCK_LIVE);
	li.pid = (uint32_t)getpid();
	CHECK(lock_staleness(&li, t, "db1", li.process) == LOCK_LIVE);
}

struct fixture {
	char dir[64];
	struct repo *r;
};

static int fixture_open(struct fixture *f)
{
	char url[300], cache[300], id[65];
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-lock-XXXXXX");
	f->r = NULL;
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(url, sizeof(url), "%s/repo", f->dir);
	snprintf(cache, sizeof(cache), "%s/cache", f->dir);
	struct repo_init_opts io;
	memset(&io, 0, sizeof(io));
	io.url = url;
	io.pass = "pw";
	io.pass_len = 2;
	io.kdf.opslimit = crypto_pwhash_OPSLIMIT_MIN;
	io.kdf.memlimit = crypto_pwhash_MEMLIMIT_MIN;
	if (repo_init(&io, id, NULL))
		return -1;
	struct repo_open_opts oo;
	memset(&oo, 0, sizeof(oo));
	oo.url = url;
	oo.pass = "pw";
	oo.pass_len = 2;
	oo.cache_base = cache;
	return repo_open(&f->r, &oo, NULL);
}

static void fixture_close(struct fixture *f)
{
	char cmd[200];
	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	CHECK(system(cmd) == 0);
}

#define MAX_SEEN 16
struct seen {
	size_t n;
	struct lock_entry e[MAX_SEEN];
};

static int collect(void *arg, const struct lock_entry *e)
{
	struct seen *s = arg;
	if (s->n < MAX_SEEN)
		s->e[s->n] = *e;
	s->n++;
	return 0;
}

static size_t list(struct repo *r, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	CHECK_RC(repo_locks_list(r, collect, s, NULL), 0);
	return s->n;
}

/* The entry of holder `id` (NULL if none). */
static const struct lock_entry *find(const struct seen *s, const uint8_t id[16])
{
	for (size_t i = 0; i < s->n && i < MAX_SEEN; i++)
		if (s->e[i].state != LOCK_DAMAGED && !memcmp(s->e[i].info.id, id, 16))
			return &s->e[i];
	return NULL;
}

/* Writes a lock object directly, as another holder would have. */
static int put_raw(struct repo *r, const struct lock_info *li, char name[65])
{
	struct sealer *s = sealer_new(1);
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	char key[80];
	int rc = lock_encode(li, &plain);
	rc = rc ? rc : obj_seal(s, repo_get_keys(r), LOCK_MAGIC, plain.data, plain.len, &sealed, name, NULL);
	snprintf(key, sizeof(key), "locks/%s", name);
	rc = rc ? rc : storage_put(repo_get_storage(r), key, sealed.data, sealed.len, NULL);
	buf_free(&plain);
	buf_free(&sealed);
	sealer_free(s);
	return rc;
}

static int exists(struct repo *r, const char *name)
{
	char key[80];
	uint64_t size;
	snprintf(key, sizeof(key), "locks/%s", name);
	return storage_stat(repo_get_storage(r), key, &size, NULL) == 0;
}

static void test_shared_and_exclusive(void)
{
	struct fixture f;
	struct seen s;
	struct cairn_err err;
	CHECK_RC(fixture_open(&f), 0);
	if (!f.r)
		return;
	CHECK(list(f.r, &s) == 0);

	/* Two shared locks coexist; the list decodes both. */
	struct repo_lock *a = NULL, *b = NULL, *x = NULL;
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &a, NULL), 0);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &b, NULL), 0);
	CHECK(list(f.r, &s) == 2);
	uint8_t ida[16];
	char host[256];
	gethostname(host, sizeof(host));
	repo_lock_current(a, NULL, ida);
	const struct lock_entry *e = find(&s, ida);
	CHECK(e && e->state == LOCK_LIVE && e->info.kind == REPO_LOCK_SHARED &&
	      e->info.pid == (uint32_t)getpid() && !strcmp(e->info.host, host) && e->info.seq == 0 &&
	      e->info.stale_after_ns == LOCK_DEFAULT_STALE_AFTER_NS && e->age_ns < 60ll * 1000000000 &&
	      !strncmp(e->info.version, "cairn ", 6));
	CHECK_RC(repo_lock_check(a, NULL), 0);

	/* Exclusive is refused while a shared lock lives, naming the holder. */
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &x, &err), CAIRN_ELOCKED);
	CHECK(x == NULL);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %u", (unsigned)getpid());
	CHECK(strstr(err.msg, host) != NULL && strstr(err.msg, pid) != NULL);
	CHECK(list(f.r, &s) == 2); /* it left nothing behind */
	repo_unlock(a);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &x, NULL), CAIRN_ELOCKED);
	repo_unlock(b);
	CHECK(list(f.r, &s) == 0);

	/* Exclusive alone: then neither shared nor exclusive. */
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &x, NULL), 0);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &a, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "exclusive") != NULL);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &a, NULL), CAIRN_ELOCKED);
	CHECK(list(f.r, &s) == 1 && s.e[0].info.kind == REPO_LOCK_EXCLUSIVE);
	repo_unlock(x);
	CHECK(list(f.r, &s) == 0);
	CHECK_RC(repo_lock(f.r, 7, &a, NULL), CAIRN_EUSAGE);
	repo_unlock(NULL);
	fixture_close(&f);
}

static void test_stale(void)
{
	struct fixture f;
	struct seen s;
	char old_name[65], dead_name[65], ns_name[65], n1[65], n2[65];
	CHECK_RC(fixture_open(&f), 0);
	if (!f.r)
		return;
	/* Our own lock tells what this host and process look like. */
	struct repo_lock *mine = NULL;
	uint8_t myid[16];
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &mine, NULL), 0);
	repo_lock_current(mine, NULL, myid);
	CHECK(list(f.r, &s) == 1);
	struct lock_info me = s.e[0].info;
	CHECK(me.process[0] != '\0'); /* Linux: boot id and PID namespace */
	repo_unlock(mine);

	/* Stale by time: refreshed two hours ago, on another host. */
	struct lock_info old = me;
	old.kind = REPO_LOCK_EXCLUSIVE;
	snprintf(old.host, sizeof(old.host), "elsewhere");
	old.refreshed_ns = old.created_ns = now_ns() - 7200ll * 1000000000;
	randombytes_buf(old.id, 16);
	CHECK_RC(put_raw(f.r, &old, old_name), 0);
	/* Stale by a dead process on this host. */
	struct lock_info dead = me;
	dead.kind = REPO_LOCK_EXCLUSIVE;
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	dead.pid = (uint32_t)child;
	randombytes_buf(dead.id, 16);
	CHECK_RC(put_raw(f.r, &dead, dead_name), 0);
	/* The same dead pid in another PID namespace is not judged: live. */
	struct lock_info other_ns = dead;
	snprintf(other_ns.process, sizeof(other_ns.process), "another-boot/pid:[1]");
	other_ns.kind = REPO_LOCK_SHARED;
	randombytes_buf(other_ns.id, 16);
	CHECK_RC(put_raw(f.r, &other_ns, ns_name), 0);
	/* Superseded: two objects of one holder, seq 0 and 1, both fresh. */
	struct lock_info sup = me;
	sup.kind = REPO_LOCK_SHARED;
	snprintf(sup.host, sizeof(sup.host), "elsewhere");
	randombytes_buf(sup.id, 16);
	sup.seq = 0;
	CHECK_RC(put_raw(f.r, &sup, n1), 0);
	sup.seq = 1;
	sup.refreshed_ns += 1000;
	CHECK_RC(put_raw(f.r, &sup, n2), 0);
	/* Damaged: garbage under a name of the right form. */
	uint8_t junk[40], h[32];
	char junk_name[65], key[80];
	randombytes_buf(junk, sizeof(junk));
	plain_hash(h, junk, sizeof(junk));
	hex_encode(junk_name, h, 32);
	snprintf(key, sizeof(key), "locks/%s", junk_name);
	CHECK_RC(storage_put(repo_get_storage(f.r), key, junk, sizeof(junk), NULL), 0);
	/* Not ours: ignored by readers. */
	CHECK_RC(storage_put(repo_get_storage(f.r), "locks/readme", "x", 1, NULL), 0);

	CHECK(list(f.r, &s) == 6);
	const struct lock_entry *e = find(&s, old.id);
	CHECK(e && e->state == LOCK_EXPIRED && e->age_ns >= 7200ll * 1000000000 &&
	      !strcmp(e->info.host, "elsewhere"));
	e = find(&s, dead.id);
	CHECK(e && e->state == LOCK_DEAD && e->info.pid == (uint32_t)child);
	e = find(&s, other_ns.id);
	CHECK(e && e->state == LOCK_LIVE);
	size_t live_sup = 0, superseded = 0, damaged = 0;
	for (size_t i = 0; i < s.n; i++) {
		if (s.e[i].state == LOCK_DAMAGED) {
			damaged++;
			CHECK(!strcmp(s.e[i].name, junk_name) && s.e[i].error.code == CAIRN_ECORRUPT);
		} else if (!memcmp(s.e[i].info.id, sup.id, 16)) {
			live_sup += s.e[i].state == LOCK_LIVE && s.e[i].info.seq == 1;
			superseded += s.e[i].state == LOCK_SUPERSEDED && s.e[i].info.seq == 0;
		}
	}
	CHECK(live_sup == 1 && superseded == 1 && damaged == 1);

	/* Stale and damaged locks do not block; the live shared ones block
	 * an exclusive lock, not a shared one. */
	struct repo_lock *x = NULL;
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &x, NULL), 0);
	repo_unlock(x);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &x, NULL), CAIRN_ELOCKED);

	/* unlock_stale: the expired, the dead and the superseded go; the
	 * damaged one is reported and stays; live ones stay. */
	size_t removed = 0;
	CHECK_RC(repo_unlock_stale(f.r, &removed, NULL, NULL, NULL), 0);
	CHECK(removed == 3);
	CHECK(!exists(f.r, old_name) && !exists(f.r, dead_name) && !exists(f.r, n1));
	CHECK(exists(f.r, ns_name) && exists(f.r, n2) && exists(f.r, junk_name));
	CHECK(list(f.r, &s) == 3);

	/* unlock_one: a damaged object by name; a live lock only with force. */
	struct lock_entry which;
	CHECK_RC(repo_unlock_one(f.r, "abc", 0, NULL, NULL), CAIRN_EUSAGE);
	CHECK_RC(repo_unlock_one(f.r, "0000000000000000", 0, NULL, NULL), CAIRN_ENOTFOUND);
	char pfx[17];
	memcpy(pfx, junk_name, 16);
	pfx[16] = '\0';
	CHECK_RC(repo_unlock_one(f.r, pfx, 0, &which, NULL), 0);
	CHECK(which.state == LOCK_DAMAGED && !exists(f.r, junk_name));
	char idhex[33];
	hex_encode(idhex, sup.id, 16);
	idhex[12] = '\0';
	CHECK_RC(repo_unlock_one(f.r, idhex, 0, NULL, NULL), CAIRN_ELOCKED);
	CHECK(exists(f.r, n2));
	CHECK_RC(repo_unlock_one(f.r, idhex, 1, &which, NULL), 0);
	CHECK(!exists(f.r, n2) && which.state == LOCK_LIVE && which.info.seq == 1);
	hex_encode(idhex, other_ns.id, 16);
	CHECK_RC(repo_unlock_one(f.r, idhex, 1, NULL, NULL), 0);
	CHECK(list(f.r, &s) == 0);
	CHECK_RC(repo_lock(f.r, REPO_LOCK_EXCLUSIVE, &x, NULL), 0);
	repo_unlock(x);
	fixture_close(&f);
}

static void test_refresh(void)
{
	struct fixture f;
	struct seen s;
	char n0[65], n1[65], n2[65];
	uint8_t id[16];
	struct cairn_err err;
	CHECK_RC(fixture_open(&f), 0);
	if (!f.r)
		return;
	/* By hand: a new object replaces the old one, same holder, seq + 1. */
	struct repo_lock *l = NULL;
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &l, NULL), 0);
	repo_lock_current(l, n0, id);
	CHECK(exists(f.r, n0));
	CHECK_RC(repo_lock_refresh(l, NULL), 0);
	repo_lock_current(l, n1, NULL);
	CHECK(strcmp(n0, n1) != 0 && !exists(f.r, n0) && exists(f.r, n1));
	CHECK(list(f.r, &s) == 1 && !memcmp(s.e[0].info.id, id, 16) && s.e[0].info.seq == 1 &&
	      s.e[0].info.refreshed_ns >= s.e[0].info.created_ns && s.e[0].state == LOCK_LIVE);

	/* Someone removes our object (it looked stale to them): the next
	 * refresh notices, and the lease is lost for good. */
	char key[80];
	snprintf(key, sizeof(key), "locks/%s", n1);
	CHECK_RC(storage_del(repo_get_storage(f.r), key, NULL), 0);
	CHECK_RC(repo_lock_check(l, NULL), 0); /* not known yet */
	CHECK_RC(repo_lock_refresh(l, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "removed") != NULL);
	CHECK_RC(repo_lock_check(l, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "lost") != NULL);
	repo_lock_current(l, n2, NULL);
	CHECK(exists(f.r, n2)); /* still says that we write */
	repo_unlock(l);
	CHECK(list(f.r, &s) == 0);

	/* The background thread refreshes on its own. */
	struct repo_lock_opts o = {.stale_after_ns = LOCK_DEFAULT_STALE_AFTER_NS,
				   .refresh_ns = 40 * 1000000, .host = "thread-host"};
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_EXCLUSIVE, &o, &l, NULL), 0);
	repo_lock_current(l, n0, NULL);
	usleep(400 * 1000);
	repo_lock_current(l, n1, NULL);
	CHECK(strcmp(n0, n1) != 0 && !exists(f.r, n0) && exists(f.r, n1));
	CHECK(list(f.r, &s) == 1 && s.e[0].info.seq >= 2 && !strcmp(s.e[0].info.host, "thread-host"));
	CHECK_RC(repo_lock_check(l, NULL), 0);
	repo_unlock(l);
	CHECK(list(f.r, &s) == 0);

	/* A lease not refreshed for two thirds of its stale time is lost. */
	struct repo_lock_opts o2 = {.stale_after_ns = 600 * 1000000ull,
				    .refresh_ns = 3600ull * 1000000000};
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &o2, &l, NULL), 0);
	CHECK_RC(repo_lock_check(l, NULL), 0);
	usleep(500 * 1000);
	CHECK_RC(repo_lock_check(l, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "could not be refreshed") != NULL);
	repo_unlock(l);
	fixture_close(&f);
}


/* Roles (prune and forget leases), a writer waiting for an exclusive lock
 * to end, an exclusive taker draining running writers, and a companion
 * lock that never conflicts. */
static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A child process with a repo handle of its own takes a lock of `kind`
 * (waiting up to wait_ms), says so through a pipe, holds it hold_ms and
 * releases it.  Exit status: 0, 1 (no lock), 2 (waited outside
 * [min_wait_ms, wait_ms)).  The parent returns once the lock is held (or
 * at once when `ready` is 0). */
static pid_t child_lock(struct fixture *f, int kind, uint64_t wait_ms, uint64_t min_wait_ms,
			unsigned hold_ms, int ready)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	pid_t child = fork();
	if (child == 0) {
		struct repo_open_opts oo;
		struct repo *r2 = NULL;
		struct repo_lock *l = NULL;
		char url[300], cache[300];
		close(fds[0]);
		memset(&oo, 0, sizeof(oo));
		snprintf(url, sizeof(url), "%s/repo", f->dir);
		snprintf(cache, sizeof(cache), "%s/cache-%d", f->dir, (int)getpid());
		oo.url = url;
		oo.pass = "pw";
		oo.pass_len = 2;
		oo.cache_base = cache;
		struct repo_lock_opts o = {.wait_ns = wait_ms * 1000000};
		int rc = repo_open(&r2, &oo, NULL);
		uint64_t a = mono_ms();
		rc = rc ? rc : repo_lock_with(r2, kind, &o, &l, NULL);
		uint64_t waited = mono_ms() - a;
		if (ready && write(fds[1], "x", 1) != 1)
			rc = -1;
		usleep(hold_ms * 1000);
		repo_unlock(l);
		repo_close(r2);
		_exit(rc ? 1 : waited >= min_wait_ms && (!wait_ms || waited < wait_ms) ? 0 : 2);
	}
	close(fds[1]);
	char c;
	if (ready)
		CHECK(read(fds[0], &c, 1) == 1);
	close(fds[0]);
	return child;
}

static int child_status(pid_t child)
{
	int st = -1;
	waitpid(child, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static void test_roles_and_waiting(void)
{
	struct fixture f;
	struct seen s;
	struct cairn_err err;
	CHECK_RC(fixture_open(&f), 0);
	if (!f.r)
		return;
	struct repo_lock *pr = NULL, *fg = NULL, *w = NULL, *x = NULL, *p2 = NULL;
	struct repo_lock_opts po = {.role = REPO_ROLE_PRUNE};
	struct repo_lock_opts fo = {.role = REPO_ROLE_FORGET};

	/* The role travels in the object. */
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &po, &pr, NULL), 0);
	CHECK(list(f.r, &s) == 1 && s.e[0].info.role == REPO_ROLE_PRUNE &&
	      s.e[0].info.kind == REPO_LOCK_SHARED);
	/* A writer goes on beside a prune; a second prune and a forget do not. */
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &w, NULL), 0);
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &po, &p2, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "a prune") != NULL);
	/* ... not even when told to wait: a prune may run for hours. */
	fo.wait_ns = 5ull * 1000000000;
	uint64_t t0 = mono_ms();
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &fo, &fg, &err), CAIRN_ELOCKED);
	CHECK(mono_ms() - t0 < 2000);
	fo.wait_ns = 0;
	CHECK(list(f.r, &s) == 2);
	repo_unlock(pr);
	pr = NULL;
	/* With a forget running, a prune is refused. */
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &fo, &fg, NULL), 0);
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &po, &pr, &err), CAIRN_ELOCKED);
	CHECK(strstr(err.msg, "a forget") != NULL);
	repo_unlock(fg);
	repo_unlock(w);
	w = NULL;

	/* The exclusive lock of a prune beside its own shared lease (its
	 * companion), draining a running writer: refused while the writer
	 * runs past the drain time, leaving nothing behind ... */
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_SHARED, &po, &pr, NULL), 0);
	pid_t child = child_lock(&f, REPO_LOCK_SHARED, 0, 0, 1500, 1);
	struct repo_lock_opts xo = {.drain_ns = 300 * 1000000ull, .companion = pr};
	t0 = mono_ms();
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_EXCLUSIVE, &xo, &x, &err), CAIRN_ELOCKED);
	CHECK(mono_ms() - t0 >= 250);
	CHECK(strstr(err.msg, "writers did not finish") != NULL);
	CHECK(list(f.r, &s) == 2);
	/* ... and taken once the writer ends within it. */
	xo.drain_ns = 5ull * 1000000000;
	t0 = mono_ms();
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_EXCLUSIVE, &xo, &x, NULL), 0);
	CHECK(mono_ms() - t0 < 4000);
	CHECK(child_status(child) == 0);
	CHECK(list(f.r, &s) == 2); /* the lease and the window */
	/* Without the companion the prune's own lease conflicts. */
	struct repo_lock_opts xo2 = {0};
	CHECK_RC(repo_lock_with(f.r, REPO_LOCK_EXCLUSIVE, &xo2, &p2, NULL), CAIRN_ELOCKED);
	/* A writer refused at once without waiting ... */
	t0 = mono_ms();
	CHECK_RC(repo_lock(f.r, REPO_LOCK_SHARED, &w, &err), CAIRN_ELOCKED);
	CHECK(mono_ms() - t0 < 1000 && strstr(err.msg, "a prune or repair") != NULL);
	/* ... and one that waits gets its lease once the window ends (in the
	 * child: it waited at least 300 ms, less than its 5 s). */
	child = child_lock(&f, REPO_LOCK_SHARED, 5000, 300, 0, 0);
	usleep(500 * 1000);
	repo_unlock(x);
	CHECK(child_status(child) == 0);
	repo_unlock(pr);
	CHECK(list(f.r, &s) == 0);
	fixture_close(&f);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_codec();
	test_staleness_rules();
	test_shared_and_exclusive();
	test_stale();
	test_refresh();
	test_roles_and_waiting();
	return t_done();
}
