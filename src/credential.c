/*
 * Azure AD (Entra ID) credentials: token requests for every flow a Log
 * Analytics user needs, and a token cache per credential. Token responses
 * are small JSON documents, read with cJSON. Nothing here ever puts a
 * secret, an assertion or a token into an error message: what the identity
 * endpoint answers is redacted of every secret the request carried before
 * it is copied (and cut) into la_token_error. Secrets are wiped when let go:
 * the stored options, the form, the answer (its buffer and cJSON's copy).
 */
#include "la_core.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CACHED_SCOPES 8
/* refresh this long before expiry, or half the lifetime if that is shorter */
#define REFRESH_MARGIN_SECONDS 300
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* token requests are never unbounded (la_token_transport): a listener that
 * never answers must not pin a caller, or an nginx pool thread, forever */
#define DEFAULT_TOKEN_CONNECT_MS 10000L
#define DEFAULT_TOKEN_TIMEOUT_MS 30000L
#define DEFAULT_TOKEN_STALL_MS 60000L

typedef struct cached_token {
    char *scope;
    char *token;
    long long expires_on;
    long long refresh_on;
} cached_token;

/* A token request under way (la_credential_prepare): what la_http_request
 * points into, and what its answer is redacted of, kept until it is
 * answered (complete, fail), abandoned or replaced. Every buffer that may
 * hold a secret is a secret one. */
typedef struct pending_request {
    int active;
    char *scope;
    la_buf url, query;
    la_buf form;          /* the POST body: a secret, an assertion, a code... */
    la_buf header;        /* X-IDENTITY-HEADER: value */
    la_buf scratch;
    la_buf sent;          /* the assertion the form carries (see redact) */
    const char *headers[2];
} pending_request;

struct la_credential {
    la_credential_kind kind;
    /* owned copies of the options */
    char *authority_host, *tenant, *client_id, *client_secret;
    char *certificate, *certificate_password;
    size_t certificate_len;
    char *code, *redirect_uri, *refresh_token, *token_file;
    char *identity_endpoint, *identity_header, *imds_endpoint;
    char *mi_client_id, *mi_object_id, *mi_resource_id;
    int use_v1;
    int allow_http;
    /* its own transport settings, over a client's; the strings are copies
     * owned here */
    la_token_transport own;

    la_http *http;
    la_http_response response;
    cached_token cache[MAX_CACHED_SCOPES];
    size_t ncached;
    /* the token request la_credential_prepare made, until it is answered */
    pending_request pending;
};

/* ------------------------------------------------------------ helpers */

static char *dup_or_null(const char *s)
{
    char *d;
    size_t n;
    if (!s)
        return NULL;
    n = strlen(s);
    d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static void set_error(la_token_error *err, const char *kind, const char *fmt, const char *arg)
{
    memset(err, 0, sizeof *err);
    snprintf(err->kind, sizeof err->kind, "%s", kind);
    snprintf(err->message, sizeof err->message, fmt, arg ? arg : "");
}

/* value, application/x-www-form-urlencoded */
static int form_encode(la_buf *b, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *v = (const unsigned char *)value;
    for (; *v; v++) {
        char enc[3];
        if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') ||
            *v == '-' || *v == '.' || *v == '_' || *v == '~') {
            if (la_buf_putc(b, (char)*v) != 0)
                return -1;
            continue;
        }
        enc[0] = '%';
        enc[1] = hex[*v >> 4];
        enc[2] = hex[*v & 15];
        if (la_buf_append(b, enc, 3) != 0)
            return -1;
    }
    return 0;
}

/* application/x-www-form-urlencoded name=value, with '&' between pairs */
static int form_field(la_buf *b, const char *name, const char *value)
{
    if (b->len && la_buf_putc(b, '&') != 0)
        return -1;
    if (la_buf_append(b, name, strlen(name)) != 0 || la_buf_putc(b, '=') != 0)
        return -1;
    return form_encode(b, value);
}

/* ------------------------------------------------------------ redaction */

#define REDACTED "[REDACTED]"

/* Replaces every needle (n bytes) in text with REDACTED, working in work
 * (a secret buffer); 0, or -1 when memory ran out. */
