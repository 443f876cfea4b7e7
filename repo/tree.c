/* tree.c — encoding and parsing of tree blobs; see tree.h. */
#include "repo/tree.h"

#include <stdlib.h>
#include <string.h>

#define TREE_VERSION 1
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
	memset(nd, 0, sizeof(*nd));
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
	int rc = buf_put_u8(out, TREE_VERSION);
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
			rc = buf_put_uvar(out, nd->nblobs);
			for (size_t j = 0; j < nd->nblobs && !rc; j++) {
				rc = buf_append(out, nd->blobs[j].id, 32);
				rc = rc ? rc : buf_put_uvar(out, nd->blobs[j].len);
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
	if (rd_u8(&r) != TREE_VERSION)
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
			uint64_t nb = rd_uvar(&r);
			if (nb > rd_left(&r) / 33)
				goto bad;
			for (uint64_t j = 0; j < nb && !r.bad; j++) {
				uint8_t id[32];
				rd_copy(&r, id, 32);
				uint64_t len = rd_uvar(&r);
				if (len > UINT32_MAX || node_add_blob(&nd, id, (uint32_t)len))
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
