/*
 * test_pg_checksum.c — PostgreSQL page checksums: agreement with a
 * one-word-at-a-time reference written from the header's definition, the
 * verdicts on synthetic pages, and (when PostgreSQL 15 is installed and we
 * are root) every page of a fresh `initdb -k` cluster, which is the real
 * oracle: the server computed those checksums.  Prints the throughput.
 */
#include "pg/checksum.h"
#include "tests/unit/t.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG15_INITDB "/usr/lib/postgresql/15/bin/initdb"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof v);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof v);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/* A page that looks initialized (pd_lower 24, pd_upper 4096, pd_special
 * 8192) with pseudo-random bytes elsewhere and pd_checksum 0. */
static void make_page(uint8_t *page, uint64_t seed)
{
	for (size_t i = 0; i < PG_PAGE_SIZE; i += 8) {
		uint64_t v = splitmix64(&seed);
		memcpy(page + i, &v, 8);
	}
	put16(page + 8, 0);
	put16(page + 12, 24);
	put16(page + 14, 4096);
	put16(page + 16, (uint16_t)PG_PAGE_SIZE);
}

/* The checksum as checksum.h defines it, one word at a time, column by
 * column: nothing shared with checksum.c but the offset table. */
static uint16_t ref_checksum(const uint8_t *page, uint32_t blkno)
{
	static const uint32_t basis[32] = {
		0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A,
		0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C, 0xF8D4474F, 0xE39EB970,
		0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A,
		0x0B1C9CDB, 0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
		0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4, 0x783125BB,
		0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE,
		0xF2CA9FD3, 0x959BD756,
	};
	uint32_t x = 0;

	for (int c = 0; c < 32; c++) {
		uint32_t s = basis[c];

		for (int r = 0; r < 66; r++) {
			uint32_t w = 0, t;

			if (r < 64)
				memcpy(&w, page + 128 * r + 4 * c, 4);
			if (r == 0 && c == 2) {
				/* Zero the pd_checksum half of this word,
				 * whichever half it is in memory. */
				uint8_t b[4];
				memcpy(b, &w, 4);
				b[0] = b[1] = 0;
				memcpy(&w, b, 4);
			}
			t = s ^ w;
			s = t * 16777619u ^ t >> 17;
		}
		x ^= s;
	}
	return (uint16_t)((x ^ blkno) % 65535u + 1);
}

static void test_zero_and_new(void)
{
	static uint8_t page[PG_PAGE_SIZE];
	uint16_t e = 7, f = 7;

	memset(page, 0, sizeof page);
	CHECK_RC(pg_page_verify(page, 0, &e, &f), PAGE_NEW);
	CHECK(e == 0 && f == 0);
	CHECK_RC(pg_page_verify(page, 12345, NULL, NULL), PAGE_NEW);
	CHECK(pg_page_lsn(page) == 0);

	/* pd_upper == 0 is PageIsNew(), which basebackup skips even when the
	 * rest of the page is not zero. */
	make_page(page, 1);
	put16(page + 14, 0);
	CHECK_RC(pg_page_verify(page, 0, &e, &f), PAGE_NEW);
}

static void test_synthetic(void)
{
	static uint8_t page[PG_PAGE_SIZE], shifted[PG_PAGE_SIZE + 1];
	uint16_t c0, c1, e, f;
	int mismatches = 0;

	make_page(page, 42);
	c0 = pg_page_checksum(page, 0);
	c1 = pg_page_checksum(page, 1);
	CHECK(c0 == pg_page_checksum(page, 0)); /* deterministic */
	CHECK(c0 != c1); /* blkno is mixed in: 0 and 1 can never collide */
	CHECK(c0 >= 1 && c1 >= 1);
	CHECK(pg_page_checksum(page, 131072) != pg_page_checksum(page, 0));

	/* Whatever pd_checksum holds does not enter the sum. */
	put16(page + 8, 0xBEEF);
	CHECK(pg_page_checksum(page, 0) == c0);

	/* Any alignment of the caller's buffer. */
	memcpy(shifted + 1, page, PG_PAGE_SIZE);
	CHECK(pg_page_checksum(shifted + 1, 0) == c0);

	/* Stamp the checksum: OK; then it must fail for another blkno. */
	put16(page + 8, c0);
	CHECK_RC(pg_page_verify(page, 0, &e, &f), PAGE_OK);
	CHECK(e == c0 && f == c0);
	CHECK_RC(pg_page_verify(page, 1, &e, &f), PAGE_BAD);
	CHECK(e == c1 && f == c0);

	/* Agreement with the reference over many pages and block numbers,
	 * including an extreme and a segment-crossing one. */
	for (uint32_t i = 0; i < 200; i++) {
		uint32_t blk = i == 0 ? UINT32_MAX : i * 7919u;

		make_page(page, 1000 + i);
		if (i % 3 == 0)
			memset(page + 4096, 0, 4096); /* free space: zeros */
		if (pg_page_checksum(page, blk) != ref_checksum(page, blk))
			mismatches++;
	}
	CHECK(mismatches == 0);

	/* Saturated words: every multiply overflows. */
	memset(page, 0xFF, sizeof page);
	CHECK(pg_page_checksum(page, 3) == ref_checksum(page, 3));

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Known answers, frozen after this implementation agreed with every
	 * page of an `initdb -k` cluster (little-endian words). */
	CHECK(pg_page_checksum(page, 3) == 3615);
	for (size_t i = 0; i < PG_PAGE_SIZE; i++)
		page[i] = (uint8_t)i;
	CHECK(pg_page_checksum(page, 0) == 59142);
	CHECK(pg_page_checksum(page, 1000000) == 9532);
#endif

	/* pd_lsn: xlogid then xrecoff, native endian. */
	put32(page + 0, 0x12345678u);
	put32(page + 4, 0x9ABCDEF0u);
	CHECK(pg_page_lsn(page) == 0x123456789ABCDEF0ull);
}

