/* check.c — see check.h. */
#include "repo/check.h"
#include "repo/idset.h"
#include "repo/pack.h"
#include "repo/wal.h"

#include <limits.h>
#include <sodium.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ck {
	struct repo *r;
	const struct check_opts *o;
	struct check_result *res;
	struct idset packs;     /* listed packs: id → size */
	struct idset bad;       /* blobs known damaged or missing */
	struct idset ok;        /* data blobs known good */
	struct idset trees;     /* tree id → 0 good, 1 damaged below */
	struct idset bad_packs; /* packs reported damaged */
	struct idset pack_locs; /* pack → locations the cache gives in it */
	const char *snap;       /* snapshot being walked */
	struct cairn_err *err;
};

static void problem(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct ck *c, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->res->problems++;
	if (c->o->report)
		c->o->report(c->o->arg, msg);
}

static int list_pack(void *arg, const char *key, uint64_t size)
{
	struct ck *c = arg;
	uint8_t id[32];
	const char *slash = strrchr(key, '/');
	if (!slash || hex_decode(id, 32, slash + 1) != 0)
		return 0; /* not a pack name */
	c->res->packs++;
	return idset_put(&c->packs, id, size);
}

struct blob_list {
	struct index_entry *v;
	size_t n, cap;
	const uint8_t *pack; /* collect only this pack's blobs (NULL: missing packs) */
	struct ck *c;
};

static int add_loc(struct blob_list *l, const uint8_t *bid, const struct blob_loc *loc)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		struct index_entry *v = realloc(l->v, l->cap * sizeof(*v));
		if (!v)
			return CAIRN_ENOMEM;
		l->v = v;
	}
	memcpy(l->v[l->n].id, bid, 32);
	l->v[l->n++].loc = *loc;
	return 0;
}

static int collect_blob(void *arg, const struct index_entry *e)
{
	struct blob_list *l = arg;
	if (!l->pack && idset_get(&l->c->packs, e->loc.pack, NULL)) {
		/* Counted, so that reading the pack knows when it has met
		 * every location the index gives in it. */
		uint64_t n = 0;
		idset_get(&l->c->pack_locs, e->loc.pack, &n);
		return idset_put(&l->c->pack_locs, e->loc.pack, n + 1) ? CAIRN_ENOMEM : 0;
	}
	if (l->pack && memcmp(e->loc.pack, l->pack, 32) != 0)
		return 0;
	return add_loc(l, e->id, &e->loc);
}

/* Index entries that name packs which are not there. */
static int check_index(struct ck *c)
{
	struct blob_list l = {NULL, 0, 0, NULL, c};
	int rc = cache_each_blob_of(c->r, collect_blob, &l, c->err);
	for (size_t i = 0; i < l.n && !rc; i++) {
		char hex[65];
		hex_encode(hex, l.v[i].loc.pack, 32);
		if (!idset_get(&c->bad_packs, l.v[i].loc.pack, NULL)) {
			problem(c, "pack %s is missing, but the index names it", hex);
			idset_put(&c->bad_packs, l.v[i].loc.pack, 0);
			c->res->damaged_packs++;
		}
		rc = idset_put(&c->bad, l.v[i].id, 0);
	}
	free(l.v);
	return rc;
}

static int ent_cmp(const void *a, const void *b)
{
	return memcmp(((const struct index_entry *)a)->id, ((const struct index_entry *)b)->id, 32);
}

static int loc_same(const struct blob_loc *a, const struct blob_loc *b)
{
	return memcmp(a->pack, b->pack, 32) == 0 && a->offset == b->offset &&
	       a->sealed_len == b->sealed_len && a->raw_len == b->raw_len && a->type == b->type;
}

/* The locations the index gives in pack `id` that its directory (ents,
 * sorted here) does not list exactly: looked up per blob of the directory,
 * which finds them all unless the index names a blob here that the
 * directory lacks; the count from check_index tells, and only then is the
 * whole cache walked for this pack. */
