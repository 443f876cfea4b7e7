/* tree.c — encoding and parsing of tree blobs; see tree.h. */
#include "repo/tree.h"

#include <stdlib.h>
#include <string.h>

#define TREE_VERSION 1
#define TREE_VERSION_LISTS 2
#define LIST_MAGIC 0xC1
#define FORM_INLINE 0
#define FORM_LIST 1
#define EXT_CTIME 1

int tree_add(struct tree *t, struct node *nd)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		struct node *p = realloc(t->nodes, ncap * sizeof(*p));
		if (!p)
			return CAIRN_ENOMEM;
		t->nodes = p;
		t->cap = ncap;
	}
	t->nodes[t->n++] = *nd;
	memset(nd, 0, sizeof(*nd));
	return 0;
}

int node_add_blob(struct node *nd, const uint8_t id[32], uint32_t len)
{
	if (nd->nblobs == nd->blobs_cap) {
		size_t ncap = nd->blobs_cap ? nd->blobs_cap * 2 : 8;
		struct blob_ref *p = realloc(nd->blobs, ncap * sizeof(*p));
		if (!p)
			return CAIRN_ENOMEM;
		nd->blobs = p;
		nd->blobs_cap = ncap;
	}
	memcpy(nd->blobs[nd->nblobs].id, id, 32);
	nd->blobs[nd->nblobs].len = len;
	nd->nblobs++;
	return 0;
}

void node_free(struct node *nd)
{
	if (!nd)
		return;
	free(nd->name);
	free(nd->target);
	free(nd->blobs);
	free(nd->patch);
	memset(nd, 0, sizeof(*nd));
}

int node_copy_blobs(struct node *dst, const struct node *src)
{
	for (size_t i = 0; i < src->nblobs; i++)
		if (node_add_blob(dst, src->blobs[i].id, src->blobs[i].len))
			return CAIRN_ENOMEM;
	dst->has_list = src->has_list;
	if (!src->has_list)
		return 0;
	memcpy(dst->list_id, src->list_id, 32);
	dst->list_count = src->list_count;
	if (src->npatch) {
		dst->patch = malloc(src->npatch * sizeof(*dst->patch));
		if (!dst->patch)
			return CAIRN_ENOMEM;
		memcpy(dst->patch, src->patch, src->npatch * sizeof(*dst->patch));
		dst->npatch = src->npatch;
	}
	return 0;
}

void node_release_blobs(struct node *nd)
{
	if (!nd->has_list)
		return;
	free(nd->blobs);
	nd->blobs = NULL;
	nd->nblobs = nd->blobs_cap = 0;
}

static int put_refs(struct buf *out, const struct blob_ref *v, size_t n)
{
	int rc = buf_put_uvar(out, n);
	for (size_t j = 0; j < n && !rc; j++) {
		rc = buf_append(out, v[j].id, 32);
		rc = rc ? rc : buf_put_uvar(out, v[j].len);
	}
	return rc;
}

/* Appends `count` refs read from r to *v / *n (cap in *cap). */
static int get_refs(struct rd *r, uint64_t count, struct blob_ref **v, size_t *n)
{
	if (count > rd_left(r) / 33)
		return -1;
	struct blob_ref *p = malloc((count ? count : 1) * sizeof(*p));
	if (!p)
		return -1;
	for (uint64_t j = 0; j < count && !r->bad; j++) {
		rd_copy(r, p[j].id, 32);
		uint64_t len = rd_uvar(r);
		if (len > UINT32_MAX)
			r->bad = 1;
		p[j].len = (uint32_t)len;
	}
	if (r->bad) {
		free(p);
		return -1;
	}
	*v = p;
	*n = (size_t)count;
	return 0;
}

int list_encode(const struct blob_ref *v, size_t n, struct buf *out)
{
	buf_reset(out);
	int rc = buf_put_u8(out, LIST_MAGIC);
	return rc ? rc : put_refs(out, v, n);
}

int list_decode(const void *p, size_t n, struct blob_ref **v, size_t *nv,
		struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	*v = NULL;
	*nv = 0;
	if (rd_u8(&r) != LIST_MAGIC)
		return cairn_err_set(err, CAIRN_ECORRUPT, "list blob is malformed (not a list)");
	uint64_t count = rd_uvar(&r);
	if (r.bad || get_refs(&r, count, v, nv) || rd_left(&r) != 0) {
		free(*v);
		*v = NULL;
		*nv = 0;
		return cairn_err_set(err, CAIRN_ECORRUPT, "list blob is malformed");
	}
	return 0;
}

