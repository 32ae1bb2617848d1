/*
 * Repeated strings of a result, remembered per column so that a value the
 * result already holds is handed out again instead of being made anew.
 *
 * Why: Lua interns every short string, and in a large result the intern
 * table is big and cold, so each lua_pushlstring of "Administrative" walks
 * a bucket chain of unrelated strings: cache misses that cost more than the
 * rest of the cell. Most columns repeat a few values (categories, levels,
 * resource groups); here a hit is a word-wise hash, one compare and, on the
 * Lua side, an array read. Columns whose values do not repeat (GUIDs,
 * timestamps) switch themselves off after a short trial.
 *
 * The event tape (event_tape.c) asks on the parsing thread and records the
 * answer with the cell: "the string kept at slot k" or "keep this one at
 * slot k"; the binding keeps the Lua strings in an array by slot. The cache
 * keeps its own copy of each kept string's bytes to compare against.
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
    char *bytes;              /* owned copy, cap bytes */
    uint32_t len, cap, hash;
    int used;
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
    size_t i;
    if (!c)
        return;
    for (i = 0; i < COLUMNS * SLOTS; i++)
        free(c->slots[i].bytes);
    free(c);
}

void la_string_cache_reset(la_string_cache *c)
{
    size_t i;
    for (i = 0; i < COLUMNS * SLOTS; i++)
        c->slots[i].used = 0;  /* the copies' memory is kept for reuse */
    memset(c->columns, 0, sizeof c->columns);
}

uint32_t la_hash_bytes(const char *s, size_t len)
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
    hash = la_hash_bytes(s, len);
    number = (int)(column * SLOTS + (hash % SLOTS));
    sl = &c->slots[number];
    if (++stats->lookups == TRIAL && stats->hits < TRIAL / 4)
        stats->off = 1;  /* values that do not repeat: stop looking */
    if (sl->used && sl->hash == hash && sl->len == len && memcmp(sl->bytes, s, len) == 0) {
        stats->hits++;
        return number + 1;
    }
    c->pending_hash = hash;
    return -(number + 1);
}

int la_string_cache_keep(la_string_cache *c, int slot_number, const char *bytes, size_t len)
{
    slot *sl = &c->slots[slot_number - 1];
    if (sl->cap < len || !sl->bytes) {
        char *more = realloc(sl->bytes, len ? len : 1);
        if (!more)
            return -1;
        sl->bytes = more;
        sl->cap = (uint32_t)(len ? len : 1);
    }
    memcpy(sl->bytes, bytes, len);
    sl->len = (uint32_t)len;
    sl->hash = c->pending_hash;
    sl->used = 1;
    return 0;
}
