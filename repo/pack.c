/* pack.c — writing and parsing packs; see pack.h for the layout. */
#include "repo/pack.h"

#include <stdlib.h>
#include <string.h>

void pack_writer_init(struct pack_writer *pw)
{
	memset(pw, 0, sizeof(*pw));
}

void pack_writer_free(struct pack_writer *pw)
{
	buf_free(&pw->data);
	free(pw->ents);
	memset(pw, 0, sizeof(*pw));
}

void pack_writer_reset(struct pack_writer *pw)
{
	buf_reset(&pw->data);
	pw->n = 0;
}

int pack_writer_add(struct pack_writer *pw, uint8_t type, const uint8_t id[32],
		    const void *sealed, size_t sealed_len, uint32_t raw_len,
		    struct cairn_err *err)
{
	if (sealed_len > UINT32_MAX)
		return cairn_err_set(err, CAIRN_EINTERNAL, "blob too large for a pack");
	if (pw->data.len == 0 && buf_append(&pw->data, PACK_MAGIC, PACK_HEADER_LEN))
		goto nomem;
	if (pw->n == pw->cap) {
		size_t ncap = pw->cap ? pw->cap * 2 : 256;
		struct index_entry *e = realloc(pw->ents, ncap * sizeof(*e));
		if (!e)
			goto nomem;
		pw->ents = e;
		pw->cap = ncap;
	}
	struct index_entry *e = &pw->ents[pw->n];
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, 32);
	e->loc.offset = pw->data.len;
	e->loc.sealed_len = (uint32_t)sealed_len;
	e->loc.raw_len = raw_len;
	e->loc.type = type;
	if (buf_append(&pw->data, sealed, sealed_len))
		goto nomem;
	pw->n++;
	return 0;
nomem:
	return cairn_err_set(err, CAIRN_ENOMEM, "out of memory adding a blob to a pack");
}

int pack_writer_finish(struct pack_writer *pw, const struct repo_keys *k,
		       uint8_t pack_id[32], struct cairn_err *err)
{
	struct buf dir = BUF_INIT;
	int rc = buf_put_u32(&dir, (uint32_t)pw->n);
	for (size_t i = 0; i < pw->n && !rc; i++) {
		const struct index_entry *e = &pw->ents[i];
		rc = buf_put_u8(&dir, e->loc.type);
		rc = rc ? rc : buf_append(&dir, e->id, 32);
		rc = rc ? rc : buf_put_u64(&dir, e->loc.offset);
		rc = rc ? rc : buf_put_u32(&dir, e->loc.sealed_len);
		rc = rc ? rc : buf_put_u32(&dir, e->loc.raw_len);
	}
	size_t before = pw->data.len;
	if (!rc && before == 0)
		rc = buf_append(&pw->data, PACK_MAGIC, PACK_HEADER_LEN);
	before = pw->data.len;
	rc = rc ? rc : aead_seal(k->enc_key, PACK_DIR_AD, 8, dir.data, dir.len, &pw->data);
	buf_free(&dir);
	if (!rc) {
		uint32_t dir_len = (uint32_t)(pw->data.len - before);
		rc = buf_put_u32(&pw->data, dir_len);
		rc = rc ? rc : buf_append(&pw->data, PACK_TRAILER_MAGIC, 8);
	}
	if (rc)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory finishing a pack");
	plain_hash(pack_id, pw->data.data, pw->data.len);
	for (size_t i = 0; i < pw->n; i++)
		memcpy(pw->ents[i].loc.pack, pack_id, 32);
	return 0;
}

void pack_key(char *out, const uint8_t pack_id[32])
{
	char hex[65];
	hex_encode(hex, pack_id, 32);
	memcpy(out, "packs/", 6);
	out[6] = hex[0];
	out[7] = hex[1];
	out[8] = '/';
	memcpy(out + 9, hex, 65);
}

int pack_parse_trailer(const uint8_t *tail, uint64_t pack_size, uint32_t *dir_len,
		       struct cairn_err *err)
{
	if (pack_size < PACK_HEADER_LEN + PACK_TRAILER_LEN ||
	    memcmp(tail + 4, PACK_TRAILER_MAGIC, 8) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "pack trailer is missing (truncated pack?)");
	*dir_len = le_get32(tail);
	if ((uint64_t)*dir_len + PACK_HEADER_LEN + PACK_TRAILER_LEN > pack_size ||
	    *dir_len < CAIRN_NONCE_LEN + CAIRN_TAG_LEN + 4)
		return cairn_err_set(err, CAIRN_ECORRUPT, "pack trailer names an impossible directory length");
	return 0;
}

