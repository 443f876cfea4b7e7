/*
 * storage_mem.c — an in-memory backend for tests, with the same contract as
 * the others: the same key rules, CAIRN_EEXIST instead of overwriting,
 * CAIRN_ECORRUPT for a range past the end, CAIRN_ENOTFOUND for a missing
 * key.  "Durable" trivially: everything dies with the handle.
 *
 * Objects live in an array sorted by key (binary search; a prefix is a
 * contiguous run), guarded by one mutex.  list copies the matching keys
 * and sizes under the mutex and calls the callback without it, so that a
 * callback may call back into the same handle.
 */
#include "repo/storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mem_obj {
	char *key;
	uint8_t *data;
	size_t len;
};

struct mem {
	struct storage base;
	pthread_mutex_t mu;
	struct mem_obj *v; /* sorted by strcmp of key */
	size_t n, cap;
};

/* Index of the first object whose key is >= `key`. */
static size_t mem_lower(const struct mem *m, const char *key)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(m->v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of `key`, or -1. */
static long mem_find(const struct mem *m, const char *key)
{
	size_t i = mem_lower(m, key);
	return i < m->n && strcmp(m->v[i].key, key) == 0 ? (long)i : -1;
}

static int mem_put(struct storage *s, const char *key, const void *data,
		   size_t len, struct cairn_err *err)
{
	struct mem *m = (struct mem *)s;
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	struct mem_obj o = {strdup(key), malloc(len ? len : 1), len};
	if (!o.key || !o.data) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "storing object %s: out of memory",
				   key);
		goto fail;
	}
	if (len)
		memcpy(o.data, data, len);

	pthread_mutex_lock(&m->mu);
	size_t i = mem_lower(m, key);
	if (i < m->n && strcmp(m->v[i].key, key) == 0) {
		pthread_mutex_unlock(&m->mu);
		rc = cairn_err_set(err, CAIRN_EEXIST, "object %s already exists in %s",
				   key, m->base.url);
		goto fail;
	}
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 16;
		struct mem_obj *nv = realloc(m->v, ncap * sizeof(*nv));
		if (!nv) {
			pthread_mutex_unlock(&m->mu);
			rc = cairn_err_set(err, CAIRN_ENOMEM,
					   "storing object %s: out of memory", key);
			goto fail;
		}
		m->v = nv;
		m->cap = ncap;
	}
	memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
	m->v[i] = o;
	m->n++;
	pthread_mutex_unlock(&m->mu);
	return 0;
fail:
	free(o.key);
	free(o.data);
	return rc;
}

static int mem_get(struct storage *s, const char *key, uint64_t off,
		   uint64_t len, struct buf *out, struct cairn_err *err)
{
	struct mem *m = (struct mem *)s;
	buf_reset(out);
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	long i = mem_find(m, key);
	if (i < 0) {
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "object %s not found in %s",
				   key, m->base.url);
		goto out;
	}
	const struct mem_obj *o = &m->v[i];
	uint64_t size = o->len;
	if (off > size || (len != STORAGE_WHOLE && len > size - off)) {
		uint64_t need = len == STORAGE_WHOLE ? off
			      : off > UINT64_MAX - len ? UINT64_MAX : off + len;
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "object %s is truncated: %llu bytes, need %llu", key,
				   (unsigned long long)size, (unsigned long long)need);
		goto out;
	}
	size_t want = (size_t)(len == STORAGE_WHOLE ? size - off : len);
	if (buf_append(out, o->data + off, want) != 0)
		rc = cairn_err_set(err, CAIRN_ENOMEM,
				   "reading object %s: out of memory", key);
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_list(struct storage *s, const char *prefix, storage_list_cb cb,
		    void *arg, struct cairn_err *err)
{
	struct mem *m = (struct mem *)s;
	struct mem_obj *snap = NULL;
	size_t n = 0;
	int rc = storage_key_check(prefix, 1, err);
	if (rc)
		return rc;
	size_t plen = strlen(prefix);

	pthread_mutex_lock(&m->mu);
	size_t first = mem_lower(m, prefix), end = first;
	while (end < m->n && strncmp(m->v[end].key, prefix, plen) == 0)
		end++;
	if (end > first) {
		snap = calloc(end - first, sizeof(*snap));
		if (!snap)
			rc = CAIRN_ENOMEM;
	}
	for (size_t i = first; !rc && i < end; i++, n++) {
		snap[n].key = strdup(m->v[i].key);
		snap[n].len = m->v[i].len;
		if (!snap[n].key)
			rc = CAIRN_ENOMEM;
	}
	pthread_mutex_unlock(&m->mu);

	if (rc)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "listing %s: out of memory",
				   prefix);
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, snap[i].key, snap[i].len);
	for (size_t i = 0; i < n; i++)
		free(snap[i].key);
	free(snap);
	return rc;
}

static int mem_del(struct storage *s, const char *key, struct cairn_err *err)
{
	struct mem *m = (struct mem *)s;
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	long i = mem_find(m, key);
	if (i < 0) {
		pthread_mutex_unlock(&m->mu);
		return cairn_err_set(err, CAIRN_ENOTFOUND, "object %s not found in %s",
				     key, m->base.url);
	}
	struct mem_obj o = m->v[i];
	memmove(&m->v[i], &m->v[i + 1], (m->n - (size_t)i - 1) * sizeof(*m->v));
	m->n--;
	pthread_mutex_unlock(&m->mu);
	free(o.key);
	free(o.data);
	return 0;
}

static int mem_stat(struct storage *s, const char *key, uint64_t *size,
		    struct cairn_err *err)
{
	struct mem *m = (struct mem *)s;
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	long i = mem_find(m, key);
	if (i >= 0)
		*size = m->v[i].len;
	pthread_mutex_unlock(&m->mu);
	if (i < 0)
		return cairn_err_set(err, CAIRN_ENOTFOUND, "object %s not found in %s",
				     key, m->base.url);
	return 0;
}

static void mem_close(struct storage *s)
{
	struct mem *m = (struct mem *)s;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].data);
	}
	free(m->v);
	pthread_mutex_destroy(&m->mu);
	free(m->base.url);
	free(m);
}

static const struct storage_ops mem_ops = {
	.name = "mem",
	.put = mem_put,
	.get = mem_get,
	.list = mem_list,
	.del = mem_del,
	.stat = mem_stat,
	.close = mem_close,
};

int storage_mem_open(struct storage **out, struct cairn_err *err)
{
	*out = NULL;
	struct mem *m = calloc(1, sizeof(*m));
	if (!m)
		return cairn_err_set(err, CAIRN_ENOMEM, "opening memory storage: out of memory");
	m->base.url = strdup("mem:");
	if (!m->base.url || pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m->base.url);
		free(m);
		return cairn_err_set(err, CAIRN_ENOMEM,
				     "opening memory storage: out of memory");
	}
	m->base.ops = &mem_ops;
	*out = &m->base;
	return 0;
}
