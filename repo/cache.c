/*
 * cache.c — the per-host LMDB cache of the repository's index; see cache.h.
 *
 * Layout of the LMDB environment (one folder per repository):
 *   "meta"     "format" -> cache format version, u32 LE (CACHE_FORMAT)
 *              "repo"   -> the 32-byte repository id
 *              "next"   -> the next source number to hand out, u32 LE
 *   "blobs"    32-byte blob id -> its locations (MDB_DUPSORT|MDB_DUPFIXED:
 *              one value per index object that names the blob), VAL_LEN
 *              bytes each, field by field: pack id (32) | offset u64 LE |
 *              sealed_len u32 LE | raw_len u32 LE | type u8 | source u32 LE
 *   "indexes"  index object name (no NUL) -> its source number, u32 LE
 * The source number says which merged index object a location came from,
 * so that when index objects disappear (prune replaced them, or deleted
 * the packs they named) exactly their locations go, and a blob keeps any
 * location that another index object still vouches for.  Lookups return
 * the first value in LMDB's order (by pack id): any of them is valid.
 * The three named databases and both meta records are created in one write
 * transaction, so a main database that is not empty always holds all of
 * them; anything else is a damaged cache.
 *
 * Invariants and why they are safe:
 *  1. Entries are only added after the index object naming them is durable
 *     in the repository (the caller's duty), so the cache never
 *     names a blob the repository does not have, except after prune — and
 *     every read is verified (AEAD with the id as associated data, then the
 *     keyed hash), so a stale or wrong location fails loudly, never silently.
 *  2. Losing cache content is always safe: a missing blob is a miss (the
 *     blob is stored again, dedup is only lost), a missing index name makes
 *     the next sync merge that index again.  This is why a damaged cache is
 *     simply wiped.
 *  3. Default LMDB durability (fsync on commit) is kept although 2. would
 *     allow MDB_NOSYNC: a commit costs one fsync pair per index object
 *     merged, which is small next to writing the pack it describes, and a
 *     synced LMDB can never be torn by a power loss (an unsynced one can,
 *     and LMDB has no page checksums to notice).
 *
 * Processes: LMDB allows one environment per file per process (closing a
 * second one drops the first one's POSIX locks, and opening it resets the
 * reader table under the first).  cache_open refuses a second handle on the
 * same folder in one process (CAIRN_EUSAGE).  Between processes, a lock file
 * "cairn.lock" next to data.mdb holds open file description (OFD) locks:
 *   byte 0        read-locked by every open handle; write-locked, briefly,
 *                 by the process that wipes and recreates the cache, so the
 *                 files are never deleted under a process that uses them
 *                 (two processes with different lock.mdb on one data.mdb
 *                 would be two unsynchronised writers);
 *   byte 1        write-locked by a process about to wipe: rebuilders queue
 *                 there, so that concurrent openers of a damaged cache do
 *                 not starve each other of byte 0;
 *   byte 2 + pid  write-locked by the handle of process pid.
 * A cache that must be wiped while another process keeps it open (for more
 * than WIPE_WAIT_MS) gives CAIRN_ELOCKED.  LMDB's stale-reader detection
 * relies on pids, so the folder must not be shared across PID namespaces
 * (same for the guard).
 *
 * A handle keeps one read transaction, reset between calls and renewed by
 * the next one (MDB_NOTLS: the slot belongs to the transaction, not to the
 * thread), so a lookup takes no lock and allocates nothing.  A handle must
 * not be used in a child after fork(): writes say CAIRN_EUSAGE there, and
 * cache_close only frees memory (LMDB would release the parent's reader
 * slots).
 *
 * Limits: LMDB detects damaged meta pages (MDB_INVALID) and some damaged
 * tree pages (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, reported as CAIRN_ECORRUPT
 * so the caller can wipe and rebuild), and cache_open detects a data file
 * shorter than its last page (which would otherwise be SIGBUS).  Garbage
 * inside tree pages with valid meta pages can still give wrong answers or,
 * with LMDB 0.9, an invalid memory access: LMDB pages carry no checksum.
 */
#include "repo/cache.h"
#include "repo/buf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CACHE_FORMAT 2u
#define LOC_LEN (CAIRN_ID_LEN + 8 + 4 + 4 + 1)
#define VAL_LEN (LOC_LEN + 4) /* location and source number */
#define BLOBS_FLAGS (MDB_DUPSORT | MDB_DUPFIXED)
/* A sweep step commits after this many deletions, so that a large sweep
 * does not hold every dirty page of the map at once. */
#define SWEEP_TXN 50000
#define SWEEP_MIN 1000 /* values a sweep step looks at, at least */
#define LOCK_NAME "cairn.lock"
#define LOCK_USERS 0   /* bytes of the lock file, see the top comment */
#define LOCK_REBUILD 1
#define LOCK_PID0 2
#define WIPE_WAIT_MS 2000

/* Address space reserved for the map; the file grows only as written
 * (sparse on Linux).  Fallback when the address space is limited. */
#if SIZE_MAX > UINT32_MAX
#define MAP_INITIAL ((size_t)64 << 30)
#else
#define MAP_INITIAL ((size_t)1 << 30)
#endif
#define MAP_FALLBACK ((size_t)1 << 30)
#define MAX_READERS 512

struct cache {
	MDB_env *env;
	MDB_dbi meta, blobs, indexes;
	MDB_txn *rtxn;     /* reset between calls; NULL until first use */
	uint32_t *dead;    /* sorted sources forgotten but not yet swept */
	size_t ndead;
	int lock_fd;       /* cairn.lock, holds our OFD locks; -1 if none */
	int in_walk;       /* inside a cache_each_* callback */
	pid_t pid;         /* of the process that opened it */
	char dir[PATH_MAX];
};

