/*
 * The C core of loganalytics: HTTP transport, streaming response parser,
 * typed cell conversion and request bodies. It never includes lua.h, so it
 * can be unit-tested, fuzzed, and driven by other transports; the binding
 * (src/lua_*.c, lua_binding.h) turns its events into Lua values.
 */
#ifndef LA_CORE_H
#define LA_CORE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- buffer */

/* A growable byte buffer; always NUL-terminated when data != NULL. A secret
 * buffer (made by la_buf_init_secret) wipes its bytes whenever it lets them
 * go: when cleared, when growing moves them (no realloc, which would leave
 * them in the old block) and when freed. */
typedef struct la_buf {
    char *data;
    size_t len;
    size_t cap;
    int secret;
} la_buf;

void la_buf_init(la_buf *b);
void la_buf_init_secret(la_buf *b);
/* Frees the bytes (wiped first when secret); the buffer stays usable, and secret. */
void la_buf_free(la_buf *b);
void la_buf_clear(la_buf *b);
/* Wipes every byte the buffer holds (any buffer) and empties it; keeps the memory. */
void la_buf_wipe(la_buf *b);
/* Overwrites n bytes in a way the compiler may not optimise away. */
void la_wipe(void *p, size_t n);
/* Wipes a NUL-terminated string, then frees it; NULL is fine. */
void la_secure_free(char *s);
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
 * during the callback that receives the cell. A string cell replayed from
 * the event tape may name a string cache slot: slot > 0, the string kept at
 * that slot earlier in this table (str is NULL); slot < 0, a new string to
 * keep at -slot; 0 (always, from the parser itself), no cache. */
typedef struct la_cell {
    la_cell_kind kind;
    int boolean;
    long long integer;
    double real;
    const char *str;
    size_t len;
    int slot;
} la_cell;

/* Conversions by column type; see the type table in README.md. Text that
 * does not fit its column type stays a string. 0, or -1 when memory ran
 * out (then out is not set). Reals are read in the C locale, whatever the
 * process's LC_NUMERIC. */
int la_cell_from_number(la_type type, const char *raw, size_t len, la_cell *out);
int la_cell_from_string(la_type type, const char *s, size_t len, la_cell *out);
void la_cell_from_bool(la_type type, int value, la_cell *out);
/* A nested object or array, given as compact JSON text. */
void la_cell_from_json_text(const char *json, size_t len, la_cell *out);
/* Exact decimal integer parse over the whole int64 range; 0 on success. */
int la_parse_int64(const char *s, size_t len, long long *out);

/* Datetimes as .NET ticks: 100 ns since 0001-01-01T00:00:00Z (cell.c). */
#define LA_TICKS_MAX 3155378975999999999LL        /* 9999-12-31T23:59:59.9999999Z */
#define LA_TICKS_UNIX_EPOCH 621355968000000000LL  /* 1970-01-01T00:00:00Z */
/* The service's datetime text, strictly: YYYY-MM-DDTHH:MM:SS[.F{1,7}]Z,
 * UTC ('Z' only, no offset), years 0001-9999, a real calendar date (month
 * lengths, leap years), hours 00-23, no leap second. 0 with *ticks, or -1. */
int la_datetime_parse(const char *s, size_t len, long long *ticks);
/* The inverse, always with 7 fractional digits (28 bytes and a NUL): 0,
 * or -1 when ticks are outside 0..LA_TICKS_MAX or size is too small. */
#define LA_DATETIME_TEXT_SIZE 29
int la_datetime_format(long long ticks, char *out, size_t size);
/* Seconds since 1970-01-01T00:00:00Z, and whole milliseconds (rounded
 * down, before 1970 too). */
double la_ticks_to_epoch(long long ticks);
long long la_ticks_to_epoch_ms(long long ticks);

/* How datetime cells are given: as sent (a string, the default), or
 * converted here from the service's ISO 8601 UTC text. */
typedef enum la_datetime_mode {
    LA_DATETIME_STRING = 0,
    LA_DATETIME_EPOCH,      /* seconds since 1970-01-01 UTC, a real */
    LA_DATETIME_EPOCH_MS,   /* milliseconds since 1970-01-01 UTC, an integer */
    LA_DATETIME_TICKS       /* 100-ns ticks since 0001-01-01 UTC, an integer */
} la_datetime_mode;
/* A datetime cell's text in mode: a real (epoch), an integer (epoch_ms,
 * ticks), or the text as a string when it is not a datetime (or mode is
 * LA_DATETIME_STRING). */
