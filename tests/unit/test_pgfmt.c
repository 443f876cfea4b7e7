/*
 * test_pgfmt.c — pg/pgfmt: LSNs, WAL file names and segment arithmetic,
 * CRC-32C, pg_control (synthetic, and real clusters made by PostgreSQL 15's
 * initdb compared field by field with pg_controldata), timeline history
 * files (synthetic, and real ones made by promoting a cluster twice) and
 * backup_label (synthetic, and a real one from pg_backup_stop()).
 *
 * The real-cluster part runs when PostgreSQL 15 is installed (default
 * /usr/lib/postgresql/15/bin, or $CAIRN_PG15_BIN); as root it runs the
 * server as the user postgres through runuser.  Otherwise it prints a note
 * and is skipped.  It stops every server it starts and removes its
 * directory.
 */
#include "pg/pgfmt.h"
#include "tests/unit/t.h"

#include <dirent.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024)

/* ---- LSNs ------------------------------------------------------------ */

static void test_lsn(void)
{
	static const uint64_t vals[] = {
		0, 1, 0xFFFFFFFFull, 0x100000000ull, 0x16B374D848ull,
		0x0123456789ABCDEFull, UINT64_MAX,
	};
	static const char *bad[] = {
		"", "/", "1/", "/1", "123456789/0", "0/123456789", " 1/2",
		"1/2 ", "1//2", "1/2/3", "+1/2", "-1/2", "0x1/2", "g/1", "1-2",
		"12", "1/2\n", "1/ 2",
	};
	char buf[PG_LSN_BUFLEN];
	uint64_t v;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		pg_lsn_format(buf, vals[i]);
		CHECK_RC(pg_lsn_parse(buf, &v), 0);
		CHECK(v == vals[i]);
	}
	pg_lsn_format(buf, 0x16B374D848ull);
	CHECK(strcmp(buf, "16/B374D848") == 0);
	pg_lsn_format(buf, 0);
	CHECK(strcmp(buf, "0/0") == 0);
	pg_lsn_format(buf, UINT64_MAX);
	CHECK(strcmp(buf, "FFFFFFFF/FFFFFFFF") == 0);

	CHECK_RC(pg_lsn_parse("16/B374D848", &v), 0);
	CHECK(v == 0x16B374D848ull);
	CHECK_RC(pg_lsn_parse("16/b374d848", &v), 0); /* pg_lsn accepts lowercase */
	CHECK(v == 0x16B374D848ull);
	CHECK_RC(pg_lsn_parse("00000016/0000000B", &v), 0);
	CHECK(v == 0x160000000Bull);
	CHECK_RC(pg_lsn_parse_n("1/23", 3, &v), 0);
	CHECK(v == 0x100000002ull);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		CHECK_RC(pg_lsn_parse(bad[i], &v), CAIRN_EUSAGE);
		CHECK(v == 0);
	}
	CHECK_RC(pg_lsn_parse(NULL, &v), CAIRN_EUSAGE);
	CHECK_RC(pg_lsn_parse_n(NULL, 0, &v), CAIRN_EUSAGE);
}

/* ---- WAL names and segment numbers ----------------------------------- */

