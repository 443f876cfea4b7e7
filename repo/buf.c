/* buf.c — growable buffers and little-endian codecs; see buf.h. */
#include "repo/buf.h"
#include "repo/error.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t cap)
{
	if (cap <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < cap) {
		if (ncap > SIZE_MAX / 2)
			return CAIRN_ENOMEM;
		ncap *= 2;
	}
	uint8_t *p = realloc(b->data, ncap);
	if (!p)
		return CAIRN_ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (b->len + n < b->len || buf_reserve(b, b->len + n))
		return CAIRN_ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_put_u8(struct buf *b, uint8_t v) { return buf_append(b, &v, 1); }

int buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	return buf_append(b, p, 2);
}

int buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t p[4];
	le_put32(p, v);
	return buf_append(b, p, 4);
}

int buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t p[8];
	le_put64(p, v);
	return buf_append(b, p, 8);
}

int buf_put_str16(struct buf *b, const char *s, size_t n)
{
	if (n > 65535)
		return CAIRN_EUSAGE;
	int rc = buf_put_u16(b, (uint16_t)n);
	return rc ? rc : buf_append(b, s, n);
}

int buf_put_uvar(struct buf *b, uint64_t v)
{
	uint8_t p[10];
	size_t n = 0;
	do {
		uint8_t c = v & 0x7f;
		v >>= 7;
		p[n++] = c | (v ? 0x80 : 0);
	} while (v);
	return buf_append(b, p, n);
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free_secret(struct buf *b)
{
	if (!b)
		return;
	if (b->data)
		sodium_memzero(b->data, b->cap);
	buf_free(b);
}

const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	if (r->bad || n > r->len - r->pos) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->pos;
	r->pos += n;
	return p;
}

void rd_copy(struct rd *r, void *out, size_t n)
{
	const uint8_t *p = rd_bytes(r, n);
	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
}

uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 4);
	return p ? le_get32(p) : 0;
}

uint64_t rd_u64(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 8);
	return p ? le_get64(p) : 0;
}

uint64_t rd_uvar(struct rd *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		const uint8_t *p = rd_bytes(r, 1);
		if (!p)
			return 0;
		if (shift == 63 && (*p & 0x7e)) {
			r->bad = 1; /* more than 64 bits */
			return 0;
		}
		v |= (uint64_t)(*p & 0x7f) << shift;
		if (!(*p & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

void hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int hex_decode(uint8_t *out, size_t n, const char *hex)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * n] == '\0' ? 0 : -1;
}
