/*
 * prune.c — see prune.h; FORMAT.md section 15 has the protocol and the
 * argument that nothing a concurrent writer references is deleted.
 *
 * The mark set lives in a throw-away LMDB environment (<cache>/prune-<pid>)
 * with two databases: "marks", key = blob id, value = one byte: 0
 * referenced, 1 referenced and found in an index object; and "doomed",
 * key = blob id, values (sorted duplicates) = the u32 numbers of the
 * packs that go and hold it, so that a blob referenced again during the
 * run finds the packs to keep.  Written in transactions of MARK_TXN puts
 * so that dirty pages stay few; nothing is synced (it is deleted at the
 * end, and a crash leaves only a folder that the next prune removes).
 * Packs are few (tens of MiB each), so their table is an in-memory idset;
 * so is the set of objects already marked (hashes of their keys).
 */
#include "repo/prune.h"
#include "repo/idset.h"
#include "repo/lock.h"
#include "repo/pack.h"
#include "repo/wal.h"

#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MARK_TXN 20000
#define MARK_MAP_SIZE (64ull << 30) /* sparse: address space, not memory */
#define INDEX_CHUNK 100000          /* entries per replacement index object */
#define SNAP_MAGIC "CAIRNSN1"
#define SEC 1000000000ull
/* A writer's lease older than this is taken for a long backup: prune does
 * not try for its window (which would make archive-push wait) meanwhile. */
#define LONG_WRITER_NS (10 * SEC)
/* Unlocked catch-up rounds before the window, at most this often. */
#define CATCHUP_EVERY_NS (5 * SEC)

enum pack_action { P_KEEP = 0, P_DELETE, P_REPACK };
/* A pack kept after all (rescued) whose index objects are being replaced
 * needs an index object of its own: from its directory, or (when that
 * cannot be read) from its entries in the replaced objects. */
enum suppl { S_NONE = 0, S_NEEDED, S_FROM_INDEX, S_WRITTEN };

struct pk {
	uint8_t id[32];
	uint64_t size, total, used;
	int indexed;  /* named by an index object when planning */
	enum suppl suppl;
	enum pack_action act;
};

struct pr {
	struct repo *r;
	const struct prune_opts *o;
	struct prune_result *res;
	struct cairn_err *err;
	/* marks */
	char dir[4200];
	MDB_env *env;
	MDB_dbi marks, doomed;
	MDB_txn *txn;
	size_t dirty;
	int catching; /* marking what writers added during the run */
	/* packs */
	struct idset pack_ix; /* id → index in packs */
	struct pk *packs;
	size_t npacks, cap;
	/* index objects listed when planning */
	char **idx;
	size_t nidx;
	uint8_t *affected; /* per index object: names a pack that goes */
	/* snapshots, WAL entries and index objects already taken into account
	 * (BLAKE2b of their keys) */
	struct idset seen;
	char **fresh; /* keys listed by catch-up not seen before */
	size_t nfresh;
};

static void report(struct pr *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct pr *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->o->report)
		p->o->report(p->o->arg, msg);
}

static void step(struct pr *p, const char *name)
{
	if (p->o->step)
		p->o->step(p->o->arg, name);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- objects already seen -------------------------------------------------- */

static void key_hash(uint8_t h[32], const char *key)
{
	crypto_generichash(h, 32, (const unsigned char *)key, strlen(key), NULL, 0);
}

/* 1 if `key` was seen before, else records it and returns 0; <0 on error. */
static int see(struct pr *p, const char *key)
{
	uint8_t h[32];
	key_hash(h, key);
	if (idset_get(&p->seen, h, NULL))
		return 1;
	if (idset_put(&p->seen, h, 0))
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	return 0;
}

static int seen(struct pr *p, const char *key)
{
	uint8_t h[32];
	key_hash(h, key);
	return idset_get(&p->seen, h, NULL);
}

/* ---- the mark set -------------------------------------------------------- */

static int mdb_fail(struct pr *p, int mrc, const char *what)
{
	return cairn_err_set(p->err, mrc == MDB_MAP_FULL ? CAIRN_ENOSPC : CAIRN_EIO,
			     "prune's mark set (%s): %s: %s", p->dir, what, mdb_strerror(mrc));
}

static void rm_dir(const char *dir)
{
	char f[4300];
	snprintf(f, sizeof(f), "%s/data.mdb", dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/lock.mdb", dir);
	unlink(f);
	rmdir(dir);
}

/* Mark sets left by prunes that were killed (their process is gone). */
static void rm_stale_dirs(const char *cache)
{
	DIR *d = opendir(cache);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		if (strncmp(de->d_name, "prune-", 6) != 0)
			continue;
		long pid = strtol(de->d_name + 6, &end, 10);
		if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or a pid reused): leave it */
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/%s", cache, de->d_name);
		rm_dir(dir);
	}
	closedir(d);
}