static void test_walname(void)
{
	struct pg_walname w;
	char name[PG_WALNAME_LEN + 1];

	CHECK_RC(pg_walname_parse("000000010000000000000002", 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_SEGMENT && w.tli == 1 && w.segno == 2);

	CHECK_RC(pg_walname_parse("0000000A00000016000000B3", PG_WAL_SEG_SIZE_DEFAULT, &w), 0);
	CHECK(w.kind == PG_WALNAME_SEGMENT && w.tli == 10 && w.segno == 0x16B3);

	CHECK_RC(pg_walname_parse("000000020000000100000003.partial", 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_PARTIAL && w.tli == 2 && w.segno == 0x103);

	CHECK_RC(pg_walname_parse("000000010000000000000002.00000028.backup", 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_BACKUP_LABEL && w.tli == 1 && w.segno == 2 &&
	      w.backup_offset == 0x28);

	CHECK_RC(pg_walname_parse("00000002.history", 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_HISTORY && w.tli == 2 && w.segno == 0);
	CHECK_RC(pg_walname_parse("FFFFFFFF.history", 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_HISTORY && w.tli == 0xFFFFFFFFu);

	CHECK_RC(pg_walname_parse_n("000000010000000000000002XYZ", 24, 0, &w), 0);
	CHECK(w.kind == PG_WALNAME_SEGMENT && w.segno == 2);

	/* The low part must be below segments-per-4-GiB for this size. */
	CHECK_RC(pg_walname_parse("0000000100000000000000FF", 0, &w), 0);
	CHECK_RC(pg_walname_parse("000000010000000000000100", 0, &w), CAIRN_EUSAGE);
	CHECK_RC(pg_walname_parse("000000010000000000000100", 1 * MIB, &w), 0);
	CHECK(w.segno == 0x100);
	CHECK_RC(pg_walname_parse("00000001000000000000003F", 64 * MIB, &w), 0);
	CHECK_RC(pg_walname_parse("000000010000000000000040", 64 * MIB, &w), CAIRN_EUSAGE);

	static const char *bad[] = {
		"",
		"00000001000000000000002",            /* 23 digits */
		"0000000100000000000000020",          /* 25 digits */
		"0000000100000000000000a2",           /* lowercase */
		"000000000000000000000002",           /* timeline 0 */
		"00000001000000000000000G",
		" 000000010000000000000002",
		"000000010000000000000002 ",
		"000000010000000000000002.part",
		"000000010000000000000002.partial2",
		"000000010000000000000002.PARTIAL",
		"000000010000000000000002.0000028.backup",
		"000000010000000000000002.0000002a.backup",
		"000000010000000000000002.01000000.backup", /* offset >= 16 MiB */
		"000000010000000000000002.00000028.backupx",
		"000000010000000000000002.00000028_backup",
		"000000010000000000000002-00000028.backup",
		"0000002.history",
		"000000002.history",
		"00000000.history",
		"0000000a.history",
		"00000002.History",
		"00000002.history.partial",
		"00000002",
		"archive_status",
		"000000010000000000000002.history",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&w, 0xAA, sizeof(w));
		int rc = pg_walname_parse(bad[i], 0, &w);
		CHECK_RC(rc, CAIRN_EUSAGE);
		if (rc != CAIRN_EUSAGE)
			fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
		CHECK(w.kind == 0 && w.tli == 0 && w.segno == 0);
	}
	CHECK_RC(pg_walname_parse(NULL, 0, &w), CAIRN_EUSAGE);
	/* An invalid segment size is refused, not asserted. */
	CHECK_RC(pg_walname_parse("000000010000000000000002", 3 * MIB, &w), CAIRN_EUSAGE);
	CHECK_RC(pg_walname_parse("000000010000000000000002", 2u * 1024 * MIB, &w), CAIRN_EUSAGE);
	CHECK_RC(pg_walname_parse("000000010000000000000002", 512 * 1024, &w), CAIRN_EUSAGE);

	CHECK(pg_wal_seg_size_valid(1 * MIB) && pg_wal_seg_size_valid(16 * MIB) &&
	      pg_wal_seg_size_valid(1024 * MIB));
	CHECK(!pg_wal_seg_size_valid(0) && !pg_wal_seg_size_valid(48 * MIB) &&
	      !pg_wal_seg_size_valid(512 * 1024) && !pg_wal_seg_size_valid(2048u * MIB));

	pg_walname_format(name, 1, 2, 0);
	CHECK(strcmp(name, "000000010000000000000002") == 0);
	pg_walname_format(name, 0xABCDEF01u, 0x16B3, 16 * MIB);
	CHECK(strcmp(name, "ABCDEF0100000016000000B3") == 0);
}

static void test_segno(void)
{
	struct pg_walname w;
	char name[PG_WALNAME_LEN + 1];
	const uint64_t lsn = 0x16B374D848ull;

	/* 16 MiB: 256 segments per 4 GiB. */
	CHECK(pg_lsn_to_segno(lsn, 0) == 0x16B3);
	CHECK(pg_lsn_to_segno(lsn, 16 * MIB) == 0x16B3);
	pg_walname_format(name, 1, pg_lsn_to_segno(lsn, 16 * MIB), 16 * MIB);
	CHECK(strcmp(name, "0000000100000016000000B3") == 0);
	CHECK(pg_segno_to_lsn(0x16B3, 16 * MIB) == 0x16B3000000ull);
	CHECK(pg_lsn_to_segno(0x3000190, 0) == 3);
	CHECK(pg_lsn_to_segno(0xFFFFFF, 0) == 0);
	CHECK(pg_lsn_to_segno(0x1000000, 0) == 1);

	/* 64 MiB: 64 segments per 4 GiB; 0xB374D848 >> 26 = 44 = 0x2C. */
	CHECK(pg_lsn_to_segno(lsn, 64 * MIB) == 0x16 * 64 + 44);
	pg_walname_format(name, 1, pg_lsn_to_segno(lsn, 64 * MIB), 64 * MIB);
	CHECK(strcmp(name, "00000001000000160000002C") == 0);
	CHECK_RC(pg_walname_parse(name, 64 * MIB, &w), 0);
	CHECK(w.segno == pg_lsn_to_segno(lsn, 64 * MIB));
	CHECK(pg_segno_to_lsn(w.segno, 64 * MIB) == 0x16B0000000ull);
	/* The same name read with another size is another segment. */
	CHECK_RC(pg_walname_parse(name, 16 * MIB, &w), 0);
	CHECK(w.segno == 0x16 * 256 + 0x2C);

	/* Round trips over sizes, timelines and segment numbers. */
	for (uint32_t size = 1 * MIB; size <= 1024 * MIB && size; size <<= 1) {
		uint64_t last = pg_lsn_to_segno(UINT64_MAX, size);
		uint64_t segs[] = {0, 1, 255, 256, 4095, 4096, 0x123456, last - 1, last};
		for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
			pg_walname_format(name, 7, segs[i], size);
			CHECK_RC(pg_walname_parse(name, size, &w), 0);
			CHECK(w.kind == PG_WALNAME_SEGMENT && w.tli == 7 &&
			      w.segno == segs[i]);
			CHECK(pg_lsn_to_segno(pg_segno_to_lsn(segs[i], size), size) == segs[i]);
		}
		pg_walname_format(name, 1, last, size);
		CHECK(strncmp(name + 8, "FFFFFFFF", 8) == 0);
	}
}

static void test_crc32c(void)
{
	/* The CRC-32C check value, and the RFC 3720 (iSCSI) test vectors. */
	uint8_t zeros[32] = {0}, ones[32], inc[32];

	memset(ones, 0xFF, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	CHECK(pg_crc32c(0, "123456789", 9) == 0xE3069283u);
	CHECK(pg_crc32c(0, zeros, 32) == 0x8A9136AAu);
	CHECK(pg_crc32c(0, ones, 32) == 0x62A8AB43u);
	CHECK(pg_crc32c(0, inc, 32) == 0x46DD794Eu);
	CHECK(pg_crc32c(0, "", 0) == 0);
	CHECK(pg_crc32c(pg_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
}

/* ---- pg_control -------------------------------------------------------- */

/* Offsets written independently of pgfmt.c, from the same reading of
 * pg_control.h (and checked against real files below). */
static void put32(uint8_t *b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
	put32(b, off, (uint32_t)v);
	put32(b, off + 4, (uint32_t)(v >> 32));
}

static void control_seal(uint8_t *b)
{
	put32(b, 288, pg_crc32c(0, b, 288));
}

static void control_make(uint8_t *b)
{
	memset(b, 0, PG_CONTROL_FILE_SIZE);
	put64(b, 0, 0x6B023BE6BBD1DE27ull);
	put32(b, 8, 1300);
	put32(b, 12, 202209061);
	put32(b, 16, PG_DB_IN_PRODUCTION);
	put64(b, 24, 1700000000);
	put64(b, 32, 0x5000060);          /* checkPoint */
	put64(b, 40, 0x5000028);          /* redo */
	put32(b, 48, 3);                  /* ThisTimeLineID */
	put32(b, 52, 2);                  /* PrevTimeLineID */
	b[56] = 1;
	put64(b, 104, 1699999999);        /* checkpoint time */
	put64(b, 136, 0x4000000);         /* minRecoveryPoint */
	put32(b, 144, 2);
	put64(b, 152, 0x3000028);
	put64(b, 160, 0x3000100);
	b[168] = 1;
	put32(b, 172, 2);                 /* wal_level logical */
	put32(b, 204, 8);                 /* maxAlign */
	put64(b, 208, 0x4132D68700000000ull); /* 1234567.0 */
	put32(b, 216, 8192);
	put32(b, 220, 131072);
	put32(b, 224, 8192);
	put32(b, 228, 64 * MIB);
	put32(b, 252, 1);
	memset(b + 256, 0x5A, 32);        /* mock auth nonce */
	control_seal(b);
}

/* Every truncation and every single-byte change of the covered bytes and
 * the CRC is refused. */
static void control_damage(const uint8_t *good)
{
	static uint8_t b[PG_CONTROL_FILE_SIZE];
	struct pg_control c;
	struct cairn_err err = {0};
	int fails = 0;

	for (size_t len = 0; len < PG_CONTROL_FILE_SIZE; len++)
		if (pg_control_parse(good, len, &c, &err) != CAIRN_ECORRUPT)
			fails++;
	CHECK(fails == 0);
	CHECK_RC(pg_control_parse(NULL, PG_CONTROL_FILE_SIZE, &c, &err), CAIRN_ECORRUPT);
	memcpy(b, good, sizeof(b));
	CHECK_RC(pg_control_parse(b, sizeof(b) + 1, &c, &err), CAIRN_ECORRUPT);

	fails = 0;
	for (size_t i = 0; i < 292; i++) {
		int want = (i >= 8 && i < 12) ? CAIRN_EVERSION : CAIRN_ECORRUPT;
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(b, good, sizeof(b));
			b[i] ^= (uint8_t)(1u << bit);
			memset(&c, 0xAA, sizeof(c));
			int rc = pg_control_parse(b, sizeof(b), &c, &err);
			if (rc != want || c.system_identifier != 0 || c.timeline != 0) {
				fails++;
				fprintf(stderr, "  byte %zu bit %d: rc %d\n", i, bit, rc);
			}
		}
	}
	CHECK(fails == 0);
	memcpy(b, good, sizeof(b));
	b[8] ^= 1;
	pg_control_parse(b, sizeof(b), &c, &err);
	CHECK(err.code == CAIRN_EVERSION);
	memcpy(b, good, sizeof(b));
	b[100] ^= 1;
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_ECORRUPT);
	CHECK(strstr(err.msg, "CRC") != NULL);
	/* The padding after the CRC is not covered. */
	memcpy(b, good, sizeof(b));
	b[300] ^= 1;
	b[8191] ^= 0xFF;
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), 0);
}

static void test_control_synthetic(void)
{
	static uint8_t b[PG_CONTROL_FILE_SIZE];
	struct pg_control c;
	struct cairn_err err = {0};

	control_make(b);
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), 0);
	CHECK(c.system_identifier == 0x6B023BE6BBD1DE27ull);
	CHECK(c.pg_control_version == 1300 && c.catalog_version_no == 202209061);
	CHECK(c.state == PG_DB_IN_PRODUCTION);
	CHECK(strcmp(pg_db_state_name(c.state), "in production") == 0);
	CHECK(c.time == 1700000000 && c.checkpoint_time == 1699999999);
	CHECK(c.checkpoint_lsn == 0x5000060 && c.redo_lsn == 0x5000028);
	CHECK(c.timeline == 3 && c.prev_timeline == 2);
	CHECK(c.min_recovery_lsn == 0x4000000 && c.min_recovery_tli == 2);
	CHECK(c.backup_start_lsn == 0x3000028 && c.backup_end_lsn == 0x3000100);
	CHECK(c.backup_end_required == 1 && c.wal_level == 2);
	CHECK(c.blcksz == 8192 && c.relseg_size == 131072 && c.xlog_blcksz == 8192);
	CHECK(c.xlog_seg_size == 64 * MIB && c.data_checksum_version == 1);

	control_damage(b);

	/* Other versions and layouts, with a valid CRC. */
	control_make(b);
	put32(b, 8, 1700);
	control_seal(b);
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_EVERSION);
	control_make(b);
	put32(b, 8, __builtin_bswap32(1300));
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_EVERSION);
	CHECK(strstr(err.msg, "big-endian") != NULL);
	control_make(b);
	put32(b, 204, 4);
	control_seal(b);
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_EVERSION);
	control_make(b);
	put64(b, 208, 0);
	control_seal(b);
	CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_EVERSION);

	/* Values out of range, with a valid CRC. */
	static const struct {
		size_t off;
		uint32_t v;
	} badv[] = {
		{16, 7}, {48, 0}, {216, 0}, {216, 12288}, {216, 65536}, {224, 512},
		{228, 0}, {228, 48 * MIB}, {228, 512 * 1024}, {228, 2048u * MIB},
	};
	for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
		control_make(b);
		put32(b, badv[i].off, badv[i].v);
		control_seal(b);
		CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), CAIRN_ECORRUPT);
	}
	for (uint32_t s = 0; s <= 6; s++) {
		control_make(b);
		put32(b, 16, s);
		control_seal(b);
		CHECK_RC(pg_control_parse(b, sizeof(b), &c, &err), 0);
		CHECK(c.state == s);
	}
	CHECK(strcmp(pg_db_state_name(1), "shut down") == 0);
	CHECK(strcmp(pg_db_state_name(99), "unrecognized status code") == 0);
}

