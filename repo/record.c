/* record.c — see record.h. */
#include "repo/record.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAGIC "CAIRNRC1"

static int kind_ok(const char *k)
{
	size_t n = strlen(k);
	return n > 0 && n < 16 && strspn(k, "abcdefghijklmnopqrstuvwxyz") == n;
}

int repo_record_put(struct repo *r, const struct run_record *rec, struct cairn_err *err)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	struct sealer *s = sealer_new(3);
	char name[65], key[128], rnd[9];
	uint8_t rb[4];
	int rc = 0;
	if (!kind_ok(rec->kind)) {
		sealer_free(s);
		return cairn_err_set(err, CAIRN_EUSAGE, "invalid record kind '%s'", rec->kind);
	}
	if (!s)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	rc = buf_put_u64(&plain, (uint64_t)rec->time_ns);
	rc = rc ? rc : buf_put_u8(&plain, rec->ok ? 1 : 0);
	rc = rc ? rc : buf_put_str16(&plain, rec->host, strlen(rec->host));
	rc = rc ? rc : buf_put_str16(&plain, rec->subject, strlen(rec->subject));
	rc = rc ? rc : buf_put_str16(&plain, rec->detail, strlen(rec->detail));
	if (rc) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	rc = obj_seal(s, repo_get_keys(r), RECORD_MAGIC, plain.data, plain.len, &sealed, name, err);
	if (rc)
		goto out;
	randombytes_buf(rb, sizeof(rb));
	hex_encode(rnd, rb, sizeof(rb));
	snprintf(key, sizeof(key), "records/%s/%020lld-%s", rec->kind, (long long)rec->time_ns, rnd);
	rc = storage_put(repo_get_storage(r), key, sealed.data, sealed.len, err);
out:
	buf_free(&plain);
	buf_free(&sealed);
	sealer_free(s);
	return rc;
}

struct latest {
	char **names;
	size_t n;
};

static int collect(void *arg, const char *key, uint64_t size)
{
	struct latest *l = arg;
	(void)size;
	return strlist_add(&l->names, &l->n, key);
}

static int cmp_desc(const void *a, const void *b)
{
	return -strcmp(*(char *const *)a, *(char *const *)b);
}

static int load(struct repo *r, struct sealer *s, const char *key, const char *kind,
		struct run_record *out, struct cairn_err *err)
{
	struct buf raw = BUF_INIT, plain = BUF_INIT;
	int rc = storage_get(repo_get_storage(r), key, 0, STORAGE_WHOLE, &raw, err);
	rc = rc ? rc : obj_open(s, repo_get_keys(r), RECORD_MAGIC, NULL, raw.data, raw.len,
				&plain, key, err);
	if (!rc) {
		struct rd d = rd_make(plain.data, plain.len);
		memset(out, 0, sizeof(*out));
		snprintf(out->kind, sizeof(out->kind), "%s", kind);
		out->time_ns = (int64_t)rd_u64(&d);
		out->ok = rd_u8(&d);
		char *fields[3] = {out->host, out->subject, out->detail};
		size_t caps[3] = {sizeof(out->host), sizeof(out->subject), sizeof(out->detail)};
		for (int i = 0; i < 3; i++) {
			uint16_t n = rd_u16(&d);
			const uint8_t *p = rd_bytes(&d, n);
			if (p)
				snprintf(fields[i], caps[i], "%.*s", (int)n, (const char *)p);
		}
		if (d.bad)
			rc = cairn_err_set(err, CAIRN_ECORRUPT, "%s is malformed", key);
	}
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

int repo_record_latest(struct repo *r, const char *kind, int want_ok, struct run_record *out,
		       struct cairn_err *err)
{
	struct latest l = {NULL, 0};
	char prefix[64];
	if (!kind_ok(kind))
		return cairn_err_set(err, CAIRN_EUSAGE, "invalid record kind '%s'", kind);
	snprintf(prefix, sizeof(prefix), "records/%s/", kind);
	int rc = storage_list(repo_get_storage(r), prefix, collect, &l, err);
	struct sealer *s = sealer_new(1);
	if (!rc && !s)
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	if (!rc && l.n > 1)
		qsort(l.names, l.n, sizeof(char *), cmp_desc);
	int found = 0;
	for (size_t i = 0; i < l.n && !rc && !found; i++) {
		struct cairn_err e;
		if (load(r, s, l.names[i], kind, out, &e) != 0)
			continue; /* a damaged record is skipped (check reports damage) */
		found = !want_ok || out->ok;
	}
	if (!rc && !found)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "no %s%s record", want_ok ? "successful " : "",
				   kind);
	sealer_free(s);
	strlist_free(l.names, l.n);
	return rc;
}
