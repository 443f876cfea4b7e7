/*
 * test_chunker.c — FastCDC: parameter checks, agreement with a one-byte-at-
 * a-time reference written from the header's definition, independence from
 * how the caller feeds its buffer, size bounds, mean size, resistance to a
 * one-byte insertion, and degenerate inputs.
 */
#include "chunker/fastcdc.h"
#include "tests/unit/t.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024u * 1024)

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void gear_make(uint64_t gear[256], uint64_t seed)
{
	for (int i = 0; i < 256; i++)
		gear[i] = splitmix64(&seed);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = splitmix64(&seed);
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)splitmix64(&seed);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	/* Mix the length in so that chunks of zeros of different sizes do
	 * not collide. */
	h ^= (uint64_t)n;
	h *= 0x100000001b3ull;
	return h;
}

/* Chunk lengths of the whole of `data`, one call per chunk with final=1.
 * Returns the number of chunks (at most `cap` are stored). */
static size_t chunk_all(const struct fastcdc *c, const uint8_t *data,
			size_t len, size_t *out, size_t cap)
{
	size_t off = 0, n = 0;

	while (off < len) {
		size_t k = fastcdc_cut(c, data + off, len - off, 1);
		if (k == 0 || k > len - off)
			return (size_t)-1;
		if (n < cap)
			out[n] = k;
		n++;
		off += k;
	}
	return n;
}

/* The same, as a streaming caller would: it holds a window of the input
 * that grows by `step` bytes whenever fastcdc_cut asks for more, never
 * offers more than `limit` bytes at once, and says final only when the
 * window reaches the end of the input. */
static size_t chunk_stream(const struct fastcdc *c, const uint8_t *data,
			   size_t len, size_t step, size_t limit, size_t *out,
			   size_t cap)
{
	size_t off = 0, avail = 0, n = 0;

	while (off < len) {
		if (avail == 0)
			avail = step < len - off ? step : len - off;
		size_t offer = avail < limit ? avail : limit;
		int final = off + offer == len;
		size_t k = fastcdc_cut(c, data + off, offer, final);
		if (k == 0) {
			if (final || offer == limit)
				return (size_t)-1; /* must not happen */
			avail += step;
			if (avail > len - off)
				avail = len - off;
			continue;
		}
		if (k > offer)
			return (size_t)-1;
		if (n < cap)
			out[n] = k;
		n++;
		off += k;
		avail = avail > k ? avail - k : 0;
	}
	return n;
}

/* The definition in fastcdc.h, one byte at a time with the hash started at
 * the chunk's first byte, sharing nothing with fastcdc.c but the masks.
 * Returns what fastcdc_cut(final=1) must; *found says whether the mask
 * condition held (rather than the end of input or max). */
static size_t ref_cut(const struct fastcdc *c, const uint8_t *buf, size_t len,
		      int *found)
{
	size_t end = len < c->max ? len : c->max;
	uint64_t h = 0;

	*found = 1;
	for (size_t i = 0; i < end; i++) {
		h = (h << 1) + c->gear[buf[i]];
		size_t l = i + 1;
		if (l < c->min)
			continue;
		if (!(h & (l <= c->avg ? c->mask_s : c->mask_l)))
			return l;
	}
	*found = 0;
	return end;
}

