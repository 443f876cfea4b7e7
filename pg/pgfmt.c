/*
 * pgfmt.c — PostgreSQL 15 text and binary formats; the contract is in
 * pgfmt.h.
 *
 * Design: every parser works on a (pointer, length) span and never on NUL
 * termination, so a fuzzer can hand it any bytes.  Fields of pg_control are
 * decoded one by one at named offsets in explicit little-endian order; the
 * file is never cast to a struct.  Text formats are read line by line with
 * small strict token readers (hex, decimal, LSN) rather than sscanf, whose
 * "%X" would accept signs, spaces and overflow.
 */
#include "pg/pgfmt.h"
#include "pg/checksum.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small token readers -------------------------------------------- */

static int hex_digit(char c, int allow_lower)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (allow_lower && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly n (1..8) hex digits at s. 0 or -1. */
static int hex32(const char *s, size_t n, int allow_lower, uint32_t *v)
{
	uint32_t x = 0;

	if (n == 0 || n > 8)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int d = hex_digit(s[i], allow_lower);
		if (d < 0)
			return -1;
		x = (x << 4) | (uint32_t)d;
	}
	*v = x;
	return 0;
}

/* Exactly n decimal digits at s, value 1..UINT32_MAX. 0 or -1. */
static int dec32_pos(const char *s, size_t n, uint32_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x == 0 || x > UINT32_MAX)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ---- LSNs ------------------------------------------------------------ */

int pg_lsn_parse_n(const char *s, size_t len, uint64_t *lsn)
{
	const char *slash;
	uint32_t hi, lo;

	*lsn = 0;
	if (!s || len == 0)
		return CAIRN_EUSAGE;
	slash = memchr(s, '/', len);
	if (!slash)
		return CAIRN_EUSAGE;
	/* hex32 refuses a second '/', so "1/2/3" fails in the low part. */
	if (hex32(s, (size_t)(slash - s), 1, &hi) < 0 ||
	    hex32(slash + 1, len - (size_t)(slash - s) - 1, 1, &lo) < 0)
		return CAIRN_EUSAGE;
	*lsn = (uint64_t)hi << 32 | lo;
	return 0;
}

int pg_lsn_parse(const char *s, uint64_t *lsn)
{
	if (!s) {
		*lsn = 0;
		return CAIRN_EUSAGE;
	}
	return pg_lsn_parse_n(s, strlen(s), lsn);
}

void pg_lsn_format(char out[PG_LSN_BUFLEN], uint64_t lsn)
{
	snprintf(out, PG_LSN_BUFLEN, "%X/%X", (unsigned)(lsn >> 32),
		 (unsigned)(uint32_t)lsn);
}

/* ---- WAL segments and file names ------------------------------------ */

int pg_wal_seg_size_valid(uint32_t size)
{
	return size >= PG_WAL_SEG_SIZE_MIN && size <= PG_WAL_SEG_SIZE_MAX &&
	       (size & (size - 1)) == 0;
}

static uint32_t seg_size_or_default(uint32_t wal_seg_size)
{
	uint32_t s = wal_seg_size ? wal_seg_size : PG_WAL_SEG_SIZE_DEFAULT;

	assert(pg_wal_seg_size_valid(s));
	return s;
}

/* PostgreSQL's XLogSegmentsPerXLogId: segments per 4 GiB of LSN space. */
static uint64_t segs_per_xlogid(uint32_t wal_seg_size)
{
	return UINT64_C(0x100000000) / wal_seg_size;
}

uint64_t pg_lsn_to_segno(uint64_t lsn, uint32_t wal_seg_size)
{
	return lsn / seg_size_or_default(wal_seg_size);
}

uint64_t pg_segno_to_lsn(uint64_t segno, uint32_t wal_seg_size)
{
	return segno * seg_size_or_default(wal_seg_size);
}