void la_cell_from_datetime(la_datetime_mode mode, const char *s, size_t len, la_cell *out);

/* -------------------------------------------------------- string cache */

/* Repeated strings of a result, per column (string_cache.c). find returns
 * the slot (> 0) holding a string equal to s; otherwise -slot when the
 * caller should keep s there (keep copies it; -1 when out of memory), or
 * 0 when this column is not worth caching. reset forgets every string. */
typedef struct la_string_cache la_string_cache;
la_string_cache *la_string_cache_new(void);
void la_string_cache_free(la_string_cache *c);
void la_string_cache_reset(la_string_cache *c);
int la_string_cache_find(la_string_cache *c, size_t column, const char *s, size_t len);
int la_string_cache_keep(la_string_cache *c, int slot, const char *bytes, size_t len);
/* The cache's hash of a string (word-wise; lua_columns.c's dedupe uses it too). */
uint32_t la_hash_bytes(const char *s, size_t len);
#define LA_STRING_CACHE_COLUMNS 64      /* columns beyond these are not cached */
#define LA_STRING_CACHE_PER_COLUMN 64   /* slots, direct-mapped */

/* ------------------------------------------------------ JSON tokenizer */

/* yajl's callback shapes: return non-zero to go on, 0 to stop. Strings
 * point into the input or a scratch buffer: valid during the call only. */
typedef struct la_json_callbacks {
    int (*null)(void *ctx);
    int (*boolean)(void *ctx, int value);
    int (*number)(void *ctx, const char *text, size_t len);
    int (*string)(void *ctx, const unsigned char *text, size_t len);
    int (*start_map)(void *ctx);
    int (*map_key)(void *ctx, const unsigned char *key, size_t len);
    int (*end_map)(void *ctx);
    int (*start_array)(void *ctx);
    int (*end_array)(void *ctx);
} la_json_callbacks;

typedef struct la_json la_json;

la_json *la_json_new(const la_json_callbacks *callbacks, void *ctx);
void la_json_free(la_json *j);
/* Ready for a new text (the same callbacks), keeping its memory; also
 * after a callback left it by a longjmp. */
void la_json_reset(la_json *j);
/* 0, or -1 on a syntax error (la_json_error) or a callback's stop
 * (la_json_cancelled). Chunks may split the text anywhere. */
int la_json_feed(la_json *j, const char *data, size_t len);
/* End of input: -1 unless exactly one complete value was seen. */
int la_json_finish(la_json *j);
int la_json_cancelled(const la_json *j);
/* The -1 was memory running out, not the text. */
int la_json_out_of_memory(const la_json *j);
const char *la_json_error(const la_json *j);

/* ------------------------------------------------ streaming response parser */

/* What a caller does with the parser's events. Every callback returns 0 to
 * go on, LA_SINK_STOP to end the parse early (the parser then reports
 * LA_PARSE_STOPPED) or LA_SINK_NO_MEMORY when it could not keep the event
 * (the parser then reports LA_PARSE_ERROR, la_parser_out_of_memory true:
 * a result missing rows must never pass for one the caller stopped).
 * Strings are not NUL-terminated. */
#define LA_SINK_STOP 1
#define LA_SINK_NO_MEMORY 2
/* Only for a sink replaying a tape: stop before this event, which the next
 * replay gives again (a reader taking rows in batches). */
#define LA_SINK_PAUSE 3

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
/* Datetime cells of this parser's results: as sent (the default), or
 * converted here (la_datetime_parse); text that is not a datetime stays
 * a string. Set before the first feed. */
void la_parser_set_datetime(la_parser *p, la_datetime_mode mode);
void la_parser_free(la_parser *p);
/* Feed the next chunk of the body, in any split. */
la_parse_status la_parser_feed(la_parser *p, const char *data, size_t len);
/* End of body: reports an error unless one complete document was seen. */
la_parse_status la_parser_finish(la_parser *p);
/* A one-line description of the last LA_PARSE_ERROR. */
const char *la_parser_error(const la_parser *p);
/* Whether that error is memory running out (in the tokenizer, the parser
 * or a sink), not the response's fault. */
int la_parser_out_of_memory(const la_parser *p);