/* ---- encoding ---------------------------------------------------------- */

static void loc_encode(uint8_t out[VAL_LEN], const struct blob_loc *l,
		       uint32_t source)
{
	uint8_t *p = out;
	memcpy(p, l->pack, CAIRN_ID_LEN);
	p += CAIRN_ID_LEN;
	le_put64(p, l->offset);
	p += 8;
	le_put32(p, l->sealed_len);
	p += 4;
	le_put32(p, l->raw_len);
	p += 4;
	*p++ = l->type;
	le_put32(p, source);
}

static int type_ok(uint8_t t) { return t == BLOB_DATA || t == BLOB_TREE; }

/* 0, or -1 if the value is not a location. */
static int loc_decode(struct blob_loc *l, const MDB_val *v)
{
	const uint8_t *p = v->mv_data;
	if (v->mv_size != VAL_LEN || !type_ok(p[LOC_LEN - 1]))
		return -1;
	memcpy(l->pack, p, CAIRN_ID_LEN);
	p += CAIRN_ID_LEN;
	l->offset = le_get64(p);
	p += 8;
	l->sealed_len = le_get32(p);
	p += 4;
	l->raw_len = le_get32(p);
	p += 4;
	l->type = *p;
	return 0;
}

/* ---- forgotten sources ------------------------------------------------- */

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Reads a u32 array kept in meta under key (after `skip` bytes); *out is
 * malloc'd (NULL when empty).  An LMDB result. */
static int meta_u32s(struct cache *c, MDB_txn *txn, const char *key, size_t skip,
		     uint32_t **out, size_t *n)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	*out = NULL;
	*n = 0;
	int rc = mdb_get(txn, c->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v.mv_size < skip || (v.mv_size - skip) % 4)
		return MDB_CORRUPTED;
	*n = (v.mv_size - skip) / 4;
	if (!*n)
		return 0;
	*out = malloc(*n * sizeof(**out));
	if (!*out)
		return ENOMEM;
	for (size_t i = 0; i < *n; i++)
		(*out)[i] = le_get32((const uint8_t *)v.mv_data + skip + 4 * i);
	return 0;
}

static int meta_put_u32s(struct cache *c, MDB_txn *txn, const char *key,
			 const uint8_t *head, size_t nhead, const uint32_t *a, size_t n)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	if (!nhead && !n) {
		int rc = mdb_del(txn, c->meta, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	uint8_t *b = malloc(nhead + 4 * n);
	if (!b)
		return ENOMEM;
	if (nhead)
		memcpy(b, head, nhead);
	for (size_t i = 0; i < n; i++)
		le_put32(b + nhead + 4 * i, a[i]);
	v.mv_size = nhead + 4 * n, v.mv_data = b;
	int rc = mdb_put(txn, c->meta, &k, &v, 0);
	free(b);
	return rc;
}

/* Refreshes the handle's copy of the forgotten sources. */
static int dead_load(struct cache *c, MDB_txn *txn)
{
	uint32_t *d;
	size_t n;
	int rc = meta_u32s(c, txn, "dead", 0, &d, &n);
	if (rc)
		return rc;
	free(c->dead);
	c->dead = d;
	c->ndead = n;
	return 0;
}

/* bsearch for u32 arrays that may be empty (and NULL). */
static int u32_in(uint32_t x, const uint32_t *a, size_t n)
{
	return n && bsearch(&x, a, n, sizeof(x), u32_cmp) != NULL;
}

static int is_dead(const struct cache *c, const MDB_val *v)
{
	if (!c->ndead)
		return 0;
	return u32_in(le_get32((const uint8_t *)v->mv_data + LOC_LEN), c->dead, c->ndead);
}

/* ---- errors ------------------------------------------------------------ */

/* LMDB says the file is damaged: the caller may wipe and rebuild. */
static int mdb_is_damage(int rc)
{
	return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	       rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	       rc == MDB_INCOMPATIBLE;
}

/* Fills err for LMDB result rc ("<what> <dir>: <mdb text>") and returns the
 * cairn code: operating-system errors through cairn_err_errno (so ENOSPC
 * stays CAIRN_ENOSPC), damage as CAIRN_ECORRUPT, the rest CAIRN_EIO. */
static int mdb_fail(struct cairn_err *err, int rc, const char *what,
		    const char *dir)
{
	if (rc > 0)
		return cairn_err_errno(err, rc, "%s LMDB cache %s", what, dir);
	return cairn_err_set(err, mdb_is_damage(rc) ? CAIRN_ECORRUPT : CAIRN_EIO,
			     "%s LMDB cache %s: %s", what, dir, mdb_strerror(rc));
}

static int corrupt(struct cairn_err *err, const struct cache *c,
		   const char *what)
{
	return cairn_err_set(err, CAIRN_ECORRUPT, "LMDB cache %s: %s", c->dir,
			     what);
}

/* Writing from a child after fork() would break LMDB's locks. */
static int forked(struct cairn_err *err, const struct cache *c)
{
	return cairn_err_set(err, CAIRN_EUSAGE,
			     "LMDB cache %s: handle used after fork()", c->dir);
}

static int busy(struct cairn_err *err, const struct cache *c)
{
	return cairn_err_set(err, CAIRN_EUSAGE,
			     "LMDB cache %s: called from a cache_each_* callback",
			     c->dir);
}

/* ---- folder and locks -------------------------------------------------- */

static int mkdir_p(const char *dir, struct cairn_err *err)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);
	struct stat st;

	if (n == 0 || n >= sizeof(p))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "cache folder name is empty or too long");
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue; /* "a//b" or a trailing slash */
		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return cairn_err_errno(err, errno,
					       "creating cache folder %s", p);
		p[i] = dir[i];
	}
	if (stat(dir, &st) != 0)
		return cairn_err_errno(err, errno, "creating cache folder %s", dir);
	if (!S_ISDIR(st.st_mode))
		return cairn_err_errno(err, ENOTDIR, "creating cache folder %s",
				       dir);
	return 0;
}

