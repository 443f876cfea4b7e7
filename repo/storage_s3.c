/*
 * storage_s3.c — the S3 backend: objects in a bucket of an S3-compatible
 * object store, through libcurl, signed with libcurl's own SigV4
 * (CURLOPT_AWS_SIGV4), never a signer of ours.
 *
 * Key "packs/ab/abcd" of the repository s3://BUCKET/PRE/FIX is the object
 * "PRE/FIX/packs/ab/abcd" of BUCKET.  Requests go to the endpoint in path
 * style (ENDPOINT/BUCKET/KEY, the default) or virtual-host style
 * (BUCKET.HOST/KEY).  Credentials come from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, read once at open.
 *
 * The contract of storage.h, the S3 way:
 *   put    one PUT with "If-None-Match: *" (412: CAIRN_EEXIST, but see
 *          below), the body's sha256 as x-amz-content-sha256 and its
 *          Content-MD5, so that the server refuses bytes damaged on the
 *          way.  (The body goes from memory as libcurl's "post fields":
 *          then "Expect: 100-continue" is sent only above 1 MiB, so a 412
 *          costs no 16 MiB upload and a small PUT no extra round trip.)
 *          S3 limits a whole key to 1024 bytes: with a prefix, our keys
 *          may be that much shorter (CAIRN_EUSAGE).  Objects above
 *          S3_MULTIPART_ABOVE go up as a multipart upload: parts of
 *          S3_PART_SIZE, up to S3_PARALLEL at once, then
 *          CompleteMultipartUpload (with If-None-Match: *); any failure
 *          aborts the upload, so nothing is ever visible under the key but
 *          a whole object.  A server that answers 501 to a conditional PUT
 *          (OpenStack Swift) gets HEAD-then-PUT instead, remembered per
 *          handle; multipart uploads check with a HEAD first as well (not
 *          every server honours If-None-Match on the completion).  Those
 *          two checks are not atomic: two writers racing on one key may
 *          both succeed, the later one overwriting.  cairn's keys name
 *          their content, so the bytes are the same.
 *          When the key exists, its ETag is compared with the MD5 of our
 *          bytes: the same bytes return 0, not CAIRN_EEXIST.  S3 cannot
 *          tell "this very put, whose answer was lost" from "an earlier
 *          put of the same bytes", and the first happens: after a timeout
 *          we retry, and libcurl itself silently re-sends a request whose
 *          keep-alive connection died.  Either way the bytes asked for
 *          are stored under the key, which is all a caller can rely on.
 *   get    GET with "Range: bytes=OFF-END"; 416 or a short body:
 *          CAIRN_ECORRUPT ("truncated").
 *   list   ListObjectsV2 page by page (continuation-token), keys relative
 *          to the repository's prefix; names that cannot be keys are
 *          skipped.
 *   del    HEAD (S3 answers 204 to a DELETE of a missing key, the contract
 *          says CAIRN_ENOTFOUND), then DELETE.
 *   stat   HEAD.
 *
 * libcurl 7.88 (Debian 12) signs what it is given, and has gaps this file
 * covers: it never sends x-amz-content-sha256 (we do: S3 servers require
 * it); it signs the query string raw (we write the parameters sorted by
 * name, each as name=value, "uploads=" and "delete=" included, values
 * encoded the AWS way) and the path raw (keys are percent-encoded the AWS
 * way: A-Z a-z 0-9 - . _ ~ and '/' as they are, everything else %XX); a
 * header with an empty value would be signed but not sent (we never set
 * one, "Expect:" included); an access key with a colon breaks
 * CURLOPT_USERPWD (we use CURLOPT_USERNAME and CURLOPT_PASSWORD).
 *
 * Reliability: every request has a connect timeout, a stall limit (no
 * byte moved either way for S3_STALL_SECONDS: a server that stopped
 * answering) and a low-speed limit (below 1 KiB/s on average over as
 * long); transient failures (timeouts, refused or reset connections,
 * HTTP 5xx, 429, SlowDown, RequestTimeout) are retried up to S3_TRIES
 * times with exponential backoff and jitter.
 * TLS is always verified (--s3-ca-file adds a CA, nothing turns checks
 * off); an http:// endpoint (a server on this host or a trusted network)
 * has no TLS at all, and still signed requests and checked bodies.
 *
 * storage_s3_delete_many (not in the table of operations) deletes up to
 * 1000 keys per DeleteObjects request, for prune.
 *
 * Connections: the handle keeps a small pool of curl multi handles, each
 * with its own connection cache and easy handles; a call takes one from
 * the pool (under the handle's mutex) and gives it back, so connections
 * are reused across calls (keep-alive) and any number of threads may use
 * one handle at once, each call with its own connections.
 *
 * For tests only, the environment may shorten the waits (see also
 * tests/s3/README.md): CAIRN_S3_TIMEOUT_SECONDS (the stall limit, default 30;
 * the connect timeout is the smaller of it and 10), CAIRN_S3_RETRIES
 * (tries per request, default 6) and CAIRN_S3_LIST_PAGE (keys per listing
 * page, default the server's 1000).
 */
#include "repo/storage.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define S3_MULTIPART_ABOVE ((size_t)32 << 20)
#define S3_PART_SIZE ((size_t)16 << 20)
#define S3_MAX_PARTS 10000
#define S3_PARALLEL 4
#define S3_TRIES 6
#define S3_BACKOFF_FIRST 0.2
#define S3_BACKOFF_MAX 10.0
#define S3_STALL_SECONDS 30
#define S3_CONNECT_SECONDS 10
#define S3_STALL_BYTES 1024
#define S3_POOL_MAX 8
#define S3_DELETE_BATCH 1000
#define S3_KEY_MAX 1024 /* bytes of a whole object key, prefix included */
/* Bodies of error answers and listings kept at most (a listing page of
 * 1000 keys is about 300 KB). */
#define S3_RESP_MAX ((size_t)16 << 20)
/* A GET's buffer is sized from Content-Length up to this much. */
#define S3_RESERVE_MAX ((uint64_t)64 << 20)
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- MD5 (RFC 1321), for Content-MD5 and ETags only ---- */

static const uint32_t md5_k[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const uint8_t md5_r[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

static uint32_t rotl32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void md5_block(uint32_t h[4], const uint8_t *p)
{
	uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3];
	for (int i = 0; i < 16; i++)
		m[i] = le_get32(p + 4 * i);
	for (unsigned i = 0; i < 64; i++) {
		uint32_t f;
		unsigned g;
		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) & 15;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) & 15;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) & 15;
		}
		f += a + md5_k[i] + m[g];
		a = d;
		d = c;
		c = b;
		b += rotl32(f, md5_r[(i >> 4) * 4 + (i & 3)]);
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
}

static void md5(const void *data, size_t len, uint8_t out[16])
{
	uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
	const uint8_t *p = data;
	size_t full = len & ~(size_t)63;
	for (size_t i = 0; i < full; i += 64)
		md5_block(h, p + i);
	uint8_t tail[128] = {0};
	size_t rest = len - full;
	if (rest)
		memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	size_t tlen = rest < 56 ? 64 : 128;
	le_put64(tail + tlen - 8, (uint64_t)len * 8);
	md5_block(h, tail);
	if (tlen == 128)
		md5_block(h, tail + 64);
	for (int i = 0; i < 4; i++)
		le_put32(out + 4 * i, h[i]);
}

/* ---- small helpers ---- */

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends `s` percent-encoded the AWS way (unreserved characters as they
 * are, '/' too when keep_slash, everything else as uppercase %XX). */
static int uri_encode(struct buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
			if (buf_append(b, p, 1))
				return -1;
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			if (buf_append(b, e, 3))
				return -1;
		}
	}
	return 0;
}

static int buf_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* NUL-terminates b->data without counting the NUL in b->len. */
static int buf_cstr(struct buf *b)
{
	if (buf_reserve(b, b->len + 1))
		return -1;
	b->data[b->len] = '\0';
	return 0;
}

/* Appends `s` with XML's five special characters escaped. */
static int xml_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
			      : *s == '"' ? "&quot;" : *s == '\'' ? "&apos;" : NULL;
		if (e ? buf_str(b, e) : buf_append(b, s, 1))
			return -1;
	}
	return 0;
}

static int utf8_put(char *out, size_t cap, size_t *n, unsigned long cp)
{
	char u[4];
	size_t k;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	if (cp < 0x80) {
		u[0] = (char)cp;
		k = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		k = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		k = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		k = 4;
	}
	if (*n + k >= cap)
		return -1;
	memcpy(out + *n, u, k);
	*n += k;
	return 0;
}

/* Decodes XML text p[0..len) (the five named entities and numeric
 * references) into out[cap], NUL-terminated.  -1 when it does not fit or
 * holds a malformed or unknown entity. */
