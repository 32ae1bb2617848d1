/*
 * URLs read the way libcurl reads them: with libcurl's own URL API, so the
 * host a check decides on is the host libcurl connects to (a hand-written
 * parser takes "http://127.0.0.1:80@192.0.2.2/" for a loopback URL; libcurl
 * sends the request to 192.0.2.2). libcurl also normalizes every IPv4
 * spelling it accepts (127.1, 0x7f.1, 2130706433, 0177.0.0.1, %31%32%37...)
 * to a dotted quad, so loopback is decided on that one form.
 */
#include "la_core.h"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void say(char *why, size_t whylen, const char *text)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", text);
}

int la_host_is_loopback(const char *host)
{
    char ip[64];
    size_t n;
    struct in_addr v4;
    struct in6_addr v6;
    if (!host || !host[0])
        return 0;
    /* libcurl resolves "localhost" itself, to 127.0.0.1 and ::1; the
     * trailing-dot form goes to the system resolver, which the connection
     * check in http.c (the peer's address) covers */
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return 1;
    n = strlen(host);
    if (host[0] == '[') {
        if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof ip)
            return 0;
        memcpy(ip, host + 1, n - 2);
        ip[n - 2] = '\0';
    } else {
        if (n >= sizeof ip)
            return 0;
        memcpy(ip, host, n + 1);
    }
    /* inet_pton takes the dotted quad only: the one form libcurl
     * normalizes every IPv4 spelling to (and gives as a peer address) */
    if (inet_pton(AF_INET, ip, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    /* ::1 only. An IPv4-mapped ::ffff:127.x does reach loopback, but no
     * one writes it for a local endpoint: it counts as not loopback */
    if (inet_pton(AF_INET6, ip, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return 0;
}

/* One path segment, raw: is it "." or "..", spelled with %2e too, or does
 * it become one when a server decodes %2f or %5c into a separator? */
static int has_dot_segment(const char *seg, size_t len)
{
    size_t i, run = 0, dots = 0;
    for (i = 0; i <= len; i++) {
        char c = i < len ? seg[i] : '/';
        if (c == '%' && i + 2 < len) {
            char a = seg[i + 1], b = (char)(seg[i + 2] | 0x20);
            if (a == '2' && b == 'e') {
                c = '.';
                i += 2;
            } else if ((a == '2' && b == 'f') || (a == '5' && b == 'c')) {
                c = '/';
                i += 2;
            }
        }
        if (c == '/' || c == '\\') {
            if (run > 0 && run == dots && run <= 2)
                return 1;
            run = dots = 0;
        } else {
            run++;
            dots += c == '.';
        }
    }
    return 0;
}

int la_path_has_dot_segment(const char *path)
{
    const char *p = path, *slash;
    if (!p)
        return 0;
    for (;;) {
        slash = strchr(p, '/');
        if (has_dot_segment(p, slash ? (size_t)(slash - p) : strlen(p)))
            return 1;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

/* One part of u into buf (empty when absent); -1 if it does not fit or
 * libcurl failed otherwise. */
static int part(CURLU *u, CURLUPart which, unsigned flags, char *buf, size_t size, int *present)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(u, which, &v, flags);
    size_t n;
    buf[0] = '\0';
    if (present)
        *present = 0;
    if (rc != CURLUE_OK) {
        /* absent is fine; anything else (memory) is not */
        return rc == CURLUE_OUT_OF_MEMORY ? -1 : 0;
    }
    n = strlen(v);
    if (present)
        *present = 1;
    if (n >= size) {
        curl_free(v);
        return -1;
    }
    memcpy(buf, v, n + 1);
    curl_free(v);
    return 0;
}

void la_url_free(la_url *u)
{
    if (!u)
        return;
    free(u->path);
    free(u->base);
    u->path = u->base = NULL;
}

int la_url_parse(const char *text, la_url *out, char *why, size_t whylen)
{
    CURLU *u;
    CURLUcode rc;
    const unsigned char *p;
    char port[16], scratch[8], *path = NULL;
    size_t i, plen, base_len;
    int present;

    memset(out, 0, sizeof *out);
    if (!text || !text[0]) {
        say(why, whylen, "the URL is empty");
        return -1;
    }
    /* refused outright: libcurl would reject some and quietly keep others
     * (a tab in a query), and a backslash is a separator to browsers and
     * WHATWG parsers but not to libcurl: a URL must mean one thing */
    for (p = (const unsigned char *)text; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            say(why, whylen, "the URL contains whitespace or a control character");
            return -1;
        }
        if (*p == '\\') {
            say(why, whylen, "the URL contains a backslash");
            return -1;
        }
    }
    u = curl_url();
    if (!u) {
        say(why, whylen, "out of memory");
        return -1;
    }
    /* no CURLU_GUESS_SCHEME: a URL must say its scheme. PATH_AS_IS keeps
     * dot segments visible (libcurl would otherwise remove them). */
    rc = curl_url_set(u, CURLUPART_URL, text, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS);
    if (rc != CURLUE_OK) {
        if (why && whylen)
            snprintf(why, whylen, "the URL cannot be read (%s)", curl_url_strerror(rc));
        curl_url_cleanup(u);
        return -1;
    }
    if (part(u, CURLUPART_SCHEME, 0, out->scheme, sizeof out->scheme, NULL) != 0 ||
        part(u, CURLUPART_HOST, 0, out->host, sizeof out->host, NULL) != 0 ||
        part(u, CURLUPART_PORT, 0, port, sizeof port, &out->port_given) != 0)
        goto too_long;
    for (i = 0; out->scheme[i]; i++)
        if (out->scheme[i] >= 'A' && out->scheme[i] <= 'Z')
            out->scheme[i] = (char)(out->scheme[i] + 32);
    /* host names are case-insensitive: one spelling for the base URL */
    for (i = 0; out->host[i]; i++)
        if (out->host[i] >= 'A' && out->host[i] <= 'Z')
            out->host[i] = (char)(out->host[i] + 32);
    if (!out->host[0]) {
        say(why, whylen, "the URL has no host");
        curl_url_cleanup(u);
        return -1;
    }
    out->port = out->port_given ? strtol(port, NULL, 10) : 0;
    if (!out->port_given && part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT, port, sizeof port, &present) == 0 &&
        present)
        out->port = strtol(port, NULL, 10);
    /* present or not is all that matters for these: a short buffer will do */
    part(u, CURLUPART_USER, 0, scratch, sizeof scratch, &out->has_userinfo);
    if (!out->has_userinfo)
        part(u, CURLUPART_PASSWORD, 0, scratch, sizeof scratch, &out->has_userinfo);
    if (!out->has_userinfo)
        part(u, CURLUPART_OPTIONS, 0, scratch, sizeof scratch, &out->has_userinfo);
    part(u, CURLUPART_QUERY, 0, scratch, sizeof scratch, &out->has_query);
    part(u, CURLUPART_FRAGMENT, 0, scratch, sizeof scratch, &out->has_fragment);
    part(u, CURLUPART_ZONEID, 0, scratch, sizeof scratch, &out->has_zoneid);
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        say(why, whylen, "out of memory");
        return -1;
    }
    curl_url_cleanup(u);
    out->dot_segment = la_path_has_dot_segment(path);
    out->loopback = !out->has_zoneid && la_host_is_loopback(out->host);

    /* scheme://host[:port]path, the path without its trailing slashes */
    plen = strlen(path);
    while (plen && path[plen - 1] == '/')
        plen--;
    base_len = strlen(out->scheme) + 3 + strlen(out->host) + 1 + strlen(port) + plen + 1;
    out->path = malloc(plen + 1);
    out->base = malloc(base_len);
    if (!out->path || !out->base) {
        curl_free(path);
        la_url_free(out);
        say(why, whylen, "out of memory");
        return -1;
    }
    memcpy(out->path, path, plen);
    out->path[plen] = '\0';
    curl_free(path);
    snprintf(out->base, base_len, "%s://%s%s%s%s", out->scheme, out->host,
             out->port_given ? ":" : "", out->port_given ? port : "", out->path);
    return 0;
too_long:
    curl_url_cleanup(u);
    say(why, whylen, "the URL's scheme, host or port is too long");
    return -1;
}

int la_url_base_problem(const la_url *u, int allow_http, char *why, size_t whylen)
{
    if (strcmp(u->scheme, "https") != 0 && strcmp(u->scheme, "http") != 0)
        snprintf(why, whylen, "must be an http(s) URL, got scheme '%s'", u->scheme);
    else if (u->has_userinfo)
        snprintf(why, whylen, "must not hold user information (user:password@)");
    else if (u->has_query || u->has_fragment)
        snprintf(why, whylen, "must not have a query (?...) or a fragment (#...)");
    else if (u->has_zoneid)
        snprintf(why, whylen, "must not have an IPv6 zone id");
    else if (u->dot_segment)
        snprintf(why, whylen, "must not have a '.' or '..' path segment");
    else if (strcmp(u->scheme, "http") == 0 && !allow_http && !u->loopback)
        snprintf(why, whylen, "is plain http to a non-loopback host; use https or allow_http = true");
    else
        return 0;
    return -1;
}