/* OFD lock of one byte; 0 or -1 with errno (EAGAIN: held elsewhere). */
static int lock_byte(int fd, short type, off_t at, int wait)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = at;
	fl.l_len = 1;
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int lock_open(struct cache *c, struct cairn_err *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", c->dir, LOCK_NAME) >=
	    (int)sizeof(path))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "cache folder name too long: %s", c->dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lock_fd < 0)
		return cairn_err_errno(err, errno, "opening lock file %s", path);
	if (lock_byte(c->lock_fd, F_WRLCK, LOCK_PID0 + (off_t)getpid(), 0) != 0) {
		if (errno == EAGAIN || errno == EACCES)
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "LMDB cache %s is already open in this "
					     "process (one handle per process)",
					     c->dir);
		return cairn_err_errno(err, errno, "locking %s", path);
	}
	if (lock_byte(c->lock_fd, F_RDLCK, LOCK_USERS, 1) != 0)
		return cairn_err_errno(err, errno, "locking %s", path);
	return 0;
}

/* ---- environment ------------------------------------------------------- */

static void env_close(struct cache *c)
{
	if (c->rtxn)
		mdb_txn_abort(c->rtxn);
	c->rtxn = NULL;
	if (c->env)
		mdb_env_close(c->env);
	c->env = NULL;
}

/* mdb_txn_begin, adopting a map grown by another process. */
static int txn_begin(struct cache *c, unsigned flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(c->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		rc = mdb_env_set_mapsize(c->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(c->env, NULL, flags, txn);
	}
	return rc;
}

/* Number of records in the main database: 0 for a new environment. */
static int main_entries(MDB_txn *txn, size_t *n)
{
	MDB_dbi main_db;
	MDB_stat st;
	int rc = mdb_dbi_open(txn, NULL, 0, &main_db);
	if (rc == 0)
		rc = mdb_stat(txn, main_db, &st);
	if (rc == 0)
		*n = st.ms_entries;
	return rc;
}

/* Opens the three named databases in txn (create: in a write txn). */
static int dbis_open(struct cache *c, MDB_txn *txn, unsigned flags)
{
	int rc = mdb_dbi_open(txn, "meta", flags, &c->meta);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "blobs", flags | BLOBS_FLAGS, &c->blobs);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "indexes", flags, &c->indexes);
	return rc;
}

/* Checks the meta records: 0 if they are ours, 1 if not. */
static int meta_check(struct cache *c, MDB_txn *txn,
		      const uint8_t repo_id[CAIRN_ID_LEN], int *rc)
{
	MDB_val k = {6, "format"}, v;
	*rc = mdb_get(txn, c->meta, &k, &v);
	if (*rc != 0)
		return 1;
	if (v.mv_size != 4 || le_get32(v.mv_data) != CACHE_FORMAT)
		return 1;
	k.mv_size = 4;
	k.mv_data = "repo";
	*rc = mdb_get(txn, c->meta, &k, &v);
	if (*rc != 0)
		return 1;
	if (v.mv_size != CAIRN_ID_LEN ||
	    memcmp(v.mv_data, repo_id, CAIRN_ID_LEN) != 0)
		return 1;
	return 0;
}

/* Fresh environment: creates the databases and meta in one transaction,
 * unless another process did it first (then *again = 1). */
