/*
 * pgfmt.h — parsers and formatters for the PostgreSQL 15 formats that pg/
 * reads and writes without a server: LSNs, WAL file names, global/pg_control,
 * timeline history files and backup_label.
 *
 * Pure functions: no I/O, no libpq, no globals, and no allocation except
 * pg_history_parse's result array (the caller frees it with free()).  Every
 * function touches only its arguments, so all are thread-safe.  Each parser
 * accepts any bytes: the answer is a result or an error, never a crash or a
 * read past `len`, so each can be driven by a fuzzer.
 *
 * Errors: 0 on success or a negative code from repo/error.h.
 *   - The string parsers without an error record (pg_lsn_parse*,
 *     pg_walname_parse*) return CAIRN_EUSAGE for a string that is not of
 *     the form: such strings come from users, from restore_command's %f and
 *     from directory listings, and "not a WAL file name" is an answer, not
 *     damage.  Their output is zeroed on failure.
 *   - The parsers of file contents (pg_control_parse, pg_history_parse,
 *     pg_backup_label_parse) return CAIRN_ECORRUPT for malformed bytes and
 *     CAIRN_EVERSION for a well-formed file of a layout we do not read, and
 *     fill `err` (may be NULL) with a message naming the file and the line
 *     or field.  Their output is zeroed (or NULL) on failure.
 *
 * Case: PostgreSQL writes WAL file names in uppercase hex and only
 * uppercase is accepted there ("0000000100000000000000a1" is not a WAL file
 * name).  LSNs are accepted in either case, as PostgreSQL's pg_lsn input
 * accepts them, and always formatted in uppercase.
 */
#ifndef CAIRN_PGFMT_H
#define CAIRN_PGFMT_H

#include <stddef.h>
#include <stdint.h>

#include "repo/error.h"

/* ---- LSNs ------------------------------------------------------------ */

/* Enough for "FFFFFFFF/FFFFFFFF" and its NUL, with room to spare. */
#define PG_LSN_BUFLEN 32

/* Parses "HI/LO": 1..8 hex digits (either case), one '/', 1..8 hex digits,
 * nothing else (no spaces, no sign, no "0x").  *lsn = HI << 32 | LO.
 * Returns 0 or CAIRN_EUSAGE (s may be NULL). */
int pg_lsn_parse(const char *s, uint64_t *lsn);

/* The same on the `len` bytes at s (no NUL needed). */
int pg_lsn_parse_n(const char *s, size_t len, uint64_t *lsn);

/* Writes "%X/%X" as PostgreSQL prints an LSN ("16/B374D848", "0/0"). */
void pg_lsn_format(char out[PG_LSN_BUFLEN], uint64_t lsn);

/* ---- WAL segments and file names ------------------------------------ */

#define PG_WAL_SEG_SIZE_DEFAULT (16u * 1024 * 1024)
#define PG_WAL_SEG_SIZE_MIN (1u * 1024 * 1024)
#define PG_WAL_SEG_SIZE_MAX (1024u * 1024 * 1024)

/* Characters of a segment name "TTTTTTTTLLLLLLLLSSSSSSSS" (without NUL). */
#define PG_WALNAME_LEN 24

/* 1 when `size` is a valid wal_segment_size (a power of two from 1 MiB to
 * 1 GiB, as initdb --wal-segsize allows), else 0. */
int pg_wal_seg_size_valid(uint32_t size);

/*
 * In every function below wal_seg_size 0 means PG_WAL_SEG_SIZE_DEFAULT.
 * A segment number (segno) counts segments from LSN 0:
 *   segno = lsn / wal_seg_size,
 * and a segment name is timeline, segno / S and segno % S, each as %08X,
 * where S = 0x100000000 / wal_seg_size (PostgreSQL's XLogSegmentsPerXLogId).
 * The same name therefore means different segments under different sizes:
 * take the size from pg_control.  pg_walname_format, pg_lsn_to_segno and
 * pg_segno_to_lsn assert() a valid size (a wrong one is the caller's bug).
 */

enum pg_walname_kind {
	PG_WALNAME_SEGMENT = 1,  /* 000000010000000000000002 */
	PG_WALNAME_PARTIAL,      /* 000000010000000000000002.partial */
	/* The backup history file that pg_backup_stop archives (its content
	 * is the backup_label plus STOP lines):
	 * 000000010000000000000002.00000028.backup */
	PG_WALNAME_BACKUP_LABEL,
	PG_WALNAME_HISTORY,      /* 00000002.history */
};

struct pg_walname {
	enum pg_walname_kind kind;
	uint32_t tli;           /* >= 1 */
	uint64_t segno;         /* 0 for PG_WALNAME_HISTORY */
	uint32_t backup_offset; /* BACKUP_LABEL: start offset within the segment */
};

/*
 * Recognizes exactly these names (uppercase hex only, nothing before or
 * after):
 *   24 hex                               SEGMENT
 *   24 hex ".partial"                    PARTIAL
 *   24 hex "." 8 hex ".backup"           BACKUP_LABEL (offset < seg size)
 *   8 hex ".history"                     HISTORY
 * The timeline must be >= 1 and the low part of a segment name below
 * 0x100000000 / wal_seg_size (e.g. at most 000000FF for 16 MiB segments).
 * Returns 0, or CAIRN_EUSAGE for anything else (including a NULL name or an
 * invalid wal_seg_size); *out is zeroed on failure.
 */