static int xml_text(const char *p, size_t len, char *out, size_t cap)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		if (p[i] != '&') {
			if (n + 1 >= cap)
				return -1;
			out[n++] = p[i++];
			continue;
		}
		const char *semi = memchr(p + i, ';', len - i);
		if (!semi)
			return -1;
		size_t elen = (size_t)(semi - (p + i)) + 1; /* "&...;" */
		int done = 0;
		for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
			if (elen - 1 == strlen(ents[k].name) &&
			    !memcmp(p + i + 1, ents[k].name, elen - 1)) {
				if (n + 1 >= cap)
					return -1;
				out[n++] = ents[k].c;
				done = 1;
			}
		}
		if (!done) {
			if (elen < 4 || p[i + 1] != '#')
				return -1;
			int hexd = p[i + 2] == 'x' || p[i + 2] == 'X';
			unsigned long cp = 0;
			size_t digits = 0;
			for (const char *q = p + i + 2 + hexd; q < semi; q++, digits++) {
				int v = *q >= '0' && *q <= '9' ? *q - '0'
					: hexd && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
					: hexd && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;
				if (v < 0 || cp > 0x10FFFF)
					return -1;
				cp = cp * (hexd ? 16 : 10) + (unsigned long)v;
			}
			if (digits == 0 || utf8_put(out, cap, &n, cp))
				return -1;
		}
		i += elen;
	}
	out[n] = '\0';
	return 0;
}

/* Finds the first <tag>...</tag> in p[0..len): sets *v and *vlen to its raw
 * text and returns a pointer just past the closing tag, or NULL.  Tags of
 * S3's answers carry no attributes except the root's namespace; an empty
 * element <tag/> gives an empty text. */
static const char *xml_find(const char *p, size_t len, const char *tag, const char **v,
			    size_t *vlen)
{
	char open[80], close[80], empty[80];
	int no = snprintf(open, sizeof(open), "<%s>", tag);
	int nc = snprintf(close, sizeof(close), "</%s>", tag);
	int ne = snprintf(empty, sizeof(empty), "<%s/>", tag);
	const char *end = p + len;
	for (const char *q = p; q < end;) {
		const char *lt = memchr(q, '<', (size_t)(end - q));
		if (!lt)
			return NULL;
		size_t left = (size_t)(end - lt);
		if (left >= (size_t)ne && !memcmp(lt, empty, (size_t)ne)) {
			*v = lt;
			*vlen = 0;
			return lt + ne;
		}
		if (left >= (size_t)no && !memcmp(lt, open, (size_t)no)) {
			const char *body = lt + no;
			const char *c = memmem(body, (size_t)(end - body), close, (size_t)nc);
			if (!c)
				return NULL;
			*v = body;
			*vlen = (size_t)(c - body);
			return c + nc;
		}
		q = lt + 1;
	}
	return NULL;
}

/* The decoded text of the first <tag> in p[0..len) into out[cap]; -1 when
 * missing or malformed. */
static int xml_get(const char *p, size_t len, const char *tag, char *out, size_t cap)
{
	const char *v;
	size_t vlen;
	if (!xml_find(p, len, tag, &v, &vlen))
		return -1;
	return xml_text(v, vlen, out, cap);
}

/* ---- the handle ---- */

/* One multi handle (its connection cache is what keeps connections alive
 * between calls) and the easy handles that run in it. */
struct conn {
	CURLM *multi;
	CURL *easy[S3_PARALLEL];
	struct conn *next;
};

struct s3 {
	struct storage base;
	char *origin;     /* "http[s]://host[:port]" */
	char *scheme;     /* "http" or "https" */
	char *hostport;   /* "host[:port]" */
	char *bucket;
	char *prefix;     /* "" or "pre/fix/" */
	char *sigv4;      /* "aws:amz:REGION:s3" */
	char *ca_file;
	char *access_key;
	char *secret_key;
	char *token_header; /* "x-amz-security-token: ..." or NULL */
	int host_style;
	uint64_t limit_up, limit_down;
	long stall_seconds, connect_seconds;
	int tries;
	unsigned list_page;

	pthread_mutex_t mu; /* guards the fields below */
	struct conn *idle;
	int nidle;
	int no_cond_put;      /* the server answered 501 to If-None-Match */
	int no_cond_complete; /* ... on CompleteMultipartUpload */
};

static const struct storage_ops s3_ops;

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < S3_PARALLEL; i++)
		if (c->easy[i]) {
			curl_multi_remove_handle(c->multi, c->easy[i]);
			curl_easy_cleanup(c->easy[i]);
		}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
}

static struct conn *conn_take(struct s3 *s)
{
	pthread_mutex_lock(&s->mu);
	struct conn *c = s->idle;
	if (c) {
		s->idle = c->next;
		s->nidle--;
	}
	pthread_mutex_unlock(&s->mu);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->multi = curl_multi_init();
	if (!c->multi) {
		free(c);
		return NULL;
	}
	return c;
}

static void conn_give(struct s3 *s, struct conn *c)
{
	pthread_mutex_lock(&s->mu);
	if (s->nidle < S3_POOL_MAX) {
		c->next = s->idle;
		s->idle = c;
		s->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	conn_free(c);
}

static int flag_get(struct s3 *s, int *f)
{
	pthread_mutex_lock(&s->mu);
	int v = *f;
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void flag_set(struct s3 *s, int *f)
{
	pthread_mutex_lock(&s->mu);
	*f = 1;
	pthread_mutex_unlock(&s->mu);
}

/* ---- requests ---- */

enum method { M_GET, M_HEAD, M_PUT, M_POST, M_DELETE };

struct req {
	/* what to send */
	enum method method;
	const char *key;     /* repository key; NULL: the bucket itself */
	const char *query;   /* sorted and encoded, or NULL */
	const uint8_t *body; /* PUT and POST */
	size_t body_len;
	const char *content_type;
	int if_none_match;
	int range;           /* send "Range: bytes=range_lo-range_hi" */
	uint64_t range_lo, range_hi; /* range_hi UINT64_MAX: to the end */
	int body_errors;     /* a 200 may carry an <Error> (CompleteMultipartUpload) */
	char sha256[65];     /* x-amz-content-sha256 */
	char md5_b64[25];    /* Content-MD5, "" for none */
	struct buf *out;     /* where a 2xx body goes (NULL: into resp) */

	/* the answer of the last attempt */
	long status;         /* 0: no HTTP answer (cc says why) */
	CURLcode cc;
	char cerr[CURL_ERROR_SIZE];
	char etag[100];
	int have_len, have_total;
	uint64_t len, total; /* Content-Length; total size from Content-Range */
	struct buf resp;     /* error body, or a 2xx body when out is NULL */
	char code[64];       /* the S3 error Code, "" if none */
	char message[200];
	int nomem;
	int tries;
	int ambiguous;       /* an attempt may have been carried out unanswered */

	/* engine state */
	int state;           /* 0 waiting, 1 running, 2 done */
	double next_at;
	int slot;            /* which easy handle of the conn runs it */
	uint64_t moved;      /* bytes up and down so far in this attempt */
	double moved_at;     /* when that last changed */
	long stall_limit;
	int stalled;         /* this attempt moved nothing for stall_limit s */
	int cancelled;       /* given up because another request failed */
	struct curl_slist *hdrs;
	char *url;
	CURL *easy;
};

static void req_init(struct req *r, enum method m, const char *key)
{
	memset(r, 0, sizeof(*r));
	r->method = m;
	r->key = key;
	/* Else libcurl says application/x-www-form-urlencoded (see req_setup). */
	if (m == M_PUT || m == M_POST)
		r->content_type = "application/octet-stream";
	memcpy(r->sha256, EMPTY_SHA256, sizeof(EMPTY_SHA256));
}

static void req_clean(struct req *r)
{
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	free(r->url);
	r->url = NULL;
	buf_free(&r->resp);
}

/* Sets the body with its sha256 and (optionally) its Content-MD5. */
static void req_body(struct req *r, const void *data, size_t len, int with_md5,
		     uint8_t md5_out[16])
{
	uint8_t h[crypto_hash_sha256_BYTES], m[16];
	r->body = data;
	r->body_len = len;
	crypto_hash_sha256(h, data, len);
	hex_encode(r->sha256, h, sizeof(h));
	if (with_md5 || md5_out) {
		md5(data, len, m);
		if (with_md5)
			sodium_bin2base64(r->md5_b64, sizeof(r->md5_b64), m, sizeof(m),
					  sodium_base64_VARIANT_ORIGINAL);
		if (md5_out)
			memcpy(md5_out, m, 16);
	}
}

static int ok2xx(const struct req *r)
{
	return r->cc == CURLE_OK && r->status >= 200 && r->status < 300;
}

/* The URL of `key` (NULL: the bucket) with `query`; malloc'd or NULL. */
static char *s3_url(const struct s3 *s, const char *key, const char *query)
{
	struct buf b = BUF_INIT;
	int bad = 0;
	if (s->host_style) {
		bad |= buf_str(&b, s->scheme) || buf_str(&b, "://") || buf_str(&b, s->bucket) ||
		       buf_str(&b, ".") || buf_str(&b, s->hostport) || buf_str(&b, "/");
	} else {
		bad |= buf_str(&b, s->origin) || buf_str(&b, "/") || uri_encode(&b, s->bucket, 0);
		if (key)
			bad |= buf_str(&b, "/");
	}
	if (key)
		bad |= uri_encode(&b, s->prefix, 1) || uri_encode(&b, key, 1);
	if (query)
		bad |= buf_str(&b, "?") || buf_str(&b, query);
	bad |= buf_cstr(&b);
	if (bad) {
		buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct req *r = arg;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	struct buf *b = status >= 200 && status < 300 && r->out ? r->out : &r->resp;
	if (b == &r->resp && r->resp.len + len > S3_RESP_MAX)
		return 0;
	if (buf_append(b, p, len)) {
		r->nomem = 1;
		return 0;
	}
	return len;
}

static int header_is(const char *p, size_t len, const char *name, const char **val,
		     size_t *vlen)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
		return 0;
	const char *v = p + nl + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	*val = v;
	*vlen = (size_t)(end - v);
	return 1;
}

static int parse_u64(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct req *r = arg;
	size_t len = size * n;
	const char *v;
	size_t vlen;
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* a new answer (after "100 Continue"): forget the last one's */
		r->etag[0] = '\0';
		r->have_len = r->have_total = 0;
	} else if (header_is(p, len, "etag", &v, &vlen)) {
		if (vlen < sizeof(r->etag)) {
			memcpy(r->etag, v, vlen);
			r->etag[vlen] = '\0';
		}
	} else if (header_is(p, len, "content-length", &v, &vlen)) {
		r->have_len = parse_u64(v, vlen, &r->len) == 0;
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		/* Room for the whole body at once (packs are 16 MiB); a larger
		 * one grows as it comes, so a wrong length cannot make us
		 * allocate much before the bytes arrive. */
		if (r->have_len && r->out && status >= 200 && status < 300 && r->method == M_GET &&
		    r->len <= S3_RESERVE_MAX && buf_reserve(r->out, (size_t)r->len))
			r->nomem = 1;
	} else if (header_is(p, len, "content-range", &v, &vlen)) {
		/* "bytes 0-9/1000", or "bytes *" "/1000" on a 416 */
		const char *slash = memchr(v, '/', vlen);
		if (slash)
			r->have_total = parse_u64(slash + 1, vlen - (size_t)(slash + 1 - v),
						  &r->total) == 0;
	}
	return r->nomem ? 0 : len;
}

/* Ends an attempt during which no byte moved either way for
 * stall_limit seconds: a server that stopped answering.  (libcurl's own
 * low-speed limit averages over several seconds, so after the burst of a
 * large upload into the socket buffers it notices a frozen server only
 * some 5-10 seconds later; this notices it at once.) */
static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct req *r = arg;
	(void)dltotal;
	(void)ultotal;
	uint64_t moved = (uint64_t)dlnow + (uint64_t)ulnow;
	double t = now_mono();
	if (moved != r->moved) {
		r->moved = moved;
		r->moved_at = t;
		return 0;
	}
	if (t - r->moved_at > (double)r->stall_limit) {
		r->stalled = 1;
		return 1;
	}
	return 0;
}

