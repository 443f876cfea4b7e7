/*
 * storage.h — where the repository's objects live: a small table of
 * functions that every backend implements, and nothing above this module
 * knows which backend it talks to.
 *
 * Objects are named by keys relative to the repository root, made of
 * [a-z0-9/_.-] only ("config", "keys/<hex>", "packs/ab/<hex>", ...).
 * Objects are immutable: put never overwrites.
 *
 * Contract of each callback (all return 0 or a negative cairn_code, and fill
 * `err` with a message naming the key on failure):
 *   put    stores `len` bytes under `key` atomically and durably: after 0 is
 *          returned the whole object survives a crash or power loss; on any
 *          failure, no object (and no partial temp file) is visible under
 *          `key`.  If `key` exists already: CAIRN_EEXIST, and the existing
 *          object is left untouched.  Full disk: CAIRN_ENOSPC.
 *   get    reads `len` bytes at `off` (len == STORAGE_WHOLE: from off to the
 *          end) into `out` (replacing its contents).  CAIRN_ENOTFOUND if the
 *          key does not exist; CAIRN_ECORRUPT if the object is shorter than
 *          off + len (a truncated object).
 *   list   calls `cb` once per key that starts with `prefix`, in no
 *          particular order, with the object's size.  A non-zero return
 *          from cb stops the listing and is returned.  Temporary files of
 *          unfinished puts are never listed.
 *   del    removes `key`; CAIRN_ENOTFOUND if missing.  Durable on return.
 *   stat   sets *size; CAIRN_ENOTFOUND if missing.
 *   close  frees the backend (NULL-safe through storage_close).
 *
 * Thread safety: a backend handle may be used from several threads at once
 * (backends keep no per-call state in the handle).
 */
#ifndef CAIRN_STORAGE_H
#define CAIRN_STORAGE_H

#include <stdint.h>

#include "repo/buf.h"
#include "repo/error.h"

#define STORAGE_WHOLE UINT64_MAX

typedef int (*storage_list_cb)(void *arg, const char *key, uint64_t size);

struct storage;

struct storage_ops {
	const char *name; /* "local", "mem", "fault", "s3" */
	int (*put)(struct storage *s, const char *key, const void *data,
		   size_t len, struct cairn_err *err);
	int (*get)(struct storage *s, const char *key, uint64_t off,
		   uint64_t len, struct buf *out, struct cairn_err *err);
	int (*list)(struct storage *s, const char *prefix, storage_list_cb cb,
		    void *arg, struct cairn_err *err);
	int (*del)(struct storage *s, const char *key, struct cairn_err *err);
	int (*stat)(struct storage *s, const char *key, uint64_t *size,
		    struct cairn_err *err);
	void (*close)(struct storage *s);
};

struct storage {
	const struct storage_ops *ops;
	char *url; /* for messages: the location as the user gave it */
};

static inline int storage_put(struct storage *s, const char *key,
			      const void *data, size_t len, struct cairn_err *err)
{
	return s->ops->put(s, key, data, len, err);
}
static inline int storage_get(struct storage *s, const char *key, uint64_t off,
			      uint64_t len, struct buf *out, struct cairn_err *err)
{
	return s->ops->get(s, key, off, len, out, err);
}
static inline int storage_list(struct storage *s, const char *prefix,
			       storage_list_cb cb, void *arg,
			       struct cairn_err *err)
{
	return s->ops->list(s, prefix, cb, arg, err);
}
static inline int storage_del(struct storage *s, const char *key,
			      struct cairn_err *err)
{
	return s->ops->del(s, key, err);
}
static inline int storage_stat(struct storage *s, const char *key,
			       uint64_t *size, struct cairn_err *err)
{
	return s->ops->stat(s, key, size, err);
}
static inline void storage_close(struct storage *s)
{
	if (s)
		s->ops->close(s);
}

/* Longest key (or list prefix) that any backend accepts. */
#define STORAGE_KEY_MAX 1024

