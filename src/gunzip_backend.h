/*
 * The inflater under la_gunzip (gunzip.c): the deflate data and the trailer
 * of one gzip member, after gunzip.c has read its header. Two builds of it,
 * one linked in: gunzip_isal.c (ISA-L's igzip, the faster) or gunzip_zlib.c
 * (zlib), chosen at configure time (CMakeLists.txt, WITH_ISAL).
 */
#ifndef LA_GUNZIP_BACKEND_H
#define LA_GUNZIP_BACKEND_H

#include "la_core.h"

#include <stdint.h>

typedef struct la_inflater la_inflater;

enum la_inflate_result {
    LA_INFLATE_MORE,     /* all input taken; the member goes on */
    LA_INFLATE_DONE,     /* the data and trailer were read, CRC-32 and length match */
    LA_INFLATE_BROKEN,   /* corrupt data or a trailer that does not match */
    LA_INFLATE_REFUSED   /* out returned non-zero */
};

/* NULL when out of memory; every allocation it needs is made here. */
la_inflater *la_inflater_new(void);
void la_inflater_free(la_inflater *z);
/* Readies it for the deflate data of a new member. */
void la_inflater_reset(la_inflater *z);
/* Inflates data, handing the bytes made to out; bytes after the trailer are
 * ignored. After DONE, BROKEN or REFUSED it is not fed again until reset. */
enum la_inflate_result la_inflater_feed(la_inflater *z, const unsigned char *data, size_t len,
                                        la_body_fn out, void *ud);
/* The gzip CRC-32 (as zlib's crc32), for the header CRC. */
uint32_t la_inflater_crc32(uint32_t crc, const unsigned char *data, size_t len);

#endif
