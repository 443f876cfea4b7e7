/*
 * repair.c — see repair.h.
 *
 * Memory: the packs (an idset: id → size, and whether an index object that
 * stays names it) and the blob ids of the packs that are gone (an idset:
 * at most what those packs held); index objects are read one at a time,
 * twice at most (once to judge them, once more for the entries of packs
 * whose directory cannot be read).
 */
#include "repo/repair.h"
#include "repo/idset.h"
#include "repo/pack.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_CHUNK 100000 /* entries per new index object */

/* Values of the pack table: size + 1 in the low bits, flags above. */
#define PK_COVERED (1ull << 62) /* named by an index object that stays */
#define PK_FALLBACK (1ull << 61) /* directory unreadable: use old entries */
#define PK_SIZE(v) ((v) & ((1ull << 60) - 1))

struct rp {
	struct repo *r;
	const struct repair_opts *o;
	struct repair_result *res;
	struct cairn_err *err;
	struct idset packs;   /* pack id → size | flags */
	struct idset gone;    /* blobs named in packs that are gone */
	char **idx;
	size_t nidx;
	uint8_t *drop;        /* per index object: 1 damaged, 2 names a missing pack */
	struct index_entry *v; /* entries of the index object being written */
	size_t nv;
};

static void report(struct rp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct rp *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->o->report)
		p->o->report(p->o->arg, msg);
}

static int list_pack(void *arg, const char *key, uint64_t size)
{
	struct rp *p = arg;
	uint8_t id[32];
	const char *slash = strrchr(key, '/');
	if (!slash || hex_decode(id, 32, slash + 1) != 0)
		return 0;
	p->res->packs++;
	return idset_put(&p->packs, id, size & ((1ull << 60) - 1)) ? CAIRN_ENOMEM : 0;
}

static int list_index(void *arg, const char *key, uint64_t size)
{
	struct rp *p = arg;
	(void)size;
	const char *name = key + strlen("index/");
	if (strlen(name) != 64)
		return 0;
	p->res->index_objects++;
	return strlist_add(&p->idx, &p->nidx, name) ? CAIRN_ENOMEM : 0;
}

static int set_flag(struct rp *p, const uint8_t id[32], uint64_t flag)
{
	uint64_t v;
	if (!idset_get(&p->packs, id, &v))
		return 0;
	return idset_put(&p->packs, id, v | flag) ? cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory")
						  : 0;
}

/* Judges every index object: damaged, naming a missing pack (dropped), or
 * staying (its packs are covered). */
static int judge(struct rp *p)
{
	int rc = 0;
	p->drop = calloc(p->nidx ? p->nidx : 1, 1);
	if (!p->drop)
		return cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		struct index_entry *e = NULL;
		size_t n = 0;
		struct cairn_err e2;
		rc = repo_index_read(p->r, p->idx[i], &e, &n, &e2);
		if (rc == CAIRN_ECORRUPT) {
			p->drop[i] = 1;
			p->res->index_damaged++;
			report(p, "drop index object %.16s: %s", p->idx[i], e2.msg);
			rc = 0;
			continue;
		}
		if (rc == CAIRN_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc) {
			*p->err = e2;
			break;
		}
		size_t missing = 0;
		for (size_t j = 0; j < n && !rc; j++) {
			if (idset_get(&p->packs, e[j].loc.pack, NULL))
				continue;
			if (!missing++) {
				char hex[65];
				hex_encode(hex, e[j].loc.pack, 32);
				report(p, "drop index object %.16s: it names pack %.16s, which is gone",
				       p->idx[i], hex);
			}
			if (idset_put(&p->gone, e[j].id, 0))
				rc = cairn_err_set(p->err, CAIRN_ENOMEM, "out of memory");
		}
		if (missing) {
			p->drop[i] = 2;
			p->res->index_dropped++;
		}
		for (size_t j = 0; j < n && !rc && !missing; j++)
			rc = set_flag(p, e[j].loc.pack, PK_COVERED);
		free(e);
	}
	return rc;
}

static int flush(struct rp *p)
{
	char name[65];
	if (!p->nv)
		return 0;
	int rc = 0;
	if (!p->o->dry_run) {
		rc = repo_index_write(p->r, p->v, p->nv, name, p->err);
		if (!rc)
			report(p, "wrote index object %.16s (%zu entries)", name, p->nv);
	}
	if (!rc)
		p->res->index_written++;
	p->nv = 0;
	return rc;
}

static int add_entry(struct rp *p, const struct index_entry *e)
{
	p->v[p->nv++] = *e;
	return p->nv == INDEX_CHUNK ? flush(p) : 0;
}

