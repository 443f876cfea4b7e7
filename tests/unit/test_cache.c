/*
 * test_cache.c — the LMDB index cache: lookups, merges, persistence, and
 * the wipe-and-rebuild of a cache that is damaged or belongs to another
 * repository.  Ends with a timed bulk run (printed, never asserted).
 */
#include "repo/cache.h"
#include "repo/buf.h"
#include "tests/unit/t.h"

#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif

static uint64_t rng_state = 0x0123456789abcdefULL;

static uint64_t rng(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Id number i, deterministic and spread over the key space. */
static void make_id(uint8_t id[CAIRN_ID_LEN], uint64_t i, uint8_t salt)
{
	uint64_t s = i * 0x9e3779b97f4a7c15ULL + salt;
	for (int w = 0; w < 4; w++) {
		s ^= s >> 29;
		s *= 0xbf58476d1ce4e5b9ULL;
		s ^= s >> 32;
		le_put64(id + 8 * w, s);
	}
}

static void make_entry(struct index_entry *e, uint64_t i, uint8_t salt)
{
	make_id(e->id, i, salt);
	memset(e->loc.pack, (int)(i & 0xff), CAIRN_ID_LEN);
	e->loc.pack[0] = salt;
	e->loc.offset = i * 1000 + ((uint64_t)1 << 40); /* needs 64 bits */
	e->loc.sealed_len = (uint32_t)(i * 7 + 100);
	e->loc.raw_len = (uint32_t)(i * 5 + 0x80000000u);
	e->loc.type = (i & 1) ? BLOB_TREE : BLOB_DATA;
}

static int loc_eq(const struct blob_loc *a, const struct blob_loc *b)
{
	return memcmp(a->pack, b->pack, CAIRN_ID_LEN) == 0 &&
	       a->offset == b->offset && a->sealed_len == b->sealed_len &&
	       a->raw_len == b->raw_len && a->type == b->type;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct names {
	int n;
	int saw_a, saw_b;
};

static int count_index(void *arg, const char *name)
{
	struct names *s = arg;
	s->n++;
	if (strcmp(name, "index/aaaa") == 0)
		s->saw_a++;
	if (strcmp(name, "index/bbbb") == 0)
		s->saw_b++;
	return 0;
}

struct blobs {
	uint64_t n;
	uint64_t bad;
	struct cache *c; /* when set, the callback tries a re-entrant call */
	int reentrant_rc;
};

static int count_blob(void *arg, const struct index_entry *e)
{
	struct blobs *s = arg;
	struct blob_loc loc;
	s->n++;
	if (e->loc.type != BLOB_DATA && e->loc.type != BLOB_TREE)
		s->bad++;
	if (s->c)
		s->reentrant_rc = cache_lookup(s->c, e->id, &loc, NULL);
	return 0;
}

static int stop_at_two(void *arg, const struct index_entry *e)
{
	int *n = arg;
	(void)e;
	return ++*n == 2 ? 42 : 0;
}

/* Writes `len` random bytes over `path` at offset 0. */
static int scribble(const char *path, size_t len)
{
	uint8_t b[8192];
	int fd = open(path, O_WRONLY);
	if (fd < 0 || len > sizeof(b))
		return -1;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = rng();
		memcpy(b + i, &r, len - i < 8 ? len - i : 8);
	}
	ssize_t w = write(fd, b, len);
	return close(fd) == 0 && w == (ssize_t)len ? 0 : -1;
}

/* Opens the raw LMDB env of a cache (closed) and puts key → val in `db`. */
static int raw_put(const char *dir, const char *db, const void *key,
		   size_t klen, const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = mdb_env_create(&env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(env, 4);
	mdb_env_set_mapsize(env, (size_t)1 << 28); /* not the 64 GiB in meta */
	rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, db, 0, &dbi);
		if (rc == 0)
			rc = mdb_put(txn, dbi, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return rc;
}

#define open_ok(dir, repo, want) open_ok_at(dir, repo, want, __LINE__)

static struct cache *open_ok_at(const char *dir, const uint8_t *repo,
				int want_rebuilt, int line)
{
	struct cairn_err err = {0, ""};
	struct cache *c = NULL;
	int rebuilt = -1;
	int rc = cache_open(&c, dir, repo, &rebuilt, &err);
	CHECK_RC(rc, 0);
	if (rc)
		fprintf(stderr, "  line %d: cache_open: %s\n", line, err.msg);
	CHECK(rebuilt == want_rebuilt);
	if (rebuilt != want_rebuilt)
		fprintf(stderr, "  line %d: rebuilt %d, want %d\n", line,
			rebuilt, want_rebuilt);
	return c;
}

/* After a rebuild: empty, and usable. */
static void check_fresh_and_usable(struct cache *c)
{
	struct cairn_err err;
	struct index_entry e;
	struct blob_loc got;
	uint64_t n = 99;
	if (!c)
		return;
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 0);
	CHECK_RC(cache_has_index(c, "index/aaaa", &err), 0);
	make_entry(&e, 7, 9);
	CHECK_RC(cache_add_index(c, "index/after", &e, 1, &err), 0);
	CHECK_RC(cache_lookup(c, e.id, &got, &err), 0);
	CHECK(loc_eq(&got, &e.loc));
}

static void test_basic(const char *dir, const uint8_t *repo)
{
	struct cairn_err err;
	struct index_entry e[4], dup[3];
	struct blob_loc got;
	struct names names = {0, 0, 0};
	struct blobs blobs = {0, 0, NULL, 0};
	uint8_t miss[CAIRN_ID_LEN];
	uint64_t n = 0;
	struct stat st;
	struct cache *c2 = NULL;

	/* a brand-new folder (two levels deep) is created, not "rebuilt" */
	struct cache *c = open_ok(dir, repo, 0);
	if (!c)
		return;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 0);

	/* LMDB: one environment per process */
	CHECK_RC(cache_open(&c2, dir, repo, NULL, &err), CAIRN_EUSAGE);
	CHECK(c2 == NULL);

	for (int i = 0; i < 4; i++)
		make_entry(&e[i], (uint64_t)i, 1);
	CHECK_RC(cache_add_index(c, "index/aaaa", e, 4, &err), 0);
	for (int i = 0; i < 4; i++) {
		memset(&got, 0, sizeof(got));
		CHECK_RC(cache_lookup(c, e[i].id, &got, &err), 0);
		CHECK(loc_eq(&got, &e[i].loc));
	}
	make_id(miss, 12345, 1);
	CHECK_RC(cache_lookup(c, miss, &got, &err), CAIRN_ENOTFOUND);
	CHECK_RC(cache_has_index(c, "index/aaaa", &err), 1);
	CHECK_RC(cache_has_index(c, "index/bbbb", &err), 0);
	CHECK_RC(cache_has_index(c, "", &err), 0);

	/* a known blob gains a second location, also within one batch; a
	 * lookup gives one of them */
	dup[0] = e[1];
	dup[0].loc.offset = 5;
	make_entry(&dup[1], 100, 1);
	dup[2] = dup[1];
	dup[2].loc.offset = 6;
	CHECK_RC(cache_add_index(c, "index/bbbb", dup, 3, &err), 0);
	CHECK_RC(cache_lookup(c, e[1].id, &got, &err), 0);
	CHECK(loc_eq(&got, &e[1].loc) || loc_eq(&got, &dup[0].loc));
	CHECK_RC(cache_lookup(c, dup[1].id, &got, &err), 0);
	CHECK(loc_eq(&got, &dup[1].loc) || loc_eq(&got, &dup[2].loc));
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 7);
	/* merging the same index again adds nothing */
	CHECK_RC(cache_add_index(c, "index/bbbb", dup, 3, &err), 0);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 7);
	/* the same location from another index object: walks show it once */
	CHECK_RC(cache_add_index(c, "index/cccc", &e[2], 1, &err), 0);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 8);
	CHECK_RC(cache_each_blob(c, count_blob, &blobs, &err), 0);
	CHECK(blobs.n == 7 && blobs.bad == 0);
	blobs.n = 0;
	/* forgetting bbbb hides exactly its locations at once; the sweep
	 * deletes them; cccc's copy of e[2] stays when aaaa's goes */
	const char *forget1[] = {"index/bbbb", "index/never"};
	uint64_t removed = 0;
	int done = 0;
	CHECK_RC(cache_forget_indexes(c, forget1, 2, &err), 0);
	CHECK_RC(cache_lookup(c, e[1].id, &got, &err), 0);
	CHECK(loc_eq(&got, &e[1].loc));
	CHECK_RC(cache_lookup(c, dup[1].id, &got, &err), CAIRN_ENOTFOUND);
	CHECK_RC(cache_has_index(c, "index/bbbb", &err), 0);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 8); /* not swept yet */
	CHECK_RC(cache_each_blob(c, count_blob, &blobs, &err), 0);
	CHECK(blobs.n == 4);
	blobs.n = 0;
	CHECK_RC(cache_sweep(c, 0, &removed, &done, &err), 0);
	CHECK(removed == 3 && done == 1);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 5);
	const char *forget2[] = {"index/aaaa"};
	CHECK_RC(cache_forget_indexes(c, forget2, 1, &err), 0);
	CHECK_RC(cache_lookup(c, e[2].id, &got, &err), 0);
	CHECK(loc_eq(&got, &e[2].loc));
	CHECK_RC(cache_lookup(c, e[0].id, &got, &err), CAIRN_ENOTFOUND);
	/* forgetting again changes nothing; the source stays dead after a
	 * reopen, before its sweep */
	CHECK_RC(cache_forget_indexes(c, forget2, 1, &err), 0);
	cache_close(c);
	c = open_ok(dir, repo, 0);
	if (!c)
		return;
	CHECK_RC(cache_lookup(c, e[0].id, &got, &err), CAIRN_ENOTFOUND);
	CHECK_RC(cache_sweep(c, 0, &removed, &done, &err), 0);
	CHECK(removed == 4 && done == 1);
	CHECK_RC(cache_sweep(c, 0, &removed, &done, &err), 0);
	CHECK(removed == 0 && done == 1);
	const char *forget3[] = {"index/cccc"};
	CHECK_RC(cache_forget_indexes(c, forget3, 1, &err), 0);
	CHECK_RC(cache_sweep(c, 0, &removed, &done, &err), 0);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 0);
	/* back to the state the rest of this test expects */
	CHECK_RC(cache_add_index(c, "index/aaaa", e, 4, &err), 0);
	CHECK_RC(cache_add_index(c, "index/bbbb", dup, 3, &err), 0);
	/* an index with no entries is still recorded */
	CHECK_RC(cache_add_index(c, "index/empty", NULL, 0, &err), 0);
	CHECK_RC(cache_has_index(c, "index/empty", &err), 1);

	CHECK_RC(cache_each_index(c, count_index, &names, &err), 0);
	CHECK(names.n == 3 && names.saw_a == 1 && names.saw_b == 1);
	CHECK_RC(cache_each_blob(c, count_blob, &blobs, &err), 0);
	CHECK(blobs.n == 7 && blobs.bad == 0);
	int seen = 0;
	CHECK_RC(cache_each_blob(c, stop_at_two, &seen, &err), 42);
	CHECK(seen == 2);
	/* callbacks may not call back into the handle */
	blobs.n = 0;
	blobs.c = c;
	CHECK_RC(cache_each_blob(c, count_blob, &blobs, &err), 0);
	CHECK(blobs.reentrant_rc == CAIRN_EUSAGE);
	CHECK_RC(cache_lookup(c, e[0].id, &got, &err), 0); /* guard released */

	/* bad input */
	struct index_entry bad = e[0];
	bad.loc.type = 0;
	CHECK_RC(cache_add_index(c, "index/bad", &bad, 1, &err), CAIRN_EUSAGE);
	CHECK_RC(cache_add_index(c, "", e, 1, &err), CAIRN_EUSAGE);
	char longname[600];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_RC(cache_add_index(c, longname, e, 1, &err), CAIRN_EUSAGE);
	CHECK_RC(cache_has_index(c, "index/bad", &err), 0);
	cache_close(c);

	/* reopen: everything persists */
	c = open_ok(dir, repo, 0);
	if (!c)
		return;
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 7);
	CHECK_RC(cache_lookup(c, e[3].id, &got, &err), 0);
	CHECK(loc_eq(&got, &e[3].loc));
	CHECK_RC(cache_has_index(c, "index/bbbb", &err), 1);

	/* clear */
	CHECK_RC(cache_clear(c, &err), 0);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 0);
	CHECK_RC(cache_lookup(c, e[3].id, &got, &err), CAIRN_ENOTFOUND);
	CHECK_RC(cache_has_index(c, "index/bbbb", &err), 0);
	names.n = 0;
	CHECK_RC(cache_each_index(c, count_index, &names, &err), 0);
	CHECK(names.n == 0);
	CHECK_RC(cache_add_index(c, "index/aaaa", e, 4, &err), 0);
	cache_close(c);
	cache_close(NULL);
}

