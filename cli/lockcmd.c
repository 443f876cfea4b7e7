/* lockcmd.c — `cairn locks`, `cairn unlock`, and the writers' leases
 * (repo/lock.h) as the other commands take them. */
#include "cli/cli.h"
#include "repo/lock.h"

#include <stdlib.h>
#include <string.h>

/* How long a writer waits for an exclusive lock (prune's deletion window,
 * a repair) to end before it gives up. */
#define WRITER_WAIT_NS (60ull * 1000000000)

struct lease_wait {
	struct cli *c;
	int waited;
};

static void lease_note(void *arg, const char *msg)
{
	struct lease_wait *w = arg;
	w->waited = 1;
	cli_note(w->c, msg);
}

int cli_lease_take(struct cli *c, struct repo *r, struct repo_lock **l, struct cairn_err *err)
{
	struct lease_wait w = {c, 0};
	struct repo_lock_opts o;
	memset(&o, 0, sizeof(o));
	o.wait_ns = WRITER_WAIT_NS;
	o.note = lease_note;
	o.note_arg = &w;
	int rc = repo_lock_with(r, REPO_LOCK_SHARED, &o, l, err);
	/* A prune may have deleted index objects while we waited: bring the
	 * cache up to date, so that blobs of deleted packs are stored again
	 * rather than found stale (which would be safe, but wasteful). */
	if (!rc && w.waited)
		rc = repo_sync_index(r, err);
	if (rc) {
		repo_unlock(*l);
		*l = NULL;
	}
	return rc;
}

int cli_lease_check(struct cli *c, struct repo_lock *l, const char *what)
{
	struct cairn_err err = {0, ""};
	if (!l || repo_lock_check(l, &err) == 0)
		return EXIT_OK;
	cli_progress_done(c);
	fprintf(stderr, "cairn: error: %s, but %s\n"
		"hint: a prune or repair may have removed data it refers to meanwhile: run 'cairn check'\n",
		what, err.msg);
	return EXIT_FAIL;
}

static void fmt_secs(char *out, size_t n, int64_t ns)
{
	int64_t s = ns / 1000000000;
	if (s < 120)
		snprintf(out, n, "%lld s", (long long)s);
	else if (s < 2 * 3600)
		snprintf(out, n, "%lld min", (long long)(s / 60));
	else if (s < 2 * 86400)
		snprintf(out, n, "%lld h", (long long)(s / 3600));
	else
		snprintf(out, n, "%lld days", (long long)(s / 86400));
}

static const char *kind_str(const struct lock_entry *e)
{
	if (e->state == LOCK_DAMAGED)
		return "?";
	return e->info.kind == REPO_LOCK_EXCLUSIVE ? "exclusive" : "shared";
}

/* What the holder does: "prune", "forget", or "" for a writer. */
static const char *role_str(const struct lock_entry *e)
{
	if (e->state == LOCK_DAMAGED || e->info.kind != REPO_LOCK_SHARED)
		return "";
	return e->info.role == REPO_ROLE_PRUNE ? "prune" : e->info.role == REPO_ROLE_FORGET ? "forget" : "";
}

/* One lock as a JSON object; `removed` < 0 leaves that field out. */
static void json_lock(const struct lock_entry *e, int removed)
{
	char id[33];
	printf("{\"object\":\"%s\",\"state\":\"%s\",\"stale\":%s", e->name,
	       e->state == LOCK_DEAD ? "process-gone" : lock_state_name(e->state),
	       e->state == LOCK_LIVE ? "false" : "true");
	if (removed >= 0)
		printf(",\"removed\":%s", removed ? "true" : "false");
	if (e->state == LOCK_DAMAGED) {
		printf(",\"error\":");
		json_str(stdout, e->error.msg);
		printf("}");
		return;
	}
	hex_encode(id, e->info.id, 16);
	printf(",\"id\":\"%s\",\"kind\":\"%s\",\"role\":\"%s\",\"host\":", id, kind_str(e),
	       role_str(e));
	json_str(stdout, e->info.host);
	printf(",\"pid\":%u,\"created_unix_ns\":%lld,\"refreshed_unix_ns\":%lld,"
	       "\"age_s\":%lld,\"since_refresh_s\":%lld,\"stale_after_s\":%llu,\"seq\":%llu,"
	       "\"version\":",
	       e->info.pid, (long long)e->info.created_ns, (long long)e->info.refreshed_ns,
	       (long long)(e->age_ns / 1000000000), (long long)(e->since_refresh_ns / 1000000000),
	       (unsigned long long)(e->info.stale_after_ns / 1000000000),
	       (unsigned long long)e->info.seq);
	json_str(stdout, e->info.version);
	printf("}");
}

