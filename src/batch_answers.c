/*
 * The answer to POST /v1/$batch, read with the project's tokenizer:
 * {"responses":[{"id":"..","status":200,"headers":{..},"body":{..}}, ...]}.
 * Each body is kept as compact JSON text, numbers with the digits they
 * were sent with (cJSON would make doubles of them, and longs beyond 2^53
 * would lose digits), for the decoder to read like any query response;
 * a body the service sent as a JSON string (a known quirk) is that
 * string's contents, itself JSON text. Nothing here recurses: nesting
 * costs a byte of heap per level, and is capped anyway.
 */
#include "la_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where in the document the next event is. */
typedef enum place {
    AT_START,        /* before the top-level value */
    IN_TOP,          /* the top-level object */
    IN_RESPONSES,    /* its "responses" array */
    IN_ANSWER,       /* one answer object */
    IN_HEADERS,      /* its "headers" object */
    AT_END           /* after the top-level value */
} place;

/* What the value after the last key is. */
typedef enum next_value {
    NEXT_NONE,
    NEXT_RESPONSES,
    NEXT_ID,
    NEXT_STATUS,
    NEXT_HEADERS,
    NEXT_HEADER_VALUE,
    NEXT_BODY,
    NEXT_SKIP        /* a member we do not read */
} next_value;

typedef struct reader {
    la_batch_answers *out;
    place place;
    next_value next;
    size_t depth;            /* containers open in the whole document */
    size_t skip_depth;       /* > 0: inside a container being skipped */
    size_t capture_depth;    /* > 0: inside the body being captured */
    la_buf capture_stack;    /* as response_parser.c: one marker per open container */
    la_buf header_name;
    int seen_responses;
    int seen_id, seen_status, seen_headers, seen_body;
} reader;

static la_batch_answer *current(reader *r)
{
    return &r->out->items[r->out->n - 1];
}

static int fail(reader *r, const char *why)
{
    if (!r->out->error[0])
        snprintf(r->out->error, sizeof r->out->error, "the $batch answer %s", why);
    return 0;
}

static int no_memory(reader *r)
{
    r->out->out_of_memory = 1;
    return fail(r, "could not be read: out of memory");
}

/* ------------------------------------------------------ the body's text */

static int capture_separator(reader *r)
{
    char *top;
    if (r->capture_stack.len == 0)
        return 0;
    top = &r->capture_stack.data[r->capture_stack.len - 1];
    switch (*top) {
    case 'A': *top = 'a'; return 0;
    case 'a': return la_buf_putc(&current(r)->body, ',');
    case 'V': *top = 'm'; return 0;
    default: return 0;
    }
}

static int capture_scalar(reader *r, const char *text, size_t len, int quote)
{
    la_buf *body = &current(r)->body;
    if (capture_separator(r) != 0 ||
        (quote ? la_buf_append_json_string(body, text, len) : la_buf_append(body, text, len)) != 0)
        return no_memory(r);
    return 1;
}

/* ------------------------------------------------------------ values */

static int add_answer(reader *r)
{
    la_batch_answers *a = r->out;
    la_batch_answer *item;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        la_batch_answer *grown = realloc(a->items, cap * sizeof *grown);
        if (!grown)
            return no_memory(r);
        a->items = grown;
        a->cap = cap;
    }
    item = &a->items[a->n++];
    memset(item, 0, sizeof *item);
    la_buf_init(&item->id);
    la_buf_init(&item->body);
    la_buf_init(&item->headers);
    r->seen_id = r->seen_status = r->seen_headers = r->seen_body = 0;
    return 1;
}

/* A header as name, NUL, value, NUL in item->headers: names and values
 * holding a NUL byte are refused (no HTTP header has one). */
static int add_header(reader *r, const char *value, size_t len)
{
    la_batch_answer *item = current(r);
    if (memchr(r->header_name.data ? r->header_name.data : "", '\0', r->header_name.len) ||
        memchr(value, '\0', len))
        return fail(r, "has a header holding a NUL byte");
    if (la_buf_append(&item->headers, r->header_name.data ? r->header_name.data : "",
                      r->header_name.len) != 0 ||
        la_buf_putc(&item->headers, '\0') != 0 || la_buf_append(&item->headers, value, len) != 0 ||
        la_buf_putc(&item->headers, '\0') != 0)
        return no_memory(r);
    item->nheaders++;
    return 1;
}

