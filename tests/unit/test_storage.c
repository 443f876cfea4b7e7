/*
 * test_storage.c — the storage contract (storage.h), run against the local
 * backend (in a scratch folder under /tmp) and the in-memory one; then
 * storage_open's location parsing, the fault wrapper, a full disk (a 1 MiB
 * tmpfs, when we may mount one) and concurrent puts.
 */
#include "repo/storage.h"
#include "tests/unit/t.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

struct listed {
	int n;
	char key[64][128];
	uint64_t size[64];
	int stop_after; /* cb returns 7 after this many calls; 0 = never */
};

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct listed *l = arg;
	if (l->n < 64) {
		snprintf(l->key[l->n], sizeof(l->key[0]), "%s", key);
		l->size[l->n] = size;
	}
	l->n++;
	if (l->stop_after && l->n >= l->stop_after)
		return 7;
	return 0;
}

/* Lists `prefix` into *l; returns the storage_list code. */
static int list_into(struct storage *s, const char *prefix, struct listed *l)
{
	struct cairn_err e = {0};
	memset(l, 0, sizeof(*l));
	return storage_list(s, prefix, list_cb, l, &e);
}

/* 1 when `key` was listed exactly once with `size`. */
static int listed_has(const struct listed *l, const char *key, uint64_t size)
{
	int found = 0;
	for (int i = 0; i < l->n && i < 64; i++)
		if (strcmp(l->key[i], key) == 0)
			found += l->size[i] == size ? 1 : 100;
	return found == 1;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Counts regular files below `path` (all, or only names starting with
 * ".tmp-"). */
static int count_files(const char *path, int only_tmp)
{
	DIR *d = opendir(path);
	int n = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[PATH_MAX];
		struct stat st;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (lstat(sub, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += count_files(sub, only_tmp);
		else if (!only_tmp || !strncmp(de->d_name, ".tmp-", 5))
			n++;
	}
	closedir(d);
	return n;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* ---- the contract, for any backend ---- */

/* `root` is the local backend's folder (for stray temp files and modes), or
 * NULL for backends without one. */
static void contract(struct storage *s, const char *root)
{
	struct cairn_err e = {0};
	struct buf b = BUF_INIT;
	uint64_t size = 0;
	uint8_t data[1000];
	fill(data, sizeof(data), 1);
	fprintf(stderr, "contract: %s backend\n", s->ops->name);

	/* put, get whole and ranged */
	CHECK_RC(storage_put(s, "data", data, sizeof(data), &e), 0);
	CHECK_RC(storage_get(s, "data", 0, STORAGE_WHOLE, &b, &e), 0);
	CHECK(b.len == sizeof(data) && memcmp(b.data, data, sizeof(data)) == 0);
	CHECK_RC(storage_get(s, "data", 10, 20, &b, &e), 0);
	CHECK(b.len == 20 && memcmp(b.data, data + 10, 20) == 0);
	CHECK_RC(storage_get(s, "data", 990, STORAGE_WHOLE, &b, &e), 0);
	CHECK(b.len == 10 && memcmp(b.data, data + 990, 10) == 0);
	CHECK_RC(storage_get(s, "data", 990, 10, &b, &e), 0);
	CHECK(b.len == 10 && memcmp(b.data, data + 990, 10) == 0);
	CHECK_RC(storage_get(s, "data", 1000, STORAGE_WHOLE, &b, &e), 0);
	CHECK(b.len == 0);
	CHECK_RC(storage_get(s, "data", 5, 0, &b, &e), 0);
	CHECK(b.len == 0);

	/* ranges past the end: a truncated object */
	e.msg[0] = '\0';
	CHECK_RC(storage_get(s, "data", 995, 10, &b, &e), CAIRN_ECORRUPT);
	CHECK(strstr(e.msg, "data is truncated: 1000 bytes, need 1005") != NULL);
	CHECK(b.len == 0);
	CHECK_RC(storage_get(s, "data", 1001, STORAGE_WHOLE, &b, &e), CAIRN_ECORRUPT);
	CHECK_RC(storage_get(s, "data", 0, 1001, &b, &e), CAIRN_ECORRUPT);
	CHECK_RC(storage_get(s, "data", UINT64_MAX - 5, 10, &b, &e), CAIRN_ECORRUPT);
	CHECK_RC(storage_get(s, "data", 1, UINT64_MAX - 1, &b, &e), CAIRN_ECORRUPT);

	/* an empty object */
	CHECK_RC(storage_put(s, "empty", "", 0, &e), 0);
	CHECK_RC(storage_get(s, "empty", 0, STORAGE_WHOLE, &b, &e), 0);
	CHECK(b.len == 0);
	CHECK_RC(storage_stat(s, "empty", &size, &e), 0);
	CHECK(size == 0);

	/* never overwrite */
	CHECK_RC(storage_put(s, "config", "first!", 6, &e), 0);
	e.msg[0] = '\0';
	CHECK_RC(storage_put(s, "config", "second", 6, &e), CAIRN_EEXIST);
	CHECK(strstr(e.msg, "config") != NULL);
	CHECK_RC(storage_get(s, "config", 0, STORAGE_WHOLE, &b, &e), 0);
	CHECK(b.len == 6 && memcmp(b.data, "first!", 6) == 0);

	/* list by prefix */
	CHECK_RC(storage_put(s, "snapshots/ab12", data, 10, &e), 0);
	CHECK_RC(storage_put(s, "snapshots/ab34", data, 20, &e), 0);
	CHECK_RC(storage_put(s, "snapshots/cd56", data, 30, &e), 0);
	CHECK_RC(storage_put(s, "packs/ab/abcd", data, 100, &e), 0);
	CHECK_RC(storage_put(s, "packs/ab/abce", data, 101, &e), 0);
	CHECK_RC(storage_put(s, "packs/cd/cdef", data, 102, &e), 0);
	if (root) {
		/* stray temp files of an unfinished put, at several depths */
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/snapshots/.tmp-abc", root);
		write_file(p, "partial");
		snprintf(p, sizeof(p), "%s/.tmp-def", root);
		write_file(p, "partial");
		snprintf(p, sizeof(p), "%s/packs/ab/.tmp-0123", root);
		write_file(p, "partial");
	}
	struct listed l;
	CHECK_RC(list_into(s, "", &l), 0);
	CHECK(l.n == 9);
	CHECK(listed_has(&l, "data", 1000));
	CHECK(listed_has(&l, "empty", 0));
	CHECK(listed_has(&l, "config", 6));
	CHECK(listed_has(&l, "snapshots/ab12", 10));
	CHECK(listed_has(&l, "snapshots/ab34", 20));
	CHECK(listed_has(&l, "snapshots/cd56", 30));
	CHECK(listed_has(&l, "packs/ab/abcd", 100));
	CHECK(listed_has(&l, "packs/ab/abce", 101));
	CHECK(listed_has(&l, "packs/cd/cdef", 102));
	for (int i = 0; i < l.n && i < 64; i++)
		CHECK(strstr(l.key[i], ".tmp") == NULL);

	CHECK_RC(list_into(s, "snapshots/", &l), 0);
	CHECK(l.n == 3);
	CHECK(listed_has(&l, "snapshots/cd56", 30));
	CHECK_RC(list_into(s, "snapshots/ab", &l), 0); /* ends inside a name */
	CHECK(l.n == 2);
	CHECK(listed_has(&l, "snapshots/ab12", 10));
	CHECK(listed_has(&l, "snapshots/ab34", 20));
	CHECK_RC(list_into(s, "snapshots/ab3", &l), 0);
	CHECK(l.n == 1 && listed_has(&l, "snapshots/ab34", 20));
	CHECK_RC(list_into(s, "snapshots", &l), 0);
	CHECK(l.n == 3);
	CHECK_RC(list_into(s, "packs/a", &l), 0); /* a folder name's start */
	CHECK(l.n == 2);
	CHECK(listed_has(&l, "packs/ab/abcd", 100));
	CHECK(listed_has(&l, "packs/ab/abce", 101));
	CHECK_RC(list_into(s, "packs/ab/abce", &l), 0);
	CHECK(l.n == 1 && listed_has(&l, "packs/ab/abce", 101));
	CHECK_RC(list_into(s, "conf", &l), 0);
	CHECK(l.n == 1 && listed_has(&l, "config", 6));
	CHECK_RC(list_into(s, "nothing/", &l), 0);
	CHECK(l.n == 0);
	CHECK_RC(list_into(s, "nothing/here/x", &l), 0);
	CHECK(l.n == 0);
	CHECK_RC(list_into(s, "config/", &l), 0); /* a file, not a folder */
	CHECK(l.n == 0);
	CHECK_RC(list_into(s, "zzz", &l), 0);
	CHECK(l.n == 0);
	/* a non-zero callback result stops the listing and is returned */
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	CHECK_RC(storage_list(s, "", list_cb, &l, &e), 7);
	CHECK(l.n == 2);

	/* stat */
	CHECK_RC(storage_stat(s, "packs/cd/cdef", &size, &e), 0);
	CHECK(size == 102);

	/* missing keys; folders and paths through files are not objects */
	static const char *const missing[] = {"missing", "packs/zz/nope", "packs",
					      "packs/ab", "config/x"};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		const char *k = missing[i];
		e.msg[0] = '\0';
		CHECK_RC(storage_get(s, k, 0, STORAGE_WHOLE, &b, &e), CAIRN_ENOTFOUND);
		CHECK(strstr(e.msg, k) != NULL);
		CHECK_RC(storage_stat(s, k, &size, &e), CAIRN_ENOTFOUND);
		CHECK_RC(storage_del(s, k, &e), CAIRN_ENOTFOUND);
	}

	/* del */
	CHECK_RC(storage_del(s, "snapshots/cd56", &e), 0);
	CHECK_RC(storage_stat(s, "snapshots/cd56", &size, &e), CAIRN_ENOTFOUND);
	CHECK_RC(storage_get(s, "snapshots/cd56", 0, STORAGE_WHOLE, &b, &e),
		 CAIRN_ENOTFOUND);
	CHECK_RC(storage_del(s, "snapshots/cd56", &e), CAIRN_ENOTFOUND);
	CHECK_RC(list_into(s, "snapshots/", &l), 0);
	CHECK(l.n == 2);
	CHECK_RC(storage_put(s, "snapshots/cd56", "again", 5, &e), 0);
	CHECK_RC(storage_stat(s, "snapshots/cd56", &size, &e), 0);
	CHECK(size == 5);

	/* invalid keys are refused by every call */
	/* STORAGE_KEY_MAX + 1 characters in segments a filesystem accepts */
	char longkey[STORAGE_KEY_MAX + 2];
	for (size_t i = 0; i < sizeof(longkey) - 1; i++)
		longkey[i] = i % 200 == 199 ? '/' : 'a';
	longkey[sizeof(longkey) - 1] = '\0';
	static const char *const bad[] = {
		"", "/abs", "a//b", "a/", "../x", "a/../b", "a..b", "Upper",
		"a b", "a\\b", ".tmp-abc", "packs/.hidden", "./x", "x/.", "\xc3\xa9",
	};
	for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		const char *k = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : longkey;
		CHECK_RC(storage_put(s, k, "x", 1, &e), CAIRN_EUSAGE);
		CHECK_RC(storage_get(s, k, 0, STORAGE_WHOLE, &b, &e), CAIRN_EUSAGE);
		CHECK_RC(storage_stat(s, k, &size, &e), CAIRN_EUSAGE);
		CHECK_RC(storage_del(s, k, &e), CAIRN_EUSAGE);
	}
	CHECK_RC(storage_put(s, longkey + 1, "x", 1, &e), 0); /* exactly the max */
	CHECK_RC(storage_del(s, longkey + 1, &e), 0);
	CHECK_RC(list_into(s, "/x", &l), CAIRN_EUSAGE);
	CHECK_RC(list_into(s, "a//", &l), CAIRN_EUSAGE);
	CHECK_RC(list_into(s, "../", &l), CAIRN_EUSAGE);
	CHECK_RC(list_into(s, ".tmp", &l), CAIRN_EUSAGE);
	CHECK_RC(list_into(s, "Packs/", &l), CAIRN_EUSAGE);
	if (root) {
		/* nothing escaped the root */
		char p[PATH_MAX];
		struct stat st;
		snprintf(p, sizeof(p), "%s/../x", root);
		CHECK(stat(p, &st) != 0);
		/* objects are private files */
		snprintf(p, sizeof(p), "%s/packs/ab/abcd", root);
		CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
		/* the three stray temp files are all that is left besides objects */
		CHECK(count_files(root, 1) == 3);
	}
	buf_free(&b);
}

/* ---- storage_open ---- */

static void test_open(const char *tmp)
{
	struct cairn_err e = {0};
	struct storage *s = (struct storage *)1;
	char p[PATH_MAX], url[PATH_MAX + 16];
	struct stat st;

	snprintf(p, sizeof(p), "%s/missing/repo", tmp);
	e.msg[0] = '\0';
	CHECK_RC(storage_open(&s, p, 0, NULL, &e), CAIRN_ENOREPO);
	CHECK(s == NULL);
	CHECK(strstr(e.msg, "does not exist") && strstr(e.msg, p));
	CHECK_RC(storage_local_open(&s, p, 0, &e), CAIRN_ENOREPO);
	CHECK(stat(p, &st) != 0);

	CHECK_RC(storage_open(&s, p, 1, NULL, &e), 0);
	CHECK(s && strcmp(s->ops->name, "local") == 0 && strcmp(s->url, p) == 0);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	storage_close(s);
	CHECK_RC(storage_open(&s, p, 0, NULL, &e), 0);
	storage_close(s);

	/* a file is not a repository */
	snprintf(p, sizeof(p), "%s/afile", tmp);
	write_file(p, "x");
	CHECK_RC(storage_open(&s, p, 0, NULL, &e), CAIRN_ENOREPO);
	CHECK_RC(storage_open(&s, p, 1, NULL, &e), CAIRN_ENOREPO);

	/* file:/// URLs */
	snprintf(url, sizeof(url), "file://%s/viaurl", tmp);
	CHECK_RC(storage_open(&s, url, 0, NULL, &e), CAIRN_ENOREPO);
	CHECK_RC(storage_open(&s, url, 1, NULL, &e), 0);
	CHECK(s && strcmp(s->url, url) == 0);
	if (s) {
		CHECK_RC(storage_put(s, "config", "c", 1, &e), 0);
		storage_close(s);
	}
	snprintf(p, sizeof(p), "%s/viaurl/config", tmp);
	CHECK(stat(p, &st) == 0 && st.st_size == 1);
	CHECK_RC(storage_open(&s, "file://relative/x", 1, NULL, &e), CAIRN_EUSAGE);

	/* a relative path, resolved once at open: a later chdir does not move it */
	char cwd[PATH_MAX];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir(tmp) == 0);
	CHECK_RC(storage_open(&s, "rel/repo", 1, NULL, &e), 0);
	CHECK(chdir("/") == 0);
	if (s) {
		CHECK_RC(storage_put(s, "keys/k1", "k", 1, &e), 0);
		storage_close(s);
	}
	CHECK(chdir(cwd) == 0);
	snprintf(p, sizeof(p), "%s/rel/repo/keys/k1", tmp);
	CHECK(stat(p, &st) == 0);

	/* other schemes */
	e.msg[0] = '\0';
	CHECK_RC(storage_open(&s, "s3://bucket/prefix", 1, NULL, &e), CAIRN_EUSAGE);
	CHECK(strstr(e.msg, "--s3-endpoint") != NULL); /* S3 needs an endpoint */
	e.msg[0] = '\0';
	CHECK_RC(storage_open(&s, "sftp://host/path", 1, NULL, &e), CAIRN_EUSAGE);
	CHECK(strstr(e.msg, "\"sftp\"") != NULL);
	CHECK(s == NULL);
	CHECK_RC(storage_open(&s, "", 1, NULL, &e), CAIRN_EUSAGE);
}

