/*
 * Streaming parser for query responses:
 *   {"tables":[{"name":..,"columns":[{"name":..,"type":..}],"rows":[[..]]}],
 *    "error":{..}, "statistics":{..}, "render":{..}}
 * json_tokenizer.c tokenizes the body in whatever chunks it arrives (it
 * replaced yajl, whose events it reproduces, for speed: see bench/); this
 * file keeps a
 * small state machine and hands typed events to a sink. Numbers come from
 * the tokenizer's raw text so cells convert exactly by column type. Nested
 * values we do not model (objects in cells, top-level members) are captured
 * as compact JSON text, with no depth limit.
 *
 * A sink may raise a Lua error (longjmp) from a callback: everything this
 * parser and the tokenizer own lives in the la_parser handle, never in a stack frame,
 * so the caller just frees the handle afterwards.
 */
#include "la_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum where {
    AT_START,        /* expecting the top-level object */
    IN_TOP,          /* top-level object: key or end */
    TABLES_VALUE,    /* after "tables": expecting an array (or null) */
    IN_TABLES,       /* tables array: a table object or end */
    IN_TABLE,        /* table object: key or end */
    TABLE_NAME,      /* after "name": expecting a string */
    COLUMNS_VALUE,   /* after "columns": expecting an array */
    IN_COLUMNS,      /* columns array: a column object or end */
    IN_COLUMN,       /* column object: key or end */
    COLUMN_NAME,     /* after a column's "name" */
    COLUMN_TYPE,     /* after a column's "type" */
    ROWS_VALUE,      /* after "rows": expecting an array */
    IN_ROWS,         /* rows array: a row array or end */
    IN_ROW,          /* row array: a cell or end */
    CAPTURING,       /* copying a nested value as JSON text */
    AT_END           /* the top-level object is complete */
} where;

/* What a finished capture is for. */
typedef enum capture_for {
    FOR_MEMBER,      /* a top-level member other than "tables" */
    FOR_CELL,        /* an object or array inside a row */
    FOR_NOTHING      /* a member we skip (unknown keys in tables/columns) */
} capture_for;

struct la_parser {
    la_json *json;
    const la_result_sink *sink;
    void *ud;
    where state;
    int sink_stopped;
    int out_of_memory;         /* the error is memory running out */
    char error[200];

    int tables_seen;           /* the top-level "tables" member came */
    /* current table */
    int columns_seen, rows_seen;
    la_type *types;
    size_t ntypes, types_cap;
    la_datetime_mode datetime; /* how datetime cells are given */
    size_t column_index;       /* columns seen in the current table */
    la_buf column_name, column_type;
    size_t cell_index;         /* cells seen in the current row */

    /* capture of a nested value */
    capture_for capture;
    where capture_return;      /* state to resume after the capture */
    size_t capture_depth;
    la_buf capture_text;
    la_buf capture_stack;      /* per open container: see capture_separator */
    la_buf member_key;
};

/* ------------------------------------------------------------ helpers */

static int fail(la_parser *p, const char *what)
{
    if (!p->error[0])
        snprintf(p->error, sizeof p->error, "unexpected %s in the response", what);
    return 0;
}

/* A response that is JSON but not a query result's shape. */
static int malformed(la_parser *p, const char *why)
{
    if (!p->error[0])
        snprintf(p->error, sizeof p->error, "%s", why);
    return 0;
}

static int oom(la_parser *p)
{
    p->out_of_memory = 1;
    snprintf(p->error, sizeof p->error, "out of memory while parsing the response");
    return 0;
}

/* Sink results: 0 goes on, LA_SINK_NO_MEMORY is an error, anything else
 * stops the parse. */
static int sink_result(la_parser *p, int rc)
{
    if (rc == LA_SINK_NO_MEMORY)
        return oom(p);
    if (rc != 0) {
        p->sink_stopped = 1;
        return 0;
    }
    return 1;
}

static int key_is(const unsigned char *key, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(key, want, len) == 0;
}

static la_type current_type(const la_parser *p)
{
    return p->cell_index < p->ntypes ? p->types[p->cell_index] : LA_TYPE_UNKNOWN;
}

static int push_type(la_parser *p, la_type t)
{
    if (p->ntypes == p->types_cap) {
        size_t cap = p->types_cap ? p->types_cap * 2 : 16;
        la_type *types = realloc(p->types, cap * sizeof *types);
        if (!types)
            return -1;
        p->types = types;
        p->types_cap = cap;
    }
    p->types[p->ntypes++] = t;
    return 0;
}