/* A scalar: kind 'n' (null), 'b' (boolean), '#' (number) or 's' (string). */
static int on_scalar(reader *r, char kind, const char *text, size_t len)
{
    next_value next = r->next;
    la_batch_answer *item;
    long long status;
    if (r->capture_depth)
        return capture_scalar(r, text, len, kind == 's');
    if (r->skip_depth)
        return 1;
    r->next = NEXT_NONE;
    switch (r->place) {
    case AT_START:
        return fail(r, "is not a JSON object");
    case IN_RESPONSES:
        return fail(r, "has an entry in \"responses\" that is not an object");
    case AT_END:
        return fail(r, "has text after its end");
    default:
        break;
    }
    switch (next) {
    case NEXT_RESPONSES:
        return fail(r, "has a \"responses\" member that is not an array");
    case NEXT_ID:
        if (kind != 's')
            return fail(r, "has an answer whose \"id\" is not a string");
        if (la_buf_append(&current(r)->id, text, len) != 0)
            return no_memory(r);
        return 1;
    case NEXT_STATUS:
        if (kind != '#' || la_parse_int64(text, len, &status) != 0 || status < 100 || status > 599)
            return fail(r, "has an answer whose \"status\" is not an HTTP status");
        current(r)->status = (long)status;
        return 1;
    case NEXT_HEADERS:
        if (kind == 'n')
            return 1;
        return fail(r, "has an answer whose \"headers\" is not an object");
    case NEXT_HEADER_VALUE:
        if (kind != 's')
            return fail(r, "has an answer with a header whose value is not a string");
        return add_header(r, text, len);
    case NEXT_BODY:
        item = current(r);
        if (kind == 'n')
            return 1;  /* no body */
        item->has_body = 1;
        item->body_was_string = kind == 's';
        if (la_buf_append(&item->body, text, len) != 0)
            return no_memory(r);
        return 1;
    default:
        return 1;  /* NEXT_SKIP */
    }
}

static int on_open(reader *r, char bracket)
{
    next_value next = r->next;
    if (++r->depth > LA_BATCH_MAX_DEPTH)
        return fail(r, "is nested too deeply");
    if (r->capture_depth) {
        if (capture_separator(r) != 0 || la_buf_putc(&current(r)->body, bracket) != 0 ||
            la_buf_putc(&r->capture_stack, bracket == '{' ? 'M' : 'A') != 0)
            return no_memory(r);
        r->capture_depth++;
        return 1;
    }
    if (r->skip_depth) {
        r->skip_depth++;
        return 1;
    }
    r->next = NEXT_NONE;
    switch (r->place) {
    case AT_START:
        if (bracket != '{')
            return fail(r, "is not a JSON object");
        r->place = IN_TOP;
        return 1;
    case IN_RESPONSES:
        if (bracket != '{')
            return fail(r, "has an entry in \"responses\" that is not an object");
        r->place = IN_ANSWER;
        return add_answer(r);
    case AT_END:
        return fail(r, "has text after its end");
    default:
        break;
    }
    switch (next) {
    case NEXT_RESPONSES:
        if (bracket != '[')
            return fail(r, "has a \"responses\" member that is not an array");
        r->place = IN_RESPONSES;
        return 1;
    case NEXT_HEADERS:
        if (bracket != '{')
            return fail(r, "has an answer whose \"headers\" is not an object");
        r->place = IN_HEADERS;
        return 1;
    case NEXT_BODY:
        current(r)->has_body = 1;
        la_buf_clear(&r->capture_stack);
        r->capture_depth = 1;
        if (la_buf_putc(&current(r)->body, bracket) != 0 ||
            la_buf_putc(&r->capture_stack, bracket == '{' ? 'M' : 'A') != 0)
            return no_memory(r);
        return 1;
    case NEXT_SKIP:
        r->skip_depth = 1;
        return 1;
    case NEXT_ID:
        return fail(r, "has an answer whose \"id\" is not a string");
    case NEXT_STATUS:
        return fail(r, "has an answer whose \"status\" is not an HTTP status");
    case NEXT_HEADER_VALUE:
        return fail(r, "has an answer with a header whose value is not a string");
    default:
        return fail(r, "is malformed");
    }
}

static int on_close(reader *r, char bracket)
{
    r->depth--;
    if (r->capture_depth) {
        if (la_buf_putc(&current(r)->body, bracket) != 0)
            return no_memory(r);
        r->capture_stack.len--;
        r->capture_depth--;
        return 1;
    }
    if (r->skip_depth) {
        r->skip_depth--;
        return 1;
    }
    switch (r->place) {
    case IN_HEADERS:
        r->place = IN_ANSWER;
        return 1;
    case IN_ANSWER:
        if (!r->seen_id)
            return fail(r, "has an answer without an \"id\"");
        if (!r->seen_status)
            return fail(r, "has an answer without a \"status\"");
        r->place = IN_RESPONSES;
        return 1;
    case IN_RESPONSES:
        r->place = IN_TOP;
        return 1;
    case IN_TOP:
        r->place = AT_END;
        return 1;
    default:
        return fail(r, "is malformed");
    }
}

/* Marks a member seen: 0 when it came before (a second "id" could make
 * an answer pass for another's). */
static int first_time(int *seen)
{
    if (*seen)
        return 0;
    *seen = 1;
    return 1;
}

