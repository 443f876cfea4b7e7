/*
 * crypto.c — libsodium and zstd behind the small API of crypto.h.
 *
 * Nothing here prints.  Every failure to open is CAIRN_ECORRUPT and leaves
 * the output buffer empty, so that no unverified byte is ever handed on.
 */
#include "repo/crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define KDF_CONTEXT "cairn_v1"
#define FLAG_RAW 0
#define FLAG_ZSTD 1

int crypto_setup(struct cairn_err *err)
{
	if (sodium_init() < 0)
		return cairn_err_set(err, CAIRN_ECRYPTO, "libsodium failed to initialise");
	return 0;
}

struct repo_keys *keys_new(const uint8_t master[CAIRN_KEY_LEN])
{
	struct repo_keys *k = sodium_malloc(sizeof(*k));
	if (!k)
		return NULL;
	memcpy(k->master, master, CAIRN_KEY_LEN);
	crypto_kdf_derive_from_key(k->id_key, sizeof(k->id_key), 1, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(k->enc_key, sizeof(k->enc_key), 2, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(k->cfg_key, sizeof(k->cfg_key), 4, KDF_CONTEXT, master);
	uint8_t gear_key[32], zero_nonce[crypto_stream_xchacha20_NONCEBYTES] = {0};
	uint8_t stream[256 * 8];
	crypto_kdf_derive_from_key(gear_key, sizeof(gear_key), 3, KDF_CONTEXT, master);
	crypto_stream_xchacha20(stream, sizeof(stream), zero_nonce, gear_key);
	for (int i = 0; i < 256; i++)
		k->gear[i] = le_get64(stream + 8 * i);
	sodium_memzero(gear_key, sizeof(gear_key));
	sodium_memzero(stream, sizeof(stream));
	return k;
}

void keys_free(struct repo_keys *k)
{
	if (k)
		sodium_free(k); /* sodium_free wipes the region */
}

void blob_id(uint8_t out[32], const struct repo_keys *k, uint8_t type, const void *p,
	     size_t n)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, k->id_key, sizeof(k->id_key), 32);
	crypto_generichash_update(&st, &type, 1);
	crypto_generichash_update(&st, p, n);
	crypto_generichash_final(&st, out, 32);
}

void plain_hash(uint8_t out[32], const void *p, size_t n)
{
	crypto_generichash(out, 32, p, n, NULL, 0);
}

struct sealer {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
	struct buf tmp; /* flag || body before sealing, or after opening */
};

struct sealer *sealer_new(int zstd_level)
{
	struct sealer *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cctx = ZSTD_createCCtx();
	s->dctx = ZSTD_createDCtx();
	s->level = zstd_level;
	if (!s->cctx || !s->dctx) {
		sealer_free(s);
		return NULL;
	}
	return s;
}

void sealer_free(struct sealer *s)
{
	if (!s)
		return;
	ZSTD_freeCCtx(s->cctx);
	ZSTD_freeDCtx(s->dctx);
	buf_free(&s->tmp);
	free(s);
}

/* flag || (zstd frame of p, when smaller; else p) into s->tmp. */
static int pack_body(struct sealer *s, const void *p, size_t n)
{
	size_t bound = ZSTD_compressBound(n);
	buf_reset(&s->tmp);
	if (buf_reserve(&s->tmp, 1 + (bound > n ? bound : n)))
		return CAIRN_ENOMEM;
	size_t z = ZSTD_compressCCtx(s->cctx, s->tmp.data + 1, bound, p, n, s->level);
	if (!ZSTD_isError(z) && z < n) {
		s->tmp.data[0] = FLAG_ZSTD;
		s->tmp.len = 1 + z;
	} else {
		s->tmp.data[0] = FLAG_RAW;
		if (n)
			memcpy(s->tmp.data + 1, p, n);
		s->tmp.len = 1 + n;
	}
	return 0;
}

/* Turns flag || body (in s->tmp) into the plaintext in out. */
static int unpack_body(struct sealer *s, struct buf *out, size_t expect)
{
	buf_reset(out);
	if (s->tmp.len < 1)
		return -1;
	const uint8_t *body = s->tmp.data + 1;
	size_t blen = s->tmp.len - 1;
	if (s->tmp.data[0] == FLAG_RAW)
		return buf_append(out, body, blen) ? -1 : 0;
	if (s->tmp.data[0] != FLAG_ZSTD)
		return -1;
	unsigned long long size = ZSTD_getFrameContentSize(body, blen);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
	    size > CAIRN_MAX_OBJECT || (expect && size != expect))
		return -1;
	if (buf_reserve(out, size ? size : 1))
		return -1;
	size_t got = ZSTD_decompressDCtx(s->dctx, out->data, size, body, blen);
	if (ZSTD_isError(got) || got != size)
		return -1;
	out->len = got;
	return 0;
}

