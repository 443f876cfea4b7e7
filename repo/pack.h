/*
 * pack.h — packs: sealed blobs back to back, then a sealed directory of the
 * blobs, then a fixed trailer.  A pack can be read and verified without any
 * index (check --read-data, repair).
 *
 *   pack    := "CAIRNPK1" blob* dir trailer
 *   blob    := sealed blob (crypto.h), no framing: lengths live only in dir
 *   dir     := nonce[24] AEAD(enc_key, dirplain, AD = "CAIRNPKD")
 *   dirplain:= u32 count, count × (u8 type, id[32], u64 offset,
 *                                  u32 sealed_len, u32 raw_len)
 *   trailer := u32 dir_len, "CAIRNPKE"
 *
 * The pack's id (and object name packs/<id[0:2]>/<id>) is the unkeyed
 * BLAKE2b-256 of all its bytes.  All integers little-endian.
 *
 * A pack_writer accumulates one pack in memory (bounded by the target
 * size); it is not thread-safe.
 */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "repo/buf.h"
#include "repo/cache.h"
#include "repo/crypto.h"
#include "repo/storage.h"

#define PACK_MAGIC "CAIRNPK1"
#define PACK_DIR_AD "CAIRNPKD"
#define PACK_TRAILER_MAGIC "CAIRNPKE"
#define PACK_HEADER_LEN 8
#define PACK_TRAILER_LEN 12
#define PACK_DIR_ENTRY_LEN (1 + 32 + 8 + 4 + 4)

struct pack_writer {
	struct buf data;
	struct index_entry *ents; /* loc.pack is filled by pack_writer_finish */
	size_t n, cap;
};

void pack_writer_init(struct pack_writer *pw);
void pack_writer_free(struct pack_writer *pw);
/* Drops the contents, keeps the memory. */
void pack_writer_reset(struct pack_writer *pw);
/* Bytes so far (header + blobs). */
static inline size_t pack_writer_size(const struct pack_writer *pw)
{
	return pw->data.len;
}
/* Appends one sealed blob. */
int pack_writer_add(struct pack_writer *pw, uint8_t type,
		    const uint8_t id[32], const void *sealed, size_t sealed_len,
		    uint32_t raw_len, struct cairn_err *err) CAIRN_WUR;
/* Appends the directory and trailer, computes the pack id, and fills
 * loc.pack of every entry.  The pack bytes are then pw->data. */
int pack_writer_finish(struct pack_writer *pw, const struct repo_keys *k,
		       uint8_t pack_id[32], struct cairn_err *err) CAIRN_WUR;

/* The object key of a pack: "packs/ab/<64 hex>" (out: at least 76 bytes). */
void pack_key(char *out, const uint8_t pack_id[32]);

/* Reads the trailer (the last PACK_TRAILER_LEN bytes of a pack of total
 * size `pack_size`) and returns the directory's length. */
int pack_parse_trailer(const uint8_t *tail, uint64_t pack_size,
		       uint32_t *dir_len, struct cairn_err *err) CAIRN_WUR;
/* Opens a sealed directory; entries (malloc'd, caller frees) get
 * loc.pack = pack_id.  Checks every entry lies inside the blob area of a
 * pack of `pack_size` bytes whose directory is `dir_len` bytes. */
int pack_open_dir(const struct repo_keys *k, const uint8_t pack_id[32],
		  const void *dir, size_t dir_len, uint64_t pack_size,
		  struct index_entry **ents, size_t *n,
		  struct cairn_err *err) CAIRN_WUR;
/* The whole pack in memory: checks the magic and trailer and opens the
 * directory (does not open the blobs). */
int pack_read_dir(const struct repo_keys *k, const uint8_t pack_id[32],
		  const uint8_t *pack, size_t n, struct index_entry **ents,
		  size_t *nents, struct cairn_err *err) CAIRN_WUR;

/* A stored pack's directory, read from its end with two ranged reads (the
 * trailer, then the directory) of a pack of `pack_size` bytes: for prune
 * and repair, which need the list of blobs but none of them.
 * CAIRN_ECORRUPT when the trailer or directory is damaged. */
int pack_fetch_dir(struct storage *st, const struct repo_keys *k, const uint8_t pack_id[32],
		   uint64_t pack_size, struct index_entry **ents, size_t *nents,
		   struct cairn_err *err) CAIRN_WUR;

#endif
