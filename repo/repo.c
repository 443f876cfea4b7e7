/*
 * repo.c — opening a repository, blobs, packs, index objects, snapshots and
 * keys: everything that keeps the order of writes (see repo.h).
 */
#include "repo/repo.h"
#include "repo/par.h"
#include "repo/idset.h"
#include "repo/pack.h"

#include <errno.h>
#include <pwd.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAGIC "CAIRNCFG"
#define INDEX_MAGIC "CAIRNIX1"
#define SNAP_MAGIC "CAIRNSN1"
/* Write an index object once this many packs await one. */
#define INDEX_EVERY_PACKS 8

struct repo {
	struct storage *st;
	struct repo_config cfg;
	struct repo_keys *keys;
	struct fastcdc cdc;
	struct cache *cache;
	struct sealer *sealer;
	char key_name[65];
	char cache_dir[4096];

	/* Writing: open packs (data and trees apart), packs written but not
	 * yet named by an index object, and every blob this process wrote
	 * that the cache does not know yet. */
	struct pack_writer pw[2];
	struct index_entry *pending;
	size_t npending, pending_cap, pending_packs;
	struct idset mine;
	struct buf sealed;
	struct repo_write_stats ws;
	int failed; /* a write failed: refuse further writes (sticky) */

	/* Index objects skipped at the last sync because they are damaged. */
	char **bad_index;
	struct cairn_err *bad_index_err;
	size_t nbad_index;

	/* Packs that exist, listed once per handle at the first dedup hit: a
	 * blob whose pack has vanished is stored again, never trusted. */
	struct idset packs;
	int packs_listed;

	void (*note)(void *arg, const char *msg);
	void *note_arg;

	/* Batches (repo_put_blobs, repo_get_blobs): worker threads, a sealer
	 * per worker (0 is r->sealer), and per-item buffers kept between
	 * batches so the hot path does not allocate. */
	unsigned nworkers;
	int zstd_level;
	struct sealer *wsealer[64];
	struct buf *items;
	size_t nitems;
	/* repo_get_blobs: per-window locations and results, two windows */
	struct blob_loc *gloc[2];
	int *grc[2];
	struct cairn_err *gerrs[2];
};

/* ---- config ------------------------------------------------------------- */

#define CONFIG_MAC_LEN 32

int config_encode(const struct repo_config *c, const struct repo_keys *k, struct buf *out)
{
	buf_reset(out);
	int rc = buf_append(out, CONFIG_MAGIC, 8);
	rc = rc ? rc : buf_put_u32(out, c->version);
	rc = rc ? rc : buf_append(out, c->id, 32);
	rc = rc ? rc : buf_put_u32(out, c->chunker.min);
	rc = rc ? rc : buf_put_u32(out, c->chunker.avg);
	rc = rc ? rc : buf_put_u32(out, c->chunker.max);
	rc = rc ? rc : buf_put_u32(out, c->pack_size);
	rc = rc ? rc : buf_put_u32(out, 0); /* mandatory features: none yet */
	if (!rc) {
		uint8_t mac[CONFIG_MAC_LEN];
		crypto_generichash(mac, sizeof(mac), out->data, out->len, k->cfg_key,
				   sizeof(k->cfg_key));
		rc = buf_append(out, mac, sizeof(mac));
	}
	return rc;
}

int config_verify(const void *p, size_t n, const struct repo_keys *k, struct cairn_err *err)
{
	uint8_t mac[CONFIG_MAC_LEN];
	if (n < CONFIG_MAC_LEN)
		return cairn_err_set(err, CAIRN_ECORRUPT, "repository config is truncated");
	crypto_generichash(mac, sizeof(mac), p, n - CONFIG_MAC_LEN, k->cfg_key, sizeof(k->cfg_key));
	if (sodium_memcmp(mac, (const uint8_t *)p + n - CONFIG_MAC_LEN, CONFIG_MAC_LEN) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "repository config fails authentication: it was altered");
	return 0;
}

int config_decode(const void *p, size_t n, struct repo_config *c,
		  struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	const uint8_t *magic = rd_bytes(&r, 8);
	if (!magic || memcmp(magic, CONFIG_MAGIC, 8) != 0)
		return cairn_err_set(err, CAIRN_ENOREPO, "config is not a cairn repository config");
	memset(c, 0, sizeof(*c));
	c->version = rd_u32(&r);
	if (!r.bad && c->version != REPO_VERSION)
		return cairn_err_set(err, CAIRN_EVERSION,
				     "repository format version %u is not supported by this cairn (it knows %u)",
				     c->version, REPO_VERSION);
	rd_copy(&r, c->id, 32);
	c->chunker.min = rd_u32(&r);
	c->chunker.avg = rd_u32(&r);
	c->chunker.max = rd_u32(&r);
	c->pack_size = rd_u32(&r);
	uint32_t nfeatures = rd_u32(&r);
	if (!r.bad && nfeatures != 0) {
		/* Mandatory feature names (str16 each): we know none yet. */
		uint16_t len = rd_u16(&r);
		const uint8_t *name = rd_bytes(&r, len);
		if (name)
			return cairn_err_set(err, CAIRN_EVERSION,
					     "repository requires feature '%.*s' that this cairn does not know: upgrade cairn",
					     (int)len, (const char *)name);
	}
	rd_bytes(&r, CONFIG_MAC_LEN);
	if (r.bad || rd_left(&r) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "repository config is truncated or malformed");
	if (c->pack_size < 4096 || c->pack_size > (1u << 30))
		return cairn_err_set(err, CAIRN_ECORRUPT, "repository config has an invalid pack size");
	return 0;
}

/* ---- index objects ------------------------------------------------------ */

int index_encode(const struct index_entry *e, size_t n, struct buf *out)
{
	size_t groups = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || memcmp(e[i].loc.pack, e[i - 1].loc.pack, 32) != 0)
			groups++;
	buf_reset(out);
	int rc = buf_put_uvar(out, groups);
	for (size_t i = 0; i < n && !rc;) {
		size_t j = i;
		while (j < n && memcmp(e[j].loc.pack, e[i].loc.pack, 32) == 0)
			j++;
		rc = buf_append(out, e[i].loc.pack, 32);
		rc = rc ? rc : buf_put_uvar(out, j - i);
		for (; i < j && !rc; i++) {
			rc = buf_put_u8(out, e[i].loc.type);
			rc = rc ? rc : buf_append(out, e[i].id, 32);
			rc = rc ? rc : buf_put_uvar(out, e[i].loc.offset);
			rc = rc ? rc : buf_put_uvar(out, e[i].loc.sealed_len);
			rc = rc ? rc : buf_put_uvar(out, e[i].loc.raw_len);
		}
	}
	return rc;
}

