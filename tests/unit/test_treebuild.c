/*
 * test_treebuild.c — the tree builder (repo/treebuild.h): entries fed in
 * random order, in random pieces, into a real local repository; the
 * stored trees are then walked and read back (repo_walk, repo_lookup_path,
 * repo_cat) and must hold exactly the expected entries, metadata and
 * bytes, with the same chunks as cutting each file whole.  Also: implicit
 * folders, parents after children, duplicates (the later wins), and the
 * usage errors.
 */
#include "repo/fs.h"
#include "repo/repo.h"
#include "repo/treebuild.h"
#include "tests/unit/t.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct want {
	const char *path; /* "/a/b" as repo_walk names it */
	uint8_t type;
	uint32_t mode;
	int64_t mtime;
	const char *target;
	uint8_t *data;
	size_t len;
	int seen;
};

#define NW 64
static struct want wants[NW];
static size_t nwant;

static struct want *want_add(const char *path, uint8_t type, uint32_t mode, int64_t mtime)
{
	struct want *w = &wants[nwant++];
	memset(w, 0, sizeof(*w));
	w->path = path;
	w->type = type;
	w->mode = mode;
	w->mtime = mtime;
	return w;
}

static struct want *want_find(const char *path)
{
	for (size_t i = 0; i < nwant; i++)
		if (!strcmp(wants[i].path, path))
			return &wants[i];
	return NULL;
}

static int walk_cb(void *arg, const char *path, const struct node *nd)
{
	int *unexpected = arg;
	if (!strcmp(path, "/"))
		return 0;
	struct want *w = want_find(path);
	if (!w) {
		fprintf(stderr, "unexpected entry %s\n", path);
		(*unexpected)++;
		return 0;
	}
	w->seen++;
	CHECK(nd->type == w->type);
	if (w->mode)
		CHECK(nd->mode == w->mode);
	if (w->mtime)
		CHECK(nd->mtime_ns == w->mtime);
	if (w->type == NODE_SYMLINK)
		CHECK(nd->target && !strcmp(nd->target, w->target));
	if (w->type == NODE_FILE)
		CHECK(nd->size == w->len);
	CHECK(nd->uid == 26 && nd->gid == 27);
	return 0;
}

/* The chunk lengths of cutting `data` whole. */
static size_t whole_cuts(const struct fastcdc *cdc, const uint8_t *data, size_t len,
			 uint32_t *lens, size_t max)
{
	size_t n = 0, off = 0;
	while (off < len && n < max) {
		size_t c = fastcdc_cut(cdc, data + off, len - off, 1);
		lens[n++] = (uint32_t)c;
		off += c;
	}
	return n;
}

static int open_repo(const char *dir, struct repo **r)
{
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
	io.chunker.min = 256; /* small chunks: files of several */
	io.chunker.avg = 1024;
	io.chunker.max = 4096;
	if (repo_init(&io, id, NULL))
		return -1;
	struct repo_open_opts oo;
	memset(&oo, 0, sizeof(oo));
	oo.url = url;
	oo.pass = "pw";
	oo.pass_len = 2;
	oo.cache_base = cache;
	return repo_open(r, &oo, NULL);
}

struct op {
	uint8_t type;
	const char *path;
	uint32_t mode;
	int64_t mtime;
	const char *target;
	struct want *w; /* file content from here */
	const uint8_t *data;
	size_t len;
};

static void shuffle(struct op *ops, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = randombytes_uniform((uint32_t)i);
		struct op t = ops[i - 1];
		ops[i - 1] = ops[j];
		ops[j] = t;
	}
}

static int feed(struct tree_builder *tb, const struct op *o)
{
	struct tb_meta m = {o->mode, 26, 27, o->mtime};
	struct cairn_err err;
	if (o->type == NODE_DIR)
		return tb_add_dir(tb, o->path, &m, &err);
	if (o->type == NODE_SYMLINK)
		return tb_add_symlink(tb, o->path, o->target, &m, &err);
	int rc = tb_file_begin(tb, o->path, &m, &err);
	size_t off = 0;
	while (!rc && off < o->len) {
		size_t piece = 1 + randombytes_uniform(7000);
		if (piece > o->len - off)
			piece = o->len - off;
		rc = tb_file_write(tb, o->data + off, piece, &err);
		off += piece;
	}
	rc = rc ? rc : tb_file_end(tb, &err);
	if (rc)
		fprintf(stderr, "feed %s: %s\n", o->path, err.msg);
	return rc;
}

