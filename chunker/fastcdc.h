/*
 * fastcdc.h — content-defined chunking (FastCDC with normalized chunking).
 *
 * Finds chunk boundaries only: no I/O, no allocation, no globals, no crypto.
 * The 256-entry gear table is given by the caller (repo/ derives it from a
 * repository secret so that boundaries do not fingerprint known content).
 *
 * Algorithm (Xia et al., "FastCDC", USENIX ATC 2016, with normalized
 * chunking level 2): a gear hash h = (h << 1) + gear[byte] in 64 bits,
 * started at the chunk's first byte (so h depends on the last 64 bytes
 * only).  The chunk is the shortest length L with min <= L <= max whose
 * last byte leaves (h & mask_s) == 0 if L <= avg, or (h & mask_l) == 0 if
 * L > avg; failing that it is max (a forced cut) or the end of input.
 * mask_s has log2(avg)+2 one-bits (harder), mask_l log2(avg)-2 (easier),
 * both spread over bits 16..62 as fastcdc.c's mask_spread() places them:
 * the masks are part of the format, as the gear table is.
 *
 * The boundaries are a pure function of (params, gear table, bytes): the
 * same input always gives the same chunks, whatever the buffer sizes the
 * caller feeds (as long as it offers at least `max` bytes or the end).
 *
 * Thread safety: a `struct fastcdc` is read-only after fastcdc_init and may
 * be shared by any number of threads.
 */
#ifndef CAIRN_FASTCDC_H
#define CAIRN_FASTCDC_H

#include <stddef.h>
#include <stdint.h>

struct fastcdc_params {
	uint32_t min; /* no cut before this many bytes (>= 64) */
	uint32_t avg; /* target average, a power of two, min < avg < max */
	uint32_t max; /* forced cut (<= 64 MiB) */
};

/* Defaults chosen by measurement (see bench/ and FORMAT.md). */
#define FASTCDC_DEFAULT_MIN (16u * 1024)
#define FASTCDC_DEFAULT_AVG (64u * 1024)
#define FASTCDC_DEFAULT_MAX (256u * 1024)

struct fastcdc {
	uint64_t gear[256];
	uint64_t gear_ls[256]; /* gear[i] << 1, for the two-bytes-a-step loop */
	uint64_t mask_s, mask_l;
	uint64_t mask_s_ls, mask_l_ls;
	uint32_t min, avg, max;
};

/* Validates `p` and prepares `c`.  Returns 0, or -1 when the parameters are
 * out of range (min < 64, avg not a power of two, not min < avg < max,
 * max > 64 MiB). */
int fastcdc_init(struct fastcdc *c, const struct fastcdc_params *p,
		 const uint64_t gear[256]);

/* Length of the chunk that starts at buf[0], given `len` available bytes.
 * If no boundary lies within the first min(len, max) bytes:
 *   - when `final` is 0 and len < max, returns 0: feed more bytes;
 *   - otherwise returns min(len, max) (the end of input, or a forced cut).
 * With len == 0 returns 0. */
size_t fastcdc_cut(const struct fastcdc *c, const uint8_t *buf, size_t len,
		   int final);

#endif
