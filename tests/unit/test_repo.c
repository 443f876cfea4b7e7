/*
 * test_repo.c — the repository engine: sealing, packs, trees, snapshots,
 * index objects, and a write/read round trip through a local repository.
 * Every parser is also fed every one-byte corruption of a valid input: it
 * must refuse (or, for plain encodings, parse) without crashing.
 */
#include "repo/check.h"
#include "repo/fs.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "tests/unit/t.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct repo_keys *test_keys(uint8_t seed)
{
	uint8_t master[32];
	for (int i = 0; i < 32; i++)
		master[i] = (uint8_t)(seed + i);
	return keys_new(master);
}

static void test_blob_seal(void)
{
	struct repo_keys *k = test_keys(1), *k2 = test_keys(2);
	struct sealer *s = sealer_new(3);
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	uint8_t id[32], other[32];
	char text[4096];
	memset(text, 'a', sizeof(text)); /* compressible */
	blob_id(id, k, BLOB_DATA, text, sizeof(text));
	blob_id(other, k, BLOB_DATA, "x", 1);
	CHECK_RC(blob_seal(s, k, BLOB_DATA, id, text, sizeof(text), &sealed, NULL), 0);
	CHECK(sealed.len < sizeof(text)); /* compressed */
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed.data, sealed.len, sizeof(text), &out, NULL), 0);
	CHECK(out.len == sizeof(text) && memcmp(out.data, text, sizeof(text)) == 0);
	/* Wrong type, wrong id, wrong key, wrong length: all refused. */
	CHECK_RC(blob_open(s, k, BLOB_TREE, id, sealed.data, sealed.len, 0, &out, NULL), CAIRN_ECORRUPT);
	CHECK(out.len == 0);
	CHECK_RC(blob_open(s, k, BLOB_DATA, other, sealed.data, sealed.len, 0, &out, NULL), CAIRN_ECORRUPT);
	CHECK_RC(blob_open(s, k2, BLOB_DATA, id, sealed.data, sealed.len, 0, &out, NULL), CAIRN_ECORRUPT);
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed.data, sealed.len, 5, &out, NULL), CAIRN_ECORRUPT);
	/* Every single flipped bit in the first 64 bytes is detected. */
	int caught = 0, tries = 0;
	for (size_t i = 0; i < sealed.len && i < 64; i++) {
		sealed.data[i] ^= 0x10;
		caught += blob_open(s, k, BLOB_DATA, id, sealed.data, sealed.len, 0, &out, NULL) ==
			  CAIRN_ECORRUPT;
		tries++;
		sealed.data[i] ^= 0x10;
	}
	CHECK(caught == tries);
	/* Incompressible data is stored raw, and still opens. */
	uint8_t rnd[1000];
	randombytes_buf(rnd, sizeof(rnd));
	blob_id(id, k, BLOB_DATA, rnd, sizeof(rnd));
	buf_reset(&sealed);
	CHECK_RC(blob_seal(s, k, BLOB_DATA, id, rnd, sizeof(rnd), &sealed, NULL), 0);
	CHECK(sealed.len == sizeof(rnd) + CAIRN_SEAL_OVERHEAD);
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed.data, sealed.len, sizeof(rnd), &out, NULL), 0);
	/* Truncated input is refused. */
	CHECK_RC(blob_open(s, k, BLOB_DATA, id, sealed.data, 10, 0, &out, NULL), CAIRN_ECORRUPT);
	buf_free(&sealed);
	buf_free(&out);
	sealer_free(s);
	keys_free(k);
	keys_free(k2);
}