static int marks_open(struct pr *p)
{
	rm_stale_dirs(repo_cache_dir(p->r));
	snprintf(p->dir, sizeof(p->dir), "%s/prune-%ld", repo_cache_dir(p->r), (long)getpid());
	rm_dir(p->dir);
	if (mkdir(p->dir, 0700) != 0)
		return cairn_err_set(p->err, CAIRN_EIO, "cannot create %s: %s", p->dir,
				     strerror(errno));
	int mrc = mdb_env_create(&p->env);
	mrc = mrc ? mrc : mdb_env_set_mapsize(p->env, MARK_MAP_SIZE);
	mrc = mrc ? mrc : mdb_env_set_maxdbs(p->env, 2);
	/* Writes go straight into the map (no write() of every dirty page at
	 * each commit) and are never synced: the set is thrown away. */
	mrc = mrc ? mrc : mdb_env_open(p->env, p->dir,
				       MDB_WRITEMAP | MDB_MAPASYNC | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS,
				       0600);
	mrc = mrc ? mrc : mdb_txn_begin(p->env, NULL, 0, &p->txn);
	mrc = mrc ? mrc : mdb_dbi_open(p->txn, "marks", MDB_CREATE, &p->marks);
	mrc = mrc ? mrc : mdb_dbi_open(p->txn, "doomed", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED,
				       &p->doomed);
	return mrc ? mdb_fail(p, mrc, "open") : 0;
}

static void marks_close(struct pr *p)
{
	if (p->txn)
		mdb_txn_abort(p->txn);
	p->txn = NULL;
	if (p->env)
		mdb_env_close(p->env);
	p->env = NULL;
	if (p->dir[0])
		rm_dir(p->dir);
}

/* 1 if written, 0 if the key (NOOVERWRITE) or pair (DUPSORT) was there. */
static int db_put(struct pr *p, MDB_dbi dbi, const uint8_t id[32], const void *v, size_t vn,
		  unsigned flags)
{
	MDB_val k = {32, (void *)id}, d = {vn, (void *)v};
	int mrc = mdb_put(p->txn, dbi, &k, &d, flags);
	if (mrc == MDB_KEYEXIST)
		return 0;
	if (mrc)
		return mdb_fail(p, mrc, "put");
	if (++p->dirty >= MARK_TXN) {
		p->dirty = 0;
		mrc = mdb_txn_commit(p->txn);
		p->txn = NULL;
		mrc = mrc ? mrc : mdb_txn_begin(p->env, NULL, 0, &p->txn);
		if (mrc)
			return mdb_fail(p, mrc, "commit");
	}
	return 1;
}

static int rescue_blob(struct pr *p, const uint8_t id[32]);

/* 1 if newly marked, 0 if it was, <0 on error.  While catching up, a blob
 * marked now keeps the packs that go and hold it. */
static int mark(struct pr *p, const uint8_t id[32])
{
	uint8_t v = 0;
	int rc = db_put(p, p->marks, id, &v, 1, MDB_NOOVERWRITE);
	if (rc == 1) {
		p->res->referenced++;
		if (p->catching) {
			int rrc = rescue_blob(p, id);
			if (rrc < 0)
				return rrc;
		}
	}
	return rc;
}

/* 1 if marked, 2 if marked and found in an index object already, 0 if
 * not marked, <0 on error. */
static int marked(struct pr *p, const uint8_t id[32])
{
	MDB_val k = {32, (void *)id}, d;
	int mrc = mdb_get(p->txn, p->marks, &k, &d);
	if (mrc == MDB_NOTFOUND)
		return 0;
	if (mrc)
		return mdb_fail(p, mrc, "get");
	return d.mv_size == 1 && *(const uint8_t *)d.mv_data ? 2 : 1;
}

/* ---- packs ----------------------------------------------------------------- */

static int add_pack(struct pr *p, const uint8_t id[32], struct pk **out)
{
	uint64_t ix;
	if (idset_get(&p->pack_ix, id, &ix)) {
		*out = &p->packs[ix];
		return 0;
	}
	if (p->npacks == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 256;
		struct pk *v = realloc(p->packs, nc * sizeof(*v));
		if (!v)
			return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
		p->packs = v;
		p->cap = nc;
	}
	struct pk *k = &p->packs[p->npacks];
	memset(k, 0, sizeof(*k));
	memcpy(k->id, id, 32);
	if (idset_put(&p->pack_ix, id, p->npacks))
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	p->npacks++;
	*out = k;
	return 0;
}

static struct pk *find_pack(struct pr *p, const uint8_t id[32])
{
	uint64_t ix;
	return idset_get(&p->pack_ix, id, &ix) ? &p->packs[ix] : NULL;
}

/* A pack that was to go is kept after all: a blob in it is referenced
 * again, or an index object written during the run names it.  Its entries
 * must stay indexed: the index objects that named it are being replaced
 * without them, so it gets an index object of its own (write_rescued). */
static void rescue_pack(struct pr *p, struct pk *k, const char *why)
{
	if (k->act == P_KEEP)
		return;
	char hex[65];
	hex_encode(hex, k->id, 32);
	if (k->act == P_REPACK) {
		p->res->packs_repacked--;
		p->res->bytes_repacked -= k->size;
	} else {
		p->res->packs_deleted--;
		p->res->bytes_deleted -= k->size;
		if (!k->indexed)
			p->res->packs_unindexed--;
	}
	k->act = P_KEEP;
	k->suppl = k->indexed ? S_NEEDED : S_NONE;
	p->res->packs_rescued++;
	report(p, "keep pack %.16s after all: %s", hex, why);
}