static int env_init(struct cache *c, const uint8_t repo_id[CAIRN_ID_LEN],
		    int *again)
{
	MDB_txn *txn = NULL;
	size_t used;
	uint8_t fmt[4];
	MDB_val k, v;
	int rc = txn_begin(c, 0, &txn);
	if (rc)
		return rc;
	rc = main_entries(txn, &used);
	if (rc)
		goto out;
	if (used != 0) {
		*again = 1;
		goto out;
	}
	rc = dbis_open(c, txn, MDB_CREATE);
	if (rc)
		goto out;
	le_put32(fmt, CACHE_FORMAT);
	k.mv_size = 6, k.mv_data = "format";
	v.mv_size = 4, v.mv_data = fmt;
	rc = mdb_put(txn, c->meta, &k, &v, 0);
	if (rc)
		goto out;
	k.mv_size = 4, k.mv_data = "repo";
	v.mv_size = CAIRN_ID_LEN, v.mv_data = (void *)repo_id;
	rc = mdb_put(txn, c->meta, &k, &v, 0);
	if (rc)
		goto out;
	rc = mdb_txn_commit(txn);
	txn = NULL;
out:
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

/* Opens the environment in c->dir.  0; or an error with *damaged = 1 when
 * the cache must be wiped (err says why), or 0 for a plain failure. */
static int env_open(struct cache *c, const uint8_t repo_id[CAIRN_ID_LEN],
		    int *damaged, struct cairn_err *err)
{
	size_t mapsize = MAP_INITIAL;
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	int fd, rc, again;

	*damaged = 0;
retry_map:
	rc = mdb_env_create(&c->env);
	if (rc)
		return mdb_fail(err, rc, "creating", c->dir);
	rc = mdb_env_set_maxdbs(c->env, 4);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(c->env, MAX_READERS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(c->env, mapsize);
	if (rc)
		goto fail;
	rc = mdb_env_open(c->env, c->dir, MDB_NOTLS, 0600);
	if (rc == ENOMEM && mapsize > MAP_FALLBACK) {
		/* e.g. `ulimit -v`: start small, cache_add_index grows it */
		env_close(c);
		mapsize = MAP_FALLBACK;
		goto retry_map;
	}
	if (rc)
		goto fail;

	/* A data file shorter than its last page means a truncated file:
	 * touching the missing pages through the map would be SIGBUS. */
	rc = mdb_env_info(c->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(c->env, &st);
	if (rc == 0)
		rc = mdb_env_get_fd(c->env, &fd);
	if (rc)
		goto fail;
	if (fstat(fd, &fst) != 0) {
		rc = errno;
		goto fail;
	}
	if ((uint64_t)fst.st_size < ((uint64_t)info.me_last_pgno + 1) * st.ms_psize) {
		*damaged = 1;
		env_close(c);
		return corrupt(err, c, "data.mdb is shorter than its last page");
	}
	/* Reader slots of crashed processes would pin old pages forever. */
	(void)mdb_reader_check(c->env, NULL);

	for (int tries = 0; tries < 3; tries++) {
		rc = txn_begin(c, MDB_RDONLY, &txn);
		if (rc)
			goto fail;
		size_t used;
		rc = main_entries(txn, &used);
		if (rc)
			goto fail;
		if (used == 0) {
			mdb_txn_abort(txn);
			txn = NULL;
			again = 0;
			rc = env_init(c, repo_id, &again);
			if (rc)
				goto fail;
			if (!again)
				return 0;
			continue;
		}
		rc = dbis_open(c, txn, 0);
		if (rc == MDB_NOTFOUND) {
			*damaged = 1;
			mdb_txn_abort(txn);
			env_close(c);
			return corrupt(err, c, "a database is missing");
		}
		if (rc)
			goto fail;
		if (meta_check(c, txn, repo_id, &rc)) {
			if (rc != 0 && rc != MDB_NOTFOUND)
				goto fail;
			*damaged = 1;
			mdb_txn_abort(txn);
			env_close(c);
			return cairn_err_set(err, CAIRN_EVERSION,
					     "LMDB cache %s: made for another "
					     "repository or cache format", c->dir);
		}
		/* Committing a read txn keeps the database handles open. */
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc)
			goto fail;
		return 0;
	}
	rc = MDB_BAD_TXN; /* someone keeps emptying it; cannot happen */
fail:
	if (txn)
		mdb_txn_abort(txn);
	env_close(c);
	/* LMDB's own codes mean the files are unusable; OS errors are not
	 * cured by deleting (permissions, no memory, no space). */
	*damaged = rc < 0;
	return mdb_fail(err, rc, "opening", c->dir);
}

static int wipe(struct cache *c, struct cairn_err *err)
{
	static const char *const names[] = {"data.mdb", "lock.mdb"};
	char path[PATH_MAX];
	for (size_t i = 0; i < 2; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", c->dir, names[i]) >=
		    (int)sizeof(path))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "cache folder name too long: %s", c->dir);
		if (unlink(path) != 0 && errno != ENOENT)
			return cairn_err_errno(err, errno,
					       "deleting damaged cache file %s", path);
	}
	return 0;
}

/* Sets byte `at` of the lock file to `type`, failing with err. */
static int lock_set(struct cache *c, short type, off_t at, int wait,
		    struct cairn_err *err)
{
	if (lock_byte(c->lock_fd, type, at, wait) == 0)
		return 0;
	return cairn_err_errno(err, errno, "locking %s/" LOCK_NAME, c->dir);
}

/* Called with the users' read lock held and the environment closed after
 * env_open found it damaged (err says why).  Rebuilders queue on
 * LOCK_REBUILD, so two processes that open a damaged cache at once do not
 * keep each other from the write lock; the first wipes and recreates it,
 * the next ones find it valid.  Returns with the read lock held on
 * success. */