static int popcount64(uint64_t v)
{
	int n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static int init(struct fastcdc *c, uint32_t min, uint32_t avg, uint32_t max,
		const uint64_t gear[256])
{
	struct fastcdc_params p = {min, avg, max};
	return fastcdc_init(c, &p, gear);
}

static void test_params(const uint64_t gear[256])
{
	struct fastcdc c;

	CHECK_RC(init(&c, 64, 128, 256, gear), 0);
	CHECK_RC(init(&c, FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG,
		      FASTCDC_DEFAULT_MAX, gear), 0);
	CHECK_RC(init(&c, 16 * MIB, 32 * MIB, 64 * MIB, gear), 0);

	CHECK_RC(init(&c, 63, 128, 256, gear), -1);	  /* min < 64 */
	CHECK_RC(init(&c, 0, 128, 256, gear), -1);
	CHECK_RC(init(&c, 64, 0, 256, gear), -1);	  /* avg not 2^k */
	CHECK_RC(init(&c, 64, 192, 256, gear), -1);
	CHECK_RC(init(&c, 16384, 65535, 262144, gear), -1);
	CHECK_RC(init(&c, 128, 128, 256, gear), -1);	  /* min == avg */
	CHECK_RC(init(&c, 256, 128, 512, gear), -1);	  /* min > avg */
	CHECK_RC(init(&c, 64, 256, 256, gear), -1);	  /* avg == max */
	CHECK_RC(init(&c, 64, 256, 128, gear), -1);	  /* max < avg */
	CHECK_RC(init(&c, 64, 1024, 64 * MIB + 1, gear), -1); /* max too big */
	CHECK_RC(init(&c, 64, 1024, UINT32_MAX, gear), -1);

	/* Masks: log2(avg)+2 and log2(avg)-2 one-bits, never bit 63 (the
	 * shifted masks must test the same bits), spread rather than packed. */
	uint32_t avgs[] = {128, 8192, 65536, 1u << 20, 32 * MIB};
	for (size_t k = 0; k < sizeof avgs / sizeof avgs[0]; k++) {
		int lg = 0;
		while ((1u << lg) < avgs[k])
			lg++;
		CHECK_RC(init(&c, 64, avgs[k], avgs[k] * 2, gear), 0);
		CHECK(popcount64(c.mask_s) == lg + 2);
		CHECK(popcount64(c.mask_l) == lg - 2);
		CHECK(!(c.mask_s >> 63) && !(c.mask_l >> 63));
		CHECK(c.mask_s_ls == c.mask_s << 1);
		CHECK(c.mask_l_ls == c.mask_l << 1);
		CHECK(c.mask_l >> 48 && (c.mask_l & 0xffffffffffull));
		int bad = 0;
		for (int i = 0; i < 256; i++)
			bad += c.gear[i] != gear[i] ||
			       c.gear_ls[i] != gear[i] << 1;
		CHECK(bad == 0);
	}
}

static void test_small_inputs(const uint64_t gear[256])
{
	struct fastcdc c;
	uint8_t buf[4096];

	fill_random(buf, sizeof buf, 7);
	CHECK_RC(init(&c, 1024, 2048, 3000, gear), 0);
	CHECK(fastcdc_cut(&c, buf, 0, 0) == 0);
	CHECK(fastcdc_cut(&c, buf, 0, 1) == 0);
	CHECK(fastcdc_cut(&c, buf, 1, 0) == 0);
	CHECK(fastcdc_cut(&c, buf, 1, 1) == 1);
	CHECK(fastcdc_cut(&c, buf, 1023, 0) == 0);
	CHECK(fastcdc_cut(&c, buf, 1023, 1) == 1023);

	/* Every length from 0 to past max, final or not, against the
	 * reference: a found cut is the same whether or not more follows. */
	int bad = 0;
	for (size_t len = 0; len <= sizeof buf; len++) {
		int found;
		size_t want = ref_cut(&c, buf, len, &found);
		size_t want_open = found || len >= 3000 ? want : 0;
		if (fastcdc_cut(&c, buf, len, 1) != want ||
		    fastcdc_cut(&c, buf, len, 0) != want_open)
			bad++;
	}
	CHECK(bad == 0);
}

/* Agreement with the reference on random data, for parameter sets that
 * exercise the scan's 16-, 4- and 1-byte tails and both masks. */
static void test_reference(const uint64_t gear[256], const uint8_t *data,
			   size_t len)
{
	static const struct fastcdc_params ps[] = {
		{64, 128, 256},
		{64, 128, 1000},
		{65, 256, 4099},
		{100, 1024, 1031},
		{2048, 8192, 65536},
		{16384, 65536, 262144},
		{50000, 65536, 300001},
	};
	for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
		struct fastcdc c;
		size_t off = 0, nch = 0, bad = 0;
		size_t lim = ps[k].max < 4096 ? len / 16 : len;

		CHECK_RC(fastcdc_init(&c, &ps[k], gear), 0);
		while (off < lim) {
			size_t got = fastcdc_cut(&c, data + off, lim - off, 1);
			int found;
			size_t want = ref_cut(&c, data + off, lim - off, &found);
			if (got != want) {
				bad++;
				got = want;
			}
			off += got;
			nch++;
		}
		if (bad)
			fprintf(stderr, "params %u/%u/%u: %zu of %zu chunks differ\n",
				ps[k].min, ps[k].avg, ps[k].max, bad, nch);
		CHECK(bad == 0);
		CHECK(nch > 10);
	}
}