/* ---- timeline history ------------------------------------------------ */

static int reason_is(const struct pg_tli_entry *e, const char *s)
{
	return e->reason_len == strlen(s) && memcmp(e->reason, s, e->reason_len) == 0;
}

static int history(const char *text, struct pg_tli_entry **e, size_t *n)
{
	struct cairn_err err = {0};
	return pg_history_parse(text, strlen(text), e, n, &err);
}

static void test_history(void)
{
	const char *text =
		"# written by hand\n"
		"1\t0/30000A0\tno recovery target specified\n"
		"\n"
		"   \t\n"
		"2\t1/0\tbefore 2000-01-01 00:00:00+00\n"
		"  # an indented comment\n"
		"4\t1/A0000028\tat restore point \"x\"  \r\n";
	struct pg_tli_entry *e;
	size_t n;

	CHECK_RC(history(text, &e, &n), 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(e[0].tli == 1 && e[0].begin == 0 && e[0].end == 0x30000A0);
		CHECK(e[1].tli == 2 && e[1].begin == 0x30000A0 && e[1].end == 0x100000000ull);
		CHECK(e[2].tli == 4 && e[2].begin == 0x100000000ull && e[2].end == 0x1A0000028ull);
		CHECK(reason_is(&e[0], "no recovery target specified"));
		CHECK(reason_is(&e[1], "before 2000-01-01 00:00:00+00"));
		CHECK(reason_is(&e[2], "at restore point \"x\""));

		CHECK(pg_history_tli_for_lsn(e, n, 5, 0) == 1);
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0x300009F) == 1);
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0x30000A0) == 2); /* switchpoint: new tli */
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0xFFFFFFFF) == 2);
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0x100000000ull) == 4);
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0x1A0000027ull) == 4);
		CHECK(pg_history_tli_for_lsn(e, n, 5, 0x1A0000028ull) == 5);
		CHECK(pg_history_tli_for_lsn(e, n, 9, UINT64_MAX) == 9);
		CHECK(pg_history_tli_for_lsn(e, n, 4, 0) == 0); /* not 4's file */
		CHECK(pg_history_tli_for_lsn(e, n, 0, 0) == 0);
	}
	free(e);

	/* Timeline 1 has no history: every LSN is on the target. */
	CHECK_RC(history("", &e, &n), 0);
	CHECK(e == NULL && n == 0);
	CHECK(pg_history_tli_for_lsn(NULL, 0, 1, 12345) == 1);
	CHECK_RC(history("# only a comment\n\n", &e, &n), 0);
	CHECK(e == NULL && n == 0);
	CHECK_RC(pg_history_parse(NULL, 0, &e, &n, NULL), 0);

	/* Equal switchpoints (an empty timeline), spaces, no reason. */
	CHECK_RC(history("1 0/5\n2\t0/5\tb\n", &e, &n), 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(e[0].reason_len == 0 && reason_is(&e[1], "b"));
		CHECK(pg_history_tli_for_lsn(e, n, 3, 4) == 1);
		CHECK(pg_history_tli_for_lsn(e, n, 3, 5) == 3);
	}
	free(e);

	static const char *bad[] = {
		"1\t0/30000A0\tno newline at the end",
		"2\t0/1\tx\n1\t0/2\tx\n",        /* timelines decrease */
		"1\t0/1\tx\n1\t0/2\tx\n",        /* repeat */
		"1\t0/5\tx\n2\t0/4\tx\n",        /* switchpoint backwards */
		"0\t0/1\tx\n",
		"4294967296\t0/1\tx\n",
		"x\t0/1\n",
		"-1\t0/1\n",
		"1\n",
		"1\t\n",
		"1x\t0/1\n",
		"1\t0/1x\n",
		"1\t0/1/2\n",
		"1\tzz\tx\n",
		"1\t123456789/0\tx\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = (struct pg_tli_entry *)1;
		n = 99;
		int rc = history(bad[i], &e, &n);
		CHECK_RC(rc, CAIRN_ECORRUPT);
		CHECK(e == NULL && n == 0);
	}
	struct cairn_err err = {0};
	CHECK_RC(pg_history_parse("1\t0/1\tx\0y\n", 10, &e, &n, &err), CAIRN_ECORRUPT);
	CHECK_RC(pg_history_parse("1\t0/1\tx\n2\t0/0\tx\n", 16, &e, &n, &err),
		 CAIRN_ECORRUPT);
	CHECK(strstr(err.msg, "line 2") != NULL);
}

