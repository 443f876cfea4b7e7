/*
 * storage_local.c — the local filesystem backend.
 *
 * Key "packs/ab/abcd" is the file <root>/packs/ab/abcd.  The handle holds
 * only immutable configuration: an open descriptor of the root folder (every
 * call works relative to it with the *at() functions, so neither a relative
 * root nor a later chdir() can send objects elsewhere) and the root's name
 * for messages.  Any number of threads may use one handle at once.
 *
 * put is atomic, durable and never overwrites:
 *   1. open the key's folder; if it is missing, create each level (mode
 *      0700) and fsync each level's parent, also when a concurrent writer
 *      created that level first: its entry must be durable before our
 *      object relies on it;
 *   2. create ".tmp-<32 random hex>" in that folder, O_CREAT|O_EXCL, 0600
 *      (repository files hold only ciphertext: nobody else needs them);
 *   3. write everything (looping on short writes and EINTR), fsync, close
 *      and check the close;
 *   4. link() it to the final name: if that exists, CAIRN_EEXIST and the
 *      existing object is left untouched;
 *   5. unlink the temp name, fsync the folder.
 * Any failure unlinks the temp file, and after step 4 the new name too, so
 * that nothing is visible under the key.  A crash between steps 4 and 5
 * leaves a ".tmp-*" second name of a complete object: never listed, never
 * read, garbage for prune.
 *
 * Known gap: a writer whose folder already exists, but was created a moment
 * ago by a concurrent writer that has not yet fsynced the folder's parent,
 * does not fsync that parent itself.  On ext4 and xfs this is harmless (the
 * journal commit forced by our fsync of the folder includes the earlier
 * mkdir); on a filesystem without ordered metadata a power loss in that
 * instant could lose the folder's entry.
 *
 * Names below the root that cannot be keys (anything starting with '.',
 * such as ".tmp-*", or with characters outside [a-z0-9_.-]) are not
 * objects: list skips them and no key can name them.
 */
#include "repo/storage.h"
#include "repo/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define TMP_PREFIX ".tmp-"
#define TMP_RAND_BYTES 16
#define TMP_NAME_SIZE (sizeof(TMP_PREFIX) - 1 + 2 * TMP_RAND_BYTES + 1)
/* Largest single read() or write(): Linux moves at most ~2 GiB per call. */
#define IO_CHUNK ((size_t)1 << 30)
/* Room for "<root>/<key>" in messages. */
#define WHERE_SIZE (PATH_MAX + STORAGE_KEY_MAX + 2)

struct local {
	struct storage base;
	int rootfd;
	char *root; /* the root folder as given, for messages */
};

static const struct storage_ops local_ops;

/* Copies the folder part of `key` into `dir` ("" for a top-level key) and
 * returns the last segment (a pointer into `key`). */
static const char *key_split(const char *key, char dir[STORAGE_KEY_MAX + 1])
{
	const char *slash = strrchr(key, '/');
	if (!slash) {
		dir[0] = '\0';
		return key;
	}
	memcpy(dir, key, (size_t)(slash - key));
	dir[slash - key] = '\0';
	return slash + 1;
}

/* "<root>/<dir>" (or "<root>" for dir "") into where[WHERE_SIZE]. */
static const char *where_dir(const struct local *l, const char *dir,
			     char where[WHERE_SIZE])
{
	snprintf(where, WHERE_SIZE, "%s%s%s", l->root, dir[0] ? "/" : "", dir);
	return where;
}

/* Opens folder `dir` relative to the root; -1 with errno on failure. */
static int dir_open(const struct local *l, const char *dir)
{
	return openat(l->rootfd, dir[0] ? dir : ".",
		      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* fsync of a directory descriptor.  Some filesystems cannot fsync a
 * directory at all and say EINVAL; like PostgreSQL, accept that. */
static int dir_fsync(int fd)
{
	return io_fsync_dirfd(fd);
}

static int dir_sync(const struct local *l, const char *dir,
		    struct cairn_err *err)
{
	char where[WHERE_SIZE];
	int fd = dir_open(l, dir);
	if (fd < 0)
		return cairn_err_errno(err, errno, "opening folder %s",
				       where_dir(l, dir, where));
	if (dir_fsync(fd) != 0) {
		int e = errno;
		close(fd);
		return cairn_err_errno(err, e, "syncing folder %s",
				       where_dir(l, dir, where));
	}
	close(fd);
	return 0;
}

/* mkdir -p of `dir` below the root, fsyncing the parent of every level
 * (see step 1 in the file comment for why also of existing ones). */
static int dir_make(const struct local *l, const char *dir,
		    struct cairn_err *err)
{
	char p[STORAGE_KEY_MAX + 1], where[WHERE_SIZE];
	size_t n = strlen(dir);
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdirat(l->rootfd, p, 0700) != 0 && errno != EEXIST)
			return cairn_err_errno(err, errno, "creating folder %s",
					       where_dir(l, p, where));
		char *slash = strrchr(p, '/');
		int rc;
		if (slash) {
			*slash = '\0';
			rc = dir_sync(l, p, err);
			*slash = '/';
		} else {
			rc = dir_sync(l, "", err);
		}
		if (rc)
			return rc;
		p[i] = c;
	}
	return 0;
}