static int hdr_add(struct req *r, const char *line)
{
	struct curl_slist *l = curl_slist_append(r->hdrs, line);
	if (!l)
		return -1;
	r->hdrs = l;
	return 0;
}

/* Sets `e` up for the next attempt of `r`; `share` is how many transfers
 * run at once (the bandwidth limits are split between them). */
static int req_setup(struct s3 *s, CURL *e, struct req *r, int share)
{
	char line[160];
	curl_easy_reset(e);
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	r->status = 0;
	r->cc = CURLE_OK;
	r->cerr[0] = r->code[0] = r->message[0] = r->etag[0] = '\0';
	r->have_len = r->have_total = 0;
	r->easy = e;
	r->moved = 0;
	r->moved_at = now_mono();
	r->stall_limit = s->stall_seconds;
	r->stalled = 0;
	buf_reset(&r->resp);
	if (r->out)
		buf_reset(r->out);
	if (!r->url && !(r->url = s3_url(s, r->key, r->query)))
		return -1;

	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", r->sha256);
	if (hdr_add(r, line))
		return -1;
	if (s->token_header && hdr_add(r, s->token_header))
		return -1;
	if (r->md5_b64[0]) {
		snprintf(line, sizeof(line), "Content-MD5: %s", r->md5_b64);
		if (hdr_add(r, line))
			return -1;
	}
	if (r->if_none_match && hdr_add(r, "If-None-Match: *"))
		return -1;
	if (r->range) {
		if (r->range_hi == UINT64_MAX)
			snprintf(line, sizeof(line), "Range: bytes=%llu-",
				 (unsigned long long)r->range_lo);
		else
			snprintf(line, sizeof(line), "Range: bytes=%llu-%llu",
				 (unsigned long long)r->range_lo, (unsigned long long)r->range_hi);
		if (hdr_add(r, line))
			return -1;
	}
	if (r->content_type) {
		snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
		if (hdr_add(r, line))
			return -1;
	}

	CURLcode c = CURLE_OK;
#define SET(opt, val) (c = c ? c : curl_easy_setopt(e, opt, val))
	SET(CURLOPT_URL, r->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_PATH_AS_IS, 1L); /* the path is signed as we wrote it */
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERNAME, s->access_key);
	SET(CURLOPT_PASSWORD, s->secret_key);
	SET(CURLOPT_AWS_SIGV4, s->sigv4);
	SET(CURLOPT_HTTPHEADER, r->hdrs);
	SET(CURLOPT_CONNECTTIMEOUT, s->connect_seconds);
	SET(CURLOPT_LOW_SPEED_LIMIT, (long)S3_STALL_BYTES);
	SET(CURLOPT_LOW_SPEED_TIME, s->stall_seconds);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, progress_cb);
	SET(CURLOPT_XFERINFODATA, r);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file)
		SET(CURLOPT_CAINFO, s->ca_file);
	/* Large buffers for speed; small ones under a bandwidth cap, which
	 * libcurl applies between reads and writes of a buffer. */
	SET(CURLOPT_BUFFERSIZE, s->limit_down ? 16L * 1024 : 512L * 1024);
	SET(CURLOPT_UPLOAD_BUFFERSIZE, s->limit_up ? 16L * 1024 : 512L * 1024);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, r);
	SET(CURLOPT_ERRORBUFFER, r->cerr);
	SET(CURLOPT_PRIVATE, r);
	if (s->limit_up)
		SET(CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)(s->limit_up / (uint64_t)share + 1));
	if (s->limit_down)
		SET(CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)(s->limit_down / (uint64_t)share + 1));
	switch (r->method) {
	case M_GET:
		SET(CURLOPT_HTTPGET, 1L);
		break;
	case M_HEAD:
		SET(CURLOPT_NOBODY, 1L);
		break;
	case M_PUT:
	case M_POST:
		/* The body from memory as "post fields", also for a PUT:
		 * libcurl then adds "Expect: 100-continue" only above 1 MiB
		 * (a 412 then costs no 16 MiB upload), not to every small
		 * PUT, and can resend it on its own.  (An empty "Expect:"
		 * header would be signed but not sent by libcurl 7.88.) */
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		SET(CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
		if (r->method == M_PUT)
			SET(CURLOPT_CUSTOMREQUEST, "PUT");
		break;
	case M_DELETE:
		SET(CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	}
#undef SET
	return c == CURLE_OK ? 0 : -1;
}

/* Failures worth another attempt: the network, or a server that is busy
 * or briefly broken. */
static int curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int status_retryable(const struct req *r)
{
	if (r->status >= 500 && r->status != 501)
		return 1;
	if (r->status == 429 || r->status == 408)
		return 1;
	return !strcmp(r->code, "RequestTimeout") || !strcmp(r->code, "SlowDown") ||
	       !strcmp(r->code, "ConditionalRequestConflict") || !strcmp(r->code, "InternalError");
}

/* Reads the S3 error Code and Message of the last answer, if any. */
static void req_parse_error(struct req *r)
{
	if (r->resp.len == 0)
		return;
	const char *p = (const char *)r->resp.data;
	const char *v;
	size_t vlen;
	if (!xml_find(p, r->resp.len, "Error", &v, &vlen))
		return;
	if (xml_get(v, vlen, "Code", r->code, sizeof(r->code)))
		r->code[0] = '\0';
	if (xml_get(v, vlen, "Message", r->message, sizeof(r->message)))
		r->message[0] = '\0';
}

/* After an attempt: 1 when it should be tried again. */
static int req_finish_attempt(struct s3 *s, struct req *r, CURLcode cc)
{
	r->cc = cc;
	r->tries++;
	if (cc == CURLE_OK)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->nomem)
		return 0;
	if (cc == CURLE_ABORTED_BY_CALLBACK && r->stalled) {
		cc = r->cc = CURLE_OPERATION_TIMEDOUT;
		snprintf(r->cerr, sizeof(r->cerr), "nothing moved for %ld seconds", r->stall_limit);
	}
	if (cc != CURLE_OK) {
		r->status = 0;
		if (cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST)
			r->ambiguous = 1;
		return curl_retryable(cc) && r->tries < s->tries;
	}
	if (r->status < 200 || r->status >= 300) {
		req_parse_error(r);
	} else if (r->body_errors && r->resp.len) {
		/* "200 OK" whose body is an <Error>: the completion failed. */
		const char *v;
		size_t vlen;
		const char *p = (const char *)r->resp.data;
		if (xml_find(p, r->resp.len, "Error", &v, &vlen)) {
			req_parse_error(r);
			r->status = 500;
		}
	}
	if (r->status >= 500)
		r->ambiguous = 1;
	return status_retryable(r) && r->tries < s->tries;
}

