/*
 * prune.c — see prune.h.
 *
 * The mark set lives in a throw-away LMDB environment (<cache>/prune-<pid>),
 * key = blob id, value = one byte: 0 referenced, 1 referenced and found in
 * an index object.  Written in transactions of MARK_TXN puts so that dirty
 * pages stay few; nothing is synced (it is deleted at the end, and a crash
 * leaves only a folder that the next prune of the same pid replaces).
 * Packs are few (tens of MiB each), so their table is an in-memory idset.
 */
#include "repo/prune.h"
#include "repo/idset.h"
#include "repo/lock.h"
#include "repo/pack.h"
#include "repo/wal.h"

#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARK_TXN 20000
#define MARK_MAP_SIZE (64ull << 30) /* sparse: address space, not memory */
#define INDEX_CHUNK 100000          /* entries per replacement index object */

enum pack_action { P_KEEP = 0, P_DELETE, P_REPACK };

struct pk {
	uint8_t id[32];
	uint64_t size, total, used;
	int indexed;
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
	MDB_dbi dbi;
	MDB_txn *txn;
	size_t dirty;
	/* packs */
	struct idset pack_ix; /* id → index in packs */
	struct pk *packs;
	size_t npacks, cap;
	/* index objects */
	char **idx;
	size_t nidx;
	uint8_t *affected; /* per index object: names a pack that goes */
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
		if (*end || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != ESRCH))
			continue;
		if (kill((pid_t)pid, 0) == 0)
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
	mrc = mrc ? mrc : mdb_env_open(p->env, p->dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0600);
	mrc = mrc ? mrc : mdb_txn_begin(p->env, NULL, 0, &p->txn);
	mrc = mrc ? mrc : mdb_dbi_open(p->txn, NULL, 0, &p->dbi);
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