/* Same chunks whatever the feeding, sizes within bounds, sum = input. */
static void test_streaming(const uint64_t gear[256], const uint8_t *data,
			   size_t len)
{
	static const struct fastcdc_params ps[] = {
		{FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG, FASTCDC_DEFAULT_MAX},
		{2048, 8192, 65536},
		{64, 512, 2000},
	};
	enum { CAP = 1 << 16 };
	size_t *a = malloc(CAP * sizeof *a), *b = malloc(CAP * sizeof *b);

	CHECK(a && b);
	if (!a || !b)
		goto out;
	for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
		struct fastcdc c;
		size_t max = ps[k].max, na, nb;

		CHECK_RC(fastcdc_init(&c, &ps[k], gear), 0);
		na = chunk_all(&c, data, len, a, CAP);
		CHECK(na > 0 && na <= CAP);
		if (na == 0 || na > CAP)
			continue;

		size_t sum = 0, bad = 0;
		for (size_t i = 0; i < na; i++) {
			sum += a[i];
			if (a[i] > max || (a[i] < ps[k].min && i + 1 < na))
				bad++;
		}
		CHECK(sum == len);
		CHECK(bad == 0);

		/* Again: the same data gives the same chunks. */
		nb = chunk_all(&c, data, len, b, CAP);
		CHECK(nb == na && !memcmp(a, b, na * sizeof *a));

		/* A sliding window of exactly max bytes. */
		nb = chunk_stream(&c, data, len, max, max, b, CAP);
		CHECK(nb == na && !memcmp(a, b, na * sizeof *a));

		/* A window that grows by odd steps, up to max or beyond. */
		size_t steps[] = {max / 3 + 7, 4093, max + 1};
		for (size_t s = 0; s < 3; s++) {
			nb = chunk_stream(&c, data, len / 4, steps[s], 2 * max,
					  b, CAP);
			size_t nq = chunk_all(&c, data, len / 4, a, CAP);
			CHECK(nb == nq && !memcmp(a, b, nq * sizeof *a));
		}
	}
out:
	free(a);
	free(b);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* Hashes of the chunks of `data` into `hs`; returns the count. */
static size_t chunk_hashes(const struct fastcdc *c, const uint8_t *data,
			   size_t len, uint64_t *hs, size_t cap)
{
	size_t off = 0, n = 0;

	while (off < len && n < cap) {
		size_t k = fastcdc_cut(c, data + off, len - off, 1);
		hs[n++] = fnv1a(data + off, k);
		off += k;
	}
	return n;
}

/* 64 MiB of random data: mean chunk size, and how much of it a one-byte
 * insertion near the start leaves shareable. */
