/*
 * test_vectors.c — the test vectors of FORMAT.md ("Test vectors"), checked
 * against the code.  Every constant below appears, byte for byte, in
 * FORMAT.md: a change here is a change of the repository format and needs
 * a new format version and a change-log entry there.
 *
 * Sealing uses random nonces, so the sealed vectors (blobs, pack, snapshot
 * object, key file) were made once and are frozen here: the test checks
 * that they still open to the expected plaintexts.  The unsealed encodings
 * (keys, ids, gear table, config, varints, index payload, tree, chunker
 * masks and cut points) are recomputed and compared; the snapshot payload,
 * an extensible record, is checked by decoding it.
 */
#include "chunker/fastcdc.h"
#include "repo/buf.h"
#include "repo/crypto.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "tests/unit/t.h"

#include <stdlib.h>
#include <string.h>

/* ---- the vectors (FORMAT.md, "Test vectors") ---- */

#define V_ID_KEY "203fc19d1c7cdf78ac910ed592ae36bc9cbe3e937f6e6cc69b96984e336ab310"
#define V_ENC_KEY "54d289b10609fe981de70b05bd6bc8dc78275595246fbaf7b46c586dfdfb9324"
#define V_HELLO_ID "83face2bfbd1802e759c0a66bf779978884fdbf98ea8354268112c877bf6ecf1"
#define V_HELLO_PLAIN_HASH "c71b05fd1d1c7bf7e928ff18e58db5193e9316416cc26ba9cc9094da80d7011e"
#define V_CONFIG \
	"434149524e43464701000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3" \
	"a4a5a6a7a8a9aaabacadaeaf0040000000000100000004000000000100000000"
#define V_SEALED_HELLO \
	"8a5602fcb6cb0c062fe251c081c5d6ebaea96fd67bdaee03a35f7cd837f3d7ad" \
	"7b1359ee7f961ed440e78f1d8d9e1df5142cc7d20c"
#define V_CAIRN_ID "3445911f4667b2fa3b5a3d91aaf5566c7bec442863fbe0721e5040ca37b980c9"
#define V_SEALED_CAIRN \
	"e0015a1ecf87bb043b69eff99269bd6dee2e70fbf2447a6fe9a37492306166f7" \
	"8f8db66ad30b6066aba7127bf6c5ef2b400c2c58a4c9e240bebd1c53d64e6cce"
#define V_PACK \
	"434149524e504b318a5602fcb6cb0c062fe251c081c5d6ebaea96fd67bdaee03" \
	"a35f7cd837f3d7ad7b1359ee7f961ed440e78f1d8d9e1df5142cc7d20c7121d8" \
	"cffadf62f9f071a05b74bcf13e0e59d30e6a2bbe549dbaac4491f54f96747f60" \
	"f14663660b7a5cebb9afc1f22ec48900dfe5033e8af93e589160fa71d7b98799" \
	"e22bfb13ede62022c2e28df28bd04966c5f7c2c48948bc4f1b7b5d0000004341" \
	"49524e504b45"
#define V_PACK_ID "fb74dd0b9e358881bdaba0049441a54d5761fe320d619ce9b420c1e0a71e3a10"
#define V_INDEX \
	"01fb74dd0b9e358881bdaba0049441a54d5761fe320d619ce9b420c1e0a71e3a" \
	"10010183face2bfbd1802e759c0a66bf779978884fdbf98ea8354268112c877b" \
	"f6ecf108350c"
#define V_TREE \
	"01010100090068656c6c6f2e747874a4010000e8030000e803000015cd853dfe" \
	"9c97170c000000000000002a000000000000000183face2bfbd1802e759c0a66" \
	"bf779978884fdbf98ea8354268112c877bf6ecf10c0000"
#define V_TREE_ID "edb690e70b410dc4a2f8b718f87351f52394ac06bd72322fe811c2a66ef813cc"
#define V_SNAP_PAYLOAD \
	"010020000000edb690e70b410dc4a2f8b718f87351f52394ac06bd72322fe811" \
	"c2a66ef813cc02000800000000002a36fe9c97170c000800000000cac471fe9c" \
	"9717030003000000646231040008000000706f73746772657309000b00000063" \
	"6169726e20302e312e3005000a0000002f68656c6c6f2e747874080040000000" \
	"0c00000000000000000000000000000000000000000000000100000000000000" \
	"0000000000000000010000000000000000000000000000000000000000000000" \
	"0a000400000000000000"