/* The wait before attempt number `tries` + 1: doubling from
 * S3_BACKOFF_FIRST up to S3_BACKOFF_MAX, a random half of it taken off
 * so that many clients do not retry in step. */
static double backoff(int tries)
{
	double d = S3_BACKOFF_FIRST;
	for (int i = 1; i < tries && d < S3_BACKOFF_MAX; i++)
		d *= 2;
	if (d > S3_BACKOFF_MAX)
		d = S3_BACKOFF_MAX;
	return d / 2 + d / 2 * (double)randombytes_uniform(1001) / 1000.0;
}

/* Runs the `n` requests, at most `parallel` at once, each until it has a
 * final answer (transient failures are retried).  With `stop_on_fail`,
 * the first request that fails for good (no 2xx) ends those still
 * waiting or running (they are marked `cancelled`).  0, or
 * CAIRN_ENOMEM / CAIRN_EIO when libcurl itself cannot be set up. */
static int run_reqs(struct s3 *s, struct req **reqs, size_t n, int parallel, int stop_on_fail,
		    struct cairn_err *err)
{
	struct conn *c = conn_take(s);
	struct req *running_in[S3_PARALLEL] = {NULL};
	int rc = 0, active = 0, stopping = 0;
	size_t ndone = 0;
	if (!c)
		return cairn_err_set(err, CAIRN_ENOMEM, "S3: cannot set up libcurl (out of memory)");
	if (parallel > S3_PARALLEL)
		parallel = S3_PARALLEL;
	if ((size_t)parallel > n)
		parallel = (int)n;
	double t = now_mono();
	for (size_t i = 0; i < n; i++) {
		reqs[i]->state = 0;
		reqs[i]->next_at = t;
		reqs[i]->tries = 0;
		reqs[i]->ambiguous = 0;
		reqs[i]->cancelled = 0;
	}
	while (ndone < n) {
		t = now_mono();
		double wake = t + 1.0;
		for (size_t i = 0; i < n && !stopping; i++) {
			struct req *r = reqs[i];
			if (r->state != 0)
				continue;
			if (r->next_at > t) {
				if (r->next_at < wake)
					wake = r->next_at;
				continue;
			}
			if (active >= parallel)
				break;
			int slot = -1;
			for (int k = 0; k < parallel && slot < 0; k++)
				if (!running_in[k])
					slot = k;
			if (slot < 0)
				break;
			if (!c->easy[slot] && !(c->easy[slot] = curl_easy_init())) {
				rc = cairn_err_set(err, CAIRN_ENOMEM, "S3: cannot set up libcurl");
				goto out;
			}
			if (req_setup(s, c->easy[slot], r, parallel) ||
			    curl_multi_add_handle(c->multi, c->easy[slot]) != CURLM_OK) {
				rc = cairn_err_set(err, CAIRN_ENOMEM,
						   "S3: cannot set up a request (out of memory)");
				goto out;
			}
			r->state = 1;
			r->slot = slot;
			running_in[slot] = r;
			active++;
		}
		int running = 0;
		CURLMcode mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			rc = cairn_err_set(err, CAIRN_EIO, "S3: libcurl failed: %s",
					   curl_multi_strerror(mc));
			goto out;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(c->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			CURL *e = msg->easy_handle;
			CURLcode cc = msg->data.result;
			struct req *r = NULL;
			curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
			curl_multi_remove_handle(c->multi, e);
			active--;
			if (!r)
				continue;
			running_in[r->slot] = NULL;
			if (req_finish_attempt(s, r, cc) && !stopping) {
				r->state = 0;
				r->next_at = now_mono() + backoff(r->tries);
				continue;
			}
			r->state = 2;
			ndone++;
			if (stop_on_fail && !ok2xx(r))
				stopping = 1;
		}
		if (stopping) {
			/* Give up on the rest. */
			for (size_t i = 0; i < n; i++) {
				struct req *r = reqs[i];
				if (r->state == 2)
					continue;
				if (r->state == 1) {
					curl_multi_remove_handle(c->multi, r->easy);
					running_in[r->slot] = NULL;
					active--;
				}
				r->state = 2;
				r->status = 0;
				r->cc = CURLE_ABORTED_BY_CALLBACK;
				r->cancelled = 1;
				ndone++;
			}
		}
		if (ndone == n)
			break;
		t = now_mono();
		int ms = wake > t ? (int)((wake - t) * 1000) + 1 : 0;
		if (ms > 1000)
			ms = 1000;
		if (active > 0 || ms > 0)
			curl_multi_poll(c->multi, NULL, 0, active > 0 ? (ms ? ms : 1000) : ms, NULL);
	}
out:
	for (size_t i = 0; i < n; i++) {
		struct req *r = reqs[i];
		if (r->state == 1)
			curl_multi_remove_handle(c->multi, r->easy);
		r->easy = NULL;
	}
	if (rc) {
		conn_free(c);
		return rc;
	}
	conn_give(s, c);
	return 0;
}

static int run1(struct s3 *s, struct req *r, struct cairn_err *err)
{
	struct req *one[1] = {r};
	return run_reqs(s, one, 1, 1, 0, err);
}

/* ---- errors ---- */

/* Fills `err` for a request that did not succeed: what was being done
 * ("storing object", ...), the key, the HTTP status and S3's error Code.
 * Returns the cairn code. */
static int s3_fail(const struct s3 *s, const struct req *r, const char *what, const char *key,
		   struct cairn_err *err)
{
	const char *url = s->base.url;
	char subject[STORAGE_KEY_MAX + 64];
	if (key)
		snprintf(subject, sizeof(subject), " %s", key);
	else
		subject[0] = '\0';
	char tries[40] = "";
	if (r->tries > 1)
		snprintf(tries, sizeof(tries), " (gave up after %d tries)", r->tries);
	if (r->nomem)
		return cairn_err_set(err, CAIRN_ENOMEM, "%s%s in %s: out of memory", what, subject, url);
	if (r->status == 0) {
		const char *why = r->cerr[0] ? r->cerr : curl_easy_strerror(r->cc);
		if (r->cc == CURLE_SSL_CACERT_BADFILE)
			return cairn_err_set(err, CAIRN_EIO,
					     "%s%s in %s: --s3-ca-file %s holds no usable CA "
					     "certificate (PEM): %s",
					     what, subject, url, s->ca_file ? s->ca_file : "", why);
		if (r->cc == CURLE_PEER_FAILED_VERIFICATION) {
			/* curl's own host name check (the chain was trusted) says
			 * "... target host name ..."; CURLINFO_SSL_VERIFYRESULT
			 * is not set in that case, so the text is all there is. */
			int name = strstr(why, "target host name") != NULL;
			return cairn_err_set(err, CAIRN_EIO,
					     "%s%s in %s: the TLS certificate of %s is not trusted: %s "
					     "(%s%s)",
					     what, subject, url, s->origin, why,
					     name ? "it is not issued for that host name"
					     : s->ca_file ? "it is not signed by the CA in --s3-ca-file "
							  : "give the CA that signed it with --s3-ca-file",
					     !name && s->ca_file ? s->ca_file : "");
		}
		return cairn_err_set(err, CAIRN_EIO, "%s%s in %s: no answer from %s: %s%s", what,
				     subject, url, s->origin,
				     r->cerr[0] ? r->cerr : curl_easy_strerror(r->cc), tries);
	}
	char detail[300];
	snprintf(detail, sizeof(detail), "HTTP %ld%s%s%s%s%s", r->status, r->code[0] ? " " : "",
		 r->code, r->message[0] ? " (" : "", r->message, r->message[0] ? ")" : "");
	if (!strcmp(r->code, "QuotaExceeded") || !strcmp(r->code, "EntityTooLarge") ||
	    (r->status == 507))
		return cairn_err_set(err, CAIRN_ENOSPC, "%s%s in %s: no space: %s", what, subject,
				     url, detail);
	if (!strcmp(r->code, "RequestTimeTooSkewed"))
		return cairn_err_set(err, CAIRN_EIO,
				     "%s%s in %s: %s: the clock of this host is too far from "
				     "the server's",
				     what, subject, url, detail);
	if (r->status == 403)
		return cairn_err_set(err, CAIRN_EIO,
				     "access denied to S3 bucket %s at %s (%s) %s%s: check "
				     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
				     "AWS_SESSION_TOKEN) and the bucket's permissions",
				     s->bucket, s->origin, detail, what, subject);
	if (!strcmp(r->code, "NoSuchBucket"))
		return cairn_err_set(err, CAIRN_ENOREPO, "S3 bucket %s does not exist at %s (%s)",
				     s->bucket, s->origin, detail);
	if (r->status == 301 || r->status == 307 || !strcmp(r->code, "PermanentRedirect") ||
	    !strcmp(r->code, "AuthorizationHeaderMalformed"))
		return cairn_err_set(err, CAIRN_EIO,
				     "%s%s in %s: %s: the bucket may be in another region or "
				     "need another endpoint (--s3-region, --s3-endpoint)",
				     what, subject, url, detail);
	return cairn_err_set(err, CAIRN_EIO, "%s%s in %s: %s%s", what, subject, url, detail,
			     tries);
}

