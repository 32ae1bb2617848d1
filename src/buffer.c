/* Growable byte buffer used by the parser, the transport and the captures,
 * and the wiping of secrets. */
#include "la_core.h"

#include <stdlib.h>
#include <string.h>

/* explicit_bzero (glibc 2.25+, the BSDs) rather than OPENSSL_cleanse: this
 * file is also linked into tools without libcrypto (fuzz/, the differential
 * checks). Elsewhere, memset through a volatile pointer, which the compiler
 * must call: a plain memset before free() may be dropped as a dead store. */
void la_wipe(void *p, size_t n)
{
    if (!p || !n)
        return;
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))) || \
    defined(__OpenBSD__) || defined(__FreeBSD__)
    explicit_bzero(p, n);
#else
    {
        static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;
        wipe_memset(p, 0, n);
    }
#endif
}

void la_secure_free(char *s)
{
    if (s)
        la_wipe(s, strlen(s));
    free(s);
}

void la_buf_init(la_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->secret = 0;
}

void la_buf_init_secret(la_buf *b)
{
    la_buf_init(b);
    b->secret = 1;
}

void la_buf_free(la_buf *b)
{
    int secret = b->secret;
    if (secret)
        la_wipe(b->data, b->cap);
    free(b->data);
    la_buf_init(b);
    b->secret = secret;
}

void la_buf_wipe(la_buf *b)
{
    la_wipe(b->data, b->cap);
    b->len = 0;
}

void la_buf_clear(la_buf *b)
{
    /* the whole capacity: bytes past len may be left from before */
    if (b->secret)
        la_wipe(b->data, b->cap);
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(la_buf *b, size_t extra)
{
    size_t need, cap;
    char *data;
    if (extra > (size_t)-1 - b->len - 1)
        return -1;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    if (b->secret) {
        /* moved by hand, so the old block is wiped before it is freed */
        data = malloc(cap);
        if (!data)
            return -1;
        if (b->data) {
            memcpy(data, b->data, b->len);
            la_wipe(b->data, b->cap);
            free(b->data);
        }
    } else {
        data = realloc(b->data, cap);
        if (!data)
            return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int la_buf_append(la_buf *b, const char *data, size_t len)
{
    if (reserve(b, len) != 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int la_buf_putc(la_buf *b, char c)
{
    return la_buf_append(b, &c, 1);
}

int la_buf_append_json_string(la_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    if (la_buf_putc(b, '"') != 0)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t esc_len = 2;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        /* flush the plain run before this character */
        if (la_buf_append(b, s + run, i - run) != 0)
            return -1;
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            esc_len = 6;
        }
        if (la_buf_append(b, esc, esc_len) != 0)
            return -1;
    }
    if (la_buf_append(b, s + run, len - run) != 0)
        return -1;
    return la_buf_putc(b, '"');
}
