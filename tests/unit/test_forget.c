/* test_forget.c — retention policies: groups, rules, reasons. */
#include "repo/forget.h"
#include "tests/unit/t.h"

#include <stdlib.h>
#include <string.h>

#define DAY (86400LL * 1000000000LL)
#define HOUR (3600LL * 1000000000LL)

static struct snapshot mk(const char *host, const char *path, int64_t t)
{
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	s.host = (char *)host;
	s.paths = malloc(sizeof(char *));
	s.paths[0] = (char *)path;
	s.npaths = 1;
	s.time_ns = t;
	return s;
}

int main(void)
{
	/* 2026-11-22 12:00 UTC and 40 daily snapshots before it, two a day. */
	int64_t base = 1795348800LL * 1000000000LL;
	struct snapshot s[81];
	size_t n = 0;
	for (int d = 0; d < 40; d++) {
		s[n++] = mk("db1", "/srv", base - d * DAY);
		s[n++] = mk("db1", "/srv", base - d * DAY - 3 * HOUR);
	}
	s[n++] = mk("db2", "/srv", base - 100 * DAY); /* its own group */
	struct forget_decision dec[81];
	struct forget_policy p;
	memset(&p, 0, sizeof(p));
	struct cairn_err e;
	CHECK_RC(forget_plan(s, n, &p, dec, &e), CAIRN_EUSAGE);

	p.last = 3;
	p.daily = 7;
	p.weekly = 4;
	CHECK_RC(forget_plan(s, n, &p, dec, &e), 0);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		kept += dec[i].keep;
	/* last 3 (days 0 and 1), daily 7 (days 0..6, newest of each),
	 * weekly 4 (4 newest ISO weeks; newest of each): 9 distinct, and db2's
	 * only snapshot: last + daily + weekly. */
	CHECK(dec[0].keep && strstr(dec[0].reasons, "last") && strstr(dec[0].reasons, "daily"));
	CHECK(dec[1].keep && strstr(dec[1].reasons, "last") && !strstr(dec[1].reasons, "daily"));
	CHECK(dec[3].keep == 0); /* day 1, the older one: not last 3 */
	CHECK(dec[2].keep && strstr(dec[2].reasons, "last")); /* day 1 newest: last and daily */
	CHECK(dec[12].keep && strstr(dec[12].reasons, "daily")); /* day 6 */
	CHECK(!dec[14].keep || strstr(dec[14].reasons, "weekly")); /* day 7 */
	CHECK(dec[80].keep && strstr(dec[80].reasons, "last"));
	CHECK(kept >= 10 && kept <= 14);
	CHECK(!dec[79].keep); /* day 39's older one */
	CHECK(strcmp(dec[0].group, dec[80].group) != 0);

	/* keep-within and keep-tag */
	memset(&p, 0, sizeof(p));
	p.within_ns = forget_parse_duration("2d");
	CHECK(p.within_ns == 2 * DAY);
	CHECK_RC(forget_plan(s, n, &p, dec, &e), 0);
	CHECK(dec[0].keep && dec[3].keep && !dec[4].keep); /* days 0, 1 kept, not 2 */
	CHECK(forget_parse_duration("1y2m3w4d5h6min7s") > 0);
	CHECK(forget_parse_duration("5x") == -1 && forget_parse_duration("") == -1);

	char *tag = "keepme";
	s[60].tags = &tag;
	s[60].ntags = 1;
	const char *tags[] = {"keepme"};
	memset(&p, 0, sizeof(p));
	p.tags = tags;
	p.ntags = 1;
	CHECK_RC(forget_plan(s, n, &p, dec, &e), 0);
	kept = 0;
	for (size_t i = 0; i < n; i++)
		kept += dec[i].keep;
	CHECK(kept == 1 && dec[60].keep && strstr(dec[60].reasons, "tag keepme"));
	s[60].tags = NULL;
	s[60].ntags = 0;

	/* PostgreSQL snapshots group by cluster, whatever the host. */
	struct snapshot a = mk("h1", "/pg", base), b = mk("h2", "/pg2", base - DAY);
	a.flags = b.flags = SNAP_PG;
	a.cluster = b.cluster = "7300";
	char ga[256], gb[256];
	forget_group(&a, ga, sizeof(ga));
	forget_group(&b, gb, sizeof(gb));
	CHECK(!strcmp(ga, gb) && !strcmp(ga, "cluster 7300"));
	free(a.paths);
	free(b.paths);
	for (size_t i = 0; i < n; i++)
		free(s[i].paths);
	return t_done();
}