int pg_walname_parse(const char *name, uint32_t wal_seg_size,
		     struct pg_walname *out);

/* The same on the `len` bytes at name (no NUL needed). */
int pg_walname_parse_n(const char *name, size_t len, uint32_t wal_seg_size,
		       struct pg_walname *out);

/* Writes the 24-character segment name of (tli, segno) and a NUL. */
void pg_walname_format(char out[PG_WALNAME_LEN + 1], uint32_t tli,
		       uint64_t segno, uint32_t wal_seg_size);

/* The segment that holds byte `lsn` of the WAL: lsn / wal_seg_size. */
uint64_t pg_lsn_to_segno(uint64_t lsn, uint32_t wal_seg_size);

/* The LSN of the first byte of segment `segno`: segno * wal_seg_size. */
uint64_t pg_segno_to_lsn(uint64_t segno, uint32_t wal_seg_size);

/* ---- CRC-32C --------------------------------------------------------- */

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final
 * xor 0xFFFFFFFF) as PostgreSQL computes it for pg_control and WAL records.
 * Chains like zlib's crc32: pass 0 first, then the previous result;
 * pg_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- global/pg_control ----------------------------------------------- */

/* pg_control is always written as this many bytes (zero-padded). */
#define PG_CONTROL_FILE_SIZE 8192
/* pg_control_version of PostgreSQL 13, 14, 15 and 16, which share one
 * layout; catalog_version_no tells the major versions apart (PostgreSQL 15:
 * 202209061). */
#define PG_CONTROL_VERSION_1300 1300u

enum pg_db_state { /* PostgreSQL's DBState; the values are on disk */
	PG_DB_STARTUP = 0,
	PG_DB_SHUTDOWNED = 1,
	PG_DB_SHUTDOWNED_IN_RECOVERY = 2,
	PG_DB_SHUTDOWNING = 3,
	PG_DB_IN_CRASH_RECOVERY = 4,
	PG_DB_IN_ARCHIVE_RECOVERY = 5,
	PG_DB_IN_PRODUCTION = 6,
};

struct pg_control {
	uint64_t system_identifier;
	uint32_t pg_control_version;   /* PG_CONTROL_VERSION_1300 */
	uint32_t catalog_version_no;
	uint32_t state;                /* enum pg_db_state */
	int64_t time;                  /* last update of pg_control, Unix s */
	uint64_t checkpoint_lsn;       /* latest checkpoint record */
	uint64_t redo_lsn;             /* that checkpoint's REDO location */
	uint32_t timeline;             /* that checkpoint's ThisTimeLineID */
	uint32_t prev_timeline;        /* ... and PrevTimeLineID */
	int64_t checkpoint_time;       /* Unix s */
	uint64_t min_recovery_lsn;     /* 0 when not in archive recovery */
	uint32_t min_recovery_tli;
	uint64_t backup_start_lsn;
	uint64_t backup_end_lsn;
	int backup_end_required;       /* 0 or 1 */
	int32_t wal_level;             /* 0 minimal, 1 replica, 2 logical */
	uint32_t data_checksum_version; /* 0: page checksums off */
	uint32_t blcksz;               /* data page size */
	uint32_t relseg_size;          /* blocks per relation segment file */
	uint32_t xlog_blcksz;          /* WAL page size */
	uint32_t xlog_seg_size;        /* WAL segment size (valid by the rule above) */
};

/*
 * Reads the pg_control of PostgreSQL 13–16 as written on x86_64 (and other
 * little-endian LP64 platforms with 8-byte MAXALIGN).  `len` must be exactly
 * PG_CONTROL_FILE_SIZE: anything shorter is a truncated copy.
 *
 * Order of checks (as PostgreSQL's own ReadControlFile): the length, then
 * pg_control_version (CAIRN_EVERSION when it is not 1300, with a note when
 * it is 1300 byte-swapped), then the CRC-32C stored after the data
 * (CAIRN_ECORRUPT), then the layout markers maxAlign == 8 and floatFormat
 * == 1234567.0 (CAIRN_EVERSION: another architecture), then the values: a
 * known state, a timeline >= 1, page sizes that are powers of two from 1 to
 * 32 KiB and a valid WAL segment size (CAIRN_ECORRUPT).  Bytes after the CRC
 * are padding and not examined.
 */
int pg_control_parse(const void *buf, size_t len, struct pg_control *out,
		     struct cairn_err *err);

/* The words pg_controldata prints for a state ("shut down", "in
 * production", ...), or "unrecognized status code". Static storage. */
const char *pg_db_state_name(uint32_t state);

/* ---- timeline history files ------------------------------------------ */

