/*
 * treebuild.c — trees from entries in archive order; see treebuild.h.
 *
 * Every entry is a `struct tb_ent` holding the tree node it will become,
 * its parent, and (for folders) its children.  Entries are found by
 * (parent, name) through one chained hash table, so a folder of a million
 * files costs no quadratic search.  tb_finish walks the folders depth
 * first and moves each entry's node into its parent's tree (tree_encode
 * sorts them), storing every tree before the tree that names it (Merkle).
 *
 * File data: the bytes are copied into a buffer of twice the chunker's
 * largest chunk and cut there.  fastcdc_cut's boundaries do not depend on
 * how the bytes are fed (fastcdc.h), so a file gives the same blobs here
 * as in repo/backup.c, and backups of either kind share them.
 */
#include "repo/treebuild.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest path accepted, in bytes (PostgreSQL's MAXPGPATH is 1024). */
#define TB_PATH_MAX 4096

struct tb_ent {
	struct node nd;          /* what the tree will hold; nd.name owned */
	struct tb_ent *parent;   /* NULL for the root */
	struct tb_ent **kids;    /* folders: children, in arrival order */
	size_t nkids, kcap;
	struct tb_ent *hnext;    /* hash chain */
};

struct tree_builder {
	struct repo *r;
	struct tb_ent root;
	struct tb_ent **buckets;
	size_t nbuckets, count;
	uint8_t *buf;            /* file data not yet cut */
	size_t fixed;            /* the open file is cut every `fixed` bytes */
	struct blob_in *bin;     /* the pieces cut from buf, one batch */
	uint8_t (*bids)[32];
	size_t bcap;
	size_t bufsize, have;
	struct tb_ent *open;     /* the file being written, or NULL */
	int failed;              /* sticky error code */
	struct cairn_err ferr;   /* ... and its message */
	int finished;
	struct tb_stats st;
};

/* ---- errors -------------------------------------------------------------- */

/* Records rc (with the message already in *e) as the builder's sticky
 * failure and copies it out. */
static int tb_fail(struct tree_builder *tb, int rc, const struct cairn_err *e,
		   struct cairn_err *err)
{
	tb->failed = rc;
	tb->ferr = *e;
	tb->ferr.code = rc;
	if (err)
		*err = tb->ferr;
	return rc;
}

static int tb_refuse(struct tree_builder *tb, struct cairn_err *err)
{
	if (tb->failed) {
		if (err)
			*err = tb->ferr;
		return tb->failed;
	}
	if (tb->finished)
		return cairn_err_set(err, CAIRN_EUSAGE, "tree builder: already finished");
	return 0;
}

/* ---- the table of entries ------------------------------------------------- */

static size_t ent_hash(const struct tb_ent *parent, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	uintptr_t p = (uintptr_t)parent;
	for (size_t i = 0; i < sizeof(p); i++) {
		h ^= (uint8_t)(p >> (8 * i));
		h *= 1099511628211ull;
	}
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)name[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

static struct tb_ent *ent_find(struct tree_builder *tb, const struct tb_ent *parent,
			       const char *name, size_t len)
{
	if (!tb->nbuckets)
		return NULL;
	struct tb_ent *e = tb->buckets[ent_hash(parent, name, len) & (tb->nbuckets - 1)];
	for (; e; e = e->hnext)
		if (e->parent == parent && strlen(e->nd.name) == len && !memcmp(e->nd.name, name, len))
			return e;
	return NULL;
}

static int table_grow(struct tree_builder *tb)
{
	size_t n = tb->nbuckets ? tb->nbuckets * 2 : 1024;
	struct tb_ent **b = calloc(n, sizeof(*b));
	if (!b)
		return CAIRN_ENOMEM;
	for (size_t i = 0; i < tb->nbuckets; i++) {
		struct tb_ent *e = tb->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			size_t h = ent_hash(e->parent, e->nd.name, strlen(e->nd.name)) & (n - 1);
			e->hnext = b[h];
			b[h] = e;
		}
	}
	free(tb->buckets);
	tb->buckets = b;
	tb->nbuckets = n;
	return 0;
}

static void table_remove(struct tree_builder *tb, struct tb_ent *e)
{
	size_t h = ent_hash(e->parent, e->nd.name, strlen(e->nd.name)) & (tb->nbuckets - 1);
	struct tb_ent **pp = &tb->buckets[h];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = e->hnext;
		tb->count--;
	}
}

static void ent_free(struct tb_ent *e)
{
	node_free(&e->nd);
	free(e->kids);
	free(e);
}