static int marks_put(struct pr *p, const uint8_t id[32], uint8_t v, unsigned flags)
{
	MDB_val k = {32, (void *)id}, d = {1, &v};
	int mrc = mdb_put(p->txn, p->dbi, &k, &d, flags);
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

/* 1 if newly marked, 0 if it was, <0 on error. */
static int mark(struct pr *p, const uint8_t id[32])
{
	int rc = marks_put(p, id, 0, MDB_NOOVERWRITE);
	if (rc == 1)
		p->res->referenced++;
	return rc;
}

/* 1 if marked, 0 if not, <0 on error. */
static int marked(struct pr *p, const uint8_t id[32])
{
	MDB_val k = {32, (void *)id}, d;
	int mrc = mdb_get(p->txn, p->dbi, &k, &d);
	if (mrc == MDB_NOTFOUND)
		return 0;
	return mrc ? mdb_fail(p, mrc, "get") : 1;
}

/* ---- mark ---------------------------------------------------------------- */

static int walk_tree(struct pr *p, const uint8_t id[32], const char *snap)
{
	struct tree t = TREE_INIT;
	int rc = repo_get_tree(p->r, id, &t, p->err);
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
				if (rc >= 0 && (rc = repo_node_blobs(p->r, nd, p->err)) != 0) {
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

struct wal_walk {
	struct pr *p;
	const char *cluster;
	int rc;
};

static int mark_wal_one(void *arg, const char *name, uint64_t size)
{
	struct wal_walk *w = arg;
	struct wal_entry e;
	(void)size;
	int rc = repo_wal_stat(w->p->r, w->cluster, name, &e, w->p->err);
	if (rc == CAIRN_ENOTFOUND)
		return 0; /* removed since the listing (forget) */
	if (rc) {
		cairn_err_prefix(w->p->err, "cluster %s: WAL entry %s", w->cluster, name);
		return w->rc = rc;
	}
	w->p->res->wal_files++;
	for (size_t i = 0; i < e.nblobs && rc >= 0; i++)
		rc = mark(w->p, e.blobs[i].id);
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
		rc = mark(p, s[i].root);
		if (rc == 1)
			rc = walk_tree(p, s[i].root, s[i].name);
		rc = rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = repo_wal_clusters(p->r, mark_wal_cluster, p, p->err);
out:
	repo_snapshots_free(s, n);
	return rc;
}

/* ---- packs and index objects --------------------------------------------- */

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
	return 0;
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
				k->used += e[j].loc.sealed_len;
				rc = marks_put(p, e[j].id, 1, 0);
				rc = rc < 0 ? rc : 0;
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
	int mrc = mdb_cursor_open(p->txn, p->dbi, &cur);
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

/* Index objects that name a pack that goes. */
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
			struct pk *k = find_pack(p, e[j].loc.pack);
			if (k && k->act != P_KEEP)
				p->affected[i] = 1;
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
	char name[65];
	if (!*n)
		return 0;
	int rc = repo_index_write(p->r, v, *n, name, p->err);
	if (!rc) {
		p->res->index_written++;
		report(p, "wrote index object %.16s (%zu entries)", name, *n);
	}
	*n = 0;
	return rc;
}

/* Replacement index objects: every entry of a kept pack in an affected
 * index object. */
static int rewrite_index(struct pr *p)
{
	struct index_entry *v = malloc(INDEX_CHUNK * sizeof(*v));
	size_t nv = 0;
	int rc = v ? 0 : cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		if (!p->affected[i])
			continue;
		struct index_entry *e = NULL;
		size_t n = 0;
		rc = repo_index_read(p->r, p->idx[i], &e, &n, p->err);
		for (size_t j = 0; j < n && !rc; j++) {
			struct pk *k = find_pack(p, e[j].loc.pack);
			if (!k || k->act != P_KEEP)
				continue;
			v[nv++] = e[j];
			if (nv == INDEX_CHUNK)
				rc = flush_entries(p, v, &nv);
		}
		free(e);
	}
	rc = rc ? rc : flush_entries(p, v, &nv);
	free(v);
	return rc;
}

static int del_key(struct pr *p, const char *key)
{
	int rc = storage_del(repo_get_storage(p->r), key, p->err);
	return rc == CAIRN_ENOTFOUND ? 0 : rc;
}

static int delete_all(struct pr *p)
{
	int rc = 0;
	char key[100];
	/* Index objects before the packs they name (FORMAT.md section 15). */
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		if (!p->affected[i])
			continue;
		snprintf(key, sizeof(key), "index/%s", p->idx[i]);
		rc = del_key(p, key);
		if (!rc)
			p->res->index_deleted++;
	}
	for (size_t i = 0; i < p->npacks && !rc; i++) {
		if (p->packs[i].act == P_KEEP)
			continue;
		pack_key(key, p->packs[i].id);
		rc = del_key(p, key);
	}
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
	/* Listed after the exclusive lock was taken: every finished writer's
	 * references are in these listings (FORMAT.md section 15). */
	rc = rc ? rc : mark_all(&p);
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", list_pack, &p, err);
	rc = rc ? rc : storage_list(repo_get_storage(r), "index/", list_index, &p, err);
	rc = rc ? rc : scan_index(&p);
	rc = rc ? rc : check_found(&p);
	if (rc)
		goto out;
	plan(&p);
	if (o->dry_run || (!res->packs_deleted && !res->packs_repacked))
		goto out;
	rc = find_affected(&p);
	if (rc)
		goto out;
	rc = repack(&p);
	rc = rc ? rc : rewrite_index(&p);
	if (!rc && o->lock)
		rc = repo_lock_check(o->lock, err);
	rc = rc ? rc : delete_all(&p);
	if (!rc)
		rc = repo_rebuild_index(r, err);
out:
	marks_close(&p);
	idset_free(&p.pack_ix);
	free(p.packs);
	free(p.affected);
	strlist_free(p.idx, p.nidx);
	return rc;
}