void pg_walname_format(char out[PG_WALNAME_LEN + 1], uint32_t tli,
		       uint64_t segno, uint32_t wal_seg_size)
{
	uint64_t per = segs_per_xlogid(seg_size_or_default(wal_seg_size));

	snprintf(out, PG_WALNAME_LEN + 1, "%08X%08X%08X", (unsigned)tli,
		 (unsigned)(uint32_t)(segno / per), (unsigned)(uint32_t)(segno % per));
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

int pg_walname_parse_n(const char *name, size_t len, uint32_t wal_seg_size,
		       struct pg_walname *out)
{
	uint32_t tli, log, seg, off;
	uint32_t size = wal_seg_size ? wal_seg_size : PG_WAL_SEG_SIZE_DEFAULT;

	memset(out, 0, sizeof(*out));
	if (!name || !pg_wal_seg_size_valid(size))
		return CAIRN_EUSAGE;

	if (len == 8 + strlen(".history") && ends_with(name, len, ".history")) {
		if (hex32(name, 8, 0, &tli) < 0 || tli == 0)
			return CAIRN_EUSAGE;
		out->kind = PG_WALNAME_HISTORY;
		out->tli = tli;
		return 0;
	}

	if (len < PG_WALNAME_LEN || hex32(name, 8, 0, &tli) < 0 ||
	    hex32(name + 8, 8, 0, &log) < 0 || hex32(name + 16, 8, 0, &seg) < 0)
		return CAIRN_EUSAGE;
	if (tli == 0 || seg >= segs_per_xlogid(size))
		return CAIRN_EUSAGE;

	if (len == PG_WALNAME_LEN) {
		out->kind = PG_WALNAME_SEGMENT;
	} else if (len == PG_WALNAME_LEN + strlen(".partial") &&
		   ends_with(name, len, ".partial")) {
		out->kind = PG_WALNAME_PARTIAL;
	} else if (len == PG_WALNAME_LEN + 1 + 8 + strlen(".backup") &&
		   name[PG_WALNAME_LEN] == '.' &&
		   hex32(name + PG_WALNAME_LEN + 1, 8, 0, &off) == 0 &&
		   ends_with(name, len, ".backup") && off < size) {
		out->kind = PG_WALNAME_BACKUP_LABEL;
		out->backup_offset = off;
	} else {
		return CAIRN_EUSAGE;
	}
	out->tli = tli;
	out->segno = (uint64_t)log * segs_per_xlogid(size) + seg;
	return 0;
}

int pg_walname_parse(const char *name, uint32_t wal_seg_size,
		     struct pg_walname *out)
{
	if (!name) {
		memset(out, 0, sizeof(*out));
		return CAIRN_EUSAGE;
	}
	/* Longer than any valid name: no need to measure further. */
	return pg_walname_parse_n(name, strnlen(name, 64), wal_seg_size, out);
}

/* ---- CRC-32C --------------------------------------------------------- */

/* crc32c_table[i]: CRC of byte i under the reflected Castagnoli polynomial
 * 0x82F63B78 (one byte a step; pg_control is 288 bytes). */
static const uint32_t crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;

	for (size_t i = 0; i < len; i++)
		c = crc32c_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ---- global/pg_control ----------------------------------------------- */

/*
 * Byte offsets of ControlFileData for pg_control_version 1300 (PostgreSQL
 * 13–16) on x86_64, derived from the field order and types in PostgreSQL's
 * src/include/catalog/pg_control.h with the LP64 C alignment rules (uint64,
 * int64 and double on 8 bytes, uint32/int/enum on 4, bool 1), and checked
 * byte for byte against pg_controldata (tests/unit/test_pgfmt.c).
 */
enum {
	PGC_SYSTEM_IDENTIFIER = 0,   /* uint64 */
	PGC_PG_CONTROL_VERSION = 8,  /* uint32 */
	PGC_CATALOG_VERSION_NO = 12, /* uint32 */
	PGC_STATE = 16,              /* DBState (4 bytes), then 4 of padding */
	PGC_TIME = 24,               /* pg_time_t (int64) */
	PGC_CHECKPOINT = 32,         /* XLogRecPtr checkPoint */
	/* CheckPoint checkPointCopy, 88 bytes at 40: redo (8), ThisTimeLineID
	 * (4), PrevTimeLineID (4), fullPageWrites (bool, 7 padding), nextXid
	 * (FullTransactionId, 8), seven 4-byte xid/oid fields (+4 padding),
	 * time (8), three 4-byte xids (+4 padding). */
	PGC_CKPT_REDO = 40,
	PGC_CKPT_THIS_TLI = 48,
	PGC_CKPT_PREV_TLI = 52,
	PGC_CKPT_TIME = 104,
	/* unloggedLSN at 128 */
	PGC_MIN_RECOVERY_POINT = 136,     /* XLogRecPtr */
	PGC_MIN_RECOVERY_POINT_TLI = 144, /* TimeLineID, then 4 of padding */
	PGC_BACKUP_START_POINT = 152,     /* XLogRecPtr */
	PGC_BACKUP_END_POINT = 160,       /* XLogRecPtr */
	PGC_BACKUP_END_REQUIRED = 168,    /* bool, then 3 of padding */
	PGC_WAL_LEVEL = 172,              /* int */
	/* wal_log_hints (bool) 176, MaxConnections 180, max_worker_processes
	 * 184, max_wal_senders 188, max_prepared_xacts 192, max_locks_per_xact
	 * 196, track_commit_timestamp (bool) 200 */
	PGC_MAXALIGN = 204,               /* uint32, 8 on x86_64 */
	PGC_FLOATFORMAT = 208,            /* double 1234567.0 */
	PGC_BLCKSZ = 216,                 /* uint32 */
	PGC_RELSEG_SIZE = 220,            /* uint32 */
	PGC_XLOG_BLCKSZ = 224,            /* uint32 */
	PGC_XLOG_SEG_SIZE = 228,          /* uint32 */
	/* nameDataLen 232, indexMaxKeys 236, toast_max_chunk_size 240,
	 * loblksize 244, float8ByVal (bool) 248 */
	PGC_DATA_CHECKSUM_VERSION = 252,  /* uint32 */
	/* mock_authentication_nonce[32] 256 */
	PGC_CRC = 288,                    /* pg_crc32c over bytes [0, 288) */
};

/* IEEE 754 binary64 bits of 1234567.0, PostgreSQL's FLOATFORMAT_VALUE. */
#define PGC_FLOATFORMAT_BITS UINT64_C(0x4132D68700000000)

static int page_size_valid(uint32_t v)
{
	return v >= 1024 && v <= 32768 && (v & (v - 1)) == 0;
}

int pg_control_parse(const void *buf, size_t len, struct pg_control *out,
		     struct cairn_err *err)
{
	const uint8_t *p = buf;
	struct pg_control c;
	uint32_t version, crc_stored, crc_computed;

	memset(out, 0, sizeof(*out));
	if (!buf || len != PG_CONTROL_FILE_SIZE)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: %zu bytes, expected %u (truncated or not pg_control)",
				     buf ? len : 0, (unsigned)PG_CONTROL_FILE_SIZE);

	version = le32(p + PGC_PG_CONTROL_VERSION);
	if (version != PG_CONTROL_VERSION_1300) {
		if (__builtin_bswap32(version) == PG_CONTROL_VERSION_1300)
			return cairn_err_set(err, CAIRN_EVERSION,
					     "pg_control: written by a big-endian server, only little-endian is read");
		return cairn_err_set(err, CAIRN_EVERSION,
				     "pg_control: pg_control_version %u, expected %u (PostgreSQL 13 to 16)",
				     version, PG_CONTROL_VERSION_1300);
	}

	crc_stored = le32(p + PGC_CRC);
	crc_computed = pg_crc32c(0, p, PGC_CRC);
	if (crc_stored != crc_computed)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: CRC-32C mismatch (stored %08X, computed %08X)",
				     crc_stored, crc_computed);

	if (le32(p + PGC_MAXALIGN) != 8 ||
	    le64(p + PGC_FLOATFORMAT) != PGC_FLOATFORMAT_BITS)
		return cairn_err_set(err, CAIRN_EVERSION,
				     "pg_control: maxAlign %u or float format differ from x86_64",
				     le32(p + PGC_MAXALIGN));

	memset(&c, 0, sizeof(c));
	c.system_identifier = le64(p + PGC_SYSTEM_IDENTIFIER);
	c.pg_control_version = version;
	c.catalog_version_no = le32(p + PGC_CATALOG_VERSION_NO);
	c.state = le32(p + PGC_STATE);
	c.time = (int64_t)le64(p + PGC_TIME);
	c.checkpoint_lsn = le64(p + PGC_CHECKPOINT);
	c.redo_lsn = le64(p + PGC_CKPT_REDO);
	c.timeline = le32(p + PGC_CKPT_THIS_TLI);
	c.prev_timeline = le32(p + PGC_CKPT_PREV_TLI);
	c.checkpoint_time = (int64_t)le64(p + PGC_CKPT_TIME);
	c.min_recovery_lsn = le64(p + PGC_MIN_RECOVERY_POINT);
	c.min_recovery_tli = le32(p + PGC_MIN_RECOVERY_POINT_TLI);
	c.backup_start_lsn = le64(p + PGC_BACKUP_START_POINT);
	c.backup_end_lsn = le64(p + PGC_BACKUP_END_POINT);
	c.backup_end_required = p[PGC_BACKUP_END_REQUIRED] != 0;
	c.wal_level = (int32_t)le32(p + PGC_WAL_LEVEL);
	c.data_checksum_version = le32(p + PGC_DATA_CHECKSUM_VERSION);
	c.blcksz = le32(p + PGC_BLCKSZ);
	c.relseg_size = le32(p + PGC_RELSEG_SIZE);
	c.xlog_blcksz = le32(p + PGC_XLOG_BLCKSZ);
	c.xlog_seg_size = le32(p + PGC_XLOG_SEG_SIZE);

	/* The CRC matched, so these are what the server wrote; a value out of
	 * range means a server bug or a forged file, not a flipped bit. */
	if (c.state > PG_DB_IN_PRODUCTION)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: unknown cluster state %u", c.state);
	if (c.timeline == 0)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: checkpoint timeline is 0");
	if (!page_size_valid(c.blcksz) || !page_size_valid(c.xlog_blcksz))
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: invalid block size %u or WAL block size %u",
				     c.blcksz, c.xlog_blcksz);
	if (!pg_wal_seg_size_valid(c.xlog_seg_size))
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "pg_control: invalid WAL segment size %u",
				     c.xlog_seg_size);
	*out = c;
	return 0;
}

