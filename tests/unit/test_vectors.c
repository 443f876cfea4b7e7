/*
 * test_vectors.c — the test vectors of FORMAT.md ("Test vectors"), checked
 * against the code.  Every constant below appears, byte for byte, in
 * FORMAT.md: a change here is a change of the repository format and needs
 * a new format version and a change-log entry there.
 *
 * Sealing uses random nonces, so the sealed vectors (blobs, pack, snapshot
 * object, key file, WAL entry) were made once and are frozen here: the test
 * checks that they still open to the expected plaintexts.  The unsealed
 * encodings (keys, ids, gear table, config with its MAC, varints, index
 * payload, tree, snapshot payloads, host key file, chunker masks and cut
 * points) are recomputed and compared; the snapshot payloads, extensible
 * records, are also decoded.  The WAL entry vector is checked against a
 * real push into a temporary repository made with the vector config and
 * master key (only pushed_ns, the push's clock, differs).
 */
#include "chunker/fastcdc.h"
#include "repo/buf.h"
#include "repo/crypto.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/storage.h"
#include "repo/tree.h"
#include "repo/wal.h"
#include "tests/unit/t.h"

#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the vectors (FORMAT.md, "Test vectors") ---- */

#define V_ID_KEY "203fc19d1c7cdf78ac910ed592ae36bc9cbe3e937f6e6cc69b96984e336ab310"
#define V_ENC_KEY "54d289b10609fe981de70b05bd6bc8dc78275595246fbaf7b46c586dfdfb9324"
#define V_CFG_KEY "a49c5dd76aeb740a88e957ee3775fdb18a4e023f1c2392ae9a5ce6a1820d0fd8"
#define V_HELLO_ID "c8fc78dfa39661b4ff081ecb8bd9321c989e2f27b0f2a1b83ae751c5e09d52ed"
#define V_HELLO_PLAIN_HASH "c71b05fd1d1c7bf7e928ff18e58db5193e9316416cc26ba9cc9094da80d7011e"
#define V_EMPTY_TREE_AS_TREE_ID "4b2c8f7c1c6fb61cee609b56522f56e255ba77329f612f89a609360bce65c4a8"
#define V_EMPTY_TREE_AS_DATA_ID "44ba620551afd495e88f00a1c1c578041347f82692f60e66ad1edcf8410e46dc"
#define V_CONFIG \
	"434149524e43464701000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3" \
	"a4a5a6a7a8a9aaabacadaeaf0040000000000100000004000000000100000000" \
	"121265b9d1440f152646f6f0f448054b189d0d891b126f24bf6f46c07bb1bd11"
#define V_SEALED_HELLO \
	"66b62cbb8d139ce256396ed47913aef6bd2e53dc48977371b6df1dac356cb0c9" \
	"501ca4ded05329c0ce22e294ebf895c6e5cdbfa88e"
#define V_CAIRN_ID "524a0199369905a6f333e871bd9eaa384b59cf66eee43fde8952dcfa80b46490"
#define V_SEALED_CAIRN \
	"761c536a385af38d3b407f24ffed3c5e1fd967c470f6edd5b8e17cd7d1238932" \
	"e53bff46f8c200d16fee5e060a4780922a6be5a3f5c74989a3ad761ce98f0793"
#define V_PACK \
	"434149524e504b3166b62cbb8d139ce256396ed47913aef6bd2e53dc48977371" \
	"b6df1dac356cb0c9501ca4ded05329c0ce22e294ebf895c6e5cdbfa88e8d18d5" \
	"74635c753d1b50ee46c226f186c4326fc78b2fa01720e8528fb4d27f0009d769" \
	"336b05caab4575cc183e65f4b6733bb5eeffbd939b4ff9388dc7cb5d3dcda63c" \
	"a8757f2f17eeab3c7f4489554de1a9f065eb978aaed4813f3b1a5d0000004341" \
	"49524e504b45"
#define V_PACK_ID "24782aef7d5c0b8ca0a7ba296846947a8337bb354e2bf70cc2abe93b1dc595a2"
#define V_INDEX \
	"0124782aef7d5c0b8ca0a7ba296846947a8337bb354e2bf70cc2abe93b1dc595" \
	"a20101c8fc78dfa39661b4ff081ecb8bd9321c989e2f27b0f2a1b83ae751c5e0" \
	"9d52ed08350c"
#define V_TREE \
	"01010100090068656c6c6f2e747874a4010000e8030000e803000015cd853dfe" \
	"9c97170c000000000000002a0000000000000001c8fc78dfa39661b4ff081ecb" \
	"8bd9321c989e2f27b0f2a1b83ae751c5e09d52ed0c0a000108b1680871fe9c97" \
	"17"
#define V_LIST "c101c8fc78dfa39661b4ff081ecb8bd9321c989e2f27b0f2a1b83ae751c5e09d52ed0c"
#define V_LIST_ID "be15ccdce55e648448474e5b6955cb76fdcdb2e21f042df6d7c2ab3d4ddf36a3"
#define V_TREE2 \
	"02010100090068656c6c6f2e747874a4010000e8030000e803000015cd853dfe" \
	"9c97170c000000000000002a0000000000000001be15ccdce55e648448474e5b" \
	"6955cb76fdcdb2e21f042df6d7c2ab3d4ddf36a3010100c8fc78dfa39661b4ff" \
	"081ecb8bd9321c989e2f27b0f2a1b83ae751c5e09d52ed0c0a000108b1680871" \
	"fe9c9717"
#define V_TREE_ID "691acda05377a431ae9869545c5551ab478710b8c9fc22c36560c30757081bbb"
#define V_SNAP_PAYLOAD \
	"010020000000691acda05377a431ae9869545c5551ab478710b8c9fc22c36560" \
	"c30757081bbb02000800000000002a36fe9c97170c000800000000cac471fe9c" \
	"9717030003000000646231040008000000706f73746772657309000b00000063" \
	"6169726e20302e312e3005000a0000002f68656c6c6f2e747874080048000000" \
	"0c00000000000000000000000000000000000000000000000100000000000000" \
	"0000000000000000010000000000000000000000000000000000000000000000" \
	"00000000000000000a000400000000000000"
#define V_SNAP_SEALED \
	"434149524e534e312f734b0e42af458b3803a0ebcd7ed9e2c3181ac8a0f77107" \
	"a00871708523bc6abfe7e43cfe7b720e39654c0cf5d1fe7f8d793314b6191cca" \
	"298dd8e95ca273e0738d6a089d04c2b34dacf69b60a5cda762c822ed2a625d15" \
	"74a07fb6a70329f9bd7d578d6d23743c0f0a280f2b2205687f4909d81577f255" \
	"589f531567bffa1c0655769c78bf76853a2660e0cb91bcb2ca38efe0703770b3" \
	"5095ec2495caea027e1a99f78b751ace4669f6fca6b5abba198171b2cfa004b3" \
	"4b94ba3156fd71e70ffb80"