/* ---- a real cluster ---------------------------------------------------- */

/* If `name` is a relation fork file (digits, optional _fsm/_vm/_init,
 * optional .N with N > 0), returns 1 and its segment number. */
static int relfile_segno(const char *name, uint32_t *segno)
{
	static const char *const forks[] = { "_fsm", "_vm", "_init" };
	const char *p = name;
	unsigned long n;
	char *end;

	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	for (size_t i = 0; i < sizeof forks / sizeof forks[0]; i++) {
		size_t len = strlen(forks[i]);

		if (strncmp(p, forks[i], len) == 0) {
			p += len;
			break;
		}
	}
	*segno = 0;
	if (*p == '\0')
		return 1;
	if (*p != '.' || p[1] < '1' || p[1] > '9')
		return 0;
	errno = 0;
	n = strtoul(p + 1, &end, 10);
	if (*end != '\0' || errno || n > UINT32_MAX / PG_SEGMENT_PAGES)
		return 0;
	*segno = (uint32_t)n;
	return 1;
}

static void test_relfile_names(void)
{
	uint32_t s;

	CHECK(relfile_segno("1259", &s) && s == 0);
	CHECK(relfile_segno("16384.3", &s) && s == 3);
	CHECK(relfile_segno("2619_fsm", &s) && s == 0);
	CHECK(relfile_segno("2619_vm.12", &s) && s == 12);
	CHECK(relfile_segno("16390_init", &s) && s == 0);
	CHECK(!relfile_segno("pg_filenode.map", &s));
	CHECK(!relfile_segno("PG_VERSION", &s));
	CHECK(!relfile_segno("pg_internal.init", &s));
	CHECK(!relfile_segno("pg_control", &s));
	CHECK(!relfile_segno("1259.0", &s));
	CHECK(!relfile_segno("1259_xyz", &s));
	CHECK(!relfile_segno("1259.", &s));
}

struct scan {
	long ok, fresh, bad, files, lsn_set;
	int have_sample;
	uint32_t sample_blkno;
	uint8_t sample[PG_PAGE_SIZE];
};

static void scan_file(struct scan *sc, const char *path, uint32_t segno)
{
	static uint8_t page[PG_PAGE_SIZE];
	uint32_t blk = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		CHECK(fd >= 0);
		return;
	}
	sc->files++;
	while ((n = read(fd, page, sizeof page)) == (ssize_t)sizeof page) {
		uint32_t blkno = segno * PG_SEGMENT_PAGES + blk++;
		uint16_t e, f;
		int v = pg_page_verify(page, blkno, &e, &f);

		if (v == PAGE_OK) {
			sc->ok++;
			if (pg_page_lsn(page) != 0)
				sc->lsn_set++;
			/* Keep a page with tuples in it for the damage tests. */
			if (!sc->have_sample && get16(page + 12) > 64) {
				memcpy(sc->sample, page, PG_PAGE_SIZE);
				sc->sample_blkno = blkno;
				sc->have_sample = 1;
			}
		} else if (v == PAGE_NEW) {
			sc->fresh++;
		} else {
			sc->bad++;
			fprintf(stderr, "%s block %u: expected %04x found %04x\n",
				path, blkno, e, f);
		}
	}
	CHECK(n == 0); /* relation files are whole pages */
	close(fd);
}