static void test_random_order(const char *dir, struct repo *r, int round)
{
	(void)dir;
	struct op ops[NW];
	size_t nops = 0;
	nwant = 0;
	/* Files of assorted sizes, some below folders never given. */
	static const char *files[] = {
		"PG_VERSION", "global/pg_control", "base/1/1234", "base/1/1234_fsm",
		"base/5/16384", "base/5/16384.1", "deep/a/b/c/d/file", "empty",
		"pg_tblspc/16400/PG_15_1/5/16401", "x y/z\tq",
	};
	static const size_t sizes[] = {3, 8192, 20000, 0, 50001, 4096, 777, 0, 12345, 1};
	static uint8_t data[10][50001];
	char *paths[10];
	for (size_t i = 0; i < 10; i++) {
		randombytes_buf(data[i], sizes[i]);
		if (i == 4) /* repetitive: the same chunk many times over */
			for (size_t j = 0; j < sizes[i]; j++)
				data[i][j] = (uint8_t)(j % 251);
		paths[i] = malloc(strlen(files[i]) + 2);
		sprintf(paths[i], "/%s", files[i]);
		struct want *w = want_add(paths[i], NODE_FILE, 0640, 1000000000LL * (100 + (int64_t)i));
		w->data = data[i];
		w->len = sizes[i];
		ops[nops++] = (struct op){NODE_FILE, files[i], 0640, w->mtime, NULL, w, data[i], sizes[i]};
	}
	/* Folders given explicitly (some after their children, by the shuffle). */
	static const char *dirs[] = {"global", "base", "base/1", "base/5/", "pg_tblspc",
				     "./pg_tblspc/16400", "pg_wal", "pg_wal/archive_status"};
	static char dpaths[8][64];
	for (size_t i = 0; i < 8; i++) {
		snprintf(dpaths[i], sizeof(dpaths[i]), "/%s", dirs[i][0] == '.' ? dirs[i] + 2 : dirs[i]);
		size_t l = strlen(dpaths[i]);
		if (dpaths[i][l - 1] == '/')
			dpaths[i][l - 1] = '\0';
		want_add(dpaths[i], NODE_DIR, 0750, 5000000000LL + (int64_t)i);
		ops[nops++] = (struct op){NODE_DIR, dirs[i], 0750, 5000000000LL + (int64_t)i, NULL, NULL,
					  NULL, 0};
	}
	/* Implicit folders: mode 0700. */
	want_add("/deep", NODE_DIR, 0700, 0);
	want_add("/deep/a", NODE_DIR, 0700, 0);
	want_add("/deep/a/b", NODE_DIR, 0700, 0);
	want_add("/deep/a/b/c", NODE_DIR, 0700, 0);
	want_add("/deep/a/b/c/d", NODE_DIR, 0700, 0);
	want_add("/pg_tblspc/16400/PG_15_1", NODE_DIR, 0700, 0);
	want_add("/pg_tblspc/16400/PG_15_1/5", NODE_DIR, 0700, 0);
	want_add("/x y", NODE_DIR, 0700, 0);
	/* Links. */
	struct want *w = want_add("/link", NODE_SYMLINK, 0777, 42);
	w->target = "/somewhere/else";
	ops[nops++] = (struct op){NODE_SYMLINK, "link", 0777, 42, "/somewhere/else", NULL, NULL, 0};
	w = want_add("/base/emptylink", NODE_SYMLINK, 0777, 43);
	w->target = "";
	ops[nops++] = (struct op){NODE_SYMLINK, "base/emptylink", 0777, 43, "", NULL, NULL, 0};
	shuffle(ops, nops);

	struct tree_builder *tb = tb_new(r);
	CHECK(tb != NULL);
	if (!tb)
		return;
	int fails = 0;
	for (size_t i = 0; i < nops; i++)
		fails += feed(tb, &ops[i]) != 0;
	CHECK(fails == 0);
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	struct cairn_err err;
	CHECK_RC(tb_finish(tb, s.root, &err), 0);
	const struct tb_stats *st = tb_get_stats(tb);
	CHECK(st->files == 10);
	CHECK(st->dirs == 1 + 8 + 8);
	size_t total = 0;
	for (size_t i = 0; i < 10; i++)
		total += sizes[i];
	CHECK(st->bytes == total);
	s.host = strdup("h");
	s.time_ns = round;
	CHECK_RC(repo_snapshot_write(r, &s, &err), 0);

	int unexpected = 0;
	CHECK_RC(repo_walk(r, &s, "", walk_cb, &unexpected, &err), 0);
	CHECK(unexpected == 0);
	for (size_t i = 0; i < nwant; i++) {
		if (wants[i].seen != 1)
			fprintf(stderr, "%s seen %d times\n", wants[i].path, wants[i].seen);
		CHECK(wants[i].seen == 1);
	}
	/* Contents, and the chunks are those of cutting each file whole. */
	const struct fastcdc *cdc = repo_get_chunker(r);
	for (size_t i = 0; i < 10; i++) {
		char tmp[] = "/tmp/cairn-tb-cat-XXXXXX";
		int fd = mkstemp(tmp);
		CHECK(fd >= 0);
		CHECK_RC(repo_cat(r, &s, files[i], fd, &err), 0);
		off_t n = lseek(fd, 0, SEEK_END);
		CHECK(n == (off_t)sizes[i]);
		uint8_t *back = malloc(sizes[i] + 1);
		CHECK(pread(fd, back, sizes[i], 0) == (ssize_t)sizes[i]);
		CHECK(memcmp(back, data[i], sizes[i]) == 0);
		free(back);
		close(fd);
		unlink(tmp);
		struct node nd;
		CHECK_RC(repo_lookup_path(r, &s, files[i], &nd, &err), 0);
		uint32_t lens[200];
		size_t nc = whole_cuts(cdc, data[i], sizes[i], lens, 200);
		CHECK(nd.nblobs == nc);
		for (size_t j = 0; j < nc && j < nd.nblobs; j++)
			CHECK(nd.blobs[j].len == lens[j]);
		node_free(&nd);
	}
	snapshot_free(&s);
	/* After finish: nothing more. */
	struct tb_meta m = {0755, 0, 0, 0};
	CHECK_RC(tb_add_dir(tb, "late", &m, &err), CAIRN_EUSAGE);
	tb_free(tb);
	for (size_t i = 0; i < 10; i++)
		free(paths[i]);
}