static int rebuild(struct cache *c, const uint8_t repo_id[CAIRN_ID_LEN],
		   int *rebuilt, struct cairn_err *err)
{
	int rc, damaged;

	rc = lock_set(c, F_UNLCK, LOCK_USERS, 0, err);
	if (rc == 0)
		rc = lock_set(c, F_WRLCK, LOCK_REBUILD, 1, err);
	if (rc == 0)
		rc = lock_set(c, F_RDLCK, LOCK_USERS, 1, err);
	if (rc)
		return rc;
	rc = env_open(c, repo_id, &damaged, err);
	if (rc == 0 || !damaged)
		goto out; /* rebuilt by the process before us, or a plain error */

	/* Other openers hold the read lock for a few milliseconds while they
	 * look at the files; a process that has the cache open holds it until
	 * it closes.  Wait for the first kind only. */
	rc = lock_set(c, F_UNLCK, LOCK_USERS, 0, err);
	if (rc)
		goto out;
	for (int i = 0;; i++) {
		if (lock_byte(c->lock_fd, F_WRLCK, LOCK_USERS, 0) == 0)
			break;
		if (errno != EAGAIN && errno != EACCES) {
			rc = cairn_err_errno(err, errno, "locking %s/" LOCK_NAME, c->dir);
			goto out;
		}
		if (i == WIPE_WAIT_MS / 10) {
			cairn_err_prefix(err, "cannot rebuild: in use by another "
					      "process");
			rc = CAIRN_ELOCKED;
			if (err)
				err->code = rc;
			goto out;
		}
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	/* We hold the write lock: no other process has the files open. */
	rc = wipe(c, err);
	if (rc == 0)
		rc = env_open(c, repo_id, &damaged, err);
	if (rc == 0 && rebuilt)
		*rebuilt = 1;
	/* Downgrading write to read never waits. */
	if (rc == 0)
		rc = lock_set(c, F_RDLCK, LOCK_USERS, 0, err);
out:
	/* On failure the caller closes the lock file, dropping every lock. */
	if (rc == 0)
		rc = lock_set(c, F_UNLCK, LOCK_REBUILD, 0, err);
	return rc;
}

int cache_open(struct cache **out, const char *dir,
	       const uint8_t repo_id[CAIRN_ID_LEN], int *rebuilt,
	       struct cairn_err *err)
{
	struct cache *c = NULL;
	int rc, damaged = 0;

	*out = NULL;
	if (rebuilt)
		*rebuilt = 0;
	if (strlen(dir) + sizeof("/" LOCK_NAME) > sizeof(c->dir))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "cache folder name too long: %s", dir);
	c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_err_set(err, CAIRN_ENOMEM, "opening LMDB cache %s", dir);
	c->lock_fd = -1;
	c->pid = getpid();
	snprintf(c->dir, sizeof(c->dir), "%s", dir);

	rc = mkdir_p(dir, err);
	if (rc == 0)
		rc = lock_open(c, err);
	if (rc == 0)
		rc = env_open(c, repo_id, &damaged, err);
	if (rc && damaged)
		rc = rebuild(c, repo_id, rebuilt, err);
	if (rc == 0) {
		MDB_txn *txn = NULL;
		rc = txn_begin(c, MDB_RDONLY, &txn);
		if (rc == 0)
			rc = dead_load(c, txn);
		if (txn)
			mdb_txn_abort(txn);
		if (rc)
			rc = mdb_fail(err, rc, "reading", c->dir);
	}
	if (rc) {
		cache_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	/* In a child after fork(), mdb_env_close would free the parent's
	 * reader slots (they carry the parent's pid): only free memory. */
	if (c->pid == getpid())
		env_close(c);
	if (c->lock_fd >= 0)
		close(c->lock_fd); /* ours, or a child's reference: the parent
				    * keeps its locks either way */
	free(c->dead);
	free(c);
}

/* ---- reads ------------------------------------------------------------- */

/* Renews the handle's read transaction (a fresh snapshot). */
static int rtxn_begin(struct cache *c, struct cairn_err *err)
{
	int rc;
	if (c->rtxn) {
		rc = mdb_txn_renew(c->rtxn);
		if (rc == 0)
			return 0;
		mdb_txn_abort(c->rtxn);
		c->rtxn = NULL;
	}
	rc = txn_begin(c, MDB_RDONLY, &c->rtxn);
	if (rc) {
		c->rtxn = NULL;
		return mdb_fail(err, rc, "reading", c->dir);
	}
	return 0;
}

int cache_lookup(struct cache *c, const uint8_t id[CAIRN_ID_LEN],
		 struct blob_loc *loc, struct cairn_err *err)
{
	MDB_val k = {CAIRN_ID_LEN, (void *)id}, v;
	int rc;

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	rc = rtxn_begin(c, err);
	if (rc)
		return rc;
	if (!c->ndead) {
		rc = mdb_get(c->rtxn, c->blobs, &k, &v);
	} else {
		/* The first value whose index object was not forgotten. */
		MDB_cursor *cur;
		rc = mdb_cursor_open(c->rtxn, c->blobs, &cur);
		if (rc == 0) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
			while (rc == 0 && v.mv_size == VAL_LEN && is_dead(c, &v))
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
			mdb_cursor_close(cur);
		}
	}
	if (rc == 0)
		rc = loc_decode(loc, &v) ? corrupt(err, c, "malformed blob location")
					 : 0;
	else if (rc == MDB_NOTFOUND)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "blob not in cache %s",
				   c->dir);
	else
		rc = mdb_fail(err, rc, "reading", c->dir);
	mdb_txn_reset(c->rtxn);
	return rc;
}

int cache_lookup_all(struct cache *c, const uint8_t id[CAIRN_ID_LEN],
		     struct blob_loc *locs, size_t max, size_t *n,
		     struct cairn_err *err)
{
	MDB_val k = {CAIRN_ID_LEN, (void *)id}, v;
	MDB_cursor *cur = NULL;
	uint8_t prev[LOC_LEN];
	int rc;

	assert(c);
	*n = 0;
	if (c->in_walk)
		return busy(err, c);
	rc = rtxn_begin(c, err);
	if (rc)
		return rc;
	rc = mdb_cursor_open(c->rtxn, c->blobs, &cur);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
		struct blob_loc l;
		if (loc_decode(&l, &v)) {
			rc = -1;
			break;
		}
		if (is_dead(c, &v))
			continue;
		if (*n && memcmp(prev, v.mv_data, LOC_LEN) == 0)
			continue; /* the same place, from another index object */
		memcpy(prev, v.mv_data, LOC_LEN);
		if (*n < max)
			locs[*n] = l;
		(*n)++;
	}
	if (rc == -1)
		rc = corrupt(err, c, "malformed blob location");
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	else
		rc = mdb_fail(err, rc, "reading", c->dir);
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_reset(c->rtxn);
	return rc;
}

