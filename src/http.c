/*
 * HTTP transport over one libcurl easy handle per client. Reusing the
 * handle keeps its connection cache, so successive queries ride the same
 * keep-alive connection. 2xx bodies stream to the caller's callback as they
 * arrive, gunzipped here; past WORKER_THRESHOLD, when the caller allows it,
 * gunzip and callback run on a worker thread (body_worker.c) while this
 * thread receives. Other bodies are kept, capped, for the error report (and
 * so is every body when no streaming callback is set: token responses).
 */
#include "la_core.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <time.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
/* A body larger than this is decoded on a worker thread (when the caller
 * allows it): below, a thread costs more than it saves. */
#define WORKER_THRESHOLD (64 * 1024)
/* Body bytes in flight to the worker: plenty for a transfer driven to its
 * end (la_http_perform); less for a stepped one, whose reader pulls rows a
 * few at a time and would get the rest at once when the transfer ends. */
#define RING_PERFORM (1024 * 1024)
#define RING_STEPPED (256 * 1024)

/* State of one transfer, seen by the libcurl callbacks. */
typedef struct transfer {
    CURL *easy;
    la_body_fn on_body;
    la_progress_fn on_progress;
    void (*on_cancel)(void *ud);
    void *ud;
    la_worker *worker;         /* decodes the body on another thread */
    int threaded;              /* decode() runs on the worker */
    int no_worker;             /* the caller said no threads */
    size_t kept_max;           /* a kept body's cap */
    int pause_next, paused;    /* on_progress said enough: the next bytes wait */
    int performing;            /* driven to its end by la_http_perform */
    size_t raw_bytes;
    la_http_response *resp;
    int status_known;
    int success;               /* 2xx: stream to on_body */
    long stall_ms;             /* see la_http_request.stall_timeout_ms */
    curl_off_t last_bytes;     /* body bytes at the last sign of life */
    long long last_progress_ms;
    int stalled;
    /* A stepped transfer's `timeout` counts only the time spent inside its
     * steps: libcurl's CURLOPT_TIMEOUT would also count the time a pulling
     * reader spends on its rows between steps. */
    long timeout_ms;           /* 0: none, or libcurl's (performed transfers) */
    long long active_ms;       /* spent inside steps so far */
    long long left_step_ms;    /* when the last step returned; 0: none yet */
    int timed_out;
    /* gzip is decoded here rather than by libcurl: ISA-L inflates 2-3x
     * faster than libcurl's zlib, on the decoding thread's critical path */
    int gzip;                  /* this response says Content-Encoding: gzip */
    int gz_started;            /* its body began: gz was reset for it */
    int gz_no_memory;
    int no_memory;             /* headers or a kept body could not be stored */
    int got_status_line;       /* a response began (framing errors are then its fault) */
    int in_headers;            /* between its status line and the blank line */
    la_gunzip *gz;             /* made for the first gzip body, kept by la_http */
    /* a secret over plain http: the peer must be loopback (see guard) */
    int loopback_peer_only;
    char refused_peer[64];     /* the peer address on_connected refused */
    int connected;             /* has a connection: a group's transfer left the queue */
} transfer;

/* Transfers run on a multi handle, whether driven to the end at once
 * (la_http_perform) or step by step (la_http_step): one connection pool
 * serves both. */
struct la_http {
    CURLM *multi;              /* its own, or its group's */
    CURL *easy;
    int running;               /* the easy handle is in the multi */
    la_http_group *group;      /* NULL: the multi is its own */
    la_http *next_member;      /* the group's list of its handles */
    int finished;              /* a group's drive ended the transfer: ... */
    int outcome;               /* ... with this (finish()'s answer) */
    int reported;              /* ... and la_http_group_finished told so */
    struct curl_slist *headers;  /* wiped before they are freed: keys, tokens */
    la_buf body;               /* the request body (a token form holds a client
                                  secret): ours, not libcurl's copy, so it is wiped */
    transfer t;
    char errbuf[CURL_ERROR_SIZE];
};

/* A multi handle many la_http share (la_http_new_in): one connection pool,
 * HTTP/2 multiplexing where the server offers it. */
struct la_http_group {
    CURLM *multi;
    la_http *members;          /* every handle made in it, running or not */
    int driving;               /* inside a drive: libcurl's callbacks run */
};

static int global_init_failed;

static void global_init_once(void)
{
    global_init_failed = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK;
}

/* curl_global_init is not thread-safe: several Lua states (nginx's thread
 * pool) may load the module at once, so one of them runs it, once. */
int la_http_global_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init_once);
    return global_init_failed ? -1 : 0;
}

const char *la_http_library_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}

la_http *la_http_new(void)
{
    la_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    la_buf_init_secret(&h->body);
    h->easy = curl_easy_init();
    h->multi = curl_multi_init();
    if (!h->easy || !h->multi) {
        la_http_free(h);
        return NULL;
    }
    return h;
}