/* --------------------------------------------------------- event tape */

/* The parser's events, recorded on one thread (la_tape_sink, with the tape
 * as ud) and replayed on the thread that made the tape (event_tape.c).
 * flush hands recorded events over (a writer on another thread waits there
 * while too much is pending; -1 once cancelled); replay gives every event
 * handed over to sink and returns 0 or the sink's first non-zero answer,
 * after which the next replay resumes: with the event after the one
 * answered, or that same event when the answer was LA_SINK_PAUSE;
 * cancel makes the writer's callbacks answer LA_SINK_STOP and wakes it.
 * A recorder that cannot get memory answers LA_SINK_NO_MEMORY. */
typedef struct la_tape la_tape;
la_tape *la_tape_new(void);
void la_tape_free(la_tape *t);
const la_result_sink *la_tape_sink(void);
int la_tape_flush(la_tape *t);
int la_tape_replay(la_tape *t, const la_result_sink *sink, void *ud);
void la_tape_cancel(la_tape *t);

/* ------------------------------------------------------ $batch answers */

/* One answer of a $batch response (batch_answers.c). */
typedef struct la_batch_answer {
    la_buf id;
    long status;                  /* 100 to 599 */
    la_buf headers;               /* nheaders pairs: lower-case name, NUL, value, NUL */
    size_t nheaders;
    int has_body;                 /* a body that is not null */
    int body_was_string;          /* sent as a JSON string: body is its contents */
    la_buf body;                  /* compact JSON text, numbers' digits as sent */
} la_batch_answer;

typedef struct la_batch_answers {
    la_batch_answer *items;
    size_t n, cap;
    int out_of_memory;            /* the failure was memory, not the text */
    char error[200];
} la_batch_answers;

/* Containers open at once, in the whole answer, beyond which it is refused. */
#define LA_BATCH_MAX_DEPTH 4096

/* Reads {"responses":[{"id":"..","status":N,"headers":{..},"body":..}, ...]}
 * (other members ignored): 0, or -1 with error (out freed). Every answer
 * needs a string id and an integer status; headers, when there, an object
 * of strings. Free with la_batch_answers_free. */
int la_batch_answers_parse(const char *text, size_t len, la_batch_answers *out);
void la_batch_answers_free(la_batch_answers *a);

/* ------------------------------------------------------------ request body */

/* Builds {"query":..., "timespan":..., "workspaces":[...]} with cJSON.
 * timespan may be NULL; workspaces may be NULL when nworkspaces is 0.
 * Returns a malloc'd NUL-terminated string, or NULL when memory ran out. */
char *la_query_body(const char *query, const char *timespan,
                    const char *const *workspaces, size_t nworkspaces);

/* ------------------------------------------------------------------ URLs */

/* A URL as libcurl reads it (url.c, on libcurl's URL API): the host is the
 * one libcurl connects to, IPv4 in any spelling libcurl takes normalized to
 * a dotted quad, IPv6 in brackets, names in lower case. */
typedef struct la_url {
    char scheme[16];              /* lower case */
    char host[256];
    long port;                    /* as given, else the scheme's default (0: none known) */
    int port_given;
    int has_userinfo;             /* a user name, password or login options */
    int has_query, has_fragment, has_zoneid;
    int dot_segment;              /* see la_path_has_dot_segment */
    int loopback;                 /* la_host_is_loopback(host), and no zone id */
    char *path;                   /* as given (dot segments kept), no trailing '/' */
    char *base;                   /* scheme://host[:port]path: no userinfo, query, fragment */
} la_url;

/* Parses text; 0, or -1 with a one-line reason in why (which never quotes
 * the URL). Refused: no scheme, no host, whitespace, control characters,
 * backslashes, what libcurl cannot parse. Free with la_url_free. */
int la_url_parse(const char *text, la_url *out, char *why, size_t whylen);
void la_url_free(la_url *u);
/* The rule for a base URL requests are built on (an endpoint, an authority
 * host): http(s), no user information, query, fragment, IPv6 zone id or dot
 * segment, and plain http only to loopback unless allow_http. 0, or -1 with
 * why (a phrase to follow the option's name, e.g. "must not have a query
 * (?...) or a fragment (#...)"). The Lua layer's check and the C core's own
 * (la_credential_check_endpoints) are both this one. */