#define V_PG_SNAP_PAYLOAD \
	"010020000000691acda05377a431ae9869545c5551ab478710b8c9fc22c36560" \
	"c30757081bbb02000800000000e8a07e159d97170c000800000000b23bba159d" \
	"9717030003000000646231040008000000706f73746772657309000b00000063" \
	"6169726e20302e312e3005001b0000002f7661722f6c69622f706f7374677265" \
	"73716c2f31362f6d61696e07002000000070575d664865699c37a8f706cd40d7" \
	"b84bb40afe730176d093c3b8d4e2973a7e0800480000000c0000000000000000" \
	"0000000000000000000000000000000100000000000000000000000000000001" \
	"00000000000000000000000000000000000000000000000c000000000000000a" \
	"0004000000040000001400040000006d61696e150008000000c0bae4e8273253" \
	"6516000400000004710200170004000000010000001800080000002800000300" \
	"00000019000800000038010003000000001a0018000000303030303030303130" \
	"3030303030303030303030303030331b00180000003030303030303031303030" \
	"303030303030303030303030331c0004000000000000011e0004000000000000" \
	"001d000e0000003136333834092f7372762f747331"
#define V_KEYFILE \
	"434149524e4b4559010000000200000001000000000000000020000000000000" \
	"230ccffe2b70a35215231ad75c9b86fecd3a026b0000000001006801007592c4" \
	"f87ac2fd254ccf573af5711ca4769297ff93ce0555ab87d3a1b213ec5e16fbd2" \
	"8090d071513e83060b3b41db183a50c56b9be1270d9ab8e59aa4c7ccdc1b55f9" \
	"7fabfd0afd10"
#define V_SNAP_NAME "70575d664865699c37a8f706cd40d7b84bb40afe730176d093c3b8d4e2973a7e"
#define V_KEYFILE_NAME "7bc047ae62de8fda663aebca9003d5e3ce0e4c1522322e733b99de2b4f4cec0c"
#define V_HOSTKEY \
	"434149524e484b31a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7" \
	"a8a9aaabacadaeaf000102030405060708090a0b0c0d0e0f1011121314151617" \
	"18191a1b1c1d1e1ff6f359a37fab32ae5b28b90b71a552eafc3abf6116dd7152" \
	"7f03b1fc48dd78c7"
/* WAL entry: cluster "main", file 00000001000000000000000A, content
 * "hello world\n", pushed_ns 1700000200000000000 (bytes 72..79). */
#define V_WAL_KEY "wal/main/00000001000000000000000a"
#define V_WAL_HASH "3e2a6469d3a75c05dfcaaee3d0a6fa5c0c84e6f51a8c887d6fed3d4d67294492"
#define V_WAL2_HASH "4405a2930216e624ed719e33ba7c27466f8dfe595990a9cb0e643fb6a142826d"
#define V_WAL2_PAYLOAD \
	"04006d61696e1800303030303030303130303030303030303030303030303041" \
	"0c000000000000004405a2930216e624ed719e33ba7c27466f8dfe595990a9cb" \
	"0e643fb6a142826d00d017c72c9d971701c8fc78dfa39661b4ff081ecb8bd932" \
	"1c989e2f27b0f2a1b83ae751c5e09d52ed0c"
#define V_WAL_PUSHED_NS 1700000200000000000LL
#define V_WAL_PUSHED_AT 72
#define V_WAL_PAYLOAD \
	"04006d61696e1800303030303030303130303030303030303030303030303041" \
	"0c000000000000003e2a6469d3a75c05dfcaaee3d0a6fa5c0c84e6f51a8c887d" \
	"6fed3d4d6729449200d017c72c9d971701c8fc78dfa39661b4ff081ecb8bd932" \
	"1c989e2f27b0f2a1b83ae751c5e09d52ed0c"
#define V_WAL_SEALED \
	"434149524e574c3178c81acd5c316a00d154a88450aca07ffbb2a666dfec2c71" \
	"3837cdaab80600192ab235719a5e5e908d11d6e96b8e8eff8fd10f99fc5661a9" \
	"6617ace79f8cf41bb7c299f31975bb23c065638b23369280f3dfa981775816bb" \
	"651c9b9850fc02cd23bc2d77493d80296f6c9a42bdc91eedcffa7be8422e80c8" \
	"b9405a3149d58604c3ab5b426ce3a83168c4541119fcde5da4f1a0bf"

/* The chunker vector: defaults, 1 MiB from a 64-bit LCG (byte = top 8 bits). */
static const size_t V_CUTS[] = {78854, 66826, 86331, 68858, 81856, 91170, 25673, 89231,
				69404, 70970, 66260, 81123, 36298, 65582, 70140};
#define V_MASK_S 0x52929494a4a40000ull
#define V_MASK_L 0x4912449124480000ull
static const uint64_t V_GEAR[4] = {0xb17859e69ab23a81ull, 0xc7b553141d5ddf37ull,
				   0x3b16809dc1b68070ull, 0x52946b20508ae3fdull};
#define V_GEAR_255 0x9ac9cd81bf6cafffull

static const char HELLO[] = "hello world\n";

/* ---- helpers ---- */

/* Decodes a vector into a malloc'd buffer (exits on a bad vector: a bug
 * in this file, not in the code under test). */
static uint8_t *unhex(const char *hex, size_t *n)
{
	size_t len = strlen(hex) / 2;
	uint8_t *p = malloc(len ? len : 1);
	if (!p || hex_decode(p, len, hex) != 0) {
		fprintf(stderr, "bad vector %.16s...\n", hex);
		exit(2);
	}
	*n = len;
	return p;
}

static int hex_is(const void *p, size_t n, const char *hex)
{
	char *h = malloc(2 * n + 1);
	if (!h)
		return 0;
	hex_encode(h, p, n);
	int eq = strcmp(h, hex) == 0;
	if (!eq)
		fprintf(stderr, "  got  %s\n  want %s\n", h, hex);
	free(h);
	return eq;
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
	char h[65];
	hex_encode(h, p, n);
	printf("%s %s\n", label, h);
}

/* ---- keys, ids, gear table ---- */

static void test_keys(const struct repo_keys *k)
{
	uint8_t id[32];
	print_hex("id_key ", k->id_key, 32);
	print_hex("enc_key", k->enc_key, 32);
	print_hex("cfg_key", k->cfg_key, 32);
	CHECK(hex_is(k->id_key, 32, V_ID_KEY));
	CHECK(hex_is(k->enc_key, 32, V_ENC_KEY));
	CHECK(hex_is(k->cfg_key, 32, V_CFG_KEY));
	for (int i = 0; i < 4; i++)
		CHECK(k->gear[i] == V_GEAR[i]);
	CHECK(k->gear[255] == V_GEAR_255);
	blob_id(id, k, BLOB_DATA, HELLO, 12);
	CHECK(hex_is(id, 32, V_HELLO_ID));
	plain_hash(id, HELLO, 12);
	CHECK(hex_is(id, 32, V_HELLO_PLAIN_HASH));
	/* The type is hashed: "01 00" (an empty folder's tree) has one id as a
	 * tree blob and another as a data blob. */
	uint8_t other[32];
	blob_id(id, k, BLOB_TREE, "\x01\x00", 2);
	blob_id(other, k, BLOB_DATA, "\x01\x00", 2);
	CHECK(hex_is(id, 32, V_EMPTY_TREE_AS_TREE_ID));
	CHECK(hex_is(other, 32, V_EMPTY_TREE_AS_DATA_ID));
	CHECK(memcmp(id, other, 32) != 0);
}

/* ---- config ---- */