int aead_seal(const uint8_t key[32], const void *ad, size_t adlen,
	      const void *p, size_t n, struct buf *out)
{
	size_t at = out->len;
	if (buf_reserve(out, at + CAIRN_NONCE_LEN + n + CAIRN_TAG_LEN))
		return CAIRN_ENOMEM;
	uint8_t *nonce = out->data + at;
	randombytes_buf(nonce, CAIRN_NONCE_LEN);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		nonce + CAIRN_NONCE_LEN, &clen, p, n, ad, adlen, NULL, nonce, key);
	out->len = at + CAIRN_NONCE_LEN + clen;
	return 0;
}

int aead_open(const uint8_t key[32], const void *ad, size_t adlen,
	      const void *sealed, size_t n, struct buf *out)
{
	buf_reset(out);
	if (n < CAIRN_NONCE_LEN + CAIRN_TAG_LEN)
		return -1;
	const uint8_t *nonce = sealed;
	size_t clen = n - CAIRN_NONCE_LEN;
	if (buf_reserve(out, clen - CAIRN_TAG_LEN + 1))
		return -1;
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    out->data, &mlen, NULL, nonce + CAIRN_NONCE_LEN, clen, ad, adlen,
		    nonce, key) != 0) {
		sodium_memzero(out->data, out->cap);
		return -1;
	}
	out->len = mlen;
	return 0;
}

int blob_seal(struct sealer *s, const struct repo_keys *k, uint8_t type,
	      const uint8_t id[32], const void *p, size_t n, struct buf *out,
	      struct cairn_err *err)
{
	uint8_t ad[33];
	ad[0] = type;
	memcpy(ad + 1, id, 32);
	if (pack_body(s, p, n) || aead_seal(k->enc_key, ad, sizeof(ad), s->tmp.data,
					    s->tmp.len, out))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory sealing a blob");
	return 0;
}

int blob_open(struct sealer *s, const struct repo_keys *k, uint8_t type,
	      const uint8_t id[32], const void *sealed, size_t n,
	      uint32_t raw_len, struct buf *out, struct cairn_err *err)
{
	uint8_t ad[33], got[32];
	char hex[65];
	ad[0] = type;
	memcpy(ad + 1, id, 32);
	hex_encode(hex, id, 32);
	if (aead_open(k->enc_key, ad, sizeof(ad), sealed, n, &s->tmp)) {
		buf_reset(out);
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "blob %s fails authentication (altered or damaged)", hex);
	}
	if (unpack_body(s, out, raw_len)) {
		buf_reset(out);
		return cairn_err_set(err, CAIRN_ECORRUPT, "blob %s does not decompress", hex);
	}
	blob_id(got, k, type, out->data, out->len);
	if (sodium_memcmp(got, id, 32) != 0 || (raw_len && out->len != raw_len)) {
		buf_reset(out);
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "blob %s does not hash to its id", hex);
	}
	return 0;
}

int obj_seal(struct sealer *s, const struct repo_keys *k,
	     const char magic[CAIRN_MAGIC_LEN], const void *p, size_t n,
	     struct buf *out, char name[65], struct cairn_err *err)
{
	uint8_t h[32];
	buf_reset(out);
	if (buf_append(out, magic, CAIRN_MAGIC_LEN) || pack_body(s, p, n) ||
	    aead_seal(k->enc_key, magic, CAIRN_MAGIC_LEN, s->tmp.data, s->tmp.len, out))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory sealing an object");
	plain_hash(h, out->data, out->len);
	hex_encode(name, h, 32);
	return 0;
}