int index_decode(const void *p, size_t n, struct index_entry **out,
		 size_t *nout, struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	struct index_entry *e = NULL;
	size_t ne = 0, cap = 0;
	uint64_t groups = rd_uvar(&r);
	for (uint64_t g = 0; g < groups && !r.bad; g++) {
		uint8_t pack[32];
		rd_copy(&r, pack, 32);
		uint64_t cnt = rd_uvar(&r);
		if (cnt > rd_left(&r) / 36)
			r.bad = 1;
		for (uint64_t i = 0; i < cnt && !r.bad; i++) {
			if (ne == cap) {
				cap = cap ? cap * 2 : 1024;
				struct index_entry *ne2 = realloc(e, cap * sizeof(*e));
				if (!ne2) {
					free(e);
					return cairn_err_set(err, CAIRN_ENOMEM, "out of memory reading an index");
				}
				e = ne2;
			}
			struct index_entry *x = &e[ne++];
			memcpy(x->loc.pack, pack, 32);
			x->loc.type = rd_u8(&r);
			rd_copy(&r, x->id, 32);
			x->loc.offset = rd_uvar(&r);
			uint64_t sl = rd_uvar(&r), rl = rd_uvar(&r);
			if (sl > UINT32_MAX || rl > UINT32_MAX ||
			    (x->loc.type != BLOB_DATA && x->loc.type != BLOB_TREE))
				r.bad = 1;
			x->loc.sealed_len = (uint32_t)sl;
			x->loc.raw_len = (uint32_t)rl;
		}
	}
	if (r.bad || rd_left(&r)) {
		free(e);
		return cairn_err_set(err, CAIRN_ECORRUPT, "index object is malformed");
	}
	*out = e;
	*nout = ne;
	return 0;
}

/* ---- init and open ------------------------------------------------------ */

static void default_identity(const char **host, const char **user, char *hbuf,
			     size_t hlen)
{
	if (!*host) {
		if (gethostname(hbuf, hlen) != 0)
			snprintf(hbuf, hlen, "unknown");
		hbuf[hlen - 1] = '\0';
		*host = hbuf;
	}
	if (!*user) {
		struct passwd *pw = getpwuid(geteuid());
		*user = pw ? pw->pw_name : "unknown";
	}
}

int repo_init(const struct repo_init_opts *o, char id_hex[65],
	      struct cairn_err *err)
{
	struct storage *st = NULL;
	struct buf cfgb = BUF_INIT, keyb = BUF_INIT;
	uint8_t master[32];
	struct repo_config cfg;
	struct key_info info;
	char hbuf[256];
	const char *host = o->host, *user = o->user;
	int rc = crypto_setup(err);
	if (rc)
		return rc;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = REPO_VERSION;
	cfg.chunker = o->chunker;
	if (!cfg.chunker.avg) {
		cfg.chunker.min = FASTCDC_DEFAULT_MIN;
		cfg.chunker.avg = FASTCDC_DEFAULT_AVG;
		cfg.chunker.max = FASTCDC_DEFAULT_MAX;
	}
	cfg.pack_size = o->pack_size ? o->pack_size : REPO_DEFAULT_PACK_SIZE;
	struct fastcdc probe;
	uint64_t zero_gear[256] = {0};
	if (fastcdc_init(&probe, &cfg.chunker, zero_gear) != 0)
		return cairn_err_set(err, CAIRN_EUSAGE, "invalid chunker sizes min=%u avg=%u max=%u",
				     cfg.chunker.min, cfg.chunker.avg, cfg.chunker.max);
	randombytes_buf(cfg.id, 32);
	randombytes_buf(master, 32);
	default_identity(&host, &user, hbuf, sizeof(hbuf));

	rc = storage_open(&st, o->url, 1, o->storage, err);
	if (rc)
		goto out;
	uint64_t size;
	struct cairn_err e2;
	if (storage_stat(st, "config", &size, &e2) == 0) {
		rc = cairn_err_set(err, CAIRN_EEXIST,
				   "%s is already a cairn repository: refusing to overwrite it", o->url);
		goto out;
	}
	rc = keyfile_make(master, o->pass, o->pass_len, &o->kdf, host, user, &keyb, &info, err);
	if (rc)
		goto out;
	char key[80];
	snprintf(key, sizeof(key), "keys/%s", info.name);
	/* The key first: a config without a key would be a repository that
	 * nobody can open; a key without a config is not a repository yet,
	 * and init can simply be run again. */
	rc = storage_put(st, key, keyb.data, keyb.len, err);
	if (rc)
		goto out;
	struct repo_keys *k = keys_new(master);
	if (!k || config_encode(&cfg, k, &cfgb)) {
		keys_free(k);
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	keys_free(k);
	rc = storage_put(st, "config", cfgb.data, cfgb.len, err);
	if (rc == CAIRN_EEXIST)
		rc = cairn_err_set(err, CAIRN_EEXIST,
				   "%s is already a cairn repository: refusing to overwrite it", o->url);
	if (rc)
		goto out;
	hex_encode(id_hex, cfg.id, 32);
out:
	sodium_memzero(master, sizeof(master));
	buf_free(&cfgb);
	buf_free(&keyb);
	storage_close(st);
	return rc;
}

struct key_try {
	struct repo *r;
	const char *pass;
	size_t pass_len;
	uint8_t *master;
	int found, nkeys;
	struct cairn_err *err;
};

static int try_key(void *arg, const char *key, uint64_t size)
{
	struct key_try *kt = arg;
	struct buf b = BUF_INIT;
	struct cairn_err e;
	(void)size;
	kt->nkeys++;
	if (storage_get(kt->r->st, key, 0, STORAGE_WHOLE, &b, &e) == 0 &&
	    keyfile_open(b.data, b.len, kt->pass, kt->pass_len, kt->master, &e) == 0) {
		kt->found = 1;
		snprintf(kt->r->key_name, sizeof(kt->r->key_name), "%s", key + 5);
	}
	buf_free(&b);
	return kt->found; /* stop at the first key that opens */
}

static void clear_bad_index(struct repo *r);

static void note(struct repo *r, const char *msg)
{
	if (r->note)
		r->note(r->note_arg, msg);
}

static int cache_folder(char *out, size_t n, const char *base, const uint8_t id[32])
{
	char hex[65];
	hex_encode(hex, id, 32);
	if (base)
		return snprintf(out, n, "%s/%s", base, hex) >= (int)n ? -1 : 0;
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg && *xdg)
		return snprintf(out, n, "%s/cairn/%s", xdg, hex) >= (int)n ? -1 : 0;
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(geteuid());
		home = pw ? pw->pw_dir : "/tmp";
	}
	return snprintf(out, n, "%s/.cache/cairn/%s", home, hex) >= (int)n ? -1 : 0;
}