/* Removes and frees everything below folder e (e itself stays). */
static void drop_kids(struct tree_builder *tb, struct tb_ent *e)
{
	for (size_t i = 0; i < e->nkids; i++) {
		struct tb_ent *k = e->kids[i];
		drop_kids(tb, k);
		table_remove(tb, k);
		ent_free(k);
	}
	free(e->kids);
	e->kids = NULL;
	e->nkids = e->kcap = 0;
}

/* Makes e an entry of `type` with no content (no blobs, target, children),
 * keeping its name and place. */
static void ent_clear(struct tree_builder *tb, struct tb_ent *e, uint8_t type)
{
	if (e->nd.type == NODE_DIR && type != NODE_DIR)
		drop_kids(tb, e);
	free(e->nd.target);
	free(e->nd.blobs);
	free(e->nd.patch);
	e->nd.target = NULL;
	e->nd.blobs = NULL;
	e->nd.nblobs = e->nd.blobs_cap = 0;
	e->nd.patch = NULL;
	e->nd.npatch = 0;
	e->nd.has_list = 0;
	e->nd.list_count = 0;
	e->nd.size = 0;
	e->nd.flags = 0;
	e->nd.type = type;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_meta(struct node *nd, const struct tb_meta *m)
{
	nd->mode = m->mode & 07777;
	nd->uid = m->uid;
	nd->gid = m->gid;
	nd->mtime_ns = m->mtime_ns;
	nd->ctime_ns = 0; /* unknown: an archive does not carry it */
	nd->inode = 0;
}

/* A new child of `parent`, of `type`, empty. */
static struct tb_ent *ent_new(struct tree_builder *tb, struct tb_ent *parent,
			      const char *name, size_t len, uint8_t type)
{
	if (tb->count + 1 > tb->nbuckets && table_grow(tb))
		return NULL;
	if (parent->nkids == parent->kcap) {
		size_t ncap = parent->kcap ? parent->kcap * 2 : 8;
		struct tb_ent **k = realloc(parent->kids, ncap * sizeof(*k));
		if (!k)
			return NULL;
		parent->kids = k;
		parent->kcap = ncap;
	}
	struct tb_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->nd.name = strndup(name, len);
	if (!e->nd.name) {
		free(e);
		return NULL;
	}
	e->nd.type = type;
	e->parent = parent;
	parent->kids[parent->nkids++] = e;
	size_t h = ent_hash(parent, name, len) & (tb->nbuckets - 1);
	e->hnext = tb->buckets[h];
	tb->buckets[h] = e;
	tb->count++;
	return e;
}

/* The next component of a path at *p, skipping empty and "." ones; NULL
 * at the end.  *len is its length; *p moves past it. */
static const char *next_comp(const char **p, size_t *len)
{
	for (;;) {
		while (**p == '/')
			(*p)++;
		if (!**p)
			return NULL;
		const char *c = *p;
		*len = strcspn(c, "/");
		*p = c + *len;
		if (!(*len == 1 && c[0] == '.'))
			return c;
	}
}

/* Finds or makes the entry at `path`, of `type`, with metadata m (folders
 * on the way are made implicitly).  *out is NULL for the root itself. */
static int place(struct tree_builder *tb, const char *path, uint8_t type,
		 const struct tb_meta *m, struct tb_ent **out, struct cairn_err *err)
{
	struct tb_ent *cur = &tb->root;
	*out = NULL;
	if (!path)
		return cairn_err_set(err, CAIRN_EUSAGE, "tree builder: no path");
	if (strlen(path) > TB_PATH_MAX)
		return cairn_err_set(err, CAIRN_EUSAGE, "path too long (over %d bytes): %.80s...",
				     TB_PATH_MAX, path);
	/* Check the whole path before changing anything. */
	const char *p = path, *c;
	size_t len, ncomp = 0;
	while ((c = next_comp(&p, &len)) != NULL) {
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return cairn_err_set(err, CAIRN_EUSAGE, "path with '..': '%s'", path);
		ncomp++;
	}
	if (ncomp == 0)
		return type == NODE_DIR ? 0
					: cairn_err_set(err, CAIRN_EUSAGE,
							"the root of a tree must be a folder: '%s'", path);
	p = path;
	for (size_t i = 0; (c = next_comp(&p, &len)) != NULL; i++) {
		int last = i + 1 == ncomp;
		struct tb_ent *e = ent_find(tb, cur, c, len);
		struct tb_meta im = {0700, m->uid, m->gid, 0};
		if (!e) {
			e = ent_new(tb, cur, c, len, last ? type : NODE_DIR);
			if (!e)
				return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			if (!last) { /* implicit folder */
				im.mtime_ns = now_ns();
				set_meta(&e->nd, &im);
			}
		} else if (last) {
			/* The later entry wins; a folder keeps its children. */
			if (!(e->nd.type == NODE_DIR && type == NODE_DIR))
				ent_clear(tb, e, type);
		} else if (e->nd.type != NODE_DIR) {
			/* Something below a file or link: it becomes a folder. */
			ent_clear(tb, e, NODE_DIR);
			im.mtime_ns = now_ns();
			set_meta(&e->nd, &im);
		}
		if (last) {
			set_meta(&e->nd, m);
			*out = e;
			return 0;
		}
		cur = e;
	}
	return cairn_err_set(err, CAIRN_EINTERNAL, "tree builder: path walk went wrong");
}

/* ---- public ------------------------------------------------------------- */

struct tree_builder *tb_new(struct repo *r)
{
	struct tree_builder *tb = calloc(1, sizeof(*tb));
	if (!tb)
		return NULL;
	tb->r = r;
	tb->root.nd.type = NODE_DIR;
	/* The chunker must always be offered a whole chunk's worth of bytes. */
	tb->bufsize = 2 * (size_t)repo_get_chunker(r)->max;
	tb->buf = malloc(tb->bufsize);
	if (!tb->buf || table_grow(tb)) {
		tb_free(tb);
		return NULL;
	}
	return tb;
}

void tb_free(struct tree_builder *tb)
{
	if (!tb)
		return;
	/* The entries are all in the table (the root is not). */
	for (size_t i = 0; i < tb->nbuckets; i++) {
		struct tb_ent *e = tb->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			ent_free(e);
		}
	}
	free(tb->buckets);
	free(tb->root.kids);
	node_free(&tb->root.nd);
	free(tb->buf);
	free(tb->bin);
	free(tb->bids);
	free(tb);
}