int obj_open(struct sealer *s, const struct repo_keys *k,
	     const char magic[CAIRN_MAGIC_LEN], const char *name,
	     const void *sealed, size_t n, struct buf *out, const char *what,
	     struct cairn_err *err)
{
	buf_reset(out);
	if (name) {
		uint8_t h[32];
		char hex[65];
		plain_hash(h, sealed, n);
		hex_encode(hex, h, 32);
		if (strcmp(hex, name) != 0)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "%s does not match its name (damaged)", what);
	}
	if (n < CAIRN_MAGIC_LEN || memcmp(sealed, magic, CAIRN_MAGIC_LEN) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "%s has a wrong magic (not a %.8s object)",
				     what, magic);
	if (aead_open(k->enc_key, magic, CAIRN_MAGIC_LEN,
		      (const uint8_t *)sealed + CAIRN_MAGIC_LEN, n - CAIRN_MAGIC_LEN, &s->tmp))
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "%s fails authentication (altered, damaged, or sealed with another key)",
				     what);
	if (unpack_body(s, out, 0)) {
		buf_reset(out);
		return cairn_err_set(err, CAIRN_ECORRUPT, "%s does not decompress", what);
	}
	return 0;
}

/* ---- key files ---------------------------------------------------------- */

#define KEY_MAGIC "CAIRNKEY"
#define KEY_VERSION 1
#define KEY_ALG_ARGON2ID13 2
#define KEY_SALT_LEN 16

static int key_header(struct buf *out, const struct kdf_params *kdf,
		      const uint8_t salt[KEY_SALT_LEN], uint64_t created,
		      const char *host, const char *user)
{
	size_t hl = strlen(host), ul = strlen(user);
	if (hl > 255) hl = 255;
	if (ul > 255) ul = 255;
	int rc = buf_append(out, KEY_MAGIC, 8);
	rc = rc ? rc : buf_put_u32(out, KEY_VERSION);
	rc = rc ? rc : buf_put_u32(out, KEY_ALG_ARGON2ID13);
	rc = rc ? rc : buf_put_u64(out, kdf->opslimit);
	rc = rc ? rc : buf_put_u64(out, kdf->memlimit);
	rc = rc ? rc : buf_append(out, salt, KEY_SALT_LEN);
	rc = rc ? rc : buf_put_u64(out, created);
	rc = rc ? rc : buf_put_str16(out, host, hl);
	rc = rc ? rc : buf_put_str16(out, user, ul);
	return rc;
}

static int derive_pass_key(uint8_t key[32], const char *pass, size_t pass_len,
			   const uint8_t salt[KEY_SALT_LEN],
			   const struct kdf_params *kdf)
{
	return crypto_pwhash(key, 32, pass, pass_len, salt, kdf->opslimit,
			     (size_t)kdf->memlimit, crypto_pwhash_ALG_ARGON2ID13);
}

int keyfile_make(const uint8_t master[CAIRN_KEY_LEN], const char *pass,
		 size_t pass_len, const struct kdf_params *kdf,
		 const char *host, const char *user, struct buf *out,
		 struct key_info *info, struct cairn_err *err)
{
	uint8_t salt[KEY_SALT_LEN], key[32], h[32];
	randombytes_buf(salt, sizeof(salt));
	buf_reset(out);
	if (key_header(out, kdf, salt, (uint64_t)time(NULL), host, user))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory building a key file");
	if (derive_pass_key(key, pass, pass_len, salt, kdf) != 0)
		return cairn_err_set(err, CAIRN_ENOMEM,
				     "Argon2id needs %llu MiB of memory and could not get it",
				     (unsigned long long)(kdf->memlimit >> 20));
	/* The header is the associated data: altering it breaks the key. */
	struct buf hdr = BUF_INIT;
	int rc = buf_append(&hdr, out->data, out->len);
	if (!rc)
		rc = aead_seal(key, hdr.data, hdr.len, master, CAIRN_KEY_LEN, out);
	buf_free(&hdr);
	sodium_memzero(key, sizeof(key));
	if (rc)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory building a key file");
	if (info) {
		rc = keyfile_info(out->data, out->len, info, err);
		if (rc)
			return rc;
		plain_hash(h, out->data, out->len);
		hex_encode(info->name, h, 32);
	}
	return 0;
}