/* ---- backup_label ----------------------------------------------------- */

static void test_label_synthetic(void)
{
	const char *text =
		"START WAL LOCATION: 16/B374D848 (file 0000000300000016000000B3)\n"
		"CHECKPOINT LOCATION: 16/B374D880\n"
		"BACKUP METHOD: streamed\n"
		"BACKUP FROM: standby\n"
		"START TIME: 2024-05-01 12:00:00 CEST\n"
		"LABEL: nightly: base (with a colon)\n"
		"INCREMENTAL FROM LSN: 0/1\n"
		"a line that is not a key\n"
		"START TIMELINE: 3\n";
	struct pg_backup_label b;
	struct cairn_err err = {0};
	char buf[2048];

	CHECK_RC(pg_backup_label_parse(text, strlen(text), &b, &err), 0);
	CHECK(b.start_lsn == 0x16B374D848ull && b.checkpoint_lsn == 0x16B374D880ull);
	CHECK(strcmp(b.start_wal_file, "0000000300000016000000B3") == 0);
	CHECK(b.start_tli == 3 && b.from == PG_BACKUP_FROM_STANDBY);
	CHECK(strcmp(b.method, "streamed") == 0);
	CHECK(strcmp(b.start_time, "2024-05-01 12:00:00 CEST") == 0);
	CHECK(strcmp(b.label, "nightly: base (with a colon)") == 0);

	/* Minimal: optional keys absent; 64 MiB segments (0xB3.. >> 26 = 0x2C). */
	const char *min =
		"START WAL LOCATION: 16/B374D848 (file 00000003000000160000002C)\n"
		"CHECKPOINT LOCATION: 16/B374D848\n"
		"START TIME: t\n"
		"LABEL: \n"
		"START TIMELINE: 3\n";
	CHECK_RC(pg_backup_label_parse(min, strlen(min), &b, &err), 0);
	CHECK(b.from == PG_BACKUP_FROM_PRIMARY && b.method[0] == '\0' && b.label[0] == '\0');

	/* A label of exactly 1024 bytes fits; 1025 does not. */
	for (int len = 1024; len <= 1025; len++) {
		char lab[1100];
		memset(lab, 'x', (size_t)len);
		lab[len] = '\0';
		snprintf(buf, sizeof(buf),
			 "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
			 "CHECKPOINT LOCATION: 0/2000060\nSTART TIME: t\nLABEL: %s\n"
			 "START TIMELINE: 1\n",
			 lab);
		int rc = pg_backup_label_parse(buf, strlen(buf), &b, &err);
		CHECK_RC(rc, len == 1024 ? 0 : CAIRN_ECORRUPT);
		if (len == 1024)
			CHECK(strlen(b.label) == 1024);
	}

	static const struct {
		const char *from, *to;
	} edits[] = {
		{"CHECKPOINT LOCATION: 16/B374D880\n", ""},           /* required */
		{"START TIMELINE: 3\n", ""},
		{"LABEL: nightly: base (with a colon)\n", ""},
		{"START TIME: 2024-05-01 12:00:00 CEST\n", ""},
		{"START WAL LOCATION: 16/B374D848 (file 0000000300000016000000B3)\n", ""},
		{"BACKUP FROM: standby\n", "BACKUP FROM: standby\nBACKUP FROM: standby\n"},
		{"LABEL: nightly", "LABEL: x\nLABEL: nightly"},
		{"BACKUP FROM: standby", "BACKUP FROM: replica"},
		{"BACKUP METHOD: streamed", "BACKUP METHOD: "},
		{"START TIME: 2024-05-01 12:00:00 CEST", "START TIME: "},
		{"CHECKPOINT LOCATION: 16/B374D880", "CHECKPOINT LOCATION: 16/B374D880 "},
		{"CHECKPOINT LOCATION: 16/B374D880", "CHECKPOINT LOCATION: 16/B374D840"},
		{"START TIMELINE: 3", "START TIMELINE: 2"},                /* file's tli */
		{"START TIMELINE: 3", "START TIMELINE: 0"},
		{"START TIMELINE: 3", "START TIMELINE: x"},
		{"START TIMELINE: 3", "START TIMELINE: 03x"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000017000000B3)"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000016000000B4)"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000016000000b3)"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000016000000B)"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000016000000B3"},
		{"(file 0000000300000016000000B3)", "(file 0000000300000016000000B3) "},
		{"16/B374D848 (file", "16/B374D848  (file"},
		{"16/B374D848 (file", "16/B374D848(file"},
		{"START TIMELINE: 3\n", "START TIMELINE: 3"},              /* cut short */
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		const char *at = strstr(text, edits[i].from);
		CHECK(at != NULL);
		if (!at)
			continue;
		size_t pre = (size_t)(at - text);
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, text, edits[i].to,
			 at + strlen(edits[i].from));
		memset(&b, 0xAA, sizeof(b));
		int rc = pg_backup_label_parse(buf, strlen(buf), &b, &err);
		CHECK_RC(rc, CAIRN_ECORRUPT);
		if (rc != CAIRN_ECORRUPT)
			fprintf(stderr, "  accepted edit %zu\n", i);
		CHECK(b.start_lsn == 0 && b.label[0] == '\0');
	}
	CHECK_RC(pg_backup_label_parse("", 0, &b, &err), CAIRN_ECORRUPT);
	CHECK_RC(pg_backup_label_parse(NULL, 0, &b, &err), CAIRN_ECORRUPT);
	memcpy(buf, text, strlen(text) + 1);
	buf[strlen("START WAL LOCATION: 16/B374D848 (file 0000000300000016000000B3)\nCH")] = '\0';
	CHECK_RC(pg_backup_label_parse(buf, strlen(text), &b, &err), CAIRN_ECORRUPT);
	CHECK(strstr(err.msg, "NUL") != NULL);
}