/* Duplicates and replacements: the later entry wins. */
static void test_duplicates(struct repo *r)
{
	struct tree_builder *tb = tb_new(r);
	struct cairn_err err;
	struct tb_meta m1 = {0600, 26, 27, 1}, m2 = {0644, 26, 27, 2}, md = {0755, 26, 27, 3};
	CHECK(tb != NULL);
	if (!tb)
		return;
	/* A file twice: the second content. */
	CHECK_RC(tb_file_begin(tb, "f", &m1, &err), 0);
	CHECK_RC(tb_file_write(tb, "first version", 13, &err), 0);
	CHECK_RC(tb_file_end(tb, &err), 0);
	CHECK_RC(tb_file_begin(tb, "f", &m2, &err), 0);
	CHECK_RC(tb_file_write(tb, "second", 6, &err), 0);
	CHECK_RC(tb_file_end(tb, &err), 0);
	/* A folder with children replaced by a file: the children go. */
	CHECK_RC(tb_file_begin(tb, "d/child", &m1, &err), 0);
	CHECK_RC(tb_file_end(tb, &err), 0);
	CHECK_RC(tb_add_dir(tb, "d/sub/subsub", &md, &err), 0);
	CHECK_RC(tb_file_begin(tb, "d", &m1, &err), 0);
	CHECK_RC(tb_file_write(tb, "now a file", 10, &err), 0);
	CHECK_RC(tb_file_end(tb, &err), 0);
	/* A link, then something below it: it becomes a folder. */
	CHECK_RC(tb_add_symlink(tb, "l", "/target", &m1, &err), 0);
	CHECK_RC(tb_add_dir(tb, "l/inside", &md, &err), 0);
	/* A folder given twice keeps its children, takes the later metadata. */
	CHECK_RC(tb_add_dir(tb, "k", &md, &err), 0);
	CHECK_RC(tb_file_begin(tb, "k/x", &m1, &err), 0);
	CHECK_RC(tb_file_end(tb, &err), 0);
	CHECK_RC(tb_add_dir(tb, "k/", &m2, &err), 0);
	/* The root itself: accepted as a folder, refused as anything else. */
	CHECK_RC(tb_add_dir(tb, ".", &md, &err), 0);
	CHECK_RC(tb_add_dir(tb, "", &md, &err), 0);
	CHECK_RC(tb_file_begin(tb, "/", &m1, &err), CAIRN_EUSAGE);
	/* Bad paths and call order. */
	CHECK_RC(tb_add_dir(tb, "a/../b", &md, &err), CAIRN_EUSAGE);
	CHECK_RC(tb_file_write(tb, "x", 1, &err), CAIRN_EUSAGE);
	CHECK_RC(tb_file_end(tb, &err), CAIRN_EUSAGE);
	CHECK_RC(tb_file_begin(tb, "open", &m1, &err), 0);
	CHECK_RC(tb_add_dir(tb, "other", &md, &err), CAIRN_EUSAGE);
	uint8_t root[32];
	CHECK_RC(tb_finish(tb, root, &err), CAIRN_EUSAGE);
	CHECK_RC(tb_file_end(tb, &err), 0);
	CHECK_RC(tb_finish(tb, root, &err), 0);
	CHECK_RC(tb_finish(tb, root, &err), CAIRN_EUSAGE);
	tb_free(tb);

	struct snapshot s;
	memset(&s, 0, sizeof(s));
	memcpy(s.root, root, 32);
	struct node nd;
	CHECK_RC(repo_lookup_path(r, &s, "f", &nd, &err), 0);
	CHECK(nd.type == NODE_FILE && nd.size == 6 && nd.mode == 0644 && nd.mtime_ns == 2);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "d", &nd, &err), 0);
	CHECK(nd.type == NODE_FILE && nd.size == 10);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "d/child", &nd, &err), CAIRN_ENOTFOUND);
	CHECK_RC(repo_lookup_path(r, &s, "l", &nd, &err), 0);
	CHECK(nd.type == NODE_DIR && nd.mode == 0700 && nd.target == NULL);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "l/inside", &nd, &err), 0);
	CHECK(nd.type == NODE_DIR && nd.mode == 0755);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "k", &nd, &err), 0);
	CHECK(nd.type == NODE_DIR && nd.mode == 0644 && nd.mtime_ns == 2);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "k/x", &nd, &err), 0);
	node_free(&nd);
	CHECK_RC(repo_lookup_path(r, &s, "open", &nd, &err), 0);
	CHECK(nd.type == NODE_FILE && nd.size == 0 && nd.nblobs == 0);
	node_free(&nd);
	char tmp[] = "/tmp/cairn-tb-cat-XXXXXX";
	int fd = mkstemp(tmp);
	char got[16] = "";
	CHECK_RC(repo_cat(r, &s, "f", fd, &err), 0);
	CHECK(pread(fd, got, sizeof(got), 0) == 6 && !memcmp(got, "second", 6));
	close(fd);
	unlink(tmp);

	/* An empty builder gives the empty tree. */
	tb = tb_new(r);
	CHECK_RC(tb_finish(tb, root, &err), 0);
	CHECK(tb_get_stats(tb)->dirs == 1 && tb_get_stats(tb)->files == 0);
	tb_free(tb);
	tb_free(NULL);
}