/* The config of the vectors: repo_id a0..af a0..af, default parameters. */
static void vector_config(struct repo_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
	for (int i = 0; i < 32; i++)
		c->id[i] = (uint8_t)(0xa0 + i % 16);
	c->chunker.min = 16384;
	c->chunker.avg = 65536;
	c->chunker.max = 262144;
	c->pack_size = 16u << 20;
}

static void test_config(const struct repo_keys *k)
{
	struct repo_config c, d;
	struct buf b = BUF_INIT, f = BUF_INIT;
	struct cairn_err err;
	vector_config(&c);
	CHECK_RC(config_encode(&c, k, &b), 0);
	CHECK(b.len == 96 && hex_is(b.data, b.len, V_CONFIG));
	CHECK_RC(config_decode(b.data, b.len, &d, &err), 0);
	CHECK(d.version == 1 && memcmp(d.id, c.id, 32) == 0 && d.chunker.min == 16384 &&
	      d.chunker.avg == 65536 && d.chunker.max == 262144 && d.pack_size == 16u << 20);
	CHECK_RC(config_verify(b.data, b.len, k, &err), 0);
	/* The MAC is the keyed BLAKE2b-256 (cfg_key) of the first 64 bytes. */
	uint8_t mac[32];
	crypto_generichash(mac, 32, b.data, 64, k->cfg_key, 32);
	CHECK(b.len == 96 && memcmp(mac, b.data + 64, 32) == 0);
	/* Any change is detected once the key is known: here pack_size 4096,
	 * which still decodes. */
	b.data[57] = 0x10;
	b.data[59] = 0x00;
	CHECK_RC(config_decode(b.data, b.len, &d, &err), 0);
	CHECK(d.pack_size == 4096);
	CHECK_RC(config_verify(b.data, b.len, k, &err), CAIRN_ECORRUPT);
	CHECK(strstr(err.msg, "fails authentication") != NULL);
	b.data[57] = 0x00;
	b.data[59] = 0x01;
	CHECK_RC(config_verify(b.data, b.len, k, &err), 0);
	/* Another master key does not verify it. */
	uint8_t other[32];
	memset(other, 7, sizeof(other));
	struct repo_keys *k2 = keys_new(other);
	CHECK(k2 != NULL);
	if (k2)
		CHECK_RC(config_verify(b.data, b.len, k2, &err), CAIRN_ECORRUPT);
	keys_free(k2);
	/* An unknown version is refused. */
	b.data[8] = 2;
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_EVERSION);
	b.data[8] = 1;
	/* A mandatory feature (count 1, str16 "newfeat", then a MAC) is
	 * refused, and named. */
	CHECK_RC(buf_append(&f, b.data, 60), 0);
	CHECK_RC(buf_put_u32(&f, 1), 0);
	CHECK_RC(buf_put_str16(&f, "newfeat", 7), 0);
	crypto_generichash(mac, 32, f.data, f.len, k->cfg_key, 32);
	CHECK_RC(buf_append(&f, mac, 32), 0);
	CHECK_RC(config_decode(f.data, f.len, &d, &err), CAIRN_EVERSION);
	CHECK(strstr(err.msg, "'newfeat'") != NULL);
	CHECK_RC(config_verify(f.data, f.len, k, &err), 0);
	/* A count with no name after it is malformed. */
	b.data[60] = 1;
	CHECK_RC(config_decode(b.data, 66, &d, &err), CAIRN_ECORRUPT);
	b.data[60] = 0;
	/* The 64-byte config of earlier builds (no MAC), and a byte too many,
	 * are malformed. */
	CHECK_RC(config_decode(b.data, 64, &d, &err), CAIRN_ECORRUPT);
	CHECK_RC(buf_put_u8(&b, 0), 0);
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_ECORRUPT);
	b.data[0] = 'X';
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_ENOREPO);
	buf_free(&b);
	buf_free(&f);
}

/* ---- varints ---- */

static void test_uvar(void)
{
	static const struct {
		uint64_t v;
		const char *hex;
	} vs[] = {
		{0, "00"},
		{1, "01"},
		{127, "7f"},
		{128, "8001"},
		{255, "ff01"},
		{300, "ac02"},
		{16383, "ff7f"},
		{16384, "808001"},
		{2097151, "ffff7f"},
		{2097152, "80808001"},
		{4294967295ull, "ffffffff0f"},
		{18446744073709551615ull, "ffffffffffffffffff01"},
	};
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		buf_reset(&b);
		CHECK_RC(buf_put_uvar(&b, vs[i].v), 0);
		CHECK(hex_is(b.data, b.len, vs[i].hex));
		struct rd r = rd_make(b.data, b.len);
		CHECK(rd_uvar(&r) == vs[i].v && !r.bad && rd_left(&r) == 0);
	}
	/* More than 64 bits, and a truncated varint, are malformed. */
	static const uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
	struct rd r = rd_make(big, sizeof(big));
	rd_uvar(&r);
	CHECK(r.bad);
	r = rd_make(big, 3);
	rd_uvar(&r);
	CHECK(r.bad);
	buf_free(&b);
}

/* ---- sealed blobs and a pack ---- */

static void test_blobs(const struct repo_keys *k, struct sealer *s)
{
	struct buf out = BUF_INIT;
	struct cairn_err err;
	size_t n, idn;
	uint8_t *sealed = unhex(V_SEALED_HELLO, &n);
	uint8_t *id = unhex(V_HELLO_ID, &idn);
	CHECK(n == 53);
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed, n, 12, &out, &err), 0);
	CHECK(out.len == 12 && memcmp(out.data, HELLO, 12) == 0);
	/* The type is associated data: the same bytes are not a tree blob. */
	CHECK_RC(blob_open(s, k, BLOB_TREE, id, sealed, n, 12, &out, &err), CAIRN_ECORRUPT);
	CHECK(out.len == 0);
	sealed[30] ^= 1;
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed, n, 12, &out, &err), CAIRN_ECORRUPT);
	free(sealed);
	free(id);

	/* 100 x "cairn\n": flag 1, a zstd frame. */
	char rep[601] = "";
	for (int i = 0; i < 100; i++)
		memcpy(rep + 6 * i, "cairn\n", 7);
	sealed = unhex(V_SEALED_CAIRN, &n);
	id = unhex(V_CAIRN_ID, &idn);
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed, n, 600, &out, &err), 0);
	CHECK(out.len == 600 && memcmp(out.data, rep, 600) == 0);
	free(sealed);
	free(id);
	buf_free(&out);
}