/* ---- fault wrapper ---- */

static void test_fault(const char *tmp)
{
	struct cairn_err e = {0};
	struct storage *mem = NULL, *f = NULL;
	struct buf b = BUF_INIT;
	uint64_t size;

	/* the 2nd put fails once */
	CHECK_RC(storage_mem_open(&mem, &e), 0);
	CHECK_RC(storage_fault_open(&f, mem, FAULT_PUT, 2, 0, CAIRN_EIO, &e), 0);
	CHECK_RC(storage_put(f, "a", "1", 1, &e), 0);
	e.msg[0] = '\0';
	CHECK_RC(storage_put(f, "packs/ab/b", "2", 1, &e), CAIRN_EIO);
	CHECK(strstr(e.msg, "injected fault on put packs/ab/b") != NULL);
	CHECK_RC(storage_stat(f, "packs/ab/b", &size, &e), CAIRN_ENOTFOUND);
	CHECK_RC(storage_get(f, "a", 0, STORAGE_WHOLE, &b, &e), 0); /* not selected */
	CHECK_RC(storage_put(f, "c", "3", 1, &e), 0);
	CHECK_RC(storage_put(f, "packs/ab/b", "2", 1, &e), 0); /* a retry works */
	CHECK(storage_fault_calls(f) == 4);
	storage_close(f);

	/* sticky, on the local backend: nothing left behind under the key */
	char root[PATH_MAX];
	struct storage *loc = NULL;
	snprintf(root, sizeof(root), "%s/faultrepo", tmp);
	CHECK_RC(storage_local_open(&loc, root, 1, &e), 0);
	CHECK_RC(storage_fault_open(&f, loc, FAULT_PUT | FAULT_DEL, 2, 1, CAIRN_EIO,
				    &e),
		 0);
	CHECK_RC(storage_put(f, "packs/ab/one", "1", 1, &e), 0);
	CHECK_RC(storage_put(f, "packs/ab/two", "2", 1, &e), CAIRN_EIO);
	CHECK_RC(storage_put(f, "packs/ab/three", "3", 1, &e), CAIRN_EIO);
	CHECK_RC(storage_del(f, "packs/ab/one", &e), CAIRN_EIO);
	CHECK_RC(storage_stat(f, "packs/ab/one", &size, &e), 0);
	CHECK_RC(storage_stat(f, "packs/ab/two", &size, &e), CAIRN_ENOTFOUND);
	CHECK(storage_fault_calls(f) == 4);
	CHECK(count_files(root, 0) == 1);
	storage_close(f);

	/* gets and lists; fail_at 0 only counts */
	CHECK_RC(storage_mem_open(&mem, &e), 0);
	CHECK_RC(storage_fault_open(&f, mem, FAULT_GET | FAULT_LIST, 1, 0,
				    CAIRN_ECORRUPT, &e),
		 0);
	CHECK_RC(storage_put(f, "x", "1", 1, &e), 0);
	CHECK_RC(storage_get(f, "x", 0, STORAGE_WHOLE, &b, &e), CAIRN_ECORRUPT);
	CHECK_RC(storage_get(f, "x", 0, STORAGE_WHOLE, &b, &e), 0);
	struct listed l;
	CHECK_RC(list_into(f, "", &l), 0);
	CHECK(l.n == 1);
	CHECK(storage_fault_calls(f) == 3);
	storage_close(f);
	CHECK_RC(storage_mem_open(&mem, &e), 0);
	CHECK_RC(storage_fault_open(&f, mem, FAULT_PUT, 0, 1, CAIRN_EIO, &e), 0);
	CHECK_RC(storage_put(f, "x", "1", 1, &e), 0);
	CHECK_RC(storage_put(f, "y", "1", 1, &e), 0);
	CHECK(storage_fault_calls(f) == 2);
	CHECK(storage_fault_calls(NULL) == 0);
	storage_close(f);
	storage_close(NULL);

	/* a code that is not an error is refused; inner is closed (ASan checks) */
	CHECK_RC(storage_mem_open(&mem, &e), 0);
	CHECK_RC(storage_fault_open(&f, mem, FAULT_PUT, 1, 0, 0, &e), CAIRN_EUSAGE);
	CHECK(f == NULL);
	buf_free(&b);
}