static int rescue_blob(struct pr *p, const uint8_t id[32])
{
	MDB_cursor *cur;
	MDB_val k = {32, (void *)id}, d;
	int mrc = mdb_cursor_open(p->txn, p->doomed, &cur);
	if (mrc)
		return mdb_fail(p, mrc, "cursor");
	for (mrc = mdb_cursor_get(cur, &k, &d, MDB_SET); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_DUP)) {
		uint32_t ix;
		if (d.mv_size != 4)
			continue;
		memcpy(&ix, d.mv_data, 4);
		if (ix < p->npacks)
			rescue_pack(p, &p->packs[ix], "a blob in it is referenced again");
	}
	mdb_cursor_close(cur);
	return mrc == MDB_NOTFOUND ? 0 : mdb_fail(p, mrc, "doomed");
}

/* ---- mark ---------------------------------------------------------------- */

/* A tree or list blob: a snapshot written since the cache was synchronised
 * names trees of index objects the cache has not merged yet. */
static int get_tree(struct pr *p, const uint8_t id[32], struct tree *t)
{
	int rc = repo_get_tree(p->r, id, t, p->err);
	if (rc == CAIRN_ENOTFOUND) {
		rc = repo_sync_index(p->r, p->err);
		rc = rc ? rc : repo_get_tree(p->r, id, t, p->err);
	}
	return rc;
}

static int node_blobs(struct pr *p, struct node *nd)
{
	int rc = repo_node_blobs(p->r, nd, p->err);
	if (rc == CAIRN_ENOTFOUND) {
		rc = repo_sync_index(p->r, p->err);
		rc = rc ? rc : repo_node_blobs(p->r, nd, p->err);
	}
	return rc;
}

static int walk_tree(struct pr *p, const uint8_t id[32], const char *snap)
{
	struct tree t = TREE_INIT;
	int rc = get_tree(p, id, &t);
	if (rc) {
		cairn_err_prefix(p->err, "snapshot %.8s", snap);
		if (rc == CAIRN_ENOTFOUND)
			rc = CAIRN_ECORRUPT;
		return rc;
	}
	for (size_t i = 0; i < t.n && rc >= 0; i++) {
		struct node *nd = &t.nodes[i];
		if (nd->type == NODE_DIR) {
			rc = mark(p, nd->subtree);
			if (rc == 1)
				rc = walk_tree(p, nd->subtree, snap);
		} else if (nd->type == NODE_FILE) {
			/* A list-form file: its list blob, and every blob the list
			 * (with its patch) names.  A list that cannot be read stops
			 * the prune: what it names is unknown. */
			if (nd->has_list) {
				rc = mark(p, nd->list_id);
				if (rc >= 0 && (rc = node_blobs(p, nd)) != 0) {
					cairn_err_prefix(p->err, "snapshot %.8s", snap);
					if (rc == CAIRN_ENOTFOUND)
						rc = CAIRN_ECORRUPT;
					break;
				}
			}
			for (size_t j = 0; j < nd->nblobs && rc >= 0; j++)
				rc = mark(p, nd->blobs[j].id);
			node_release_blobs(nd);
		}
	}
	tree_free(&t);
	return rc < 0 ? rc : 0;
}

static int mark_snapshot(struct pr *p, const struct snapshot *s)
{
	int rc = mark(p, s->root);
	if (rc == 1)
		rc = walk_tree(p, s->root, s->name);
	return rc < 0 ? rc : 0;
}

struct wal_walk {
	struct pr *p;
	const char *cluster;
	int rc;
};

static int mark_wal_one(void *arg, const char *name, uint64_t size)
{
	struct wal_walk *w = arg;
	struct pr *p = w->p;
	struct wal_entry e;
	char key[200];
	(void)size;
	snprintf(key, sizeof(key), "wal/%s/%s", w->cluster, name);
	int rc = see(p, key);
	if (rc)
		return rc < 0 ? (w->rc = rc) : 0; /* marked already */
	rc = repo_wal_stat(p->r, w->cluster, name, &e, p->err);
	if (rc == CAIRN_ENOTFOUND)
		return 0; /* removed since the listing */
	if (rc) {
		cairn_err_prefix(p->err, "cluster %s: WAL entry %s", w->cluster, name);
		return w->rc = rc;
	}
	p->res->wal_files++;
	if (p->catching)
		p->res->new_wal_files++;
	for (size_t i = 0; i < e.nblobs && rc >= 0; i++)
		rc = mark(p, e.blobs[i].id);
	wal_entry_free(&e);
	return w->rc = rc < 0 ? rc : 0;
}

static int mark_wal_cluster(void *arg, const char *cluster)
{
	struct pr *p = arg;
	struct wal_walk w = {p, cluster, 0};
	struct cairn_err e;
	int rc = repo_wal_list(p->r, cluster, mark_wal_one, &w, &e);
	if (w.rc)
		return w.rc;
	if (rc)
		*p->err = e;
	return rc;
}

struct bad_snap {
	int n;
	char name[65];
	struct cairn_err e;
};