static int add_entry(struct tree_builder *tb, const char *path, uint8_t type,
		     const char *target, const struct tb_meta *meta, struct tb_ent **out,
		     struct cairn_err *err)
{
	struct cairn_err e = {0, ""};
	struct tb_ent *ent = NULL;
	int rc = tb_refuse(tb, err);
	if (rc)
		return rc;
	if (tb->open)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "tree builder: '%s' added while file '%s' is open", path,
				     tb->open->nd.name);
	rc = place(tb, path, type, meta, &ent, &e);
	if (rc == CAIRN_ENOMEM)
		return tb_fail(tb, rc, &e, err);
	if (rc) { /* a bad path: refused, the builder stays usable */
		if (err)
			*err = e;
		return rc;
	}
	if (type == NODE_SYMLINK && ent) {
		ent->nd.target = strdup(target ? target : "");
		if (!ent->nd.target) {
			cairn_err_set(&e, CAIRN_ENOMEM, "out of memory");
			return tb_fail(tb, CAIRN_ENOMEM, &e, err);
		}
	}
	if (out)
		*out = ent;
	return 0;
}

int tb_add_dir(struct tree_builder *tb, const char *path, const struct tb_meta *meta,
	       struct cairn_err *err)
{
	return add_entry(tb, path, NODE_DIR, NULL, meta, NULL, err);
}

int tb_add_symlink(struct tree_builder *tb, const char *path, const char *target,
		   const struct tb_meta *meta, struct cairn_err *err)
{
	if (target && strlen(target) > 65535)
		return cairn_err_set(err, CAIRN_EUSAGE, "link target too long at '%.80s'", path);
	return add_entry(tb, path, NODE_SYMLINK, target, meta, NULL, err);
}

int tb_file_begin(struct tree_builder *tb, const char *path, const struct tb_meta *meta,
		  struct cairn_err *err)
{
	struct tb_ent *ent = NULL;
	int rc = add_entry(tb, path, NODE_FILE, NULL, meta, &ent, err);
	if (rc)
		return rc;
	tb->open = ent;
	tb->have = 0;
	tb->fixed = 0;
	return 0;
}

int tb_file_fixed_chunk(struct tree_builder *tb, uint32_t size)
{
	if (!tb->open)
		return CAIRN_EUSAGE;
	tb->fixed = size < repo_get_chunker(tb->r)->max ? size : repo_get_chunker(tb->r)->max;
	return 0;
}

/* Cuts and stores the buffered bytes: every whole chunk, and with `final`
 * the rest too. */
