/*
 * The gzip decoder (src/gunzip.c, with the inflater of the build: ISA-L's
 * igzip or zlib) checked against zlib.
 *
 *   - libFuzzer target (build/fuzz_gunzip). The first input byte picks the
 *     mode and seeds the chunking:
 *       even: the rest is data; zlib compresses it into a gzip member (level,
 *             strategy, and header name/comment/extra/header CRC picked from
 *             the byte), and the decoder, fed in random chunks, must end
 *             with exactly the data;
 *       odd:  the rest is taken as a gzip stream as is; whenever either
 *             decoder accepts it whole, the other must too, with the same
 *             bytes.
 *   - with -DSTANDALONE: `gunzip_diff [-n ROUNDS] FILE...` runs both modes
 *     on each file (as data, and its gzip as a stream) and on ROUNDS
 *     deterministic corruptions of that gzip; prints "N inputs, M
 *     differences" and exits 1 on any difference (spec/gunzip_spec.lua).
 */
#include "../src/la_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static unsigned long long rng_state;
static unsigned next_random(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static int collect(void *ud, const char *data, size_t len)
{
    return la_buf_append(ud, data, len);
}

/* Decodes with la_gunzip in random chunks: 1 accepted whole, 0 not. */
static int ours(const unsigned char *gz, size_t len, unsigned seed, la_buf *out)
{
    la_gunzip *g = la_gunzip_new();
    size_t at = 0;
    int whole;
    if (!g)
        abort();
    rng_state = seed;
    while (at < len) {
        size_t step = 1 + next_random() % (next_random() % 2 ? 16 : 4096);
        if (step > len - at)
            step = len - at;
        if (la_gunzip_feed(g, (const char *)gz + at, step, collect, out) != 0)
            break;
        at += step;
    }
    whole = la_gunzip_done(g) && !la_gunzip_failed(g);
    la_gunzip_free(g);
    return whole;
}

/* Decodes with zlib in one go (CRC-32 and length checked): 1 accepted whole. */
static int zlibs(const unsigned char *gz, size_t len, la_buf *out)
{
    z_stream z;
    unsigned char buf[65536];
    int rc;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        abort();
    z.next_in = (unsigned char *)gz;
    z.avail_in = (unsigned)len;
    do {
        z.next_out = buf;
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_NO_FLUSH);
        la_buf_append(out, (const char *)buf, sizeof buf - z.avail_out);
    } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    return rc == Z_STREAM_END;
}

static int same(const la_buf *a, const la_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* zlib's gzip of data, its header and settings picked by `pick`. */
static void compress_gzip(const unsigned char *data, size_t len, unsigned pick, la_buf *out)
{
    z_stream z;
    gz_header header;
    unsigned char buf[65536];
    static const int strategies[] = { Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED };
    int rc;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, (int)(pick % 10), Z_DEFLATED, 16 + MAX_WBITS, 8,
                     strategies[(pick / 10) % 5]) != Z_OK)
        abort();
    memset(&header, 0, sizeof header);
    if (pick & 0x100) {
        header.name = (Bytef *)"query.json";
        header.comment = (Bytef *)"from the fuzzer";
        header.extra = (Bytef *)"LA\004\000abcd";
        header.extra_len = 8;
        header.hcrc = (pick & 0x200) != 0;
        deflateSetHeader(&z, &header);
    }
    z.next_in = (unsigned char *)data;
    z.avail_in = (unsigned)len;
    do {
        z.next_out = buf;
        z.avail_out = sizeof buf;
        rc = deflate(&z, Z_FINISH);
        la_buf_append(out, (const char *)buf, sizeof buf - z.avail_out);
    } while (rc == Z_OK);
    deflateEnd(&z);
    if (rc != Z_STREAM_END)
        abort();
}

/* 0 when they agree; else prints what differs and returns 1. */
static int check_data(const unsigned char *data, size_t len, unsigned seed)
{
    la_buf gz, got;
    int whole, bad;
    la_buf_init(&gz);
    la_buf_init(&got);
    compress_gzip(data, len, seed, &gz);
    whole = ours((const unsigned char *)gz.data, gz.len, seed, &got);
    bad = !whole || got.len != len || (len && memcmp(got.data, data, len) != 0);
    if (bad)
        fprintf(stderr, "gunzip_diff: %zu bytes compressed with pick %u: %s\n", len, seed,
                whole ? "other bytes" : "not accepted");
    la_buf_free(&gz);
    la_buf_free(&got);
    return bad;
}

static int check_stream(const unsigned char *gz, size_t len, unsigned seed)
{
    la_buf a, b;
    int ours_whole, zlib_whole, bad;
    la_buf_init(&a);
    la_buf_init(&b);
    ours_whole = ours(gz, len, seed, &a);
    zlib_whole = zlibs(gz, len, &b);
    bad = ours_whole != zlib_whole || (ours_whole && !same(&a, &b));
    if (bad)
        fprintf(stderr, "gunzip_diff: a %zu-byte stream: ours %s, zlib %s%s\n", len,
                ours_whole ? "accepts" : "refuses", zlib_whole ? "accepts" : "refuses",
                ours_whole && zlib_whole ? ", other bytes" : "");
    la_buf_free(&a);
    la_buf_free(&b);
    return bad;
}

#ifndef STANDALONE

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    unsigned seed;
    if (size < 2)
        return 0;
    seed = data[0] * 131u + data[1];
    if ((data[0] & 1) ? check_stream(data + 2, size - 2, seed) : check_data(data + 2, size - 2, seed))
        abort();
    return 0;
}

#else

#include "standalone.h"

/* A deterministic corruption: flip a byte, or cut the stream short. */
static size_t corrupt(unsigned char *out, const unsigned char *in, size_t len, unsigned seed)
{
    size_t pos;
    memcpy(out, in, len);
    rng_state = seed * 2654435761ULL + 7;
    pos = next_random() % len;
    if (next_random() % 3 == 0)
        return pos;
    out[pos] ^= (unsigned char)(1u << (next_random() % 8));
    return len;
}

int main(int argc, char **argv)
{
    int rounds = 20, i, first = 1;
    unsigned long inputs = 0, differences = 0;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        rounds = atoi(argv[2]);
        first = 3;
    }
    for (i = first; i < argc; i++) {
        size_t len;
        unsigned char *data = read_all(argv[i], &len);
        la_buf gz;
        unsigned pick;
        int r;
        if (!data) {
            fprintf(stderr, "gunzip_diff: cannot read %s\n", argv[i]);
            return 2;
        }
        la_buf_init(&gz);
        for (pick = 0; pick < 0x400; pick += 0x4f) {
            differences += (unsigned long)check_data(data, len, pick);
            inputs++;
        }
        compress_gzip(data, len, 6, &gz);
        differences += (unsigned long)check_stream((unsigned char *)gz.data, gz.len, 1);
        inputs++;
        for (r = 0; r < rounds && gz.len > 0; r++) {
            unsigned char *bad = malloc(gz.len);
            size_t n = corrupt(bad, (unsigned char *)gz.data, gz.len, (unsigned)(i * 7919 + r));
            differences += (unsigned long)check_stream(bad, n, (unsigned)r);
            inputs++;
            free(bad);
        }
        la_buf_free(&gz);
        free(data);
    }
    printf("%lu inputs, %lu differences\n", inputs, differences);
    return differences ? 1 : 0;
}

#endif