static void bad_snapshot(void *arg, const char *name, const struct cairn_err *e)
{
	struct bad_snap *b = arg;
	if (!b->n++) {
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->e = *e;
	}
}

static int mark_all(struct pr *p)
{
	struct snapshot *s = NULL;
	size_t n = 0;
	struct bad_snap bad = {0, "", {0, ""}};
	int rc = repo_snapshots_load(p->r, &s, &n, bad_snapshot, &bad, p->err);
	if (rc)
		return rc;
	if (bad.n) {
		rc = cairn_err_set(p->err, CAIRN_ECORRUPT,
				   "snapshot %.16s cannot be read (%s): refusing to prune "
				   "what it may reference", bad.name, bad.e.msg);
		goto out;
	}
	p->res->snapshots = n;
	for (size_t i = 0; i < n && !rc; i++) {
		char key[100];
		snprintf(key, sizeof(key), "snapshots/%s", s[i].name);
		rc = see(p, key);
		rc = rc < 0 ? rc : mark_snapshot(p, &s[i]);
	}
	if (!rc)
		rc = repo_wal_clusters(p->r, mark_wal_cluster, p, p->err);
out:
	repo_snapshots_free(s, n);
	return rc;
}

/* ---- packs and index objects --------------------------------------------- */

static int list_pack(void *arg, const char *key, uint64_t size)
{
	struct pr *p = arg;
	uint8_t id[32];
	struct pk *k = NULL;
	const char *slash = strrchr(key, '/');
	if (!slash || hex_decode(id, 32, slash + 1) != 0)
		return 0; /* not a pack name */
	int rc = add_pack(p, id, &k);
	if (rc)
		return rc;
	k->size = size;
	p->res->packs++;
	p->res->pack_bytes += size;
	return 0;
}

static int list_index(void *arg, const char *key, uint64_t size)
{
	struct pr *p = arg;
	(void)size;
	const char *name = key + strlen("index/");
	if (strlen(name) != 64)
		return 0;
	if (strlist_add(&p->idx, &p->nidx, name))
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	int rc = see(p, key);
	return rc < 0 ? rc : 0;
}

/* Reads every index object: per pack, sealed bytes in all and in use;
 * every referenced blob that an index names is marked found. */
static int scan_index(struct pr *p)
{
	int rc = 0;
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		struct index_entry *e = NULL;
		size_t n = 0;
		rc = repo_index_read(p->r, p->idx[i], &e, &n, p->err);
		if (rc == CAIRN_ECORRUPT)
			cairn_err_prefix(p->err, "refusing to prune (run check)");
		for (size_t j = 0; j < n && !rc; j++) {
			struct pk *k = find_pack(p, e[j].loc.pack);
			if (!k)
				continue; /* a missing pack: check's business */
			k->indexed = 1;
			k->total += e[j].loc.sealed_len;
			int m = marked(p, e[j].id);
			if (m < 0) {
				rc = m;
			} else if (m) {
				uint8_t v = 1;
				k->used += e[j].loc.sealed_len;
				if (m == 1) {
					rc = db_put(p, p->marks, e[j].id, &v, 1, 0);
					rc = rc < 0 ? rc : 0;
				}
			}
		}
		free(e);
	}
	return rc;
}

/* Refuses when a referenced blob is in no index: the only copy may sit
 * in a pack that no index names, which prune would delete. */
static int check_found(struct pr *p)
{
	MDB_cursor *cur;
	MDB_val k, d;
	int mrc = mdb_cursor_open(p->txn, p->marks, &cur);
	if (mrc)
		return mdb_fail(p, mrc, "cursor");
	int rc = 0;
	for (mrc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		if (d.mv_size == 1 && *(uint8_t *)d.mv_data == 0) {
			char hex[65];
			hex_encode(hex, k.mv_data, 32);
			rc = cairn_err_set(p->err, CAIRN_ECORRUPT,
					   "blob %s is referenced but in no index object: refusing "
					   "to prune (run check)", hex);
			break;
		}
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND)
		rc = mdb_fail(p, mrc, "walk");
	return rc;
}

static void plan(struct pr *p)
{
	for (size_t i = 0; i < p->npacks; i++) {
		struct pk *k = &p->packs[i];
		char hex[65];
		hex_encode(hex, k->id, 32);
		if (!k->indexed) {
			k->act = P_DELETE;
			p->res->packs_unindexed++;
		} else if (k->used == 0) {
			k->act = P_DELETE;
		} else if (k->total > k->used &&
			   (double)(k->total - k->used) * 100.0 > p->o->max_unused * (double)k->total) {
			k->act = P_REPACK;
			p->res->packs_repacked++;
			p->res->bytes_repacked += k->size;
			report(p, "repack pack %.16s: %.1f%% unused", hex,
			       100.0 * (double)(k->total - k->used) / (double)k->total);
			continue;
		} else {
			continue;
		}
		p->res->packs_deleted++;
		p->res->bytes_deleted += k->size;
		report(p, "delete pack %.16s: %s", hex, k->indexed ? "nothing in it is used"
								   : "no index object names it");
	}
}

/* Index objects that name a pack that goes; and, for every blob of such a
 * pack, which packs that go hold it (the "doomed" database). */