static int cut(struct tree_builder *tb, int final, struct cairn_err *err)
{
	const struct fastcdc *cdc = repo_get_chunker(tb->r);
	struct node *nd = &tb->open->nd;
	size_t off = 0, nb = 0;
	while (off < tb->have) {
		size_t n, left = tb->have - off;
		if (tb->fixed)
			n = left >= tb->fixed ? tb->fixed : final ? left : 0;
		else
			n = fastcdc_cut(cdc, tb->buf + off, left, final);
		if (n == 0)
			break;
		if (nb == tb->bcap) {
			size_t ncap = tb->bcap ? 2 * tb->bcap : 256;
			struct blob_in *v = realloc(tb->bin, ncap * sizeof(*v));
			uint8_t(*ids)[32] = v ? realloc(tb->bids, ncap * 32) : NULL;
			if (v)
				tb->bin = v;
			if (!ids) {
				struct cairn_err e = {0, ""};
				cairn_err_set(&e, CAIRN_ENOMEM, "out of memory");
				return tb_fail(tb, CAIRN_ENOMEM, &e, err);
			}
			tb->bids = ids;
			tb->bcap = ncap;
		}
		tb->bin[nb].p = tb->buf + off;
		tb->bin[nb++].n = n;
		off += n;
	}
	/* One batch: hashed and sealed on every core. */
	struct cairn_err e = {0, ""};
	int rc = repo_put_blobs(tb->r, BLOB_DATA, tb->bin, nb, tb->bids, &e);
	for (size_t i = 0; i < nb && !rc; i++) {
		if (node_add_blob(nd, tb->bids[i], (uint32_t)tb->bin[i].n))
			rc = cairn_err_set(&e, CAIRN_ENOMEM, "out of memory");
		nd->size += tb->bin[i].n;
	}
	if (rc)
		return tb_fail(tb, rc, &e, err);
	memmove(tb->buf, tb->buf + off, tb->have - off);
	tb->have -= off;
	return 0;
}

int tb_file_write(struct tree_builder *tb, const void *data, size_t len,
		  struct cairn_err *err)
{
	const uint8_t *p = data;
	int rc = tb_refuse(tb, err);
	if (rc)
		return rc;
	if (!tb->open)
		return cairn_err_set(err, CAIRN_EUSAGE, "tree builder: write with no file open");
	tb->st.bytes += len;
	while (len > 0) {
		size_t take = tb->bufsize - tb->have;
		if (take > len)
			take = len;
		memcpy(tb->buf + tb->have, p, take);
		tb->have += take;
		p += take;
		len -= take;
		if (tb->have == tb->bufsize) {
			rc = cut(tb, 0, err);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int tb_file_end(struct tree_builder *tb, struct cairn_err *err)
{
	int rc = tb_refuse(tb, err);
	if (rc)
		return rc;
	if (!tb->open)
		return cairn_err_set(err, CAIRN_EUSAGE, "tree builder: end with no file open");
	rc = cut(tb, 1, err);
	if (!rc) {
		/* A long blob list goes to a list blob (tree.h): the tree in
		 * memory and in the repository then holds only its id. */
		struct cairn_err e = {0, ""};
		rc = repo_node_store_list(tb->r, &tb->open->nd, NULL, &e);
		if (rc)
			rc = tb_fail(tb, rc, &e, err);
		else
			node_release_blobs(&tb->open->nd);
	}
	tb->open = NULL;
	tb->have = 0;
	return rc;
}

/* Stores the tree of folder e into e->nd.subtree, its sub-folders first.
 * Moves every child's node into the tree (the entries keep empty nodes). */
static int store_dir(struct tree_builder *tb, struct tb_ent *e, struct cairn_err *err)
{
	struct tree t = TREE_INIT;
	int rc = 0;
	for (size_t i = 0; i < e->nkids && !rc; i++) {
		struct tb_ent *k = e->kids[i];
		if (k->nd.type == NODE_DIR)
			rc = store_dir(tb, k, err);
		else if (k->nd.type == NODE_FILE) {
			tb->st.files++;
			tb->st.blobs += k->nd.has_list ? k->nd.list_count : k->nd.nblobs;
			tb->st.bytes += k->nd.size;
		}
		if (!rc && tree_add(&t, &k->nd))
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	if (!rc)
		rc = repo_put_tree(tb->r, &t, e->nd.subtree, err);
	if (!rc)
		tb->st.dirs++;
	tree_free(&t);
	return rc;
}

int tb_finish(struct tree_builder *tb, uint8_t root_id[32], struct cairn_err *err)
{
	struct cairn_err e = {0, ""};
	int rc = tb_refuse(tb, err);
	if (rc)
		return rc;
	if (tb->open)
		return cairn_err_set(err, CAIRN_EUSAGE, "tree builder: finish while file '%s' is open",
				     tb->open->nd.name);
	tb->finished = 1;
	tb->st.files = tb->st.dirs = tb->st.blobs = tb->st.bytes = 0;
	rc = store_dir(tb, &tb->root, &e);
	if (rc)
		return tb_fail(tb, rc, &e, err);
	memcpy(root_id, tb->root.nd.subtree, 32);
	return 0;
}

const struct tb_stats *tb_get_stats(const struct tree_builder *tb)
{
	return &tb->st;
}