const char *pg_db_state_name(uint32_t state)
{
	switch (state) {
	case PG_DB_STARTUP: return "starting up";
	case PG_DB_SHUTDOWNED: return "shut down";
	case PG_DB_SHUTDOWNED_IN_RECOVERY: return "shut down in recovery";
	case PG_DB_SHUTDOWNING: return "shutting down";
	case PG_DB_IN_CRASH_RECOVERY: return "in crash recovery";
	case PG_DB_IN_ARCHIVE_RECOVERY: return "in archive recovery";
	case PG_DB_IN_PRODUCTION: return "in production";
	}
	return "unrecognized status code";
}

/* ---- line iteration for the text formats ----------------------------- */

struct lines {
	const char *text;
	size_t len, pos;
	size_t lineno; /* 1-based number of the line last returned */
};

/* Next line without its '\n'. 1 when there is one, 0 at the end. */
static int line_next(struct lines *l, const char **s, size_t *n)
{
	const char *nl;

	if (l->pos >= l->len)
		return 0;
	*s = l->text + l->pos;
	nl = memchr(*s, '\n', l->len - l->pos);
	*n = nl ? (size_t)(nl - *s) : l->len - l->pos;
	l->pos += *n + (nl ? 1 : 0);
	l->lineno++;
	return 1;
}