static int not_found(const struct s3 *s, const char *key, struct cairn_err *err)
{
	return cairn_err_set(err, CAIRN_ENOTFOUND, "object %s not found in %s", key, s->base.url);
}

/* ---- the operations ---- */

/* HEAD of `key`: 0 with *size (and the ETag into etag[cap] when given),
 * CAIRN_ENOTFOUND, or another error. */
static int s3_head(struct s3 *s, const char *key, uint64_t *size, char *etag, size_t cap,
		   struct cairn_err *err)
{
	struct req r;
	req_init(&r, M_HEAD, key);
	int rc = run1(s, &r, err);
	if (rc)
		goto out;
	if (ok2xx(&r)) {
		if (!r.have_len) {
			rc = cairn_err_set(err, CAIRN_EIO,
					   "looking up object %s in %s: the answer has no "
					   "Content-Length",
					   key, s->base.url);
			goto out;
		}
		*size = r.len;
		if (etag)
			snprintf(etag, cap, "%s", r.etag);
	} else if (r.status == 404 && strcmp(r.code, "NoSuchBucket")) {
		rc = not_found(s, key, err);
	} else {
		rc = s3_fail(s, &r, "looking up object", key, err);
	}
out:
	req_clean(&r);
	return rc;
}

/* 1 when the object's ETag is `want` (quotes and case aside). */
static int etag_is(const char *etag, const char *want)
{
	size_t n = strlen(etag);
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	return n == strlen(want) && strncasecmp(etag, want, n) == 0;
}

/* Whether `key` holds the bytes whose ETag is `want` (the MD5 of a single
 * PUT's body, or the multipart form): 0 when it does, CAIRN_EEXIST when it
 * holds something else, CAIRN_ENOTFOUND when there is no object, or
 * another error.  See "put" in the file comment for why identical bytes
 * count as success. */
static int same_object(struct s3 *s, const char *key, const char *want, struct cairn_err *err)
{
	uint64_t size;
	char etag[100];
	int rc = s3_head(s, key, &size, etag, sizeof(etag), err);
	if (rc)
		return rc;
	if (etag_is(etag, want))
		return 0;
	return cairn_err_set(err, CAIRN_EEXIST, "object %s already exists in %s", key,
			     s->base.url);
}

/* After a 412: 0 when the object is ours after all, else CAIRN_EEXIST. */
static int after_412(struct s3 *s, const char *key, const char *want, struct cairn_err *err)
{
	int rc = same_object(s, key, want, err);
	if (rc == 0 || rc == CAIRN_EEXIST)
		return rc;
	return cairn_err_set(err, CAIRN_EEXIST, "object %s already exists in %s", key,
			     s->base.url);
}

static int put_multipart(struct s3 *s, const char *key, const uint8_t *data, size_t len,
			 struct cairn_err *err);

/* storage_key_check, plus S3's limit of 1024 bytes on the whole key. */
static int s3_key_check(const struct s3 *s, const char *key, int is_prefix,
			struct cairn_err *err)
{
	int rc = storage_key_check(key, is_prefix, err);
	if (rc)
		return rc;
	if (strlen(s->prefix) + strlen(key) > S3_KEY_MAX)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "storage %s \"%s\" is too long for S3 under the prefix \"%s\" "
				     "(%zu bytes together, at most %d)",
				     is_prefix ? "prefix" : "key", key, s->prefix,
				     strlen(s->prefix) + strlen(key), S3_KEY_MAX);
	return 0;
}

static int s3_put(struct storage *st, const char *key, const void *data, size_t len,
		  struct cairn_err *err)
{
	struct s3 *s = (struct s3 *)st;
	int rc = s3_key_check(s, key, 0, err);
	if (rc)
		return rc;
	if (len > S3_MULTIPART_ABOVE)
		return put_multipart(s, key, data, len, err);

	struct req r;
	uint8_t m[16];
	char md5hex[33];
	req_init(&r, M_PUT, key);
	req_body(&r, data, len, 1, m);
	hex_encode(md5hex, m, sizeof(m));
	int cond = !flag_get(s, &s->no_cond_put);
	for (;;) {
		if (!cond) {
			rc = same_object(s, key, md5hex, err);
			if (rc != CAIRN_ENOTFOUND)
				goto out;
		}
		r.if_none_match = cond;
		rc = run1(s, &r, err);
		if (rc)
			goto out;
		if (cond && r.status == 501) {
			/* No conditional writes here (Swift): check, then write. */
			flag_set(s, &s->no_cond_put);
			cond = 0;
			continue;
		}
		break;
	}
	if (ok2xx(&r))
		rc = 0;
	else if (r.status == 412)
		rc = after_412(s, key, md5hex, err);
	else
		rc = s3_fail(s, &r, "storing object", key, err);
out:
	req_clean(&r);
	return rc;
}

/* AbortMultipartUpload, best effort (a failure leaves parts that a bucket
 * lifecycle rule or a later abort cleans up). */
static void mp_abort(struct s3 *s, const char *key, const char *qid)
{
	struct buf q = BUF_INIT;
	struct req r;
	struct cairn_err e2;
	req_init(&r, M_DELETE, key);
	if (buf_str(&q, "uploadId=") || buf_str(&q, qid) || buf_cstr(&q))
		goto out;
	r.query = (const char *)q.data;
	run1(s, &r, &e2);
out:
	req_clean(&r);
	buf_free(&q);
}

static int put_multipart(struct s3 *s, const char *key, const uint8_t *data, size_t len,
			 struct cairn_err *err)
{
	struct req r, *parts = NULL, **pp = NULL;
	struct buf q = BUF_INIT, xml = BUF_INIT, qcomplete = BUF_INIT;
	char (*queries)[64 + 1200] = NULL;
	uint8_t (*digests)[16] = NULL;
	char upload_id[1024], want[56];
	size_t part = S3_PART_SIZE, nparts;
	int rc, started = 0;
	req_init(&r, M_POST, key);

	while ((len + part - 1) / part > S3_MAX_PARTS)
		part *= 2;
	nparts = (len + part - 1) / part;
	parts = calloc(nparts, sizeof(*parts));
	pp = calloc(nparts, sizeof(*pp));
	queries = calloc(nparts, sizeof(*queries));
	digests = calloc(nparts, sizeof(*digests));
	if (!parts || !pp || !queries || !digests)
		goto nomem;
	for (size_t i = 0; i < nparts; i++) {
		size_t off = i * part, n = len - off < part ? len - off : part;
		req_init(&parts[i], M_PUT, key);
		req_body(&parts[i], data + off, n, 1, digests[i]);
		pp[i] = &parts[i];
	}
	/* The object's ETag will be the MD5 of the parts' MD5s, "-", and
	 * their number. */
	{
		uint8_t all[16];
		md5(digests, nparts * 16, all);
		hex_encode(want, all, 16);
		snprintf(want + 32, sizeof(want) - 32, "-%zu", nparts);
	}

	/* Not every server honours If-None-Match on the completion: look
	 * first (not atomic: see the file comment). */
	rc = same_object(s, key, want, err);
	if (rc != CAIRN_ENOTFOUND)
		goto out;