int node_apply_list(struct node *nd, const struct blob_ref *base, size_t nbase,
		    struct cairn_err *err)
{
	node_release_blobs(nd);
	size_t n = (size_t)nd->list_count, k = 0;
	uint64_t total = 0;
	struct blob_ref *v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (k < nd->npatch && nd->patch[k].idx == i) {
			v[i] = nd->patch[k++].ref;
		} else if (i < nbase) {
			v[i] = base[i];
		} else {
			free(v);
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "%s: entry %zu of its blob list is in neither its list "
					     "blob nor its patch", nd->name, i);
		}
		total += v[i].len;
	}
	if (k != nd->npatch || total != nd->size) {
		free(v);
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "%s: its blob list does not add up to its size", nd->name);
	}
	nd->blobs = v;
	nd->nblobs = nd->blobs_cap = n;
	return 0;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		node_free(&t->nodes[i]);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

static int node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->name, ((const struct node *)b)->name);
}

int tree_encode(struct tree *t, struct buf *out, struct cairn_err *err)
{
	if (t->n > 1)
		qsort(t->nodes, t->n, sizeof(*t->nodes), node_cmp);
	buf_reset(out);
	int lists = 0;
	for (size_t i = 0; i < t->n; i++)
		lists |= t->nodes[i].type == NODE_FILE && t->nodes[i].has_list;
	int rc = buf_put_u8(out, lists ? TREE_VERSION_LISTS : TREE_VERSION);
	rc = rc ? rc : buf_put_uvar(out, t->n);
	for (size_t i = 0; i < t->n && !rc; i++) {
		const struct node *nd = &t->nodes[i];
		if (i > 0 && strcmp(t->nodes[i - 1].name, nd->name) == 0)
			return cairn_err_set(err, CAIRN_EUSAGE, "two entries named %s in one folder",
					     nd->name);
		rc = buf_put_u8(out, nd->type);
		rc = rc ? rc : buf_put_u8(out, nd->flags);
		rc = rc ? rc : buf_put_str16(out, nd->name, strlen(nd->name));
		rc = rc ? rc : buf_put_u32(out, nd->mode);
		rc = rc ? rc : buf_put_u32(out, nd->uid);
		rc = rc ? rc : buf_put_u32(out, nd->gid);
		rc = rc ? rc : buf_put_u64(out, (uint64_t)nd->mtime_ns);
		rc = rc ? rc : buf_put_u64(out, nd->size);
		rc = rc ? rc : buf_put_u64(out, nd->inode);
		if (rc)
			break;
		switch (nd->type) {
		case NODE_FILE:
			if (lists)
				rc = buf_put_u8(out, nd->has_list ? FORM_LIST : FORM_INLINE);
			if (!nd->has_list) {
				rc = rc ? rc : put_refs(out, nd->blobs, nd->nblobs);
				break;
			}
			rc = rc ? rc : buf_append(out, nd->list_id, 32);
			rc = rc ? rc : buf_put_uvar(out, nd->list_count);
			rc = rc ? rc : buf_put_uvar(out, nd->npatch);
			for (size_t j = 0; j < nd->npatch && !rc; j++) {
				uint64_t prev = j ? nd->patch[j - 1].idx + 1 : 0;
				if (nd->patch[j].idx < prev || nd->patch[j].idx >= nd->list_count)
					return cairn_err_set(err, CAIRN_EINTERNAL,
							     "node %s: patch out of order", nd->name);
				rc = buf_put_uvar(out, nd->patch[j].idx - prev);
				rc = rc ? rc : buf_append(out, nd->patch[j].ref.id, 32);
				rc = rc ? rc : buf_put_uvar(out, nd->patch[j].ref.len);
			}
			break;
		case NODE_DIR:
			rc = buf_append(out, nd->subtree, 32);
			break;
		case NODE_SYMLINK:
			rc = buf_put_str16(out, nd->target, strlen(nd->target));
			break;
		default:
			return cairn_err_set(err, CAIRN_EINTERNAL, "node %s has unknown type %u",
					     nd->name, nd->type);
		}
		if (nd->ctime_ns) {
			rc = rc ? rc : buf_put_u16(out, 10);
			rc = rc ? rc : buf_put_u8(out, EXT_CTIME);
			rc = rc ? rc : buf_put_u8(out, 8);
			rc = rc ? rc : buf_put_u64(out, (uint64_t)nd->ctime_ns);
		} else {
			rc = rc ? rc : buf_put_u16(out, 0);
		}
	}
	if (rc)
		return cairn_err_set(err, rc == CAIRN_EUSAGE ? CAIRN_EUSAGE : CAIRN_ENOMEM,
				     "cannot encode a tree (name or link target too long, or out of memory)");
	return 0;
}