/* Checks the shape every text format shares: no NUL, and a final '\n'
 * unless empty.  0 or CAIRN_ECORRUPT. */
static int text_check(const char *what, const char *text, size_t len,
		      struct cairn_err *err)
{
	if (len > 0 && !text)
		return cairn_err_set(err, CAIRN_ECORRUPT, "%s: no text", what);
	if (len > 0 && memchr(text, '\0', len))
		return cairn_err_set(err, CAIRN_ECORRUPT, "%s: contains a NUL byte", what);
	if (len > 0 && text[len - 1] != '\n')
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "%s: does not end with a newline (cut short?)", what);
	return 0;
}

/* ---- timeline history files ------------------------------------------ */

int pg_history_parse(const char *text, size_t len, struct pg_tli_entry **out,
		     size_t *n, struct cairn_err *err)
{
	static const char what[] = "timeline history file";
	struct pg_tli_entry *v = NULL;
	size_t cnt = 0, cap = 0;
	struct lines l = {text, len, 0, 0};
	const char *s;
	size_t sn;
	int rc;

	*out = NULL;
	*n = 0;
	rc = text_check(what, text, len, err);
	if (rc < 0)
		return rc;

	while (line_next(&l, &s, &sn)) {
		size_t i = 0, tok;
		uint32_t tli;
		uint64_t lsn;

		while (i < sn && is_blank(s[i]))
			i++;
		if (i == sn || s[i] == '#')
			continue;

		for (tok = i; i < sn && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (dec32_pos(s + tok, i - tok, &tli) < 0) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s line %zu: expected a timeline number >= 1",
					   what, l.lineno);
			goto fail;
		}
		if (i == sn || (s[i] != '\t' && s[i] != ' ')) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s line %zu: expected a tab after the timeline",
					   what, l.lineno);
			goto fail;
		}
		while (i < sn && (s[i] == '\t' || s[i] == ' '))
			i++;
		for (tok = i; i < sn && !is_blank(s[i]); i++)
			;
		if (pg_lsn_parse_n(s + tok, i - tok, &lsn) < 0) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s line %zu: expected a switchpoint LSN",
					   what, l.lineno);
			goto fail;
		}
		while (i < sn && is_blank(s[i]))
			i++;
		while (sn > i && is_blank(s[sn - 1]))
			sn--;

		if (cnt > 0 && tli <= v[cnt - 1].tli) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s line %zu: timeline %u after %u (must increase)",
					   what, l.lineno, tli, v[cnt - 1].tli);
			goto fail;
		}
		if (cnt > 0 && lsn < v[cnt - 1].end) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "%s line %zu: switchpoint goes backwards",
					   what, l.lineno);
			goto fail;
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct pg_tli_entry *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				rc = cairn_err_set(err, CAIRN_ENOMEM,
						   "%s: out of memory", what);
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt].tli = tli;
		v[cnt].begin = cnt ? v[cnt - 1].end : 0;
		v[cnt].end = lsn;
		v[cnt].reason = s + i;
		v[cnt].reason_len = sn - i;
		cnt++;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(v);
	return rc;
}