int la_url_base_problem(const la_url *u, int allow_http, char *why, size_t whylen);
/* 127.0.0.0/8 as a dotted quad, ::1 (with or without brackets),
 * "localhost" and "localhost." (any case). Not ::ffff:127.x (IPv4-mapped). */
int la_host_is_loopback(const char *host);
/* Does a segment of this URL path read as "." or ".." once %2e is taken
 * for a dot and %2f or %5c for a separator, as a server may decode it? */
int la_path_has_dot_segment(const char *path);

/* ---------------------------------------------------------- HTTP transport */

/* Receives the body of a 2xx response as it arrives; returns 0 to go on,
 * non-zero to abort the transfer. */
typedef int (*la_body_fn)(void *ud, const char *data, size_t len);

/* One gzip member decoded as it arrives (gunzip.c, over ISA-L's igzip or
 * zlib, as the build found: la_gunzip_inflater is "isal" or "zlib"): feed hands the
 * decoded bytes to out and returns 0, or -1 when out refused or the data is
 * broken (then failed is set). done: the member and its trailer (CRC-32 and
 * length checked) were read; later bytes are ignored. reset readies it for
 * the next member. */
typedef struct la_gunzip la_gunzip;
la_gunzip *la_gunzip_new(void);
void la_gunzip_free(la_gunzip *g);
void la_gunzip_reset(la_gunzip *g);
int la_gunzip_feed(la_gunzip *g, const char *data, size_t len, la_body_fn out, void *ud);
int la_gunzip_done(const la_gunzip *g);
int la_gunzip_failed(const la_gunzip *g);
extern const char la_gunzip_inflater[];

/* Called on the caller's thread to let it take what on_body made (or a
 * body worker produced); returns 0 to go on, -1 to abort, or
 * LA_PROGRESS_ENOUGH to go on but, in a stepped transfer, to read no more
 * of the response until the next step (a pulling reader has rows). */
typedef int (*la_progress_fn)(void *ud);
#define LA_PROGRESS_ENOUGH 1

/* A thread consuming a body while the caller receives it (body_worker.c):
 * consume runs on the worker, in order; progress and cancel run on the
 * caller's thread, progress whenever it waits for the worker, cancel when
 * it gives up (to unblock a consume that waits on the caller). push copies
 * and returns -1 once the worker failed or progress asked to stop; finish
 * waits for the rest to be consumed (0, or -1 on failure); both finish
 * and stop end the thread and free the worker. */
typedef struct la_worker la_worker;
la_worker *la_worker_start(size_t ring_size, la_body_fn consume, void *consume_ud,
                           la_progress_fn progress, void (*cancel)(void *ud), void *ud);
int la_worker_push(la_worker *w, const char *data, size_t len);
int la_worker_finish(la_worker *w);
void la_worker_stop(la_worker *w);

typedef struct la_http_request {
    const char *method;           /* "POST" (default when NULL) or "GET" */
    const char *url;
    const char *const *headers;   /* "Name: value" lines */
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *username;         /* HTTP basic auth when not NULL */
    const char *password;
    const char *user_agent;
    long connect_timeout_ms;      /* 0: the core's default */
    long timeout_ms;              /* 0: none; a stepped transfer counts only
                                     the time spent in its steps */
    long stall_timeout_ms;        /* no body bytes for this long: give up; 0: never */
    const char *ca_file;          /* CA bundle (PEM) instead of the system's */
    const char *ca_path;          /* CA directory instead of the system's */
    int insecure;                 /* TLS verification off (asked for explicitly) */
    const char *proxy;            /* proxy URL; NULL: libcurl's environment variables */
    int no_proxy;                 /* never through a proxy, whatever proxy or the
                                     environment say (IMDS, App Service) */
    /* Where a secret may go (http.c refuses before sending anything): a
     * request that carries one (carries_secret, or an Authorization or
     * X-Api-Key header, username/password, an api_key URL parameter) goes
     * over plain http only to a loopback host, through no proxy or a
     * loopback one, unless allow_http. */
    int carries_secret;           /* the body (a token request's form) holds a secret */
    int allow_http;
    la_body_fn on_body;           /* NULL: keep every body in resp->body */
    /* Set both to let a large 2xx body be gunzipped and given to on_body
     * on a worker thread (on_body must then touch nothing the caller's
     * thread uses): on_progress runs on the caller's thread after each
     * piece of input and while it waits; on_cancel unblocks on_body when
     * the transfer is dropped. Small bodies stay on the caller's thread,
     * on_progress called after each on_body. */
    la_progress_fn on_progress;
    void (*on_cancel)(void *ud);
    int no_worker;                /* keep even large bodies on the caller's thread */
    size_t kept_body_max;         /* a kept body's cap; 0: LA_KEPT_BODY_MAX */
    void *ud;
} la_http_request;