la_http_group *la_http_group_new(long max_connections)
{
    la_http_group *g;
    if (max_connections < 1)
        return NULL;
    g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->multi = curl_multi_init();
    if (!g->multi) {
        free(g);
        return NULL;
    }
    curl_multi_setopt(g->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(g->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    /* the connections kept open between transfers: as many as may run */
    curl_multi_setopt(g->multi, CURLMOPT_MAXCONNECTS, max_connections);
    return g;
}

la_http *la_http_new_in(la_http_group *g)
{
    la_http *h;
    if (!g || !g->multi)
        return NULL;
    h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    la_buf_init_secret(&h->body);
    h->easy = curl_easy_init();
    if (!h->easy) {
        free(h);
        return NULL;
    }
    h->multi = g->multi;
    h->group = g;
    h->next_member = g->members;
    g->members = h;
    /* a finished transfer finds its handle (la_http_group's drive) */
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (void *)h);
    return h;
}

int la_http_group_busy(const la_http_group *g)
{
    return g && g->driving;
}

int la_http_grouped(const la_http *h)
{
    return h->group != NULL;
}

int la_http_group_closed(const la_http *h)
{
    return h->group == NULL && h->multi == NULL;
}

/* Header lines carry the api key or the token: wiped, then freed. */
static void free_header_list(struct curl_slist *list)
{
    struct curl_slist *item;
    for (item = list; item; item = item->next)
        if (item->data)
            la_wipe(item->data, strlen(item->data));
    curl_slist_free_all(list);
}

void la_http_cancel(la_http *h)
{
    if (h->t.worker) {
        la_worker_stop(h->t.worker);
        h->t.worker = NULL;
    }
    if (h->running) {
        curl_multi_remove_handle(h->multi, h->easy);
        h->running = 0;
    }
    h->t.gz_started = 0;
    h->finished = h->reported = 0;
    free_header_list(h->headers);
    h->headers = NULL;
    la_buf_clear(&h->body);  /* a secret buffer: wiped */
}

void la_http_free(la_http *h)
{
    if (!h)
        return;
    if (h->multi && h->easy)
        la_http_cancel(h);
    if (h->group) {
        la_http **p = &h->group->members;
        while (*p && *p != h)
            p = &(*p)->next_member;
        if (*p)
            *p = h->next_member;
    }
    la_gunzip_free(h->t.gz);
    la_buf_free(&h->body);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    if (h->multi && !h->group)
        curl_multi_cleanup(h->multi);
    free(h);
}

void la_http_response_init(la_http_response *r)
{
    memset(r, 0, sizeof *r);
    la_buf_init(&r->headers);
    /* kept bodies are token answers and error pages, which may quote a
     * secret back: wiped when cleared for the next response and when freed */
    la_buf_init_secret(&r->body);
}

void la_http_response_free(la_http_response *r)
{
    la_buf_free(&r->headers);
    la_buf_free(&r->body);
}

static void reset_response(la_http_response *r)
{
    r->status = 0;
    r->transport_code = 0;
    r->transport_kind = NULL;
    r->transport_message[0] = '\0';
    r->aborted_by_caller = 0;
    r->body_truncated = 0;
    r->total_seconds = 0;
    la_buf_clear(&r->headers);
    la_buf_clear(&r->body);
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    transfer *t = ud;
    size_t len = size * n;
    /* a new status line starts a new response (after 100 Continue, say) */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        la_buf_clear(&t->resp->headers);
        t->gzip = 0;
        t->got_status_line = 1;
        t->in_headers = 1;
    } else if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        t->in_headers = 0;
    }
    if (len > 17 && strncasecmp(data, "Content-Encoding:", 17) == 0) {
        const char *v = data + 17;
        while (v < data + len && (*v == ' ' || *v == '\t'))
            v++;
        t->gzip = (size_t)(data + len - v) >= 4 && strncasecmp(v, "gzip", 4) == 0;
    }
    if (la_buf_append(&t->resp->headers, data, len) != 0) {
        t->no_memory = 1;
        return 0;
    }
    return len;
}

/* on_progress, on the caller's thread: -1 to abort; enough for this step
 * makes the next bytes wait (see on_write). */
static int took(transfer *t)
{
    int answer = t->on_progress(t->ud);
    if (answer < 0)
        return -1;
    if (answer == LA_PROGRESS_ENOUGH)
        t->pause_next = 1;
    return 0;
}

/* Hands decoded body bytes on: to on_body (2xx) or to the kept body.
 * Returns 0 to go on. (ud: the transfer; the gzip decoder calls it too.) */
static int deliver(void *ud, const char *data, size_t len)
{
    transfer *t = ud;
    if (t->success && t->on_body) {
        if (t->on_body(t->ud, data, len) != 0) {
            if (!t->threaded)  /* else finish() tells, on the caller's thread */
                t->resp->aborted_by_caller = 1;
            return -1;
        }
        /* on the caller's thread: let it take what on_body made */
        if (!t->threaded && t->on_progress && took(t) != 0) {
            t->resp->aborted_by_caller = 1;
            return -1;
        }
        return 0;
    }
    if (t->resp->body.len < t->kept_max) {
        size_t room = t->kept_max - t->resp->body.len;
        if (la_buf_append(&t->resp->body, data, len < room ? len : room) != 0) {
            t->no_memory = 1;
            return -1;
        }
        if (len > room)
            t->resp->body_truncated = 1;
    } else if (len) {
        t->resp->body_truncated = 1;
    }
    return 0;
}