int pack_open_dir(const struct repo_keys *k, const uint8_t pack_id[32],
		  const void *dir, size_t dir_len, uint64_t pack_size,
		  struct index_entry **ents, size_t *n, struct cairn_err *err)
{
	struct buf plain = BUF_INIT;
	struct index_entry *out = NULL;
	int rc = 0;
	*ents = NULL;
	*n = 0;
	if (aead_open(k->enc_key, PACK_DIR_AD, 8, dir, dir_len, &plain)) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "pack directory fails authentication");
		goto out;
	}
	struct rd r = rd_make(plain.data, plain.len);
	uint32_t count = rd_u32(&r);
	if (r.bad || (uint64_t)count * PACK_DIR_ENTRY_LEN != rd_left(&r)) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "pack directory is malformed");
		goto out;
	}
	out = calloc(count ? count : 1, sizeof(*out));
	if (!out) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory reading a pack directory");
		goto out;
	}
	uint64_t blob_end = pack_size - PACK_TRAILER_LEN - dir_len;
	for (uint32_t i = 0; i < count; i++) {
		struct index_entry *e = &out[i];
		e->loc.type = rd_u8(&r);
		rd_copy(&r, e->id, 32);
		e->loc.offset = rd_u64(&r);
		e->loc.sealed_len = rd_u32(&r);
		e->loc.raw_len = rd_u32(&r);
		memcpy(e->loc.pack, pack_id, 32);
		if (e->loc.offset < PACK_HEADER_LEN || e->loc.offset > blob_end ||
		    e->loc.sealed_len > blob_end - e->loc.offset ||
		    (e->loc.type != BLOB_DATA && e->loc.type != BLOB_TREE)) {
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "pack directory entry %u lies outside the pack", i);
			goto out;
		}
	}
	*ents = out;
	*n = count;
	out = NULL;
out:
	free(out);
	buf_free(&plain);
	return rc;
}

int pack_read_dir(const struct repo_keys *k, const uint8_t pack_id[32],
		  const uint8_t *pack, size_t n, struct index_entry **ents,
		  size_t *nents, struct cairn_err *err)
{
	uint32_t dir_len = 0;
	if (n < PACK_HEADER_LEN + PACK_TRAILER_LEN || memcmp(pack, PACK_MAGIC, 8) != 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "pack header is missing or wrong");
	int rc = pack_parse_trailer(pack + n - PACK_TRAILER_LEN, n, &dir_len, err);
	if (rc)
		return rc;
	return pack_open_dir(k, pack_id, pack + n - PACK_TRAILER_LEN - dir_len, dir_len,
			     n, ents, nents, err);
}

int pack_fetch_dir(struct storage *st, const struct repo_keys *k, const uint8_t pack_id[32],
		   uint64_t pack_size, struct index_entry **ents, size_t *nents,
		   struct cairn_err *err)
{
	struct buf b = BUF_INIT;
	char key[80];
	uint32_t dir_len = 0;
	*ents = NULL;
	*nents = 0;
	pack_key(key, pack_id);
	if (pack_size < PACK_HEADER_LEN + PACK_TRAILER_LEN)
		return cairn_err_set(err, CAIRN_ECORRUPT, "%s is too short to be a pack", key);
	int rc = storage_get(st, key, pack_size - PACK_TRAILER_LEN, PACK_TRAILER_LEN, &b, err);
	rc = rc ? rc : pack_parse_trailer(b.data, pack_size, &dir_len, err);
	rc = rc ? rc : storage_get(st, key, pack_size - PACK_TRAILER_LEN - dir_len, dir_len, &b, err);
	rc = rc ? rc : pack_open_dir(k, pack_id, b.data, b.len, pack_size, ents, nents, err);
	if (rc == CAIRN_ECORRUPT)
		cairn_err_prefix(err, "%s", key);
	buf_free(&b);
	return rc;
}