static void test_pack(const struct repo_keys *k, struct sealer *s)
{
	struct buf out = BUF_INIT, idx = BUF_INIT;
	struct cairn_err err;
	struct index_entry *e = NULL, *e2 = NULL;
	size_t n, ne = 0, ne2 = 0, sn;
	uint8_t pid[32];
	char key[80];
	uint8_t *pack = unhex(V_PACK, &n);
	uint8_t *sealed = unhex(V_SEALED_HELLO, &sn);
	CHECK(n == 166);
	plain_hash(pid, pack, n);
	CHECK(hex_is(pid, 32, V_PACK_ID));
	pack_key(key, pid);
	CHECK(strcmp(key, "packs/24/" V_PACK_ID) == 0);
	CHECK_RC(pack_read_dir(k, pid, pack, n, &e, &ne, &err), 0);
	CHECK(ne == 1);
	if (ne == 1) {
		CHECK(e[0].loc.type == BLOB_DATA && e[0].loc.offset == 8 &&
		      e[0].loc.sealed_len == 53 && e[0].loc.raw_len == 12);
		CHECK(hex_is(e[0].id, 32, V_HELLO_ID));
		CHECK(memcmp(pack + 8, sealed, sn) == 0);
		CHECK_RC(blob_open(s, k, BLOB_DATA, e[0].id, pack + e[0].loc.offset,
				   e[0].loc.sealed_len, e[0].loc.raw_len, &out, &err), 0);
		CHECK(out.len == 12 && memcmp(out.data, HELLO, 12) == 0);
		/* The index object payload that names this pack. */
		CHECK_RC(index_encode(e, ne, &idx), 0);
		CHECK(hex_is(idx.data, idx.len, V_INDEX));
		CHECK_RC(index_decode(idx.data, idx.len, &e2, &ne2, &err), 0);
		CHECK(ne2 == 1 && e2 && memcmp(e2[0].id, e[0].id, 32) == 0 &&
		      memcmp(e2[0].loc.pack, pid, 32) == 0 && e2[0].loc.type == BLOB_DATA &&
		      e2[0].loc.offset == 8 && e2[0].loc.sealed_len == 53 &&
		      e2[0].loc.raw_len == 12);
	}
	/* A damaged directory does not open. */
	pack[n - 20] ^= 1;
	free(e);
	e = NULL;
	CHECK_RC(pack_read_dir(k, pid, pack, n, &e, &ne, &err), CAIRN_ECORRUPT);
	free(e);
	free(e2);
	free(pack);
	free(sealed);
	buf_free(&out);
	buf_free(&idx);
}

/* ---- a tree ---- */

static void test_tree(const struct repo_keys *k, uint8_t tid[32])
{
	struct tree t = TREE_INIT, t2 = TREE_INIT;
	struct node nd;
	struct buf b = BUF_INIT;
	struct cairn_err err;
	uint8_t id[32];

	blob_id(id, k, BLOB_DATA, HELLO, 12);
	memset(&nd, 0, sizeof(nd));
	nd.name = strdup("hello.txt");
	nd.type = NODE_FILE;
	nd.mode = 0644;
	nd.uid = 1000;
	nd.gid = 1000;
	nd.mtime_ns = 1700000000123456789LL;
	nd.ctime_ns = 1700000000987654321LL;
	nd.size = 12;
	nd.inode = 42;
	CHECK(nd.name && node_add_blob(&nd, id, 12) == 0 && tree_add(&t, &nd) == 0);
	CHECK_RC(tree_encode(&t, &b, &err), 0);
	CHECK(b.len == 97 && hex_is(b.data, b.len, V_TREE));
	blob_id(tid, k, BLOB_TREE, b.data, b.len);
	CHECK(hex_is(tid, 32, V_TREE_ID));
	CHECK_RC(tree_decode(b.data, b.len, &t2, &err), 0);
	CHECK(t2.n == 1 && strcmp(t2.nodes[0].name, "hello.txt") == 0 &&
	      t2.nodes[0].nblobs == 1 && t2.nodes[0].blobs[0].len == 12 &&
	      t2.nodes[0].mtime_ns == 1700000000123456789LL &&
	      t2.nodes[0].ctime_ns == 1700000000987654321LL);
	tree_free(&t2);

	/* ext: the vector ends with ext_len (2 bytes) and CTIME (10 bytes). */
	size_t n;
	uint8_t *v = unhex(V_TREE, &n);
	struct buf x = BUF_INIT;
	/* An unknown tag (7, 2 bytes) before CTIME is skipped. */
	CHECK_RC(buf_append(&x, v, n - 12), 0);
	CHECK_RC(buf_put_u16(&x, 14), 0);
	CHECK_RC(buf_append(&x, "\x07\x02\xaa\xbb", 4), 0);
	CHECK_RC(buf_append(&x, v + n - 10, 10), 0);
	CHECK_RC(tree_decode(x.data, x.len, &t2, &err), 0);
	CHECK(t2.n == 1 && t2.nodes[0].ctime_ns == 1700000000987654321LL);
	tree_free(&t2);
	/* A CTIME of another length is ignored. */
	buf_reset(&x);
	CHECK_RC(buf_append(&x, v, n - 12), 0);
	CHECK_RC(buf_put_u16(&x, 6), 0);
	CHECK_RC(buf_append(&x, "\x01\x04\x01\x02\x03\x04", 6), 0);
	CHECK_RC(tree_decode(x.data, x.len, &t2, &err), 0);
	CHECK(t2.n == 1 && t2.nodes[0].ctime_ns == 0);
	tree_free(&t2);
	/* No ext at all: ctime unknown (0). */
	buf_reset(&x);
	CHECK_RC(buf_append(&x, v, n - 12), 0);
	CHECK_RC(buf_put_u16(&x, 0), 0);
	CHECK_RC(tree_decode(x.data, x.len, &t2, &err), 0);
	CHECK(t2.n == 1 && t2.nodes[0].ctime_ns == 0);
	tree_free(&t2);
	/* An entry that runs past ext_len makes the tree corrupt. */
	v[n - 9] = 9;
	CHECK_RC(tree_decode(v, n, &t2, &err), CAIRN_ECORRUPT);
	free(v);
	buf_free(&x);

	/* List form (version 2): the list blob holds the one entry; the node
	 * names it and patches entry 0 with the same ref. */
	struct blob_ref one;
	memcpy(one.id, id, 32);
	one.len = 12;
	CHECK_RC(list_encode(&one, 1, &x), 0);
	CHECK(x.len == 35 && hex_is(x.data, x.len, V_LIST));
	uint8_t lid[32];
	blob_id(lid, k, BLOB_TREE, x.data, x.len);
	CHECK(hex_is(lid, 32, V_LIST_ID));
	struct node *ln = &t.nodes[0];
	ln->has_list = 1;
	memcpy(ln->list_id, lid, 32);
	ln->list_count = 1;
	ln->patch = malloc(sizeof(*ln->patch));
	CHECK(ln->patch != NULL);
	if (ln->patch) {
		ln->patch[0].idx = 0;
		ln->patch[0].ref = one;
		ln->npatch = 1;
	}
	CHECK_RC(tree_encode(&t, &b, &err), 0);
	CHECK(b.len == 132 && hex_is(b.data, b.len, V_TREE2));
	CHECK_RC(tree_decode(b.data, b.len, &t2, &err), 0);
	CHECK(t2.n == 1 && t2.nodes[0].has_list && t2.nodes[0].nblobs == 0 &&
	      t2.nodes[0].npatch == 1 && t2.nodes[0].list_count == 1);
	if (t2.n == 1) {
		CHECK_RC(node_apply_list(&t2.nodes[0], &one, 1, &err), 0);
		CHECK(t2.nodes[0].nblobs == 1 && t2.nodes[0].blobs[0].len == 12);
		t2.nodes[0].size = 13; /* lengths no longer add up */
		CHECK_RC(node_apply_list(&t2.nodes[0], &one, 1, &err), CAIRN_ECORRUPT);
	}
	tree_free(&t2);
	buf_free(&x);
	tree_free(&t);
	buf_free(&b);
}