	/* CreateMultipartUpload */
	r.query = "uploads=";
	r.content_type = "application/octet-stream";
	rc = run1(s, &r, err);
	if (rc)
		goto out;
	if (!ok2xx(&r)) {
		rc = s3_fail(s, &r, "storing object (starting a multipart upload)", key, err);
		goto out;
	}
	if (xml_get((const char *)r.resp.data, r.resp.len, "UploadId", upload_id,
		    sizeof(upload_id)) || !upload_id[0]) {
		rc = cairn_err_set(err, CAIRN_EIO,
				   "storing object %s in %s: the server's answer to "
				   "CreateMultipartUpload has no UploadId",
				   key, s->base.url);
		goto out;
	}
	started = 1;
	if (uri_encode(&q, upload_id, 0) || buf_cstr(&q) || q.len > 1200)
		goto nomem;

	/* The parts, S3_PARALLEL at a time; the first that fails for good
	 * ends the others. */
	for (size_t i = 0; i < nparts; i++) {
		snprintf(queries[i], sizeof(queries[i]), "partNumber=%zu&uploadId=%s", i + 1,
			 (const char *)q.data);
		parts[i].query = queries[i];
	}
	rc = run_reqs(s, pp, nparts, S3_PARALLEL, 1, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < nparts; i++) {
		if (ok2xx(&parts[i]) && parts[i].etag[0])
			continue;
		if (parts[i].cancelled)
			continue; /* given up because another part failed */
		if (ok2xx(&parts[i])) {
			rc = cairn_err_set(err, CAIRN_EIO,
					   "storing object %s in %s: no ETag for part %zu", key,
					   s->base.url, i + 1);
		} else {
			char what[96];
			snprintf(what, sizeof(what), "storing object (part %zu of %zu)", i + 1,
				 nparts);
			rc = s3_fail(s, &parts[i], what, key, err);
		}
		goto out;
	}

	/* CompleteMultipartUpload */
	if (buf_str(&xml, "<CompleteMultipartUpload>"))
		goto nomem;
	for (size_t i = 0; i < nparts; i++) {
		char pn[96];
		snprintf(pn, sizeof(pn), "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
		if (buf_str(&xml, pn) || xml_escape(&xml, parts[i].etag) ||
		    buf_str(&xml, "</ETag></Part>"))
			goto nomem;
	}
	if (buf_str(&xml, "</CompleteMultipartUpload>"))
		goto nomem;
	if (buf_str(&qcomplete, "uploadId=") || buf_str(&qcomplete, (const char *)q.data) ||
	    buf_cstr(&qcomplete))
		goto nomem;
	int cond = !flag_get(s, &s->no_cond_complete);
	for (;;) {
		req_clean(&r);
		req_init(&r, M_POST, key);
		r.query = (const char *)qcomplete.data;
		r.content_type = "application/xml";
		r.body_errors = 1;
		r.if_none_match = cond;
		req_body(&r, xml.data, xml.len, 1, NULL);
		rc = run1(s, &r, err);
		if (rc)
			goto out;
		if (cond && r.status == 501) {
			flag_set(s, &s->no_cond_complete);
			cond = 0;
			continue;
		}
		break;
	}
	if (ok2xx(&r)) {
		rc = 0;
	} else if (r.status == 412) {
		rc = after_412(s, key, want, err);
	} else if (r.status == 404 && !strcmp(r.code, "NoSuchUpload") && r.ambiguous) {
		/* An earlier attempt completed it and its answer was lost? */
		rc = same_object(s, key, want, err);
		if (rc)
			rc = s3_fail(s, &r, "storing object (completing the multipart upload)", key,
				     err);
	} else {
		rc = s3_fail(s, &r, "storing object (completing the multipart upload)", key, err);
	}
	if (rc == 0)
		started = 0;
	goto out;
nomem:
	rc = cairn_err_set(err, CAIRN_ENOMEM, "storing object %s in %s: out of memory", key,
			   s->base.url);
out:
	if (started && rc)
		mp_abort(s, key, (const char *)q.data);
	if (parts)
		for (size_t i = 0; i < nparts; i++)
			req_clean(&parts[i]);
	free(parts);
	free(pp);
	free(queries);
	free(digests);
	req_clean(&r);
	buf_free(&q);
	buf_free(&xml);
	buf_free(&qcomplete);
	return rc;
}

static uint64_t need_bytes(uint64_t off, uint64_t len)
{
	if (len == STORAGE_WHOLE)
		return off;
	return off > UINT64_MAX - len ? UINT64_MAX : off + len;
}

static int truncated(const struct s3 *s, const char *key, uint64_t size, uint64_t need,
		     struct cairn_err *err)
{
	return cairn_err_set(err, CAIRN_ECORRUPT, "object %s is truncated: %llu bytes, need %llu (in %s)",
			     key, (unsigned long long)size, (unsigned long long)need, s->base.url);
}

/* A get that a HEAD answers: empty ranges, ranges past the end. */
static int get_by_size(struct s3 *s, const char *key, uint64_t off, uint64_t len,
		       struct cairn_err *err)
{
	uint64_t size;
	int rc = s3_head(s, key, &size, NULL, 0, err);
	if (rc)
		return rc;
	if (off > size || (len != STORAGE_WHOLE && len > size - off))
		return truncated(s, key, size, need_bytes(off, len), err);
	return 0; /* an empty range within the object */
}

static int s3_get(struct storage *st, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, struct cairn_err *err)
{
	struct s3 *s = (struct s3 *)st;
	buf_reset(out);
	int rc = s3_key_check(s, key, 0, err);
	if (rc)
		return rc;
	if (len == 0 || (len != STORAGE_WHOLE && off > UINT64_MAX - len))
		return get_by_size(s, key, off, len, err);

	struct req r;
	req_init(&r, M_GET, key);
	r.out = out;
	if (off > 0 || len != STORAGE_WHOLE) {
		r.range = 1;
		r.range_lo = off;
		r.range_hi = len == STORAGE_WHOLE ? UINT64_MAX : off + len - 1;
	}
	rc = run1(s, &r, err);
	if (rc)
		goto out;
	if (r.status == 404 && strcmp(r.code, "NoSuchBucket")) {
		rc = not_found(s, key, err);
		goto out;
	}
	if (r.status == 416) {
		/* The range starts at or past the end: "off == size" reads
		 * nothing, anything beyond is a truncated object. */
		buf_reset(out);
		rc = get_by_size(s, key, off, len, err);
		goto out;
	}
	if (!ok2xx(&r) || (r.status != 200 && r.status != 206)) {
		buf_reset(out);
		rc = s3_fail(s, &r, "reading object", key, err);
		goto out;
	}
	uint64_t total;
	if (r.status == 200) {
		/* The whole object (no range asked, or the server ignored it). */
		total = out->len;
		if (off > total) {
			buf_reset(out);
			rc = truncated(s, key, total, need_bytes(off, len), err);
			goto out;
		}
		if (off > 0) {
			memmove(out->data, out->data + off, (size_t)(total - off));
			out->len = (size_t)(total - off);
		}
	} else {
		if (!r.have_total) {
			buf_reset(out);
			rc = cairn_err_set(err, CAIRN_EIO,
					   "reading object %s in %s: a partial answer without "
					   "Content-Range",
					   key, s->base.url);
			goto out;
		}
		total = r.total;
	}
	uint64_t want = len == STORAGE_WHOLE ? (total >= off ? total - off : 0) : len;
	if (total < need_bytes(off, len) || out->len < want) {
		buf_reset(out);
		rc = truncated(s, key, total < need_bytes(off, len) ? total : off + out->len,
			       need_bytes(off, len), err);
		goto out;
	}
	out->len = (size_t)want; /* a server that sent more than asked */
out:
	req_clean(&r);
	return rc;
}

static int s3_stat(struct storage *st, const char *key, uint64_t *size, struct cairn_err *err)
{
	struct s3 *s = (struct s3 *)st;
	int rc = s3_key_check(s, key, 0, err);
	if (rc)
		return rc;
	return s3_head(s, key, size, NULL, 0, err);
}

static int s3_del(struct storage *st, const char *key, struct cairn_err *err)
{
	struct s3 *s = (struct s3 *)st;
	uint64_t size;
	int rc = s3_key_check(s, key, 0, err);
	if (rc)
		return rc;
	/* S3 answers 204 for a missing key too: the contract wants to know. */
	rc = s3_head(s, key, &size, NULL, 0, err);
	if (rc)
		return rc;
	struct req r;
	req_init(&r, M_DELETE, key);
	rc = run1(s, &r, err);
	if (rc == 0 && !ok2xx(&r))
		rc = r.status == 404 && strcmp(r.code, "NoSuchBucket")
			     ? not_found(s, key, err)
			     : s3_fail(s, &r, "deleting object", key, err);
	req_clean(&r);
	return rc;
}

/* Calls cb for each <Contents> of one ListObjectsV2 page; sets *more and
 * next[cap] (the continuation token, or "" when the server gave none) and
 * last[cap] (the last full key seen). */
static int list_page(struct s3 *s, const char *page, size_t plen, storage_list_cb cb, void *arg,
		     int *more, char *next, size_t cap, char *last, size_t lcap,
		     struct cairn_err *err)
{
	size_t pfx = strlen(s->prefix);
	char key[STORAGE_KEY_MAX * 2 + 1], num[32], flag[16];
	const char *v, *p = page, *end = page + plen;
	size_t vlen;
	while ((p = xml_find(p, (size_t)(end - p), "Contents", &v, &vlen))) {
		uint64_t size;
		if (xml_get(v, vlen, "Key", key, sizeof(key)))
			continue; /* longer than any key of ours */
		if (xml_get(v, vlen, "Size", num, sizeof(num)) ||
		    parse_u64(num, strlen(num), &size))
			return cairn_err_set(err, CAIRN_EIO,
					     "listing %s: an entry without a valid Size (%s)",
					     s->base.url, key);
		snprintf(last, lcap, "%s", key);
		if (strncmp(key, s->prefix, pfx) != 0)
			continue;
		const char *rel = key + pfx;
		/* Objects other tools put under the prefix are not ours. */
		if (storage_key_check(rel, 0, NULL) != 0)
			continue;
		int rc = cb(arg, rel, size);
		if (rc)
			return rc;
	}
	*more = xml_get(page, plen, "IsTruncated", flag, sizeof(flag)) == 0 &&
		!strcmp(flag, "true");
	if (xml_get(page, plen, "NextContinuationToken", next, cap))
		next[0] = '\0';
	return 0;
}

static int s3_list(struct storage *st, const char *prefix, storage_list_cb cb, void *arg,
		   struct cairn_err *err)
{
	struct s3 *s = (struct s3 *)st;
	struct buf q = BUF_INIT, page = BUF_INIT, full = BUF_INIT;
	char token[2048] = "", last[STORAGE_KEY_MAX * 2 + 1] = "", num[24];
	int rc = s3_key_check(s, prefix, 1, err), more = 1;
	if (rc)
		return rc;
	if (buf_str(&full, s->prefix) || buf_str(&full, prefix) || buf_cstr(&full))
		goto nomem;
	for (int pages = 0; more; pages++) {
		struct req r;
		buf_reset(&q);
		/* Parameters sorted by name, each as name=value (libcurl 7.88
		 * signs the query string as written). */
		if (token[0]) {
			if (buf_str(&q, "continuation-token=") || uri_encode(&q, token, 0) ||
			    buf_str(&q, "&"))
				goto nomem;
		}
		if (buf_str(&q, "list-type=2"))
			goto nomem;
		if (s->list_page) {
			snprintf(num, sizeof(num), "&max-keys=%u", s->list_page);
			if (buf_str(&q, num))
				goto nomem;
		}
		if (full.len && (buf_str(&q, "&prefix=") || uri_encode(&q, (const char *)full.data, 0)))
			goto nomem;
		if (!token[0] && last[0] && pages > 0) {
			/* A truncated page without a token: go on after its last key. */
			if (buf_str(&q, "&start-after=") || uri_encode(&q, last, 0))
				goto nomem;
		}
		if (buf_cstr(&q))
			goto nomem;
		req_init(&r, M_GET, NULL);
		r.query = (const char *)q.data;
		r.out = &page;
		rc = run1(s, &r, err);
		if (rc == 0 && !ok2xx(&r))
			rc = s3_fail(s, &r, "listing", prefix[0] ? prefix : "(all keys)", err);
		req_clean(&r);
		if (rc)
			goto out;
		char prev_last[sizeof(last)];
		snprintf(prev_last, sizeof(prev_last), "%s", last);
		rc = list_page(s, (const char *)page.data, page.len, cb, arg, &more, token,
			       sizeof(token), last, sizeof(last), err);
		if (rc)
			goto out;
		if (more && !token[0] && (!last[0] || !strcmp(last, prev_last))) {
			rc = cairn_err_set(err, CAIRN_EIO,
					   "listing %s: the server says the listing goes on but "
					   "gives no way to continue",
					   s->base.url);
			goto out;
		}
	}
	goto out;
nomem:
	rc = cairn_err_set(err, CAIRN_ENOMEM, "listing %s: out of memory", s->base.url);
out:
	buf_free(&q);
	buf_free(&page);
	buf_free(&full);
	return rc;
}

int storage_s3_delete_many(struct storage *st, const char *const *keys, size_t n,
			   struct cairn_err *err)
{
	if (!st || st->ops != &s3_ops)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "storage_s3_delete_many needs an S3 storage handle");
	struct s3 *s = (struct s3 *)st;
	for (size_t i = 0; i < n; i++) {
		int rc = s3_key_check(s, keys[i], 0, err);
		if (rc)
			return rc;
	}
	struct buf xml = BUF_INIT;
	int rc = 0;
	for (size_t at = 0; at < n && rc == 0; at += S3_DELETE_BATCH) {
		size_t end = n - at < S3_DELETE_BATCH ? n : at + S3_DELETE_BATCH;
		struct req r;
		buf_reset(&xml);
		if (buf_str(&xml, "<Delete><Quiet>true</Quiet>"))
			goto nomem;
		for (size_t i = at; i < end; i++)
			if (buf_str(&xml, "<Object><Key>") || xml_escape(&xml, s->prefix) ||
			    xml_escape(&xml, keys[i]) || buf_str(&xml, "</Key></Object>"))
				goto nomem;
		if (buf_str(&xml, "</Delete>"))
			goto nomem;
		req_init(&r, M_POST, NULL);
		r.query = "delete=";
		r.content_type = "application/xml";
		req_body(&r, xml.data, xml.len, 1, NULL); /* Content-MD5 is required */
		rc = run1(s, &r, err);
		if (rc == 0 && !ok2xx(&r))
			rc = s3_fail(s, &r, "deleting objects", keys[at], err);
		if (rc == 0 && r.resp.len) {
			/* Quiet mode lists only the keys that failed. */
			const char *v, *p = (const char *)r.resp.data;
			size_t vlen;
			if (xml_find(p, r.resp.len, "Error", &v, &vlen)) {
				char k[STORAGE_KEY_MAX * 2 + 1] = "?", code[64] = "", msg[200] = "";
				if (xml_get(v, vlen, "Key", k, sizeof(k)))
					snprintf(k, sizeof(k), "?");
				if (xml_get(v, vlen, "Code", code, sizeof(code)))
					code[0] = '\0';
				if (xml_get(v, vlen, "Message", msg, sizeof(msg)))
					msg[0] = '\0';
				rc = cairn_err_set(err, CAIRN_EIO, "deleting object %s in %s: %s%s%s%s",
						   k, s->base.url, code, msg[0] ? " (" : "", msg,
						   msg[0] ? ")" : "");
			}
		}
		req_clean(&r);
	}
	buf_free(&xml);
	return rc;
nomem:
	buf_free(&xml);
	return cairn_err_set(err, CAIRN_ENOMEM, "deleting objects in %s: out of memory",
			     s->base.url);
}