static void test_rebuild(const char *dir, const uint8_t *repo)
{
	struct cairn_err err;
	struct index_entry e[2000];
	struct blob_loc got;
	char data[4200];
	struct cache *c;
	uint8_t other[CAIRN_ID_LEN];
	uint64_t n;

	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	for (int i = 0; i < 2000; i++)
		make_entry(&e[i], (uint64_t)i, 3);

	c = open_ok(dir, repo, 0);
	if (c)
		CHECK_RC(cache_add_index(c, "index/aaaa", e, 10, &err), 0);
	cache_close(c);

	/* another repository's id: wiped, then it is that repository's */
	memset(other, 0xee, sizeof(other));
	c = open_ok(dir, other, 1);
	check_fresh_and_usable(c);
	cache_close(c);
	c = open_ok(dir, other, 0);
	cache_close(c);

	/* back to ours, with enough entries for a multi-page tree */
	c = open_ok(dir, repo, 1);
	if (c)
		CHECK_RC(cache_add_index(c, "index/aaaa", e, 2000, &err), 0);
	cache_close(c);

	/* random bytes over both meta pages */
	CHECK(scribble(data, 8192) == 0);
	c = open_ok(dir, repo, 1);
	check_fresh_and_usable(c);
	if (c)
		CHECK_RC(cache_add_index(c, "index/aaaa", e, 2000, &err), 0);
	cache_close(c);

	/* truncated inside the meta page */
	CHECK(truncate(data, 100) == 0);
	c = open_ok(dir, repo, 1);
	check_fresh_and_usable(c);
	if (c)
		CHECK_RC(cache_add_index(c, "index/aaaa", e, 2000, &err), 0);
	cache_close(c);

	/* truncated after the meta pages: pages it needs are missing */
	CHECK(truncate(data, 3 * 4096) == 0);
	c = open_ok(dir, repo, 1);
	check_fresh_and_usable(c);
	cache_close(c);

	/* empty file: LMDB treats it as new, not a rebuild */
	CHECK(truncate(data, 0) == 0);
	c = open_ok(dir, repo, 0);
	check_fresh_and_usable(c);
	cache_close(c);

	/* garbage over lock.mdb: LMDB re-initialises it (no other user) */
	char lockf[4200];
	snprintf(lockf, sizeof(lockf), "%s/lock.mdb", dir);
	CHECK(scribble(lockf, 4096) == 0);
	c = open_ok(dir, repo, 0);
	cache_close(c);

	/* another cache format version */
	uint8_t fmt[4];
	le_put32(fmt, 999);
	CHECK_RC(raw_put(dir, "meta", "format", 6, fmt, 4), 0);
	c = open_ok(dir, repo, 1);
	check_fresh_and_usable(c);
	cache_close(c);

	/* a repo record of the wrong size */
	CHECK_RC(raw_put(dir, "meta", "repo", 4, repo, 16), 0);
	c = open_ok(dir, repo, 1);
	cache_close(c);

	/* a malformed location: CAIRN_ECORRUPT, so the caller can rebuild */
	CHECK_RC(raw_put(dir, "blobs", e[5].id, CAIRN_ID_LEN, "short", 5), 0);
	c = open_ok(dir, repo, 0);
	if (c) {
		struct blobs b = {0, 0, NULL, 0};
		err.msg[0] = '\0';
		CHECK_RC(cache_lookup(c, e[5].id, &got, &err), CAIRN_ECORRUPT);
		CHECK(strstr(err.msg, dir) != NULL);
		CHECK_RC(cache_each_blob(c, count_blob, &b, &err), CAIRN_ECORRUPT);
		CHECK_RC(cache_count(c, &n, &err), 0);
	}
	cache_close(c);

	/* the folder cannot be created: a plain error naming it */
	char under_file[4300];
	snprintf(under_file, sizeof(under_file), "%s/sub", data);
	c = NULL;
	err.msg[0] = '\0';
	CHECK_RC(cache_open(&c, under_file, repo, NULL, &err), CAIRN_EIO);
	CHECK(c == NULL);
	CHECK(strstr(err.msg, data) != NULL);
}