static int replace_all(la_buf *text, const char *needle, size_t n, la_buf *work)
{
    const char *from, *p, *end;
    la_buf swap;
    if (!n || !text->data || text->len < n)
        return 0;
    la_buf_clear(work);
    from = text->data;
    end = text->data + text->len;
    for (p = from; (size_t)(end - p) >= n; p++) {
        if (*p != needle[0] || memcmp(p, needle, n) != 0)
            continue;
        if (la_buf_append(work, from, (size_t)(p - from)) != 0 ||
            la_buf_append(work, REDACTED, sizeof REDACTED - 1) != 0)
            return -1;
        from = p + n;
        p = from - 1;
    }
    if (from == text->data)
        return 0;  /* nothing found */
    if (la_buf_append(work, from, (size_t)(end - from)) != 0)
        return -1;
    swap = *text;
    *text = *work;
    *work = swap;
    return 0;
}

/* Takes out of text every secret a token request of c carries, as given
 * and as the form encodes it; sent: the assertion of this request (a
 * certificate's JWT, a workload's federated token), or NULL. */
static int redact(const la_credential *c, const char *sent, la_buf *text)
{
    const char *secrets[6];
    la_buf encoded, work;
    size_t i;
    int rc = 0;
    secrets[0] = c->client_secret;
    secrets[1] = c->certificate_password;
    secrets[2] = c->code;
    secrets[3] = c->refresh_token;
    secrets[4] = c->identity_header;
    secrets[5] = sent;
    la_buf_init_secret(&encoded);
    la_buf_init_secret(&work);
    for (i = 0; i < sizeof secrets / sizeof secrets[0] && rc == 0; i++) {
        size_t n = secrets[i] ? strlen(secrets[i]) : 0;
        if (!n)
            continue;
        rc |= replace_all(text, secrets[i], n, &work);
        la_buf_clear(&encoded);
        rc |= form_encode(&encoded, secrets[i]);
        if (rc == 0 && encoded.len != n)
            rc |= replace_all(text, encoded.data, encoded.len, &work);
    }
    la_buf_free(&encoded);
    la_buf_free(&work);
    return rc;
}

/* dst (size bytes) = src redacted, then cut to fit: redacting first, so no
 * cut-off piece of a secret is left. dst may be src. */
static void set_redacted(const la_credential *c, const char *sent, char *dst, size_t size,
                         const char *src)
{
    la_buf text;
    la_buf_init_secret(&text);
    if (la_buf_append(&text, src, strlen(src)) != 0 || redact(c, sent, &text) != 0)
        snprintf(dst, size, "%s", "(not shown: out of memory)");
    else
        snprintf(dst, size, "%s", text.data);
    la_buf_free(&text);
}

/* cJSON frees its strings unwiped: a token answer holds the access and
 * refresh tokens, an error answer may quote secrets. */
static void wipe_json(cJSON *item)
{
    for (; item; item = item->next) {
        if (item->valuestring)
            la_wipe(item->valuestring, strlen(item->valuestring));
        wipe_json(item->child);
    }
}

static void delete_json(cJSON *doc)
{
    wipe_json(doc);
    cJSON_Delete(doc);
}

/* "https://api.loganalytics.io/.default" -> "https://api.loganalytics.io" */
static int resource_of(const char *scope, la_buf *out)
{
    size_t n = strlen(scope);
    const char *suffix = "/.default";
    size_t sl = strlen(suffix);
    if (n > sl && strcmp(scope + n - sl, suffix) == 0)
        n -= sl;
    la_buf_clear(out);
    return la_buf_append(out, scope, n);
}

/* A number or a numeric string (IMDS sends "3599"); -1 when absent. */
static long long json_seconds(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsNumber(item))  /* range first: casting 1e300 is undefined */
        return item->valuedouble >= 0 && item->valuedouble < 1e15 ? (long long)item->valuedouble : -1;
    if (cJSON_IsString(item) && item->valuestring[0]) {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(item->valuestring, &end, 10);
        if (errno == 0 && *end == '\0')
            return v;
    }
    return -1;
}