static int index_locs_in(struct ck *c, const uint8_t id[32], struct index_entry *ents, size_t n,
			 struct blob_list *l)
{
	uint64_t want = 0, met = 0;
	idset_get(&c->pack_locs, id, &want);
	if (n > 1)
		qsort(ents, n, sizeof(*ents), ent_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i && memcmp(ents[i].id, ents[i - 1].id, 32) == 0)
			continue;
		struct blob_loc locs[16];
		size_t nl = 0;
		int rc = cache_locs_of(c->r, ents[i].id, locs, 16, &nl, c->err);
		if (rc)
			return rc;
		if (nl > 16) {
			met = UINT64_MAX; /* unusual: take the slow way */
			break;
		}
		for (size_t j = 0; j < nl; j++) {
			if (memcmp(locs[j].pack, id, 32) != 0)
				continue;
			met++;
			int listed = 0;
			for (size_t d = i; d < n && memcmp(ents[d].id, ents[i].id, 32) == 0; d++)
				listed |= loc_same(&locs[j], &ents[d].loc);
			if (!listed && add_loc(l, ents[i].id, &locs[j]))
				return cairn_err_set(c->err, CAIRN_ENOMEM, "out of memory");
		}
	}
	if (met == want)
		return 0;
	l->n = 0;
	return cache_each_blob_of(c->r, collect_blob, l, c->err);
}