static void test_bulk(const char *dir, const uint8_t *repo)
{
	const uint64_t total = T_ASAN ? 200000 : 1000000;
	const size_t batch = 10000;
	struct cairn_err err;
	struct index_entry *e = malloc(batch * sizeof(*e));
	struct blob_loc got;
	uint64_t n = 0, hits = 0, wrong = 0;
	char name[64];
	struct cache *c = open_ok(dir, repo, 0);
	if (!c || !e) {
		CHECK(e != NULL);
		cache_close(c);
		free(e);
		return;
	}

	double t0 = now();
	for (uint64_t done = 0; done < total; done += batch) {
		for (size_t i = 0; i < batch; i++)
			make_entry(&e[i], done + i, 5);
		snprintf(name, sizeof(name), "index/%016llx",
			 (unsigned long long)done);
		int rc = cache_add_index(c, name, e, batch, &err);
		CHECK_RC(rc, 0);
		if (rc) {
			fprintf(stderr, "  %s\n", err.msg);
			break;
		}
	}
	double t1 = now();
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == total);

	/* hits in random order, then as many misses */
	struct index_entry want;
	for (uint64_t i = 0; i < total; i++) {
		uint64_t k = rng() % total;
		make_entry(&want, k, 5);
		if (cache_lookup(c, want.id, &got, &err) == 0) {
			hits++;
			if (!loc_eq(&got, &want.loc))
				wrong++;
		}
	}
	double t2 = now();
	uint64_t misses = 0;
	for (uint64_t i = 0; i < total; i++) {
		make_id(want.id, total + i, 5);
		if (cache_lookup(c, want.id, &got, &err) == CAIRN_ENOTFOUND)
			misses++;
	}
	double t3 = now();
	CHECK(hits == total && wrong == 0);
	CHECK(misses == total);

	printf("bulk%s: %llu entries added in batches of %zu: %.2f s "
	       "(%.0f entries/s, %.1f ms/commit)\n",
	       T_ASAN ? " (ASan, reduced)" : "", (unsigned long long)total,
	       batch, t1 - t0, (double)total / (t1 - t0),
	       (t1 - t0) * 1000.0 / (double)(total / batch));
	printf("bulk: %llu random hits %.2f s (%.0f lookups/s), "
	       "%llu misses %.2f s (%.0f lookups/s)\n",
	       (unsigned long long)total, t2 - t1, (double)total / (t2 - t1),
	       (unsigned long long)total, t3 - t2, (double)total / (t3 - t2));

	/* what a host pays after a prune deleted 40% of the index objects:
	 * forgetting them, then lookups (through the dead list), then the
	 * sweep in SWEEP_PER_SYNC-sized steps */
	size_t ngone = (size_t)(total / batch) * 2 / 5, ng = 0;
	char (*gn)[64] = calloc(ngone, 64);
	const char **gp = calloc(ngone, sizeof(*gp));
	CHECK(gn && gp);
	for (uint64_t done = 0; gn && gp && ng < ngone; done += batch * 2) {
		snprintf(gn[ng], 64, "index/%016llx", (unsigned long long)done);
		gp[ng] = gn[ng];
		ng++;
	}
	double t4 = now();
	CHECK_RC(cache_forget_indexes(c, gp, ng, &err), 0);
	double t5 = now();
	hits = 0;
	for (uint64_t i = 0; i < total; i++) {
		make_entry(&want, i, 5);
		if (cache_lookup(c, want.id, &got, &err) == 0)
			hits++;
	}
	double t6 = now();
	CHECK(hits == total - ng * batch);
	uint64_t swept = 0, removed = 0;
	int sdone = 0, steps = 0;
	double worst = 0;
	while (!sdone && steps++ < 1000) {
		double a = now();
		CHECK_RC(cache_sweep(c, 200000, &removed, &sdone, &err), 0);
		swept += removed;
		if (now() - a > worst)
			worst = now() - a;
	}
	double t7 = now();
	CHECK(swept == ng * batch);
	printf("bulk: forgetting %zu of %llu index objects %.3f s; %llu lookups after %.2f s; "
	       "sweeping %llu locations %.2f s in %d steps (slowest %.3f s)\n",
	       ng, (unsigned long long)(total / batch), t5 - t4, (unsigned long long)total, t6 - t5,
	       (unsigned long long)swept, t7 - t6, steps, worst);
	free(gn);
	free(gp);
	cache_close(c);
	free(e);
}