/* ---- a full disk ---- */

static void test_enospc(const char *tmp)
{
	char mnt[PATH_MAX - 16], root[PATH_MAX], cmd[PATH_MAX + 64];
	if (geteuid() != 0) {
		printf("note: not root, skipping the full-disk test\n");
		return;
	}
	snprintf(mnt, sizeof(mnt), "%s/tmpfs", tmp);
	CHECK(mkdir(mnt, 0700) == 0);
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=1m tmpfs '%s' 2>/dev/null", mnt);
	if (system(cmd) != 0) {
		printf("note: cannot mount a tmpfs here, skipping the full-disk test\n");
		return;
	}
	struct cairn_err e = {0};
	struct storage *s = NULL;
	size_t big = 4u << 20;
	uint8_t *data = malloc(big);
	CHECK(data != NULL);
	snprintf(root, sizeof(root), "%s/repo", mnt);
	CHECK_RC(storage_local_open(&s, root, 1, &e), 0);
	if (s && data) {
		fill(data, big, 7);
		e.msg[0] = '\0';
		CHECK_RC(storage_put(s, "packs/ab/big", data, big, &e), CAIRN_ENOSPC);
		CHECK(strstr(e.msg, "packs/ab/big") != NULL);
		CHECK(strstr(e.msg, root) != NULL);
		fprintf(stderr, "full disk says: %s\n", e.msg);
		CHECK(count_files(root, 0) == 0);
		uint64_t size;
		CHECK_RC(storage_stat(s, "packs/ab/big", &size, &e), CAIRN_ENOTFOUND);
		/* the space came back: a small put fits */
		CHECK_RC(storage_put(s, "packs/ab/small", data, 1000, &e), 0);
		CHECK(count_files(root, 0) == 1);
	}
	storage_close(s);
	free(data);
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	CHECK(system(cmd) == 0);
}