static int local_put(struct storage *s, const char *key, const void *data,
		     size_t len, struct cairn_err *err)
{
	struct local *l = (struct local *)s;
	char dir[STORAGE_KEY_MAX + 1], where[WHERE_SIZE], tmp[TMP_NAME_SIZE];
	int dfd = -1, fd = -1, have_tmp = 0, linked = 0;
	const char *name;
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	name = key_split(key, dir);
	where_dir(l, dir, where);

	dfd = dir_open(l, dir);
	if (dfd < 0 && errno == ENOENT) {
		rc = dir_make(l, dir, err);
		if (rc) {
			cairn_err_prefix(err, "storing object %s", key);
			goto out;
		}
		dfd = dir_open(l, dir);
	}
	if (dfd < 0) {
		rc = cairn_err_errno(err, errno, "storing object %s: opening folder %s",
				     key, where);
		goto out;
	}

	uint8_t rnd[TMP_RAND_BYTES];
	randombytes_buf(rnd, sizeof(rnd));
	memcpy(tmp, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
	hex_encode(tmp + sizeof(TMP_PREFIX) - 1, rnd, sizeof(rnd));

	fd = openat(dfd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = cairn_err_errno(err, errno,
				     "storing object %s in %s: creating a temporary file",
				     key, where);
		goto out;
	}
	have_tmp = 1;
	if (io_write_all(fd, data, len) != 0) {
		rc = cairn_err_errno(err, errno, "storing object %s in %s: writing %s",
				     key, where, tmp);
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = cairn_err_errno(err, errno, "storing object %s in %s: syncing %s",
				     key, where, tmp);
		goto out;
	}
	int cfd = fd;
	fd = -1; /* closed even when close() reports an error */
	if (close(cfd) != 0) {
		rc = cairn_err_errno(err, errno, "storing object %s in %s: closing %s",
				     key, where, tmp);
		goto out;
	}
	if (linkat(dfd, tmp, dfd, name, 0) != 0) {
		if (errno == EEXIST)
			rc = cairn_err_set(err, CAIRN_EEXIST,
					   "object %s already exists in %s", key,
					   l->root);
		else
			rc = cairn_err_errno(err, errno,
					     "storing object %s in %s: linking %s",
					     key, where, tmp);
		goto out;
	}
	linked = 1;
	if (unlinkat(dfd, tmp, 0) != 0) {
		rc = cairn_err_errno(err, errno, "storing object %s in %s: removing %s",
				     key, where, tmp);
		goto out;
	}
	have_tmp = 0;
	if (dir_fsync(dfd) != 0) {
		rc = cairn_err_errno(err, errno, "storing object %s in %s: syncing the folder",
				     key, where);
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	/* Undo in reverse; our own name only (never one that existed before,
	 * since linked is set only after our link() succeeded). */
	if (rc && linked)
		unlinkat(dfd, name, 0);
	if (rc && have_tmp)
		unlinkat(dfd, tmp, 0);
	if (rc && (linked || have_tmp) && dfd >= 0)
		dir_fsync(dfd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

static uint64_t need_bytes(uint64_t off, uint64_t len)
{
	if (len == STORAGE_WHOLE)
		return off;
	return off > UINT64_MAX - len ? UINT64_MAX : off + len;
}

static int local_get(struct storage *s, const char *key, uint64_t off,
		     uint64_t len, struct buf *out, struct cairn_err *err)
{
	struct local *l = (struct local *)s;
	struct stat st;
	int fd = -1;
	buf_reset(out);
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;

	fd = openat(l->rootfd, key, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_err_set(err, CAIRN_ENOTFOUND,
					     "object %s not found in %s", key, l->root);
		return cairn_err_errno(err, errno, "reading object %s in %s", key,
				       l->root);
	}
	if (fstat(fd, &st) != 0) {
		rc = cairn_err_errno(err, errno, "reading object %s in %s", key,
				     l->root);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cairn_err_set(err, CAIRN_ENOTFOUND,
				   "object %s not found in %s (not a file)", key,
				   l->root);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (off > size || (len != STORAGE_WHOLE && len > size - off)) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "object %s is truncated: %llu bytes, need %llu", key,
				   (unsigned long long)size,
				   (unsigned long long)need_bytes(off, len));
		goto out;
	}
	uint64_t want = len == STORAGE_WHOLE ? size - off : len;
	if (want > SIZE_MAX || buf_reserve(out, (size_t)want) != 0) {
		rc = cairn_err_set(err, CAIRN_ENOMEM,
				   "reading object %s: out of memory for %llu bytes",
				   key, (unsigned long long)want);
		goto out;
	}
	size_t got = 0, total = (size_t)want;
	while (got < total) {
		size_t n = total - got < IO_CHUNK ? total - got : IO_CHUNK;
		ssize_t r = pread(fd, out->data + got, n, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = cairn_err_errno(err, errno, "reading object %s in %s", key,
					     l->root);
			goto out;
		}
		if (r == 0) { /* it shrank since fstat */
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "object %s is truncated: %llu bytes, need %llu",
					   key, (unsigned long long)(off + got),
					   (unsigned long long)need_bytes(off, want));
			goto out;
		}
		got += (size_t)r;
	}
	out->len = total;
out:
	close(fd);
	return rc;
}

/* One listing in progress: `key` holds the key of the folder being walked
 * followed by the entry's name. */
struct walk {
	const struct local *l;
	storage_list_cb cb;
	void *arg;
	struct cairn_err *err;
	char key[STORAGE_KEY_MAX + 2];
};

static int name_is_key_segment(const char *name)
{
	if (name[0] == '.' || strstr(name, ".."))
		return 0;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* Walks folder `dfd` (consumed) whose key prefix is w->key[0..klen), calling
 * the callback for files whose names start with `name_prefix`, recursing
 * into folders.  Symbolic links are followed (an operator may move a folder
 * elsewhere); a loop ends when keys grow past STORAGE_KEY_MAX. */
static int walk_dir(struct walk *w, int dfd, size_t klen, const char *name_prefix)
{
	char where[WHERE_SIZE];
	size_t plen = strlen(name_prefix);
	int rc = 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		w->key[klen] = '\0';
		return cairn_err_errno(w->err, e, "listing %s/%s", w->l->root, w->key);
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				w->key[klen] = '\0';
				rc = cairn_err_errno(w->err, errno, "listing %s/%s",
						     w->l->root, w->key);
			}
			break;
		}
		const char *nm = de->d_name;
		size_t nlen = strlen(nm);
		if (strncmp(nm, name_prefix, plen) != 0 || !name_is_key_segment(nm) ||
		    klen + nlen > STORAGE_KEY_MAX)
			continue;
		memcpy(w->key + klen, nm, nlen + 1);
		struct stat st;
		if (fstatat(dirfd(d), nm, &st, 0) != 0) {
			if (errno == ENOENT) /* deleted meanwhile, or a dangling link */
				continue;
			snprintf(where, sizeof(where), "%s/%s", w->l->root, w->key);
			rc = cairn_err_errno(w->err, errno, "listing %s", where);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			rc = w->cb(w->arg, w->key, (uint64_t)st.st_size);
			if (rc)
				break;
		} else if (S_ISDIR(st.st_mode)) {
			if (klen + nlen + 1 > STORAGE_KEY_MAX)
				continue;
			int sub = openat(dirfd(d), nm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				snprintf(where, sizeof(where), "%s/%s", w->l->root, w->key);
				rc = cairn_err_errno(w->err, errno, "listing %s", where);
				break;
			}
			w->key[klen + nlen] = '/';
			w->key[klen + nlen + 1] = '\0';
			rc = walk_dir(w, sub, klen + nlen + 1, "");
			if (rc)
				break;
		}
	}
	closedir(d);
	return rc;
}