static int find_affected(struct pr *p)
{
	p->affected = calloc(p->nidx ? p->nidx : 1, 1);
	if (!p->affected)
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		struct index_entry *e = NULL;
		size_t n = 0;
		rc = repo_index_read(p->r, p->idx[i], &e, &n, p->err);
		for (size_t j = 0; j < n && !rc; j++) {
			uint64_t ix;
			if (!idset_get(&p->pack_ix, e[j].loc.pack, &ix) || p->packs[ix].act == P_KEEP)
				continue;
			p->affected[i] = 1;
			uint32_t v = (uint32_t)ix;
			rc = db_put(p, p->doomed, e[j].id, &v, 4, MDB_NODUPDATA);
			rc = rc < 0 ? rc : 0;
		}
		free(e);
	}
	return rc;
}

/* ---- repack and rewrite -------------------------------------------------- */

static int repack_one(struct pr *p, struct sealer *s, struct pk *k, struct buf *pack,
		      struct buf *plain)
{
	char key[80], hex[65];
	struct index_entry *ents = NULL;
	size_t n = 0;
	uint8_t h[32];
	pack_key(key, k->id);
	hex_encode(hex, k->id, 32);
	int rc = storage_get(repo_get_storage(p->r), key, 0, STORAGE_WHOLE, pack, p->err);
	if (rc)
		goto out;
	plain_hash(h, pack->data, pack->len);
	if (memcmp(h, k->id, 32) != 0) {
		rc = cairn_err_set(p->err, CAIRN_ECORRUPT,
				   "pack %s: its bytes do not match its name: refusing to repack "
				   "it (run check)", hex);
		goto out;
	}
	rc = pack_read_dir(repo_get_keys(p->r), k->id, pack->data, pack->len, &ents, &n, p->err);
	for (size_t i = 0; i < n && !rc; i++) {
		int m = marked(p, ents[i].id);
		if (m <= 0) {
			rc = m;
			continue;
		}
		const struct blob_loc *l = &ents[i].loc;
		rc = blob_open(s, repo_get_keys(p->r), l->type, ents[i].id, pack->data + l->offset,
			       l->sealed_len, l->raw_len, plain, p->err);
		if (rc) {
			cairn_err_prefix(p->err, "pack %s: refusing to repack it (run check)", hex);
			break;
		}
		uint8_t id[32];
		rc = repo_put_blob_force(p->r, l->type, plain->data, plain->len, id, p->err);
		p->res->blobs_repacked++;
	}
out:
	free(ents);
	return rc;
}

static int repack(struct pr *p)
{
	struct buf pack = BUF_INIT, plain = BUF_INIT;
	struct sealer *s = sealer_new(1);
	if (!s)
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	uint64_t before = repo_get_write_stats(p->r)->stored_bytes;
	int rc = 0;
	for (size_t i = 0; i < p->npacks && !rc; i++)
		if (p->packs[i].act == P_REPACK)
			rc = repack_one(p, s, &p->packs[i], &pack, &plain);
	/* New packs, then the index object naming them, both durable. */
	rc = rc ? rc : repo_flush(p->r, p->err);
	p->res->bytes_written = repo_get_write_stats(p->r)->stored_bytes - before;
	sealer_free(s);
	buf_free(&pack);
	buf_free(&plain);
	return rc;
}

static int flush_entries(struct pr *p, struct index_entry *v, size_t *n)
{
	char name[65], key[80];
	if (!*n)
		return 0;
	int rc = repo_index_write(p->r, v, *n, name, p->err);
	if (!rc) {
		p->res->index_written++;
		report(p, "wrote index object %.16s (%zu entries)", name, *n);
		snprintf(key, sizeof(key), "index/%s", name);
		rc = see(p, key);
		rc = rc < 0 ? rc : 0;
	}
	*n = 0;
	return rc;
}

/* Entries of the affected index objects whose pack `want` accepts, into
 * new index objects (v holds INDEX_CHUNK entries). */
static int kept(const struct pk *k) { return k->act == P_KEEP; }

static int copy_affected(struct pr *p, int (*want)(const struct pk *k), struct index_entry *v,
			 size_t *nv)
{
	int rc = 0;
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		if (!p->affected[i])
			continue;
		struct index_entry *e = NULL;
		size_t n = 0;
		rc = repo_index_read(p->r, p->idx[i], &e, &n, p->err);
		for (size_t j = 0; j < n && !rc; j++) {
			struct pk *k = find_pack(p, e[j].loc.pack);
			/* A pack not listed stays indexed: prune deletes only
			 * packs it listed, and dropping the entries of a pack
			 * written after the listing would lose it. */
			if (k ? !want(k) : want != kept)
				continue;
			v[(*nv)++] = e[j];
			if (*nv == INDEX_CHUNK)
				rc = flush_entries(p, v, nv);
		}
		free(e);
	}
	return rc;
}

static int rescued_without_dir(const struct pk *k) { return k->suppl == S_FROM_INDEX; }

/* Replacement index objects: every entry of a kept pack in an affected
 * index object. */
static int rewrite_index(struct pr *p)
{
	struct index_entry *v = malloc(INDEX_CHUNK * sizeof(*v));
	size_t nv = 0;
	int rc = v ? 0 : cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : copy_affected(p, kept, v, &nv);
	rc = rc ? rc : flush_entries(p, v, &nv);
	free(v);
	return rc;
}