int cache_has_index(struct cache *c, const char *index_name,
		    struct cairn_err *err)
{
	MDB_val k = {strlen(index_name), (void *)index_name}, v;
	int rc;

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	if (k.mv_size == 0 || k.mv_size > (size_t)mdb_env_get_maxkeysize(c->env))
		return 0; /* could never have been added */
	rc = rtxn_begin(c, err);
	if (rc)
		return rc;
	rc = mdb_get(c->rtxn, c->indexes, &k, &v);
	if (rc == 0)
		rc = 1;
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	else
		rc = mdb_fail(err, rc, "reading", c->dir);
	mdb_txn_reset(c->rtxn);
	return rc;
}

int cache_count(struct cache *c, uint64_t *n, struct cairn_err *err)
{
	MDB_stat st;
	int rc;

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	rc = rtxn_begin(c, err);
	if (rc)
		return rc;
	rc = mdb_stat(c->rtxn, c->blobs, &st);
	if (rc == 0)
		*n = st.ms_entries;
	else
		rc = mdb_fail(err, rc, "reading", c->dir);
	mdb_txn_reset(c->rtxn);
	return rc;
}

/* Walks every record of dbi in a read transaction of its own; visit gets
 * each key and value and returns non-zero to stop. */
static int walk(struct cache *c, MDB_dbi dbi,
		int (*visit)(struct cache *c, const MDB_val *k, const MDB_val *v,
			     void *ctx, struct cairn_err *err),
		void *ctx, struct cairn_err *err)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	if (c->in_walk)
		return busy(err, c);
	rc = txn_begin(c, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc) {
		rc = mdb_fail(err, rc, "reading", c->dir);
		goto out;
	}
	c->in_walk = 1;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int stop = visit(c, &k, &v, ctx, err);
		if (stop) {
			rc = stop;
			goto out;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : mdb_fail(err, rc, "reading", c->dir);
out:
	c->in_walk = 0;
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

struct index_walk {
	int (*cb)(void *arg, const char *index_name);
	void *arg;
};

static int visit_index(struct cache *c, const MDB_val *k, const MDB_val *v,
		       void *ctx, struct cairn_err *err)
{
	struct index_walk *w = ctx;
	char name[512];
	(void)v;
	if (k->mv_size == 0 || k->mv_size >= sizeof(name) ||
	    memchr(k->mv_data, '\0', k->mv_size))
		return corrupt(err, c, "malformed index name");
	memcpy(name, k->mv_data, k->mv_size);
	name[k->mv_size] = '\0';
	return w->cb(w->arg, name);
}

int cache_each_index(struct cache *c,
		     int (*cb)(void *arg, const char *index_name), void *arg,
		     struct cairn_err *err)
{
	struct index_walk w = {cb, arg};
	assert(c);
	return walk(c, c->indexes, visit_index, &w, err);
}

struct blob_walk {
	int (*cb)(void *arg, const struct index_entry *e);
	void *arg;
	int have_prev;
	uint8_t prev[CAIRN_ID_LEN + LOC_LEN]; /* id and location last given */
};

/* Values of one key are sorted, so the same location vouched for by two
 * index objects comes twice in a row: cb sees it once. */
static int visit_blob(struct cache *c, const MDB_val *k, const MDB_val *v,
		      void *ctx, struct cairn_err *err)
{
	struct blob_walk *w = ctx;
	struct index_entry e;
	if (k->mv_size != CAIRN_ID_LEN || loc_decode(&e.loc, v))
		return corrupt(err, c, "malformed blob record");
	if (is_dead(c, v))
		return 0;
	if (w->have_prev && memcmp(w->prev, k->mv_data, CAIRN_ID_LEN) == 0 &&
	    memcmp(w->prev + CAIRN_ID_LEN, v->mv_data, LOC_LEN) == 0)
		return 0;
	w->have_prev = 1;
	memcpy(w->prev, k->mv_data, CAIRN_ID_LEN);
	memcpy(w->prev + CAIRN_ID_LEN, v->mv_data, LOC_LEN);
	memcpy(e.id, k->mv_data, CAIRN_ID_LEN);
	return w->cb(w->arg, &e);
}

int cache_each_blob(struct cache *c,
		    int (*cb)(void *arg, const struct index_entry *e),
		    void *arg, struct cairn_err *err)
{
	struct blob_walk w = {cb, arg, 0, {0}};
	assert(c);
	return walk(c, c->blobs, visit_blob, &w, err);
}

/* ---- writes ------------------------------------------------------------ */

/* Doubles the map after MDB_MAP_FULL (no transaction of ours is active). */
static int map_grow(struct cache *c)
{
	MDB_envinfo info;
	int rc = mdb_env_info(c->env, &info);
	if (rc)
		return rc;
	if (info.me_mapsize > SIZE_MAX / 2)
		return MDB_MAP_FULL;
	return mdb_env_set_mapsize(c->env, info.me_mapsize * 2);
}

/* The source number of index object `nk` in txn: the one it has, or a new
 * one (recorded with the name). */
static int source_of(struct cache *c, MDB_txn *txn, MDB_val *nk, uint32_t *src)
{
	MDB_val v, mk = {4, "next"};
	uint8_t b[4];
	int rc = mdb_get(txn, c->indexes, nk, &v);
	if (rc == 0) {
		if (v.mv_size != 4)
			return MDB_CORRUPTED;
		*src = le_get32(v.mv_data);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	*src = 1;
	rc = mdb_get(txn, c->meta, &mk, &v);
	if (rc == 0 && v.mv_size == 4)
		*src = le_get32(v.mv_data);
	else if (rc != MDB_NOTFOUND && rc != 0)
		return rc;
	if (*src == 0 || *src == UINT32_MAX)
		return MDB_CORRUPTED; /* 4 billion merges: wiping is fine */
	le_put32(b, *src + 1);
	v.mv_size = 4, v.mv_data = b;
	rc = mdb_put(txn, c->meta, &mk, &v, 0);
	if (rc)
		return rc;
	le_put32(b, *src);
	return mdb_put(txn, c->indexes, nk, &v, 0);
}

/* Runs one write transaction of fn(c, txn, ctx), growing the map once
 * after MDB_MAP_FULL.  Returns an LMDB result. */
static int write_txn(struct cache *c, int (*fn)(struct cache *c, MDB_txn *txn, void *ctx),
		     void *ctx)
{
	MDB_txn *txn = NULL;
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = txn_begin(c, 0, &txn);
		if (rc)
			break;
		rc = fn(c, txn, ctx);
		if (rc == 0)
			rc = mdb_txn_commit(txn); /* frees txn, even on failure */
		else
			mdb_txn_abort(txn);
		txn = NULL;
		if (rc != MDB_MAP_FULL || attempt == 1)
			break;
		rc = map_grow(c);
		if (rc)
			break;
	}
	return rc;
}

struct add_ctx {
	MDB_val name;
	const struct index_entry *entries;
	size_t n;
};

static int add_entries(struct cache *c, MDB_txn *txn, void *ctx)
{
	struct add_ctx *a = ctx;
	uint8_t val[VAL_LEN];
	uint32_t src;
	int rc = source_of(c, txn, &a->name, &src);
	for (size_t i = 0; i < a->n && rc == 0; i++) {
		MDB_val k = {CAIRN_ID_LEN, (void *)a->entries[i].id};
		MDB_val v = {VAL_LEN, val};
		loc_encode(val, &a->entries[i].loc, src);
		rc = mdb_put(txn, c->blobs, &k, &v, MDB_NODUPDATA);
		if (rc == MDB_KEYEXIST)
			rc = 0; /* this index object was merged before */
	}
	return rc;
}

int cache_add_index(struct cache *c, const char *index_name,
		    const struct index_entry *entries, size_t n,
		    struct cairn_err *err)
{
	struct add_ctx a = {{strlen(index_name), (void *)index_name}, entries, n};

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	if (c->pid != getpid())
		return forked(err, c);
	if (a.name.mv_size == 0 ||
	    a.name.mv_size > (size_t)mdb_env_get_maxkeysize(c->env))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "index name empty or too long for the cache: %s",
				     index_name);
	for (size_t i = 0; i < n; i++)
		if (!type_ok(entries[i].loc.type))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "index %s: blob type %u unknown",
					     index_name, entries[i].loc.type);
	int rc = write_txn(c, add_entries, &a);
	if (rc == MDB_MAP_FULL)
		return cairn_err_set(err, CAIRN_EIO,
				     "adding index %s to LMDB cache %s: map full "
				     "even after growing it", index_name, c->dir);
	if (rc)
		return mdb_fail(err, rc, "writing to", c->dir);
	return 0;
}