/* Every proper prefix of a label is refused. */
static void label_truncations(const char *text, size_t len)
{
	struct pg_backup_label b;
	int fails = 0;

	for (size_t l = 0; l < len; l++)
		if (pg_backup_label_parse(text, l, &b, NULL) != CAIRN_ECORRUPT)
			fails++;
	CHECK(fails == 0);
}

/* ---- real PostgreSQL 15 ----------------------------------------------- */

static char pgbin[512];
static char as_pg[64]; /* "runuser -u postgres -- " when root */
static char tdir[] = "/tmp/cairn-pgfmt-XXXXXX";
static int server_up;
static int port;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	if (st != 0)
		fprintf(stderr, "  command failed (%d): %s\n", st, cmd);
	return st;
}

/* Runs a command and returns its stdout (malloc'd, NUL-terminated) or NULL. */
static char *capture(size_t *lenp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *capture(size_t *lenp, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (!out || !(f = popen(cmd, "r"))) {
		free(out);
		return NULL;
	}
	for (;;) {
		if (cap - len < 1024) {
			char *n = realloc(out, cap * 2);
			if (!n)
				break;
			out = n;
			cap *= 2;
		}
		size_t r = fread(out + len, 1, cap - len - 1, f);
		if (r == 0)
			break;
		len += r;
	}
	out[len] = '\0';
	if (pclose(f) != 0) {
		fprintf(stderr, "  command failed: %s\n", cmd);
		free(out);
		return NULL;
	}
	if (lenp)
		*lenp = len;
	return out;
}

static char *slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 16384, len = 0, r;
	char *b;

	if (!f)
		return NULL;
	b = malloc(cap + 1);
	while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
		len += r;
		if (len == cap) {
			char *n = realloc(b, cap * 2 + 1);
			if (!n) {
				free(b);
				b = NULL;
				break;
			}
			b = n;
			cap *= 2;
		}
	}
	fclose(f);
	if (b) {
		b[len] = '\0';
		*lenp = len;
	}
	return b;
}