static char *rd_str16(struct rd *r)
{
	uint16_t n = rd_u16(r);
	const uint8_t *p = rd_bytes(r, n);
	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		r->bad = 1;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int tree_decode(const void *p, size_t n, struct tree *t, struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	struct node nd;
	memset(&nd, 0, sizeof(nd));
	uint8_t version = rd_u8(&r);
	if (version != TREE_VERSION && version != TREE_VERSION_LISTS)
		return cairn_err_set(err, CAIRN_ECORRUPT, "tree blob has an unknown version");
	uint64_t count = rd_uvar(&r);
	if (count > n)
		goto bad;
	for (uint64_t i = 0; i < count && !r.bad; i++) {
		nd.type = rd_u8(&r);
		nd.flags = rd_u8(&r);
		nd.name = rd_str16(&r);
		nd.mode = rd_u32(&r);
		nd.uid = rd_u32(&r);
		nd.gid = rd_u32(&r);
		nd.mtime_ns = (int64_t)rd_u64(&r);
		nd.size = rd_u64(&r);
		nd.inode = rd_u64(&r);
		if (r.bad || !nd.name || !nd.name[0] || strchr(nd.name, '/') ||
		    !strcmp(nd.name, ".") || !strcmp(nd.name, ".."))
			goto bad;
		if (t->n > 0 && strcmp(t->nodes[t->n - 1].name, nd.name) >= 0)
			goto bad;
		if (nd.type == NODE_FILE) {
			uint8_t form = version == TREE_VERSION ? FORM_INLINE : rd_u8(&r);
			if (form == FORM_INLINE) {
				uint64_t nb = rd_uvar(&r);
				if (r.bad || get_refs(&r, nb, &nd.blobs, &nd.nblobs))
					goto bad;
				nd.blobs_cap = nd.nblobs;
			} else if (form == FORM_LIST) {
				nd.has_list = 1;
				rd_copy(&r, nd.list_id, 32);
				nd.list_count = rd_uvar(&r);
				uint64_t np = rd_uvar(&r);
				if (r.bad || np > nd.list_count || np > rd_left(&r) / 34)
					goto bad;
				nd.patch = malloc((np ? np : 1) * sizeof(*nd.patch));
				if (!nd.patch)
					goto bad;
				uint64_t next = 0;
				for (uint64_t j = 0; j < np && !r.bad; j++) {
					uint64_t gap = rd_uvar(&r);
					if (gap >= nd.list_count - next)
						goto bad;
					nd.patch[j].idx = next + gap;
					next = nd.patch[j].idx + 1;
					rd_copy(&r, nd.patch[j].ref.id, 32);
					uint64_t len = rd_uvar(&r);
					if (len > UINT32_MAX)
						goto bad;
					nd.patch[j].ref.len = (uint32_t)len;
					nd.npatch++;
				}
			} else {
				goto bad;
			}
		} else if (nd.type == NODE_DIR) {
			rd_copy(&r, nd.subtree, 32);
		} else if (nd.type == NODE_SYMLINK) {
			nd.target = rd_str16(&r);
			if (!nd.target)
				goto bad;
		} else {
			goto bad;
		}
		uint16_t ext = rd_u16(&r);
		const uint8_t *ep = rd_bytes(&r, ext);
		if (ep) {
			struct rd er = rd_make(ep, ext);
			while (rd_left(&er) > 0 && !er.bad) {
				uint8_t tag = rd_u8(&er), len = rd_u8(&er);
				const uint8_t *v = rd_bytes(&er, len);
				if (v && tag == EXT_CTIME && len == 8)
					nd.ctime_ns = (int64_t)le_get64(v);
			}
			if (er.bad)
				goto bad;
		}
		if (r.bad || tree_add(t, &nd))
			goto bad;
	}
	if (r.bad || rd_left(&r) != 0)
		goto bad;
	return 0;
bad:
	node_free(&nd);
	tree_free(t);
	return cairn_err_set(err, CAIRN_ECORRUPT, "tree blob is malformed");
}

const struct node *tree_find(const struct tree *t, const char *name)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->nodes[mid].name, name);
		if (c == 0)
			return &t->nodes[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
