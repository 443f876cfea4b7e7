/* forget.c — retention policies; see forget.h. */
#include "repo/forget.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void forget_group(const struct snapshot *s, char *out, size_t n)
{
	size_t len;
	if ((s->flags & SNAP_PG) && s->cluster) {
		snprintf(out, n, "cluster %s", s->cluster);
		return;
	}
	len = (size_t)snprintf(out, n, "host %s %s", s->host ? s->host : "?",
			       (s->flags & SNAP_STDIN) ? "stdin" : "paths");
	/* Paths in sorted order, so that the same set is the same group. */
	char **p = malloc(s->npaths * sizeof(*p) + 1);
	if (!p)
		return;
	memcpy(p, s->paths, s->npaths * sizeof(*p));
	for (size_t i = 1; i < s->npaths; i++)
		for (size_t j = i; j > 0 && strcmp(p[j - 1], p[j]) > 0; j--) {
			char *t = p[j];
			p[j] = p[j - 1];
			p[j - 1] = t;
		}
	for (size_t i = 0; i < s->npaths && len < n; i++)
		len += (size_t)snprintf(out + len, n - len, " %s", p[i]);
	free(p);
}

/* Appends "what arg" to the reasons (arg may be ""). */
static void add_reason(struct forget_decision *d, const char *what, const char *arg)
{
	size_t len = strlen(d->reasons);
	d->keep = 1;
	if (len + 3 >= sizeof(d->reasons))
		return;
	snprintf(d->reasons + len, sizeof(d->reasons) - len, "%s%s%s%s", len ? ", " : "", what,
		 *arg ? " " : "", arg);
}

/* Period buckets, UTC. */
static void period(int kind, int64_t ns, char *out, size_t n)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	switch (kind) {
	case 0: strftime(out, n, "%Y-%m-%d %H:00", &tm); break;
	case 1: strftime(out, n, "%Y-%m-%d", &tm); break;
	case 2: strftime(out, n, "%G-W%V", &tm); break;
	case 3: strftime(out, n, "%Y-%m", &tm); break;
	default: strftime(out, n, "%Y", &tm); break;
	}
}

struct ix {
	size_t i;
	int64_t t;
};

static int newest_first(const void *a, const void *b)
{
	const struct ix *x = a, *y = b;
	return x->t != y->t ? (x->t > y->t ? -1 : 1) : (x->i < y->i ? -1 : x->i > y->i);
}

int forget_plan(const struct snapshot *s, size_t n, const struct forget_policy *p,
		struct forget_decision *out, struct cairn_err *err)
{
	if (!p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly &&
	    !p->within_ns && !p->ntags)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "no --keep-* rule given: refusing to forget every snapshot");
	struct ix *v = malloc((n ? n : 1) * sizeof(*v));
	char *done = calloc(n ? n : 1, 1);
	if (!v || !done) {
		free(v);
		free(done);
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		forget_group(&s[i], out[i].group, sizeof(out[i].group));
	}
	for (size_t g = 0; g < n; g++) {
		if (done[g])
			continue;
		/* This group's members, newest first. */
		size_t m = 0;
		for (size_t i = g; i < n; i++)
			if (!done[i] && !strcmp(out[i].group, out[g].group)) {
				done[i] = 1;
				v[m].i = i;
				v[m].t = s[i].time_ns;
				m++;
			}
		qsort(v, m, sizeof(*v), newest_first);
		const unsigned counts[5] = {p->hourly, p->daily, p->weekly, p->monthly, p->yearly};
		const char *names[5] = {"hourly", "daily", "weekly", "monthly", "yearly"};
		for (size_t k = 0; k < m; k++) {
			struct forget_decision *d = &out[v[k].i];
			const struct snapshot *x = &s[v[k].i];
			if (k < p->last)
				add_reason(d, "last", "");
			if (p->within_ns && v[0].t - v[k].t < p->within_ns)
				add_reason(d, "within", "");
			for (size_t t = 0; t < p->ntags; t++)
				for (size_t j = 0; j < x->ntags; j++)
					if (!strcmp(x->tags[j], p->tags[t]))
						add_reason(d, "tag", p->tags[t]);
		}
		for (int kind = 0; kind < 5; kind++) {
			unsigned left = counts[kind];
			char prev[32] = "";
			for (size_t k = 0; k < m && left; k++) {
				char b[32];
				period(kind, v[k].t, b, sizeof(b));
				if (!strcmp(b, prev))
					continue; /* an older one in the same period */
				strcpy(prev, b);
				add_reason(&out[v[k].i], names[kind], b);
				left--;
			}
		}
	}
	free(v);
	free(done);
	return 0;
}

int64_t forget_parse_duration(const char *str)
{
	int64_t total = 0;
	const char *p = str;
	if (!*p)
		return -1;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		char *end;
		long long v = strtoll(p, &end, 10);
		p = end;
		int64_t unit;
		if (!strncmp(p, "min", 3)) {
			unit = 60;
			p += 3;
		} else {
			switch (*p) {
			case 'y': unit = 365 * 86400LL; break;
			case 'm': unit = 30 * 86400LL; break;
			case 'w': unit = 7 * 86400LL; break;
			case 'd': unit = 86400; break;
			case 'h': unit = 3600; break;
			case 's': unit = 1; break;
			default: return -1;
			}
			p++;
		}
		if (v < 0 || v > 100000)
			return -1;
		total += v * unit;
	}
	return total * 1000000000LL;
}
