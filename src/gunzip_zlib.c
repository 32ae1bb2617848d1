/*
 * The inflater for gunzip.c with zlib, when ISA-L is not there (WITH_ISAL):
 * raw deflate (gunzip.c has read the header), then the 8-byte trailer read
 * here and checked against the CRC-32 and length of what was inflated.
 */
#include "gunzip_backend.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_SIZE 65536

const char la_gunzip_inflater[] = "zlib";

struct la_inflater {
    z_stream z;
    int in_trailer;              /* the deflate data ended; reading the trailer */
    unsigned char trailer[8];    /* CRC-32 and ISIZE, little-endian */
    size_t trailer_have;
    uint32_t crc;                /* of the bytes inflated so far */
    uint32_t length;             /* of the bytes inflated so far, mod 2^32 */
    unsigned char out[OUT_SIZE];
};

la_inflater *la_inflater_new(void)
{
    static const Bytef dictionary = 0;
    la_inflater *z = malloc(sizeof *z);
    if (!z)
        return NULL;
    memset(&z->z, 0, sizeof z->z);
    if (inflateInit2(&z->z, -MAX_WBITS) != Z_OK) {
        free(z);
        return NULL;
    }
    /* zlib allocates its window on first use; a dictionary makes it do so
     * now, so that running out of memory is told here and not taken for
     * corrupt data later. inflateReset forgets the dictionary and keeps
     * the window. */
    if (inflateSetDictionary(&z->z, &dictionary, 1) != Z_OK) {
        inflateEnd(&z->z);
        free(z);
        return NULL;
    }
    return z;
}

void la_inflater_free(la_inflater *z)
{
    if (!z)
        return;
    inflateEnd(&z->z);
    free(z);
}

void la_inflater_reset(la_inflater *z)
{
    inflateReset(&z->z);
    z->in_trailer = 0;
    z->trailer_have = 0;
    z->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    z->length = 0;
}

uint32_t la_inflater_crc32(uint32_t crc, const unsigned char *data, size_t len)
{
    while (len > 0) {
        uInt part = len > 0x40000000u ? 0x40000000u : (uInt)len;
        crc = (uint32_t)crc32(crc, data, part);
        data += part;
        len -= part;
    }
    return crc;
}

static uint32_t little_endian32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Takes trailer bytes; DONE once all 8 are in and match. */
static enum la_inflate_result read_trailer(la_inflater *z, const unsigned char *data, size_t len)
{
    while (len > 0 && z->trailer_have < sizeof z->trailer) {
        z->trailer[z->trailer_have++] = *data++;
        len--;
    }
    if (z->trailer_have < sizeof z->trailer)
        return LA_INFLATE_MORE;
    if (little_endian32(z->trailer) != z->crc || little_endian32(z->trailer + 4) != z->length)
        return LA_INFLATE_BROKEN;
    return LA_INFLATE_DONE;
}

enum la_inflate_result la_inflater_feed(la_inflater *z, const unsigned char *data, size_t len,
                                        la_body_fn out, void *ud)
{
    z_stream *s = &z->z;
    /* zlib takes 32-bit lengths */
    while (len > 0 && !z->in_trailer) {
        uInt part = len > 0x40000000u ? 0x40000000u : (uInt)len;
        s->next_in = (Bytef *)(uintptr_t)data;
        s->avail_in = part;
        data += part;
        len -= part;
        do {
            s->next_out = z->out;
            s->avail_out = OUT_SIZE;
            int rc = inflate(s, Z_NO_FLUSH);
            size_t produced = OUT_SIZE - s->avail_out;
            /* Z_BUF_ERROR: nothing to do until more input comes; any other
             * error (data, dictionary, memory) ends the member */
            if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
                return LA_INFLATE_BROKEN;
            if (produced) {
                z->crc = la_inflater_crc32(z->crc, z->out, produced);
                z->length += (uint32_t)produced;
                if (out(ud, (const char *)z->out, produced) != 0)
                    return LA_INFLATE_REFUSED;
            }
            if (rc == Z_STREAM_END) {
                z->in_trailer = 1;
                /* what zlib did not take of this part, and the rest */
                data -= s->avail_in;
                len += s->avail_in;
                break;
            }
        } while (s->avail_in > 0 || s->avail_out == 0);
    }
    return z->in_trailer ? read_trailer(z, data, len) : LA_INFLATE_MORE;
}