uint32_t pg_history_tli_for_lsn(const struct pg_tli_entry *e, size_t n,
				uint32_t target_tli, uint64_t lsn)
{
	if (target_tli == 0 || (n > 0 && e[n - 1].tli >= target_tli))
		return 0;
	/* Switchpoints never decrease, so the first entry whose end lies
	 * beyond lsn is the timeline that wrote it. */
	for (size_t i = 0; i < n; i++)
		if (lsn < e[i].end)
			return e[i].tli;
	return target_tli;
}

/* ---- backup_label ----------------------------------------------------- */

enum {
	BL_START_WAL = 1 << 0,
	BL_CHECKPOINT = 1 << 1,
	BL_METHOD = 1 << 2,
	BL_FROM = 1 << 3,
	BL_START_TIME = 1 << 4,
	BL_LABEL = 1 << 5,
	BL_START_TLI = 1 << 6,
};

static const struct {
	const char *key;
	int bit;
} bl_keys[] = {
	{"START WAL LOCATION", BL_START_WAL},
	{"CHECKPOINT LOCATION", BL_CHECKPOINT},
	{"BACKUP METHOD", BL_METHOD},
	{"BACKUP FROM", BL_FROM},
	{"START TIME", BL_START_TIME},
	{"LABEL", BL_LABEL},
	{"START TIMELINE", BL_START_TLI},
};