/* Index objects for the packs kept after all (rescue_pack): their
 * directories, or, where a directory cannot be read, their entries in the
 * index objects being replaced. */
static int write_rescued(struct pr *p)
{
	struct index_entry *v = malloc(INDEX_CHUNK * sizeof(*v));
	size_t nv = 0, nfallback = 0;
	int rc = v ? 0 : cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->npacks && !rc; i++) {
		struct pk *k = &p->packs[i];
		if (k->suppl != S_NEEDED)
			continue;
		struct index_entry *e = NULL;
		size_t n = 0;
		rc = pack_fetch_dir(repo_get_storage(p->r), repo_get_keys(p->r), k->id, k->size, &e, &n,
				    p->err);
		if (rc == CAIRN_ECORRUPT) {
			k->suppl = S_FROM_INDEX;
			nfallback++;
			rc = 0;
			continue;
		}
		for (size_t j = 0; j < n && !rc; j++) {
			v[nv++] = e[j];
			if (nv == INDEX_CHUNK)
				rc = flush_entries(p, v, &nv);
		}
		free(e);
		k->suppl = rc ? S_NEEDED : S_WRITTEN;
	}
	if (!rc && nfallback)
		rc = copy_affected(p, rescued_without_dir, v, &nv);
	rc = rc ? rc : flush_entries(p, v, &nv);
	for (size_t i = 0; i < p->npacks && !rc; i++)
		if (p->packs[i].suppl == S_FROM_INDEX)
			p->packs[i].suppl = S_WRITTEN;
	free(v);
	return rc;
}

/* ---- catching up with the writers ------------------------------------------ */

/* One snapshot object, read and opened (repo_snapshots_load reads all). */
static int load_snapshot(struct pr *p, const char *name, struct snapshot *s)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	char key[80], what[100];
	struct sealer *sl = sealer_new(1);
	snprintf(key, sizeof(key), "snapshots/%s", name);
	snprintf(what, sizeof(what), "snapshot %.16s", name);
	memset(s, 0, sizeof(*s));
	int rc = sl ? 0 : cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : storage_get(repo_get_storage(p->r), key, 0, STORAGE_WHOLE, &raw, p->err);
	rc = rc ? rc : obj_open(sl, repo_get_keys(p->r), SNAP_MAGIC, name, raw.data, raw.len, &plain,
				what, p->err);
	rc = rc ? rc : snapshot_decode(plain.data, plain.len, s, p->err);
	if (!rc)
		snprintf(s->name, sizeof(s->name), "%s", name);
	sealer_free(sl);
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

static int collect_name(void *arg, const char *key, uint64_t size)
{
	struct pr *p = arg;
	(void)size;
	const char *slash = strchr(key, '/');
	if (!slash || strlen(slash + 1) != 64 || seen(p, key))
		return 0;
	if (strlist_add(&p->fresh, &p->nfresh, key))
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	return 0;
}

/* Keys under `prefix` (64-character names) not seen yet, into p->fresh. */
static int list_new(struct pr *p, const char *prefix)
{
	strlist_free(p->fresh, p->nfresh);
	p->fresh = NULL;
	p->nfresh = 0;
	return storage_list(repo_get_storage(p->r), prefix, collect_name, p, p->err);
}

static int catch_index(struct pr *p)
{
	int rc = list_new(p, "index/");
	for (size_t i = 0; i < p->nfresh && !rc; i++) {
		struct index_entry *e = NULL;
		size_t n = 0;
		const char *name = p->fresh[i] + strlen("index/");
		rc = repo_index_read(p->r, name, &e, &n, p->err);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc == CAIRN_ECORRUPT)
			cairn_err_prefix(p->err, "an index object written during prune: refusing "
						 "to delete what it may name (run check)");
		for (size_t j = 0; j < n && !rc; j++) {
			struct pk *k = find_pack(p, e[j].loc.pack);
			if (k)
				rescue_pack(p, k, "an index object written during prune names it");
		}
		free(e);
		if (!rc) {
			rc = see(p, p->fresh[i]);
			rc = rc < 0 ? rc : 0;
		}
	}
	return rc;
}

static int catch_snapshots(struct pr *p)
{
	int rc = list_new(p, "snapshots/");
	for (size_t i = 0; i < p->nfresh && !rc; i++) {
		struct snapshot s;
		rc = load_snapshot(p, p->fresh[i] + strlen("snapshots/"), &s);
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc) {
			cairn_err_prefix(p->err, "refusing to prune what it may reference");
			break;
		}
		rc = mark_snapshot(p, &s);
		snapshot_free(&s);
		p->res->snapshots++;
		p->res->new_snapshots++;
		if (!rc) {
			rc = see(p, p->fresh[i]);
			rc = rc < 0 ? rc : 0;
		}
	}
	return rc;
}

/* Takes into account what writers added since the last look: index
 * objects (the packs they name stay), snapshots and WAL entries (what
 * they reference is marked; packs that go but hold it stay), then writes
 * index objects for the packs kept after all. */