/* ---- snapshots ---- */

/* Offset of the first field with `tag` in a snapshot payload, or n. */
static size_t field_at(const uint8_t *p, size_t n, uint16_t tag)
{
	size_t off = 0;
	while (off + 6 <= n) {
		uint32_t len = le_get32(p + off + 2);
		if ((uint16_t)(p[off] | p[off + 1] << 8) == tag)
			return off;
		off += 6 + (size_t)len;
	}
	return n;
}

/* The payload with its STATS value cut or padded (0x11 bytes) to len. */
static void restats(const uint8_t *p, size_t n, uint32_t len, struct buf *out)
{
	size_t at = field_at(p, n, SNAP_T_STATS);
	uint32_t old = le_get32(p + at + 2);
	uint8_t hdr[6], pad = 0x11;
	memcpy(hdr, p + at, 6);
	le_put32(hdr + 2, len);
	buf_reset(out);
	CHECK_RC(buf_append(out, p, at), 0);
	CHECK_RC(buf_append(out, hdr, 6), 0);
	CHECK_RC(buf_append(out, p + at + 6, len < old ? len : old), 0);
	for (uint32_t i = old; i < len; i++)
		CHECK_RC(buf_append(out, &pad, 1), 0);
	CHECK_RC(buf_append(out, p + at + 6 + old, n - at - 6 - old), 0);
}

static int snap_plain_ok(const struct snapshot *d, const uint8_t tid[32])
{
	return memcmp(d->root, tid, 32) == 0 && d->host && strcmp(d->host, "db1") == 0 &&
	       d->user && strcmp(d->user, "postgres") == 0 && d->program &&
	       strcmp(d->program, "cairn 0.1.0") == 0 && d->npaths == 1 &&
	       strcmp(d->paths[0], "/hello.txt") == 0 && d->time_ns == 1700000000000000000LL &&
	       d->end_time_ns == 1700000001000000000LL && d->stats.logical_bytes == 12 &&
	       d->stats.new_bytes == 0 && d->stats.stored_bytes == 0 && d->stats.files == 1 &&
	       d->stats.dirs == 0 && d->stats.blobs == 1 && d->stats.new_blobs == 0 &&
	       d->stats.errors == 0 && d->stats.reused_bytes == 0 && d->flags == 0 &&
	       d->ntags == 0 && d->nerrors == 0 && !d->has_parent && !d->cluster &&
	       d->ntablespaces == 0;
}

static void test_snapshot(const struct repo_keys *k, struct sealer *s, const uint8_t tid[32])
{
	struct buf b = BUF_INIT, plain = BUF_INIT, x = BUF_INIT;
	struct cairn_err err;
	struct snapshot sn, dec;
	size_t n, pn;

	memset(&sn, 0, sizeof(sn));
	memcpy(sn.root, tid, 32);
	sn.time_ns = 1700000000000000000LL;
	sn.end_time_ns = 1700000001000000000LL;
	sn.host = "db1";
	sn.user = "postgres";
	sn.program = "cairn 0.1.0";
	char *paths[] = {"/hello.txt"};
	sn.paths = paths;
	sn.npaths = 1;
	sn.stats.logical_bytes = 12;
	sn.stats.files = 1;
	sn.stats.blobs = 1;
	CHECK_RC(snapshot_encode(&sn, &b), 0);
	CHECK(b.len == 210 && hex_is(b.data, b.len, V_SNAP_PAYLOAD));

	/* The frozen sealed snapshot opens to the payload, which decodes. */
	uint8_t *sealed = unhex(V_SNAP_SEALED, &n);
	CHECK(n == 203);
	CHECK_RC(obj_open(s, k, "CAIRNSN1", V_SNAP_NAME, sealed, n, &plain, "snapshot", &err), 0);
	CHECK(hex_is(plain.data, plain.len, V_SNAP_PAYLOAD));
	CHECK_RC(snapshot_decode(plain.data, plain.len, &dec, &err), 0);
	CHECK(snap_plain_ok(&dec, tid));
	snapshot_free(&dec);

	/* STATS: 8 counters (older writers) or more than 9 are read; a length
	 * below 64 or not a multiple of 8 is corrupt. */
	uint8_t *p = unhex(V_SNAP_PAYLOAD, &pn);
	restats(p, pn, 64, &x);
	CHECK(x.len == pn - 8);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), 0);
	CHECK(snap_plain_ok(&dec, tid));
	snapshot_free(&dec);
	restats(p, pn, 80, &x);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), 0);
	CHECK(snap_plain_ok(&dec, tid));
	snapshot_free(&dec);
	restats(p, pn, 68, &x);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), CAIRN_ECORRUPT);
	restats(p, pn, 56, &x);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), CAIRN_ECORRUPT);

	/* An unknown optional tag is skipped; an unknown critical one refused. */
	buf_reset(&x);
	CHECK_RC(buf_append(&x, p, pn), 0);
	CHECK_RC(buf_append(&x, "\x40\x00\x01\x00\x00\x00\x2a", 7), 0);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), 0);
	CHECK(snap_plain_ok(&dec, tid));
	snapshot_free(&dec);
	x.data[pn + 1] = 0x80; /* tag 0x8040 */
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), CAIRN_EVERSION);

	/* The magic is associated data: not an index object. */
	CHECK_RC(obj_open(s, k, "CAIRNIX1", NULL, sealed, n, &plain, "x", &err), CAIRN_ECORRUPT);
	/* The name is the hash of the bytes. */
	sealed[n - 1] ^= 1;
	CHECK_RC(obj_open(s, k, "CAIRNSN1", V_SNAP_NAME, sealed, n, &plain, "x", &err),
		 CAIRN_ECORRUPT);
	free(sealed);
	free(p);

	/* A PostgreSQL snapshot (flag PG: tags 20-30), with a parent. */
	struct snapshot pg;
	memset(&pg, 0, sizeof(pg));
	memcpy(pg.root, tid, 32);
	pg.time_ns = 1700000100000000000LL;
	pg.end_time_ns = 1700000101000000000LL;
	pg.host = "db1";
	pg.user = "postgres";
	pg.program = "cairn 0.1.0";
	char *pgpaths[] = {"/var/lib/postgresql/16/main"};
	pg.paths = pgpaths;
	pg.npaths = 1;
	pg.has_parent = 1;
	CHECK(hex_decode(pg.parent, 32, V_SNAP_NAME) == 0);
	pg.stats.logical_bytes = 12;
	pg.stats.files = 1;
	pg.stats.blobs = 1;
	pg.stats.reused_bytes = 12;
	pg.flags = SNAP_PG;
	pg.cluster = "main";
	pg.sysid = 7301234567890123456ull;
	pg.pg_version = 160004;
	pg.timeline = 1;
	pg.start_lsn = 0x3000028;
	pg.stop_lsn = 0x3000138;
	pg.start_wal = "000000010000000000000003";
	pg.stop_wal = "000000010000000000000003";
	pg.wal_seg_size = 16u << 20;
	char *ts[] = {"16384\t/srv/ts1"};
	pg.tablespaces = ts;
	pg.ntablespaces = 1;
	CHECK_RC(snapshot_encode(&pg, &b), 0);
	CHECK(b.len == 437 && hex_is(b.data, b.len, V_PG_SNAP_PAYLOAD));
	p = unhex(V_PG_SNAP_PAYLOAD, &pn);
	CHECK_RC(snapshot_decode(p, pn, &dec, &err), 0);
	CHECK(memcmp(dec.root, tid, 32) == 0 && dec.has_parent &&
	      memcmp(dec.parent, pg.parent, 32) == 0 && dec.flags == SNAP_PG &&
	      dec.npaths == 1 && strcmp(dec.paths[0], "/var/lib/postgresql/16/main") == 0 &&
	      dec.stats.logical_bytes == 12 && dec.stats.reused_bytes == 12 &&
	      dec.cluster && strcmp(dec.cluster, "main") == 0 &&
	      dec.sysid == 7301234567890123456ull && dec.pg_version == 160004 &&
	      dec.timeline == 1 && dec.start_lsn == 0x3000028 && dec.stop_lsn == 0x3000138 &&
	      dec.start_wal && strcmp(dec.start_wal, "000000010000000000000003") == 0 &&
	      dec.stop_wal && strcmp(dec.stop_wal, "000000010000000000000003") == 0 &&
	      dec.wal_seg_size == 16u << 20 && dec.from_standby == 0 &&
	      dec.ntablespaces == 1 && strcmp(dec.tablespaces[0], "16384\t/srv/ts1") == 0);
	snapshot_free(&dec);
	/* CLUSTER is single-valued: a second one makes the record corrupt. */
	buf_reset(&x);
	CHECK_RC(buf_append(&x, p, pn), 0);
	CHECK_RC(buf_append(&x, "\x14\x00\x01\x00\x00\x00x", 7), 0);
	CHECK_RC(snapshot_decode(x.data, x.len, &dec, &err), CAIRN_ECORRUPT);
	/* A numeric PG field of the wrong length is corrupt. */
	size_t at = field_at(p, pn, SNAP_T_TIMELINE);
	CHECK(at < pn);
	if (at < pn) {
		p[at + 2] = 8;
		CHECK_RC(snapshot_decode(p, pn, &dec, &err), CAIRN_ECORRUPT);
	}
	free(p);
	buf_free(&b);
	buf_free(&plain);
	buf_free(&x);
}