/* ------------------------------------------------------------ capturing */

/* capture_stack holds one byte per open container:
 *   'A' array before its first element, 'a' array after one,
 *   'M' object before its first key, 'm' object after a member,
 *   'V' object between a key and its value. */
static int capture_separator(la_parser *p)
{
    char *top;
    if (p->capture_stack.len == 0)
        return 0;
    top = &p->capture_stack.data[p->capture_stack.len - 1];
    switch (*top) {
    case 'A': *top = 'a'; return 0;
    case 'a': return la_buf_putc(&p->capture_text, ',');
    case 'V': *top = 'm'; return 0;
    default: return 0;
    }
}

static void begin_capture(la_parser *p, capture_for why)
{
    p->capture = why;
    p->capture_return = p->state;
    p->capture_depth = 0;
    la_buf_clear(&p->capture_text);
    la_buf_clear(&p->capture_stack);
    p->state = CAPTURING;
}

/* Called when a captured value is complete. */
static int end_capture(la_parser *p)
{
    la_cell cell;
    p->state = p->capture_return;
    switch (p->capture) {
    case FOR_MEMBER:
        p->state = IN_TOP;
        return sink_result(p, p->sink->member(p->ud, p->member_key.data, p->member_key.len,
                                              p->capture_text.data, p->capture_text.len));
    case FOR_CELL:
        if (p->cell_index >= p->ntypes)
            return malformed(p, "a row has more cells than its table has columns");
        la_cell_from_json_text(p->capture_text.data, p->capture_text.len, &cell);
        cell.slot = 0;
        return sink_result(p, p->sink->cell(p->ud, p->cell_index++, &cell));
    default:
        return 1;
    }
}

static int capture_scalar(la_parser *p, const char *text, size_t len, int quote)
{
    int rc = capture_separator(p);
    if (rc == 0)
        rc = quote ? la_buf_append_json_string(&p->capture_text, text, len)
                   : la_buf_append(&p->capture_text, text, len);
    if (rc != 0)
        return oom(p);
    return p->capture_depth == 0 ? end_capture(p) : 1;
}

static int capture_open(la_parser *p, char bracket, char marker)
{
    if (capture_separator(p) != 0 || la_buf_putc(&p->capture_text, bracket) != 0 ||
        la_buf_putc(&p->capture_stack, marker) != 0)
        return oom(p);
    p->capture_depth++;
    return 1;
}

static int capture_close(la_parser *p, char bracket)
{
    if (la_buf_putc(&p->capture_text, bracket) != 0)
        return oom(p);
    p->capture_stack.len--;
    if (--p->capture_depth == 0)
        return end_capture(p);
    return 1;
}

static int capture_key(la_parser *p, const unsigned char *key, size_t len)
{
    char *top = &p->capture_stack.data[p->capture_stack.len - 1];
    if (*top == 'm' && la_buf_putc(&p->capture_text, ',') != 0)
        return oom(p);
    *top = 'V';
    if (la_buf_append_json_string(&p->capture_text, (const char *)key, len) != 0 ||
        la_buf_putc(&p->capture_text, ':') != 0)
        return oom(p);
    return 1;
}

/* ------------------------------------------------------------ scalars */

/* A scalar value arrived; kind is 'n' (null), 'b' (bool), '#' (number) or
 * 's' (string). */
static int on_scalar(la_parser *p, char kind, const char *text, size_t len, int boolean)
{
    la_cell cell;
    switch (p->state) {
    case CAPTURING:
        if (kind == 'n')
            return capture_scalar(p, "null", 4, 0);
        if (kind == 'b')
            return capture_scalar(p, boolean ? "true" : "false", boolean ? 4 : 5, 0);
        return capture_scalar(p, text, len, kind == 's');
    case IN_ROW:
        if (p->cell_index >= p->ntypes)
            return malformed(p, "a row has more cells than its table has columns");
        switch (kind) {
        case 'n': cell.kind = LA_CELL_NULL; break;
        case 'b': la_cell_from_bool(current_type(p), boolean, &cell); break;
        case '#':
            if (la_cell_from_number(current_type(p), text, len, &cell) != 0)
                return oom(p);
            break;
        default:
            if (p->datetime != LA_DATETIME_STRING && current_type(p) == LA_TYPE_DATETIME)
                la_cell_from_datetime(p->datetime, text, len, &cell);
            else if (la_cell_from_string(current_type(p), text, len, &cell) != 0)
                return oom(p);
            break;
        }
        cell.slot = 0;
        return sink_result(p, p->sink->cell(p->ud, p->cell_index++, &cell));
    case TABLE_NAME:
        p->state = IN_TABLE;
        if (kind == 'n')
            return 1;
        if (kind != 's')
            return fail(p, "table name");
        return sink_result(p, p->sink->table_name(p->ud, text, len));
    case COLUMN_NAME:
    case COLUMN_TYPE:
        if (kind == 's' &&
            la_buf_append(p->state == COLUMN_NAME ? &p->column_name : &p->column_type,
                          text, len) != 0)
            return oom(p);
        if (kind != 's' && kind != 'n')
            return fail(p, "column name or type");
        p->state = IN_COLUMN;
        return 1;
    case TABLES_VALUE:
    case COLUMNS_VALUE:
    case ROWS_VALUE:
        if (p->state == TABLES_VALUE)
            return malformed(p, "the response's \"tables\" is not an array: not a query result");
        if (kind != 'n')
            return fail(p, "value for tables, columns or rows");
        /* null: no tables / columns / rows */
        p->state = p->state == TABLES_VALUE ? IN_TOP : IN_TABLE;
        return 1;
    default:
        return fail(p, "value");
    }
}