/* Bodies kept in memory (error responses, token responses) are capped at
 * this size, unless the request says otherwise: they are small JSON
 * documents or proxy pages. */
#define LA_KEPT_BODY_MAX (1024 * 1024)

typedef struct la_http_response {
    long status;                  /* 0 when no response arrived */
    int transport_code;           /* CURLcode; 0 on success */
    const char *transport_kind;   /* "network", "timeout" or "protocol" */
    char transport_message[256];
    int aborted_by_caller;        /* on_body returned non-zero */
    la_buf headers;               /* header lines of the final response */
    la_buf body;                  /* body of a non-2xx response, or of any
                                     response when on_body is NULL */
    int body_truncated;           /* ... cut at its cap (kept_body_max) */
    double total_seconds;
} la_http_response;

typedef struct la_http la_http;

/* Seconds since the epoch for an HTTP date (Retry-After); -1 if unreadable. */
long long la_http_parse_date(const char *text);

/* Call before la_http_new; runs curl_global_init once per process, from
 * any thread (pthread_once). */
int la_http_global_init(void);
const char *la_http_library_version(void);
la_http *la_http_new(void);
void la_http_free(la_http *h);
void la_http_response_init(la_http_response *r);
void la_http_response_free(la_http_response *r);
/* Performs one request; the response is filled in, whatever happens.
 * Returns 0 when a complete response arrived, -1 otherwise. */
int la_http_perform(la_http *h, const la_http_request *req, la_http_response *resp);
/* The same, step by step: la_http_start, then la_http_step until *done
 * (each step moves the transfer on, waiting up to wait_ms for the network);
 * the last step returns what la_http_perform would. resp must outlive the
 * transfer. la_http_cancel drops a transfer under way. */
int la_http_start(la_http *h, const la_http_request *req, la_http_response *resp);
/* la_http_perform, calling between(ud) every 100 ms at most while it waits
 * (to let a host's interrupt in); a nonzero answer cancels the transfer
 * (-1, resp->aborted_by_caller set). */
int la_http_perform_checked(la_http *h, const la_http_request *req, la_http_response *resp,
                            int (*between)(void *ud), void *ud);
int la_http_step(la_http *h, int wait_ms, int *done);
/* The rule la_http_perform applies before sending anything (URL shape, and
 * where a secret may go: see la_http_request.carries_secret), for other
 * transports to apply too: 0, or -1 with why ("refused: ..."). No proxy is
 * considered when req->no_proxy. */
int la_http_refusal(const la_http_request *req, char *why, size_t whylen);
void la_http_cancel(la_http *h);

/* A group: many la_http whose transfers run on one libcurl multi handle
 * (one connection pool of at most max_connections, reused from transfer
 * to transfer; HTTP/2 multiplexing where the server offers it). A
 * group's transfers decode on the caller's thread (no body worker) and
 * their timeout_ms counts the time the group is driven once the transfer
 * has a connection (not its wait in libcurl's queue for one). NULL when
 * memory ran out or max_connections < 1. */
typedef struct la_http_group la_http_group;
la_http_group *la_http_group_new(long max_connections);
/* Cancels the transfers under way (each then ends, at its next step, with
 * transport_kind "cancelled") and detaches every handle: their later
 * starts fail ("the group is closed"); freeing them stays the caller's. */
void la_http_group_free(la_http_group *g);
/* A handle whose transfers run on g (la_http_start, la_http_step,
 * la_http_perform as usual; la_http_free leaves the group). */
la_http *la_http_new_in(la_http_group *g);
/* Moves every transfer of g on, waiting up to wait_ms for the network
 * when none ended at once: the number that ended (their next
 * la_http_step gives the outcome), or -1 when called from inside a drive
 * (a callback of one of its transfers). */