/* Checks that `key` is a valid object key: 1..STORAGE_KEY_MAX characters
 * of [a-z0-9/_.-], no leading or trailing '/', no empty segment, no "..",
 * and no segment starting with '.' (names like ".tmp-*" belong to the
 * backends).  With `is_prefix` set it checks a list prefix instead, which
 * may also be empty or end with '/'.  0 or CAIRN_EUSAGE (an invalid key is
 * a bug in the caller).  Every backend applies it to every key. */
int storage_key_check(const char *key, int is_prefix, struct cairn_err *err);

/* Settings of the remote backends (all may be NULL / 0: defaults). */
struct storage_opts {
	const char *s3_endpoint;  /* "https://host:port" (required for s3://) */
	const char *s3_region;    /* default us-east-1 */
	const char *s3_uri_style; /* "path" (default) or "host" */
	const char *s3_ca_file;   /* a private CA; TLS is always verified */
	uint64_t limit_upload;    /* bytes per second, 0: no limit */
	uint64_t limit_download;
};

/* Opens a repository location.  "/path", "file:///path" or a relative path:
 * the local backend (the folder need not exist yet: `create` makes it, else
 * CAIRN_ENOREPO when it is missing).  "s3://BUCKET[/PREFIX]": the S3
 * backend (opts->s3_endpoint is required: CAIRN_EUSAGE naming
 * --s3-endpoint and CAIRN_S3_ENDPOINT without it).  Other schemes:
 * CAIRN_EUSAGE naming the scheme.  On success *out is owned by the caller
 * (storage_close). */
int storage_open(struct storage **out, const char *url, int create,
		 const struct storage_opts *opts, struct cairn_err *err);

/* The S3 backend (storage_s3.c, which describes the protocol): `bucket`
 * and key prefix `prefix` ("" or "a/b", without a leading or trailing '/'),
 * from "s3://BUCKET/PREFIX"; `url` is kept for messages.  Credentials from
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.  Checks
 * that the bucket answers: CAIRN_ENOREPO when it does not exist (`create`
 * makes it instead), CAIRN_EIO naming the bucket and the credentials on
 * "access denied", CAIRN_EUSAGE for a missing endpoint or credentials or
 * an invalid name.  One difference from the contract above: a put of the
 * very bytes that a key already holds returns 0, not CAIRN_EEXIST (S3
 * cannot tell it from this put's own earlier attempt whose answer was
 * lost; storage_s3.c explains). */
int storage_s3_open(struct storage **out, const char *url, const char *bucket,
		    const char *prefix, int create, const struct storage_opts *opts,
		    struct cairn_err *err);

/* Deletes `n` keys of an S3 storage handle with DeleteObjects, up to 1000
 * per request.  Unlike storage_del, a missing key is no error (S3 does not
 * say which were missing).  0, CAIRN_EUSAGE when `s` is not an S3 handle
 * or a key is invalid, else the first failure, naming its key. */
int storage_s3_delete_many(struct storage *s, const char *const *keys, size_t n,
			   struct cairn_err *err);

/* The local filesystem backend rooted at `root` (see storage_local.c for the
 * durability protocol).  `create` makes the root folder if missing. */
int storage_local_open(struct storage **out, const char *root, int create,
		       struct cairn_err *err);

/* An in-memory backend, for tests. */
int storage_mem_open(struct storage **out, struct cairn_err *err);

/* A fault-injecting wrapper for tests: the `fail_at`-th call (1-based,
 * counting the kinds of calls selected by `ops_mask`) and, when `sticky`,
 * every later one, fail with `code` without reaching `inner`.  A failed put
 * leaves nothing behind.  `fail_at` == 0 never fails (it only counts).
 * The wrapper owns `inner`, also when storage_fault_open fails (it is closed
 * then). */
enum storage_fault_ops {
	FAULT_PUT = 1,
	FAULT_GET = 2,
	FAULT_LIST = 4,
	FAULT_DEL = 8,
	FAULT_STAT = 16,
};
int storage_fault_open(struct storage **out, struct storage *inner,
		       unsigned ops_mask, uint64_t fail_at, int sticky,
		       int code, struct cairn_err *err);
/* How many selected calls the wrapper has seen so far. */
uint64_t storage_fault_calls(struct storage *s);

#endif