static const char *json_string(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* ------------------------------------------------------ where requests go */

/* A GUID, a domain name, or a well-known tenant: never a path of its own */
static int tenant_ok(const char *t)
{
    size_t label = 0, n = 0;
    const char *p;
    if (!t[0])
        return 0;
    for (p = t; *p; p++, n++) {
        if (*p == '.') {
            if (label == 0)
                return 0;  /* leading dot, or ".." */
            label = 0;
        } else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                   *p == '-' || *p == '_') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && n <= 253;  /* no trailing dot */
}

/* An http(s) base URL for token requests (la_url_base_problem's rule). */
static int endpoint_ok(const char *name, const char *text, int http_anywhere, char *why,
                       size_t whylen)
{
    la_url u;
    char reason[160];
    int bad;
    if (la_url_parse(text, &u, reason, sizeof reason) != 0) {
        snprintf(why, whylen, "%s: %s", name, reason);
        return 0;
    }
    bad = la_url_base_problem(&u, http_anywhere, reason, sizeof reason) != 0;
    la_url_free(&u);
    if (bad)
        snprintf(why, whylen, "%s %s", name, reason);
    return !bad;
}

int la_credential_check_endpoints(const la_credential_options *o, char *why, size_t whylen)
{
    if (o->tenant && !tenant_ok(o->tenant)) {
        snprintf(why, whylen, "tenant must be a GUID or a domain name");
        return -1;
    }
    if (o->authority_host && !endpoint_ok("authority_host", o->authority_host, o->allow_http, why, whylen))
        return -1;
    if (o->imds_endpoint && !endpoint_ok("imds_endpoint", o->imds_endpoint, 1, why, whylen))
        return -1;
    if (o->identity_endpoint && !endpoint_ok("identity_endpoint", o->identity_endpoint, 1, why, whylen))
        return -1;
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

/* ---- required fields: what each kind cannot do without. The core checks
 * them itself: its callers (the Lua binding, a test) are not trusted. */
const char *la_credential_missing(const la_credential_options *o)
{
    if (!o)
        return "no options";
    switch (o->kind) {
    case LA_CRED_CLIENT_SECRET:
    case LA_CRED_CLIENT_CERTIFICATE:
    case LA_CRED_AUTHORIZATION_CODE:
    case LA_CRED_REFRESH_TOKEN:
    case LA_CRED_WORKLOAD_IDENTITY:
        if (!o->tenant || !o->tenant[0])
            return "field 'tenant' is required";
        if (!o->client_id || !o->client_id[0])
            return "field 'client_id' is required";
        break;
    case LA_CRED_MANAGED_IDENTITY:
        return NULL;
    default:
        return "unknown credential kind";
    }
    if (o->kind == LA_CRED_CLIENT_SECRET && !o->client_secret)
        return "field 'client_secret' is required";
    if (o->kind == LA_CRED_CLIENT_CERTIFICATE && (!o->certificate || !o->certificate_len))
        return "field 'certificate' is required";
    if (o->kind == LA_CRED_AUTHORIZATION_CODE && !o->code && !o->refresh_token)
        return "field 'code' is required";
    if (o->kind == LA_CRED_REFRESH_TOKEN && !o->refresh_token)
        return "field 'refresh_token' is required";
    if (o->kind == LA_CRED_WORKLOAD_IDENTITY && !o->token_file)
        return "field 'token_file' is required";
    return NULL;
}

la_credential *la_credential_new(const la_credential_options *o)
{
    la_credential *c;
    char why[200];
    if (la_credential_missing(o))  /* the reason: la_credential_missing */
        return NULL;
    if (la_credential_check_endpoints(o, why, sizeof why) != 0)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->kind = o->kind;
    c->use_v1 = o->use_v1;
    c->allow_http = o->allow_http;
    c->own = o->transport;
    c->own.user_agent = c->own.ca_file = c->own.ca_path = c->own.proxy = NULL;
    la_http_response_init(&c->response);
    la_buf_init(&c->pending.url);
    la_buf_init(&c->pending.query);
    la_buf_init_secret(&c->pending.form);
    la_buf_init_secret(&c->pending.header);
    la_buf_init_secret(&c->pending.scratch);
    la_buf_init_secret(&c->pending.sent);
#define COPY(field)                                      \
    do {                                                 \
        c->field = dup_or_null(o->field);                \
        if (o->field && !c->field)                       \
            goto fail;                                   \
    } while (0)
    COPY(authority_host); COPY(tenant); COPY(client_id); COPY(client_secret);
    COPY(certificate_password); COPY(code); COPY(redirect_uri); COPY(refresh_token);
    COPY(token_file); COPY(identity_endpoint); COPY(identity_header); COPY(imds_endpoint);
    COPY(mi_client_id); COPY(mi_object_id); COPY(mi_resource_id);
#undef COPY
#define COPY_OWN(field)                                                   \
    do {                                                                  \
        c->own.field = dup_or_null(o->transport.field);                   \
        if (o->transport.field && !c->own.field)                          \
            goto fail;                                                    \
    } while (0)
    COPY_OWN(user_agent); COPY_OWN(ca_file); COPY_OWN(ca_path); COPY_OWN(proxy);
#undef COPY_OWN
    if (o->certificate) {
        c->certificate = malloc(o->certificate_len + 1);
        if (!c->certificate)
            goto fail;
        memcpy(c->certificate, o->certificate, o->certificate_len);
        c->certificate[o->certificate_len] = '\0';
        c->certificate_len = o->certificate_len;
    }
    c->http = la_http_new();
    if (!c->http)
        goto fail;
    return c;
fail:
    la_credential_free(c);
    return NULL;
}

void la_credential_free(la_credential *c)
{
    size_t i;
    if (!c)
        return;
    la_credential_abandon(c);
    for (i = 0; i < c->ncached; i++) {
        free(c->cache[i].scope);
        la_secure_free(c->cache[i].token);
    }
    free(c->authority_host); free(c->tenant); free(c->client_id);
    la_secure_free(c->client_secret); la_secure_free(c->certificate);
    la_secure_free(c->certificate_password); la_secure_free(c->code); free(c->redirect_uri);
    la_secure_free(c->refresh_token); free(c->token_file); free(c->identity_endpoint);
    la_secure_free(c->identity_header); free(c->imds_endpoint); free(c->mi_client_id);
    free(c->mi_object_id); free(c->mi_resource_id);
    free((char *)c->own.user_agent); free((char *)c->own.ca_file);
    free((char *)c->own.ca_path); free((char *)c->own.proxy);
    la_http_free(c->http);
    la_http_response_free(&c->response);
    free(c);
}

/* ------------------------------------------------------------ cache */

static cached_token *cache_find(la_credential *c, const char *scope)
{
    size_t i;
    for (i = 0; i < c->ncached; i++)
        if (strcmp(c->cache[i].scope, scope) == 0)
            return &c->cache[i];
    return NULL;
}

static int cache_store(la_credential *c, const char *scope, const char *token,
                       long long now, long long expires_on, long long refresh_in)
{
    cached_token *e = cache_find(c, scope);
    char *token_copy = dup_or_null(token);
    long long lifetime = expires_on - now, margin;
    if (!token_copy)
        return -1;
    if (!e) {
        char *scope_copy = dup_or_null(scope);
        if (!scope_copy) {
            la_secure_free(token_copy);
            return -1;
        }
        if (c->ncached == MAX_CACHED_SCOPES) {
            /* forget the oldest scope: a client uses one or two */
            free(c->cache[0].scope);
            la_secure_free(c->cache[0].token);
            memmove(&c->cache[0], &c->cache[1], (MAX_CACHED_SCOPES - 1) * sizeof c->cache[0]);
            c->ncached--;
        }
        e = &c->cache[c->ncached++];
        e->scope = scope_copy;
        e->token = NULL;
    }
    la_secure_free(e->token);
    e->token = token_copy;
    e->expires_on = expires_on;
    margin = lifetime / 2 < REFRESH_MARGIN_SECONDS ? lifetime / 2 : REFRESH_MARGIN_SECONDS;
    e->refresh_on = refresh_in > 0 ? now + refresh_in : expires_on - margin;
    return 0;
}

void la_credential_invalidate(la_credential *c, const char *scope)
{
    cached_token *e = cache_find(c, scope);
    if (e)
        e->refresh_on = e->expires_on = 0;
}

/* ------------------------------------------------------------ requests */

static const char *token_url(la_credential *c, la_buf *url)
{
    const char *host = c->authority_host ? c->authority_host : "https://login.microsoftonline.com";
    size_t n = strlen(host);
    while (n && host[n - 1] == '/')
        n--;
    la_buf_clear(url);
    /* the tenant is one path segment (checked, and encoded all the same) */
    if (la_buf_append(url, host, n) != 0 || la_buf_putc(url, '/') != 0 ||
        form_encode(url, c->tenant) != 0)
        return NULL;
    if (la_buf_append(url, c->use_v1 ? "/oauth2/token" : "/oauth2/v2.0/token",
                      strlen(c->use_v1 ? "/oauth2/token" : "/oauth2/v2.0/token")) != 0)
        return NULL;
    return url->data;
}

/* Reads the federated token a workload identity presents (it rotates). */
static int read_token_file(const char *path, la_buf *out, la_token_error *err)
{
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, "auth", "cannot read the federated token file %s", path);
        return -1;
    }
    la_buf_clear(out);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (la_buf_append(out, chunk, n) != 0 || out->len > 64 * 1024) {
            fclose(f);
            la_wipe(chunk, sizeof chunk);
            set_error(err, "auth", "the federated token file %s is too large", path);
            return -1;
        }
    }
    fclose(f);
    la_wipe(chunk, sizeof chunk);  /* the token, a bearer credential */
    while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r' ||
                        out->data[out->len - 1] == ' '))
        out->data[--out->len] = '\0';
    if (!out->len) {
        set_error(err, "auth", "the federated token file %s is empty", path);
        return -1;
    }
    return 0;
}