static int catch_up(struct pr *p)
{
	p->catching = 1;
	int rc = repo_sync_index(p->r, p->err);
	rc = rc ? rc : catch_index(p);
	rc = rc ? rc : catch_snapshots(p);
	rc = rc ? rc : repo_wal_clusters(p->r, mark_wal_cluster, p, p->err);
	p->catching = 0;
	rc = rc ? rc : write_rescued(p);
	return rc;
}

/* ---- the exclusive window ---------------------------------------------------- */

struct long_writer {
	uint8_t own[16];
	int have_own, found;
	struct lock_entry e;
};

static int find_long(void *arg, const struct lock_entry *e)
{
	struct long_writer *lw = arg;
	if (e->state != LOCK_LIVE || lw->found || (lw->have_own && !memcmp(e->info.id, lw->own, 16)))
		return 0;
	if (e->info.kind == REPO_LOCK_EXCLUSIVE || (uint64_t)e->age_ns > LONG_WRITER_NS) {
		lw->found = 1;
		lw->e = *e;
	}
	return 0;
}

/* Tries until o->lock_wait_ns has passed for a moment when no writer runs
 * (see prune.h), with unlocked catch-up rounds meanwhile. */
static int take_window(struct pr *p, struct repo_lock **x)
{
	const struct prune_opts *o = p->o;
	uint64_t wait = o->lock_wait_ns ? o->lock_wait_ns : PRUNE_DEFAULT_LOCK_WAIT_NS;
	uint64_t drain = o->drain_ns ? o->drain_ns : PRUNE_DEFAULT_DRAIN_NS;
	uint64_t start = mono_ns(), last_catch = start;
	char why[sizeof(p->err->msg)] = "", said[sizeof(why)] = "";
	for (;;) {
		struct long_writer lw;
		memset(&lw, 0, sizeof(lw));
		if (o->lease) {
			repo_lock_current(o->lease, NULL, lw.own);
			lw.have_own = 1;
		}
		int rc = repo_locks_list(p->r, find_long, &lw, p->err);
		if (rc)
			return rc;
		if (!lw.found) {
			if (mono_ns() - last_catch > CATCHUP_EVERY_NS) {
				rc = catch_up(p);
				if (rc)
					return rc;
				last_catch = mono_ns();
			}
			struct repo_lock_opts lo;
			struct cairn_err e;
			memset(&lo, 0, sizeof(lo));
			lo.drain_ns = drain;
			lo.companion = o->lease;
			rc = repo_lock_with(p->r, REPO_LOCK_EXCLUSIVE, &lo, x, &e);
			if (!rc)
				return 0;
			if (rc != CAIRN_ELOCKED) {
				*p->err = e;
				return rc;
			}
			snprintf(why, sizeof(why), "%s", e.msg);
		} else {
			char hex[33];
			hex_encode(hex, lw.e.info.id, 16);
			snprintf(why, sizeof(why), "%s lock %.8s of host %s, pid %u, has been held for %llu s",
				 lw.e.info.kind == REPO_LOCK_EXCLUSIVE ? "an exclusive" : "a writer's", hex,
				 lw.e.info.host, lw.e.info.pid,
				 (unsigned long long)((uint64_t)lw.e.age_ns / SEC));
		}
		uint64_t spent = mono_ns() - start;
		if (spent >= wait)
			return cairn_err_set(p->err, CAIRN_ELOCKED,
					     "prune found no moment without writers for its deletions in "
					     "%llu s (%s): nothing was deleted",
					     (unsigned long long)(spent / SEC), why);
		if (strncmp(why, said, 40)) {
			report(p, "waiting for a moment without writers: %s", why);
			snprintf(said, sizeof(said), "%s", why);
		}
		uint64_t pause = lw.found ? 2 * SEC : SEC / 2 + randombytes_uniform(1000) * 1000000ull;
		sleep_ns(pause < wait - spent ? pause : wait - spent);
	}
}

/* Deletes run DEL_PAR at a time on the local backend (each waits for a
 * folder fsync), 1000 per request on S3: the window is mostly deletes. */
#define DEL_PAR 8
#define DEL_S3_BATCH 1000

struct del_job {
	struct storage *st;
	const char *key;
	int rc;
	struct cairn_err err;
};

static void *del_one(void *arg)
{
	struct del_job *j = arg;
	j->rc = storage_del(j->st, j->key, &j->err);
	if (j->rc == CAIRN_ENOTFOUND)
		j->rc = 0;
	return NULL;
}