static void scan_dir(struct scan *sc, const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];

	CHECK(d != NULL);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		uint32_t segno;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth > 0)
			scan_dir(sc, path, depth - 1);
		else if (S_ISREG(st.st_mode) &&
			 relfile_segno(de->d_name, &segno))
			scan_file(sc, path, segno);
	}
	closedir(d);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* runuser -u postgres -- initdb -k -N -A trust -D dir, output discarded. */
static int run_initdb(const char *datadir)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		/* initdb complains if it cannot see the current directory. */
		if (chdir("/") != 0)
			_exit(126);
		execl("/usr/sbin/runuser", "runuser", "-u", "postgres", "--",
		      PG15_INITDB, "-k", "-N", "-A", "trust", "-D", datadir,
		      (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_real_cluster(void)
{
	char tmp[] = "/tmp/cairn-pgck-XXXXXX";
	char datadir[64], sub[96], *made;
	struct passwd *pw = getpwnam("postgres");
	static struct scan sc;
	uint16_t e, f;
	uint8_t *p = sc.sample;

	if (access(PG15_INITDB, X_OK) != 0 || !pw || geteuid() != 0) {
		printf("skipped: no PostgreSQL 15 (or not root for runuser)\n");
		return;
	}
	made = mkdtemp(tmp);
	CHECK(made != NULL);
	if (!made)
		return;
	CHECK(chown(tmp, pw->pw_uid, pw->pw_gid) == 0);
	snprintf(datadir, sizeof datadir, "%s/data", tmp);
	CHECK_RC(run_initdb(datadir), 0);

	snprintf(sub, sizeof sub, "%s/base", datadir);
	scan_dir(&sc, sub, 1);
	snprintf(sub, sizeof sub, "%s/global", datadir);
	scan_dir(&sc, sub, 0);
	printf("initdb -k cluster: %ld relation files, %ld pages OK, %ld new, "
	       "%ld bad (%ld OK pages with an LSN)\n",
	       sc.files, sc.ok, sc.fresh, sc.bad, sc.lsn_set);
	CHECK(sc.bad == 0);
	CHECK(sc.ok >= 100);
	CHECK(sc.have_sample);

	if (sc.have_sample) {
		uint32_t blk = sc.sample_blkno;
		uint16_t stored = get16(p + 8);

		CHECK_RC(pg_page_verify(p, blk, &e, &f), PAGE_OK);
		CHECK(e == f && f == stored);
		CHECK(ref_checksum(p, blk) == stored);

		p[PG_PAGE_SIZE / 2] ^= 0x01; /* one bit in the middle */
		CHECK_RC(pg_page_verify(p, blk, &e, &f), PAGE_BAD);
		CHECK(e != f && f == stored);
		p[PG_PAGE_SIZE / 2] ^= 0x01;

		p[8] ^= 0xFF; /* the checksum field itself */
		CHECK_RC(pg_page_verify(p, blk, &e, &f), PAGE_BAD);
		CHECK(e == stored && f != stored);
		p[8] ^= 0xFF;

		CHECK_RC(pg_page_verify(p, blk + 1, &e, &f), PAGE_BAD);
		CHECK_RC(pg_page_verify(p, blk + PG_SEGMENT_PAGES, NULL, NULL),
			 PAGE_BAD);
		CHECK_RC(pg_page_verify(p, blk, NULL, NULL), PAGE_OK);
	}

	CHECK(nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
	CHECK(access(tmp, F_OK) != 0);
}

/* ---- throughput -------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(void)
{
	const size_t pages = 512; /* 4 MiB, walked 256 times: 1 GiB */
	const int rounds = 256;
	uint8_t *buf = malloc(pages * PG_PAGE_SIZE);
	uint32_t acc = 0;
	double t0, dt;

	CHECK(buf != NULL);
	if (!buf)
		return;
	for (size_t i = 0; i < pages; i++)
		make_page(buf + i * PG_PAGE_SIZE, i);
	t0 = now_s();
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < pages; i++)
			acc += pg_page_checksum(buf + i * PG_PAGE_SIZE,
						(uint32_t)i);
	dt = now_s() - t0;
	printf("checksum throughput: %.2f GB/s (1 GiB of pages in %.3f s; "
	       "sink %u)\n",
	       (double)pages * PG_PAGE_SIZE * rounds / dt / 1e9, dt, acc);
	free(buf);
}

int main(void)
{
	test_zero_and_new();
	test_synthetic();
	test_relfile_names();
	test_real_cluster();
	bench();
	return t_done();
}