struct forget_ctx {
	const char *const *names;
	size_t n;
};

/* Moves the sources of the named index objects to "dead" and deletes the
 * names, in one transaction. */
static int forget_names(struct cache *c, MDB_txn *txn, void *ctx)
{
	struct forget_ctx *f = ctx;
	uint32_t *dead = NULL;
	size_t ndead = 0;
	int rc = meta_u32s(c, txn, "dead", 0, &dead, &ndead);
	uint32_t *all = rc ? NULL : realloc(dead, (ndead + f->n + 1) * sizeof(*all));
	if (!rc && !all)
		rc = ENOMEM;
	if (rc) {
		free(dead);
		return rc;
	}
	for (size_t i = 0; i < f->n && rc == 0; i++) {
		MDB_val nk = {strlen(f->names[i]), (void *)f->names[i]}, v;
		if (nk.mv_size == 0 || nk.mv_size > (size_t)mdb_env_get_maxkeysize(c->env))
			continue;
		rc = mdb_get(txn, c->indexes, &nk, &v);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc == 0 && v.mv_size != 4)
			rc = MDB_CORRUPTED;
		if (rc == 0) {
			all[ndead++] = le_get32(v.mv_data);
			rc = mdb_del(txn, c->indexes, &nk, NULL);
		}
	}
	if (rc == 0 && ndead > 1)
		qsort(all, ndead, sizeof(*all), u32_cmp);
	if (rc == 0)
		rc = meta_put_u32s(c, txn, "dead", NULL, 0, all, ndead);
	free(all);
	return rc;
}