/* The form body of a token-endpoint request; 0 on success. sent gets the
 * assertion the form carries, if any (for redacting the answer). */
static int token_form(la_credential *c, const char *scope, const char *url, long long now,
                      la_buf *form, la_buf *scratch, la_buf *sent, la_token_error *err)
{
    int rc = 0;
    char *assertion = NULL;
    char why[200];
    la_buf_clear(form);
    rc |= form_field(form, "client_id", c->client_id);
    switch (c->kind) {
    case LA_CRED_CLIENT_SECRET:
        rc |= form_field(form, "grant_type", "client_credentials");
        rc |= form_field(form, "client_secret", c->client_secret);
        break;
    case LA_CRED_CLIENT_CERTIFICATE:
        why[0] = '\0';
        assertion = la_client_assertion(c->certificate, c->certificate_len,
                                        c->certificate_password, c->client_id, url, now,
                                        why, sizeof why);
        if (!assertion) {
            set_error(err, "auth", "client certificate: %s", why);
            return -1;
        }
        rc |= form_field(form, "grant_type", "client_credentials");
        rc |= form_field(form, "client_assertion_type", ASSERTION_TYPE);
        rc |= form_field(form, "client_assertion", assertion);
        rc |= la_buf_append(sent, assertion, strlen(assertion));
        la_secure_free(assertion);
        break;
    case LA_CRED_WORKLOAD_IDENTITY:
        if (read_token_file(c->token_file, scratch, err) != 0)
            return -1;
        rc |= form_field(form, "grant_type", "client_credentials");
        rc |= form_field(form, "client_assertion_type", ASSERTION_TYPE);
        rc |= form_field(form, "client_assertion", scratch->data);
        rc |= la_buf_append(sent, scratch->data, scratch->len);
        break;
    case LA_CRED_AUTHORIZATION_CODE:
    case LA_CRED_REFRESH_TOKEN:
        if (c->code) {
            rc |= form_field(form, "grant_type", "authorization_code");
            rc |= form_field(form, "code", c->code);
            if (c->redirect_uri)
                rc |= form_field(form, "redirect_uri", c->redirect_uri);
        } else if (c->refresh_token) {
            rc |= form_field(form, "grant_type", "refresh_token");
            rc |= form_field(form, "refresh_token", c->refresh_token);
        } else {
            set_error(err, "auth", "no authorization code or refresh token left to use%s", NULL);
            return -1;
        }
        if (c->client_secret)
            rc |= form_field(form, "client_secret", c->client_secret);
        break;
    default:
        break;
    }
    if (c->use_v1) {
        if (resource_of(scope, scratch) != 0)
            return -1;
        rc |= form_field(form, "resource", scratch->data);
    } else if (c->kind == LA_CRED_AUTHORIZATION_CODE || c->kind == LA_CRED_REFRESH_TOKEN) {
        /* offline_access: the answer carries a refresh token to keep */
        la_buf_clear(scratch);
        rc |= la_buf_append(scratch, scope, strlen(scope));
        rc |= la_buf_append(scratch, " offline_access", 15);
        rc |= form_field(form, "scope", scratch->data);
    } else {
        rc |= form_field(form, "scope", scope);
    }
    if (rc != 0)
        set_error(err, "network", "out of memory%s", NULL);
    return rc ? -1 : 0;
}