/* Parses the header; *hdr_len is where the sealed master key starts. */
static int parse_key_header(const void *p, size_t n, struct key_info *info,
			    uint8_t salt[KEY_SALT_LEN], size_t *hdr_len,
			    struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	const uint8_t *magic = rd_bytes(&r, 8);
	if (!magic || memcmp(magic, KEY_MAGIC, 8) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "not a cairn key file (bad magic)");
	uint32_t version = rd_u32(&r), alg = rd_u32(&r);
	if (!r.bad && version != KEY_VERSION)
		return cairn_err_set(err, CAIRN_EVERSION,
				     "key file version %u is not supported by this cairn", version);
	if (!r.bad && alg != KEY_ALG_ARGON2ID13)
		return cairn_err_set(err, CAIRN_EVERSION, "key file KDF %u is not supported", alg);
	memset(info, 0, sizeof(*info));
	info->kdf.opslimit = rd_u64(&r);
	info->kdf.memlimit = rd_u64(&r);
	rd_copy(&r, salt, KEY_SALT_LEN);
	info->created = rd_u64(&r);
	uint16_t hl = rd_u16(&r);
	const uint8_t *hp = rd_bytes(&r, hl);
	uint16_t ul = rd_u16(&r);
	const uint8_t *up = rd_bytes(&r, ul);
	if (r.bad || rd_left(&r) != CAIRN_NONCE_LEN + CAIRN_KEY_LEN + CAIRN_TAG_LEN)
		return cairn_err_set(err, CAIRN_ECORRUPT, "key file is truncated or malformed");
	if (info->kdf.opslimit < crypto_pwhash_OPSLIMIT_MIN ||
	    info->kdf.opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    info->kdf.memlimit < crypto_pwhash_MEMLIMIT_MIN ||
	    info->kdf.memlimit > (4ull << 30))
		return cairn_err_set(err, CAIRN_ECORRUPT, "key file has out-of-range KDF parameters");
	memcpy(info->host, hp, hl > 255 ? 255 : hl);
	memcpy(info->user, up, ul > 255 ? 255 : ul);
	*hdr_len = r.pos;
	return 0;
}

int keyfile_info(const void *p, size_t n, struct key_info *info,
		 struct cairn_err *err)
{
	uint8_t salt[KEY_SALT_LEN], h[32];
	size_t hdr_len;
	int rc = parse_key_header(p, n, info, salt, &hdr_len, err);
	if (rc)
		return rc;
	plain_hash(h, p, n);
	hex_encode(info->name, h, 32);
	return 0;
}

int keyfile_open(const void *p, size_t n, const char *pass, size_t pass_len,
		 uint8_t master[CAIRN_KEY_LEN], struct cairn_err *err)
{
	struct key_info info;
	uint8_t salt[KEY_SALT_LEN], key[32];
	size_t hdr_len;
	int rc = parse_key_header(p, n, &info, salt, &hdr_len, err);
	if (rc)
		return rc;
	if (derive_pass_key(key, pass, pass_len, salt, &info.kdf) != 0)
		return cairn_err_set(err, CAIRN_ENOMEM,
				     "Argon2id needs %llu MiB of memory and could not get it",
				     (unsigned long long)(info.kdf.memlimit >> 20));
	struct buf out = BUF_INIT;
	rc = aead_open(key, p, hdr_len, (const uint8_t *)p + hdr_len, n - hdr_len, &out);
	sodium_memzero(key, sizeof(key));
	if (rc || out.len != CAIRN_KEY_LEN) {
		buf_free_secret(&out);
		return cairn_err_set(err, CAIRN_EPASS, "wrong passphrase");
	}
	memcpy(master, out.data, CAIRN_KEY_LEN);
	buf_free_secret(&out);
	return 0;
}

/* ---- host key files ----------------------------------------------------- */

#define HOSTKEY_MAGIC "CAIRNHK1"

void hostkey_encode(uint8_t out[HOSTKEY_LEN], const uint8_t repo_id[32],
		    const uint8_t master[CAIRN_KEY_LEN])
{
	memcpy(out, HOSTKEY_MAGIC, 8);
	memcpy(out + 8, repo_id, 32);
	memcpy(out + 40, master, 32);
	plain_hash(out + 72, out, 72);
}

int hostkey_decode(const uint8_t *p, size_t n, uint8_t repo_id[32],
		   uint8_t master[CAIRN_KEY_LEN], struct cairn_err *err)
{
	uint8_t check[32];
	if (n != HOSTKEY_LEN || memcmp(p, HOSTKEY_MAGIC, 8) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "not a cairn host key file");
	plain_hash(check, p, 72);
	if (sodium_memcmp(check, p + 72, 32) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "host key file is damaged");
	memcpy(repo_id, p + 8, 32);
	memcpy(master, p + 40, 32);
	return 0;
}