/* Many entries in one folder (hash table growth), in random order. */
static void test_many(struct repo *r)
{
	struct tree_builder *tb = tb_new(r);
	struct cairn_err err;
	struct tb_meta m = {0600, 1, 1, 7};
	enum { N = 20000 };
	uint32_t *order = malloc(N * sizeof(*order));
	for (uint32_t i = 0; i < N; i++)
		order[i] = i;
	for (uint32_t i = N; i > 1; i--) {
		uint32_t j = randombytes_uniform(i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	int fails = 0;
	for (uint32_t i = 0; i < N; i++) {
		char p[64];
		snprintf(p, sizeof(p), "dir%u/f%u", order[i] % 3, order[i]);
		fails += tb_file_begin(tb, p, &m, &err) != 0;
		fails += tb_file_write(tb, p, strlen(p), &err) != 0;
		fails += tb_file_end(tb, &err) != 0;
	}
	CHECK(fails == 0);
	uint8_t root[32];
	CHECK_RC(tb_finish(tb, root, &err), 0);
	CHECK(tb_get_stats(tb)->files == N && tb_get_stats(tb)->dirs == 4);
	tb_free(tb);
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	memcpy(s.root, root, 32);
	struct node nd;
	CHECK_RC(repo_lookup_path(r, &s, "dir1/f19999", &nd, &err), 0);
	CHECK(nd.size == strlen("dir1/f19999"));
	node_free(&nd);
	free(order);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	char dir[] = "/tmp/cairn-test-tb-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct repo *r = NULL;
	CHECK_RC(open_repo(dir, &r), 0);
	if (!r)
		return t_done();
	for (int round = 1; round <= 5; round++)
		test_random_order(dir, r, round);
	test_duplicates(r);
	test_many(r);
	repo_close(r);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	return t_done();
}
