/*
 * Repeated strings of a result, remembered per column so the binding can
 * hand out the Lua string it already made instead of creating it again.
 *
 * Why: Lua interns every short string, and in a large result the intern
 * table is big and cold, so each lua_pushlstring of "Administrative" walks
 * a bucket chain of unrelated strings: cache misses that cost more than the
 * rest of the cell. Most columns repeat a few values (categories, levels,
 * resource groups); here a hit is a word-wise hash, one compare and an array
 * read. Columns whose values do not repeat (GUIDs, timestamps) switch
 * themselves off after a short trial, so they pay almost nothing.
 *
 * The cache holds no strings itself: the binding keeps each string alive in
 * a Lua array at the slot number given here, and passes its stable bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "la_core.h"

#define COLUMNS LA_STRING_CACHE_COLUMNS
#define SLOTS LA_STRING_CACHE_PER_COLUMN
#define MAX_LEN 256           /* longer strings rarely repeat */
#define TRIAL 512             /* lookups before a column is judged */

typedef struct slot {
    const char *bytes;        /* owned by the Lua string at this slot */
    uint32_t len, hash;
} slot;

typedef struct column_stats {
    uint32_t lookups, hits;
    int off;
} column_stats;

struct la_string_cache {
    slot slots[COLUMNS * SLOTS];
    column_stats columns[COLUMNS];
    uint32_t pending_hash;    /* of the last miss, for la_string_cache_keep */
};

la_string_cache *la_string_cache_new(void)
{
    return calloc(1, sizeof(la_string_cache));
}

void la_string_cache_free(la_string_cache *c)
{
    free(c);
}

void la_string_cache_reset(la_string_cache *c)
{
    memset(c, 0, sizeof *c);
}

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = len * 0x9E3779B97F4A7C15ull, w;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    if (len) {
        w = 0;
        memcpy(&w, s, len);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    }
    h ^= h >> 29;
    return (uint32_t)h;
}

int la_string_cache_find(la_string_cache *c, size_t column, const char *s, size_t len)
{
    column_stats *stats;
    uint32_t hash;
    int number;
    slot *sl;
    if (column >= COLUMNS || len > MAX_LEN)
        return 0;
    stats = &c->columns[column];
    if (stats->off)
        return 0;
    hash = hash_bytes(s, len);
    number = (int)(column * SLOTS + (hash % SLOTS));
    sl = &c->slots[number];
    if (++stats->lookups == TRIAL && stats->hits < TRIAL / 4)
        stats->off = 1;  /* values that do not repeat: stop looking */
    if (sl->bytes && sl->hash == hash && sl->len == len && memcmp(sl->bytes, s, len) == 0) {
        stats->hits++;
        return number + 1;
    }
    c->pending_hash = hash;
    return -(number + 1);
}

void la_string_cache_keep(la_string_cache *c, int slot_number, const char *bytes, size_t len)
{
    slot *sl = &c->slots[slot_number - 1];
    sl->bytes = bytes;
    sl->len = (uint32_t)len;
    sl->hash = c->pending_hash;
}