static int cb_null(void *ctx)
{
    return on_scalar(ctx, 'n', NULL, 0, 0);
}

static int cb_boolean(void *ctx, int value)
{
    return on_scalar(ctx, 'b', NULL, 0, value);
}

static int cb_number(void *ctx, const char *text, size_t len)
{
    return on_scalar(ctx, '#', text, len, 0);
}

static int cb_string(void *ctx, const unsigned char *text, size_t len)
{
    return on_scalar(ctx, 's', (const char *)text, len, 0);
}

/* ------------------------------------------------------------ structure */

static int cb_start_map(void *ctx)
{
    la_parser *p = ctx;
    switch (p->state) {
    case AT_START:
        p->state = IN_TOP;
        return 1;
    case CAPTURING:
        return capture_open(p, '{', 'M');
    case IN_TABLES:
        p->state = IN_TABLE;
        p->ntypes = 0;
        p->column_index = 0;
        p->columns_seen = 0;
        p->rows_seen = 0;
        return sink_result(p, p->sink->table_begin(p->ud));
    case IN_COLUMNS:
        la_buf_clear(&p->column_name);
        la_buf_clear(&p->column_type);
        p->state = IN_COLUMN;
        return 1;
    case IN_ROW:
        begin_capture(p, FOR_CELL);
        return capture_open(p, '{', 'M');
    default:
        return fail(p, "object");
    }
}

static int cb_start_array(void *ctx)
{
    la_parser *p = ctx;
    switch (p->state) {
    case CAPTURING:
        return capture_open(p, '[', 'A');
    case TABLES_VALUE:
        p->state = IN_TABLES;
        return 1;
    case COLUMNS_VALUE:
        p->state = IN_COLUMNS;
        return 1;
    case ROWS_VALUE:
        p->state = IN_ROWS;
        return 1;
    case IN_ROWS:
        p->state = IN_ROW;
        p->cell_index = 0;
        return sink_result(p, p->sink->row_begin(p->ud, p->ntypes));
    case IN_ROW:
        begin_capture(p, FOR_CELL);
        return capture_open(p, '[', 'A');
    default:
        return fail(p, "array");
    }
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    la_parser *p = ctx;
    switch (p->state) {
    case CAPTURING:
        return capture_key(p, key, len);
    case IN_TOP:
        if (key_is(key, len, "tables")) {
            if (p->tables_seen)
                return malformed(p, "the response has two \"tables\" members");
            p->tables_seen = 1;
            p->state = TABLES_VALUE;
            return 1;
        }
        la_buf_clear(&p->member_key);
        if (la_buf_append(&p->member_key, (const char *)key, len) != 0)
            return oom(p);
        begin_capture(p, FOR_MEMBER);
        return 1;
    case IN_TABLE:
        if (key_is(key, len, "name"))
            p->state = TABLE_NAME;
        else if (key_is(key, len, "columns")) {
            /* the columns type every row: none may come before them */
            if (p->columns_seen || p->rows_seen)
                return malformed(p, "a table's \"columns\" come after its rows or twice");
            p->columns_seen = 1;
            p->state = COLUMNS_VALUE;
        } else if (key_is(key, len, "rows")) {
            if (p->rows_seen)
                return malformed(p, "a table has two \"rows\" members");
            p->rows_seen = 1;
            p->state = ROWS_VALUE;
        }
        else
            begin_capture(p, FOR_NOTHING);
        return 1;
    case IN_COLUMN:
        if (key_is(key, len, "name"))
            p->state = COLUMN_NAME;
        else if (key_is(key, len, "type"))
            p->state = COLUMN_TYPE;
        else
            begin_capture(p, FOR_NOTHING);
        return 1;
    default:
        return fail(p, "key");
    }
}