/* The value pg_controldata prints after "key:". */
static const char *cd_get(const char *out, const char *key, char *val, size_t cap)
{
	size_t kl = strlen(key);

	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, kl) != 0 || l[kl] != ':')
			continue;
		const char *v = l + kl + 1;
		while (*v == ' ')
			v++;
		size_t n = strcspn(v, "\n");
		if (n >= cap)
			n = cap - 1;
		memcpy(val, v, n);
		val[n] = '\0';
		return val;
	}
	val[0] = '\0';
	return val;
}

static void cd_expect(const char *cd, const char *key, const char *want)
{
	char got[256];

	cd_get(cd, key, got, sizeof(got));
	CHECK(strcmp(got, want) == 0);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "  %s: pg_controldata \"%s\", pgfmt \"%s\"\n", key, got, want);
}

/* Parses DATA/global/pg_control and compares with pg_controldata DATA. */
static int control_vs_controldata(const char *data, struct pg_control *c)
{
	char path[1024], s[64];
	size_t len = 0;
	struct cairn_err err = {0};
	char *raw, *cd;

	snprintf(path, sizeof(path), "%s/global/pg_control", data);
	raw = slurp(path, &len);
	CHECK(raw != NULL);
	if (!raw)
		return -1;
	int rc = pg_control_parse(raw, len, c, &err);
	CHECK_RC(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "  %s: %s\n", path, err.msg);
		free(raw);
		return -1;
	}
	control_damage((const uint8_t *)raw);
	free(raw);

	cd = capture(NULL, "LC_ALL=C %s/pg_controldata %s", pgbin, data);
	CHECK(cd != NULL);
	if (!cd)
		return -1;
#define EXPECT_U(key, v) \
	(snprintf(s, sizeof(s), "%llu", (unsigned long long)(v)), cd_expect(cd, key, s))
#define EXPECT_LSN(key, v) (pg_lsn_format(s, v), cd_expect(cd, key, s))
	EXPECT_U("pg_control version number", c->pg_control_version);
	EXPECT_U("Catalog version number", c->catalog_version_no);
	EXPECT_U("Database system identifier", c->system_identifier);
	cd_expect(cd, "Database cluster state", pg_db_state_name(c->state));
	EXPECT_LSN("Latest checkpoint location", c->checkpoint_lsn);
	EXPECT_LSN("Latest checkpoint's REDO location", c->redo_lsn);
	pg_walname_format(s, c->timeline, pg_lsn_to_segno(c->redo_lsn, c->xlog_seg_size),
			  c->xlog_seg_size);
	cd_expect(cd, "Latest checkpoint's REDO WAL file", s);
	EXPECT_U("Latest checkpoint's TimeLineID", c->timeline);
	EXPECT_U("Latest checkpoint's PrevTimeLineID", c->prev_timeline);
	EXPECT_LSN("Minimum recovery ending location", c->min_recovery_lsn);
	EXPECT_U("Min recovery ending loc's timeline", c->min_recovery_tli);
	EXPECT_LSN("Backup start location", c->backup_start_lsn);
	EXPECT_LSN("Backup end location", c->backup_end_lsn);
	cd_expect(cd, "End-of-backup record required", c->backup_end_required ? "yes" : "no");
	cd_expect(cd, "wal_level setting",
		  c->wal_level == 0 ? "minimal" : c->wal_level == 1 ? "replica" :
		  c->wal_level == 2 ? "logical" : "unrecognized wal_level");
	EXPECT_U("Database block size", c->blcksz);
	EXPECT_U("Blocks per segment of large relation", c->relseg_size);
	EXPECT_U("WAL block size", c->xlog_blcksz);
	EXPECT_U("Bytes per WAL segment", c->xlog_seg_size);
	EXPECT_U("Data page checksum version", c->data_checksum_version);
#undef EXPECT_U
#undef EXPECT_LSN
	free(cd);
	return 0;
}

static int server_start(const char *extra)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		port = 54000 + (int)((unsigned)(getpid() + time(NULL) + attempt * 7919) % 1000);
		if (run("%s%s/pg_ctl -D %s/a -l %s/log -w -t 60 start"
			" -o \"-p %d -k %s -c listen_addresses='' %s\" >/dev/null 2>&1",
			as_pg, pgbin, tdir, tdir, port, tdir, extra) == 0) {
			server_up = 1;
			return 0;
		}
	}
	return -1;
}

static void server_stop(void)
{
	if (server_up)
		run("%s%s/pg_ctl -D %s/a -m fast -w stop >/dev/null 2>&1", as_pg, pgbin, tdir);
	server_up = 0;
}

/* Takes a backup with pg_backup_start/stop in one psql session; returns the
 * backup_label text (without psql's final newline) and the start LSN
 * pg_backup_start reported. */
static char *take_backup(size_t *len, uint64_t *start)
{
	char sql[1024];
	FILE *f;
	char *out, *nl;

	snprintf(sql, sizeof(sql), "%s/backup.sql", tdir);
	f = fopen(sql, "w");
	if (!f)
		return NULL;
	fputs("select pg_backup_start('cairn unit test', true);\n"
	      "select labelfile from pg_backup_stop(false);\n", f);
	fclose(f);
	chmod(sql, 0644);
	out = capture(len, "%s%s/psql -X -q -A -t -v ON_ERROR_STOP=1 -h %s -p %d -d postgres -f %s",
		      as_pg, pgbin, tdir, port, sql);
	if (!out)
		return NULL;
	nl = strchr(out, '\n');
	if (!nl || *len < 2 || out[*len - 1] != '\n' ||
	    pg_lsn_parse_n(out, (size_t)(nl - out), start) != 0) {
		free(out);
		return NULL;
	}
	*len -= (size_t)(nl + 1 - out) + 1; /* the LSN line; psql's last '\n' */
	memmove(out, nl + 1, *len);
	out[*len] = '\0';
	return out;
}