static void s3_close(struct storage *st)
{
	struct s3 *s = (struct s3 *)st;
	struct conn *c = s->idle;
	while (c) {
		struct conn *next = c->next;
		conn_free(c);
		c = next;
	}
	pthread_mutex_destroy(&s->mu);
	if (s->secret_key)
		sodium_memzero(s->secret_key, strlen(s->secret_key));
	if (s->token_header)
		sodium_memzero(s->token_header, strlen(s->token_header));
	free(s->origin);
	free(s->scheme);
	free(s->hostport);
	free(s->bucket);
	free(s->prefix);
	free(s->sigv4);
	free(s->ca_file);
	free(s->access_key);
	free(s->secret_key);
	free(s->token_header);
	free(s->base.url);
	free(s);
}

static const struct storage_ops s3_ops = {
	.name = "s3",
	.put = s3_put,
	.get = s3_get,
	.list = s3_list,
	.del = s3_del,
	.stat = s3_stat,
	.close = s3_close,
};

/* ---- opening ---- */

/* libcurl's global state is set up once per process (curl_global_init is
 * not safe to call from two threads at once). */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A number from the environment within [lo, hi], else `dflt`. */
static long env_long(const char *name, long dflt, long lo, long hi)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	char *end;
	long n = strtol(v, &end, 10);
	return *end || n < lo || n > hi ? dflt : n;
}

static int prefix_ok(const char *p)
{
	const char *seg = p;
	for (;;) {
		const char *slash = strchr(seg, '/');
		size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		for (size_t i = 0; i < len; i++) {
			char c = seg[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || strchr("-._~+=", c)))
				return 0;
		}
		if (!slash)
			return 1;
		seg = slash + 1;
	}
}

static int bucket_ok(const char *b, int host_style)
{
	size_t n = strlen(b);
	if (n < 1 || n > 255)
		return 0;
	if (host_style && (n < 3 || n > 63))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		int dns = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
		if (!dns && (host_style || !((c >= 'A' && c <= 'Z') || c == '_')))
			return 0;
	}
	return 1;
}

