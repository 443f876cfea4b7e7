/*
 * buf.h — growable byte buffers and bounds-checked little-endian encoding.
 *
 * Every on-disk structure of cairn is written field by field through
 * `struct buf` (explicit little-endian byte order, never a struct copy) and
 * parsed through `struct rd`, which never reads past `len`: a short or
 * malformed input makes the reader's `bad` flag sticky and every later get
 * returns zeroes, so a parser checks `rd.bad` once at the end.
 *
 * Memory: a `struct buf` owns `data` (free with buf_free).  A `struct rd`
 * borrows its input.  Not thread-safe; use one per thread.
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

/* Grows capacity to at least `cap`. 0 or CAIRN_ENOMEM (no error record:
 * out of memory is reported by the caller). */
int buf_reserve(struct buf *b, size_t cap);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
/* u16 length then bytes; CAIRN_EUSAGE when n > 65535. */
int buf_put_str16(struct buf *b, const char *s, size_t n);
/* Unsigned LEB128 varint (1..10 bytes). */
int buf_put_uvar(struct buf *b, uint64_t v);
void buf_reset(struct buf *b);          /* len = 0, keeps memory */
void buf_free(struct buf *b);           /* frees; b may be zeroed or NULL */
/* Wipes the bytes (sodium_memzero) before freeing: for key material. */
void buf_free_secret(struct buf *b);

struct rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
	int bad;
};

static inline struct rd rd_make(const void *p, size_t len)
{
	struct rd r = {(const uint8_t *)p, len, 0, 0};
	return r;
}
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
uint64_t rd_uvar(struct rd *r);
/* Returns a pointer into the input for the next n bytes (NULL, bad set, if
 * fewer remain).  Valid as long as the input is. */
const uint8_t *rd_bytes(struct rd *r, size_t n);
/* Copies n bytes into out (zeroes on short input). */
void rd_copy(struct rd *r, void *out, size_t n);
static inline size_t rd_left(const struct rd *r) { return r->len - r->pos; }

/* Little-endian helpers for fixed positions. */
static inline void le_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t le_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
	le_put32(p, (uint32_t)v);
	le_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t le_get64(const uint8_t *p)
{
	return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(char *out, const uint8_t *in, size_t n);
/* Parses exactly 2n hex digits; 0 or -1. */
int hex_decode(uint8_t *out, size_t n, const char *hex);

#endif