static int inflate_into(transfer *t, const char *data, size_t len)
{
    if (!t->gz_started) {
        if (!t->gz && !(t->gz = la_gunzip_new())) {
            t->gz_no_memory = 1;
            return -1;
        }
        la_gunzip_reset(t->gz);
        t->gz_started = 1;
    }
    return la_gunzip_feed(t->gz, data, len, deliver, t);
}

/* Raw body bytes, on the caller's thread or the worker's. */
static int decode(void *ud, const char *data, size_t len)
{
    transfer *t = ud;
    if (t->gzip)
        return inflate_into(t, data, len);
    return deliver(t, data, len);
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
    transfer *t = ud;
    size_t len = size * n;
    if (!t->status_known) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        t->resp->status = status;
        t->success = status >= 200 && status < 300;
        t->status_known = 1;
    }
    /* a pulling reader has what it asked for: libcurl keeps these bytes
     * and gives them again once la_http_step unpauses the transfer */
    if (t->pause_next) {
        t->pause_next = 0;
        t->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    /* 0 makes libcurl stop with CURLE_WRITE_ERROR */
    t->raw_bytes += len;
    if (!t->threaded && !t->no_worker && t->raw_bytes > WORKER_THRESHOLD && t->success && t->on_body
        && t->on_progress && t->on_cancel) {
        t->threaded = 1;  /* before the thread exists: deliver() reads it there */
        t->worker = la_worker_start(t->performing ? RING_PERFORM : RING_STEPPED,
                                    decode, t, t->on_progress, t->on_cancel, t->ud);
        if (!t->worker)
            t->threaded = 0;  /* no thread: decode here */
    }
    if (t->worker) {
        /* a failure is told apart (gzip or caller) in finish() */
        if (la_worker_push(t->worker, data, len) != 0 || took(t) != 0)
            return 0;
        return len;
    }
    return decode(t, data, len) == 0 ? len : 0;
}

