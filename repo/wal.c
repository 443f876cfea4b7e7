/* wal.c — archived WAL entries; see wal.h. */
#include "repo/wal.h"
#include "repo/io.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAL_MAGIC1 "CAIRNWL1"
#define WAL_MAGIC "CAIRNWL2"
#define WAL_LIST_HASH_TYPE 0x58 /* 'X' */
#define WAL_HASH_TYPE 0x57

int wal_cluster_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CLUSTER_NAME_MAX || name[0] == '.' || strstr(name, ".."))
		return -1;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n ? 0 : -1;
}

/* PostgreSQL's names: hex digits in upper case, '.', and lowercase
 * suffixes ("partial", "backup", "history"). */
static int wal_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > WAL_NAME_MAX || name[0] == '.' || strstr(name, ".."))
		return -1;
	return strspn(name, "0123456789ABCDEFabcdefghijklmnopqrstuvwxyz.") == n ? 0 : -1;
}

static int entry_key(char *out, size_t n, const char *cluster, const char *name,
		     struct cairn_err *err)
{
	if (wal_cluster_name_ok(cluster))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "invalid cluster name '%s': use 1-64 of a-z 0-9 _ . -", cluster);
	if (wal_name_ok(name))
		return cairn_err_set(err, CAIRN_EUSAGE, "'%s' is not a WAL file name", name);
	int len = snprintf(out, n, "wal/%s/", cluster);
	for (const char *p = name; *p && (size_t)len + 1 < n; p++)
		out[len++] = (char)tolower((unsigned char)*p);
	out[len] = '\0';
	return 0;
}

static int encode_entry(const struct wal_entry *e, struct buf *out)
{
	buf_reset(out);
	int rc = buf_put_str16(out, e->cluster, strlen(e->cluster));
	rc = rc ? rc : buf_put_str16(out, e->name, strlen(e->name));
	rc = rc ? rc : buf_put_u64(out, e->size);
	rc = rc ? rc : buf_append(out, e->hash, 32);
	rc = rc ? rc : buf_put_u64(out, (uint64_t)e->pushed_ns);
	rc = rc ? rc : buf_put_uvar(out, e->nblobs);
	for (size_t i = 0; i < e->nblobs && !rc; i++) {
		rc = buf_append(out, e->blobs[i].id, 32);
		rc = rc ? rc : buf_put_uvar(out, e->blobs[i].len);
	}
	return rc;
}

static int decode_entry(const uint8_t *p, size_t n, struct wal_entry *e)
{
	struct rd r = rd_make(p, n);
	memset(e, 0, sizeof(*e));
	uint16_t cl = rd_u16(&r);
	const uint8_t *c = rd_bytes(&r, cl);
	uint16_t nl = rd_u16(&r);
	const uint8_t *nm = rd_bytes(&r, nl);
	if (r.bad || cl > CLUSTER_NAME_MAX || nl > WAL_NAME_MAX)
		return -1;
	memcpy(e->cluster, c, cl);
	memcpy(e->name, nm, nl);
	e->size = rd_u64(&r);
	rd_copy(&r, e->hash, 32);
	e->pushed_ns = (int64_t)rd_u64(&r);
	uint64_t nb = rd_uvar(&r);
	if (r.bad || nb > rd_left(&r) / 33)
		return -1;
	e->blobs = calloc(nb ? nb : 1, sizeof(*e->blobs));
	if (!e->blobs)
		return -1;
	e->nblobs = nb;
	uint64_t total = 0;
	for (uint64_t i = 0; i < nb; i++) {
		rd_copy(&r, e->blobs[i].id, 32);
		uint64_t len = rd_uvar(&r);
		if (len > UINT32_MAX)
			r.bad = 1;
		e->blobs[i].len = (uint32_t)len;
		total += len;
	}
	if (r.bad || rd_left(&r) || total != e->size) {
		wal_entry_free(e);
		return -1;
	}
	return 0;
}