/* Child process: opens the cache, says so on `ready`, keeps it open until
 * `go` closes, then exits with 0 if everything worked. */
static void child_hold(const char *dir, const uint8_t *repo, int ready,
		       int go, const uint8_t *expect_id)
{
	struct cairn_err err;
	struct cache *c;
	struct blob_loc got;
	char b = 'x';
	int ok = cache_open(&c, dir, repo, NULL, &err) == 0;
	if (write(ready, &b, 1) != 1)
		ok = 0;
	if (read(go, &b, 1) < 0)
		ok = 0;
	/* sees what the parent added meanwhile */
	if (ok && expect_id && cache_lookup(c, expect_id, &got, &err) != 0)
		ok = 0;
	if (ok)
		cache_close(c);
	_exit(ok ? 0 : 1);
}

static int child_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_processes(const char *dir, const uint8_t *repo)
{
	struct cairn_err err;
	struct index_entry e;
	struct blob_loc got;
	struct cache *c = NULL;
	uint8_t other[CAIRN_ID_LEN];
	int ready[2], go[2];
	char b;
	pid_t pid;
	int rebuilt = -1;

	make_entry(&e, 77, 7);
	memset(other, 0x55, sizeof(other));
	c = open_ok(dir, repo, 0);
	cache_close(c);

	/* another process has it open: we share it, and it sees our adds */
	CHECK(pipe(ready) == 0 && pipe(go) == 0);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		child_hold(dir, repo, ready[1], go[0], e.id);
	}
	close(ready[1]);
	close(go[0]);
	CHECK(read(ready[0], &b, 1) == 1);
	c = open_ok(dir, repo, 0);
	if (c)
		CHECK_RC(cache_add_index(c, "index/shared", &e, 1, &err), 0);
	close(go[1]);
	CHECK(child_status(pid) == 0);

	/* a handle inherited through fork() is not the child's: closing it
	 * there must leave the parent's handle working */
	pid = fork();
	if (pid == 0) {
		int rc = cache_add_index(c, "x", &e, 1, &err);
		cache_close(c);
		_exit(rc == CAIRN_EUSAGE ? 0 : 1);
	}
	CHECK(child_status(pid) == 0);
	if (c)
		CHECK_RC(cache_lookup(c, e.id, &got, &err), 0);
	cache_close(c);
	c = NULL;

	/* a cache to be wiped is not wiped under a process that has it open */
	CHECK(pipe(ready) == 0 && pipe(go) == 0);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		child_hold(dir, repo, ready[1], go[0], NULL);
	}
	close(ready[1]);
	close(go[0]);
	CHECK(read(ready[0], &b, 1) == 1);
	CHECK_RC(cache_open(&c, dir, other, &rebuilt, &err), CAIRN_ELOCKED);
	CHECK(c == NULL);
	close(go[1]);
	CHECK(child_status(pid) == 0);
	c = open_ok(dir, repo, 0); /* untouched */
	if (c)
		CHECK_RC(cache_lookup(c, e.id, &got, &err), 0);
	cache_close(c);

	/* several processes open a damaged cache at once: all succeed, one
	 * of them rebuilds it */
	enum { NPROC = 6 };
	pid_t kids[NPROC];
	char data[4200];
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	CHECK(scribble(data, 8192) == 0);
	CHECK(pipe(go) == 0);
	for (int i = 0; i < NPROC; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			struct cache *k = NULL;
			int r = -1, rc;
			close(go[1]);
			if (read(go[0], &b, 1) < 0)
				_exit(99);
			rc = cache_open(&k, dir, repo, &r, &err);
			if (rc == 0)
				rc = cache_add_index(k, "index/race", &e, 1, &err);
			cache_close(k);
			_exit(rc ? 99 : r);
		}
	}
	close(go[0]);
	close(go[1]); /* start them all */
	int sum = 0, failed = 0;
	for (int i = 0; i < NPROC; i++) {
		int st = child_status(kids[i]);
		if (st == 0 || st == 1)
			sum += st;
		else
			failed++;
	}
	CHECK(failed == 0);
	CHECK(sum == 1);
	c = open_ok(dir, repo, 0);
	if (c)
		CHECK_RC(cache_has_index(c, "index/race", &err), 1);
	cache_close(c);
}

