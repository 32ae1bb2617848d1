/*
 * One gzip member decoded as its bytes arrive. The gzip header (RFC 1952) is
 * read here, byte by byte as it comes, for both inflaters; the deflate data
 * and the trailer go to the inflater the build chose (gunzip_backend.h):
 * ISA-L's igzip when found (gunzip_isal.c), else zlib (gunzip_zlib.c). The
 * header is read here because igzip 2.30 refuses a header with a header CRC
 * when the header arrives in pieces (found by fuzz/gunzip_diff.c), and one
 * reader keeps both builds accepting the same headers. The member's CRC-32
 * and length are checked. Bytes after the member are ignored, as libcurl
 * does.
 */
#include "gunzip_backend.h"

#include <stdint.h>
#include <stdlib.h>

/* header flags */
#define FHCRC 0x02
#define FEXTRA 0x04
#define FNAME 0x08
#define FCOMMENT 0x10
#define FRESERVED 0xe0

enum stage {
    HEADER_FIXED,          /* ID1 ID2 CM FLG MTIME(4) XFL OS */
    HEADER_EXTRA_LENGTH,   /* XLEN, 2 bytes */
    HEADER_EXTRA,          /* XLEN bytes */
    HEADER_NAME,           /* up to a zero byte */
    HEADER_COMMENT,        /* up to a zero byte */
    HEADER_CRC,            /* CRC16 of the header so far, 2 bytes */
    BODY                   /* deflate data and trailer, for the inflater */
};

struct la_gunzip {
    la_inflater *inflater;
    enum stage stage;
    unsigned char fixed[10];
    size_t have;           /* bytes of the current header field so far */
    size_t extra_left;
    unsigned flags;
    uint32_t header_crc;   /* CRC-32 of the header bytes before HEADER_CRC */
    int done;              /* the member and its trailer were read */
    int failed;            /* the data is not gzip, or is corrupt */
};

/* Moves past the current header field to the next one the flags announce. */
static void next_field(la_gunzip *g)
{
    switch (g->stage) {
    case HEADER_FIXED:
        if (g->flags & FEXTRA) {
            g->stage = HEADER_EXTRA_LENGTH;
            g->have = 0;
            return;
        }
        /* fall through */
    case HEADER_EXTRA_LENGTH:
    case HEADER_EXTRA:
        if (g->flags & FNAME) {
            g->stage = HEADER_NAME;
            return;
        }
        /* fall through */
    case HEADER_NAME:
        if (g->flags & FCOMMENT) {
            g->stage = HEADER_COMMENT;
            return;
        }
        /* fall through */
    case HEADER_COMMENT:
        if (g->flags & FHCRC) {
            g->stage = HEADER_CRC;
            g->have = 0;
            return;
        }
        /* fall through */
    default:
        g->stage = BODY;
    }
}

/* Takes header bytes from p; returns how many, or -1 if this is not a
 * gzip member (or its header CRC is wrong). */
static long read_header(la_gunzip *g, const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && g->stage != BODY) {
        unsigned char c = p[i++];
        if (g->stage != HEADER_CRC)
            g->header_crc = la_inflater_crc32(g->header_crc, &c, 1);
        switch (g->stage) {
        case HEADER_FIXED:
            g->fixed[g->have++] = c;
            if (g->have < sizeof g->fixed)
                break;
            if (g->fixed[0] != 0x1f || g->fixed[1] != 0x8b || g->fixed[2] != 8 ||
                (g->fixed[3] & FRESERVED))
                return -1;
            g->flags = g->fixed[3];
            next_field(g);
            break;
        case HEADER_EXTRA_LENGTH:
            g->extra_left |= (size_t)c << (8 * g->have++);
            if (g->have == 2) {
                g->stage = HEADER_EXTRA;
                if (g->extra_left == 0)
                    next_field(g);
            }
            break;
        case HEADER_EXTRA:
            if (--g->extra_left == 0)
                next_field(g);
            break;
        case HEADER_NAME:
        case HEADER_COMMENT:
            if (c == 0)
                next_field(g);
            break;
        case HEADER_CRC:
            if (c != ((g->header_crc >> (8 * g->have++)) & 0xff))
                return -1;
            if (g->have == 2)
                next_field(g);
            break;
        case BODY:
            break;
        }
    }
    return (long)i;
}

la_gunzip *la_gunzip_new(void)
{
    la_gunzip *g = malloc(sizeof *g);
    if (!g)
        return NULL;
    if (!(g->inflater = la_inflater_new())) {
        free(g);
        return NULL;
    }
    la_gunzip_reset(g);
    return g;
}

void la_gunzip_free(la_gunzip *g)
{
    if (!g)
        return;
    la_inflater_free(g->inflater);
    free(g);
}

void la_gunzip_reset(la_gunzip *g)
{
    la_inflater_reset(g->inflater);
    g->stage = HEADER_FIXED;
    g->have = 0;
    g->extra_left = 0;
    g->flags = 0;
    g->header_crc = 0;
    g->done = 0;
    g->failed = 0;
}

int la_gunzip_feed(la_gunzip *g, const char *data, size_t len, la_body_fn out, void *ud)
{
    if (g->failed)
        return -1;
    if (g->stage != BODY) {
        long taken = read_header(g, (const unsigned char *)data, len);
        if (taken < 0) {
            g->failed = 1;
            return -1;
        }
        data += taken;
        len -= (size_t)taken;
    }
    if (len == 0 || g->done)
        return 0;
    switch (la_inflater_feed(g->inflater, (const unsigned char *)data, len, out, ud)) {
    case LA_INFLATE_DONE:
        g->done = 1;
        return 0;
    case LA_INFLATE_BROKEN:
        g->failed = 1;
        return -1;
    case LA_INFLATE_REFUSED:
        return -1;
    default:
        return 0;
    }
}

int la_gunzip_done(const la_gunzip *g)
{
    return g->done;
}

int la_gunzip_failed(const la_gunzip *g)
{
    return g->failed;
}
