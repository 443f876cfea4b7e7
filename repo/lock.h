/*
 * lock.h — writer leases: lock objects `locks/<name>` that say who may still
 * add references to the repository, so that a prune (or repair) knows whom
 * to wait for, and that expire by themselves so that a crashed host never
 * wedges the repository.  FORMAT.md section 14 is the byte-level contract.
 *
 * Kinds: a SHARED lock is held by every writer (backup, archive-push), and
 * by prune and forget for their whole run (with a role, below); any number
 * of them coexist.  An EXCLUSIVE lock (repair, and prune for the few
 * seconds in which it deletes) excludes every other lock.  A lock is one sealed object (magic "CAIRNLK1") named, like
 * every other object, by the hash of its bytes; since objects are never
 * overwritten, a refresh puts a NEW object (same holder id, seq + 1, new
 * refreshed_ns) and only once that is durable deletes the previous one.
 *
 * Taking a lock: list the locks; refuse (CAIRN_ELOCKED, naming the holder's
 * host, pid and age) if a live lock of another holder conflicts; put ours;
 * list again and, if a conflicting live lock appeared meanwhile (a writer
 * that raced us), delete ours and refuse.  Of two racers at least one sees
 * the other (each lists after its own put is durable), so two conflicting
 * locks are never both kept; both may back off.
 *
 * Staleness (lock_staleness): a lock is stale when
 *   - refreshed_ns + stale_after_ns < now (now: this host's clock), or
 *   - it was written on this host (same hostname, same boot and the same
 *     PID namespace) by a process that no longer exists, or
 *   - a newer object of the same holder exists (superseded: left by a
 *     refresh that crashed between its put and its delete), or
 *   - it cannot be read or opened (damaged): such an object never blocks
 *     anyone, but is never deleted automatically either.
 * Hosts' clocks are assumed to agree to well within stale_after_ns (30
 * minutes by default, refreshed every 10): a host whose clock is behind by
 * more than the margin makes its live locks look stale to others.
 *
 * Thread safety: a `struct repo_lock` runs a background thread that
 * refreshes it every stale_after / 3, with its own sealer and the repo's
 * storage handle (thread-safe by storage.h's contract) and keys (read-only).
 * The other functions follow repo.h: one repo handle per thread.  A lock
 * borrows the repo's storage and keys: release it (repo_unlock) before
 * repo_close.
 */
#ifndef CAIRN_LOCK_H
#define CAIRN_LOCK_H

#include <stddef.h>
#include <stdint.h>

#include "repo/buf.h"
#include "repo/error.h"
#include "repo/repo.h"

enum repo_lock_kind {
	REPO_LOCK_SHARED = 1,    /* writers: backup, archive-push; prune, forget */
	REPO_LOCK_EXCLUSIVE = 2, /* repair; prune's short deletion window */
};

/* What a SHARED lock's holder does (an optional field of the payload,
 * FORMAT.md section 14).  Writers conflict with nobody but an exclusive
 * lock; a PRUNE lease also conflicts with other PRUNE and with FORGET
 * leases, a FORGET lease with PRUNE ones: prune's marking must not see a
 * WAL entry deleted and written again under the same name meanwhile. */
enum repo_lock_role {
	REPO_ROLE_WRITER = 0, /* backup, archive-push (and unknown roles) */
	REPO_ROLE_PRUNE = 1,
	REPO_ROLE_FORGET = 2,
};

/* 30 minutes: much longer than the clock skew expected between hosts. */
#define LOCK_DEFAULT_STALE_AFTER_NS (30ull * 60 * 1000000000)
#define LOCK_HOST_MAX 255
#define LOCK_TEXT_MAX 255

/* A decoded lock object. */
struct lock_info {
	uint8_t kind;                 /* enum repo_lock_kind */
	char host[LOCK_HOST_MAX + 1];
	uint32_t pid;
	int64_t created_ns;           /* ns since the epoch, holder's clock */
	int64_t refreshed_ns;
	uint64_t stale_after_ns;
	uint8_t id[16];               /* the holder: the same across refreshes */
	uint64_t seq;                 /* 0 for the first object, + 1 per refresh */
	char version[LOCK_TEXT_MAX + 1];  /* "cairn 0.1.0" */
	char process[LOCK_TEXT_MAX + 1];  /* "<boot id>/<pid namespace>", or "" */
	uint8_t role;                 /* enum repo_lock_role; 0 when absent */
};

/* Why a lock is stale (LOCK_LIVE: it is not). */
enum lock_state {
	LOCK_LIVE = 0,
	LOCK_EXPIRED,    /* not refreshed for stale_after_ns */
	LOCK_DEAD,       /* its process is gone from this host */
	LOCK_SUPERSEDED, /* the same holder wrote a newer object */
	LOCK_DAMAGED,    /* cannot be read, opened or decoded */
};
/* "live", "expired", "process gone", "superseded", "damaged". */
const char *lock_state_name(enum lock_state s);

/* One lock object as listed.  `info` is meaningful unless state is
 * LOCK_DAMAGED, when `error` says what is wrong with it. */
struct lock_entry {
	char name[65];           /* object name: key "locks/<name>" */
	struct lock_info info;
	enum lock_state state;
	int64_t age_ns;          /* now - created_ns (>= 0) */
	int64_t since_refresh_ns; /* now - refreshed_ns (>= 0) */
	struct cairn_err error;  /* LOCK_DAMAGED only */
};