static void rm_rf(const char *root)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
}

/* Forgetting index objects against a model: a blob is found exactly when
 * a live index object names it, at a location one of them gives; a big
 * forget (more than one transaction's worth) finishes. */
#define F_OBJS 24
#define F_IDS 2000
#define F_PER 400
static void test_forget(const char *dir, const uint8_t *repo)
{
	struct cairn_err err;
	struct cache *c = open_ok(dir, repo, 0);
	if (!c)
		return;
	static struct index_entry objs[F_OBJS][F_PER];
	int live[F_OBJS];
	char names[F_OBJS][32];
	for (int o = 0; o < F_OBJS; o++) {
		snprintf(names[o], sizeof(names[o]), "index/f%02d", o);
		for (int j = 0; j < F_PER; j++) {
			uint64_t id = rng() % F_IDS;
			make_entry(&objs[o][j], id, 3);
			/* two places per blob, so objects often agree */
			objs[o][j].loc.offset += rng() % 2;
		}
		CHECK_RC(cache_add_index(c, names[o], objs[o], F_PER, &err), 0);
		live[o] = 1;
	}
	for (int round = 0; round < 6; round++) {
		const char *gone[F_OBJS];
		size_t ngone = 0;
		for (int o = 0; o < F_OBJS; o++)
			if (live[o] && rng() % 4 == 0) {
				gone[ngone++] = names[o];
				live[o] = 0;
			}
		CHECK_RC(cache_forget_indexes(c, gone, ngone, &err), 0);
		/* half the rounds sweep (in small steps) before looking */
		for (int k = 0; round % 2 && k < 1000; k++) {
			int done = 0;
			CHECK_RC(cache_sweep(c, 1000, NULL, &done, &err), 0);
			if (done)
				break;
		}
		int bad = 0;
		for (uint64_t i = 0; i < F_IDS; i++) {
			struct index_entry want;
			struct blob_loc got;
			make_entry(&want, i, 3);
			int named = 0, match = 0;
			int rc = cache_lookup(c, want.id, &got, &err);
			for (int o = 0; o < F_OBJS; o++)
				for (int j = 0; live[o] && j < F_PER; j++)
					if (memcmp(objs[o][j].id, want.id, CAIRN_ID_LEN) == 0) {
						named = 1;
						if (rc == 0 && loc_eq(&got, &objs[o][j].loc))
							match = 1;
					}
			if (named ? (rc != 0 || !match) : rc != CAIRN_ENOTFOUND) {
				if (bad++ < 3)
					fprintf(stderr, "round %d id %llu named %d rc %d match %d\n", round, (unsigned long long)i, named, rc, match);
			}
		}
		CHECK(bad == 0);
		for (int o = 0; o < F_OBJS; o++)
			CHECK_RC(cache_has_index(c, names[o], &err), live[o]);
	}

	/* one forget of more locations than one transaction deletes */
	CHECK_RC(cache_clear(c, &err), 0);
	size_t big = 120000;
	struct index_entry *e = malloc(big * sizeof(*e));
	CHECK(e != NULL);
	if (!e) {
		cache_close(c);
		return;
	}
	for (size_t i = 0; i < big; i++)
		make_entry(&e[i], i, 4);
	CHECK_RC(cache_add_index(c, "index/big", e, big, &err), 0);
	CHECK_RC(cache_add_index(c, "index/small", e + 1000, 10, &err), 0);
	const char *gone[] = {"index/big"};
	uint64_t removed = 0, n = 0, total = 0;
	int done = 0, steps = 0;
	CHECK_RC(cache_forget_indexes(c, gone, 1, &err), 0);
	/* a forget meanwhile waits for the next pass */
	CHECK_RC(cache_sweep(c, 30000, &removed, &done, &err), 0);
	total += removed;
	CHECK(done == 0 && removed > 0 && removed < big);
	CHECK_RC(cache_add_index(c, "index/late", e + 2000, 5, &err), 0);
	const char *late[] = {"index/late"};
	CHECK_RC(cache_forget_indexes(c, late, 1, &err), 0);
	while (!done && steps++ < 100) {
		CHECK_RC(cache_sweep(c, 30000, &removed, &done, &err), 0);
		total += removed;
	}
	CHECK(done == 1);
	CHECK(total == big + 5);
	CHECK_RC(cache_count(c, &n, &err), 0);
	CHECK(n == 10);
	CHECK_RC(cache_has_index(c, "index/big", &err), 0);
	CHECK_RC(cache_has_index(c, "index/small", &err), 1);
	struct blob_loc got;
	CHECK_RC(cache_lookup(c, e[1005].id, &got, &err), 0);
	CHECK_RC(cache_lookup(c, e[999].id, &got, &err), CAIRN_ENOTFOUND);
	free(e);
	cache_close(c);
}

int main(void)
{
	char root[] = "/tmp/cairn-test-cache-XXXXXX";
	char dir[sizeof(root) + 64];
	uint8_t repo[CAIRN_ID_LEN];

	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	for (int i = 0; i < CAIRN_ID_LEN; i++)
		repo[i] = (uint8_t)(i * 11 + 1);

	snprintf(dir, sizeof(dir), "%s/a/b", root);
	test_basic(dir, repo);
	snprintf(dir, sizeof(dir), "%s/forget", root);
	test_forget(dir, repo);
	snprintf(dir, sizeof(dir), "%s/rebuild", root);
	test_rebuild(dir, repo);
	snprintf(dir, sizeof(dir), "%s/procs", root);
	test_processes(dir, repo);
	snprintf(dir, sizeof(dir), "%s/bulk", root);
	test_bulk(dir, repo);

	rm_rf(root);
	return t_done();
}