int repo_open(struct repo **out, const struct repo_open_opts *o,
	      struct cairn_err *err)
{
	struct repo *r = calloc(1, sizeof(*r));
	struct buf b = BUF_INIT;
	uint8_t master[32];
	int rc;
	*out = NULL;
	if (!r)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	r->note = o->note;
	r->note_arg = o->note_arg;
	pack_writer_init(&r->pw[0]);
	pack_writer_init(&r->pw[1]);
	rc = crypto_setup(err);
	if (rc)
		goto fail;
	rc = storage_open(&r->st, o->url, 0, o->storage, err);
	if (rc)
		goto fail;
	rc = storage_get(r->st, "config", 0, STORAGE_WHOLE, &b, err);
	if (rc == CAIRN_ENOTFOUND) {
		rc = cairn_err_set(err, CAIRN_ENOREPO, "%s is not a cairn repository (it has no config)",
				   o->url);
		goto fail;
	}
	if (rc)
		goto fail;
	rc = config_decode(b.data, b.len, &r->cfg, err);
	if (rc) {
		cairn_err_prefix(err, "%s", o->url);
		goto fail;
	}
	if (o->master) {
		if (o->master_repo_id && memcmp(o->master_repo_id, r->cfg.id, 32) != 0) {
			rc = cairn_err_set(err, CAIRN_EPASS,
					   "the host key file belongs to another repository");
			goto fail;
		}
		memcpy(master, o->master, 32);
	} else {
		struct key_try kt = {r, o->pass, o->pass_len, master, 0, 0, err};
		rc = storage_list(r->st, "keys/", try_key, &kt, err);
		if (rc < 0)
			goto fail;
		if (!kt.found) {
			rc = kt.nkeys ? cairn_err_set(err, CAIRN_EPASS, "wrong passphrase")
				      : cairn_err_set(err, CAIRN_ECORRUPT,
						      "%s has no keys: nobody can open it", o->url);
			goto fail;
		}
	}
	r->keys = keys_new(master);
	sodium_memzero(master, sizeof(master));
	r->sealer = sealer_new(o->zstd_level ? o->zstd_level : REPO_DEFAULT_ZSTD_LEVEL);
	r->zstd_level = o->zstd_level ? o->zstd_level : REPO_DEFAULT_ZSTD_LEVEL;
	r->nworkers = par_workers();
	r->wsealer[0] = r->sealer;
	if (!r->keys || !r->sealer) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto fail;
	}
	rc = config_verify(b.data, b.len, r->keys, err);
	if (rc) {
		cairn_err_prefix(err, "%s", o->url);
		goto fail;
	}
	if (fastcdc_init(&r->cdc, &r->cfg.chunker, r->keys->gear) != 0) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "repository config has invalid chunker sizes");
		goto fail;
	}
	char dir[4096];
	if (cache_folder(dir, sizeof(dir), o->cache_base, r->cfg.id)) {
		rc = cairn_err_set(err, CAIRN_EUSAGE, "cache folder path is too long");
		goto fail;
	}
	int rebuilt = 0;
	snprintf(r->cache_dir, sizeof(r->cache_dir), "%s", dir);
	if (o->on_cache_dir)
		o->on_cache_dir(o->note_arg, dir);
	rc = cache_open(&r->cache, dir, r->cfg.id, &rebuilt, err);
	if (rc)
		goto fail;
	if (rebuilt)
		note(r, "the local cache was damaged or out of date: rebuilding it from the repository");
	rc = repo_sync_index(r, err);
	if (rc)
		goto fail;
	buf_free(&b);
	*out = r;
	return 0;
fail:
	buf_free(&b);
	repo_close(r);
	return rc;
}

void repo_close(struct repo *r)
{
	if (!r)
		return;
	pack_writer_free(&r->pw[0]);
	pack_writer_free(&r->pw[1]);
	free(r->pending);
	idset_free(&r->mine);
	idset_free(&r->packs);
	clear_bad_index(r);
	buf_free(&r->sealed);
	for (unsigned k = 1; k < 64; k++)
		sealer_free(r->wsealer[k]);
	for (size_t i = 0; i < r->nitems; i++)
		buf_free(&r->items[i]);
	free(r->items);
	for (int k = 0; k < 2; k++) {
		free(r->gloc[k]);
		free(r->grc[k]);
		free(r->gerrs[k]);
	}
	sealer_free(r->sealer);
	cache_close(r->cache);
	keys_free(r->keys);
	storage_close(r->st);
	free(r);
}

const struct repo_config *repo_get_config(const struct repo *r) { return &r->cfg; }
struct storage *repo_get_storage(struct repo *r) { return r->st; }
const struct fastcdc *repo_get_chunker(const struct repo *r) { return &r->cdc; }
const struct repo_keys *repo_get_keys(const struct repo *r) { return r->keys; }
const char *repo_key_in_use(const struct repo *r) { return r->key_name; }
const char *repo_cache_dir(const struct repo *r) { return r->cache_dir; }
const struct repo_write_stats *repo_get_write_stats(const struct repo *r) { return &r->ws; }

/* ---- index synchronisation ---------------------------------------------- */

struct name_list {
	char **names;
	size_t n;
};

