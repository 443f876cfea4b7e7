/*
 * checksum.h — PostgreSQL data page checksums, for verifying the pages of
 * relation files as a base backup reads them.
 *
 * Owns: the page checksum algorithm of PostgreSQL (9.3 onwards, unchanged
 * through 15; clusters made with `initdb -k` or converted by pg_checksums)
 * and the verdict on one 8192-byte page.  No allocation, no I/O, no
 * globals but a const table; every function is pure and thread-safe.
 * `page` may have any alignment and is never written.
 *
 * The algorithm (PostgreSQL's src/include/storage/checksum_impl.h, which is
 * the definition; this is an independent implementation of it):
 *
 *   - The page is read as 64 rows of 32 native-endian uint32 words
 *     (row r, column c is the word at byte offset 128*r + 4*c), with the
 *     16-bit pd_checksum field (bytes 8..9) taken as zero.
 *   - 32 independent sums, sum[c] starting at a fixed "offset basis"
 *     (pg_checksum_offsets in checksum.c; part of the format), each fold
 *     column c in row order with an FNV-1a-derived step that also feeds
 *     high bits back down:
 *         t = sum ^ word;  sum = (t * 16777619) ^ (t >> 17)
 *     The 32 columns are what lets a compiler run the sums as SIMD lanes.
 *   - Two more steps with word = 0 for every sum, to mix the last row.
 *   - The 32 sums are XORed together, the block number is XORed in (so a
 *     page written at the wrong place fails), and the 32-bit result c
 *     becomes the stored 16-bit value (c % 65535) + 1, never zero.
 *
 * The block number is the block's number within the whole relation fork:
 * segment number * 131072 + block number within the 1 GiB segment file
 * (131072 = RELSEG_SIZE for the default 8 kB pages and 1 GiB segments).
 *
 * Byte order: the page is in the server's native byte order and so are
 * the words summed, pd_lsn and pd_checksum.  cairn reads the data
 * directory on the server's own machine, so native order here is the
 * server's; this module must not be used on pages copied from a machine
 * of the other endianness.
 *
 * What a base backup does with the verdict (PostgreSQL 15's basebackup.c
 * sendFile(), which cairn follows):
 *
 *   - PAGE_NEW (pd_upper == 0, PageIsNew) is skipped: relation extension
 *     writes zeroed pages, which carry no checksum until first written.
 *     basebackup does not require such a page to be all zeros; neither do
 *     we (the server's own read path, PageIsVerified, is stricter).
 *   - A page whose pd_lsn (pg_page_lsn) is >= the backup start LSN is not
 *     checked: it changed after the backup began, so it may be read while
 *     the server is writing it (a torn page: part old, part new, checksum
 *     matching neither) — and it need not be right in the backup, because
 *     replaying the WAL from the start LSN restores it from a full-page
 *     image.
 *   - A page that fails is read once more before it is reported: the first
 *     read may have raced the server's write of the same block and seen
 *     an old first half (old LSN, so it was checked) with a new second
 *     half.  If the write has finished by the re-read, the page now shows
 *     the new LSN and is skipped.  A second failure is reported as
 *     corruption (PostgreSQL accepts that a very slow write could still
 *     cause a false report; there is no interlock to wait for it).
 *   - Which files are checked: relation forks under base/, global/ and
 *     tablespaces — names of digits with optional _fsm/_vm/_init fork and
 *     .N segment suffix; never pg_control, pg_filenode.map,
 *     pg_internal.init, PG_VERSION or temporary files.
 */
#ifndef CAIRN_PG_CHECKSUM_H
#define CAIRN_PG_CHECKSUM_H

#include <stdint.h>

/* Page size (BLCKSZ) and segment size in pages (RELSEG_SIZE) of a
 * PostgreSQL built with the defaults, the only layout cairn supports. */
#define PG_PAGE_SIZE 8192u
#define PG_SEGMENT_PAGES 131072u

enum pg_page_verdict {
	PAGE_OK,  /* the stored checksum matches */
	PAGE_NEW, /* pd_upper == 0 (includes all-zero pages): no checksum yet */
	PAGE_BAD, /* the stored checksum does not match */
};

/* PostgreSQL's checksum of the PG_PAGE_SIZE bytes at `page` as block
 * `blkno` of its relation fork, computed with pd_checksum taken as zero
 * (whatever the page holds there).  Always 1..65535.  Meaningless for a
 * page that PAGE_NEW describes, as in PostgreSQL. */
uint16_t pg_page_checksum(const uint8_t *page, uint32_t blkno);

/* Verdict on the PG_PAGE_SIZE bytes at `page` as block `blkno`: returns
 * PAGE_OK, PAGE_NEW or PAGE_BAD (never fails).  For PAGE_OK and PAGE_BAD,
 * *expected gets the computed checksum and *found the stored pd_checksum;
 * for PAGE_NEW both get 0.  Either pointer may be NULL.  Does not look at
 * the LSN: the caller skips pages at or after its backup start LSN. */
int pg_page_verify(const uint8_t *page, uint32_t blkno, uint16_t *expected,
		   uint16_t *found);

/* The page's pd_lsn as a 64-bit LSN: (xlogid << 32) | xrecoff, the two
 * native-endian uint32 at bytes 0..7. */
uint64_t pg_page_lsn(const uint8_t *page);

#endif