/* Reads one pack whole and verifies everything in it. */
static int read_pack(struct ck *c, const uint8_t id[32], uint64_t size)
{
	struct buf pack = BUF_INIT, plain = BUF_INIT;
	struct index_entry *ents = NULL;
	size_t n = 0;
	struct cairn_err e;
	char key[80], hex[65];
	int damaged = 0, rc = 0;
	(void)size;
	pack_key(key, id);
	hex_encode(hex, id, 32);
	rc = storage_get(repo_get_storage(c->r), key, 0, STORAGE_WHOLE, &pack, &e);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
		problem(c, "pack %s: %s", hex, e.msg);
		damaged = 1;
	} else if (rc) {
		*c->err = e;
		goto out;
	}
	c->res->packs_read++;
	if (!damaged) {
		uint8_t h[32];
		plain_hash(h, pack.data, pack.len);
		if (memcmp(h, id, 32) != 0) {
			problem(c, "pack %s: its bytes do not match its name (damaged)", hex);
			damaged = 1;
		}
		if (pack_read_dir(repo_get_keys(c->r), id, pack.data, pack.len, &ents, &n, &e)) {
			problem(c, "pack %s: %s", hex, e.msg);
			damaged = 1;
		}
	}
	/* Open every blob the index or the directory says is here. */
	struct blob_list l = {NULL, 0, 0, id, c};
	rc = index_locs_in(c, id, ents, n, &l);
	if (rc)
		goto out;
	struct sealer *s = sealer_new(1);
	if (!s) {
		free(l.v);
		rc = cairn_err_set(c->err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	for (int pass = 0; pass < 2; pass++) {
		struct index_entry *v = pass ? l.v : ents;
		size_t nv = pass ? l.n : n;
		for (size_t i = 0; i < nv; i++) {
			const struct blob_loc *loc = &v[i].loc;
			int bad = loc->offset + loc->sealed_len > pack.len ||
				  blob_open(s, repo_get_keys(c->r), loc->type, v[i].id,
					    pack.data + loc->offset, loc->sealed_len, loc->raw_len,
					    &plain, &e) != 0;
			if (bad && !idset_get(&c->bad, v[i].id, NULL)) {
				char bhex[65];
				hex_encode(bhex, v[i].id, 32);
				problem(c, "pack %s: blob %s is damaged", hex, bhex);
				idset_put(&c->bad, v[i].id, 0);
				damaged = 1;
			}
		}
	}
	sealer_free(s);
	free(l.v);
	if (damaged) {
		idset_put(&c->bad_packs, id, 0);
		c->res->damaged_packs++;
	}
out:
	free(ents);
	buf_free(&pack);
	buf_free(&plain);
	return rc;
}

static void bad_snapshot(void *arg, const char *name, const struct cairn_err *e)
{
	problem(arg, "snapshot %.16s cannot be read: %s", name, e->msg);
}

static void bad_index(void *arg, const char *name, const struct cairn_err *e)
{
	problem(arg, "index object %.16s cannot be read: %s (its packs are unknown until "
		     "the index is rebuilt)", name, e->msg);
}

struct read_all {
	struct ck *c;
	int rc;
};

/* 1 if a data blob is indexed in an existing pack and not known damaged,
 * 0 if not (reported once), <0 if the check itself failed. */
static int blob_ok(struct ck *c, const uint8_t *b)
{
	struct cairn_err e;
	if (idset_get(&c->ok, b, NULL))
		return 1;
	if (idset_get(&c->bad, b, NULL))
		return 0;
	struct blob_loc loc;
	int lrc = repo_find_blob(c->r, b, &loc, &e);
	if (lrc == 0 && idset_get(&c->packs, loc.pack, NULL)) {
		idset_put(&c->ok, b, 0);
		c->res->data_blobs++;
		return 1;
	}
	if (lrc == 0 || lrc == CAIRN_ENOTFOUND) {
		char bhex[65];
		hex_encode(bhex, b, 32);
		problem(c, "blob %s is not in any existing pack", bhex);
		idset_put(&c->bad, b, 0);
		return 0;
	}
	*c->err = e;
	return lrc;
}

/* Every archived WAL file: its entry opens, and every blob it names is
 * good; a damaged one is named by cluster and file. */
struct wal_walk {
	struct ck *c;
	const char *cluster;
	int fatal;
};

static int check_wal_one(void *arg, const char *name, uint64_t size)
{
	struct wal_walk *w = arg;
	struct wal_entry e;
	struct cairn_err er;
	(void)size;
	int rc = repo_wal_stat(w->c->r, w->cluster, name, &e, &er);
	if (rc == CAIRN_ECORRUPT) {
		problem(w->c, "cluster %s: WAL entry %s: %s", w->cluster, name, er.msg);
		w->c->res->damaged_wal++;
		return 0;
	}
	if (rc) {
		*w->c->err = er;
		w->fatal = rc;
		return rc;
	}
	w->c->res->wal_files++;
	int bad = 0;
	for (size_t i = 0; i < e.nblobs; i++) {
		int ok = blob_ok(w->c, e.blobs[i].id);
		if (ok < 0) {
			w->fatal = ok;
			break;
		}
		bad |= !ok;
	}
	wal_entry_free(&e);
	if (bad) {
		problem(w->c, "cluster %s: WAL file %s is damaged", w->cluster, name);
		w->c->res->damaged_wal++;
	}
	return w->fatal;
}

static int check_wal_cluster(void *arg, const char *cluster)
{
	struct ck *c = arg;
	struct wal_walk w = {c, cluster, 0};
	struct cairn_err e;
	int rc = repo_wal_list(c->r, cluster, check_wal_one, &w, &e);
	if (w.fatal)
		return w.fatal;
	if (rc) {
		*c->err = e;
		return rc;
	}
	return 0;
}

/* ---- scrub state: scrub/<time_ns>-<random>, sealed "CAIRNSC1" ----------
 * payload: u64 time_ns, uvar n, n × pack id[32] — the packs one check
 * --read-data run read (and found good or reported). */
#define SCRUB_MAGIC "CAIRNSC1"

static int scrub_note(struct repo *r, const struct idset *done, struct cairn_err *err)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	struct sealer *s = sealer_new(3);
	struct timespec now;
	char name[65], key[128], rnd[9];
	uint8_t rb[4];
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	int rc = s ? 0 : CAIRN_ENOMEM;
	rc = rc ? rc : buf_put_u64(&plain, (uint64_t)t);
	rc = rc ? rc : buf_put_uvar(&plain, done->n);
	for (size_t i = 0; i < done->cap && !rc; i++)
		if (done->slots[i].val)
			rc = buf_append(&plain, done->slots[i].id, 32);
	if (rc)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : obj_seal(s, repo_get_keys(r), SCRUB_MAGIC, plain.data, plain.len, &sealed, name, err);
	if (!rc) {
		randombytes_buf(rb, sizeof(rb));
		hex_encode(rnd, rb, sizeof(rb));
		snprintf(key, sizeof(key), "scrub/%020lld-%s", (long long)t, rnd);
		rc = storage_put(repo_get_storage(r), key, sealed.data, sealed.len, err);
	}
	buf_free(&plain);
	buf_free(&sealed);
	sealer_free(s);
	return rc;
}