long long la_http_parse_date(const char *text)
{
    time_t t = curl_getdate(text, NULL);
    return t == (time_t)-1 ? -1 : (long long)t;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stall detection: once the response has started, a peer that sends
 * nothing for stall_ms is given up on. (libcurl's low-speed limit would
 * also count the wait for the first byte, which the service may
 * legitimately spend computing the query; `timeout` covers that wait.) */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    transfer *t = ud;
    long long now = now_ms();
    (void)dltotal; (void)ultotal; (void)ulnow;
    if (!t->status_known || dlnow != t->last_bytes) {
        t->last_bytes = dlnow;
        t->last_progress_ms = now;
        return 0;
    }
    if (now - t->last_progress_ms >= t->stall_ms) {
        t->stalled = 1;
        return 1;  /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

/* A failure once a response has begun that is its malformed framing, not
 * the network failing: no system error behind a receive error (libcurl
 * 7.x reports a bad chunk size that way, and a reset has ECONNRESET), or
 * memory "running out" while header lines are read (7.x's answer to
 * headers beyond its 100 KB limit; later versions say CURLE_TOO_LARGE). */
static int framing_error(const transfer *t, CURLcode rc, long os_errno)
{
    if (!t->got_status_line)
        return 0;
#if LIBCURL_VERSION_NUM >= 0x080600
    if (rc == CURLE_TOO_LARGE)
        return 1;
#endif
    return (rc == CURLE_RECV_ERROR && os_errno == 0) ||
           (rc == CURLE_OUT_OF_MEMORY && t->in_headers);
}

static const char *kind_of(CURLcode code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_OUT_OF_MEMORY:
        return "memory";
    case CURLE_PARTIAL_FILE:          /* body shorter than announced */
    case CURLE_BAD_CONTENT_ENCODING:  /* broken gzip stream */
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
        return "protocol";
    default:
        return "network";
    }
}

/* "Authorization: Basic base64(user:password)", in a secret buffer: made
 * here rather than by libcurl (CURLOPT_USERNAME), whose copies of the
 * credentials are freed without being wiped. */
static int basic_auth_line(const la_http_request *req, la_buf *line)
{
    la_buf plain;
    const char *password = req->password ? req->password : "";
    unsigned char *encoded = NULL;
    size_t n = 0;
    int rc = -1;
    la_buf_init_secret(&plain);
    if (la_buf_append(&plain, req->username, strlen(req->username)) != 0 ||
        la_buf_putc(&plain, ':') != 0 || la_buf_append(&plain, password, strlen(password)) != 0)
        goto done;
    if (plain.len > ((size_t)1 << 20))  /* no key is this long; EVP_EncodeBlock takes an int */
        goto done;
    n = 4 * ((plain.len + 2) / 3);
    if (!(encoded = malloc(n + 1)))
        goto done;
    EVP_EncodeBlock(encoded, (const unsigned char *)plain.data, (int)plain.len);
    if (la_buf_append(line, "Authorization: Basic ", 21) == 0 &&
        la_buf_append(line, (const char *)encoded, n) == 0)
        rc = 0;
done:
    if (encoded)
        la_wipe(encoded, n + 1);
    free(encoded);
    la_buf_free(&plain);
    return rc;
}

/* ------------------------------------------------ where a secret may go */

/* Does the request carry a secret: the caller says so (a token request's
 * form), or this file sees one (the core does not trust its callers)? */
static int carries_secret(const la_http_request *req)
{
    static const char *const secret_headers[] = { "Authorization:", "X-Api-Key:", NULL };
    const char *q;
    size_t i, k;
    if (req->carries_secret || req->username || req->password)
        return 1;
    for (i = 0; i < req->nheaders; i++)
        for (k = 0; secret_headers[k]; k++)
            if (strncasecmp(req->headers[i], secret_headers[k], strlen(secret_headers[k])) == 0)
                return 1;
    for (q = strchr(req->url, '?'); q; q = strchr(q, '&'))
        if (strncasecmp(++q, "api_key=", 8) == 0)
            return 1;
    return 0;
}

/* Is host in a no_proxy list? libcurl's rules (lib/noproxy.c): "*" alone
 * matches every host; a name matches itself and its subdomains (leading
 * and trailing dots ignored); an IP address matches itself or a CIDR
 * range. Entries are separated by commas and blanks. */
static int in_no_proxy(const char *host, const char *list)
{
    char name[256], entry[256];
    size_t namelen, len;
    int family = 0;
    unsigned char addr[16], net[16];
    const char *p = list;
    if (!list || !list[0])
        return 0;
    if (strcmp(list, "*") == 0)
        return 1;
    namelen = strlen(host);
    if (host[0] == '[' && namelen > 2) {
        host++;
        namelen -= 2;
    }
    if (namelen >= sizeof name)
        return 0;
    memcpy(name, host, namelen);
    name[namelen] = '\0';
    if (inet_pton(AF_INET, name, addr) == 1)
        family = AF_INET;
    else if (inet_pton(AF_INET6, name, addr) == 1)
        family = AF_INET6;
    else if (namelen && name[namelen - 1] == '.')
        name[--namelen] = '\0';
    while (*p) {
        const char *token;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        token = p;
        while (*p && *p != ' ' && *p != '\t' && *p != ',')
            p++;
        len = (size_t)(p - token);
        if (!len || len >= sizeof entry)
            continue;
        memcpy(entry, token, len);
        entry[len] = '\0';
        if (family) {
            char *slash = strchr(entry, '/');
            unsigned bits = family == AF_INET ? 32 : 128, full, i;
            if (slash) {
                /* "/0" is an exact match to libcurl */
                unsigned long given = strtoul(slash + 1, NULL, 10);
                *slash = '\0';
                if (given > bits)
                    continue;
                if (given)
                    bits = (unsigned)given;
            }
            if (inet_pton(family, entry, net) != 1)
                continue;
            full = bits / 8;
            for (i = 0; i < full && addr[i] == net[i]; i++)
                ;
            if (i == full && (bits % 8 == 0 ||
                              ((addr[full] ^ net[full]) & (0xff << (8 - bits % 8)) & 0xff) == 0))
                return 1;
        } else {
            char *e = entry;
            if (len && e[len - 1] == '.')
                e[--len] = '\0';
            if (len && e[0] == '.') {
                e++;
                len--;
            }
            if (len && len == namelen && strcasecmp(e, name) == 0)
                return 1;
            if (len && len < namelen && name[namelen - len - 1] == '.' &&
                strcasecmp(e, name + namelen - len) == 0)
                return 1;
        }
    }
    return 0;
}

/* The proxy libcurl will use for target, chosen as libcurl chooses it
 * (lib/url.c): none when no_proxy (else NO_PROXY) names the host; else the
 * proxy option, where "" means none; else http_proxy for http (never
 * HTTP_PROXY: libcurl ignores it, a CGI program gets it from a request
 * header), https_proxy or HTTPS_PROXY for https; else all_proxy or
 * ALL_PROXY. NULL: a direct connection. */
static const char *effective_proxy(const la_http_request *req, const la_url *target)
{
    const char *proxy = req->proxy, *no_proxy = getenv("no_proxy");
    if (!no_proxy)
        no_proxy = getenv("NO_PROXY");
    if (in_no_proxy(target->host, no_proxy))
        return NULL;
    if (!proxy) {
        if (strcmp(target->scheme, "http") == 0) {
            proxy = getenv("http_proxy");
        } else {
            proxy = getenv("https_proxy");
            if (!proxy)
                proxy = getenv("HTTPS_PROXY");
        }
        if (!proxy)
            proxy = getenv("all_proxy");
        if (!proxy)
            proxy = getenv("ALL_PROXY");
    }
    return proxy && proxy[0] ? proxy : NULL;
}

/*
 * Checked before anything is sent. Every request: an http(s) URL libcurl
 * reads as we do, with no user information and no dot segment in its path
 * (libcurl would remove "/x/.." and send the request elsewhere). A request
 * carrying a secret over plain http, unless allow_http: the host must be
 * loopback, and so must the proxy libcurl would use, whatever its kind (the
 * request crosses the network to it in clear text, or is decrypted there).
 * An https request through any proxy is fine: libcurl tunnels it with
 * CONNECT, so the proxy sees only the host and port and the secret stays
 * inside TLS end to end. on_connected then checks the address actually
 * reached (a resolver may say anything about "localhost.").
 */
static int guard(const la_http_request *req, transfer *t, char *why, size_t whylen)
{
    la_url target, via;
    char reason[160];
    const char *proxy;
    char *prefixed = NULL;
    int ok;
    if (!req->url || la_url_parse(req->url, &target, reason, sizeof reason) != 0) {
        snprintf(why, whylen, "refused: %s", req->url ? reason : "no URL");
        return -1;
    }
    if (strcmp(target.scheme, "http") != 0 && strcmp(target.scheme, "https") != 0)
        snprintf(why, whylen, "refused: the URL's scheme is not http or https");
    else if (target.has_userinfo)
        snprintf(why, whylen, "refused: the URL has user information (user:password@)");
    else if (target.dot_segment)
        snprintf(why, whylen, "refused: the URL path has a dot segment ('.' or '..', "
                              "maybe percent-encoded)");
    else if (strcmp(target.scheme, "http") != 0 || req->allow_http || !carries_secret(req))
        why[0] = '\0';
    else if (!target.loopback)
        snprintf(why, whylen, "refused: the request carries a secret and would go over plain "
                              "http to %.80s, which is not loopback (use https, or allow_http)",
                 target.host);
    else if (!req->no_proxy && (proxy = effective_proxy(req, &target)) != NULL) {
        /* libcurl takes a proxy without a scheme for an http one */
        if (!strstr(proxy, "://") && (prefixed = malloc(strlen(proxy) + 8)) != NULL)
            sprintf(prefixed, "http://%s", proxy);
        ok = la_url_parse(prefixed ? prefixed : proxy, &via, reason, sizeof reason) == 0;
        free(prefixed);
        if (!ok)
            snprintf(why, whylen, "refused: the request carries a secret over plain http and "
                                  "its proxy cannot be read (%s)", reason);
        else if (!via.loopback)
            snprintf(why, whylen, "refused: the request carries a secret and would go over plain "
                                  "http through the proxy at %.80s, which is not loopback (use "
                                  "https, or allow_http)", via.host);
        else
            why[0] = '\0';
        if (ok)
            la_url_free(&via);
        t->loopback_peer_only = 1;
    } else {
        why[0] = '\0';
        t->loopback_peer_only = 1;
    }
    la_url_free(&target);
    return why[0] ? -1 : 0;
}

int la_http_refusal(const la_http_request *req, char *why, size_t whylen)
{
    transfer t;
    memset(&t, 0, sizeof t);
    return guard(req, &t, why, whylen);
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* Connected (to the host or its proxy), nothing sent yet: a secret over
 * plain http goes to a loopback peer only. */
static int on_connected(void *ud, char *peer_ip, char *local_ip, int peer_port, int local_port)
{
    transfer *t = ud;
    (void)local_ip; (void)peer_port; (void)local_port;
    t->connected = 1;
    if (!t->loopback_peer_only || la_host_is_loopback(peer_ip))
        return CURL_PREREQFUNC_OK;
    snprintf(t->refused_peer, sizeof t->refused_peer, "%s", peer_ip);
    return CURL_PREREQFUNC_ABORT;
}
#endif

static struct curl_slist *header_list(const la_http_request *req)
{
    struct curl_slist *list = NULL, *next;
    size_t i;
    /* no "Expect: 100-continue" round trip before the body */
    list = curl_slist_append(list, "Expect:");
    for (i = 0; list && i < req->nheaders; i++) {
        next = curl_slist_append(list, req->headers[i]);
        if (!next) {
            free_header_list(list);
            return NULL;
        }
        list = next;
    }
    if (list && req->username) {
        la_buf line;
        la_buf_init_secret(&line);
        next = basic_auth_line(req, &line) == 0 ? curl_slist_append(list, line.data) : NULL;
        la_buf_free(&line);
        if (!next) {
            free_header_list(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

static void fail_early(la_http_response *resp, const char *why)
{
    resp->transport_code = CURLE_OUT_OF_MEMORY;
    resp->transport_kind = "memory";
    snprintf(resp->transport_message, sizeof resp->transport_message, "%s", why);
}

/* The guard said no: nothing was sent. */
static void refuse(la_http_response *resp, const char *why)
{
    resp->transport_code = CURLE_URL_MALFORMAT;
    resp->transport_kind = "protocol";
    snprintf(resp->transport_message, sizeof resp->transport_message, "%s", why);
}

static int start_transfer(la_http *h, const la_http_request *req, la_http_response *resp,
                          int performing)
{
    CURL *e = h->easy;
    int stored = 1;  /* libcurl copies string options: each copy can fail */
    char why[sizeof resp->transport_message];

    la_http_cancel(h);
    reset_response(resp);
    if (!h->multi) {
        fail_early(resp, "the group is closed");
        resp->transport_kind = "cancelled";
        return -1;
    }
    la_gunzip *gz = h->t.gz;  /* kept from transfer to transfer */
    memset(&h->t, 0, sizeof h->t);
    h->t.gz = gz;
    h->t.easy = e;
    h->t.on_body = req->on_body;
    h->t.on_progress = req->on_progress;
    h->t.on_cancel = req->on_cancel;
    /* a group's transfers decode on the caller's thread: one thread per
     * transfer would not pay, and the group's drive runs them all */
    h->t.no_worker = req->no_worker || h->group;
    h->t.kept_max = req->kept_body_max ? req->kept_body_max : LA_KEPT_BODY_MAX;
    h->t.ud = req->ud;
    h->t.resp = resp;
    h->t.stall_ms = req->stall_timeout_ms;
    h->t.last_progress_ms = now_ms();
    h->t.performing = performing;
    /* a stepped transfer's timeout counts the time in its steps; a group's,
     * the time its group is driven once it has a connection (not the wait
     * in libcurl's queue for one) */
    h->t.timeout_ms = performing ? 0 : req->timeout_ms;
#if LIBCURL_VERSION_NUM < 0x075000
    h->t.connected = 1;  /* no word of the connection: counted from the start */
#endif

    if (guard(req, &h->t, why, sizeof why) != 0) {
        refuse(resp, why);
        return -1;
    }

    h->headers = header_list(req);
    if (!h->headers) {
        fail_early(resp, "out of memory");
        return -1;
    }

    /* curl_easy_reset keeps the connection cache; every option is set again */
    curl_easy_reset(e);
    h->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    stored &= curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    stored &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (req->method && strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        /* copied, as a stepped transfer outlives the caller's body string;
         * into our own buffer, wiped when the transfer ends (libcurl's copy,
         * CURLOPT_COPYPOSTFIELDS, would be freed unwiped) */
        if (la_buf_append(&h->body, req->body ? req->body : "", req->body ? req->body_len : 0) != 0) {
            la_http_cancel(h);
            fail_early(resp, "out of memory");
            return -1;
        }
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body.data);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    /* gzip, decoded by on_write (see transfer) */
    stored &= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip") == CURLE_OK;
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);
    if (req->ca_file)
        stored &= curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file) == CURLE_OK;
    if (req->ca_path)
        stored &= curl_easy_setopt(e, CURLOPT_CAPATH, req->ca_path) == CURLE_OK;
    if (req->no_proxy)
        stored &= curl_easy_setopt(e, CURLOPT_NOPROXY, "*") == CURLE_OK;  /* every host: the option and the variables */
    else if (req->proxy)
        stored &= curl_easy_setopt(e, CURLOPT_PROXY, req->proxy) == CURLE_OK;
    if (req->stall_timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, &h->t);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                 : DEFAULT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     performing && req->timeout_ms > 0 ? req->timeout_ms : 0L);
    if (h->group)  /* curl_easy_reset cleared it */
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)h);
    if (req->user_agent)
        stored &= curl_easy_setopt(e, CURLOPT_USERAGENT, req->user_agent) == CURLE_OK;
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    /* a proxy's answer to CONNECT is not the response: its status line must not
     * make a failed tunnel look like the server's malformed framing */
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &h->t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &h->t);
#if LIBCURL_VERSION_NUM >= 0x075000
    if (h->t.loopback_peer_only || h->group) {
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_connected);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, &h->t);
    }
