/*
 * storage_fault.c — a wrapper that makes the Nth storage call fail, for
 * tests of what callers do when storage breaks (see storage.h).
 *
 * Calls of the kinds in `ops_mask` are numbered 1, 2, ... by an atomic
 * counter (threads may share the wrapper); call number `fail_at`, and with
 * `sticky` every later selected call, returns `code` with an "injected
 * fault" message and never reaches the inner backend.  Other calls pass
 * through unchanged.  fail_at == 0 never fails: the wrapper only counts.
 */
#include "repo/storage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct fault {
	struct storage base;
	struct storage *inner;
	unsigned mask;
	uint64_t fail_at;
	int sticky;
	int code;
	atomic_uint_least64_t calls;
};

static const struct storage_ops fault_ops;

/* Counts the call if its kind is selected; 1 when it must fail. */
static int fault_hit(struct fault *f, unsigned kind)
{
	if (!(f->mask & kind))
		return 0;
	uint64_t n = atomic_fetch_add(&f->calls, 1) + 1;
	if (f->fail_at == 0)
		return 0;
	return n == f->fail_at || (f->sticky && n > f->fail_at);
}

static int fault_put(struct storage *s, const char *key, const void *data,
		     size_t len, struct cairn_err *err)
{
	struct fault *f = (struct fault *)s;
	if (fault_hit(f, FAULT_PUT))
		return cairn_err_set(err, f->code, "injected fault on put %s", key);
	return storage_put(f->inner, key, data, len, err);
}

static int fault_get(struct storage *s, const char *key, uint64_t off,
		     uint64_t len, struct buf *out, struct cairn_err *err)
{
	struct fault *f = (struct fault *)s;
	if (fault_hit(f, FAULT_GET)) {
		buf_reset(out);
		return cairn_err_set(err, f->code, "injected fault on get %s", key);
	}
	return storage_get(f->inner, key, off, len, out, err);
}

static int fault_list(struct storage *s, const char *prefix, storage_list_cb cb,
		      void *arg, struct cairn_err *err)
{
	struct fault *f = (struct fault *)s;
	if (fault_hit(f, FAULT_LIST))
		return cairn_err_set(err, f->code, "injected fault on list %s", prefix);
	return storage_list(f->inner, prefix, cb, arg, err);
}

static int fault_del(struct storage *s, const char *key, struct cairn_err *err)
{
	struct fault *f = (struct fault *)s;
	if (fault_hit(f, FAULT_DEL))
		return cairn_err_set(err, f->code, "injected fault on del %s", key);
	return storage_del(f->inner, key, err);
}

static int fault_stat(struct storage *s, const char *key, uint64_t *size,
		      struct cairn_err *err)
{
	struct fault *f = (struct fault *)s;
	if (fault_hit(f, FAULT_STAT))
		return cairn_err_set(err, f->code, "injected fault on stat %s", key);
	return storage_stat(f->inner, key, size, err);
}

static void fault_close(struct storage *s)
{
	struct fault *f = (struct fault *)s;
	storage_close(f->inner);
	free(f->base.url);
	free(f);
}

static const struct storage_ops fault_ops = {
	.name = "fault",
	.put = fault_put,
	.get = fault_get,
	.list = fault_list,
	.del = fault_del,
	.stat = fault_stat,
	.close = fault_close,
};

int storage_fault_open(struct storage **out, struct storage *inner,
		       unsigned ops_mask, uint64_t fail_at, int sticky,
		       int code, struct cairn_err *err)
{
	*out = NULL;
	if (!inner)
		return cairn_err_set(err, CAIRN_EUSAGE, "fault storage: no inner backend");
	if (code >= 0) {
		storage_close(inner);
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "fault storage: code %d is not an error code", code);
	}
	struct fault *f = calloc(1, sizeof(*f));
	char *url = inner->url ? strdup(inner->url) : NULL;
	if (!f || (inner->url && !url)) {
		free(f);
		free(url);
		storage_close(inner);
		return cairn_err_set(err, CAIRN_ENOMEM, "fault storage: out of memory");
	}
	f->base.ops = &fault_ops;
	f->base.url = url;
	f->inner = inner;
	f->mask = ops_mask;
	f->fail_at = fail_at;
	f->sticky = sticky;
	f->code = code;
	atomic_init(&f->calls, 0);
	*out = &f->base;
	return 0;
}

uint64_t storage_fault_calls(struct storage *s)
{
	if (!s || s->ops != &fault_ops)
		return 0;
	struct fault *f = (struct fault *)s;
	return atomic_load(&f->calls);
}