struct scrub_load {
	struct repo *r;
	struct sealer *s;
	int64_t since;
	struct idset *recent;
};

static int scrub_one(void *arg, const char *key, uint64_t size)
{
	struct scrub_load *l = arg;
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	struct cairn_err e;
	(void)size;
	const char *name = key + strlen("scrub/");
	if (atoll(name) < l->since)
		return 0; /* older than the window: not even read */
	if (storage_get(repo_get_storage(l->r), key, 0, STORAGE_WHOLE, &raw, &e) == 0 &&
	    obj_open(l->s, repo_get_keys(l->r), SCRUB_MAGIC, NULL, raw.data, raw.len, &plain, key,
		     &e) == 0) {
		struct rd d = rd_make(plain.data, plain.len);
		int64_t t = (int64_t)rd_u64(&d);
		uint64_t n = rd_uvar(&d);
		for (uint64_t i = 0; i < n && !d.bad && t >= l->since; i++) {
			const uint8_t *id = rd_bytes(&d, 32);
			if (id && idset_put(l->recent, id, 0)) {
				buf_free(&raw);
				buf_free(&plain);
				return CAIRN_ENOMEM;
			}
		}
	}
	/* A damaged scrub record only means its packs are read again. */
	buf_free(&raw);
	buf_free(&plain);
	return 0;
}

static int scrub_recent(struct repo *r, int64_t window_ns, struct idset *recent,
			struct cairn_err *err)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct scrub_load l = {r, sealer_new(1),
			       (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - window_ns, recent};
	if (!l.s)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	int rc = storage_list(repo_get_storage(r), "scrub/", scrub_one, &l, err);
	if (rc == CAIRN_ENOMEM)
		cairn_err_set(err, rc, "out of memory");
	sealer_free(l.s);
	return rc;
}

/* Returns 1 if anything below this tree is damaged or missing. */
static int walk_tree(struct ck *c, const uint8_t id[32], char *path, size_t plen, int *fatal)
{
	uint64_t state;
	if (idset_get(&c->trees, id, &state) && state == 0)
		return 0;
	int reporting = idset_get(&c->trees, id, NULL); /* seen, damaged: name paths again */
	struct tree t = TREE_INIT;
	struct cairn_err e;
	int rc = repo_get_tree(c->r, id, &t, &e);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
		problem(c, "snapshot %.8s: folder %s: %s", c->snap, plen ? path : "/", e.msg);
		c->res->damaged_files++;
		idset_put(&c->trees, id, 1);
		return 1;
	}
	if (rc) {
		*c->err = e;
		*fatal = rc;
		return 1;
	}
	if (!reporting)
		c->res->trees++;
	int damaged = 0;
	for (size_t i = 0; i < t.n && !*fatal; i++) {
		struct node *nd = &t.nodes[i];
		size_t nl = strlen(nd->name);
		if (plen + 1 + nl >= PATH_MAX)
			continue;
		path[plen] = '/';
		memcpy(path + plen + 1, nd->name, nl + 1);
		if (nd->type == NODE_DIR) {
			damaged |= walk_tree(c, nd->subtree, path, plen + 1 + nl, fatal);
		} else if (nd->type == NODE_FILE) {
			int fbad = 0;
			if (nd->has_list) {
				/* The list blob first: without it the file's blobs
				 * are unknown. */
				int ok = blob_ok(c, nd->list_id);
				struct cairn_err le;
				int lrc = ok > 0 ? repo_node_blobs(c->r, nd, &le) : 0;
				if (ok < 0) {
					*fatal = ok;
				} else if (!ok || lrc == CAIRN_ECORRUPT || lrc == CAIRN_ENOTFOUND) {
					problem(c, "snapshot %.8s: file %s: %s", c->snap, path,
						ok ? le.msg : "its list blob is missing");
					fbad = 1;
				} else if (lrc) {
					*c->err = le;
					*fatal = lrc;
				}
			}
			for (size_t j = 0; j < nd->nblobs && !*fatal; j++) {
				int ok = blob_ok(c, nd->blobs[j].id);
				if (ok < 0)
					*fatal = ok;
				else if (!ok)
					fbad = 1;
			}
			node_release_blobs(nd);
			if (fbad) {
				problem(c, "snapshot %.8s: file %s is damaged", c->snap, path);
				c->res->damaged_files++;
				damaged = 1;
			}
		}
		path[plen] = '\0';
	}
	tree_free(&t);
	idset_put(&c->trees, id, damaged ? 1 : 0);
	return damaged;
}