void wal_entry_free(struct wal_entry *e)
{
	if (e) {
		free(e->blobs);
		e->blobs = NULL;
		e->nblobs = 0;
	}
}

/* WL2's hash: over 0x58 and the list (ids and lengths). */
static void list_hash(struct repo *r, const struct wal_entry *e, uint8_t out[32])
{
	const struct repo_keys *k = repo_get_keys(r);
	crypto_generichash_state hs;
	uint8_t type = WAL_LIST_HASH_TYPE, len[4];
	crypto_generichash_init(&hs, k->id_key, sizeof(k->id_key), 32);
	crypto_generichash_update(&hs, &type, 1);
	for (size_t i = 0; i < e->nblobs; i++) {
		le_put32(len, e->blobs[i].len);
		crypto_generichash_update(&hs, e->blobs[i].id, 32);
		crypto_generichash_update(&hs, len, 4);
	}
	crypto_generichash_final(&hs, out, 32);
}

static int load_entry(struct repo *r, struct sealer *s, const char *key, const char *cluster,
		      const char *name, struct wal_entry *e, struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	char what[128];
	snprintf(what, sizeof(what), "WAL entry %s of cluster %s", name, cluster);
	int rc = storage_get(repo_get_storage(r), key, 0, STORAGE_WHOLE, &raw, err);
	if (rc == CAIRN_ENOTFOUND)
		cairn_err_set(err, rc, "%s is not archived", what);
	/* Entries written before WL2 are read as ever. */
	int v1 = !rc && raw.len >= 8 && !memcmp(raw.data, WAL_MAGIC1, 8);
	rc = rc ? rc : obj_open(s, repo_get_keys(r), v1 ? WAL_MAGIC1 : WAL_MAGIC, NULL, raw.data,
				raw.len, &plain, what, err);
	if (!rc && (decode_entry(plain.data, plain.len, e) ||
		    strcmp(e->cluster, cluster) || strcasecmp(e->name, name))) {
		wal_entry_free(e);
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "%s is malformed or belongs to another name",
				   what);
	}
	if (!rc) {
		e->version = v1 ? 1 : 2;
		uint8_t h[32];
		if (!v1 && (list_hash(r, e, h), sodium_memcmp(h, e->hash, 32) != 0)) {
			wal_entry_free(e);
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s does not match its recorded hash", what);
		}
	}
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

int repo_wal_stat(struct repo *r, const char *cluster, const char *name, struct wal_entry *e,
		  struct cairn_err *err)
{
	char key[160];
	memset(e, 0, sizeof(*e));
	int rc = entry_key(key, sizeof(key), cluster, name, err);
	if (rc)
		return rc;
	struct sealer *s = sealer_new(1);
	if (!s)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = load_entry(r, s, key, cluster, name, e, err);
	sealer_free(s);
	return rc;
}

int repo_wal_push(struct repo *r, const char *cluster, const char *name, int fd, int *already,
		  struct cairn_err *err)
{
	struct blob_in *bin = NULL;
	uint8_t (*bids)[32] = NULL;
	const struct fastcdc *cdc = repo_get_chunker(r);
	const struct repo_keys *k = repo_get_keys(r);
	struct wal_entry e;
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	struct sealer *s = NULL;
	char key[160], oname[65];
	size_t cap = 2 * (size_t)cdc->max, have = 0, bcap = 0;
	uint8_t *buf = NULL;
	int rc, eof = 0;