/* ---- a key file ---- */

static void test_keyfile(void)
{
	struct cairn_err err;
	struct key_info info;
	uint8_t master[32];
	size_t n;
	uint8_t *kf = unhex(V_KEYFILE, &n);
	CHECK(n == 134);
	CHECK_RC(keyfile_info(kf, n, &info, &err), 0);
	CHECK(strcmp(info.name, V_KEYFILE_NAME) == 0 && info.kdf.opslimit == 1 &&
	      info.kdf.memlimit == 8192 && strcmp(info.host, "h") == 0 &&
	      strcmp(info.user, "u") == 0);
	CHECK_RC(keyfile_open(kf, n, "correct horse", 13, master, &err), 0);
	for (int i = 0; i < 32; i++)
		CHECK(master[i] == i);
	CHECK_RC(keyfile_open(kf, n, "correct horsf", 13, master, &err), CAIRN_EPASS);
	/* The header is associated data: changing the host breaks the key. */
	kf[58] = 'x';
	CHECK_RC(keyfile_open(kf, n, "correct horse", 13, master, &err), CAIRN_EPASS);
	free(kf);
}

/* ---- a host key file ---- */

static void test_hostkey(const uint8_t master[32])
{
	struct repo_config c;
	struct cairn_err err;
	uint8_t out[HOSTKEY_LEN], id[32], m[32];
	vector_config(&c);
	hostkey_encode(out, c.id, master);
	CHECK(hex_is(out, sizeof(out), V_HOSTKEY));
	/* check = unkeyed BLAKE2b-256 of the 72 bytes before it */
	uint8_t h[32];
	plain_hash(h, out, 72);
	CHECK(memcmp(h, out + 72, 32) == 0);
	CHECK_RC(hostkey_decode(out, sizeof(out), id, m, &err), 0);
	CHECK(memcmp(id, c.id, 32) == 0 && memcmp(m, master, 32) == 0);
	CHECK_RC(hostkey_decode(out, sizeof(out) - 1, id, m, &err), CAIRN_ECORRUPT);
	out[50] ^= 1; /* a master key byte */
	CHECK_RC(hostkey_decode(out, sizeof(out), id, m, &err), CAIRN_ECORRUPT);
	out[50] ^= 1;
	out[7] = '2';
	CHECK_RC(hostkey_decode(out, sizeof(out), id, m, &err), CAIRN_ECORRUPT);
}

/* ---- WAL entries ---- */

/* The chunker vector's input: bytes from a 64-bit LCG (top 8 bits). */
static void lcg_fill(uint8_t *p, size_t n)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> 56);
	}
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A file holding p[0..n), opened for reading from its start. */
static int content_fd(const char *dir, const void *p, size_t n)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/content", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, p, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	unlink(path);
	return fd;
}

/* Pushes p[0..n) as cluster/name; returns the rc, sets *already. */
static int push(struct repo *r, const char *dir, const char *cluster, const char *name,
		const void *p, size_t n, int *already)
{
	struct cairn_err err;
	int fd = content_fd(dir, p, n);
	if (fd < 0)
		return -1;
	int rc = repo_wal_push(r, cluster, name, fd, already, &err);
	if (rc && rc != CAIRN_EEXIST)
		fprintf(stderr, "  push: %s\n", err.msg);
	close(fd);
	return rc;
}