/* ---- threads ---- */

#define PER_THREAD 200
#define RACE_KEYS 100

struct worker {
	struct storage *s;
	int id;
	int failures;
	int race_rc[RACE_KEYS];
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct cairn_err e = {0};
	uint8_t data[300];
	char key[64];
	for (int i = 0; i < PER_THREAD; i++) {
		/* shared folders, so that both threads create them at once */
		snprintf(key, sizeof(key), "packs/%02x/t%d-%03d", i % 32, w->id, i);
		fill(data, sizeof(data), (unsigned)(w->id * 1000 + i));
		if (storage_put(w->s, key, data, sizeof(data) - (size_t)i, &e) != 0) {
			fprintf(stderr, "thread %d: %s\n", w->id, e.msg);
			w->failures++;
		}
	}
	/* the same keys from both threads: exactly one put wins each */
	for (int i = 0; i < RACE_KEYS; i++) {
		snprintf(key, sizeof(key), "race/%02x/k%03d", i % 8, i);
		w->race_rc[i] = storage_put(w->s, key, &w->id, sizeof(w->id), &e);
	}
	return NULL;
}

static void test_threads(struct storage *s)
{
	struct worker w[2];
	pthread_t th[2];
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 2; i++) {
		w[i].s = s;
		w[i].id = i;
		CHECK(pthread_create(&th[i], NULL, worker_run, &w[i]) == 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK(w[0].failures == 0 && w[1].failures == 0);
	struct listed l;
	CHECK_RC(list_into(s, "packs/", &l), 0);
	CHECK(l.n == 2 * PER_THREAD);
	struct cairn_err e = {0};
	struct buf b = BUF_INIT;
	uint64_t size = 0;
	CHECK_RC(storage_stat(s, "packs/07/t1-199", &size, &e), 0);
	CHECK(size == 300 - 199);
	int wins = 0, lost = 0, bad = 0;
	for (int i = 0; i < RACE_KEYS; i++) {
		int a = w[0].race_rc[i], c = w[1].race_rc[i];
		if ((a == 0 && c == CAIRN_EEXIST) || (a == CAIRN_EEXIST && c == 0)) {
			wins++;
			char key[64];
			snprintf(key, sizeof(key), "race/%02x/k%03d", i % 8, i);
			int winner = a == 0 ? 0 : 1, got = -1;
			CHECK_RC(storage_get(s, key, 0, STORAGE_WHOLE, &b, &e), 0);
			if (b.len == sizeof(got))
				memcpy(&got, b.data, sizeof(got));
			if (got != winner)
				lost++;
		} else {
			bad++;
		}
	}
	CHECK(wins == RACE_KEYS && bad == 0 && lost == 0);
	buf_free(&b);
}

int main(void)
{
	char tmp[] = "/tmp/cairn-test-storage-XXXXXX";
	char root[PATH_MAX];
	struct cairn_err e = {0};
	struct storage *s = NULL;

	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}

	snprintf(root, sizeof(root), "%s/local", tmp);
	CHECK_RC(storage_local_open(&s, root, 1, &e), 0);
	if (s) {
		contract(s, root);
		storage_close(s);
	}
	CHECK_RC(storage_mem_open(&s, &e), 0);
	if (s) {
		contract(s, NULL);
		storage_close(s);
	}
	/* the fault wrapper passes everything through when it does not fail */
	struct storage *inner = NULL;
	CHECK_RC(storage_mem_open(&inner, &e), 0);
	CHECK_RC(storage_fault_open(&s, inner, FAULT_PUT | FAULT_GET, 0, 0, CAIRN_EIO,
				    &e),
		 0);
	if (s) {
		contract(s, NULL);
		storage_close(s);
	}

	test_open(tmp);
	test_fault(tmp);
	test_enospc(tmp);

	snprintf(root, sizeof(root), "%s/threads", tmp);
	CHECK_RC(storage_local_open(&s, root, 1, &e), 0);
	if (s) {
		test_threads(s);
		storage_close(s);
	}
	CHECK_RC(storage_mem_open(&s, &e), 0);
	if (s) {
		test_threads(s);
		storage_close(s);
	}

	rm_rf(tmp);
	return t_done();
}