int la_http_group_drive(la_http_group *g, int wait_ms);
int la_http_group_busy(const la_http_group *g);
/* 1, once, when h's transfer has ended and not been told yet. */
int la_http_group_finished(la_http *h);
/* h's transfer has ended; la_http_step gives its outcome. */
int la_http_finished(const la_http *h);
int la_http_grouped(const la_http *h);
/* h was made in a group that has been freed since. */
int la_http_group_closed(const la_http *h);

/* A 2xx body written to a file (body_file.c). init names the file (path
 * is not copied: it must outlive f); the first write creates or truncates
 * it (mode 0600 when created); write is an la_body_fn (ud: the
 * la_body_file); close flushes it to the disk (fsync), creating the file
 * first when create is set and nothing was written (an empty body). write
 * and close return 0, or -1 with the first failure in error (errno) and
 * message (which names no path). */
typedef struct la_body_file {
    const char *path;
    int fd;                       /* -1: not open */
    unsigned long long bytes;     /* written so far */
    int error;                    /* errno of the first failure; 0: none */
    char message[256];
} la_body_file;
void la_body_file_init(la_body_file *f, const char *path);
int la_body_file_write(void *ud, const char *data, size_t len);
int la_body_file_close(la_body_file *f, int create);

/* ------------------------------------------------------------ credentials */

typedef enum la_credential_kind {
    LA_CRED_CLIENT_SECRET = 1,
    LA_CRED_CLIENT_CERTIFICATE,
    LA_CRED_AUTHORIZATION_CODE,   /* a code first, then its refresh tokens */
    LA_CRED_REFRESH_TOKEN,
    LA_CRED_WORKLOAD_IDENTITY,    /* a federated token file as the assertion */
    LA_CRED_MANAGED_IDENTITY      /* IMDS, or App Service's identity endpoint */
} la_credential_kind;

/* The transport settings of token requests. A credential's own (from its
 * options) come first; a client passes its own to fill what the credential
 * left unset; what neither sets takes the defaults: connect 10 s, whole
 * request 30 s, stall 60 s, TLS verified with the system's CAs, libcurl's
 * proxy variables. Strings NULL, numbers 0, verify_tls 0: not set.
 * Managed identity requests never use a proxy. */
typedef struct la_token_transport {
    const char *user_agent;
    long connect_timeout_ms;
    long timeout_ms;
    long stall_timeout_ms;
    const char *ca_file;
    const char *ca_path;
    const char *proxy;
    int verify_tls;               /* 0: not set, 1: verify, -1: off */
} la_token_transport;

/* Strings are copied; NULL means absent. */
typedef struct la_credential_options {
    la_credential_kind kind;
    const char *authority_host;   /* default https://login.microsoftonline.com */
    const char *tenant;
    const char *client_id;
    const char *client_secret;
    const char *certificate;      /* PEM text: certificate and private key */
    size_t certificate_len;
    const char *certificate_password;
    const char *code;
    const char *redirect_uri;
    const char *refresh_token;
    const char *token_file;
    int use_v1;                   /* v1 endpoint: resource= instead of scope= */
    const char *identity_endpoint;  /* App Service IDENTITY_ENDPOINT */
    const char *identity_header;    /* App Service IDENTITY_HEADER */
    const char *imds_endpoint;      /* default http://169.254.169.254 */
    const char *mi_client_id;
    const char *mi_object_id;
    const char *mi_resource_id;
    la_token_transport transport; /* the credential's own, over a client's */
    int allow_http;               /* a plain-http authority host that is not loopback */
} la_credential_options;

/* NULL when o has what its kind needs, else why not (a field is missing):
 * la_credential_new returns NULL for such options too. */
const char *la_credential_missing(const la_credential_options *o);

/* Why no token came; never holds a secret. */
typedef struct la_token_error {
    char kind[16];                /* "auth", "network", "timeout", "protocol";
                                     "misuse" with LA_TOKEN_MISUSE */
    long http_status;             /* 0 without a response */
    char code[64];                /* "invalid_client", ... */
    char message[1024];           /* "AADSTS7000215: Invalid client secret ..." */
    char correlation_id[64];
    long error_code;              /* the AADSTS number, when sent */
} la_token_error;

typedef struct la_credential la_credential;

