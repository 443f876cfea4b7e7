/*
 * bench_zstd.c — compressed ratio and single-core speed of zstd levels on
 * a file cut into independent pieces, as cairn compresses blobs: how the
 * default level (REPO_DEFAULT_ZSTD_LEVEL) was chosen.
 *
 *   bench_zstd FILE [PIECE_BYTES]     (default 16384; at most 256 MiB read)
 *
 * Prints, per level, the ratio (input / compressed) and MB/s of input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zstd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	static const int levels[] = {1, 2, 3, 4, 6, 9};
	if (argc < 2) {
		fprintf(stderr, "usage: bench_zstd FILE [PIECE_BYTES]\n");
		return 2;
	}
	size_t piece = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 16384;
	FILE *f = fopen(argv[1], "rb");
	if (!f || piece == 0) {
		perror(argv[1]);
		return 1;
	}
	size_t cap = (size_t)256 << 20, n = 0, bound = ZSTD_compressBound(piece);
	unsigned char *in = malloc(cap), *out = malloc(bound);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	if (!in || !out || !cctx)
		return 1;
	n = fread(in, 1, cap, f);
	fclose(f);
	if (n == 0)
		return 1;
	printf("%s: %zu bytes in pieces of %zu\n", argv[1], n, piece);
	for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
		size_t total = 0;
		double t0 = now();
		for (size_t off = 0; off < n; off += piece) {
			size_t len = n - off < piece ? n - off : piece;
			size_t z = ZSTD_compressCCtx(cctx, out, bound, in + off, len, levels[li]);
			if (ZSTD_isError(z))
				return 1;
			total += z;
		}
		double s = now() - t0;
		printf("level %d: ratio %.2f, %.0f MB/s\n", levels[li], (double)n / (double)total,
		       (double)n / s / 1e6);
	}
	ZSTD_freeCCtx(cctx);
	free(in);
	free(out);
	return 0;
}