#define BL_REQUIRED \
	(BL_START_WAL | BL_CHECKPOINT | BL_START_TIME | BL_LABEL | BL_START_TLI)

static int span_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Copies n bytes and a NUL into dst[cap]; -1 when they do not fit. */
static int span_copy(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* "X/X (file <24 hex>)" */
static int parse_start_wal(struct pg_backup_label *b, const char *v, size_t n)
{
	static const char pre[] = " (file ";
	const char *sp = memchr(v, ' ', n);
	size_t lsn_len, rest;

	if (!sp)
		return -1;
	lsn_len = (size_t)(sp - v);
	rest = n - lsn_len;
	if (pg_lsn_parse_n(v, lsn_len, &b->start_lsn) < 0)
		return -1;
	if (rest != strlen(pre) + PG_WALNAME_LEN + 1 ||
	    memcmp(sp, pre, strlen(pre)) != 0 || v[n - 1] != ')')
		return -1;
	return span_copy(b->start_wal_file, sizeof(b->start_wal_file),
			 sp + strlen(pre), PG_WALNAME_LEN);
}

/* Whether segment name `f` can hold `lsn` on timeline `tli` for some valid
 * WAL segment size (the label does not say which size). */
static int wal_file_matches(const char *f, uint32_t tli, uint64_t lsn)
{
	uint32_t ftli, log, seg;

	if (hex32(f, 8, 0, &ftli) < 0 || hex32(f + 8, 8, 0, &log) < 0 ||
	    hex32(f + 16, 8, 0, &seg) < 0)
		return 0;
	if (ftli != tli || log != (uint32_t)(lsn >> 32))
		return 0;
	for (uint32_t size = PG_WAL_SEG_SIZE_MIN; size <= PG_WAL_SEG_SIZE_MAX;
	     size <<= 1)
		if (seg == (uint32_t)lsn / size)
			return 1;
	return 0;
}

int pg_backup_label_parse(const char *text, size_t len,
			  struct pg_backup_label *out, struct cairn_err *err)
{
	static const char what[] = "backup_label";
	struct pg_backup_label b;
	struct lines l = {text, len, 0, 0};
	const char *s;
	size_t sn;
	int seen = 0, rc;

	memset(out, 0, sizeof(*out));
	memset(&b, 0, sizeof(b));
	rc = text_check(what, text, len, err);
	if (rc < 0)
		return rc;

	while (line_next(&l, &s, &sn)) {
		const char *colon = memchr(s, ':', sn);
		const char *v;
		size_t kn, vn;
		int bit = 0, bad = 0;

		if (!colon || (size_t)(colon - s) + 1 >= sn || colon[1] != ' ')
			continue; /* not "KEY: value": not ours */
		kn = (size_t)(colon - s);
		v = colon + 2;
		vn = sn - kn - 2;
		for (size_t k = 0; k < sizeof(bl_keys) / sizeof(bl_keys[0]); k++)
			if (span_eq(s, kn, bl_keys[k].key))
				bit = bl_keys[k].bit;
		if (!bit)
			continue;
		if (seen & bit)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "%s line %zu: %.*s appears twice", what,
					     l.lineno, (int)kn, s);
		seen |= bit;

		switch (bit) {
		case BL_START_WAL:
			bad = parse_start_wal(&b, v, vn) < 0;
			break;
		case BL_CHECKPOINT:
			bad = pg_lsn_parse_n(v, vn, &b.checkpoint_lsn) < 0;
			break;
		case BL_METHOD:
			bad = vn == 0 || span_copy(b.method, sizeof(b.method), v, vn) < 0;
			break;
		case BL_FROM:
			if (span_eq(v, vn, "primary"))
				b.from = PG_BACKUP_FROM_PRIMARY;
			else if (span_eq(v, vn, "standby"))
				b.from = PG_BACKUP_FROM_STANDBY;
			else
				bad = 1;
			break;
		case BL_START_TIME:
			bad = vn == 0 ||
			      span_copy(b.start_time, sizeof(b.start_time), v, vn) < 0;
			break;
		case BL_LABEL:
			bad = span_copy(b.label, sizeof(b.label), v, vn) < 0;
			break;
		case BL_START_TLI:
			bad = dec32_pos(v, vn, &b.start_tli) < 0;
			break;
		}
		if (bad)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "%s line %zu: malformed or too long %.*s",
					     what, l.lineno, (int)kn, s);
	}

	if ((seen & BL_REQUIRED) != BL_REQUIRED) {
		for (size_t k = 0; k < sizeof(bl_keys) / sizeof(bl_keys[0]); k++)
			if ((BL_REQUIRED & bl_keys[k].bit) && !(seen & bl_keys[k].bit))
				return cairn_err_set(err, CAIRN_ECORRUPT,
						     "%s: no %s line", what,
						     bl_keys[k].key);
	}
	if (!wal_file_matches(b.start_wal_file, b.start_tli, b.start_lsn))
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "%s: WAL file %s does not hold %X/%X on timeline %u",
				     what, b.start_wal_file,
				     (unsigned)(b.start_lsn >> 32),
				     (unsigned)(uint32_t)b.start_lsn, b.start_tli);
	if (b.checkpoint_lsn < b.start_lsn)
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "%s: checkpoint location precedes start location",
				     what);
	*out = b;
	return 0;
}