static int on_key(reader *r, const char *key, size_t len)
{
    size_t i;
    if (r->capture_depth) {
        char *top = &r->capture_stack.data[r->capture_stack.len - 1];
        la_buf *body = &current(r)->body;
        if (*top == 'm' && la_buf_putc(body, ',') != 0)
            return no_memory(r);
        *top = 'V';
        if (la_buf_append_json_string(body, key, len) != 0 || la_buf_putc(body, ':') != 0)
            return no_memory(r);
        return 1;
    }
    if (r->skip_depth)
        return 1;
#define KEY_IS(word) (len == sizeof word - 1 && memcmp(key, word, len) == 0)
    switch (r->place) {
    case IN_TOP:
        if (!KEY_IS("responses")) {
            r->next = NEXT_SKIP;
            return 1;
        }
        if (!first_time(&r->seen_responses))
            return fail(r, "has two \"responses\" members");
        r->next = NEXT_RESPONSES;
        return 1;
    case IN_ANSWER:
        if (KEY_IS("id"))
            r->next = first_time(&r->seen_id) ? NEXT_ID : NEXT_NONE;
        else if (KEY_IS("status"))
            r->next = first_time(&r->seen_status) ? NEXT_STATUS : NEXT_NONE;
        else if (KEY_IS("headers"))
            r->next = first_time(&r->seen_headers) ? NEXT_HEADERS : NEXT_NONE;
        else if (KEY_IS("body"))
            r->next = first_time(&r->seen_body) ? NEXT_BODY : NEXT_NONE;
        else
            r->next = NEXT_SKIP;
        if (r->next == NEXT_NONE)
            return fail(r, "has an answer with a member given twice");
        return 1;
    case IN_HEADERS:
        la_buf_clear(&r->header_name);
        for (i = 0; i < len; i++) {
            char c = key[i];
            if (la_buf_putc(&r->header_name, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c)) != 0)
                return no_memory(r);
        }
        r->next = NEXT_HEADER_VALUE;
        return 1;
    default:
        return fail(r, "is malformed");
    }
#undef KEY_IS
}

static int cb_null(void *ctx)
{
    return on_scalar(ctx, 'n', "null", 4);
}

static int cb_boolean(void *ctx, int value)
{
    return on_scalar(ctx, 'b', value ? "true" : "false", value ? 4 : 5);
}

static int cb_number(void *ctx, const char *text, size_t len)
{
    return on_scalar(ctx, '#', text, len);
}

static int cb_string(void *ctx, const unsigned char *text, size_t len)
{
    return on_scalar(ctx, 's', (const char *)text, len);
}

static int cb_start_map(void *ctx)
{
    return on_open(ctx, '{');
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    return on_key(ctx, (const char *)key, len);
}

static int cb_end_map(void *ctx)
{
    return on_close(ctx, '}');
}

static int cb_start_array(void *ctx)
{
    return on_open(ctx, '[');
}

static int cb_end_array(void *ctx)
{
    return on_close(ctx, ']');
}

static const la_json_callbacks callbacks = {
    cb_null, cb_boolean, cb_number, cb_string, cb_start_map, cb_map_key,
    cb_end_map, cb_start_array, cb_end_array,
};

void la_batch_answers_free(la_batch_answers *a)
{
    size_t i;
    for (i = 0; i < a->n; i++) {
        la_buf_free(&a->items[i].id);
        la_buf_free(&a->items[i].headers);
        la_buf_free(&a->items[i].body);
    }
    free(a->items);
    a->items = NULL;
    a->n = a->cap = 0;
}

int la_batch_answers_parse(const char *text, size_t len, la_batch_answers *out)
{
    reader r;
    la_json *j;
    int rc;
    memset(out, 0, sizeof *out);
    memset(&r, 0, sizeof r);
    r.out = out;
    la_buf_init(&r.capture_stack);
    la_buf_init(&r.header_name);
    j = la_json_new(&callbacks, &r);
    if (!j) {
        out->out_of_memory = 1;
        snprintf(out->error, sizeof out->error, "the $batch answer could not be read: out of memory");
        return -1;
    }
    rc = la_json_feed(j, text, len);
    if (rc == 0)
        rc = la_json_finish(j);
    if (rc != 0 && !out->error[0]) {
        if (la_json_out_of_memory(j))
            no_memory(&r);
        else
            snprintf(out->error, sizeof out->error, "the $batch answer is not JSON: %s",
                     la_json_error(j));
    }
    if (rc == 0 && !r.seen_responses) {
        fail(&r, "has no \"responses\" array");
        rc = -1;
    }
    la_json_free(j);
    la_buf_free(&r.capture_stack);
    la_buf_free(&r.header_name);
    if (rc != 0) {
        la_batch_answers_free(out);
        return -1;
    }
    return 0;
}
