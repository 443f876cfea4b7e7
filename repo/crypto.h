/*
 * crypto.h — every use of cryptography in cairn, through libsodium only.
 *
 * Keys: one random 32-byte master key per repository.  Subkeys are derived
 * from it with crypto_kdf (BLAKE2b), context "cairn_v1":
 *   subkey 1: blob-id key (keyed BLAKE2b-256 of plaintexts)
 *   subkey 2: encryption key (XChaCha20-Poly1305-IETF)
 *   subkey 3: chunker gear key (the gear table is the first 2048 bytes of
 *             the XChaCha20 keystream under it, zero nonce, as 256
 *             little-endian u64)
 *   subkey 4: config key (keyed BLAKE2b-256 MAC that ends `config`)
 *
 * Blobs (chunks and tree nodes) are sealed as
 *     nonce[24] || AEAD(flag[1] || body, AD = type[1] || id[32])
 * where flag 0 means body is the plaintext and flag 1 means body is one zstd
 * frame of it.  Opening checks the tag, decompresses, and checks that the
 * keyed hash of the result equals the id asked for: a blob can be neither
 * altered nor swapped for another.
 *
 * Other sealed objects (index, snapshot, ...) are
 *     magic[8] || nonce[24] || AEAD(flag[1] || body, AD = magic[8])
 * and are named by the unkeyed BLAKE2b-256 of all their bytes.
 *
 * Thread safety: `struct repo_keys` is read-only after derivation and may
 * be shared; a `struct sealer` (zstd contexts) belongs to one thread.
 * Key material is locked in memory where possible and wiped on free.
 */
#ifndef CAIRN_CRYPTO_H
#define CAIRN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "repo/buf.h"
#include "repo/error.h"

#define CAIRN_KEY_LEN 32
#define CAIRN_NONCE_LEN 24
#define CAIRN_TAG_LEN 16
#define CAIRN_MAGIC_LEN 8
/* Bytes a sealed blob adds to its (possibly compressed) body. */
#define CAIRN_SEAL_OVERHEAD (CAIRN_NONCE_LEN + 1 + CAIRN_TAG_LEN)
/* Largest plaintext of any sealed object or blob we will open. */
#define CAIRN_MAX_OBJECT (1u << 30)

#define CAIRN_WUR __attribute__((warn_unused_result))

struct repo_keys {
	uint8_t master[CAIRN_KEY_LEN];
	uint8_t id_key[CAIRN_KEY_LEN];
	uint8_t enc_key[CAIRN_KEY_LEN];
	uint8_t cfg_key[CAIRN_KEY_LEN];
	uint64_t gear[256];
};

/* sodium_init(); CAIRN_ECRYPTO if it fails.  Safe to call many times. */
int crypto_setup(struct cairn_err *err) CAIRN_WUR;

/* Allocates keys in locked memory (sodium_malloc); derives the subkeys
 * from `master`.  Free with keys_free (wipes).  NULL on out of memory. */
struct repo_keys *keys_new(const uint8_t master[CAIRN_KEY_LEN]);
void keys_free(struct repo_keys *k);

/* A blob's id: keyed BLAKE2b-256 (id_key) over its type byte then its
 * plaintext, so that a data blob and a tree blob never share an id. */
void blob_id(uint8_t out[32], const struct repo_keys *k, uint8_t type,
	     const void *p, size_t n);
/* Unkeyed BLAKE2b-256: names of packs and sealed objects. */
void plain_hash(uint8_t out[32], const void *p, size_t n);

/* zstd contexts of one thread, and the compression level. */
struct sealer;
struct sealer *sealer_new(int zstd_level);
void sealer_free(struct sealer *s);

/* Appends the sealed form of plaintext (p, n) to `out`.  Compresses when
 * that saves space. */
int blob_seal(struct sealer *s, const struct repo_keys *k, uint8_t type,
	      const uint8_t id[32], const void *p, size_t n, struct buf *out,
	      struct cairn_err *err) CAIRN_WUR;
