/*
 * bench_chunker.c — single-core throughput of the FastCDC chunker, with
 * memcpy of the same buffer as the yardstick.
 *
 *   bench_chunker [-m MiB]     (default 256)
 *
 * Fills a buffer with pseudo-random bytes (so boundaries fall as on
 * compressed or encrypted data, the chunker's worst case for speed: no
 * early cuts), then reports the best of 5 runs for memcpy into a second
 * buffer and for chunking the whole buffer at three parameter sets.
 * GB/s is 10^9 bytes per second of input.
 */
#include "chunker/fastcdc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 5

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bench_memcpy(uint8_t *dst, const uint8_t *src, size_t len)
{
	double best = 1e30;

	for (int r = 0; r < RUNS; r++) {
		double t0 = now();
		memcpy(dst, src, len);
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	/* Read the copy so the memcpy cannot be dropped. */
	if (memcmp(dst, src, len) != 0) {
		fprintf(stderr, "bench_chunker: memcpy mismatch\n");
		exit(1);
	}
	printf("memcpy: %.2f GB/s\n", (double)len / best / 1e9);
}

static int bench_cdc(const uint64_t gear[256], uint32_t min, uint32_t avg,
		     uint32_t max, const uint8_t *buf, size_t len)
{
	struct fastcdc_params p = {min, avg, max};
	struct fastcdc c;
	double best = 1e30;
	size_t nchunks = 0;

	if (fastcdc_init(&c, &p, gear) != 0) {
		fprintf(stderr, "bench_chunker: bad parameters %u/%u/%u\n", min,
			avg, max);
		return -1;
	}
	for (int r = 0; r < RUNS; r++) {
		size_t off = 0, n = 0;
		double t0 = now();
		while (off < len) {
			off += fastcdc_cut(&c, buf + off, len - off, 1);
			n++;
		}
		double t = now() - t0;
		if (t < best)
			best = t;
		if (r > 0 && n != nchunks) {
			fprintf(stderr, "bench_chunker: runs disagree\n");
			return -1;
		}
		nchunks = n;
	}
	printf("fastcdc(min=%u avg=%u max=%u): %.2f GB/s, %zu chunks, "
	       "mean size %.0f\n",
	       min, avg, max, (double)len / best / 1e9, nchunks,
	       (double)len / (double)nchunks);
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = 256;
	uint64_t gear[256], seed = 0x0123456789abcdefull;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end || v == 0 || v > (1ul << 20)) {
				fprintf(stderr, "bench_chunker: bad size: %s\n",
					argv[i]);
				return 2;
			}
			mib = v;
		} else {
			fprintf(stderr, "usage: bench_chunker [-m MiB]\n");
			return 2;
		}
	}

	size_t len = mib << 20;
	uint8_t *buf = malloc(len), *dst = malloc(len);
	if (!buf || !dst) {
		fprintf(stderr, "bench_chunker: out of memory for %zu MiB\n",
			mib);
		goto out;
	}
	for (int i = 0; i < 256; i++)
		gear[i] = splitmix64(&seed);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = splitmix64(&seed);
		memcpy(buf + i, &v, 8); /* len is a multiple of 1 MiB */
	}
	memset(dst, 0, len); /* fault the pages in before timing */

	printf("buffer: %zu MiB of pseudo-random bytes, best of %d runs\n", mib,
	       RUNS);
	bench_memcpy(dst, buf, len);
	if (bench_cdc(gear, FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG,
		      FASTCDC_DEFAULT_MAX, buf, len) ||
	    bench_cdc(gear, 2048, 8192, 65536, buf, len) ||
	    bench_cdc(gear, 256u << 10, 1u << 20, 4u << 20, buf, len))
		goto out;
	rc = 0;
out:
	free(buf);
	free(dst);
	return rc;
}