int cache_forget_indexes(struct cache *c, const char *const *names, size_t n,
			 struct cairn_err *err)
{
	struct forget_ctx f = {names, n};
	MDB_txn *txn = NULL;

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	if (c->pid != getpid())
		return forked(err, c);
	int rc = write_txn(c, forget_names, &f);
	if (rc == 0)
		rc = txn_begin(c, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = dead_load(c, txn);
	if (txn)
		mdb_txn_abort(txn);
	return rc ? mdb_fail(err, rc, "writing to", c->dir) : 0;
}

struct sweep_ctx {
	size_t budget, seen; /* values to look at; looked at by the step */
	uint8_t *del;       /* keys and values to delete */
	uint64_t removed;
	int done;
};

/* One step of a sweep pass.  meta "sweep" holds where the pass is (32-byte
 * key, or none yet) and the sources it covers: those dead when the pass
 * began; at its end they leave "dead" (sources forgotten meanwhile may
 * have values behind the walk: they wait for the next pass). */
static int sweep_step(struct cache *c, MDB_txn *txn, void *ctx)
{
	struct sweep_ctx *w = ctx;
	MDB_val sk = {5, "sweep"}, k, v;
	uint32_t *dead = NULL, *cover = NULL;
	size_t ndead = 0, ncover = 0, n = 0, seen = 0;
	uint8_t at[CAIRN_ID_LEN + 1] = {0}; /* flag, then the key */
	MDB_cursor *cur = NULL;
	int rc = meta_u32s(c, txn, "dead", 0, &dead, &ndead);
	if (rc)
		goto out;
	rc = mdb_get(txn, c->meta, &sk, &v);
	if (rc == 0) {
		if (v.mv_size < sizeof(at)) {
			rc = MDB_CORRUPTED;
			goto out;
		}
		memcpy(at, v.mv_data, sizeof(at));
		rc = meta_u32s(c, txn, "sweep", sizeof(at), &cover, &ncover);
	} else if (rc == MDB_NOTFOUND) {
		if (!ndead) {
			w->done = 1;
			w->seen = w->budget;
			rc = 0;
			goto out;
		}
		/* A new pass covers what is dead now. */
		cover = malloc(ndead * sizeof(*cover));
		rc = cover ? 0 : ENOMEM;
		if (cover) {
			memcpy(cover, dead, ndead * sizeof(*cover));
			ncover = ndead;
		}
	}
	if (rc)
		goto out;
	rc = mdb_cursor_open(txn, c->blobs, &cur);
	if (rc)
		goto out;
	if (at[0]) {
		k.mv_size = CAIRN_ID_LEN, k.mv_data = at + 1;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	for (; rc == 0 && seen < w->budget && n < SWEEP_TXN;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), seen++) {
		if (k.mv_size != CAIRN_ID_LEN || v.mv_size != VAL_LEN) {
			rc = MDB_CORRUPTED;
			break;
		}
		at[0] = 1;
		memcpy(at + 1, k.mv_data, CAIRN_ID_LEN);
		if (!u32_in(le_get32((const uint8_t *)v.mv_data + LOC_LEN), dead, ndead))
			continue;
		memcpy(w->del + n * (CAIRN_ID_LEN + VAL_LEN), k.mv_data, CAIRN_ID_LEN);
		memcpy(w->del + n * (CAIRN_ID_LEN + VAL_LEN) + CAIRN_ID_LEN, v.mv_data, VAL_LEN);
		n++;
	}
	mdb_cursor_close(cur);
	w->seen = seen + (rc == MDB_NOTFOUND); /* the end counts: progress */
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	int end = rc == MDB_NOTFOUND;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t *p = w->del + i * (CAIRN_ID_LEN + VAL_LEN);
		MDB_val dk = {CAIRN_ID_LEN, p}, dv = {VAL_LEN, p + CAIRN_ID_LEN};
		rc = mdb_del(txn, c->blobs, &dk, &dv);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc)
		goto out;
	w->removed += n;
	if (!end) {
		rc = meta_put_u32s(c, txn, "sweep", at, sizeof(at), cover, ncover);
		goto out;
	}
	/* The pass is over: its sources have no values left. */
	size_t keep = 0;
	for (size_t i = 0; i < ndead; i++)
		if (!u32_in(dead[i], cover, ncover))
			dead[keep++] = dead[i];
	rc = meta_put_u32s(c, txn, "dead", NULL, 0, dead, keep);
	if (rc == 0) {
		rc = mdb_del(txn, c->meta, &sk, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	}
	w->done = keep == 0;
out:
	free(dead);
	free(cover);
	return rc;
}

int cache_sweep(struct cache *c, size_t budget, uint64_t *removed, int *done,
		struct cairn_err *err)
{
	struct sweep_ctx w;
	MDB_txn *txn = NULL;
	int rc = 0;

	assert(c);
	if (removed)
		*removed = 0;
	if (done)
		*done = c->ndead == 0;
	if (c->in_walk)
		return busy(err, c);
	if (c->pid != getpid())
		return forked(err, c);
	if (!c->ndead)
		return 0;
	memset(&w, 0, sizeof(w));
	w.del = malloc((size_t)SWEEP_TXN * (CAIRN_ID_LEN + VAL_LEN));
	if (!w.del)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	/* Steps of at most SWEEP_TXN deletions each, until the budget. */
	size_t left = budget < SWEEP_MIN ? SWEEP_MIN : budget;
	while (!w.done && left > 0 && rc == 0) {
		w.budget = left;
		w.seen = 0;
		rc = write_txn(c, sweep_step, &w);
		left -= w.seen < left ? w.seen : left;
	}
	if (rc == 0)
		rc = txn_begin(c, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = dead_load(c, txn);
	if (txn)
		mdb_txn_abort(txn);
	free(w.del);
	if (rc)
		return mdb_fail(err, rc, "writing to", c->dir);
	if (removed)
		*removed = w.removed;
	if (done)
		*done = c->ndead == 0;
	return 0;
}

int cache_clear(struct cache *c, struct cairn_err *err)
{
	MDB_txn *txn = NULL;
	int rc;

	assert(c);
	if (c->in_walk)
		return busy(err, c);
	if (c->pid != getpid())
		return forked(err, c);
	rc = txn_begin(c, 0, &txn);
	if (rc == 0)
		rc = mdb_drop(txn, c->blobs, 0);
	if (rc == 0)
		rc = mdb_drop(txn, c->indexes, 0);
	if (rc == 0)
		rc = meta_put_u32s(c, txn, "dead", NULL, 0, NULL, 0);
	if (rc == 0)
		rc = meta_put_u32s(c, txn, "sweep", NULL, 0, NULL, 0);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (rc == 0) {
		free(c->dead);
		c->dead = NULL;
		c->ndead = 0;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc ? mdb_fail(err, rc, "clearing", c->dir) : 0;
}