/* Every name in directory `path` is a WAL file name; returns how many are of
 * `kind`, and the last such name in `last`. */
static int walnames(const char *path, uint32_t seg, enum pg_walname_kind kind,
		    char *last, size_t cap)
{
	struct dirent *d;
	struct pg_walname w;
	int count = 0;

	DIR *dir = opendir(path);
	CHECK(dir != NULL);
	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		/* Not WAL: the status directory, and the temporary names the
		 * server uses while creating or restoring a file. */
		if (d->d_name[0] == '.' || strcmp(d->d_name, "archive_status") == 0 ||
		    strncmp(d->d_name, "xlogtemp.", 9) == 0 ||
		    strncmp(d->d_name, "RECOVERY", 8) == 0)
			continue;
		int rc = pg_walname_parse(d->d_name, seg, &w);
		CHECK_RC(rc, 0);
		if (rc == 0 && w.kind == kind) {
			count++;
			snprintf(last, cap, "%s", d->d_name);
		}
	}
	closedir(dir);
	return count;
}

/* Waits until the cluster's pg_control says "in production": pg_ctl -w
 * returns as soon as recovery starts when hot_standby is off, before the
 * new timeline is chosen.  A torn read while the server rewrites the file
 * fails its CRC and is simply read again. */
static int wait_in_production(const char *data)
{
	char path[1024];
	struct pg_control c;
	struct timespec ts = {0, 20 * 1000 * 1000};

	snprintf(path, sizeof(path), "%s/global/pg_control", data);
	for (int i = 0; i < 1500; i++) {
		size_t len = 0;
		char *raw = slurp(path, &len);
		int rc = raw ? pg_control_parse(raw, len, &c, NULL) : -1;
		free(raw);
		if (rc == 0 && c.state == PG_DB_IN_PRODUCTION)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void test_real_pg(void)
{
	const char *env = getenv("CAIRN_PG15_BIN");
	char data[512], path[1024], wal[1024], arch[1024], name[256];
	struct pg_control c;
	struct pg_backup_label bl;
	struct cairn_err err = {0};
	struct pg_walname w;
	size_t len;
	char *text;
	uint64_t start = 0;

	snprintf(pgbin, sizeof(pgbin), "%s", env ? env : "/usr/lib/postgresql/15/bin");
	snprintf(path, sizeof(path), "%s/initdb", pgbin);
	if (access(path, X_OK) != 0) {
		printf("note: PostgreSQL 15 not found in %s: real-cluster tests skipped\n", pgbin);
		return;
	}
	if (!mkdtemp(tdir)) {
		CHECK(0);
		return;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw || chown(tdir, pw->pw_uid, pw->pw_gid) != 0) {
			printf("note: running as root without a postgres user: real-cluster tests skipped\n");
			goto out;
		}
		snprintf(as_pg, sizeof(as_pg), "runuser -u postgres -- ");
	}

	/* Cluster b: no checksums, 64 MiB segments. */
	snprintf(data, sizeof(data), "%s/b", tdir);
	if (run("%s%s/initdb -N -A trust --wal-segsize=64 -D %s >/dev/null 2>&1",
		as_pg, pgbin, data) != 0) {
		CHECK(0);
		goto out;
	}
	if (control_vs_controldata(data, &c) == 0) {
		CHECK(c.data_checksum_version == 0 && c.xlog_seg_size == 64 * MIB);
		CHECK(c.timeline == 1 && c.state == PG_DB_SHUTDOWNED);
		CHECK(c.catalog_version_no == 202209061); /* PostgreSQL 15 */
	}
	snprintf(wal, sizeof(wal), "%s/pg_wal", data);
	CHECK(walnames(wal, c.xlog_seg_size, PG_WALNAME_SEGMENT, name, sizeof(name)) >= 1);

	/* Cluster a: checksums, 16 MiB segments; a backup, then two promotions. */
	snprintf(data, sizeof(data), "%s/a", tdir);
	if (run("%s%s/initdb -N -k -A trust -D %s >/dev/null 2>&1", as_pg, pgbin, data) != 0) {
		CHECK(0);
		goto out;
	}
	struct pg_control a0;
	if (control_vs_controldata(data, &a0) != 0)
		goto out;
	CHECK(a0.data_checksum_version == 1 && a0.xlog_seg_size == 16 * MIB);
	CHECK(a0.system_identifier != c.system_identifier);

	/* Archive into tdir/archive, so that the backup history file stays in
	 * pg_wal until archived and the archive holds every kind of name. */
	snprintf(wal, sizeof(wal), "%s/pg_wal", data);
	snprintf(arch, sizeof(arch), "%s/archive", tdir);
	snprintf(path, sizeof(path), "%s/postgresql.conf", data);
	FILE *conf = fopen(path, "a");
	CHECK(conf != NULL);
	if (!conf || run("%smkdir %s", as_pg, arch) != 0)
		goto out;
	fprintf(conf, "archive_mode = on\narchive_command = 'cp %%p %s/%%f'\n", arch);
	fclose(conf);

	if (server_start("") != 0) {
		CHECK(0);
		goto out;
	}
	text = take_backup(&len, &start);
	server_stop();
	CHECK(text != NULL);
	if (text) {
		int rc = pg_backup_label_parse(text, len, &bl, &err);
		CHECK_RC(rc, 0);
		if (rc)
			fprintf(stderr, "  real backup_label: %s\n---\n%s---\n", err.msg, text);
		CHECK(bl.start_lsn == start && bl.start_tli == 1);
		CHECK(bl.checkpoint_lsn >= bl.start_lsn);
		CHECK(bl.from == PG_BACKUP_FROM_PRIMARY);
		CHECK(strcmp(bl.label, "cairn unit test") == 0);
		CHECK(strcmp(bl.method, "streamed") == 0);
		CHECK(strlen(bl.start_time) > 10);
		CHECK_RC(pg_walname_parse(bl.start_wal_file, a0.xlog_seg_size, &w), 0);
		CHECK(w.tli == 1 && w.segno == pg_lsn_to_segno(start, a0.xlog_seg_size));
		label_truncations(text, len);
		free(text);
	}

	/* The backup history file in pg_wal: its name and its content. */
	if (walnames(wal, a0.xlog_seg_size, PG_WALNAME_BACKUP_LABEL, name, sizeof(name)) == 1) {
		CHECK_RC(pg_walname_parse(name, a0.xlog_seg_size, &w), 0);
		CHECK(w.segno == pg_lsn_to_segno(start, a0.xlog_seg_size));
		CHECK(w.backup_offset == start % a0.xlog_seg_size);
		snprintf(path, sizeof(path), "%s/pg_wal/%s", data, name);
		text = slurp(path, &len);
		CHECK(text != NULL);
		if (text) {
			CHECK_RC(pg_backup_label_parse(text, len, &bl, &err), 0);
			CHECK(bl.start_lsn == start && strcmp(bl.label, "cairn unit test") == 0);
			CHECK(strstr(text, "STOP WAL LOCATION") != NULL);
			free(text);
		}
	} else {
		CHECK(0);
	}
	if (control_vs_controldata(data, &c) == 0)
		CHECK(c.timeline == 1 && c.checkpoint_lsn > start);

	/* End archive recovery twice: timelines 2 and 3, with real history
	 * files. */
	uint64_t before[2];
	for (int round = 0; round < 2; round++) {
		before[round] = c.checkpoint_lsn;
		if (run("%stouch %s/recovery.signal", as_pg, data) != 0 ||
		    server_start("-c restore_command=false -c hot_standby=off") != 0 ||
		    wait_in_production(data) != 0) {
			CHECK(0);
			goto out;
		}
		server_stop();
		if (control_vs_controldata(data, &c) != 0)
			goto out;
		CHECK(c.timeline == (uint32_t)round + 2);
		CHECK(c.system_identifier == a0.system_identifier);
	}
	CHECK(walnames(wal, c.xlog_seg_size, PG_WALNAME_HISTORY, name, sizeof(name)) == 2);
	/* The archiver empties its queue at shutdown: every kind is there. */
	CHECK(walnames(arch, c.xlog_seg_size, PG_WALNAME_HISTORY, name, sizeof(name)) == 2);
	CHECK(walnames(arch, c.xlog_seg_size, PG_WALNAME_BACKUP_LABEL, name, sizeof(name)) == 1);
	CHECK(walnames(arch, c.xlog_seg_size, PG_WALNAME_SEGMENT, name, sizeof(name)) >= 2);
	CHECK(walnames(arch, c.xlog_seg_size, PG_WALNAME_PARTIAL, name, sizeof(name)) >= 1);

	struct pg_tli_entry *e2 = NULL, *e3 = NULL;
	size_t n2 = 0, n3 = 0;
	char *t2, *t3;
	size_t l2 = 0, l3 = 0;
	snprintf(path, sizeof(path), "%s/pg_wal/00000002.history", data);
	t2 = slurp(path, &l2);
	snprintf(path, sizeof(path), "%s/pg_wal/00000003.history", data);
	t3 = slurp(path, &l3);
	CHECK(t2 && t3);
	if (t2 && t3) {
		CHECK_RC(pg_history_parse(t2, l2, &e2, &n2, &err), 0);
		CHECK_RC(pg_history_parse(t3, l3, &e3, &n3, &err), 0);
		CHECK(n2 == 1 && n3 == 2);
		if (n2 == 1 && n3 == 2) {
			CHECK(e2[0].tli == 1 && e3[0].tli == 1 && e3[1].tli == 2);
			CHECK(e2[0].end == e3[0].end && e3[1].begin == e3[0].end);
			CHECK(e3[0].end > before[0] && e3[1].end > before[1]);
			CHECK(reason_is(&e3[1], "no recovery target specified"));
			CHECK(pg_history_tli_for_lsn(e3, n3, 3, start) == 1);
			CHECK(pg_history_tli_for_lsn(e3, n3, 3, e3[0].end) == 2);
			CHECK(pg_history_tli_for_lsn(e3, n3, 3, c.checkpoint_lsn) == 3);
			CHECK(pg_history_tli_for_lsn(e2, n2, 2, c.checkpoint_lsn) == 2);
			CHECK(pg_history_tli_for_lsn(e3, n3, 2, 0) == 0);
		}
		/* Cut short anywhere inside a line: refused. */
		int fails = 0;
		for (size_t l = 1; l < l3; l++) {
			struct pg_tli_entry *e;
			size_t n;
			int rc = pg_history_parse(t3, l, &e, &n, NULL);
			if ((t3[l - 1] == '\n') != (rc == 0))
				fails++;
			if (rc == 0)
				free(e);
		}
		CHECK(fails == 0);
	}
	free(e2);
	free(e3);
	free(t2);
	free(t3);

out:
	if (server_up)
		run("%s%s/pg_ctl -D %s/a -m immediate -w stop >/dev/null 2>&1", as_pg, pgbin, tdir);
	server_up = 0;
	if (getenv("CAIRN_TEST_KEEP"))
		printf("note: kept %s\n", tdir);
	else
		run("rm -rf %s", tdir);
}

int main(void)
{
	test_lsn();
	test_walname();
	test_segno();
	test_crc32c();
	test_control_synthetic();
	test_history();
	test_label_synthetic();
	test_real_pg();
	return t_done();
}
