/*
 * failmalloc.so: an LD_PRELOAD shim that makes one allocation fail, for the
 * allocation-failure sweep (spec/alloc_spec.lua, `make check-alloc`). Test
 * tool only: nothing in the module knows about it.
 *
 * It counts malloc, calloc, realloc, strdup and strndup calls once armed,
 * and the allocation numbered FAILMALLOC_AT (1-based) returns NULL; every
 * other one succeeds. It arms itself when the first transfer is set up:
 * the first call of curl_slist_append, curl_easy_reset or
 * curl_multi_add_handle (interposed here), so what is swept is a request's
 * and its response's path (libcurl, the body worker, gunzip, tokenizer,
 * parser, event tape, binding), not the interpreter's start-up.
 *
 * Environment:
 *   FAILMALLOC_AT       the allocation to fail; 0 or unset: none (a counting run)
 *   FAILMALLOC_CALLERS  ':'-separated substrings of the calling object's path
 *                       (dladdr): only allocations made from these are
 *                       counted (default: every one, the interpreter's too)
 *   FAILMALLOC_REPORT   a file that gets, at exit, "<counted> <failed>"
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static atomic_int armed;
static atomic_long counted;
static atomic_int failed;
static long fail_at = -1;           /* -1: environment not read yet */
static char callers[512];
static __thread int inside;         /* dladdr or getenv calling back in */

static void read_environment(void)
{
    const char *at = getenv("FAILMALLOC_AT"), *who = getenv("FAILMALLOC_CALLERS");
    if (who)
        snprintf(callers, sizeof callers, "%s", who);
    fail_at = at ? atol(at) : 0;
}

/* Whether an allocation made from code at `from` is one to count. */
static int counts(const void *from)
{
    Dl_info info;
    const char *p;
    if (!callers[0])
        return 1;
    if (!dladdr(from, &info) || !info.dli_fname)
        return 0;
    for (p = callers; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char want[256];
        if (n && n < sizeof want) {
            memcpy(want, p, n);
            want[n] = '\0';
            if (strstr(info.dli_fname, want))
                return 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* 1 when this allocation is the one to fail. */
static int should_fail(const void *from)
{
    long n;
    int yes;
    if (!atomic_load(&armed) || inside)
        return 0;
    inside = 1;
    yes = counts(from);
    inside = 0;
    if (!yes)
        return 0;
    n = atomic_fetch_add(&counted, 1) + 1;
    if (fail_at > 0 && n == fail_at) {
        atomic_store(&failed, 1);
        return 1;
    }
    return 0;
}

void *malloc(size_t size)
{
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (size && should_fail(__builtin_return_address(0)))
        return NULL;
    return __libc_realloc(p, size);
}

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy;
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    copy = __libc_malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *copy;
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    copy = __libc_malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

/* The arming point: the first transfer's start (its header list, its
 * options, its start on the multi handle: whichever comes first). */
static void *real_curl(const char *name)
{
    void *fn;
    /* libcurl came with the module (dlopen, local scope): RTLD_NEXT does
     * not see it, its own handle does */
    void *curl = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_NOLOAD);
    inside = 1;
    fn = dlsym(curl ? curl : RTLD_NEXT, name);
    if (curl)
        dlclose(curl);
    inside = 0;
    return fn;
}

static void arm(void)
{
    if (fail_at < 0) {
        inside = 1;
        read_environment();
        inside = 0;
    }
    atomic_store(&armed, 1);
}

typedef int (*add_handle_fn)(void *multi, void *easy);
typedef void (*reset_fn)(void *easy);
typedef void *(*slist_append_fn)(void *list, const char *s);

int curl_multi_add_handle(void *multi, void *easy)
{
    static add_handle_fn real;
    if (!real)
        real = (add_handle_fn)(uintptr_t)real_curl("curl_multi_add_handle");
    arm();
    return real(multi, easy);
}

void curl_easy_reset(void *easy)
{
    static reset_fn real;
    if (!real)
        real = (reset_fn)(uintptr_t)real_curl("curl_easy_reset");
    arm();
    real(easy);
}

void *curl_slist_append(void *list, const char *s)
{
    static slist_append_fn real;
    if (!real)
        real = (slist_append_fn)(uintptr_t)real_curl("curl_slist_append");
    arm();
    return real(list, s);
}

__attribute__((destructor)) static void report(void)
{
    const char *path;
    FILE *f;
    /* only the process that made a transfer reports (not env or timeout) */
    if (!atomic_exchange(&armed, 0))
        return;
    path = getenv("FAILMALLOC_REPORT");
    if (!path || !*path)
        return;
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "%ld %d\n", (long)atomic_load(&counted), atomic_load(&failed));
    fclose(f);
}