#define V_SNAP_SEALED \
	"434149524e534e315daea350c64e8d72bd88ca62b595c13861dd0684a59bc2f1" \
	"766d6fa6e0c722008662a8ff4d512d306728a186b351b96f552a8e28f8940a66" \
	"01b616032e3f6b86c147a3cc79daca435a795884e53e6772b8ac4aa7b4055ba9" \
	"78f7c73ac9dd1c825733154d5832f062896118b76611a925485dc242d6dbe70e" \
	"97b3a5facb22176890d45aef50fff47e00e7c7d56f56ba18589f966e64e699c6" \
	"3761a6fb3e271dd0dcb4d543f307878a413cf4cda40249a60ef66755c1bdf08b" \
	"5145276106eb279cbf5007"
#define V_KEYFILE \
	"434149524e4b4559010000000200000001000000000000000020000000000000" \
	"230ccffe2b70a35215231ad75c9b86fecd3a026b0000000001006801007592c4" \
	"f87ac2fd254ccf573af5711ca4769297ff93ce0555ab87d3a1b213ec5e16fbd2" \
	"8090d071513e83060b3b41db183a50c56b9be1270d9ab8e59aa4c7ccdc1b55f9" \
	"7fabfd0afd10"
#define V_SNAP_NAME "5d8de7cfcdee0dbf028c052739b332ee703a3bfdadde427ae435e2cc6dcbfd8a"
#define V_KEYFILE_NAME "7bc047ae62de8fda663aebca9003d5e3ce0e4c1522322e733b99de2b4f4cec0c"

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
	CHECK(hex_is(k->id_key, 32, V_ID_KEY));
	CHECK(hex_is(k->enc_key, 32, V_ENC_KEY));
	for (int i = 0; i < 4; i++)
		CHECK(k->gear[i] == V_GEAR[i]);
	CHECK(k->gear[255] == V_GEAR_255);
	blob_id(id, k, BLOB_DATA, HELLO, 12);
	CHECK(hex_is(id, 32, V_HELLO_ID));
	plain_hash(id, HELLO, 12);
	CHECK(hex_is(id, 32, V_HELLO_PLAIN_HASH));
}

/* ---- config ---- */

/* The vectors' master key: bytes 0x00..0x1f. */
static struct repo_keys *test_master_keys(void)
{
	uint8_t master[32];
	for (int i = 0; i < 32; i++)
		master[i] = (uint8_t)i;
	return keys_new(master);
}

static void test_config(void)
{
	struct repo_config c, d;
	struct buf b = BUF_INIT;
	struct cairn_err err;
	memset(&c, 0, sizeof(c));
	c.version = 1;
	for (int i = 0; i < 32; i++)
		c.id[i] = (uint8_t)(0xa0 + i % 16);
	c.chunker.min = 16384;
	c.chunker.avg = 65536;
	c.chunker.max = 262144;
	c.pack_size = 16u << 20;
	struct repo_keys *k = test_master_keys();
	CHECK_RC(config_encode(&c, k, &b), 0);
	keys_free(k);
	CHECK(b.len == 64 && hex_is(b.data, b.len, V_CONFIG));
	CHECK_RC(config_decode(b.data, b.len, &d, &err), 0);
	CHECK(d.version == 1 && memcmp(d.id, c.id, 32) == 0 && d.chunker.min == 16384 &&
	      d.chunker.avg == 65536 && d.chunker.max == 262144 && d.pack_size == 16u << 20);
	/* An unknown version, or any mandatory feature, is refused. */
	b.data[8] = 2;
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_EVERSION);
	b.data[8] = 1;
	b.data[60] = 1;
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_EVERSION);
	b.data[60] = 0;
	b.data[0] = 'X';
	CHECK_RC(config_decode(b.data, b.len, &d, &err), CAIRN_ENOREPO);
	buf_free(&b);
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
	CHECK(strcmp(key, "packs/fb/" V_PACK_ID) == 0);
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

/* ---- a tree and a snapshot ---- */