struct list_ctx {
	struct cli *c;
	size_t n, stale;
};

static int print_lock(void *arg, const struct lock_entry *e)
{
	struct list_ctx *x = arg;
	if (x->c->json) {
		printf("%s", x->n ? "," : "");
		json_lock(e, -1);
	} else if (e->state == LOCK_DAMAGED) {
		printf("%.8s  %-9s  %s\n", e->name, "?", e->error.msg);
	} else {
		char id[33], age[32], ref[32];
		hex_encode(id, e->info.id, 16);
		fmt_secs(age, sizeof(age), e->age_ns);
		fmt_secs(ref, sizeof(ref) - 4, e->since_refresh_ns);
		strcat(ref, " ago");
		printf("%.8s  %-9s  %-20.20s  %8u  %-9s  %-10s  %s\n", id,
		       *role_str(e) ? role_str(e) : kind_str(e), e->info.host,
		       e->info.pid, age, ref,
		       e->state == LOCK_LIVE ? "live" : e->state == LOCK_EXPIRED ? "stale (expired)"
		       : e->state == LOCK_DEAD ? "stale (process gone)" : "stale (superseded)");
	}
	x->n++;
	x->stale += e->state != LOCK_LIVE;
	return 0;
}

int cmd_locks(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct list_ctx x = {c, 0, 0};
	if (c->nargs)
		return cli_usage("locks takes no arguments");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	if (c->json)
		printf("[");
	else
		printf("%-8s  %-9s  %-20s  %8s  %-9s  %-10s  %s\n", "ID", "Kind", "Host", "PID", "Age",
		       "Refreshed", "State");
	rc = repo_locks_list(r, print_lock, &x, &err);
	if (c->json)
		printf("]\n");
	else if (!rc)
		printf("%zu lock(s), %zu stale%s\n", x.n, x.stale,
		       x.stale ? ": 'cairn unlock --stale' removes them (damaged ones excepted)" : "");
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

static int report_stale(void *arg, const struct lock_entry *e, int removed)
{
	struct list_ctx *x = arg;
	char id[33];
	if (x->c->json) {
		printf("%s", x->n++ ? "," : "");
		json_lock(e, removed);
		return 0;
	}
	if (e->state == LOCK_DAMAGED) {
		fprintf(stderr,
			"cairn: warning: lock object %s is damaged: not removed (%s)\n"
			"hint: once no cairn process can be holding it, remove it with 'cairn unlock %.16s'\n",
			e->name, e->error.msg, e->name);
		return 0;
	}
	hex_encode(id, e->info.id, 16);
	if (removed && !x->c->quiet)
		printf("removed stale lock %.8s (%s, host %s, pid %u): %s\n", id, kind_str(e),
		       e->info.host, e->info.pid, lock_state_name(e->state));
	return 0;
}

int cmd_unlock(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct list_ctx x = {c, 0, 0};
	size_t removed = 0;
	if (c->stale == (c->nargs == 1) || c->nargs > 1)
		return cli_usage("unlock needs --stale, or the ID of one lock from 'cairn locks' "
				 "(there is no --all: a live lock protects a running backup)");
	if (c->stale && c->force)
		return cli_usage("--force applies to 'unlock ID' only");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	if (c->stale) {
		if (c->json)
			printf("{\"locks\":[");
		rc = repo_unlock_stale(r, &removed, report_stale, &x, &err);
		if (c->json)
			printf("],\"removed\":%zu}\n", removed);
		else if (!rc && !c->quiet)
			printf("removed %zu stale lock(s)\n", removed);
	} else {
		struct lock_entry e;
		rc = repo_unlock_one(r, c->args[0], c->force, &e, &err);
		if (!rc && c->json) {
			json_lock(&e, 1);
			printf("\n");
		} else if (!rc && !c->quiet) {
			char id[33];
			hex_encode(id, e.info.id, 16);
			if (e.state == LOCK_DAMAGED)
				printf("removed damaged lock object %.16s\n", e.name);
			else
				printf("removed %s lock %.8s (%s, host %s, pid %u)\n",
				       e.state == LOCK_LIVE ? "LIVE" : "stale", id, kind_str(&e),
				       e.info.host, e.info.pid);
		}
		if (!rc && e.state == LOCK_LIVE)
			fprintf(stderr, "cairn: warning: the lock was live: if its process still runs, a "
					"prune may now remove data that it is writing; check that process\n");
	}
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}