static int local_list(struct storage *s, const char *prefix, storage_list_cb cb,
		      void *arg, struct cairn_err *err)
{
	struct local *l = (struct local *)s;
	char where[WHERE_SIZE];
	int rc = storage_key_check(prefix, 1, err);
	if (rc)
		return rc;
	struct walk w = {.l = l, .cb = cb, .arg = arg, .err = err};
	/* "snapshots/ab" = folder "snapshots/" + names starting with "ab". */
	const char *slash = strrchr(prefix, '/');
	size_t klen = slash ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(w.key, prefix, klen);
	w.key[klen] = '\0';
	if (klen > 0)
		w.key[klen - 1] = '\0'; /* folder name without its '/' */
	int dfd = dir_open(l, w.key);
	if (dfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return cairn_err_errno(err, errno, "listing %s",
				       where_dir(l, w.key, where));
	}
	if (klen > 0)
		w.key[klen - 1] = '/';
	return walk_dir(&w, dfd, klen, prefix + klen);
}

static int local_del(struct storage *s, const char *key, struct cairn_err *err)
{
	struct local *l = (struct local *)s;
	char dir[STORAGE_KEY_MAX + 1], where[WHERE_SIZE];
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	const char *name = key_split(key, dir);
	where_dir(l, dir, where);
	int dfd = dir_open(l, dir);
	if (dfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_err_set(err, CAIRN_ENOTFOUND,
					     "object %s not found in %s", key, l->root);
		return cairn_err_errno(err, errno, "deleting object %s: opening folder %s",
				       key, where);
	}
	if (unlinkat(dfd, name, 0) != 0) {
		/* EISDIR: a folder is not an object. */
		if (errno == ENOENT || errno == EISDIR)
			rc = cairn_err_set(err, CAIRN_ENOTFOUND,
					   "object %s not found in %s", key, l->root);
		else
			rc = cairn_err_errno(err, errno, "deleting object %s in %s",
					     key, where);
		goto out;
	}
	if (dir_fsync(dfd) != 0)
		rc = cairn_err_errno(err, errno, "deleting object %s: syncing folder %s",
				     key, where);
out:
	close(dfd);
	return rc;
}