static int collect_index(void *arg, const char *key, uint64_t size)
{
	struct name_list *l = arg;
	(void)size;
	const char *name = key + strlen("index/");
	if (strlen(name) != 64)
		return 0; /* not one of ours */
	return strlist_add(&l->names, &l->n, name);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Merged index objects that index/ no longer lists. */
struct stale_check {
	struct name_list *listed;
	struct name_list gone;
};

static int check_listed(void *arg, const char *name)
{
	struct stale_check *sc = arg;
	const char *key = name;
	if (sc->listed->n && bsearch(&key, sc->listed->names, sc->listed->n, sizeof(char *), name_cmp))
		return 0;
	return strlist_add(&sc->gone.names, &sc->gone.n, name) ? CAIRN_ENOMEM : 0;
}

/* merge_index: the index object itself is damaged (not the cache). */
#define INDEX_DAMAGED 1

static int merge_index(struct repo *r, const char *name, struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	struct index_entry *e = NULL;
	size_t n = 0;
	char key[80], what[100];
	snprintf(key, sizeof(key), "index/%s", name);
	snprintf(what, sizeof(what), "index object %.16s", name);
	int rc = storage_get(r->st, key, 0, STORAGE_WHOLE, &raw, err);
	rc = rc ? rc : obj_open(r->sealer, r->keys, INDEX_MAGIC, name, raw.data, raw.len,
				&plain, what, err);
	rc = rc ? rc : index_decode(plain.data, plain.len, &e, &n, err);
	if (rc == CAIRN_ECORRUPT) {
		cairn_err_prefix(err, "%s", key);
		rc = INDEX_DAMAGED;
	}
	rc = rc ? rc : cache_add_index(r->cache, name, e, n, err);
	free(e);
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

static void clear_bad_index(struct repo *r)
{
	strlist_free(r->bad_index, r->nbad_index);
	free(r->bad_index_err);
	r->bad_index = NULL;
	r->bad_index_err = NULL;
	r->nbad_index = 0;
}

static void add_bad_index(struct repo *r, const char *name, const struct cairn_err *e)
{
	struct cairn_err *v = realloc(r->bad_index_err, (r->nbad_index + 1) * sizeof(*v));
	if (!v)
		return;
	r->bad_index_err = v;
	v[r->nbad_index] = *e;
	size_t n = r->nbad_index;
	if (strlist_add(&r->bad_index, &n, name) == 0)
		r->nbad_index = n;
}

void repo_each_bad_index(struct repo *r,
			 void (*cb)(void *arg, const char *name, const struct cairn_err *e),
			 void *arg)
{
	for (size_t i = 0; i < r->nbad_index; i++)
		cb(arg, r->bad_index[i], &r->bad_index_err[i]);
}

int repo_sync_index(struct repo *r, struct cairn_err *err)
{
	struct name_list l = {NULL, 0};
	int rc = storage_list(r->st, "index/", collect_index, &l, err);
	if (rc)
		goto out;
	if (l.n > 1)
		qsort(l.names, l.n, sizeof(char *), name_cmp);
	struct stale_check sc = {&l, {NULL, 0}};
	rc = cache_each_index(r->cache, check_listed, &sc, err);
	if (rc == CAIRN_ENOMEM)
		cairn_err_set(err, rc, "out of memory");
	if (rc == 0 && sc.gone.n) {
		/* Index objects we merged are gone (prune replaced them or
		 * deleted their packs; or damage): drop exactly the locations
		 * they vouched for. Prune wrote what replaces them first, so
		 * merging the new objects below restores every blob that
		 * still exists. */
		rc = cache_forget_indexes(r->cache, (const char *const *)sc.gone.names,
					  sc.gone.n, err);
		if (rc == 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "%zu index objects the cache had merged are gone: "
				 "forgot their locations", sc.gone.n);
			note(r, msg);
		}
		if (rc == CAIRN_ECORRUPT) {
			note(r, "the local cache is damaged: rebuilding it from the repository");
			rc = cache_clear(r->cache, err);
		}
	}
	strlist_free(sc.gone.names, sc.gone.n);
	if (rc)
		goto out;
	clear_bad_index(r);
	int retried = 0;
	for (size_t i = 0; i < l.n; i++) {
		rc = cache_has_index(r->cache, l.names[i], err);
		if (rc < 0)
			goto out;
		if (rc == 1)
			continue;
		struct cairn_err e;
		rc = merge_index(r, l.names[i], &e);
		if (rc == CAIRN_ECORRUPT && !retried) {
			/* The cache itself (LMDB) is damaged: start it over. */
			note(r, "the local cache is damaged: rebuilding it from the repository");
			retried = 1;
			rc = cache_clear(r->cache, err);
			if (rc)
				goto out;
			i = (size_t)-1;
			continue;
		}
		if (rc == INDEX_DAMAGED) {
			/* One damaged index object must not lock everyone out:
			 * its blobs are unknown (backups store them again; check
			 * reports it). */
			char msg[200];
			snprintf(msg, sizeof(msg), "index object %.16s is damaged: skipping it", l.names[i]);
			note(r, msg);
			add_bad_index(r, l.names[i], &e);
			continue;
		}
		if (rc) {
			*err = e;
			goto out;
		}
	}
	/* A bounded share of deleting what forgotten objects left behind, so
	 * that no one command pays for a whole walk of the cache.  Only
	 * housekeeping (reads already skip those locations): a sweep that
	 * fails, say on a full cache disk, must not fail the command. */
	struct cairn_err se;
	if (repo_sweep_cache(r, SWEEP_PER_SYNC, &se)) {
		char msg[sizeof(se.msg) + 64];
		snprintf(msg, sizeof(msg), "cache sweep left for later: %s", se.msg);
		note(r, msg);
	}
	rc = 0;
out:
	strlist_free(l.names, l.n);
	return rc;
}

int repo_sweep_cache(struct repo *r, size_t budget, struct cairn_err *err)
{
	uint64_t removed = 0;
	int done = 1;
	int rc = cache_sweep(r->cache, budget, &removed, &done, err);
	if (rc == CAIRN_ECORRUPT) {
		note(r, "the local cache is damaged: rebuilding it from the repository");
		return repo_rebuild_index(r, err);
	}
	if (rc == 0 && removed) {
		char msg[160];
		snprintf(msg, sizeof(msg), "swept %llu locations of forgotten index objects from the "
			 "cache%s", (unsigned long long)removed, done ? "" : " (more next time)");
		note(r, msg);
	}
	return rc;
}

int repo_rebuild_index(struct repo *r, struct cairn_err *err)
{
	int rc = cache_clear(r->cache, err);
	return rc ? rc : repo_sync_index(r, err);
}

/* ---- writing ------------------------------------------------------------ */

static int write_index(struct repo *r, struct cairn_err *err)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	char name[65], key[80];
	int rc = 0;
	if (r->npending == 0)
		return 0;
	if (index_encode(r->pending, r->npending, &plain)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	rc = obj_seal(r->sealer, r->keys, INDEX_MAGIC, plain.data, plain.len, &sealed, name, err);
	if (rc)
		goto out;
	snprintf(key, sizeof(key), "index/%s", name);
	rc = storage_put(r->st, key, sealed.data, sealed.len, err);
	if (rc)
		goto out;
	/* Durable in the repository: now the cache may know it. */
	rc = cache_add_index(r->cache, name, r->pending, r->npending, err);
	if (rc)
		goto out;
	r->npending = 0;
	r->pending_packs = 0;
	/* What is left of "mine" is only what the open packs hold. */
	idset_clear(&r->mine);
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < r->pw[t].n; i++)
			if (idset_put(&r->mine, r->pw[t].ents[i].id, 0)) {
				rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
				goto out;
			}
out:
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

static int write_pack(struct repo *r, struct pack_writer *pw, struct cairn_err *err)
{
	uint8_t id[32];
	char key[80];
	if (pw->n == 0)
		return 0;
	int rc = pack_writer_finish(pw, r->keys, id, err);
	if (rc)
		return rc;
	pack_key(key, id);
	rc = storage_put(r->st, key, pw->data.data, pw->data.len, err);
	if (rc == CAIRN_EEXIST)
		rc = 0; /* same name, same bytes: the name is their hash */
	if (rc)
		return rc;
	if (r->npending + pw->n > r->pending_cap) {
		size_t ncap = r->pending_cap ? r->pending_cap : 1024;
		while (ncap < r->npending + pw->n)
			ncap *= 2;
		struct index_entry *p = realloc(r->pending, ncap * sizeof(*p));
		if (!p)
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		r->pending = p;
		r->pending_cap = ncap;
	}
	if (r->packs_listed && idset_put(&r->packs, id, 0))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	memcpy(r->pending + r->npending, pw->ents, pw->n * sizeof(*pw->ents));
	r->npending += pw->n;
	r->pending_packs++;
	r->ws.packs++;
	pack_writer_reset(pw);
	return 0;
}

static int refuse_failed(struct repo *r, struct cairn_err *err)
{
	return cairn_err_set(err, CAIRN_EIO,
			     "an earlier write to %s failed: refusing to write more", r->st->url);
}

static int note_pack(void *arg, const char *key, uint64_t size)
{
	struct repo *r = arg;
	uint8_t id[32];
	const char *slash = strrchr(key, '/');
	(void)size;
	if (slash && hex_decode(id, 32, slash + 1) == 0)
		return idset_put(&r->packs, id, 0);
	return 0;
}

/* 1 if the pack exists in the repository (as listed once per handle, plus
 * the packs this handle wrote since), 0 if not, <0 on error. */
static int pack_exists(struct repo *r, const uint8_t id[32], struct cairn_err *err)
{
	if (!r->packs_listed) {
		int rc = storage_list(r->st, "packs/", note_pack, r, err);
		if (rc)
			return rc < 0 ? rc : CAIRN_ENOMEM;
		r->packs_listed = 1;
	}
	return idset_get(&r->packs, id, NULL);
}

int repo_has_blob(struct repo *r, uint8_t type, const uint8_t id[32], struct cairn_err *err)
{
	struct blob_loc loc;
	int rc = repo_find_blob(r, id, &loc, err);
	if (rc == CAIRN_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (loc.type != type)
		return 0;
	if (idset_get(&r->mine, id, NULL))
		return 1;
	return pack_exists(r, loc.pack, err);
}

static int put_blob(struct repo *r, uint8_t type, const void *p, size_t n,
		    uint8_t id[32], int *added, int force, struct cairn_err *err);

int repo_put_blob(struct repo *r, uint8_t type, const void *p, size_t n,
		  uint8_t id[32], int *added, struct cairn_err *err)
{
	return put_blob(r, type, p, n, id, added, 0, err);
}

int repo_put_blob_force(struct repo *r, uint8_t type, const void *p, size_t n,
			uint8_t id[32], struct cairn_err *err)
{
	return put_blob(r, type, p, n, id, NULL, 1, err);
}

/* Whether blob `id` must be stored: 1 yes, 0 no (this process wrote it,
 * or the index has it in a pack that exists), or an error. */
static int blob_needed(struct repo *r, uint8_t type, const uint8_t id[32], int force,
		       struct cairn_err *err)
{
	struct blob_loc loc;
	if (idset_get(&r->mine, id, NULL))
		return 0;
	/* force (prune's repack): the cache names a pack about to go. */
	int rc = force ? CAIRN_ENOTFOUND : cache_lookup(r->cache, id, &loc, err);
	if (rc == CAIRN_ECORRUPT) {
		/* The cache is only a cache: start it over from index/. */
		note(r, "the local cache is damaged: rebuilding it from the repository");
		rc = repo_rebuild_index(r, err);
		if (rc == 0)
			rc = cache_lookup(r->cache, id, &loc, err);
	}
	if (rc == 0 && loc.type == type) {
		int have = pack_exists(r, loc.pack, err);
		if (have <= 0)
			return have < 0 ? have : 1; /* the index names a pack that is gone */
		return 0;
	}
	if (rc != 0 && rc != CAIRN_ENOTFOUND)
		return rc;
	return 1;
}

/* Appends a sealed blob to its open pack, writing the pack (and, every
 * INDEX_EVERY_PACKS packs, an index object) when it is full. */
static int add_sealed(struct repo *r, uint8_t type, const uint8_t id[32], const struct buf *sealed,
		      size_t n, struct cairn_err *err)
{
	struct pack_writer *pw = &r->pw[type == BLOB_TREE ? 1 : 0];
	int rc = pack_writer_add(pw, type, id, sealed->data, sealed->len, (uint32_t)n, err);
	if (rc)
		return rc;
	if (idset_put(&r->mine, id, 0))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	r->ws.new_blobs++;
	r->ws.new_bytes += n;
	r->ws.stored_bytes += sealed->len;
	if (pack_writer_size(pw) >= r->cfg.pack_size) {
		rc = write_pack(r, pw, err);
		if (!rc && r->pending_packs >= INDEX_EVERY_PACKS)
			rc = write_index(r, err);
	}
	return rc;
}

static int put_blob(struct repo *r, uint8_t type, const void *p, size_t n,
		    uint8_t id[32], int *added, int force, struct cairn_err *err)
{
	if (added)
		*added = 0;
	if (r->failed)
		return refuse_failed(r, err);
	if (n > UINT32_MAX)
		return cairn_err_set(err, CAIRN_EINTERNAL, "blob larger than 4 GiB");
	blob_id(id, r->keys, type, p, n);
	int rc = blob_needed(r, type, id, force, err);
	if (rc <= 0)
		return rc;
	buf_reset(&r->sealed);
	rc = blob_seal(r->sealer, r->keys, type, id, p, n, &r->sealed, err);
	rc = rc ? rc : add_sealed(r, type, id, &r->sealed, n, err);
	if (rc) {
		r->failed = 1;
		return rc;
	}
	if (added)
		*added = 1;
	return 0;
}

/* ---- batches ------------------------------------------------------------ */

/* Per-item buffers and worker sealers for a batch of n. */
static int batch_ready(struct repo *r, size_t n, struct cairn_err *err)
{
	if (n > r->nitems) {
		struct buf *v = realloc(r->items, n * sizeof(*v));
		if (!v)
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		for (size_t i = r->nitems; i < n; i++)
			v[i] = (struct buf)BUF_INIT;
		r->items = v;
		r->nitems = n;
	}
	for (unsigned k = 1; k < r->nworkers; k++)
		if (!r->wsealer[k] && !(r->wsealer[k] = sealer_new(r->zstd_level)))
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	return 0;
}

/* The item buffers keep their capacity between batches (no allocation
 * per blob); but if items [from, to) hold more than ITEMS_KEEP bytes of
 * capacity (long runs of large blobs), they are released, so memory stays
 * bounded whatever the blob sizes. */
#define ITEMS_KEEP (48u * 1024 * 1024)
static void items_trim(struct repo *r, size_t from, size_t to)
{
	size_t cap = 0;
	for (size_t i = from; i < to && i < r->nitems; i++)
		cap += r->items[i].cap;
	if (cap <= ITEMS_KEEP)
		return;
	for (size_t i = from; i < to && i < r->nitems; i++)
		buf_free(&r->items[i]);
}

struct put_batch {
	struct repo *r;
	uint8_t type;
	const struct blob_in *in;
	uint8_t (*ids)[32];
	uint8_t *need;  /* phase 2: seal item i */
	int *rc;
	struct cairn_err *errs;
};

static void put_hash(void *arg, size_t i, unsigned worker)
{
	struct put_batch *x = arg;
	(void)worker;
	blob_id(x->ids[i], x->r->keys, x->type, x->in[i].p, x->in[i].n);
}

static void put_seal(void *arg, size_t i, unsigned worker)
{
	struct put_batch *x = arg;
	if (!x->need[i])
		return;
	buf_reset(&x->r->items[i]);
	x->rc[i] = blob_seal(x->r->wsealer[worker], x->r->keys, x->type, x->ids[i], x->in[i].p,
			     x->in[i].n, &x->r->items[i], &x->errs[i]);
}

int repo_put_blobs(struct repo *r, uint8_t type, const struct blob_in *in, size_t n,
		   uint8_t (*ids)[32], struct cairn_err *err)
{
	if (r->failed)
		return refuse_failed(r, err);
	if (n <= 1 || r->nworkers <= 1) {
		for (size_t i = 0; i < n; i++) {
			int rc = put_blob(r, type, in[i].p, in[i].n, ids[i], NULL, 0, err);
			if (rc)
				return rc;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (in[i].n > UINT32_MAX)
			return cairn_err_set(err, CAIRN_EINTERNAL, "blob larger than 4 GiB");
	struct put_batch x = {r, type, in, ids, calloc(n, 1), calloc(n, sizeof(int)),
			      calloc(n, sizeof(struct cairn_err))};
	int rc = !x.need || !x.rc || !x.errs ? cairn_err_set(err, CAIRN_ENOMEM, "out of memory")
					     : batch_ready(r, n, err);
	if (!rc) {
		/* Hash on every core; look up in order; seal what is new on every
		 * core; append in order (so packs hold the file's order). */
		par_for(r->nworkers, n, put_hash, &x);
		for (size_t i = 0; i < n && !rc; i++) {
			int need = blob_needed(r, type, ids[i], 0, err);
			if (need < 0)
				rc = need;
			for (size_t j = 0; need > 0 && j < i; j++) /* twice in this batch */
				if (x.need[j] && !memcmp(ids[j], ids[i], 32))
					need = 0;
			x.need[i] = need > 0;
		}
	}
	if (!rc) {
		par_for(r->nworkers, n, put_seal, &x);
		for (size_t i = 0; i < n && !rc; i++) {
			if (!x.need[i])
				continue;
			if (x.rc[i]) {
				if (err)
					*err = x.errs[i];
				rc = x.rc[i];
			} else {
				rc = add_sealed(r, type, ids[i], &r->items[i], in[i].n, err);
			}
		}
		if (rc)
			r->failed = 1;
		items_trim(r, 0, n);
	}
	free(x.need);
	free(x.rc);
	free(x.errs);
	return rc;
}

int repo_flush(struct repo *r, struct cairn_err *err)
{
	if (r->failed)
		return refuse_failed(r, err);
	/* Order of writes: every pack durable, then the index naming them. */
	int rc = write_pack(r, &r->pw[0], err);
	rc = rc ? rc : write_pack(r, &r->pw[1], err);
	rc = rc ? rc : write_index(r, err);
	if (rc)
		r->failed = 1;
	return rc;
}

int repo_index_read(struct repo *r, const char *name, struct index_entry **out,
		    size_t *n, struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	char key[80], what[100];
	*out = NULL;
	*n = 0;
	snprintf(key, sizeof(key), "index/%s", name);
	snprintf(what, sizeof(what), "index object %.16s", name);
	int rc = storage_get(r->st, key, 0, STORAGE_WHOLE, &raw, err);
	rc = rc ? rc : obj_open(r->sealer, r->keys, INDEX_MAGIC, name, raw.data, raw.len,
				&plain, what, err);
	rc = rc ? rc : index_decode(plain.data, plain.len, out, n, err);
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

int repo_index_write(struct repo *r, const struct index_entry *e, size_t n,
		     char name[65], struct cairn_err *err)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	char key[80];
	int rc;
	if (index_encode(e, n, &plain)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	rc = obj_seal(r->sealer, r->keys, INDEX_MAGIC, plain.data, plain.len, &sealed, name, err);
	if (rc)
		goto out;
	snprintf(key, sizeof(key), "index/%s", name);
	rc = storage_put(r->st, key, sealed.data, sealed.len, err);
	if (rc == CAIRN_EEXIST)
		rc = 0; /* named by its hash: the same bytes */
out:
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

int repo_find_blob(struct repo *r, const uint8_t id[32], struct blob_loc *loc,
		   struct cairn_err *err)
{
	int rc = cache_lookup(r->cache, id, loc, err);
	if (rc == CAIRN_ECORRUPT) {
		note(r, "the local cache is damaged: rebuilding it from the repository");
		rc = repo_rebuild_index(r, err);
		rc = rc ? rc : cache_lookup(r->cache, id, loc, err);
	}
	if (rc == CAIRN_ENOTFOUND && idset_get(&r->mine, id, NULL)) {
		/* Written by this process, not yet flushed. */
		rc = repo_flush(r, err);
		rc = rc ? rc : cache_lookup(r->cache, id, loc, err);
	}
	if (rc == CAIRN_ENOTFOUND) {
		char hex[65];
		hex_encode(hex, id, 32);
		cairn_err_set(err, rc, "blob %s is not in the index", hex);
	}
	return rc;
}

int repo_get_blob(struct repo *r, uint8_t type, const uint8_t id[32],
		  struct buf *out, struct cairn_err *err)
{
	struct blob_loc loc;
	struct buf sealed = BUF_INIT;
	char key[80], phex[65];
	int rc = repo_find_blob(r, id, &loc, err);
	if (rc)
		return rc;
	pack_key(key, loc.pack);
	hex_encode(phex, loc.pack, 32);
	rc = storage_get(r->st, key, loc.offset, loc.sealed_len, &sealed, err);
	if (rc == 0)
		rc = blob_open(r->sealer, r->keys, type, id, sealed.data, sealed.len, loc.raw_len,
			       out, err);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND)
		cairn_err_prefix(err, "pack %s", phex);
	buf_free(&sealed);
	return rc;
}

/* One window of repo_get_blobs: items[off + i] hold the sealed bytes of
 * blob i, items[off + GET_WINDOW + i] its plaintext. */
struct get_batch {
	struct repo *r;
	uint8_t type;
	const struct blob_ref *refs;
	size_t base, w, off;
	struct blob_loc *loc;
	int *rc;
	struct cairn_err *errs;
};

#define GET_WINDOW 256
#define GET_WINDOW_BYTES (16u * 1024 * 1024)

static void get_open(void *arg, size_t i, unsigned worker)
{
	struct get_batch *x = arg;
	struct repo *r = x->r;
	struct buf *sealed = &r->items[x->off + i], *out = &r->items[x->off + GET_WINDOW + i];
	if (x->rc[i])
		return;
	x->rc[i] = blob_open(r->wsealer[worker], r->keys, x->type, x->refs[i].id, sealed->data,
			     sealed->len, x->loc[i].raw_len, out, &x->errs[i]);
	if (!x->rc[i] && out->len != x->refs[i].len)
		x->rc[i] = cairn_err_set(&x->errs[i], CAIRN_ECORRUPT,
					 "blob length differs from the tree");
	if (x->rc[i] == CAIRN_ECORRUPT || x->rc[i] == CAIRN_ENOTFOUND) {
		char phex[65];
		hex_encode(phex, x->loc[i].pack, 32);
		cairn_err_prefix(&x->errs[i], "pack %s", phex);
	}
}

/* Reads the sealed bytes of the window: neighbours in one pack (at most
 * GET_GAP apart) come in one read. */
#define GET_GAP (256u * 1024)
static void get_sealed(struct get_batch *x, struct buf *range)
{
	struct repo *r = x->r;
	for (size_t i = 0; i < x->w;) {
		if (x->rc[i]) {
			i++;
			continue;
		}
		size_t j = i + 1;
		uint64_t start = x->loc[i].offset, end = start + x->loc[i].sealed_len;
		while (j < x->w && !x->rc[j] && !memcmp(x->loc[j].pack, x->loc[i].pack, 32) &&
		       x->loc[j].offset >= end && x->loc[j].offset - end <= GET_GAP &&
		       x->loc[j].offset + x->loc[j].sealed_len - start <= 64u * 1024 * 1024) {
			end = x->loc[j].offset + x->loc[j].sealed_len;
			j++;
		}
		char key[80];
		struct cairn_err e;
		pack_key(key, x->loc[i].pack);
		int rc = storage_get(r->st, key, start, end - start, range, &e);
		for (size_t k = i; k < j; k++) {
			if (rc) {
				x->rc[k] = rc;
				x->errs[k] = e;
				if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
					char phex[65];
					hex_encode(phex, x->loc[k].pack, 32);
					cairn_err_prefix(&x->errs[k], "pack %s", phex);
				}
				continue;
			}
			struct buf *it = &r->items[x->off + k];
			buf_reset(it);
			if (buf_append(it, range->data + (x->loc[k].offset - start),
				       x->loc[k].sealed_len))
				x->rc[k] = cairn_err_set(&x->errs[k], CAIRN_ENOMEM, "out of memory");
		}
		i = j;
	}
}

/* Locates and reads window [base, ...) of refs into x (on the calling
 * thread: the cache and the storage handle stay on it).  0, or a fatal
 * error (damage is recorded per blob instead). */
static int get_fetch(struct get_batch *x, const struct blob_ref *refs, size_t n, size_t base,
		     struct buf *range, struct cairn_err *err)
{
	uint64_t bytes = 0;
	x->base = base;
	x->refs = refs + base;
	x->w = 0;
	while (base + x->w < n && x->w < GET_WINDOW && (x->w == 0 || bytes < GET_WINDOW_BYTES))
		bytes += refs[base + x->w++].len;
	for (size_t i = 0; i < x->w; i++) {
		x->rc[i] = repo_find_blob(x->r, x->refs[i].id, &x->loc[i], &x->errs[i]);
		if (x->rc[i] && x->rc[i] != CAIRN_ENOTFOUND && x->rc[i] != CAIRN_ECORRUPT) {
			if (err)
				*err = x->errs[i];
			return x->rc[i];
		}
	}
	get_sealed(x, range);
	return 0;
}

struct get_drain {
	struct get_batch *x;
	int (*sink)(void *arg, size_t i, const uint8_t *p, size_t len);
	void *arg;
	struct cairn_err *err;
	int rc;
};

/* Hands an opened window to the sink, in order, up to its first damaged
 * blob. */
static void get_drain_run(void *p)
{
	struct get_drain *d = p;
	struct get_batch *x = d->x;
	for (size_t i = 0; i < x->w && !d->rc; i++) {
		if (x->rc[i]) {
			if (d->err)
				*d->err = x->errs[i];
			d->rc = x->rc[i];
		} else {
			struct buf *out = &x->r->items[x->off + GET_WINDOW + i];
			d->rc = d->sink(d->arg, x->base + i, out->data, out->len);
		}
	}
	items_trim(x->r, x->off, x->off + 2 * GET_WINDOW);
}

int repo_get_blobs(struct repo *r, uint8_t type, const struct blob_ref *refs, size_t n,
		   int (*sink)(void *arg, size_t i, const uint8_t *p, size_t len), void *arg,
		   struct cairn_err *err)
{
	/* Two windows in flight: while the calling thread hands window k to
	 * the sink, the other threads open window k + 1. */
	struct get_batch w[2];
	struct buf range = BUF_INIT;
	int rc = batch_ready(r, 4 * GET_WINDOW, err);
	for (int k = 0; k < 2 && !rc; k++) {
		if (!r->gloc[k]) { /* once per handle: no allocation per file */
			r->gloc[k] = calloc(GET_WINDOW, sizeof(struct blob_loc));
			r->grc[k] = calloc(GET_WINDOW, sizeof(int));
			r->gerrs[k] = calloc(GET_WINDOW, sizeof(struct cairn_err));
		}
		if (!r->gloc[k] || !r->grc[k] || !r->gerrs[k])
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		w[k] = (struct get_batch){r, type, NULL, 0, 0, (size_t)k * 2 * GET_WINDOW,
					  r->gloc[k], r->grc[k], r->gerrs[k]};
	}
	struct get_batch *cur = &w[0], *next = &w[1];
	if (!rc && n > 0) {
		rc = get_fetch(cur, refs, n, 0, &range, err);
		if (!rc)
			par_for(r->nworkers, cur->w, get_open, cur);
	}
	while (!rc && n > 0) {
		size_t after = cur->base + cur->w;
		struct get_drain d = {cur, sink, arg, err, 0};
		if (after >= n) {
			get_drain_run(&d);
			rc = d.rc;
			break;
		}
		struct cairn_err ferr;
		int frc = get_fetch(next, refs, n, after, &range, &ferr);
		if (frc)
			next->w = 0; /* nothing to open: drain cur, then fail */
		par_for_with(r->nworkers, next->w, get_open, next, get_drain_run, &d);
		rc = d.rc;
		if (!rc && frc) {
			if (err)
				*err = ferr;
			rc = frc;
		}
		struct get_batch *t = cur;
		cur = next;
		next = t;
	}
	buf_free(&range);
	return rc;
}

int repo_get_tree(struct repo *r, const uint8_t id[32], struct tree *t,
		  struct cairn_err *err)
{
	struct buf b = BUF_INIT;
	int rc = repo_get_blob(r, BLOB_TREE, id, &b, err);
	rc = rc ? rc : tree_decode(b.data, b.len, t, err);
	buf_free(&b);
	return rc;
}

int repo_node_blobs(struct repo *r, struct node *nd, struct cairn_err *err)
{
	if (nd->type != NODE_FILE || !nd->has_list || (nd->list_count && nd->nblobs))
		return 0;
	struct buf b = BUF_INIT;
	struct blob_ref *base = NULL;
	size_t nbase = 0;
	int rc = repo_get_blob(r, BLOB_TREE, nd->list_id, &b, err);
	rc = rc ? rc : list_decode(b.data, b.len, &base, &nbase, err);
	rc = rc ? rc : node_apply_list(nd, base, nbase, err);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND)
		cairn_err_prefix(err, "blob list of %s", nd->name);
	free(base);
	buf_free(&b);
	return rc;
}

int repo_node_store_list(struct repo *r, struct node *nd, const struct node *prev,
			 struct cairn_err *err)
{
	free(nd->patch);
	nd->patch = NULL;
	nd->npatch = 0;
	nd->has_list = 0;
	if (nd->type != NODE_FILE || nd->nblobs < TREE_LIST_MIN)
		return 0;
	struct buf b = BUF_INIT;
	int rc = 0;
	if (prev && prev->type == NODE_FILE && prev->has_list) {
		/* Patch over prev's list blob when few entries differ. */
		struct blob_ref *base = NULL;
		size_t nbase = 0, nd_diff = 0, limit = nd->nblobs / 8;
		struct cairn_err e;
		if (repo_get_blob(r, BLOB_TREE, prev->list_id, &b, &e) == 0 &&
		    list_decode(b.data, b.len, &base, &nbase, &e) == 0) {
			/* One pass: collect differences until there are too many. */
			nd->patch = malloc((limit + 1) * sizeof(*nd->patch));
			if (!nd->patch) {
				free(base);
				buf_free(&b);
				return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			}
			for (size_t i = 0; i < nd->nblobs && nd_diff <= limit; i++)
				if (i >= nbase || base[i].len != nd->blobs[i].len ||
				    memcmp(base[i].id, nd->blobs[i].id, 32) != 0) {
					nd->patch[nd_diff].idx = i;
					nd->patch[nd_diff++].ref = nd->blobs[i];
				}
			if (nd_diff <= limit) {
				nd->npatch = nd_diff;
				nd->has_list = 1;
				memcpy(nd->list_id, prev->list_id, 32);
				nd->list_count = nd->nblobs;
			} else {
				free(nd->patch);
				nd->patch = NULL;
			}
		}
		free(base);
		if (nd->has_list) {
			buf_free(&b);
			return 0;
		}
	}
	rc = list_encode(nd->blobs, nd->nblobs, &b);
	if (rc)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = rc ? rc : repo_put_blob(r, BLOB_TREE, b.data, b.len, nd->list_id, NULL, err);
	if (!rc) {
		nd->has_list = 1;
		nd->list_count = nd->nblobs;
	}
	buf_free(&b);
	return rc;
}

int repo_put_tree(struct repo *r, struct tree *t, uint8_t id[32],
		  struct cairn_err *err)
{
	struct buf b = BUF_INIT;
	int rc = tree_encode(t, &b, err);
	rc = rc ? rc : repo_put_blob(r, BLOB_TREE, b.data, b.len, id, NULL, err);
	buf_free(&b);
	return rc;
}

/* ---- snapshots ---------------------------------------------------------- */

int repo_snapshot_write(struct repo *r, struct snapshot *s, struct cairn_err *err)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	char key[80];
	/* Order of writes: packs and their index first, the snapshot last. */
	int rc = repo_flush(r, err);
	if (rc)
		return rc;
	if (snapshot_encode(s, &plain)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	rc = obj_seal(r->sealer, r->keys, SNAP_MAGIC, plain.data, plain.len, &sealed, s->name, err);
	if (rc)
		goto out;
	snprintf(key, sizeof(key), "snapshots/%s", s->name);
	rc = storage_put(r->st, key, sealed.data, sealed.len, err);
out:
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

static int load_snapshot(struct repo *r, const char *name, struct snapshot *s,
			 struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	char key[80], what[100];
	snprintf(key, sizeof(key), "snapshots/%s", name);
	snprintf(what, sizeof(what), "snapshot %.16s", name);
	int rc = storage_get(r->st, key, 0, STORAGE_WHOLE, &raw, err);
	rc = rc ? rc : obj_open(r->sealer, r->keys, SNAP_MAGIC, name, raw.data, raw.len,
				&plain, what, err);
	rc = rc ? rc : snapshot_decode(plain.data, plain.len, s, err);
	if (rc == 0)
		snprintf(s->name, sizeof(s->name), "%s", name);
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

static int collect_snap(void *arg, const char *key, uint64_t size)
{
	struct name_list *l = arg;
	(void)size;
	const char *name = key + strlen("snapshots/");
	if (strlen(name) != 64)
		return 0;
	return strlist_add(&l->names, &l->n, name);
}

static int snap_time_cmp(const void *a, const void *b)
{
	const struct snapshot *x = a, *y = b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

int repo_snapshots_load(struct repo *r, struct snapshot **out, size_t *n,
			void (*bad)(void *arg, const char *name, const struct cairn_err *e),
			void *bad_arg, struct cairn_err *err)
{
	struct name_list l = {NULL, 0};
	struct snapshot *s = NULL;
	size_t ns = 0;
	*out = NULL;
	*n = 0;
	int rc = storage_list(r->st, "snapshots/", collect_snap, &l, err);
	if (rc)
		goto out;
	s = calloc(l.n ? l.n : 1, sizeof(*s));
	if (!s) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct cairn_err e;
		int lrc = load_snapshot(r, l.names[i], &s[ns], &e);
		if (lrc == 0)
			ns++;
		else if (bad)
			bad(bad_arg, l.names[i], &e);
	}
	qsort(s, ns, sizeof(*s), snap_time_cmp);
	*out = s;
	*n = ns;
	s = NULL;
out:
	free(s);
	strlist_free(l.names, l.n);
	return rc;
}

void repo_snapshots_free(struct snapshot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		snapshot_free(&s[i]);
	free(s);
}

int repo_snapshot_find(struct repo *r, const char *ref, struct snapshot *out,
		       struct cairn_err *err)
{
	struct snapshot *all = NULL;
	size_t n = 0, hits = 0, hit = 0;
	size_t len = strlen(ref);
	int latest = strcmp(ref, "latest") == 0;
	if (!latest && (len < 8 || len > 64 || strspn(ref, "0123456789abcdef") != len))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "snapshot '%s': give 'latest', a full id or at least 8 hex digits of one",
				     ref);
	int rc = repo_snapshots_load(r, &all, &n, NULL, NULL, err);
	if (rc)
		return rc;
	if (latest) {
		hits = n ? 1 : 0;
		hit = n ? n - 1 : 0;
	} else {
		for (size_t i = 0; i < n; i++)
			if (strncmp(all[i].name, ref, len) == 0) {
				hits++;
				hit = i;
			}
	}
	if (hits == 0)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, latest ? "the repository has no snapshots"
							      : "no snapshot %s", ref);
	else if (hits > 1)
		rc = cairn_err_set(err, CAIRN_EAMBIG, "snapshot prefix %s matches %zu snapshots", ref,
				   hits);
	else {
		*out = all[hit];
		memset(&all[hit], 0, sizeof(all[hit]));
	}
	repo_snapshots_free(all, n);
	return rc;
}

/* ---- keys --------------------------------------------------------------- */

struct key_collect {
	struct repo *r;
	struct key_info *v;
	size_t n;
	struct cairn_err *err;
};

static int collect_key(void *arg, const char *key, uint64_t size)
{
	struct key_collect *kc = arg;
	struct buf b = BUF_INIT;
	(void)size;
	if (strlen(key) != 5 + 64)
		return 0;
	int rc = storage_get(kc->r->st, key, 0, STORAGE_WHOLE, &b, kc->err);
	struct key_info info;
	if (!rc)
		rc = keyfile_info(b.data, b.len, &info, kc->err);
	buf_free(&b);
	if (rc) {
		cairn_err_prefix(kc->err, "%s", key);
		return rc;
	}
	struct key_info *v = realloc(kc->v, (kc->n + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(kc->err, CAIRN_ENOMEM, "out of memory");
	kc->v = v;
	v[kc->n++] = info;
	return 0;
}

int repo_key_list(struct repo *r, struct key_info **out, size_t *n,
		  struct cairn_err *err)
{
	struct key_collect kc = {r, NULL, 0, err};
	int rc = storage_list(r->st, "keys/", collect_key, &kc, err);
	if (rc) {
		free(kc.v);
		return rc;
	}
	*out = kc.v;
	*n = kc.n;
	return 0;
}

int repo_key_add(struct repo *r, const char *pass, size_t pass_len,
		 const struct kdf_params *kdf, const char *host, const char *user,
		 char name[65], struct cairn_err *err)
{
	struct buf b = BUF_INIT;
	struct key_info info;
	char hbuf[256], key[80];
	default_identity(&host, &user, hbuf, sizeof(hbuf));
	int rc = keyfile_make(r->keys->master, pass, pass_len, kdf, host, user, &b, &info, err);
	if (!rc) {
		snprintf(key, sizeof(key), "keys/%s", info.name);
		rc = storage_put(r->st, key, b.data, b.len, err);
	}
	if (!rc)
		memcpy(name, info.name, 65);
	buf_free(&b);
	return rc;
}

int repo_key_remove(struct repo *r, const char *ref, struct cairn_err *err)
{
	struct key_info *v = NULL;
	size_t n = 0, hits = 0, hit = 0, len = strlen(ref);
	int rc = repo_key_list(r, &v, &n, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (len >= 8 && strncmp(v[i].name, ref, len) == 0) {
			hits++;
			hit = i;
		}
	if (hits != 1) {
		if (hits)
			rc = cairn_err_set(err, CAIRN_EAMBIG, "key prefix %s matches %zu keys", ref, hits);
		else
			rc = cairn_err_set(err, CAIRN_ENOTFOUND,
					   "no key %s (give at least 8 hex digits of a name from 'cairn key list')",
					   ref);
	} else if (strcmp(v[hit].name, r->key_name) == 0) {
		rc = cairn_err_set(err, CAIRN_EUSAGE,
				   "key %.8s is the one in use: open the repository with another passphrase to remove it",
				   v[hit].name);
	} else if (n == 1) {
		rc = cairn_err_set(err, CAIRN_EUSAGE, "refusing to remove the last key");
	} else {
		char key[80];
		snprintf(key, sizeof(key), "keys/%s", v[hit].name);
		rc = storage_del(r->st, key, err);
	}
	free(v);
	return rc;
}

/* For check: every blob in the cache. */
int cache_each_blob_of(struct repo *r, int (*cb)(void *, const struct index_entry *),
		       void *arg, struct cairn_err *err)
{
	return cache_each_blob(r->cache, cb, arg, err);
}

int cache_locs_of(struct repo *r, const uint8_t id[32], struct blob_loc *locs,
		  size_t max, size_t *n, struct cairn_err *err)
{
	return cache_lookup_all(r->cache, id, locs, max, n, err);
}