/* Opens a sealed blob into `out` (replacing its contents) and verifies that
 * it is the blob `id` of `type`; `raw_len` is the expected plaintext length
 * (0: unknown).  CAIRN_ECORRUPT on any mismatch, with `out` emptied. */
int blob_open(struct sealer *s, const struct repo_keys *k, uint8_t type,
	      const uint8_t id[32], const void *sealed, size_t n,
	      uint32_t raw_len, struct buf *out, struct cairn_err *err) CAIRN_WUR;

/* Sealed objects: see above.  obj_seal replaces `out`'s contents and sets
 * `name` (64 hex digits + NUL) to the object's name. */
int obj_seal(struct sealer *s, const struct repo_keys *k,
	     const char magic[CAIRN_MAGIC_LEN], const void *p, size_t n,
	     struct buf *out, char name[65], struct cairn_err *err) CAIRN_WUR;
/* Opens a sealed object (whose object name is `name`, or NULL to skip the
 * name check) into `out`.  CAIRN_ECORRUPT naming `what` on any mismatch. */
int obj_open(struct sealer *s, const struct repo_keys *k,
	     const char magic[CAIRN_MAGIC_LEN], const char *name,
	     const void *sealed, size_t n, struct buf *out, const char *what,
	     struct cairn_err *err) CAIRN_WUR;

/* AEAD with an explicit key over (p, n) with associated data: appends
 * nonce || ciphertext || tag to out.  Used by the pack directory. */
int aead_seal(const uint8_t key[32], const void *ad, size_t adlen,
	      const void *p, size_t n, struct buf *out) CAIRN_WUR;
/* Opens nonce||ct||tag into out (replaced).  -1 (out emptied) on failure. */
int aead_open(const uint8_t key[32], const void *ad, size_t adlen,
	      const void *sealed, size_t n, struct buf *out) CAIRN_WUR;

/* ---- key files (keys/<name>) ------------------------------------------ */

struct kdf_params {
	uint64_t opslimit;
	uint64_t memlimit;
};
/* Argon2id cost used by init and key add: about 0.1-0.3 s and 64 MiB. */
#define CAIRN_KDF_OPS 3
#define CAIRN_KDF_MEM (64u * 1024 * 1024)

struct key_info {
	char name[65];      /* object name of the key file */
	uint64_t created;   /* unix seconds */
	char host[256];
	char user[256];
	struct kdf_params kdf;
};

/* Builds a key file sealing `master` under `pass` into `out`; fills info. */
int keyfile_make(const uint8_t master[CAIRN_KEY_LEN], const char *pass,
		 size_t pass_len, const struct kdf_params *kdf,
		 const char *host, const char *user, struct buf *out,
		 struct key_info *info, struct cairn_err *err) CAIRN_WUR;
/* Parses the plaintext header of a key file (no passphrase needed). */
int keyfile_info(const void *p, size_t n, struct key_info *info,
		 struct cairn_err *err) CAIRN_WUR;
/* Opens a key file with `pass`; CAIRN_EPASS if it does not open it. */
int keyfile_open(const void *p, size_t n, const char *pass, size_t pass_len,
		 uint8_t master[CAIRN_KEY_LEN], struct cairn_err *err) CAIRN_WUR;

/* ---- host key files ---------------------------------------------------- */

/* A host key file holds a repository's master key unsealed, for hosts that
 * must open the repository often and unattended (archive-push runs once per
 * WAL segment and cannot pay Argon2id each time).  It is as secret as the
 * passphrase: mode 0600, owned by the service user.
 *   "CAIRNHK1" || repo_id[32] || master[32] || check[32]
 * check = BLAKE2b-256 (unkeyed) of the 72 bytes before it. */
#define HOSTKEY_LEN 104
void hostkey_encode(uint8_t out[HOSTKEY_LEN], const uint8_t repo_id[32],
		    const uint8_t master[CAIRN_KEY_LEN]);
int hostkey_decode(const uint8_t *p, size_t n, uint8_t repo_id[32],
		   uint8_t master[CAIRN_KEY_LEN], struct cairn_err *err) CAIRN_WUR;

#endif