	*already = 0;
	memset(&e, 0, sizeof(e));
	rc = entry_key(key, sizeof(key), cluster, name, err);
	if (rc)
		return rc;
	if (cap < 4u << 20) /* larger only costs page faults: every push is a new process */
		cap = 4u << 20;
	buf = malloc(cap);
	s = sealer_new(1);
	if (!buf || !s) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(e.cluster, sizeof(e.cluster), "%s", cluster);
	snprintf(e.name, sizeof(e.name), "%s", name);
	while (!eof || have) {
		while (!eof && have < cap) {
			ssize_t got = read(fd, buf + have, cap - have);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				rc = cairn_err_errno(err, errno, "cannot read %s", name);
				goto out;
			}
			if (got == 0)
				eof = 1;
			have += (size_t)got;
			e.size += (uint64_t)got;
		}
		/* Cut, and store the pieces as one batch (hashed and sealed on
		 * every core). */
		size_t off = 0, nb = 0;
		while (off < have) {
			size_t n = fastcdc_cut(cdc, buf + off, have - off, eof);
			if (n == 0)
				break;
			if (nb == bcap) {
				bcap = bcap ? bcap * 2 : 512;
				struct blob_in *v = realloc(bin, bcap * sizeof(*v));
				uint8_t(*ids)[32] = v ? realloc(bids, bcap * 32) : NULL;
				if (v)
					bin = v;
				if (!ids) {
					rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
					goto out;
				}
				bids = ids;
			}
			bin[nb].p = buf + off;
			bin[nb++].n = n;
			off += n;
		}
		rc = repo_put_blobs(r, BLOB_DATA, bin, nb, bids, err);
		if (rc)
			goto out;
		struct blob_ref *grown = realloc(e.blobs, (e.nblobs + nb + 1) * sizeof(*grown));
		if (!grown) {
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
		e.blobs = grown;
		for (size_t i = 0; i < nb; i++) {
			memcpy(e.blobs[e.nblobs].id, bids[i], 32);
			e.blobs[e.nblobs++].len = (uint32_t)bin[i].n;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	list_hash(r, &e, e.hash);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e.pushed_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	/* Order of writes: packs and index durable, then the entry. */
	rc = repo_flush(r, err);
	if (rc)
		goto out;
	if (encode_entry(&e, &plain)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	rc = obj_seal(s, k, WAL_MAGIC, plain.data, plain.len, &sealed, oname, err);
	rc = rc ? rc : storage_put(repo_get_storage(r), key, sealed.data, sealed.len, err);
	if (rc == CAIRN_EEXIST) {
		/* Archived before: the same content is fine (PostgreSQL may
		 * retry after a crash), other content is an error. */
		struct wal_entry old;
		rc = load_entry(r, s, key, cluster, name, &old, err);
		if (rc == 0) {
			/* Same chunker, same content: same blob list (this also
			 * compares with WL1 entries, whose hash is another). */
			int same = old.size == e.size && old.nblobs == e.nblobs;
			for (size_t i = 0; same && i < e.nblobs; i++)
				same = old.blobs[i].len == e.blobs[i].len &&
				       !sodium_memcmp(old.blobs[i].id, e.blobs[i].id, 32);
			if (same)
				*already = 1;
			else
				rc = cairn_err_set(err, CAIRN_EEXIST,
						   "%s is already archived for cluster %s with different content: "
						   "refusing to overwrite it", name, cluster);
			wal_entry_free(&old);
		}
	}
out:
	wal_entry_free(&e);
	buf_free(&plain);
	buf_free(&sealed);
	sealer_free(s);
	free(buf);
	free(bin);
	free(bids);
	return rc;
}

struct fetch_sink {
	int fd;
	const char *name;
	crypto_generichash_state *hs; /* WL1: the content hash */
	uint64_t total;
	struct cairn_err *err;
};

static int fetch_write(void *arg, size_t i, const uint8_t *p, size_t n)
{
	struct fetch_sink *f = arg;
	(void)i;
	if (f->hs)
		crypto_generichash_update(f->hs, p, n);
	f->total += n;
	if (io_write_all(f->fd, p, n))
		return cairn_err_errno(f->err, errno, "cannot write %s", f->name);
	return 0;
}

int repo_wal_fetch(struct repo *r, const char *cluster, const char *name, int fd,
		   struct cairn_err *err)
{
	struct wal_entry e;
	crypto_generichash_state hs;
	uint8_t type = WAL_HASH_TYPE, hash[32];
	int rc = repo_wal_stat(r, cluster, name, &e, err);
	if (rc)
		return rc;
	/* Every blob is verified as it is opened (in parallel); a WL2 entry's
	 * hash over the list was checked when it was loaded, a WL1 entry's
	 * hash is over the content. */
	struct fetch_sink f = {fd, name, e.version == 1 ? &hs : NULL, 0, err};
	if (f.hs) {
		const struct repo_keys *k = repo_get_keys(r);
		crypto_generichash_init(&hs, k->id_key, sizeof(k->id_key), 32);
		crypto_generichash_update(&hs, &type, 1);
	}
	rc = repo_get_blobs(r, BLOB_DATA, e.blobs, e.nblobs, fetch_write, &f, err);
	if (rc == CAIRN_ENOTFOUND)
		rc = CAIRN_ECORRUPT; /* the entry names a blob nobody has */
	if (!rc && f.hs)
		crypto_generichash_final(&hs, hash, 32);
	if (!rc && (f.total != e.size || (f.hs && sodium_memcmp(hash, e.hash, 32) != 0)))
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "WAL file %s does not match its recorded hash", name);
	if (rc == CAIRN_ECORRUPT)
		cairn_err_prefix(err, "WAL %s of cluster %s", name, cluster);
	wal_entry_free(&e);
	return rc;
}

struct wl {
	int (*cb)(void *arg, const char *name, uint64_t size);
	void *arg;
	size_t plen;
};

/* Object keys are lower case; PostgreSQL writes the hex parts of its file
 * names in upper case and the suffix (partial, backup, history) in lower. */
static void pg_spelling(char *name)
{
	char *last = strrchr(name, '.');
	int has_suffix = last && (!strcmp(last, ".partial") || !strcmp(last, ".backup") ||
				  !strcmp(last, ".history"));
	for (char *p = name; *p && (!has_suffix || p < last); p++)
		*p = (char)toupper((unsigned char)*p);
}

static int wal_list_one(void *arg, const char *key, uint64_t size)
{
	struct wl *w = arg;
	char name[WAL_NAME_MAX + 1];
	const char *p = key + w->plen;
	size_t n = strlen(p);
	if (n == 0 || n > WAL_NAME_MAX || strchr(p, '/'))
		return 0;
	memcpy(name, p, n + 1);
	pg_spelling(name);
	return w->cb(w->arg, name, size);
}

int repo_wal_list(struct repo *r, const char *cluster,
		  int (*cb)(void *arg, const char *name, uint64_t obj_size), void *arg,
		  struct cairn_err *err)
{
	char prefix[100];
	if (wal_cluster_name_ok(cluster))
		return cairn_err_set(err, CAIRN_EUSAGE, "invalid cluster name '%s'", cluster);
	snprintf(prefix, sizeof(prefix), "wal/%s/", cluster);
	struct wl w = {cb, arg, strlen(prefix)};
	return storage_list(repo_get_storage(r), prefix, wal_list_one, &w, err);
}

struct cl {
	int (*cb)(void *arg, const char *cluster);
	void *arg;
	char **seen;
	size_t n;
};

static int cluster_one(void *arg, const char *key, uint64_t size)
{
	struct cl *c = arg;
	char name[CLUSTER_NAME_MAX + 1];
	(void)size;
	const char *p = key + 4, *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) > CLUSTER_NAME_MAX)
		return 0;
	memcpy(name, p, (size_t)(slash - p));
	name[slash - p] = '\0';
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->seen[i], name))
			return 0;
	if (strlist_add(&c->seen, &c->n, name))
		return CAIRN_ENOMEM;
	return 0;
}

int repo_wal_clusters(struct repo *r, int (*cb)(void *arg, const char *cluster), void *arg,
		      struct cairn_err *err)
{
	struct cl c = {cb, arg, NULL, 0};
	int rc = storage_list(repo_get_storage(r), "wal/", cluster_one, &c, err);
	for (size_t i = 0; i < c.n && !rc; i++)
		rc = cb(arg, c.seen[i]);
	strlist_free(c.seen, c.n);
	return rc;
}