static void test_tree_snapshot(const struct repo_keys *k, struct sealer *s)
{
	struct tree t = TREE_INIT, t2 = TREE_INIT;
	struct node nd;
	struct buf b = BUF_INIT, plain = BUF_INIT;
	struct cairn_err err;
	struct snapshot sn, dec;
	uint8_t id[32], tid[32];
	size_t n;

	blob_id(id, k, BLOB_DATA, HELLO, 12);
	memset(&nd, 0, sizeof(nd));
	nd.name = strdup("hello.txt");
	nd.type = NODE_FILE;
	nd.mode = 0644;
	nd.uid = 1000;
	nd.gid = 1000;
	nd.mtime_ns = 1700000000123456789LL;
	nd.size = 12;
	nd.inode = 42;
	CHECK(nd.name && node_add_blob(&nd, id, 12) == 0 && tree_add(&t, &nd) == 0);
	CHECK_RC(tree_encode(&t, &b, &err), 0);
	CHECK(hex_is(b.data, b.len, V_TREE));
	blob_id(tid, k, BLOB_TREE, b.data, b.len);
	CHECK(hex_is(tid, 32, V_TREE_ID));
	CHECK_RC(tree_decode(b.data, b.len, &t2, &err), 0);
	CHECK(t2.n == 1 && strcmp(t2.nodes[0].name, "hello.txt") == 0 &&
	      t2.nodes[0].nblobs == 1 && t2.nodes[0].blobs[0].len == 12 &&
	      t2.nodes[0].mtime_ns == 1700000000123456789LL);

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

	/* The payload is what cairn 0.1.0 wrote for sn; later writers may add
	 * fields (optional tags, a longer STATS), so it is checked by decoding:
	 * it must stay readable.  Encoding sn must give what decodes the same. */
	uint8_t *sealed = unhex(V_SNAP_SEALED, &n);
	CHECK_RC(obj_open(s, k, "CAIRNSN1", V_SNAP_NAME, sealed, n, &plain, "snapshot", &err), 0);
	CHECK(hex_is(plain.data, plain.len, V_SNAP_PAYLOAD));
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			CHECK_RC(snapshot_encode(&sn, &b), 0);
			buf_reset(&plain);
			CHECK_RC(buf_append(&plain, b.data, b.len), 0);
		}
		CHECK_RC(snapshot_decode(plain.data, plain.len, &dec, &err), 0);
		CHECK(memcmp(dec.root, tid, 32) == 0 && dec.host && strcmp(dec.host, "db1") == 0 &&
		      dec.user && strcmp(dec.user, "postgres") == 0 && dec.program &&
		      strcmp(dec.program, "cairn 0.1.0") == 0 && dec.npaths == 1 &&
		      strcmp(dec.paths[0], "/hello.txt") == 0 &&
		      dec.time_ns == 1700000000000000000LL &&
		      dec.end_time_ns == 1700000001000000000LL && dec.stats.logical_bytes == 12 &&
		      dec.stats.files == 1 && dec.stats.blobs == 1 && dec.stats.new_blobs == 0 &&
		      dec.flags == 0 && dec.ntags == 0 && !dec.has_parent);
		snapshot_free(&dec);
	}
	/* The magic is associated data: not an index object. */
	CHECK_RC(obj_open(s, k, "CAIRNIX1", NULL, sealed, n, &plain, "x", &err), CAIRN_ECORRUPT);
	/* The name is the hash of the bytes. */
	sealed[n - 1] ^= 1;
	CHECK_RC(obj_open(s, k, "CAIRNSN1", V_SNAP_NAME, sealed, n, &plain, "x", &err),
		 CAIRN_ECORRUPT);
	free(sealed);
	tree_free(&t);
	tree_free(&t2);
	buf_free(&b);
	buf_free(&plain);
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

/* ---- the chunker ---- */

static void test_chunker(const struct repo_keys *k)
{
	struct fastcdc c;
	struct fastcdc_params p = {16384, 65536, 262144};
	const size_t len = 1u << 20;
	uint8_t *data = malloc(len);
	uint64_t x = 0;
	CHECK(data != NULL);
	if (!data)
		return;
	CHECK(fastcdc_init(&c, &p, k->gear) == 0);
	CHECK(c.mask_s == V_MASK_S && c.mask_l == V_MASK_L);
	for (size_t i = 0; i < len; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		data[i] = (uint8_t)(x >> 56);
	}
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
	test_config();
	test_uvar();
	test_blobs(k, s);
	test_pack(k, s);
	test_tree_snapshot(k, s);
	test_keyfile();
	test_chunker(k);
	sealer_free(s);
	keys_free(k);
	return t_done();
}
