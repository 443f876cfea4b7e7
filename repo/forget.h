/*
 * forget.h — retention policies: which snapshots to keep, and why.
 *
 * Snapshots are judged in groups: a PostgreSQL cluster's base backups; the
 * backups of one host and one set of paths; the dumps of one host and one
 * --stdin-name.  Within a group, newest first:
 *   keep-last N      the N newest
 *   keep-hourly N    the newest of each of the N newest hours that have one
 *   keep-daily N     ... days;  keep-weekly N: ISO weeks;  keep-monthly N;
 *   keep-yearly N    (calendar periods in UTC)
 *   keep-within D    every snapshot less than D older than the group's newest
 *   keep-tag T       every snapshot with tag T
 * A snapshot is kept when any rule keeps it; the reasons are listed.  A
 * policy with no rule keeps everything (forgetting every snapshot is never
 * what a typo should do): forget_plan refuses it.
 *
 * Pure functions: no I/O.
 */
#ifndef CAIRN_FORGET_H
#define CAIRN_FORGET_H

#include <stddef.h>
#include <stdint.h>

#include "repo/error.h"
#include "repo/snapshot.h"

struct forget_policy {
	unsigned last, hourly, daily, weekly, monthly, yearly;
	int64_t within_ns;            /* 0: not used */
	const char *const *tags;      /* keep-tag */
	size_t ntags;
};

#define FORGET_REASONS 160

struct forget_decision {
	int keep;
	char reasons[FORGET_REASONS]; /* "last, daily 2026-11-22" */
	char group[256];              /* the group's description */
};

/* The group a snapshot belongs to, as text ("cluster 7311...", "host db1
 * paths /etc /srv", "host db1 stdin db.dump"). */
void forget_group(const struct snapshot *s, char *out, size_t n);

/* Decides for snapshots s[0..n) (any order; groups found here).  out[i]
 * is the decision for s[i].  CAIRN_EUSAGE for an empty policy. */
int forget_plan(const struct snapshot *s, size_t n, const struct forget_policy *p,
		struct forget_decision *out, struct cairn_err *err);

/* Parses "1y2m3w4d5h6min" style durations (y=365d, m=30d, w, d, h, min, s)
 * into nanoseconds; -1 on a malformed string. */
int64_t forget_parse_duration(const char *s);

#endif