#endif

    if (!stored) {
        fail_early(resp, "out of memory setting up the request");
        return -1;
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        la_http_cancel(h);
        fail_early(resp, "cannot start the transfer");
        return -1;
    }
    h->running = 1;
    return 0;
}

int la_http_start(la_http *h, const la_http_request *req, la_http_response *resp)
{
    if (start_transfer(h, req, resp, 0) == 0)
        return 0;
    /* ended before it began: the next step (or a group's wait) tells why */
    h->finished = 1;
    h->outcome = -1;
    return -1;
}

/* The gzip decoder stopped the transfer: broken data, or no memory for it. */
static int gzip_failed(const transfer *t)
{
    return t->gz_no_memory || (t->gz_started && la_gunzip_failed(t->gz));
}

/* Fills in the outcome of a finished transfer. */
static int finish(la_http *h, CURLcode rc)
{
    la_http_response *resp = h->t.resp;
    long status = 0, os_errno = 0;
    int framing;
    if (h->t.worker) {
        /* the rest of the body, decoded before the gzip state is read */
        la_worker *w = h->t.worker;
        h->t.worker = NULL;
        if (rc == CURLE_OK) {
            if (la_worker_finish(w) != 0)
                rc = CURLE_WRITE_ERROR;
        } else {
            la_worker_stop(w);
        }
        /* a write error not caused by gzip: on_body or on_progress refused */
        if (rc == CURLE_WRITE_ERROR && !gzip_failed(&h->t))
            resp->aborted_by_caller = 1;
    }
    /* an empty body says nothing about gzip (a 204, say) */
    int gzip_cut = rc == CURLE_OK && h->t.gzip && h->t.gz_started && !la_gunzip_done(h->t.gz);
    int gzip_bad = gzip_failed(&h->t), stalled = h->t.stalled;
    int no_memory = h->t.gz_no_memory || h->t.no_memory;
    int timed_out = h->t.timed_out;
    long stall_ms = h->t.stall_ms, timeout_ms = h->t.timeout_ms;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &resp->total_seconds);
    curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &os_errno);
    framing = framing_error(&h->t, rc, os_errno);
    la_http_cancel(h);
    if (no_memory) {
        fail_early(resp, h->t.gz_no_memory ? "out of memory for the gzip decoder"
                                           : "out of memory for the response");
        return -1;
    }
    if (stalled) {
        resp->transport_code = CURLE_OPERATION_TIMEDOUT;
        resp->transport_kind = "timeout";
        snprintf(resp->transport_message, sizeof resp->transport_message,
                 "the response stalled: no data for %ld.%ld s",  /* not %f: the locale's point */
                 stall_ms / 1000, stall_ms % 1000 / 100);
        return -1;
    }
    if (timed_out) {
        resp->transport_code = CURLE_OPERATION_TIMEDOUT;
        resp->transport_kind = "timeout";
        snprintf(resp->transport_message, sizeof resp->transport_message,
                 "the transfer timed out after %ld.%ld s (%s)",
                 timeout_ms / 1000, timeout_ms % 1000 / 100,  /* not %f: the locale's point */
                 h->group ? "counted while its group was driven, from its connection on"
                          : "not counting the time its reader spent between rows");
        return -1;
    }
    if (h->t.refused_peer[0]) {
        resp->transport_code = CURLE_URL_MALFORMAT;
        resp->transport_kind = "protocol";
        snprintf(resp->transport_message, sizeof resp->transport_message,
                 "refused: the request carries a secret over plain http and its connection "
                 "reached %s, which is not loopback (use https, or allow_http)", h->t.refused_peer);
        return -1;
    }
    if (gzip_cut || gzip_bad) {
        resp->transport_code = CURLE_BAD_CONTENT_ENCODING;
        resp->transport_kind = "protocol";
        snprintf(resp->transport_message, sizeof resp->transport_message, "%s",
                 gzip_bad ? "the response's gzip data is corrupt"
                          : "the response's gzip stream ended early");
        return -1;
    }
    if (rc == CURLE_OK)
        return 0;
    resp->transport_code = (int)rc;
    resp->transport_kind = framing ? "protocol" : kind_of(rc);
    if (framing && rc == CURLE_OUT_OF_MEMORY)
        snprintf(resp->transport_message, sizeof resp->transport_message, "%s",
                 "the response's headers are too large (or memory ran out reading them)");
    else
        snprintf(resp->transport_message, sizeof resp->transport_message, "%s",
                 h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    return -1;
}