/* NULL when memory ran out or la_credential_check_endpoints refuses. */
la_credential *la_credential_new(const la_credential_options *options);
/* Where the token requests would go: 0, or -1 with a one-line reason
 * naming the option. A tenant is a GUID, a domain name (labels of
 * [A-Za-z0-9_-] joined by single dots) or common/organizations/consumers;
 * authority_host an http(s) URL with no user information, query, fragment
 * or dot segment, plain http only to loopback unless allow_http;
 * imds_endpoint and identity_endpoint the same, plain http allowed (IMDS
 * and App Service's endpoint are plain http by design, and get no secret). */
int la_credential_check_endpoints(const la_credential_options *options, char *why, size_t whylen);
void la_credential_free(la_credential *c);
/* The token for scope, from the cache until its refresh time (refresh_in
 * when sent, else a few minutes before expiry). *token stays valid until the
 * next call on c. Returns 0, or -1 with err filled in. */
int la_credential_get_token(la_credential *c, const char *scope, long long now,
                            const char **token, long long *expires_on, la_token_error *err);
/* The same, a new token request (if one is due) using `client`'s settings
 * where the credential has none of its own (client may be NULL); *refresh_on
 * (may be NULL) gets the time the cache will ask anew. */
int la_credential_get_token_with(la_credential *c, const char *scope,
                                 const la_token_transport *client, long long now,
                                 const char **token, long long *expires_on,
                                 long long *refresh_on, la_token_error *err);
/* Forget the cached token for scope (the API answered 401 with it). */
void la_credential_invalidate(la_credential *c, const char *scope);

/* A token request without la_http (a transport of the caller's own, e.g.
 * nginx cosockets): prepare, send req yourself, then complete with the
 * answer or fail with why none came. la_credential_get_token_with is these
 * three over la_http_perform. */
#define LA_TOKEN_CACHED 0         /* *token answers: no request needed */
#define LA_TOKEN_SEND 1           /* send req, then complete or fail */
#define LA_TOKEN_MISUSE (-2)      /* called wrongly; err->message says how */
/* LA_TOKEN_CACHED with the cached token (or, when building the request
 * failed, the old one while it has not expired); LA_TOKEN_SEND with req
 * filled in: method, url, headers, body, and the transport settings to use
 * (the credential's own over client's over the defaults, as
 * la_token_transport; no_proxy, carries_secret and allow_http as la_http
 * reads them: a transport of its own must honour them too); -1 with err.
 * req's buffers belong to c (secret ones are wiped) until complete, fail,
 * la_credential_abandon or the next prepare; its transport strings may
 * point into client. Abandons any request under way. */
int la_credential_prepare(la_credential *c, const char *scope, const la_token_transport *client,
                          long long now, la_http_request *req, const char **token,
                          long long *expires_on, long long *refresh_on, la_token_error *err);
/* The answer to the request under way for scope (status, body of
 * body_len bytes, read up to LA_KEPT_BODY_MAX): read as
 * la_credential_get_token_with reads it (errors redacted of what the
 * request sent, a rotated refresh token kept, a code used once) and
 * cached. 0 with the token (the old one, while it has not expired, when
 * the answer is an error), -1 with err, LA_TOKEN_MISUSE when no request
 * for scope is under way, body is NULL or status is no HTTP status. */
int la_credential_complete(la_credential *c, const char *scope, long long now, long status,
                           const char *body, size_t body_len, const char **token,
                           long long *expires_on, long long *refresh_on, la_token_error *err);
/* The request under way for scope got no answer: kind "network",
 * "timeout" or "protocol" (anything else: "network"), message (redacted,
 * may be NULL). 0 with the old token while it has not expired, else -1
 * with err; LA_TOKEN_MISUSE as complete. */
int la_credential_fail(la_credential *c, const char *scope, long long now, const char *kind,
                       const char *message, const char **token, long long *expires_on,
                       long long *refresh_on, la_token_error *err);
/* Drops the request under way, if any (its secrets wiped). */
void la_credential_abandon(la_credential *c);

/* ------------------------------------------------------ client assertion */

/* A signed JWT client assertion (RS256) for the Azure AD certificate flow.
 * pem holds the certificate and its private key, in either order (the key
 * may be encrypted; password may be NULL). audience is the token endpoint
 * URL; now is the current time in epoch seconds. Returns a malloc'd
 * NUL-terminated JWT, or NULL with a one-line reason in err that never
 * contains the key, the password or the PEM text. */
char *la_client_assertion(const char *pem, size_t pem_len, const char *password,
                          const char *client_id, const char *audience,
                          long long now, char *err, size_t errlen);

#endif