struct repo_lock;

/* Options of repo_lock_with (zeroes: defaults). */
struct repo_lock_opts {
	uint64_t stale_after_ns; /* 0: LOCK_DEFAULT_STALE_AFTER_NS */
	uint64_t refresh_ns;     /* 0: stale_after / 3 */
	const char *host;        /* NULL: gethostname() */
	uint8_t role;            /* SHARED only: enum repo_lock_role */
	/* Waiting instead of refusing at once: when the conflicting lock is
	 * an EXCLUSIVE one or a FORGET lease (both held briefly), try again
	 * (backing off up to 0.5 s) until wait_ns has passed.  Conflicts with
	 * a PRUNE lease are refused at once (a prune may run for hours). */
	uint64_t wait_ns;
	/* EXCLUSIVE only: once our object is put, wait up to drain_ns for the
	 * live SHARED locks of others to end instead of refusing at once;
	 * takers of shared locks that come meanwhile see our object and wait
	 * (or back off).  Another EXCLUSIVE lock is refused at once. */
	uint64_t drain_ns;
	/* Another lock of this process (prune's lease, when it takes its
	 * exclusive window) that never conflicts with this one; may be NULL. */
	struct repo_lock *companion;
	/* Told once when the taker starts to wait (a message naming the
	 * lock it waits for); may be NULL. */
	void (*note)(void *arg, const char *msg);
	void *note_arg;
};

/* Takes a lock of `kind` and starts its refresh thread.  CAIRN_ELOCKED
 * (naming the holder's host, pid and age) when a live lock of another
 * holder conflicts (after waiting, see repo_lock_opts): for SHARED, an
 * exclusive one, and the role conflicts above; for EXCLUSIVE, any.
 * CAIRN_EUSAGE for an unknown kind; storage errors as they come.  On
 * success *out is owned by the caller (repo_unlock). */
int repo_lock(struct repo *r, int kind, struct repo_lock **out,
	      struct cairn_err *err);
int repo_lock_with(struct repo *r, int kind, const struct repo_lock_opts *o,
		   struct repo_lock **out, struct cairn_err *err);

/* Refreshes now: puts the next object, then deletes the previous one.  The
 * background thread calls this every refresh interval; callers may too.
 * On a failed put the previous object stays (and is retried later).  If the
 * previous object was deleted by someone else (it looked stale to them),
 * the lease is lost: CAIRN_ELOCKED, sticky (see repo_lock_check). */
int repo_lock_refresh(struct repo_lock *l, struct cairn_err *err);

/* 0 while the lease holds: the newest object of this lock was refreshed
 * less than stale_after ago and nobody removed one of its objects.
 * CAIRN_ELOCKED otherwise (the message says which): then an exclusive
 * holder may have run meanwhile, and what this writer referenced must be
 * checked.  A writer asks this before it reports success. */
int repo_lock_check(struct repo_lock *l, struct cairn_err *err);

/* The object name of the lock's current object (valid until the next
 * refresh; for messages and tests), and its holder id. */
void repo_lock_current(struct repo_lock *l, char name[65], uint8_t id[16]);

/* Stops the refresh thread and deletes the lock's object.  NULL-safe.  A
 * failed delete leaves an object that expires by itself. */
void repo_unlock(struct repo_lock *l);

/* Lists every object under locks/, decoded and judged (see above), in no
 * particular order.  cb's non-zero return stops the listing and is
 * returned.  Entries are valid only during the call. */
int repo_locks_list(struct repo *r,
		    int (*cb)(void *arg, const struct lock_entry *e), void *arg,
		    struct cairn_err *err);

/* Deletes every stale lock object except damaged ones (which it reports
 * through cb, like the ones it removes; cb may be NULL).  *removed counts
 * the deletions.  A lock already gone when deleted counts as removed. */
int repo_unlock_stale(struct repo *r, size_t *removed,
		      int (*cb)(void *arg, const struct lock_entry *e,
				int removed),
		      void *arg, struct cairn_err *err);

/* Deletes one lock object named by a unique prefix (>= 8 hex digits) of its
 * holder id or object name.  Refuses (CAIRN_ELOCKED) a live lock unless
 * `force`; CAIRN_ENOTFOUND / CAIRN_EAMBIG as for snapshots.  Fills *which
 * (may be NULL) with the entry removed. */
int repo_unlock_one(struct repo *r, const char *ref, int force,
		    struct lock_entry *which, struct cairn_err *err);

/* ---- encoding (for tests and fuzzers) ---------------------------------- */

#define LOCK_MAGIC "CAIRNLK1"

/* The plaintext payload of a lock object (replaces out's contents). */
int lock_encode(const struct lock_info *li, struct buf *out);
/* Parses a payload; trailing bytes (fields of a later cairn) are ignored.
 * CAIRN_ECORRUPT when truncated or invalid. */
int lock_decode(const void *p, size_t n, struct lock_info *li,
		struct cairn_err *err);

/* Judges one decoded lock at time `now_ns`, on a host named `host` whose
 * process identity (boot id / PID namespace) is `process`.  Does not know
 * about superseded objects (repo_locks_list does). */
enum lock_state lock_staleness(const struct lock_info *li, int64_t now_ns,
			       const char *host, const char *process);

#endif