/* The managed identity URL: App Service when its endpoint is known, else IMDS. */
static int managed_identity_url(la_credential *c, const char *scope, la_buf *url, la_buf *query,
                                la_buf *scratch)
{
    int rc = 0, app_service = c->identity_endpoint && c->identity_header;
    const char *base = app_service ? c->identity_endpoint
                     : c->imds_endpoint ? c->imds_endpoint : "http://169.254.169.254";
    la_buf_clear(url);
    la_buf_clear(query);
    rc |= la_buf_append(url, base, strlen(base));
    if (!app_service) {
        while (url->len && url->data[url->len - 1] == '/')
            url->data[--url->len] = '\0';
        rc |= la_buf_append(url, "/metadata/identity/oauth2/token", 31);
    }
    rc |= form_field(query, "api-version", app_service ? "2019-08-01" : "2018-02-01");
    rc |= resource_of(scope, scratch);
    rc |= form_field(query, "resource", scratch->data);
    if (c->mi_client_id)
        rc |= form_field(query, "client_id", c->mi_client_id);
    if (c->mi_object_id)
        rc |= form_field(query, app_service ? "principal_id" : "object_id", c->mi_object_id);
    if (c->mi_resource_id)
        rc |= form_field(query, app_service ? "mi_res_id" : "msi_res_id", c->mi_resource_id);
    rc |= la_buf_putc(url, strchr(url->data, '?') ? '&' : '?');
    rc |= la_buf_append(url, query->data, query->len);
    return rc ? -1 : 0;
}

