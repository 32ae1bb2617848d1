/*
 * The inflater for gunzip.c with ISA-L's igzip: on the 100k-row benchmark
 * body it inflates in 27 ms where zlib takes 60-70 ms, and inflating is the
 * largest part of the decoding thread's work. igzip reads the deflate data
 * and checks the trailer (ISA-L's CRC costs little).
 */
#include "gunzip_backend.h"

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>

#define OUT_SIZE 65536

const char la_gunzip_inflater[] = "isal";

struct la_inflater {
    struct inflate_state state;
    unsigned char out[OUT_SIZE];
};

la_inflater *la_inflater_new(void)
{
    return malloc(sizeof(la_inflater));
}

void la_inflater_free(la_inflater *z)
{
    free(z);
}

void la_inflater_reset(la_inflater *z)
{
    isal_inflate_init(&z->state);
    /* the header was read by gunzip.c: igzip reads the data and the trailer */
    z->state.crc_flag = ISAL_GZIP_NO_HDR_VER;
}

uint32_t la_inflater_crc32(uint32_t crc, const unsigned char *data, size_t len)
{
    return crc32_gzip_refl(crc, data, (uint64_t)len);
}

enum la_inflate_result la_inflater_feed(la_inflater *z, const unsigned char *data, size_t len,
                                        la_body_fn out, void *ud)
{
    struct inflate_state *s = &z->state;
    /* igzip takes 32-bit lengths */
    while (len > 0) {
        uint32_t part = len > 0x40000000u ? 0x40000000u : (uint32_t)len;
        s->next_in = (uint8_t *)(uintptr_t)data;
        s->avail_in = part;
        data += part;
        len -= part;
        do {
            uint32_t in_before = s->avail_in;
            s->next_out = z->out;
            s->avail_out = OUT_SIZE;
            int rc = isal_inflate(s);
            size_t produced = OUT_SIZE - s->avail_out;
            /* negative: a broken stream; NEED_DICT: not something gzip has;
             * input left but none taken and nothing made: it would never end */
            if (rc < 0 || rc == ISAL_NEED_DICT ||
                (in_before > 0 && s->avail_in == in_before && produced == 0 &&
                 s->block_state != ISAL_BLOCK_FINISH))
                return LA_INFLATE_BROKEN;
            if (produced && out(ud, (const char *)z->out, produced) != 0)
                return LA_INFLATE_REFUSED;
            if (s->block_state == ISAL_BLOCK_FINISH)
                return LA_INFLATE_DONE;
        } while (s->avail_in > 0 || s->avail_out == 0);
    }
    return LA_INFLATE_MORE;
}