/* Fetches cluster/name into memory (out is reset). */
static int fetch(struct repo *r, const char *dir, const char *cluster, const char *name,
		 struct buf *out)
{
	struct cairn_err err;
	char path[300];
	snprintf(path, sizeof(path), "%s/fetched", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	unlink(path);
	int rc = repo_wal_fetch(r, cluster, name, fd, &err);
	off_t size = lseek(fd, 0, SEEK_END);
	buf_reset(out);
	if (!rc && (size < 0 || buf_reserve(out, (size_t)size + 1) ||
		    pread(fd, out->data, (size_t)size, 0) != size))
		rc = -1;
	if (!rc)
		out->len = (size_t)size;
	close(fd);
	return rc;
}

/* The whole-content hash, from the rule: keyed BLAKE2b-256 (id_key) over
 * 0x57 then the content. */
static void wal_hash(uint8_t out[32], const struct repo_keys *k, const void *p, size_t n)
{
	crypto_generichash_state hs;
	const uint8_t w = 0x57;
	crypto_generichash_init(&hs, k->id_key, 32, 32);
	crypto_generichash_update(&hs, &w, 1);
	crypto_generichash_update(&hs, p, n);
	crypto_generichash_final(&hs, out, 32);
}

/* Decodes an entry payload by the documented layout. */
struct dec_entry {
	char cluster[65], name[65];
	uint64_t size;
	uint8_t hash[32];
	int64_t pushed_ns;
	uint64_t nblobs;
	uint8_t ids[20][32];
	uint64_t lens[20];
};

/* WL2: over 0x58 and every (id, u32 len) of the list, from FORMAT.md. */
static void wal_list_hash(uint8_t out[32], const struct repo_keys *k, const struct dec_entry *d)
{
	crypto_generichash_state hs;
	const uint8_t x = 0x58;
	crypto_generichash_init(&hs, k->id_key, 32, 32);
	crypto_generichash_update(&hs, &x, 1);
	for (uint64_t i = 0; i < d->nblobs; i++) {
		uint8_t len[4] = {(uint8_t)d->lens[i], (uint8_t)(d->lens[i] >> 8),
				  (uint8_t)(d->lens[i] >> 16), (uint8_t)(d->lens[i] >> 24)};
		crypto_generichash_update(&hs, d->ids[i], 32);
		crypto_generichash_update(&hs, len, 4);
	}
	crypto_generichash_final(&hs, out, 32);
}

static int dec_payload(const uint8_t *p, size_t n, struct dec_entry *d)
{
	struct rd r = rd_make(p, n);
	memset(d, 0, sizeof(*d));
	uint16_t cl = rd_u16(&r);
	const uint8_t *c = rd_bytes(&r, cl);
	if (r.bad || cl > 64)
		return -1;
	memcpy(d->cluster, c, cl);
	uint16_t nl = rd_u16(&r);
	const uint8_t *nm = rd_bytes(&r, nl);
	if (r.bad || nl > 64)
		return -1;
	memcpy(d->name, nm, nl);
	d->size = rd_u64(&r);
	rd_copy(&r, d->hash, 32);
	d->pushed_ns = (int64_t)rd_u64(&r);
	d->nblobs = rd_uvar(&r);
	if (r.bad || d->nblobs > 20)
		return -1;
	for (uint64_t i = 0; i < d->nblobs; i++) {
		rd_copy(&r, d->ids[i], 32);
		d->lens[i] = rd_uvar(&r);
	}
	return r.bad || rd_left(&r) ? -1 : 0;
}

struct listed {
	int n, found;
};

static int on_listed(void *arg, const char *name, uint64_t size)
{
	struct listed *l = arg;
	(void)size;
	l->n++;
	l->found |= strcmp(name, "00000001000000000000000A") == 0;
	return 0;
}

static void test_wal(const uint8_t master[32], const struct repo_keys *k, struct sealer *s)
{
	char dir[] = "/tmp/cairn-vectors-XXXXXX";
	char url[300], cache[300];
	struct cairn_err err;
	struct repo_config c;
	struct storage *st = NULL;
	struct repo *r = NULL;
	struct buf b = BUF_INIT, raw = BUF_INIT, plain = BUF_INIT, got = BUF_INIT;
	struct dec_entry d;
	int already = -1;
	size_t n;

	/* Cluster names. */
	CHECK(wal_cluster_name_ok("main") == 0 && wal_cluster_name_ok("16_main-2.x") == 0);
	CHECK(wal_cluster_name_ok("") != 0 && wal_cluster_name_ok(".main") != 0 &&
	      wal_cluster_name_ok("Main") != 0 && wal_cluster_name_ok("a/b") != 0);
	char long_name[66];
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	CHECK(wal_cluster_name_ok(long_name) != 0);
	long_name[64] = '\0';
	CHECK(wal_cluster_name_ok(long_name) == 0);

	/* A repository with the vector config and master key: its config, no
	 * key file, opened with the master key (as a host key file does). */
	int made = mkdtemp(dir) != NULL;
	CHECK(made);
	if (!made)
		return;
	snprintf(url, sizeof(url), "%s/repo", dir);
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	vector_config(&c);
	CHECK_RC(storage_open(&st, url, 1, NULL, &err), 0);
	CHECK_RC(config_encode(&c, k, &b), 0);
	CHECK(st && storage_put(st, "config", b.data, b.len, &err) == 0);
	storage_close(st);
	struct repo_open_opts oo;
	memset(&oo, 0, sizeof(oo));
	oo.url = url;
	oo.cache_base = cache;
	oo.master = master;
	uint8_t other_id[32];
	memcpy(other_id, c.id, 32);
	other_id[0] ^= 1;
	oo.master_repo_id = other_id; /* a host key of another repository */
	CHECK_RC(repo_open(&r, &oo, &err), CAIRN_EPASS);
	oo.master_repo_id = c.id;
	CHECK_RC(repo_open(&r, &oo, &err), 0);
	if (!r)
		goto out;
	st = repo_get_storage(r);

	/* The real push of the vector's content. */
	int64_t t0 = now_ns();
	CHECK_RC(push(r, dir, "main", "00000001000000000000000A", HELLO, 12, &already), 0);
	int64_t t1 = now_ns();
	CHECK(already == 0);
	CHECK_RC(storage_get(st, V_WAL_KEY, 0, STORAGE_WHOLE, &raw, &err), 0);
	CHECK(raw.len > 8 && memcmp(raw.data, "CAIRNWL2", 8) == 0);
	CHECK_RC(obj_open(s, k, "CAIRNWL2", NULL, raw.data, raw.len, &plain, "entry", &err), 0);
	CHECK(dec_payload(plain.data, plain.len, &d) == 0);
	uint8_t h[32];
	wal_hash(h, k, HELLO, 12);
	CHECK(hex_is(h, 32, V_WAL_HASH));
	wal_list_hash(h, k, &d);
	CHECK(hex_is(h, 32, V_WAL2_HASH));
	CHECK(!strcmp(d.cluster, "main") && !strcmp(d.name, "00000001000000000000000A") &&
	      d.size == 12 && memcmp(d.hash, h, 32) == 0 && d.pushed_ns >= t0 &&
	      d.pushed_ns <= t1 && d.nblobs == 1 && hex_is(d.ids[0], 32, V_HELLO_ID) &&
	      d.lens[0] == 12);
	/* Byte for byte the vector, but for the push's clock. */
	uint8_t *v = unhex(V_WAL2_PAYLOAD, &n);
	CHECK(n == 114 && le_get64(v + V_WAL_PUSHED_AT) == (uint64_t)V_WAL_PUSHED_NS);
	le_put64(v + V_WAL_PUSHED_AT, (uint64_t)d.pushed_ns);
	CHECK(plain.len == n && memcmp(plain.data, v, n) == 0);
	free(v);
	/* The magic is associated data. */
	CHECK_RC(obj_open(s, k, "CAIRNSN1", NULL, raw.data, raw.len, &plain, "x", &err),
		 CAIRN_ECORRUPT);
	{
		struct listed l = {0, 0};
		CHECK_RC(repo_wal_list(r, "main", on_listed, &l, &err), 0);
		CHECK(l.n == 1 && l.found);
	}

	/* Never overwritten: the same content succeeds, other content fails. */
	CHECK_RC(push(r, dir, "main", "00000001000000000000000A", HELLO, 12, &already), 0);
	CHECK(already == 1);
	CHECK_RC(push(r, dir, "main", "00000001000000000000000a", HELLO, 12, &already), 0);
	CHECK(already == 1);
	CHECK_RC(push(r, dir, "main", "00000001000000000000000A", "hello world!", 12, &already),
		 CAIRN_EEXIST);
	CHECK_RC(storage_get(st, V_WAL_KEY, 0, STORAGE_WHOLE, &b, &err), 0);
	CHECK(b.len == raw.len && memcmp(b.data, raw.data, b.len) == 0);
	CHECK_RC(fetch(r, dir, "main", "00000001000000000000000A", &got), 0);
	CHECK(got.len == 12 && memcmp(got.data, HELLO, 12) == 0);

	/* The frozen sealed entry opens to the vector payload, and is read as
	 * the entry at its key (its blob is indexed by the push above). */
	uint8_t *sealed = unhex(V_WAL_SEALED, &n);
	CHECK(n == 156);
	CHECK_RC(obj_open(s, k, "CAIRNWL1", NULL, sealed, n, &plain, "entry", &err), 0);
	CHECK(hex_is(plain.data, plain.len, V_WAL_PAYLOAD));
	CHECK_RC(storage_del(st, V_WAL_KEY, &err), 0);
	CHECK_RC(storage_put(st, V_WAL_KEY, sealed, n, &err), 0);
	struct wal_entry e;
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000A", &e, &err), 0);
	CHECK(e.pushed_ns == V_WAL_PUSHED_NS && e.size == 12 && e.nblobs == 1 &&
	      e.version == 1 && hex_is(e.hash, 32, V_WAL_HASH));
	wal_entry_free(&e);
	CHECK_RC(fetch(r, dir, "main", "00000001000000000000000A", &got), 0);
	CHECK(got.len == 12 && memcmp(got.data, HELLO, 12) == 0);
	/* A WL1 entry and a push of the same content: already archived. */
	CHECK_RC(push(r, dir, "main", "00000001000000000000000A", HELLO, 12, &already), 0);
	CHECK(already == 1);
	/* Moved to another key (file name or cluster), it is refused. */
	CHECK_RC(storage_put(st, "wal/main/00000001000000000000000b", sealed, n, &err), 0);
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000B", &e, &err), CAIRN_ECORRUPT);
	CHECK_RC(storage_put(st, "wal/other/00000001000000000000000a", sealed, n, &err), 0);
	CHECK_RC(repo_wal_stat(r, "other", "00000001000000000000000A", &e, &err), CAIRN_ECORRUPT);
	free(sealed);

	/* An entry whose whole hash does not match its blobs: archive-get
	 * refuses it after reading every blob; sizes that do not add up make
	 * the entry malformed. */
	v = unhex(V_WAL_PAYLOAD, &n);
	char oname[65];
	v[31] = 'C'; /* file name ...0C */
	v[45] ^= 1;  /* a hash byte */
	CHECK_RC(obj_seal(s, k, "CAIRNWL1", v, n, &b, oname, &err), 0);
	CHECK_RC(storage_put(st, "wal/main/00000001000000000000000c", b.data, b.len, &err), 0);
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000C", &e, &err), 0);
	wal_entry_free(&e);
	CHECK_RC(fetch(r, dir, "main", "00000001000000000000000C", &got), CAIRN_ECORRUPT);
	v[31] = 'D';
	v[45] ^= 1;
	v[32] = 13; /* size 13, blobs 12 */
	CHECK_RC(obj_seal(s, k, "CAIRNWL1", v, n, &b, oname, &err), 0);
	CHECK_RC(storage_put(st, "wal/main/00000001000000000000000d", b.data, b.len, &err), 0);
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000D", &e, &err), CAIRN_ECORRUPT);
	free(v);
	/* A WL2 entry whose hash does not match its list: refused on load. */
	v = unhex(V_WAL2_PAYLOAD, &n);
	v[31] = 'E';
	v[45] ^= 1;
	CHECK_RC(obj_seal(s, k, "CAIRNWL2", v, n, &b, oname, &err), 0);
	CHECK_RC(storage_put(st, "wal/main/00000001000000000000000e", b.data, b.len, &err), 0);
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000E", &e, &err), CAIRN_ECORRUPT);
	v[45] ^= 1;
	CHECK_RC(obj_seal(s, k, "CAIRNWL2", v, n, &b, oname, &err), 0);
	CHECK_RC(storage_put(st, "wal/main/00000001000000000000000f", b.data, b.len, &err), 0);
	CHECK_RC(repo_wal_stat(r, "main", "00000001000000000000000F", &e, &err), CAIRN_ECORRUPT);
	free(v); /* (moved: its name inside says ...0E) */

	/* Several blobs: the chunker vector's 1 MiB, in content order. */
	size_t len = 1u << 20;
	uint8_t *data = malloc(len);
	CHECK(data != NULL);
	if (data) {
		lcg_fill(data, len);
		CHECK_RC(push(r, dir, "main", "000000010000000000000001", data, len, &already), 0);
		CHECK_RC(storage_get(st, "wal/main/000000010000000000000001", 0, STORAGE_WHOLE, &raw,
				     &err), 0);
		CHECK_RC(obj_open(s, k, "CAIRNWL2", NULL, raw.data, raw.len, &plain, "e", &err), 0);
		CHECK(dec_payload(plain.data, plain.len, &d) == 0);
		wal_list_hash(h, k, &d);
		CHECK(d.size == len && memcmp(d.hash, h, 32) == 0 &&
		      d.nblobs == sizeof(V_CUTS) / sizeof(V_CUTS[0]));
		size_t off = 0;
		for (uint64_t i = 0; i < d.nblobs && i < 20; i++) {
			uint8_t id[32];
			blob_id(id, k, BLOB_DATA, data + off, V_CUTS[i]);
			CHECK(d.lens[i] == V_CUTS[i] && memcmp(d.ids[i], id, 32) == 0);
			off += V_CUTS[i];
		}
		CHECK_RC(fetch(r, dir, "main", "000000010000000000000001", &got), 0);
		CHECK(got.len == len && memcmp(got.data, data, len) == 0);
		free(data);
	}

out:
	repo_close(r);
	buf_free(&b);
	buf_free(&raw);
	buf_free(&plain);
	buf_free(&got);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the chunker ---- */

static void test_chunker(const struct repo_keys *k)
{
	struct fastcdc c;
	struct fastcdc_params p = {16384, 65536, 262144};
	const size_t len = 1u << 20;
	uint8_t *data = malloc(len);
	CHECK(data != NULL);
	if (!data)
		return;
	CHECK(fastcdc_init(&c, &p, k->gear) == 0);
	CHECK(c.mask_s == V_MASK_S && c.mask_l == V_MASK_L);
	lcg_fill(data, len);
	size_t off = 0, i = 0, ncuts = sizeof(V_CUTS) / sizeof(V_CUTS[0]);
	while (off < len) {
		size_t cut = fastcdc_cut(&c, data + off, len - off, 1);
		CHECK(i < ncuts && cut == V_CUTS[i]);
		if (cut == 0)
			break;
		off += cut;
		i++;
	}
	CHECK(i == ncuts && off == len);
	free(data);
}

int main(void)
{
	struct cairn_err err;
	uint8_t master[32];
	CHECK_RC(crypto_setup(&err), 0);
	for (int i = 0; i < 32; i++)
		master[i] = (uint8_t)i;
	struct repo_keys *k = keys_new(master);
	struct sealer *s = sealer_new(3);
	CHECK(k != NULL && s != NULL);
	if (!k || !s)
		return t_done();
	test_keys(k);
	test_config(k);
	test_uvar();
	test_blobs(k, s);
	test_pack(k, s);
	uint8_t tid[32];
	test_tree(k, tid);
	test_snapshot(k, s, tid);
	test_keyfile();
	test_hostkey(master);
	test_wal(master, k, s);
	test_chunker(k);
	sealer_free(s);
	keys_free(k);
	return t_done();
}
