/*
 * The C core of loganalytics: HTTP transport, streaming response parser,
 * typed cell conversion and request bodies. It never includes lua.h, so it
 * can be unit-tested, fuzzed, and driven by other transports; the single
 * binding file (lua_binding.c) turns its events into Lua values.
 */
#ifndef LA_CORE_H
#define LA_CORE_H

#include <stddef.h>

/* ---------------------------------------------------------------- buffer */

/* A growable byte buffer; always NUL-terminated when data != NULL. */
typedef struct la_buf {
    char *data;
    size_t len;
    size_t cap;
} la_buf;

void la_buf_init(la_buf *b);
void la_buf_free(la_buf *b);
void la_buf_clear(la_buf *b);
/* Return 0 on success, -1 when memory ran out (the buffer is unchanged). */
int la_buf_append(la_buf *b, const char *data, size_t len);
int la_buf_putc(la_buf *b, char c);
/* Append s as a JSON string literal (quotes and escapes included). */
int la_buf_append_json_string(la_buf *b, const char *s, size_t len);

/* ------------------------------------------------------- typed cell values */

/* Column types the query API sends (logsColumnType in the REST spec). */
typedef enum la_type {
    LA_TYPE_UNKNOWN = 0,
    LA_TYPE_BOOL,
    LA_TYPE_INT,
    LA_TYPE_LONG,
    LA_TYPE_REAL,
    LA_TYPE_DECIMAL,
    LA_TYPE_DATETIME,
    LA_TYPE_TIMESPAN,
    LA_TYPE_GUID,
    LA_TYPE_STRING,
    LA_TYPE_DYNAMIC
} la_type;

la_type la_type_from_name(const char *name, size_t len);

typedef enum la_cell_kind {
    LA_CELL_NULL = 0,
    LA_CELL_BOOL,
    LA_CELL_INTEGER,
    LA_CELL_REAL,
    LA_CELL_STRING
} la_cell_kind;

/* One converted cell. str points into parser-owned memory and is valid only
 * during the callback that receives the cell. */
typedef struct la_cell {
    la_cell_kind kind;
    int boolean;
    long long integer;
    double real;
    const char *str;
    size_t len;
} la_cell;

/* Conversions by column type; see the type table in README.md. */
void la_cell_from_number(la_type type, const char *raw, size_t len, la_cell *out);
void la_cell_from_string(la_type type, const char *s, size_t len, la_cell *out);
void la_cell_from_bool(la_type type, int value, la_cell *out);
/* A nested object or array, given as compact JSON text. */
void la_cell_from_json_text(const char *json, size_t len, la_cell *out);
/* Exact decimal integer parse over the whole int64 range; 0 on success. */
int la_parse_int64(const char *s, size_t len, long long *out);

/* ------------------------------------------------ streaming response parser */

/* What a caller does with the parser's events. Every callback returns 0 to
 * go on or LA_SINK_STOP to end the parse early (the parser then reports
 * LA_PARSE_STOPPED). Strings are not NUL-terminated. */
#define LA_SINK_STOP 1

typedef struct la_result_sink {
    int (*table_begin)(void *ud);
    int (*table_name)(void *ud, const char *name, size_t len);
    int (*column)(void *ud, size_t index, const char *name, size_t name_len,
                  const char *type, size_t type_len);
    int (*row_begin)(void *ud, size_t ncolumns);
    int (*cell)(void *ud, size_t index, const la_cell *cell);
    int (*row_end)(void *ud, size_t ncells);
    int (*table_end)(void *ud);
    /* A top-level member other than "tables" ("error", "statistics",
     * "render", ...), handed over as compact JSON text. */
    int (*member)(void *ud, const char *key, size_t key_len,
                  const char *json, size_t json_len);
} la_result_sink;

typedef enum la_parse_status {
    LA_PARSE_OK = 0,
    LA_PARSE_STOPPED,   /* a sink callback asked to stop */
    LA_PARSE_ERROR      /* malformed, truncated or unexpected JSON */
} la_parse_status;

typedef struct la_parser la_parser;

/* Returns NULL when memory ran out. */
la_parser *la_parser_new(const la_result_sink *sink, void *ud);
void la_parser_free(la_parser *p);
/* Feed the next chunk of the body, in any split. */
la_parse_status la_parser_feed(la_parser *p, const char *data, size_t len);
/* End of body: reports an error unless one complete document was seen. */
la_parse_status la_parser_finish(la_parser *p);
/* A one-line description of the last LA_PARSE_ERROR. */
const char *la_parser_error(const la_parser *p);

/* ------------------------------------------------------------ request body */

/* Builds {"query":..., "timespan":..., "workspaces":[...]} with cJSON.
 * timespan may be NULL; workspaces may be NULL when nworkspaces is 0.
 * Returns a malloc'd NUL-terminated string, or NULL when memory ran out. */
char *la_query_body(const char *query, const char *timespan,
                    const char *const *workspaces, size_t nworkspaces);

/* ---------------------------------------------------------- HTTP transport */

/* Receives the body of a 2xx response as it arrives; returns 0 to go on,
 * non-zero to abort the transfer. */
typedef int (*la_body_fn)(void *ud, const char *data, size_t len);

typedef struct la_http_request {
    const char *url;
    const char *const *headers;   /* "Name: value" lines */
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *username;         /* HTTP basic auth when not NULL */
    const char *password;
    const char *user_agent;
    long connect_timeout_ms;      /* 0: the core's default */
    long timeout_ms;              /* 0: none */
    la_body_fn on_body;
    void *ud;
} la_http_request;

/* Bodies of error responses are kept up to this size (they are small JSON
 * documents or proxy pages; the rest is dropped). */
#define LA_ERROR_BODY_MAX (1024 * 1024)

typedef struct la_http_response {
    long status;                  /* 0 when no response arrived */
    int transport_code;           /* CURLcode; 0 on success */
    const char *transport_kind;   /* "network", "timeout" or "protocol" */
    char transport_message[256];
    int aborted_by_caller;        /* on_body returned non-zero */
    la_buf headers;               /* header lines of the final response */
    la_buf error_body;            /* body of a non-2xx response */
    double total_seconds;
} la_http_response;

typedef struct la_http la_http;

/* Call once per process before la_http_new (not thread-safe, like curl's). */
int la_http_global_init(void);
const char *la_http_library_version(void);
la_http *la_http_new(void);
void la_http_free(la_http *h);
void la_http_response_init(la_http_response *r);
void la_http_response_free(la_http_response *r);
/* Performs one POST; the response is filled in, whatever happens.
 * Returns 0 when a complete response arrived, -1 otherwise. */
int la_http_post(la_http *h, const la_http_request *req, la_http_response *resp);

#endif