/* The time a stepped transfer may still spend in its steps (see
 * transfer.timeout_ms); a large number when it has no timeout. */
static long long time_left_ms(const transfer *t, long long entered)
{
    if (t->timeout_ms <= 0)
        return 1LL << 40;
    return t->timeout_ms - (t->active_ms + (now_ms() - entered));
}

static int step(la_http *h, int wait_ms, int *done)
{
    int still_running = 0, queued;
    long long entered = now_ms(), left;
    CURLMsg *msg;
    if (h->t.paused) {
        /* first what the worker decoded already; then more of the body */
        if (h->t.worker) {
            int answer = h->t.on_progress(h->t.ud);
            if (answer < 0) {
                *done = 1;
                return finish(h, CURLE_WRITE_ERROR);
            }
            if (answer == LA_PROGRESS_ENOUGH)
                return 0;
        }
        h->t.paused = 0;
        h->t.last_progress_ms = now_ms();  /* the reader's pause is not a stall */
        curl_easy_pause(h->easy, CURLPAUSE_CONT);  /* may call on_write at once */
    }
    if (curl_multi_perform(h->multi, &still_running) != CURLM_OK) {
        *done = 1;
        return finish(h, CURLE_OUT_OF_MEMORY);
    }
    while ((msg = curl_multi_info_read(h->multi, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy) {
            *done = 1;
            return finish(h, msg->data.result);
        }
    }
    /* what the worker decoded since, even when no new bytes came */
    if (h->t.worker && took(&h->t) != 0) {
        *done = 1;
        return finish(h, CURLE_WRITE_ERROR);
    }
    left = time_left_ms(&h->t, entered);
    if (left <= 0) {
        h->t.timed_out = 1;
        *done = 1;
        return finish(h, CURLE_OPERATION_TIMEDOUT);
    }
    /* (a paused transfer has nothing to wait for) */
    if (still_running && wait_ms > 0 && !h->t.paused)
        curl_multi_poll(h->multi, NULL, 0, left < wait_ms ? (int)left : wait_ms, NULL);
    return 0;
}

/* ------------------------------------------------------------- groups */

/* Ends the group's transfers libcurl says are done: the number ended. */
static int collect(la_http_group *g)
{
    CURLMsg *msg;
    int queued, n = 0;
    while ((msg = curl_multi_info_read(g->multi, &queued)) != NULL) {
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;  /* msg is gone once the handle is removed */
        char *priv = NULL;
        la_http *h;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        h = (la_http *)(void *)priv;
        if (!h || !h->running || h->easy != easy)
            continue;
        h->outcome = finish(h, rc);
        h->finished = 1;
        n++;
    }
    return n;
}

/* The multi handle failed: every transfer under way ends with it. */
static int fail_all(la_http_group *g)
{
    la_http *h;
    int n = 0;
    for (h = g->members; h; h = h->next_member)
        if (h->running) {
            h->outcome = finish(h, CURLE_OUT_OF_MEMORY);
            h->finished = 1;
            n++;
        }
    return n;
}

/* Counts the time of a drive against each connected transfer's timeout
 * (see start_transfer): the number that ran out and were ended. */
static int time_out(la_http_group *g, long long spent)
{
    la_http *h;
    int n = 0;
    for (h = g->members; h; h = h->next_member) {
        if (!h->running || h->t.timeout_ms <= 0 || !h->t.connected)
            continue;
        h->t.active_ms += spent;
        if (h->t.active_ms >= h->t.timeout_ms) {
            h->t.timed_out = 1;
            h->outcome = finish(h, CURLE_OPERATION_TIMEDOUT);
            h->finished = 1;
            n++;
        }
    }
    return n;
}

int la_http_group_drive(la_http_group *g, int wait_ms)
{
    int running = 0, n;
    long long entered = now_ms();
    if (!g || g->driving)
        return -1;
    g->driving = 1;
    if (curl_multi_perform(g->multi, &running) != CURLM_OK) {
        n = fail_all(g);
    } else {
        n = collect(g);
        if (n == 0 && running && wait_ms > 0) {
            curl_multi_poll(g->multi, NULL, 0, wait_ms, NULL);
            if (curl_multi_perform(g->multi, &running) != CURLM_OK)
                n = fail_all(g);
            else
                n = collect(g);
        }
    }
    n += time_out(g, now_ms() - entered);
    g->driving = 0;
    return n;
}

int la_http_group_finished(la_http *h)
{
    if (!h->finished || h->reported)
        return 0;
    h->reported = 1;
    return 1;
}

int la_http_finished(const la_http *h)
{
    return h->finished;
}

void la_http_group_free(la_http_group *g)
{
    la_http *h, *next;
    if (!g)
        return;
    for (h = g->members; h; h = next) {
        next = h->next_member;
        if (h->running) {
            la_http_response *resp = h->t.resp;
            la_http_cancel(h);
            resp->transport_code = CURLE_ABORTED_BY_CALLBACK;
            resp->transport_kind = "cancelled";
            snprintf(resp->transport_message, sizeof resp->transport_message, "%s",
                     "the transfer was cancelled: its group was closed");
            h->outcome = -1;
            h->finished = 1;
        }
        h->group = NULL;
        h->multi = NULL;
        h->next_member = NULL;
    }
    curl_multi_cleanup(g->multi);
    free(g);
}

/* A step of a group's transfer: the whole group moves, until this one
 * ends or wait_ms passed. */
static int group_step(la_http *h, int wait_ms, int *done)
{
    long long deadline = now_ms() + wait_ms, left;
    if (h->group->driving)
        return 0;  /* from inside a drive (a callback): nothing moves */
    if (h->t.paused) {
        h->t.paused = 0;
        h->t.last_progress_ms = now_ms();  /* the reader's pause is not a stall */
        h->group->driving = 1;  /* on_write may run here: no drive from inside it */
        curl_easy_pause(h->easy, CURLPAUSE_CONT);
        h->group->driving = 0;
    }
    do {
        left = deadline - now_ms();
        if (la_http_group_drive(h->group, left > 100 ? 100 : left > 0 ? (int)left : 0) < 0)
            break;
    } while (!h->finished && h->running && !h->t.paused && deadline - now_ms() > 0);
    if (h->finished) {
        *done = 1;
        h->finished = h->reported = 0;
        return h->outcome;
    }
    return 0;
}

int la_http_step(la_http *h, int wait_ms, int *done)
{
    long long entered = now_ms();
    int rc;
    *done = 0;
    if (h->finished) {  /* a group's drive ended it (or its group closed) */
        *done = 1;
        h->finished = h->reported = 0;
        return h->outcome;
    }
    if (h->group && h->running)
        return group_step(h, wait_ms, done);
    if (!h->running) {
        *done = 1;
        return -1;
    }
    /* the time since the last step was the reader's: neither a stall of
     * the network nor time of the transfer */
    if (h->t.left_step_ms)
        h->t.last_progress_ms += entered - h->t.left_step_ms;
    rc = step(h, wait_ms, done);
    h->t.left_step_ms = now_ms();
    h->t.active_ms += h->t.left_step_ms - entered;
    return rc;
}

/* How long a performed transfer waits in one step: `between` gets control
 * at least this often. */
#define PERFORM_STEP_MS 100

int la_http_perform_checked(la_http *h, const la_http_request *req, la_http_response *resp,
                            int (*between)(void *ud), void *ud)
{
    int done = 0, rc;
    if (start_transfer(h, req, resp, 1) != 0)
        return -1;
    for (;;) {
        rc = la_http_step(h, PERFORM_STEP_MS, &done);
        if (done)
            return rc;
        if (between && between(ud) != 0) {
            la_http_cancel(h);
            resp->aborted_by_caller = 1;
            return -1;
        }
    }
}

int la_http_perform(la_http *h, const la_http_request *req, la_http_response *resp)
{
    return la_http_perform_checked(h, req, resp, NULL, NULL);
}
