/*
 * What the standalone builds of the differential checks share (compiled with
 * -DSTANDALONE; see fuzz/README.md).
 */
#ifndef LA_STANDALONE_H
#define LA_STANDALONE_H

#include "../src/la_core.h"

#include <stdio.h>
#include <stdlib.h>

/* A whole file in a fresh block (never NULL for an empty file), or NULL. */
static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    la_buf b;
    char chunk[65536];
    size_t n;
    if (!f)
        return NULL;
    la_buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        la_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    if (!b.data)
        return (unsigned char *)calloc(1, 1);
    return (unsigned char *)b.data;
}

#endif