int repo_check(struct repo *r, const struct check_opts *o, struct check_result *res,
	       struct cairn_err *err)
{
	struct ck c;
	struct snapshot *snaps = NULL;
	size_t nsnaps = 0;
	memset(&c, 0, sizeof(c));
	memset(res, 0, sizeof(*res));
	c.r = r;
	c.o = o;
	c.res = res;
	c.err = err;
	int rc = repo_flush(r, err);
	repo_each_bad_index(r, bad_index, &c);
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", list_pack, &c, err);
	rc = rc ? rc : check_index(&c);
	if (rc)
		goto out;
	if (o->read_data) {
		struct idset recent = IDSET_INIT, done = IDSET_INIT;
		if (o->since_last_ns > 0)
			rc = scrub_recent(r, o->since_last_ns, &recent, err);
		for (size_t i = 0; i < c.packs.cap && !rc; i++) {
			const uint8_t *id = c.packs.slots[i].id;
			if (!c.packs.slots[i].val)
				continue;
			if (o->subset_n && le_get32(id) % o->subset_n != o->subset_k - 1)
				continue;
			if (o->subset_percent > 0 &&
			    randombytes_uniform(1000000) >= (uint32_t)(o->subset_percent * 10000))
				continue;
			if (o->since_last_ns > 0 && idset_get(&recent, id, NULL))
				continue;
			rc = read_pack(&c, id, c.packs.slots[i].val - 1);
			if (!rc)
				rc = idset_put(&done, id, 0);
			if (o->progress)
				o->progress(o->arg, res->packs_read, res->packs);
		}
		/* What was read, for the next --read-data-since-last: any host. */
		if (!rc && done.n)
			rc = scrub_note(r, &done, err);
		idset_free(&recent);
		idset_free(&done);
		if (rc)
			goto out;
	}
	rc = repo_snapshots_load(r, &snaps, &nsnaps, bad_snapshot, &c, err);
	if (rc)
		goto out;
	res->snapshots = nsnaps;
	for (size_t i = 0; i < nsnaps; i++) {
		char path[PATH_MAX] = "";
		int fatal = 0;
		c.snap = snaps[i].name;
		walk_tree(&c, snaps[i].root, path, 0, &fatal);
		if (fatal) {
			rc = fatal;
			goto out;
		}
	}
	rc = repo_wal_clusters(r, check_wal_cluster, &c, err);
	if (rc)
		goto out;
	if (res->problems)
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "check found %llu problem(s): %llu damaged pack(s), %llu damaged file(s) "
				   "in snapshots, %llu damaged WAL file(s)",
				   (unsigned long long)res->problems,
				   (unsigned long long)res->damaged_packs,
				   (unsigned long long)res->damaged_files,
				   (unsigned long long)res->damaged_wal);
out:
	repo_snapshots_free(snaps, nsnaps);
	idset_free(&c.packs);
	idset_free(&c.bad);
	idset_free(&c.ok);
	idset_free(&c.trees);
	idset_free(&c.bad_packs);
	idset_free(&c.pack_locs);
	return rc;
}
