/*
 * prune_scale.c — builds a repository of millions of tiny blobs quickly,
 * for bench/prune_scale.sh (prune's time and peak memory at that scale).
 *
 *   prune_scale DIR [NBLOBS] [PACK_SIZE]
 *
 * Makes DIR/repo (passphrase "bench", the cheapest KDF) with its cache in
 * DIR/cache.  Writes NBLOBS (default 5,000,000) distinct data blobs of 32
 * bytes through the repository API, grouped in files of 1000 blobs (list
 * form, as cairn stores large files), 100 files per folder, in packs of
 * PACK_SIZE bytes (default 128 KiB, so about 1600 blobs per pack and as
 * many packs as a real repository of that many 16 KiB chunks would have).
 * Two snapshots of the same host and path: the older names the first 60%
 * of the files, the newer the last 60%, so that after `forget --keep-last
 * 1` prune must mark 3 million blobs, delete 40% of the packs and repack
 * the one pack at the boundary.
 */
#include "repo/repo.h"
#include "repo/tree.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define BLOBS_PER_FILE 1000
#define FILES_PER_DIR 100

struct file {
	uint8_t list_id[32];
	uint64_t count, size;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const struct cairn_err *e)
{
	fprintf(stderr, "prune_scale: %s: %s\n", what, e->msg);
	return 1;
}

/* A snapshot of files [first, last): folders of FILES_PER_DIR under one root. */
static int write_snapshot(struct repo *r, const struct file *files, size_t first, size_t last,
			  int64_t time_ns, const char *tag, struct cairn_err *err)
{
	struct tree root = TREE_INIT;
	int rc = 0;
	for (size_t d = first / FILES_PER_DIR; d * FILES_PER_DIR < last && !rc; d++) {
		struct tree t = TREE_INIT;
		for (size_t f = d * FILES_PER_DIR; f < (d + 1) * FILES_PER_DIR && f < last && !rc; f++) {
			if (f < first)
				continue;
			struct node nd;
			char name[32];
			memset(&nd, 0, sizeof(nd));
			snprintf(name, sizeof(name), "f%07zu", f);
			nd.name = strdup(name);
			nd.type = NODE_FILE;
			nd.mode = 0644;
			nd.mtime_ns = 1700000000000000000ll;
			nd.size = files[f].size;
			nd.inode = f + 1;
			nd.has_list = 1;
			memcpy(nd.list_id, files[f].list_id, 32);
			nd.list_count = files[f].count;
			rc = nd.name ? tree_add(&t, &nd) : CAIRN_ENOMEM;
		}
		struct node dn;
		char name[32];
		memset(&dn, 0, sizeof(dn));
		snprintf(name, sizeof(name), "d%05zu", d);
		dn.name = strdup(name);
		dn.type = NODE_DIR;
		dn.mode = 0755;
		rc = rc ? rc : repo_put_tree(r, &t, dn.subtree, err);
		rc = rc ? rc : dn.name ? tree_add(&root, &dn) : CAIRN_ENOMEM;
		tree_free(&t);
	}
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	s.time_ns = time_ns;
	s.end_time_ns = time_ns + 1000000000ll;
	s.host = "bench";
	s.user = "bench";
	s.program = "prune_scale";
	char *paths[] = {"/bench"}, *tags[] = {(char *)tag};
	s.paths = paths;
	s.npaths = 1;
	s.tags = tags;
	s.ntags = 1;
	rc = rc ? rc : repo_put_tree(r, &root, s.root, err);
	rc = rc ? rc : repo_snapshot_write(r, &s, err);
	tree_free(&root);
	if (!rc)
		printf("snapshot %s (%s): files %zu..%zu\n", s.name, tag, first, last - 1);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: prune_scale DIR [NBLOBS] [PACK_SIZE]\n");
		return 2;
	}
	const char *dir = argv[1];
	uint64_t nblobs = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;
	uint32_t pack_size = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 128 * 1024;
	if (sodium_init() < 0 || nblobs < BLOBS_PER_FILE)
		return 2;
	char url[4096], cache[4096], id[65];
	snprintf(url, sizeof(url), "%s/repo", dir);
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	mkdir(dir, 0700);
	struct cairn_err err;
	struct repo_init_opts io;
	memset(&io, 0, sizeof(io));
	io.url = url;
	io.pass = "bench";
	io.pass_len = 5;
	io.kdf.opslimit = crypto_pwhash_OPSLIMIT_MIN;
	io.kdf.memlimit = crypto_pwhash_MEMLIMIT_MIN;
	io.pack_size = pack_size;
	if (repo_init(&io, id, &err))
		return die("init", &err);
	struct repo_open_opts oo;
	memset(&oo, 0, sizeof(oo));
	oo.url = url;
	oo.pass = "bench";
	oo.pass_len = 5;
	oo.cache_base = cache;
	struct repo *r = NULL;
	if (repo_open(&r, &oo, &err))
		return die("open", &err);

	size_t nfiles = (size_t)(nblobs / BLOBS_PER_FILE);
	struct file *files = calloc(nfiles, sizeof(*files));
	struct node nd;
	memset(&nd, 0, sizeof(nd));
	nd.type = NODE_FILE;
	uint64_t seed = 0x5eed, counter = 0;
	double t0 = now_s();
	int rc = files ? 0 : CAIRN_ENOMEM;
	for (size_t f = 0; f < nfiles && !rc; f++) {
		nd.nblobs = 0;
		for (size_t b = 0; b < BLOBS_PER_FILE && !rc; b++) {
			uint64_t blob[4] = {counter++, splitmix(&seed), splitmix(&seed), splitmix(&seed)};
			uint8_t bid[32];
			rc = repo_put_blob(r, BLOB_DATA, blob, sizeof(blob), bid, NULL, &err);
			rc = rc ? rc : node_add_blob(&nd, bid, sizeof(blob));
		}
		rc = rc ? rc : repo_node_store_list(r, &nd, NULL, &err);
		if (!rc) {
			memcpy(files[f].list_id, nd.list_id, 32);
			files[f].count = nd.nblobs;
			files[f].size = nd.nblobs * 32;
		}
		if (f % 500 == 499)
			fprintf(stderr, "\r%zu/%zu files, %.0f blobs/s", f + 1, nfiles,
				(double)counter / (now_s() - t0));
	}
	fprintf(stderr, "\n");
	node_free(&nd);
	size_t cut = nfiles * 6 / 10;
	rc = rc ? rc : write_snapshot(r, files, 0, cut, 1700000000000000000ll, "old", &err);
	rc = rc ? rc : write_snapshot(r, files, nfiles - cut, nfiles, 1700000100000000000ll, "new", &err);
	if (!rc) {
		const struct repo_write_stats *ws = repo_get_write_stats(r);
		printf("%llu blobs (%llu new, with list and tree blobs) in %llu packs, %.1f s\n",
		       (unsigned long long)counter, (unsigned long long)ws->new_blobs,
		       (unsigned long long)ws->packs, now_s() - t0);
	}
	free(files);
	repo_close(r);
	return rc ? die("writing", &err) : 0;
}