/* ---- relation files ------------------------------------------------------ */

/* "12345", "12345_fsm", "12345.2", "12345_vm.1": a relation fork file.
 * Sets *segno; *is_init for "_init". */
int pg_relation_file(const char *name, uint32_t *segno, int *is_init)
{
	const char *p = name;
	*segno = 0;
	*is_init = 0;
	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '_') {
		if (!strncmp(p, "_fsm", 4))
			p += 4;
		else if (!strncmp(p, "_vm", 3))
			p += 3;
		else if (!strncmp(p, "_init", 5)) {
			p += 5;
			*is_init = 1;
		} else
			return 0;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		unsigned long v = strtoul(p, (char **)&p, 10);
		if (v > UINT32_MAX / PG_SEGMENT_PAGES)
			return 0;
		*segno = (uint32_t)v;
	}
	return *p == '\0';
}

/* The folders holding relation files: global/, base/<db>/ and
 * pg_tblspc/<oid>/<version dir>/<db>/. */
int pg_relation_dir(const char *rel)
{
	if (!strncmp(rel, "global/", 7) && !strchr(rel + 7, '/'))
		return 1;
	if (!strncmp(rel, "base/", 5)) {
		const char *db = rel + 5, *slash = strchr(db, '/');
		return slash && !strchr(slash + 1, '/');
	}
	if (!strncmp(rel, "pg_tblspc/", 10)) {
		int slashes = 0;
		for (const char *p = rel + 10; *p; p++)
			slashes += *p == '/';
		return slashes == 3;
	}
	return 0;
}

/* rel ("base/5/16384.1") is a relation fork file in a relation folder. */
int pg_relation_path(const char *rel, uint32_t *segno)
{
	int is_init;
	const char *base = strrchr(rel, '/');
	char dir[PATH_MAX];
	size_t dl = base ? (size_t)(base - rel) + 1 : 0;
	if (!base || dl >= sizeof(dir))
		return 0;
	memcpy(dir, rel, dl);
	dir[dl] = '\0';
	return pg_relation_dir(dir) && pg_relation_file(base + 1, segno, &is_init);
}