/* Deletes keys[0..n); `what` names the step reported before each batch. */
static int delete_keys(struct pr *p, char **keys, size_t n, const char *what)
{
	struct storage *st = repo_get_storage(p->r);
	struct cairn_err e;
	size_t i = 0;
	if (n) {
		step(p, what);
		int rc = storage_s3_delete_many(st, (const char *const *)keys,
						n < DEL_S3_BATCH ? n : DEL_S3_BATCH, &e);
		if (rc != CAIRN_EUSAGE) {
			for (i = DEL_S3_BATCH; !rc && i < n; i += DEL_S3_BATCH) {
				step(p, what);
				rc = storage_s3_delete_many(st, (const char *const *)keys + i,
							    n - i < DEL_S3_BATCH ? n - i : DEL_S3_BATCH, &e);
			}
			if (rc)
				*p->err = e;
			return rc;
		}
	}
	/* Not S3: DEL_PAR threads at a time; the first failure wins. */
	for (i = 0; i < n; i += DEL_PAR) {
		struct del_job jobs[DEL_PAR];
		pthread_t th[DEL_PAR];
		int started[DEL_PAR] = {0};
		size_t m = n - i < DEL_PAR ? n - i : DEL_PAR;
		if (i)
			step(p, what);
		for (size_t k = 0; k < m; k++) {
			jobs[k] = (struct del_job){st, keys[i + k], 0, {0, ""}};
			started[k] = k > 0 && pthread_create(&th[k], NULL, del_one, &jobs[k]) == 0;
			if (!started[k])
				del_one(&jobs[k]);
		}
		for (size_t k = 0; k < m; k++)
			if (started[k])
				pthread_join(th[k], NULL);
		for (size_t k = 0; k < m; k++)
			if (jobs[k].rc) {
				*p->err = jobs[k].err;
				return jobs[k].rc;
			}
	}
	return 0;
}

static int delete_all(struct pr *p)
{
	char **keys = NULL;
	size_t n = 0;
	int rc = 0;
	char key[100];
	/* Index objects before the packs they name (FORMAT.md section 15). */
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		if (!p->affected[i])
			continue;
		snprintf(key, sizeof(key), "index/%s", p->idx[i]);
		rc = strlist_add(&keys, &n, key) ? cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory") : 0;
	}
	rc = rc ? rc : delete_keys(p, keys, n, "delete-index");
	if (!rc)
		p->res->index_deleted += n;
	strlist_free(keys, n);
	keys = NULL;
	n = 0;
	for (size_t i = 0; i < p->npacks && !rc; i++) {
		if (p->packs[i].act == P_KEEP)
			continue;
		pack_key(key, p->packs[i].id);
		rc = strlist_add(&keys, &n, key) ? cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory") : 0;
	}
	rc = rc ? rc : delete_keys(p, keys, n, "delete-pack");
	strlist_free(keys, n);
	return rc;
}

static int window(struct pr *p)
{
	struct repo_lock *x = NULL;
	int rc = take_window(p, &x);
	if (rc)
		return rc;
	step(p, "window");
	uint64_t t0 = mono_ns();
	/* No writer runs now: everything a finished writer referenced is in
	 * the snapshots and WAL entries listed from here on. */
	rc = catch_up(p);
	if (!rc && p->o->lease)
		rc = repo_lock_check(p->o->lease, p->err);
	rc = rc ? rc : repo_lock_check(x, p->err);
	rc = rc ? rc : delete_all(p);
	repo_unlock(x);
	p->res->window_ns = mono_ns() - t0;
	return rc;
}

int repo_prune(struct repo *r, const struct prune_opts *o, struct prune_result *res,
	       struct cairn_err *err)
{
	struct pr p;
	memset(&p, 0, sizeof(p));
	memset(res, 0, sizeof(*res));
	p.r = r;
	p.o = o;
	p.res = res;
	p.err = err;
	int rc = repo_flush(r, err);
	rc = rc ? rc : marks_open(&p);
	/* The cache as of now (the caller holds its lease): the index objects
	 * of every snapshot listed below were written before it. */
	rc = rc ? rc : repo_sync_index(r, err);
	if (!rc)
		step(&p, "mark");
	rc = rc ? rc : mark_all(&p);
	if (!rc)
		step(&p, "scan");
	/* index/ before packs/: a writer writes a pack before the index
	 * object naming it, so every pack a listed index object names is in
	 * the packs/ listing that follows. The other order could list an
	 * index object but not its pack, written in between. */
	rc = rc ? rc : storage_list(repo_get_storage(r), "index/", list_index, &p, err);
	if (!rc)
		step(&p, "list-packs");
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", list_pack, &p, err);
	rc = rc ? rc : scan_index(&p);
	rc = rc ? rc : check_found(&p);
	if (rc)
		goto out;
	step(&p, "plan");
	plan(&p);
	if (o->dry_run || (!res->packs_deleted && !res->packs_repacked))
		goto out;
	rc = find_affected(&p);
	if (!rc)
		step(&p, "repack");
	rc = rc ? rc : repack(&p);
	if (!rc)
		step(&p, "rewrite");
	rc = rc ? rc : rewrite_index(&p);
	if (!rc)
		step(&p, "catchup");
	rc = rc ? rc : catch_up(&p);
	rc = rc ? rc : window(&p);
	if (!rc)
		step(&p, "done");
	/* Forgets the deleted index objects and merges their replacements, as
	 * every other host's next command does; this host (prune is long
	 * anyway) also deletes their locations from the cache at once. */
	if (!rc)
		rc = repo_sync_index(r, err);
	if (!rc)
		rc = repo_sweep_cache(r, SIZE_MAX, err);
out:
	marks_close(&p);
	idset_free(&p.pack_ix);
	idset_free(&p.seen);
	free(p.packs);
	free(p.affected);
	strlist_free(p.idx, p.nidx);
	strlist_free(p.fresh, p.nfresh);
	return rc;
}