/* New index objects for every pack no staying index object names. */
static int reindex(struct rp *p)
{
	int rc = 0;
	size_t fallback = 0;
	for (size_t i = 0; i < p->packs.cap && !rc; i++) {
		struct idset_slot *sl = &p->packs.slots[i];
		if (!sl->val || ((sl->val - 1) & PK_COVERED))
			continue;
		struct index_entry *e = NULL;
		size_t n = 0;
		struct cairn_err e2;
		char hex[65];
		hex_encode(hex, sl->id, 32);
		rc = pack_fetch_dir(repo_get_storage(p->r), repo_get_keys(p->r), sl->id,
				    PK_SIZE(sl->val - 1), &e, &n, &e2);
		if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
			report(p, "pack %.16s: its directory cannot be read (%s)", hex, e2.msg);
			/* In place: an idset_put could grow the table under us. */
			sl->val = ((sl->val - 1) | PK_FALLBACK) + 1;
			fallback++;
			rc = 0;
			continue;
		}
		if (rc) {
			*p->err = e2;
			break;
		}
		report(p, "index pack %.16s from its directory (%zu blobs)", hex, n);
		p->res->packs_indexed++;
		for (size_t j = 0; j < n && !rc; j++)
			rc = add_entry(p, &e[j]);
		free(e);
	}
	/* Packs whose directory is damaged: what the dropped index objects
	 * said of them (the blobs themselves may still open). */
	for (size_t i = 0; i < p->nidx && !rc && fallback; i++) {
		if (!p->drop[i])
			continue;
		struct index_entry *e = NULL;
		size_t n = 0;
		struct cairn_err e2;
		if (repo_index_read(p->r, p->idx[i], &e, &n, &e2))
			continue;
		for (size_t j = 0; j < n && !rc; j++) {
			uint64_t v;
			if (idset_get(&p->packs, e[j].loc.pack, &v) && (v & PK_FALLBACK)) {
				rc = add_entry(p, &e[j]);
				if (!(v & PK_COVERED))
					rc = rc ? rc : set_flag(p, e[j].loc.pack, PK_COVERED);
			}
		}
		free(e);
	}
	for (size_t i = 0; i < p->packs.cap && !rc; i++) {
		struct idset_slot *sl = &p->packs.slots[i];
		uint64_t v = sl->val - 1;
		if (sl->val && (v & PK_FALLBACK) && !(v & PK_COVERED)) {
			char hex[65];
			hex_encode(hex, sl->id, 32);
			report(p, "pack %.16s: nothing says what it holds (run check --read-data)", hex);
			p->res->packs_unreadable++;
		}
	}
	return rc ? rc : flush(p);
}

static int delete_dropped(struct rp *p)
{
	int rc = 0;
	for (size_t i = 0; i < p->nidx && !rc; i++) {
		if (!p->drop[i])
			continue;
		char key[80];
		snprintf(key, sizeof(key), "index/%s", p->idx[i]);
		rc = storage_del(repo_get_storage(p->r), key, p->err);
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
	}
	return rc;
}

/* Blobs of the packs that are gone: held by another pack now, or lost. */
static int count_gone(struct rp *p)
{
	for (size_t i = 0; i < p->gone.cap; i++) {
		if (!p->gone.slots[i].val)
			continue;
		struct blob_loc loc;
		struct cairn_err e;
		int rc = repo_find_blob(p->r, p->gone.slots[i].id, &loc, &e);
		if (rc == 0 && idset_get(&p->packs, loc.pack, NULL)) {
			p->res->blobs_recovered++;
		} else if (rc == 0 || rc == CAIRN_ENOTFOUND) {
			p->res->blobs_lost++;
		} else {
			*p->err = e;
			return rc;
		}
	}
	return 0;
}

int repo_repair(struct repo *r, const struct repair_opts *o, struct repair_result *res,
		struct cairn_err *err)
{
	struct rp p;
	memset(&p, 0, sizeof(p));
	memset(res, 0, sizeof(*res));
	p.r = r;
	p.o = o;
	p.res = res;
	p.err = err;
	p.v = malloc(INDEX_CHUNK * sizeof(*p.v));
	int rc = p.v ? 0 : cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : repo_flush(r, err);
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", list_pack, &p, err);
	rc = rc ? rc : storage_list(repo_get_storage(r), "index/", list_index, &p, err);
	if (rc == CAIRN_ENOMEM)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : judge(&p);
	/* Packs named by dropped objects that are gone. */
	if (!rc) {
		struct idset missing = IDSET_INIT;
		for (size_t i = 0; i < p.nidx && !rc; i++) {
			if (p.drop[i] != 2)
				continue;
			struct index_entry *e = NULL;
			size_t n = 0;
			rc = repo_index_read(r, p.idx[i], &e, &n, err);
			for (size_t j = 0; j < n && !rc; j++)
				if (!idset_get(&p.packs, e[j].loc.pack, NULL) &&
				    !idset_get(&missing, e[j].loc.pack, NULL)) {
					if (idset_put(&missing, e[j].loc.pack, 0))
						rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
					res->packs_missing++;
				}
			free(e);
		}
		idset_free(&missing);
	}
	/* New index objects first, durable; only then the dropped ones go. */
	rc = rc ? rc : reindex(&p);
	if (!rc && !o->dry_run) {
		rc = delete_dropped(&p);
		rc = rc ? rc : repo_rebuild_index(r, err);
		rc = rc ? rc : count_gone(&p);
	}
	idset_free(&p.packs);
	idset_free(&p.gone);
	strlist_free(p.idx, p.nidx);
	free(p.drop);
	free(p.v);
	return rc;
}