/* Makes sure the bucket is there: ListObjectsV2 of at most one key under
 * the prefix (an answer with an S3 error Code, where HEAD would have
 * none).  A missing
 * bucket is created with `create`, else CAIRN_ENOREPO. */
static int bucket_probe(struct s3 *s, int create, struct cairn_err *err)
{
	struct req r;
	struct buf page = BUF_INIT, body = BUF_INIT, q = BUF_INIT;
	int rc;
	req_init(&r, M_GET, NULL);
	/* Within the prefix: a policy may allow listing only there. */
	if (buf_str(&q, "list-type=2&max-keys=1") ||
	    (s->prefix[0] && (buf_str(&q, "&prefix=") || uri_encode(&q, s->prefix, 0))) ||
	    buf_cstr(&q)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "opening %s: out of memory", s->base.url);
		goto out;
	}
	r.query = (const char *)q.data;
	r.out = &page;
	rc = run1(s, &r, err);
	if (rc)
		goto out;
	if (ok2xx(&r))
		goto out;
	if (r.status != 404 || (r.code[0] && strcmp(r.code, "NoSuchBucket"))) {
		/* A certificate that is not trusted is no "cannot reach": say
		 * so the way every other request does. */
		rc = r.status == 0 && r.cc != CURLE_PEER_FAILED_VERIFICATION &&
				     r.cc != CURLE_SSL_CACERT_BADFILE
			     ? cairn_err_set(err, CAIRN_EIO,
					     "cannot reach the S3 endpoint %s for %s: %s (tried %d %s)",
					     s->origin, s->base.url,
					     r.cerr[0] ? r.cerr : curl_easy_strerror(r.cc), r.tries,
					     r.tries == 1 ? "time" : "times")
			     : s3_fail(s, &r, "opening bucket", s->bucket, err);
		goto out;
	}
	if (!create) {
		rc = cairn_err_set(err, CAIRN_ENOREPO, "S3 bucket %s does not exist at %s", s->bucket,
				   s->origin);
		goto out;
	}
	/* CreateBucket: outside us-east-1 the region goes in the body. */
	const char *region = s->sigv4 + strlen("aws:amz:");
	size_t rlen = strlen(region) - strlen(":s3");
	req_clean(&r);
	req_init(&r, M_PUT, NULL);
	if (!(rlen == 9 && !strncmp(region, "us-east-1", 9))) {
		char x[300];
		snprintf(x, sizeof(x),
			 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<LocationConstraint>%.*s</LocationConstraint></CreateBucketConfiguration>",
			 (int)rlen, region);
		if (buf_str(&body, x)) {
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
	}
	req_body(&r, body.data ? body.data : (const uint8_t *)"", body.len, 0, NULL);
	rc = run1(s, &r, err);
	if (rc)
		goto out;
	if (ok2xx(&r) || (r.status == 409 && !strcmp(r.code, "BucketAlreadyOwnedByYou")))
		goto out;
	if (r.status == 409 && !strcmp(r.code, "BucketAlreadyExists"))
		rc = cairn_err_set(err, CAIRN_EIO,
				   "creating S3 bucket %s at %s: the name is taken by another "
				   "account (HTTP 409 BucketAlreadyExists)",
				   s->bucket, s->origin);
	else
		rc = s3_fail(s, &r, "creating bucket", s->bucket, err);
out:
	req_clean(&r);
	buf_free(&page);
	buf_free(&body);
	buf_free(&q);
	return rc;
}

int storage_s3_open(struct storage **out, const char *url, const char *bucket,
		    const char *prefix, int create, const struct storage_opts *opts,
		    struct cairn_err *err)
{
	struct s3 *s = NULL;
	int rc;
	*out = NULL;
	const char *ep = opts ? opts->s3_endpoint : NULL;
	if (!ep || !*ep)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "repository location %s: an S3 repository needs an endpoint: "
				     "give --s3-endpoint URL (or CAIRN_S3_ENDPOINT), e.g. "
				     "https://s3.us-east-1.amazonaws.com",
				     url);
	const char *style = opts->s3_uri_style;
	int host_style = style && !strcmp(style, "host");
	if (style && !host_style && strcmp(style, "path"))
		return cairn_err_set(err, CAIRN_EUSAGE, "--s3-uri-style is path or host, not %s",
				     style);
	if (!bucket_ok(bucket, host_style))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "repository location %s: \"%s\" is not a valid bucket name%s",
				     url, bucket,
				     host_style ? " for --s3-uri-style host (3-63 of [a-z0-9.-])" : "");
	if (prefix[0] && (strlen(prefix) > 512 || !prefix_ok(prefix)))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "repository location %s: the key prefix \"%s\" must be "
				     "segments of [A-Za-z0-9._~+=-] separated by '/'",
				     url, prefix);
	size_t slen = !strncmp(ep, "https://", 8) ? 5 : !strncmp(ep, "http://", 7) ? 4 : 0;
	const char *hp = ep + slen + 3;
	size_t hlen = strlen(hp);
	while (hlen > 0 && hp[hlen - 1] == '/')
		hlen--;
	if (slen == 0 || hlen == 0 || memchr(hp, '/', hlen) || memchr(hp, '?', hlen) ||
	    memchr(hp, '@', hlen) || memchr(hp, '#', hlen))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "--s3-endpoint %s: give http[s]://HOST[:PORT] (no path)", ep);
	const char *region = opts->s3_region && *opts->s3_region ? opts->s3_region : "us-east-1";
	for (const char *p = region; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "--s3-region %s: a region is made of [a-z0-9-]", region);
	if (opts->s3_ca_file && access(opts->s3_ca_file, R_OK) != 0)
		return cairn_err_errno(err, errno, "--s3-ca-file %s", opts->s3_ca_file);
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");
	if (!ak || !*ak || !sk || !*sk)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "repository location %s: S3 credentials are missing: set "
				     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
				     "AWS_SESSION_TOKEN for temporary credentials)",
				     url);
	if (strchr(ak, '\n') || strchr(sk, '\n') || (tok && strchr(tok, '\n')))
		return cairn_err_set(err, CAIRN_EUSAGE, "S3 credentials must be one line each");

	if (sodium_init() < 0)
		return cairn_err_set(err, CAIRN_ECRYPTO, "libsodium failed to initialise");
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return cairn_err_set(err, CAIRN_EIO, "libcurl failed to initialise: %s",
				     curl_easy_strerror(curl_init_rc));

	s = calloc(1, sizeof(*s));
	if (!s)
		return cairn_err_set(err, CAIRN_ENOMEM, "opening %s: out of memory", url);
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return cairn_err_set(err, CAIRN_ENOMEM, "opening %s: no mutex", url);
	}
	s->base.ops = &s3_ops;
	s->host_style = host_style;
	s->limit_up = opts->limit_upload;
	s->limit_down = opts->limit_download;
	s->stall_seconds = env_long("CAIRN_S3_TIMEOUT_SECONDS", S3_STALL_SECONDS, 1, 3600);
	s->connect_seconds =
		s->stall_seconds < S3_CONNECT_SECONDS ? s->stall_seconds : S3_CONNECT_SECONDS;
	s->tries = (int)env_long("CAIRN_S3_RETRIES", S3_TRIES, 1, 100);
	s->list_page = (unsigned)env_long("CAIRN_S3_LIST_PAGE", 0, 1, 1000);
	s->base.url = strdup(url);
	s->scheme = strndup(ep, slen);
	s->hostport = strndup(hp, hlen);
	s->origin = strndup(ep, slen + 3 + hlen);
	s->bucket = strdup(bucket);
	s->access_key = strdup(ak);
	s->secret_key = strdup(sk);
	s->ca_file = opts->s3_ca_file ? strdup(opts->s3_ca_file) : NULL;
	size_t plen = strlen(prefix);
	s->prefix = malloc(plen + 2);
	s->sigv4 = malloc(strlen(region) + 16);
	if (tok && *tok) {
		s->token_header = malloc(strlen(tok) + 32);
		if (s->token_header)
			snprintf(s->token_header, strlen(tok) + 32, "x-amz-security-token: %s", tok);
	}
	if (!s->base.url || !s->scheme || !s->hostport || !s->origin || !s->bucket ||
	    !s->access_key || !s->secret_key || (opts->s3_ca_file && !s->ca_file) || !s->prefix ||
	    !s->sigv4 || (tok && *tok && !s->token_header)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "opening %s: out of memory", url);
		goto fail;
	}
	memcpy(s->prefix, prefix, plen);
	s->prefix[plen] = plen ? '/' : '\0';
	s->prefix[plen + (plen ? 1 : 0)] = '\0';
	snprintf(s->sigv4, strlen(region) + 16, "aws:amz:%s:s3", region);

	rc = bucket_probe(s, create, err);
	if (rc)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	s3_close(&s->base);
	return rc;
}