/* Reads a token answer (or an error answer: status, body) into
 * token/expiry or err; sent: the assertion the request carried (see redact). */
static int read_answer(la_credential *c, const char *sent, long long now, long status,
                       const char *body, size_t body_len, la_buf *token_out,
                       long long *expires_on, long long *refresh_in, la_token_error *err)
{
    cJSON *doc = cJSON_ParseWithLength(body, body_len);
    const char *token, *code, *description, *rotated;
    long long expires_in, on;
    int ok = status >= 200 && status < 300;

    if (!ok) {
        memset(err, 0, sizeof *err);
        snprintf(err->kind, sizeof err->kind, "auth");
        err->http_status = status;
        code = doc ? json_string(doc, "error") : NULL;
        description = doc ? json_string(doc, "error_description") : NULL;
        if (doc && !code && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "error"))) {
            /* some identity endpoints answer in the {"error":{code,message}} shape */
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
            code = json_string(e, "code");
            description = json_string(e, "message");
        }
        /* the answer may quote the request back: redacted, then cut to fit */
        set_redacted(c, sent, err->code, sizeof err->code, code ? code : "");
        if (description)
            set_redacted(c, sent, err->message, sizeof err->message, description);
        else
            snprintf(err->message, sizeof err->message,
                     "the identity endpoint answered HTTP %ld", status);
        if (doc) {
            const char *cid = json_string(doc, "correlation_id");
            const cJSON *codes = cJSON_GetObjectItemCaseSensitive(doc, "error_codes");
            set_redacted(c, sent, err->correlation_id, sizeof err->correlation_id, cid ? cid : "");
            if (cJSON_IsArray(codes) && cJSON_IsNumber(cJSON_GetArrayItem(codes, 0))) {
                double first = cJSON_GetArrayItem(codes, 0)->valuedouble;
                /* AADSTS codes are small; anything else is no code */
                if (first > 0 && first < 2147483647.0)
                    err->error_code = (long)first;
            }
        }
        delete_json(doc);
        return -1;
    }
    token = doc ? json_string(doc, "access_token") : NULL;
    if (!token || !token[0]) {
        delete_json(doc);
        set_error(err, "protocol", "the identity endpoint's answer has no access_token%s", NULL);
        err->http_status = status;
        return -1;
    }
    expires_in = json_seconds(doc, "expires_in");
    on = json_seconds(doc, "expires_on");
    *expires_on = on > 0 ? on : expires_in > 0 ? now + expires_in : now + 3600;
    *refresh_in = json_seconds(doc, "refresh_in");
    rotated = json_string(doc, "refresh_token");
    if (rotated && rotated[0]) {
        /* keep the newest refresh token: the identity platform rotates them */
        char *copy = dup_or_null(rotated);
        if (copy) {
            la_secure_free(c->refresh_token);
            c->refresh_token = copy;
        }
    }
    if (c->code) {
        /* a code is good for one exchange only */
        la_secure_free(c->code);
        c->code = NULL;
    }
    la_buf_clear(token_out);
    if (la_buf_append(token_out, token, strlen(token)) != 0) {
        delete_json(doc);
        set_error(err, "network", "out of memory%s", NULL);
        return -1;
    }
    delete_json(doc);
    return 0;
}

/* The transport settings of a token request: the credential's own, else the
 * client's, else the defaults (see la_token_transport). */
static void token_transport(const la_credential *c, const la_token_transport *client,
                            la_http_request *req)
{
    static const la_token_transport none;
    int verify;
    if (!client)
        client = &none;
#define PICK(own, theirs, dflt) ((own) ? (own) : (theirs) ? (theirs) : (dflt))
    req->user_agent = PICK(c->own.user_agent, client->user_agent, NULL);
    req->connect_timeout_ms = PICK(c->own.connect_timeout_ms, client->connect_timeout_ms,
                                 DEFAULT_TOKEN_CONNECT_MS);
    req->timeout_ms = PICK(c->own.timeout_ms, client->timeout_ms, DEFAULT_TOKEN_TIMEOUT_MS);
    req->stall_timeout_ms = PICK(c->own.stall_timeout_ms, client->stall_timeout_ms,
                                 DEFAULT_TOKEN_STALL_MS);
    req->ca_file = PICK(c->own.ca_file, client->ca_file, NULL);
    req->ca_path = PICK(c->own.ca_path, client->ca_path, NULL);
    req->proxy = PICK(c->own.proxy, client->proxy, NULL);
    verify = PICK(c->own.verify_tls, client->verify_tls, 1);
#undef PICK
    req->insecure = verify < 0;
    /* IMDS and App Service answer on the machine's own network, never
     * through a proxy (which would be handed the identity's token) */
    req->no_proxy = c->kind == LA_CRED_MANAGED_IDENTITY;
    if (req->no_proxy)
        req->proxy = NULL;
}

