/*
 * storage.c — what every backend shares: the key rules and the choice of a
 * backend from a repository location.
 *
 * Locations: "/abs/path", "relative/path" and "file:///abs/path" go to the
 * local backend; "s3://bucket/prefix" to the S3 backend (storage_s3.c;
 * the prefix is optional, slashes around it are dropped); any other
 * "scheme://" is a usage error naming the scheme.  No percent-decoding is
 * done on file:// or s3:// URLs: what follows "file://" is the path, and
 * the bucket and prefix are taken as written.
 */
#include "repo/storage.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int key_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
	       c == '_' || c == '.' || c == '-';
}

int storage_key_check(const char *key, int is_prefix, struct cairn_err *err)
{
	const char *what = is_prefix ? "prefix" : "key";
	if (!key)
		return cairn_err_set(err, CAIRN_EUSAGE, "storage %s is NULL", what);
	size_t n = strlen(key);
	if (n == 0 && !is_prefix)
		return cairn_err_set(err, CAIRN_EUSAGE, "storage key is empty");
	if (n > STORAGE_KEY_MAX)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "storage %s is too long (%zu bytes, at most %d)",
				     what, n, STORAGE_KEY_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!key_char_ok(key[i]))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "invalid storage %s \"%s\": character %zu "
					     "is not one of [a-z0-9/_.-]",
					     what, key, i + 1);
	}
	if (strstr(key, ".."))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "invalid storage %s \"%s\": contains \"..\"", what, key);
	/* Segment by segment: none empty (so no leading '/', no "//"), none
	 * starting with '.', and for a key no trailing '/'. */
	const char *seg = key;
	for (;;) {
		const char *slash = strchr(seg, '/');
		size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
		int last = slash == NULL;
		if (len == 0 && !(is_prefix && last))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "invalid storage %s \"%s\": empty segment "
					     "(leading, trailing or double '/')",
					     what, key);
		if (len > 0 && seg[0] == '.')
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "invalid storage %s \"%s\": a segment starts "
					     "with '.'",
					     what, key);
		if (last)
			break;
		seg = slash + 1;
	}
	return 0;
}

/* Length of the "scheme" in "scheme://..." (RFC 3986 scheme characters),
 * or 0 when `url` does not start with one. */
static size_t url_scheme_len(const char *url)
{
	size_t i = 0;
	if (!((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')))
		return 0;
	for (i = 1; url[i]; i++) {
		char c = url[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')
			continue;
		break;
	}
	return strncmp(url + i, "://", 3) == 0 ? i : 0;
}

/* "s3://BUCKET[/PREFIX]": `rest` is what follows "s3://". */
static int open_s3(struct storage **out, const char *url, const char *rest, int create,
		   const struct storage_opts *opts, struct cairn_err *err)
{
	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "repository location %s: no bucket (use s3://BUCKET/PREFIX)",
				     url);
	const char *p = slash ? slash + 1 : "";
	while (*p == '/')
		p++;
	size_t plen = strlen(p);
	while (plen > 0 && p[plen - 1] == '/')
		plen--;
	char *bucket = strndup(rest, blen), *prefix = strndup(p, plen);
	int rc;
	if (!bucket || !prefix)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "opening repository %s: out of memory", url);
	else
		rc = storage_s3_open(out, url, bucket, prefix, create, opts, err);
	free(bucket);
	free(prefix);
	return rc;
}

static int open_location(struct storage **out, const char *url, int create,
			 const struct storage_opts *opts, struct cairn_err *err)
{
	*out = NULL;
	if (!url || !url[0])
		return cairn_err_set(err, CAIRN_EUSAGE, "repository location is empty");

	size_t slen = url_scheme_len(url);
	if (slen == 0)
		return storage_local_open(out, url, create, err);

	const char *rest = url + slen + 3;
	if (slen == 4 && strncasecmp(url, "file", 4) == 0) {
		if (rest[0] != '/')
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "repository location %s: a file URL must be "
					     "file:///absolute/path",
					     url);
		int rc = storage_local_open(out, rest, create, err);
		if (rc)
			return rc;
		/* Messages above storage show the location as the user wrote it. */
		char *u = strdup(url);
		if (!u) {
			storage_close(*out);
			*out = NULL;
			return cairn_err_set(err, CAIRN_ENOMEM,
					     "opening repository %s: out of memory", url);
		}
		free((*out)->url);
		(*out)->url = u;
		return 0;
	}
	if (slen == 2 && strncasecmp(url, "s3", 2) == 0)
		return open_s3(out, url, rest, create, opts, err);
	return cairn_err_set(err, CAIRN_EUSAGE,
			     "repository location %s: unknown scheme \"%.*s\" "
			     "(use a path, file:///path or s3://bucket/prefix)",
			     url, (int)slen, url);
}

/* Test hook: CAIRN_TEST_FAULT="OPS:N" (OPS: put, get, list, del, stat,
 * joined by ','; N >= 1) wraps the backend in the fault-injecting one, so
 * that the N-th call of those kinds fails once with CAIRN_EIO (tests make
 * each write of a command fail in turn, then require check to pass). */
static int fault_from_env(unsigned *mask, uint64_t *n)
{
	const char *v = getenv("CAIRN_TEST_FAULT");
	if (!v || !*v)
		return 0;
	static const struct {
		const char *name;
		unsigned bit;
	} ops[] = {{"put", FAULT_PUT}, {"get", FAULT_GET}, {"list", FAULT_LIST},
		   {"del", FAULT_DEL}, {"stat", FAULT_STAT}};
	const char *colon = strchr(v, ':');
	if (!colon)
		return -1;
	*mask = 0;
	for (const char *p = v; p < colon;) {
		size_t len = strcspn(p, ",:");
		unsigned bit = 0;
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (strlen(ops[i].name) == len && !strncmp(p, ops[i].name, len))
				bit = ops[i].bit;
		if (!bit)
			return -1;
		*mask |= bit;
		p += len + (p[len] == ',');
	}
	char *end;
	unsigned long long k = strtoull(colon + 1, &end, 10);
	if (*end || k == 0)
		return -1;
	*n = k;
	return 1;
}

int storage_open(struct storage **out, const char *url, int create,
		 const struct storage_opts *opts, struct cairn_err *err)
{
	unsigned mask = 0;
	uint64_t n = 0;
	int f = fault_from_env(&mask, &n);
	if (f < 0)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "CAIRN_TEST_FAULT takes OPS:N, e.g. put,del:3");
	int rc = open_location(out, url, create, opts, err);
	if (rc || !f)
		return rc;
	struct storage *inner = *out;
	*out = NULL;
	return storage_fault_open(out, inner, mask, n, 0, CAIRN_EIO, err);
}