static void test_objects_and_keys(void)
{
	struct repo_keys *k = test_keys(3);
	struct sealer *s = sealer_new(3);
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	char name[65];
	CHECK_RC(obj_seal(s, k, "CAIRNSN1", "payload", 7, &sealed, name, NULL), 0);
	CHECK_RC(obj_open(s, k, "CAIRNSN1", name, sealed.data, sealed.len, &out, "x", NULL), 0);
	CHECK(out.len == 7 && memcmp(out.data, "payload", 7) == 0);
	CHECK_RC(obj_open(s, k, "CAIRNIX1", NULL, sealed.data, sealed.len, &out, "x", NULL),
		 CAIRN_ECORRUPT);
	sealed.data[sealed.len - 1] ^= 1;
	CHECK_RC(obj_open(s, k, "CAIRNSN1", name, sealed.data, sealed.len, &out, "x", NULL),
		 CAIRN_ECORRUPT);
	CHECK_RC(obj_open(s, k, "CAIRNSN1", NULL, sealed.data, sealed.len, &out, "x", NULL),
		 CAIRN_ECORRUPT);

	/* Key files: the right passphrase opens, a wrong one does not. */
	struct kdf_params kdf = {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
	struct buf kf = BUF_INIT;
	struct key_info info;
	uint8_t master[32];
	CHECK_RC(keyfile_make(k->master, "pw", 2, &kdf, "host", "user", &kf, &info, NULL), 0);
	CHECK(strcmp(info.host, "host") == 0 && strcmp(info.user, "user") == 0);
	CHECK_RC(keyfile_open(kf.data, kf.len, "pw", 2, master, NULL), 0);
	CHECK(memcmp(master, k->master, 32) == 0);
	CHECK_RC(keyfile_open(kf.data, kf.len, "pW", 2, master, NULL), CAIRN_EPASS);
	/* Altering the plaintext header (e.g. the host) breaks the key. */
	kf.data[kf.len - 60] ^= 1;
	CHECK(keyfile_open(kf.data, kf.len, "pw", 2, master, NULL) != 0);
	CHECK_RC(keyfile_open(kf.data, 20, "pw", 2, master, NULL), CAIRN_ECORRUPT);
	buf_free(&kf);
	buf_free(&sealed);
	buf_free(&out);
	sealer_free(s);
	keys_free(k);
}

static void test_pack(void)
{
	struct repo_keys *k = test_keys(4);
	struct sealer *s = sealer_new(3);
	struct pack_writer pw;
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	uint8_t ids[10][32], pid[32];
	pack_writer_init(&pw);
	for (int i = 0; i < 10; i++) {
		char data[100];
		memset(data, 'a' + i, sizeof(data));
		blob_id(ids[i], k, BLOB_DATA, data, sizeof(data));
		buf_reset(&sealed);
		CHECK_RC(blob_seal(s, k, BLOB_DATA, ids[i], data, sizeof(data), &sealed, NULL), 0);
		CHECK_RC(pack_writer_add(&pw, BLOB_DATA, ids[i], sealed.data, sealed.len, 100, NULL), 0);
	}
	CHECK_RC(pack_writer_finish(&pw, k, pid, NULL), 0);
	struct index_entry *e = NULL;
	size_t n = 0;
	CHECK_RC(pack_read_dir(k, pid, pw.data.data, pw.data.len, &e, &n, NULL), 0);
	CHECK(n == 10);
	for (size_t i = 0; i < n; i++) {
		CHECK(memcmp(e[i].id, ids[i], 32) == 0);
		CHECK_RC(blob_open(s, k, BLOB_DATA, e[i].id, pw.data.data + e[i].loc.offset,
				   e[i].loc.sealed_len, e[i].loc.raw_len, &out, NULL), 0);
	}
	free(e);
	/* Index objects round-trip the entries. */
	struct buf ib = BUF_INIT;
	struct index_entry *back = NULL;
	size_t nb = 0;
	CHECK_RC(index_encode(pw.ents, pw.n, &ib), 0);
	CHECK_RC(index_decode(ib.data, ib.len, &back, &nb, NULL), 0);
	CHECK(nb == 10 && memcmp(back[3].id, ids[3], 32) == 0 &&
	      back[3].loc.offset == pw.ents[3].loc.offset && memcmp(back[3].loc.pack, pid, 32) == 0);
	free(back);
	CHECK_RC(index_decode(ib.data, ib.len - 1, &back, &nb, NULL), CAIRN_ECORRUPT);
	/* A truncated pack and a damaged directory are refused. */
	CHECK_RC(pack_read_dir(k, pid, pw.data.data, pw.data.len / 2, &e, &n, NULL), CAIRN_ECORRUPT);
	pw.data.data[pw.data.len - 20] ^= 1;
	CHECK_RC(pack_read_dir(k, pid, pw.data.data, pw.data.len, &e, &n, NULL), CAIRN_ECORRUPT);
	buf_free(&ib);
	buf_free(&sealed);
	buf_free(&out);
	pack_writer_free(&pw);
	sealer_free(s);
	keys_free(k);
}

static void test_tree_snapshot(void)
{
	struct tree t = TREE_INIT, back = TREE_INIT;
	struct buf b = BUF_INIT;
	const char *names[] = {"zeta", "alpha", "mid"};
	for (int i = 0; i < 3; i++) {
		struct node nd;
		memset(&nd, 0, sizeof(nd));
		nd.name = strdup(names[i]);
		nd.type = i == 0 ? NODE_SYMLINK : i == 1 ? NODE_FILE : NODE_DIR;
		nd.mode = 0640;
		nd.size = 12345;
		nd.mtime_ns = -5; /* before 1970 is allowed */
		if (nd.type == NODE_SYMLINK)
			nd.target = strdup("../x");
		if (nd.type == NODE_FILE) {
			uint8_t id[32] = {1, 2, 3};
			node_add_blob(&nd, id, 777);
			node_add_blob(&nd, id, 0);
		}
		tree_add(&t, &nd);
	}
	CHECK_RC(tree_encode(&t, &b, NULL), 0);
	CHECK_RC(tree_decode(b.data, b.len, &back, NULL), 0);
	CHECK(back.n == 3 && strcmp(back.nodes[0].name, "alpha") == 0);
	const struct node *f = tree_find(&back, "alpha");
	CHECK(f && f->nblobs == 2 && f->blobs[0].len == 777 && f->mtime_ns == -5 && f->mode == 0640);
	const struct node *l = tree_find(&back, "zeta");
	CHECK(l && l->type == NODE_SYMLINK && strcmp(l->target, "../x") == 0);
	CHECK(tree_find(&back, "nope") == NULL);
	tree_free(&back);
	/* Every truncation is refused without a crash. */
	int refused = 0;
	for (size_t cut = 0; cut < b.len; cut++) {
		refused += tree_decode(b.data, cut, &back, NULL) == CAIRN_ECORRUPT;
		tree_free(&back);
	}
	CHECK(refused == (int)b.len);
	/* Every byte flipped: no crash (ASan watches), result freed. */
	for (size_t i = 0; i < b.len; i++) {
		b.data[i] ^= 0xff;
		if (tree_decode(b.data, b.len, &back, NULL) == 0)
			tree_free(&back);
		b.data[i] ^= 0xff;
	}
	/* Duplicate names cannot be encoded. */
	struct node dup;
	memset(&dup, 0, sizeof(dup));
	dup.name = strdup("mid");
	dup.type = NODE_DIR;
	tree_add(&t, &dup);
	CHECK_RC(tree_encode(&t, &b, NULL), CAIRN_EUSAGE);
	tree_free(&t);

	struct snapshot s, s2;
	memset(&s, 0, sizeof(s));
	s.root[0] = 9;
	s.time_ns = 1700000000123456789LL;
	s.host = strdup("db1");
	strlist_add(&s.tags, &s.ntags, "nightly");
	strlist_add(&s.tags, &s.ntags, "x");
	strlist_add(&s.paths, &s.npaths, "/srv");
	s.stats.logical_bytes = 42;
	s.stats.errors = 1;
	s.flags = SNAP_INCOMPLETE;
	CHECK_RC(snapshot_encode(&s, &b), 0);
	CHECK_RC(snapshot_decode(b.data, b.len, &s2, NULL), 0);
	CHECK(s2.root[0] == 9 && s2.time_ns == s.time_ns && strcmp(s2.host, "db1") == 0 &&
	      s2.ntags == 2 && strcmp(s2.tags[1], "x") == 0 && s2.stats.logical_bytes == 42 &&
	      s2.flags == SNAP_INCOMPLETE && !s2.has_parent);
	snapshot_free(&s2);
	/* An unknown optional field is skipped; an unknown critical one refused. */
	size_t len = b.len;
	buf_put_u16(&b, 0x0777);
	buf_put_u32(&b, 1);
	buf_put_u8(&b, 0);
	CHECK_RC(snapshot_decode(b.data, b.len, &s2, NULL), 0);
	snapshot_free(&s2);
	b.len = len;
	buf_put_u16(&b, 0x8777);
	buf_put_u32(&b, 0);
	CHECK_RC(snapshot_decode(b.data, b.len, &s2, NULL), CAIRN_EVERSION);
	CHECK_RC(snapshot_decode(b.data, 3, &s2, NULL), CAIRN_ECORRUPT);
	snapshot_free(&s);
	buf_free(&b);
}

/* A whole repository: init, write blobs spanning several packs, a
 * snapshot, reopen (cache synced from index/), read back, check. */
struct sink_check {
	const struct blob_in *in;
	size_t seen;
	int bad;
};

static int sink_cmp(void *arg, size_t i, const uint8_t *p, size_t n)
{
	struct sink_check *sc = arg;
	sc->bad |= i != sc->seen || n != sc->in[i].n || memcmp(p, sc->in[i].p, n) != 0;
	sc->seen++;
	return 0;
}

static void test_roundtrip(void)
{
	setenv("CAIRN_THREADS", "4", 1); /* more workers than cores: real races */
	char dir[] = "/tmp/cairn-test-repo-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char url[300], cache[300], id[65];
	snprintf(url, sizeof(url), "%s/repo", dir);
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	struct repo_init_opts io;
	memset(&io, 0, sizeof(io));
	io.url = url;
	io.pass = "pw";
	io.pass_len = 2;
	io.kdf.opslimit = crypto_pwhash_OPSLIMIT_MIN;
	io.kdf.memlimit = crypto_pwhash_MEMLIMIT_MIN;
	io.pack_size = 64 * 1024; /* small packs: several of them */
	CHECK_RC(repo_init(&io, id, NULL), 0);
	CHECK_RC(repo_init(&io, id, NULL), CAIRN_EEXIST);

	struct repo *r = NULL;
	struct repo_open_opts oo;
	memset(&oo, 0, sizeof(oo));
	oo.url = url;
	oo.pass = "wrong";
	oo.pass_len = 5;
	oo.cache_base = cache;
	CHECK_RC(repo_open(&r, &oo, NULL), CAIRN_EPASS);
	oo.pass = "pw";
	oo.pass_len = 2;
	CHECK_RC(repo_open(&r, &oo, NULL), 0);
	if (!r)
		return;
	uint8_t ids[200][32];
	struct tree t = TREE_INIT;
	struct node f;
	memset(&f, 0, sizeof(f));
	f.name = strdup("file");
	f.type = NODE_FILE;
	for (int i = 0; i < 200; i++) {
		uint8_t data[2000];
		int added = 0;
		randombytes_buf(data, sizeof(data));
		CHECK_RC(repo_put_blob(r, BLOB_DATA, data, sizeof(data), ids[i], &added, NULL), 0);
		CHECK(added == 1);
		CHECK_RC(repo_put_blob(r, BLOB_DATA, data, sizeof(data), ids[i], &added, NULL), 0);
		CHECK(added == 0); /* dedup within the run */
		node_add_blob(&f, ids[i], sizeof(data));
		f.size += sizeof(data);
	}
	/* The same list in list form, and a patch over it: entries 5, 77 and
	 * 199 replaced, one appended. */
	struct node lf, pf;
	memset(&lf, 0, sizeof(lf));
	memset(&pf, 0, sizeof(pf));
	lf.name = strdup("listed");
	pf.name = strdup("patched");
	lf.type = pf.type = NODE_FILE;
	CHECK_RC(node_copy_blobs(&lf, &f), 0);
	lf.size = f.size;
	CHECK_RC(repo_node_store_list(r, &lf, NULL, NULL), 0);
	CHECK(lf.has_list && lf.list_count == 200 && lf.npatch == 0);
	uint8_t fresh[4][32];
	for (int i = 0; i < 4; i++) {
		uint8_t data[1000];
		randombytes_buf(data, sizeof(data));
		CHECK_RC(repo_put_blob(r, BLOB_DATA, data, sizeof(data), fresh[i], NULL, NULL), 0);
	}
	for (int i = 0; i < 200; i++) {
		int k = i == 5 ? 0 : i == 77 ? 1 : i == 199 ? 2 : -1;
		node_add_blob(&pf, k < 0 ? ids[i] : fresh[k], k < 0 ? 2000 : 1000);
		pf.size += k < 0 ? 2000 : 1000;
	}
	node_add_blob(&pf, fresh[3], 1000);
	pf.size += 1000;
	CHECK_RC(repo_node_store_list(r, &pf, &lf, NULL), 0);
	CHECK(pf.has_list && pf.list_count == 201 && pf.npatch == 4 &&
	      memcmp(pf.list_id, lf.list_id, 32) == 0 && pf.patch[0].idx == 5 && pf.patch[3].idx == 200);
	/* Too many differences: a list blob of its own instead. */
	struct node qf;
	memset(&qf, 0, sizeof(qf));
	qf.type = NODE_FILE;
	for (int i = 0; i < 200; i++)
		node_add_blob(&qf, i % 4 ? ids[i] : fresh[0], 2000);
	CHECK_RC(repo_node_store_list(r, &qf, &lf, NULL), 0);
	CHECK(qf.has_list && qf.npatch == 0 && memcmp(qf.list_id, lf.list_id, 32) != 0);
	node_free(&qf);
	tree_add(&t, &f);
	tree_add(&t, &lf);
	tree_add(&t, &pf);
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	CHECK_RC(repo_put_tree(r, &t, s.root, NULL), 0);
	tree_free(&t);
	s.host = strdup("h");
	CHECK_RC(repo_snapshot_write(r, &s, NULL), 0);
	CHECK(repo_get_write_stats(r)->packs >= 5);
	repo_close(r);

	/* Reopen with a fresh cache: everything comes from index/. */
	snprintf(cache, sizeof(cache), "%s/cache2", dir);
	CHECK_RC(repo_open(&r, &oo, NULL), 0);
	if (!r)
		return;
	struct buf b = BUF_INIT;
	for (int i = 0; i < 200; i += 17)
		CHECK_RC(repo_get_blob(r, BLOB_DATA, ids[i], &b, NULL), 0);
	struct snapshot found;
	CHECK_RC(repo_snapshot_find(r, "latest", &found, NULL), 0);
	CHECK(strcmp(found.name, s.name) == 0);
	/* List form read back: the lists come out as written. */
	struct tree rt = TREE_INIT;
	CHECK_RC(repo_get_tree(r, found.root, &rt, NULL), 0);
	struct node *rl = (struct node *)tree_find(&rt, "listed");
	struct node *rp = (struct node *)tree_find(&rt, "patched");
	CHECK(rl && rp && rl->has_list && rl->nblobs == 0 && rp->npatch == 4);
	if (rl && rp) {
		CHECK_RC(repo_node_blobs(r, rl, NULL), 0);
		CHECK_RC(repo_node_blobs(r, rp, NULL), 0);
		CHECK(rl->nblobs == 200 && memcmp(rl->blobs[199].id, ids[199], 32) == 0);
		CHECK(rp->nblobs == 201 && memcmp(rp->blobs[4].id, ids[4], 32) == 0 &&
		      memcmp(rp->blobs[5].id, fresh[0], 32) == 0 &&
		      memcmp(rp->blobs[200].id, fresh[3], 32) == 0 && rp->blobs[200].len == 1000);
		/* A node whose size disagrees with its list is refused. */
		node_release_blobs(rp);
		rp->size++;
		CHECK_RC(repo_node_blobs(r, rp, NULL), CAIRN_ECORRUPT);
		rp->size--;
		/* A list blob that is missing: ENOTFOUND. */
		rp->list_id[0] ^= 1;
		CHECK_RC(repo_node_blobs(r, rp, NULL), CAIRN_ENOTFOUND);
		rp->list_id[0] ^= 1;
	}
	/* A version-2 tree: every truncation refused, byte flips survive. */
	struct buf tb = BUF_INIT;
	CHECK_RC(tree_encode(&rt, &tb, NULL), 0);
	CHECK(tb.len > 0 && tb.data[0] == 2);
	for (size_t cut = 0; cut < tb.len; cut++) {
		struct tree bt = TREE_INIT;
		CHECK_RC(tree_decode(tb.data, cut, &bt, NULL), CAIRN_ECORRUPT);
		tree_free(&bt);
	}
	for (size_t i = 0; i < tb.len; i++) {
		struct tree bt = TREE_INIT;
		tb.data[i] ^= 0x5a;
		if (tree_decode(tb.data, tb.len, &bt, NULL) == 0)
			tree_free(&bt);
		tb.data[i] ^= 0x5a;
	}
	buf_free(&tb);
	tree_free(&rt);

	/* Batches on 4 workers: the same ids as one at a time, duplicates
	 * within the batch stored once, and read back in order. */
	static uint8_t pool[3][4096];
	struct blob_in in[300];
	uint8_t bids[300][32];
	for (int i = 0; i < 3; i++)
		randombytes_buf(pool[i], sizeof(pool[i]));
	for (int i = 0; i < 300; i++) {
		in[i].p = i < 100 ? (const void *)pool[i % 3] : (const void *)((const uint8_t *)pool[2] + i % 97);
		in[i].n = i < 100 ? 4096 : 2048;
	}
	uint64_t before = repo_get_write_stats(r)->new_blobs;
	CHECK_RC(repo_put_blobs(r, BLOB_DATA, in, 300, bids, NULL), 0);
	CHECK(repo_get_write_stats(r)->new_blobs - before == 3 + 97);
	uint8_t one[32];
	CHECK_RC(repo_put_blob(r, BLOB_DATA, in[250].p, in[250].n, one, NULL, NULL), 0);
	CHECK(memcmp(one, bids[250], 32) == 0);
	CHECK_RC(repo_flush(r, NULL), 0);
	struct blob_ref refs[300];
	for (int i = 0; i < 300; i++) {
		memcpy(refs[i].id, bids[i], 32);
		refs[i].len = (uint32_t)in[i].n;
	}
	struct sink_check sc = {in, 0, 0};
	CHECK_RC(repo_get_blobs(r, BLOB_DATA, refs, 300, sink_cmp, &sc, NULL), 0);
	CHECK(sc.seen == 300 && sc.bad == 0);
	/* A blob that is not there: the ones before it still come, in order. */
	refs[150].id[0] ^= 1;
	sc.seen = 0;
	CHECK_RC(repo_get_blobs(r, BLOB_DATA, refs, 300, sink_cmp, &sc, NULL), CAIRN_ENOTFOUND);
	CHECK(sc.seen == 150 && sc.bad == 0);
	/* ... also in the second window (256 blobs each), opened while the
	 * first is handed out. */
	refs[150].id[0] ^= 1;
	refs[280].id[0] ^= 1;
	sc.seen = 0;
	CHECK_RC(repo_get_blobs(r, BLOB_DATA, refs, 300, sink_cmp, &sc, NULL), CAIRN_ENOTFOUND);
	CHECK(sc.seen == 280 && sc.bad == 0);
	snapshot_free(&found);
	char prefix[9];
	memcpy(prefix, s.name, 8);
	prefix[8] = '\0';
	CHECK_RC(repo_snapshot_find(r, prefix, &found, NULL), 0);
	snapshot_free(&found);
	CHECK_RC(repo_snapshot_find(r, "abc", &found, NULL), CAIRN_EUSAGE);
	struct check_opts co = {.read_data = 1};
	struct check_result cr;
	CHECK_RC(repo_check(r, &co, &cr, NULL), 0);
	CHECK(cr.snapshots == 1 && cr.data_blobs >= 204 && cr.problems == 0);
	buf_free(&b);
	snapshot_free(&s);
	repo_close(r);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_blob_seal();
	test_objects_and_keys();
	test_pack();
	test_tree_snapshot();
	test_roundtrip();
	return t_done();
}