/* Builds the token request for scope into c->pending and req. */
static int build_request(la_credential *c, const char *scope, const la_token_transport *client,
                         long long now, la_http_request *req, la_token_error *err)
{
    pending_request *p = &c->pending;
    token_transport(c, client, req);
    req->allow_http = c->allow_http;
    /* a client secret, an assertion, a code or a refresh token: http.c
     * keeps it off plain http to other hosts (IMDS and App Service get none) */
    req->carries_secret = c->kind != LA_CRED_MANAGED_IDENTITY;
    p->headers[0] = "Accept: application/json";
    p->scope = dup_or_null(scope);
    if (!p->scope)
        goto no_memory;

    if (c->kind == LA_CRED_MANAGED_IDENTITY) {
        if (managed_identity_url(c, scope, &p->url, &p->query, &p->scratch) != 0)
            goto no_memory;
        if (c->identity_endpoint && c->identity_header) {
            if (la_buf_append(&p->header, "X-IDENTITY-HEADER: ", 19) != 0 ||
                la_buf_append(&p->header, c->identity_header, strlen(c->identity_header)) != 0)
                goto no_memory;
            p->headers[1] = p->header.data;
        } else {
            p->headers[1] = "Metadata: true";
        }
        req->method = "GET";
    } else {
        if (!token_url(c, &p->url))
            goto no_memory;
        if (token_form(c, scope, p->url.data, now, &p->form, &p->scratch, &p->sent, err) != 0)
            return -1;
        p->headers[1] = "Content-Type: application/x-www-form-urlencoded";
        req->method = "POST";
        req->body = p->form.data;
        req->body_len = p->form.len;
    }
    req->url = p->url.data;
    req->headers = p->headers;
    req->nheaders = 2;
    p->active = 1;
    return 0;
no_memory:
    set_error(err, "network", "out of memory%s", NULL);
    return -1;
}

void la_credential_abandon(la_credential *c)
{
    pending_request *p;
    if (!c)
        return;
    p = &c->pending;
    p->active = 0;
    free(p->scope);
    p->scope = NULL;
    /* the secret ones are wiped */
    la_buf_free(&p->url);
    la_buf_free(&p->query);
    la_buf_free(&p->form);
    la_buf_free(&p->header);
    la_buf_free(&p->scratch);
    la_buf_free(&p->sent);
    p->headers[0] = p->headers[1] = NULL;
}

static void give(const cached_token *e, const char **token, long long *expires_on,
                 long long *refresh_on)
{
    *token = e->token;
    *expires_on = e->expires_on;
    if (refresh_on)
        *refresh_on = e->refresh_on;
}

/* After a failed token request (rc -1, err filled) or a fresh token (rc 0,
 * in fresh): caches it, or falls back on the cached token while it has not
 * expired (a refresh ahead of expiry failed: the old token still works). */
static int settle(la_credential *c, const char *scope, long long now, int rc, la_buf *fresh,
                  long long fresh_expires_on, long long refresh_in, const char **token,
                  long long *expires_on, long long *refresh_on, la_token_error *err)
{
    cached_token *e;
    if (rc == 0 && cache_store(c, scope, fresh->data, now, fresh_expires_on, refresh_in) != 0) {
        set_error(err, "network", "out of memory%s", NULL);
        rc = -1;
    }
    e = cache_find(c, scope);
    if (rc != 0 && !(e && now < e->expires_on))
        return -1;
    give(e, token, expires_on, refresh_on);
    return 0;
}

