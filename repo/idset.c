/* idset.c — see idset.h. */
#include "repo/idset.h"
#include "repo/buf.h"
#include "repo/error.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(const struct idset *s, const uint8_t id[32])
{
	return (size_t)le_get64(id) & (s->cap - 1);
}

static int grow(struct idset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024;
	struct idset_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return CAIRN_ENOMEM;
	struct idset old = *s;
	s->slots = ns;
	s->cap = ncap;
	s->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].val)
			idset_put(s, old.slots[i].id, old.slots[i].val - 1);
	free(old.slots);
	return 0;
}

int idset_put(struct idset *s, const uint8_t id[32], uint64_t val)
{
	if ((s->n + 1) * 2 > s->cap && grow(s))
		return CAIRN_ENOMEM;
	for (size_t i = slot_of(s, id);; i = (i + 1) & (s->cap - 1)) {
		struct idset_slot *sl = &s->slots[i];
		if (!sl->val) {
			memcpy(sl->id, id, 32);
			sl->val = val + 1;
			s->n++;
			return 0;
		}
		if (memcmp(sl->id, id, 32) == 0) {
			sl->val = val + 1;
			return 0;
		}
	}
}

int idset_get(const struct idset *s, const uint8_t id[32], uint64_t *val)
{
	if (!s->cap)
		return 0;
	for (size_t i = slot_of(s, id);; i = (i + 1) & (s->cap - 1)) {
		const struct idset_slot *sl = &s->slots[i];
		if (!sl->val)
			return 0;
		if (memcmp(sl->id, id, 32) == 0) {
			if (val)
				*val = sl->val - 1;
			return 1;
		}
	}
}

void idset_clear(struct idset *s)
{
	if (s->slots)
		memset(s->slots, 0, s->cap * sizeof(*s->slots));
	s->n = 0;
}

void idset_free(struct idset *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}