static int cb_end_map(void *ctx)
{
    la_parser *p = ctx;
    la_type type;
    switch (p->state) {
    case CAPTURING:
        return capture_close(p, '}');
    case IN_TOP:
        /* {} or some other JSON is not a query result */
        if (!p->tables_seen)
            return malformed(p, "the response has no \"tables\" array: not a query result");
        p->state = AT_END;
        return 1;
    case IN_TABLE:
        p->state = IN_TABLES;
        return sink_result(p, p->sink->table_end(p->ud));
    case IN_COLUMN:
        p->state = IN_COLUMNS;
        type = la_type_from_name(p->column_type.data ? p->column_type.data : "",
                                 p->column_type.len);
        if (push_type(p, type) != 0)
            return oom(p);
        return sink_result(p, p->sink->column(p->ud, p->column_index++,
                                              p->column_name.data ? p->column_name.data : "",
                                              p->column_name.len,
                                              p->column_type.data ? p->column_type.data : "",
                                              p->column_type.len));
    default:
        return fail(p, "end of object");
    }
}

static int cb_end_array(void *ctx)
{
    la_parser *p = ctx;
    switch (p->state) {
    case CAPTURING:
        return capture_close(p, ']');
    case IN_TABLES:
        p->state = IN_TOP;
        return 1;
    case IN_COLUMNS:
    case IN_ROWS:
        p->state = IN_TABLE;
        return 1;
    case IN_ROW:
        if (p->cell_index != p->ntypes)
            return malformed(p, "a row has fewer cells than its table has columns");
        p->state = IN_ROWS;
        return sink_result(p, p->sink->row_end(p->ud, p->cell_index));
    default:
        return fail(p, "end of array");
    }
}

static const la_json_callbacks callbacks = {
    cb_null, cb_boolean, cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array,
};

/* ------------------------------------------------------------ public */

la_parser *la_parser_new(const la_result_sink *sink, void *ud)
{
    la_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->sink = sink;
    p->ud = ud;
    p->state = AT_START;
    la_buf_init(&p->column_name);
    la_buf_init(&p->column_type);
    la_buf_init(&p->capture_text);
    la_buf_init(&p->capture_stack);
    la_buf_init(&p->member_key);
    p->json = la_json_new(&callbacks, p);
    if (!p->json) {
        free(p);
        return NULL;
    }
    return p;
}

void la_parser_set_datetime(la_parser *p, la_datetime_mode mode)
{
    p->datetime = mode;
}

void la_parser_free(la_parser *p)
{
    if (!p)
        return;
    la_json_free(p->json);
    free(p->types);
    la_buf_free(&p->column_name);
    la_buf_free(&p->column_type);
    la_buf_free(&p->capture_text);
    la_buf_free(&p->capture_stack);
    la_buf_free(&p->member_key);
    free(p);
}

static la_parse_status status_of(la_parser *p, int rc)
{
    if (p->sink_stopped)
        return LA_PARSE_STOPPED;
    if (rc == 0)
        return LA_PARSE_OK;
    if (!p->error[0]) {
        snprintf(p->error, sizeof p->error, "%s", la_json_error(p->json));
        if (la_json_out_of_memory(p->json))
            p->out_of_memory = 1;
    }
    return LA_PARSE_ERROR;
}

la_parse_status la_parser_feed(la_parser *p, const char *data, size_t len)
{
    if (p->error[0])
        return LA_PARSE_ERROR;
    return status_of(p, la_json_feed(p->json, data, len));
}

la_parse_status la_parser_finish(la_parser *p)
{
    int rc;
    if (p->error[0])
        return LA_PARSE_ERROR;
    rc = la_json_finish(p->json);
    /* every byte was accepted by la_parser_feed, so any complaint now is
     * about the body ending early */
    if (p->state != AT_END && !p->sink_stopped && !p->error[0]) {
        snprintf(p->error, sizeof p->error, "the response ended before its JSON was complete");
        return LA_PARSE_ERROR;
    }
    return status_of(p, rc);
}

const char *la_parser_error(const la_parser *p)
{
    return p->error[0] ? p->error : "no error";
}

int la_parser_out_of_memory(const la_parser *p)
{
    return p->error[0] && p->out_of_memory;
}