int la_credential_prepare(la_credential *c, const char *scope, const la_token_transport *client,
                          long long now, la_http_request *req, const char **token,
                          long long *expires_on, long long *refresh_on, la_token_error *err)
{
    cached_token *e;
    if (!c || !scope || !req || !token || !expires_on || !err) {
        if (err)
            set_error(err, "misuse", "la_credential_prepare: an argument is NULL%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    la_credential_abandon(c);
    memset(req, 0, sizeof *req);
    e = cache_find(c, scope);
    if (e && now < e->refresh_on) {
        give(e, token, expires_on, refresh_on);
        return LA_TOKEN_CACHED;
    }
    if (build_request(c, scope, client, now, req, err) == 0)
        return LA_TOKEN_SEND;
    la_credential_abandon(c);
    memset(req, 0, sizeof *req);
    return settle(c, scope, now, -1, NULL, 0, -1, token, expires_on, refresh_on, err);
}

/* LA_TOKEN_MISUSE (err says why) unless a request for scope is under way. */
static int check_pending(la_credential *c, const char *scope, const char **token,
                         long long *expires_on, la_token_error *err)
{
    if (!err)
        return LA_TOKEN_MISUSE;
    if (!c || !scope || !token || !expires_on) {
        set_error(err, "misuse", "an argument is NULL%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    if (!c->pending.active) {
        set_error(err, "misuse", "no token request under way%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    if (strcmp(scope, c->pending.scope) != 0) {
        set_error(err, "misuse", "the token request under way is for another scope%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    return 0;
}

int la_credential_complete(la_credential *c, const char *scope, long long now, long status,
                           const char *body, size_t body_len, const char **token,
                           long long *expires_on, long long *refresh_on, la_token_error *err)
{
    la_buf fresh;
    long long fresh_expires_on = 0, refresh_in = -1;
    int rc = check_pending(c, scope, token, expires_on, err);
    if (rc != 0)
        return rc;
    if (!body) {
        set_error(err, "misuse", "the answer has no body (give \"\" for an empty one)%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    if (status < 100 || status > 999) {
        set_error(err, "misuse", "the answer's status must be an HTTP status (100 to 999)%s", NULL);
        return LA_TOKEN_MISUSE;
    }
    /* what la_http keeps of a body, and what is read of it */
    if (body_len > LA_KEPT_BODY_MAX)
        body_len = LA_KEPT_BODY_MAX;
    la_buf_init_secret(&fresh);
    rc = read_answer(c, c->pending.sent.data, now, status, body, body_len, &fresh,
                     &fresh_expires_on, &refresh_in, err);
    la_credential_abandon(c);
    rc = settle(c, scope, now, rc, &fresh, fresh_expires_on, refresh_in, token, expires_on,
                refresh_on, err);
    la_buf_free(&fresh);
    return rc;
}

int la_credential_fail(la_credential *c, const char *scope, long long now, const char *kind,
                       const char *message, const char **token, long long *expires_on,
                       long long *refresh_on, la_token_error *err)
{
    int rc = check_pending(c, scope, token, expires_on, err);
    if (rc != 0)
        return rc;
    if (!kind || (strcmp(kind, "timeout") != 0 && strcmp(kind, "protocol") != 0))
        kind = "network";
    set_error(err, kind, "token request failed: %s", message);
    /* a transport's message may quote what it was sending */
    set_redacted(c, c->pending.sent.data, err->message, sizeof err->message, err->message);
    la_credential_abandon(c);
    return settle(c, scope, now, -1, NULL, 0, -1, token, expires_on, refresh_on, err);
}

int la_credential_get_token(la_credential *c, const char *scope, long long now,
                            const char **token, long long *expires_on, la_token_error *err)
{
    return la_credential_get_token_with(c, scope, NULL, now, token, expires_on, NULL, err);
}

/* prepare, la_http_perform, complete (or fail): the one path of a token
 * request, which a transport of the caller's own takes too */
int la_credential_get_token_with(la_credential *c, const char *scope,
                                 const la_token_transport *transport, long long now,
                                 const char **token, long long *expires_on,
                                 long long *refresh_on, la_token_error *err)
{
    la_http_request req;
    int rc = la_credential_prepare(c, scope, transport, now, &req, token, expires_on, refresh_on,
                                   err);
    if (rc != LA_TOKEN_SEND)
        return rc == LA_TOKEN_CACHED ? 0 : -1;
    if (la_http_perform(c->http, &req, &c->response) != 0) {
        long status = c->response.status;
        rc = la_credential_fail(c, scope, now, c->response.transport_kind,
                                c->response.transport_message, token, expires_on, refresh_on, err);
        if (rc != 0)
            err->http_status = status;
    } else {
        rc = la_credential_complete(c, scope, now, c->response.status,
                                    c->response.body.data ? c->response.body.data : "",
                                    c->response.body.len, token, expires_on, refresh_on, err);
    }
    /* the answer (a secret buffer) is wiped now rather than at the next request */
    la_buf_clear(&c->response.body);
    return rc == 0 ? 0 : -1;
}