static int local_stat(struct storage *s, const char *key, uint64_t *size,
		      struct cairn_err *err)
{
	struct local *l = (struct local *)s;
	struct stat st;
	int rc = storage_key_check(key, 0, err);
	if (rc)
		return rc;
	if (fstatat(l->rootfd, key, &st, 0) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return cairn_err_set(err, CAIRN_ENOTFOUND,
					     "object %s not found in %s", key, l->root);
		return cairn_err_errno(err, errno, "looking up object %s in %s", key,
				       l->root);
	}
	if (!S_ISREG(st.st_mode))
		return cairn_err_set(err, CAIRN_ENOTFOUND,
				     "object %s not found in %s (not a file)", key,
				     l->root);
	*size = (uint64_t)st.st_size;
	return 0;
}

static void local_close(struct storage *s)
{
	struct local *l = (struct local *)s;
	close(l->rootfd);
	free(l->root);
	free(l->base.url);
	free(l);
}

static const struct storage_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.list = local_list,
	.del = local_del,
	.stat = local_stat,
	.close = local_close,
};

static int path_sync_dir(const char *path, struct cairn_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_errno(err, errno, "opening folder %s", path);
	if (dir_fsync(fd) != 0) {
		int e = errno;
		close(fd);
		return cairn_err_errno(err, e, "syncing folder %s", path);
	}
	close(fd);
	return 0;
}

/* mkdir -p of an absolute or relative path, fsyncing the parent of each
 * folder it creates. */
static int path_make(const char *path, struct cairn_err *err)
{
	char p[PATH_MAX];
	size_t n = strlen(path);
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if ((p[i] != '/' && p[i] != '\0') || p[i - 1] == '/')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) == 0) {
			char *slash = strrchr(p, '/');
			int rc;
			if (!slash) {
				rc = path_sync_dir(".", err);
			} else if (slash == p) {
				rc = path_sync_dir("/", err);
			} else {
				*slash = '\0';
				rc = path_sync_dir(p, err);
				*slash = '/';
			}
			if (rc)
				return rc;
		} else if (errno != EEXIST) {
			return cairn_err_errno(err, errno, "creating folder %s", p);
		}
		p[i] = c;
	}
	return 0;
}

int storage_local_open(struct storage **out, const char *root, int create,
		       struct cairn_err *err)
{
	struct local *l = NULL;
	int fd = -1, rc = 0;
	*out = NULL;
	if (sodium_init() < 0)
		return cairn_err_set(err, CAIRN_ECRYPTO, "libsodium failed to initialise");
	if (!root || !root[0])
		return cairn_err_set(err, CAIRN_EUSAGE, "repository path is empty");
	if (strlen(root) >= PATH_MAX)
		return cairn_err_set(err, CAIRN_EUSAGE, "repository path is too long");
	if (create) {
		rc = path_make(root, err);
		if (rc) {
			cairn_err_prefix(err, "creating repository %s", root);
			return rc;
		}
	}
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return cairn_err_set(err, CAIRN_ENOREPO,
					     "repository %s does not exist", root);
		if (errno == ENOTDIR)
			return cairn_err_set(err, CAIRN_ENOREPO,
					     "repository %s is not a folder", root);
		return cairn_err_errno(err, errno, "opening repository %s", root);
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		goto nomem;
	l->base.ops = &local_ops;
	l->rootfd = fd;
	l->root = strdup(root);
	l->base.url = strdup(root);
	if (!l->root || !l->base.url)
		goto nomem;
	*out = &l->base;
	return 0;
nomem:
	if (l) {
		free(l->root);
		free(l->base.url);
		free(l);
	}
	close(fd);
	return cairn_err_set(err, CAIRN_ENOMEM, "opening repository %s: out of memory",
			     root);
}