/*
 * One line of a history file "<tli>\t<switchpoint>\t<reason>\n": WAL of
 * timeline `tli` covers [begin, end); at `end` the server switched to a
 * newer timeline.  `reason` points into the caller's text (not
 * NUL-terminated, reason_len bytes, possibly 0) and is valid as long as that
 * text is.
 */
struct pg_tli_entry {
	uint32_t tli;
	uint64_t begin;      /* 0 for the first entry, else the previous end */
	uint64_t end;        /* the switchpoint */
	const char *reason;
	size_t reason_len;
};

/*
 * Parses the history file of some timeline T (the file "T.history": T itself
 * is not in the file; the entries are T's ancestors, oldest first).  Lines
 * that are empty, blank or start with '#' after blanks are skipped.  Other
 * lines: optional blanks, a decimal timeline >= 1, blanks (tab or space), an
 * LSN, then optionally blanks and a free-text reason (trailing blanks
 * dropped).  Timelines must increase strictly and switchpoints must not
 * decrease.  A non-empty text must end with '\n' (PostgreSQL always writes
 * one; a file without it is taken as cut short); NUL bytes are refused.
 *
 * On success *out is a malloc'd array of *n entries (NULL when *n == 0),
 * freed by the caller with free().  Errors: CAIRN_ECORRUPT (naming the
 * line), CAIRN_ENOMEM; then *out = NULL and *n = 0.
 */
int pg_history_parse(const char *text, size_t len, struct pg_tli_entry **out,
		     size_t *n, struct cairn_err *err);

/*
 * The timeline that WAL position `lsn` belongs to when following the
 * history of `target_tli`, whose history file gave e[0..n) (n may be 0 for
 * timeline 1): the first entry with lsn < end, else target_tli itself.  A
 * switchpoint belongs to the newer timeline, as in PostgreSQL's
 * tliOfPointInHistory.  Returns 0 when the question has no answer:
 * target_tli is 0 or not newer than every entry (not this file's timeline).
 */
uint32_t pg_history_tli_for_lsn(const struct pg_tli_entry *e, size_t n,
				uint32_t target_tli, uint64_t lsn);

/* ---- backup_label ----------------------------------------------------- */

enum pg_backup_from {
	PG_BACKUP_FROM_PRIMARY = 0,
	PG_BACKUP_FROM_STANDBY = 1,
};

/* PostgreSQL's limit on a backup label (MAXPGPATH bytes). */
#define PG_BACKUP_LABEL_MAX 1024
#define PG_BACKUP_TIME_MAX 127
#define PG_BACKUP_METHOD_MAX 31

struct pg_backup_label {
	uint64_t start_lsn;                  /* START WAL LOCATION */
	char start_wal_file[PG_WALNAME_LEN + 1]; /* ... its "(file ...)" */
	uint64_t checkpoint_lsn;             /* CHECKPOINT LOCATION */
	uint32_t start_tli;                  /* START TIMELINE */
	enum pg_backup_from from;            /* BACKUP FROM; primary if absent */
	char method[PG_BACKUP_METHOD_MAX + 1];   /* BACKUP METHOD; "" if absent */
	/* START TIME exactly as written ("2024-05-01 12:00:00 UTC"): the zone
	 * is an abbreviation that cannot always be resolved, so it stays text. */
	char start_time[PG_BACKUP_TIME_MAX + 1];
	char label[PG_BACKUP_LABEL_MAX + 1]; /* LABEL */
};

/*
 * Parses the backup_label text that pg_backup_stop() returns (PostgreSQL
 * 15 writes, in this order: START WAL LOCATION, CHECKPOINT LOCATION, BACKUP
 * METHOD, BACKUP FROM, START TIME, LABEL, START TIMELINE).  Each line is
 * "KEY: value".  Required: START WAL LOCATION ("X/X (file <24 hex>)"),
 * CHECKPOINT LOCATION, START TIME, LABEL, START TIMELINE.  Optional: BACKUP
 * METHOD, BACKUP FROM ("primary" or "standby").  Other lines (keys of later
 * versions, the STOP lines of a backup history file) are ignored.
 *
 * CAIRN_ECORRUPT when: a required key is missing or a known key repeats; a
 * value is malformed or too long for its field; the file name's timeline is
 * not START TIMELINE or its segment does not hold START WAL LOCATION for any
 * valid segment size; the checkpoint precedes the start; the text contains
 * a NUL or does not end with '\n' (a label cut short).
 */
int pg_backup_label_parse(const char *text, size_t len,
			  struct pg_backup_label *out, struct cairn_err *err);

/* Relation files (what a base backup verifies page by page and cairn cuts
 * at fixed offsets).  pg_relation_file: `name` is a fork file ("12345",
 * "12345_fsm", "12345.2", "12345_vm.1"; sets *segno, and *is_init for
 * "_init").  pg_relation_dir: `rel` ("base/5/", with its trailing '/') is
 * global/, base/<db>/ or pg_tblspc/<oid>/<version dir>/<db>/.
 * pg_relation_path: both, for a data-folder-relative path. */
int pg_relation_file(const char *name, uint32_t *segno, int *is_init);
int pg_relation_dir(const char *rel);
int pg_relation_path(const char *rel, uint32_t *segno);

#endif