static void test_mean_and_shift(const uint64_t gear[256], uint8_t *data,
				size_t len)
{
	struct fastcdc c;
	enum { CAP = 1 << 16 };
	uint64_t *hs = malloc(CAP * sizeof *hs);
	uint8_t *ins = malloc(len + 1);

	CHECK(hs && ins);
	if (!hs || !ins)
		goto out;
	CHECK_RC(init(&c, FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG,
		      FASTCDC_DEFAULT_MAX, gear),
		 0);

	size_t n = chunk_hashes(&c, data, len, hs, CAP);
	double mean = (double)len / (double)n;
	printf("default params: %zu chunks, mean %.0f bytes\n", n, mean);
	/* Expected: min + 2^18 (1 - e^(-49152/2^18)) + e^(-49152/2^18) 2^14
	 * = 16384 + 44830 + 13582 = ~74800 bytes; these seeded data give
	 * 75319.  One bit more or less in mask_l, or one less in mask_s,
	 * leaves the band (the popcount checks catch the rest); a mask that
	 * never or always matches gives max or min. */
	CHECK(mean > 70000 && mean < 80000);

	/* Level 2 normalization keeps the sizes close to the mean. */
	size_t lo = 0, hi = 0, nmax = 0, off = 0;
	while (off < len) {
		size_t k = fastcdc_cut(&c, data + off, len - off, 1);
		lo += k < 32768;
		hi += k > 131072;
		nmax += k == FASTCDC_DEFAULT_MAX;
		off += k;
	}
	printf("  < 32 KiB: %zu, > 128 KiB: %zu, forced at max: %zu\n", lo, hi,
	       nmax);
	CHECK(lo < n / 10 && hi < n / 10 && nmax < n / 100 + 1);

	/* Insert one byte at offset 1000. */
	memcpy(ins, data, 1000);
	ins[1000] = 0x5a;
	memcpy(ins + 1001, data + 1000, len - 1000);
	qsort(hs, n, sizeof *hs, cmp_u64);

	size_t shared = 0, nch = 0;
	off = 0;
	while (off < len + 1) {
		size_t k = fastcdc_cut(&c, ins + off, len + 1 - off, 1);
		uint64_t h = fnv1a(ins + off, k);
		if (bsearch(&h, hs, n, sizeof *hs, cmp_u64))
			shared += k;
		off += k;
		nch++;
	}
	double frac = (double)shared / (double)(len + 1);
	printf("after a one-byte insertion: %.4f of the bytes in shared "
	       "chunks\n",
	       frac);
	CHECK(frac >= 0.95);

	/* Other gear table: other boundaries. */
	uint64_t gear2[256];
	struct fastcdc c2;
	gear_make(gear2, 0xdecafbadull);
	CHECK_RC(init(&c2, FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG,
		      FASTCDC_DEFAULT_MAX, gear2),
		 0);
	size_t same = 0, n2 = 0;
	off = 0;
	while (off < 8 * MIB) {
		size_t k1 = fastcdc_cut(&c, data + off, len - off, 1);
		size_t k2 = fastcdc_cut(&c2, data + off, len - off, 1);
		same += k1 == k2;
		n2++;
		off += k1;
	}
	CHECK(same < n2 / 4);
out:
	free(hs);
	free(ins);
}

/* All zeros: every chunk has the same length (min if the constant hash
 * matches, max otherwise), the last one excepted. */
static void test_zeros(const uint64_t gear[256])
{
	struct fastcdc c;
	size_t len = 4 * MIB + 12345;
	uint8_t *z = calloc(len, 1);

	CHECK(z != NULL);
	if (!z)
		return;
	for (int g = 0; g < 2; g++) {
		uint64_t tab[256];
		memcpy(tab, gear, sizeof tab);
		/* First as given, then with gear[0] chosen so that the
		 * constant hash -gear[0] matches every mask. */
		if (g)
			tab[0] = 0;
		CHECK_RC(init(&c, FASTCDC_DEFAULT_MIN, FASTCDC_DEFAULT_AVG,
			      FASTCDC_DEFAULT_MAX, tab),
			 0);
		size_t off = 0, first = 0, bad = 0, n = 0;
		while (off < len) {
			size_t k = fastcdc_cut(&c, z + off, len - off, 1);
			if (k == 0 || k > FASTCDC_DEFAULT_MAX)
				break;
			if (n == 0)
				first = k;
			else if (k != first && off + k < len)
				bad++;
			off += k;
			n++;
		}
		/* After 64 zeros the hash is the constant sum of gear[0] << k
		 * for k < 64, which is -gear[0] modulo 2^64. */
		uint64_t hz = -tab[0];
		size_t want = !(hz & c.mask_s)	 ? FASTCDC_DEFAULT_MIN
			      : !(hz & c.mask_l) ? FASTCDC_DEFAULT_AVG + 1
						 : FASTCDC_DEFAULT_MAX;
		CHECK(off == len);
		CHECK(bad == 0);
		CHECK(first == want);
		CHECK(g || first == FASTCDC_DEFAULT_MAX); /* this table */
	}
	free(z);
}

int main(void)
{
	uint64_t gear[256];
	size_t len = 64 * MIB;
	uint8_t *data = malloc(len);

	gear_make(gear, 0x0123456789abcdefull);
	CHECK(data != NULL);
	if (!data)
		return t_done();
	fill_random(data, len, 42);

	test_params(gear);
	test_small_inputs(gear);
	test_reference(gear, data, 8 * MIB);
	test_streaming(gear, data, 16 * MIB);
	test_mean_and_shift(gear, data, len);
	test_zeros(gear);

	free(data);
	return t_done();
}
