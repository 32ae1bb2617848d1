/*
 * What the files of loganalytics.core share (one file per object, as
 * Lua-cURLv3 does): lua_core.c opens the module; lua_decoder.c turns body
 * bytes into Lua values (the decoder object, which every transport uses);
 * lua_client.c is the libcurl transport; lua_credential.c the credential;
 * lua_json.c the JSON helpers. Internal: nothing here is the module's API.
 */
#ifndef LA_LUA_BINDING_H
#define LA_LUA_BINDING_H

#include "la_core.h"
#include "compat.h"

#define CLIENT_MT "loganalytics.client"
#define DECODER_MT "loganalytics.decoder"
#define CREDENTIAL_MT "loganalytics.credential"
#define JSON_BOX_MT "loganalytics.json_box"
#define COLUMN_MT "loganalytics.column"

/* A userdata with one Lua value of its own (a table), which the collector
 * follows: Lua 5.4's user values, 5.2-5.3's uservalue, 5.1's environment. */
#if LUA_VERSION_NUM >= 504
#define la_newuserdata_uv(L, size) lua_newuserdatauv((L), (size), 1)
#define la_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define la_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define la_newuserdata_uv(L, size) lua_newuserdata((L), (size))
#define la_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define la_setuservalue(L, i) lua_setuservalue((L), (i))
#else
#define la_newuserdata_uv(L, size) lua_newuserdata((L), (size))
#define la_getuservalue(L, i) lua_getfenv((L), (i))
#define la_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#endif

/* ------------------------------------------------------- lua_json.c */

/* Pushes the decoded JSON value and returns 1, or pushes nothing and
 * returns 0 (not one JSON value, too deep for cJSON, or no memory). */
int la_push_json_text(lua_State *L, const char *text, size_t len);
/* The same for text known to be one JSON value (the parser's): kept as
 * text when deeper than cJSON reads; 0 only when memory ran out. */
int la_push_json_value(lua_State *L, const char *json, size_t len);

/* ------------------------------------------------------- lua_decoder.c */

/* A decoder: body bytes in, Lua values out (see lua_decoder.c). The client
 * makes one per transfer and drives it from libcurl's callbacks. */
typedef struct la_decoder la_decoder;

enum la_decoder_mode {
    LA_DECODE_KEEP = 0,   /* rows kept in the result */
    LA_DECODE_CALL,       /* rows given to on_row, not kept */
    LA_DECODE_TAKE,       /* rows returned by take(), not kept */
    LA_DECODE_COUNT       /* rows counted in C (row_count), no Lua value made */
};

/* How cells become Lua values: the query options datetime, dynamic and
 * shape (lua_decoder.c reads them; the same for core.decoder and a
 * client's request). */
typedef struct la_value_options {
    la_datetime_mode datetime;  /* converted in C */
    int datetime_fn;            /* or: the stack index of a function given the text; 0 */
    int dynamic_decode;         /* dynamic = "decode": objects and arrays as tables */
    int columns;                /* shape = "columns": one array per column */
} la_value_options;

/* Reads fields datetime, dynamic and shape of the table at idx (argument
 * arg, for errors). A datetime function stays where it is, in the table,
 * and is pushed: datetime_fn is its index. Raises on misuse. */
void la_read_value_options(lua_State *L, int idx, int arg, la_value_options *out);

/* Pushes a new decoder (gzip: bytes are a gzip member). on_row is the
 * stack index of the handler (LA_DECODE_CALL) or 0. batch: rows turned
 * into Lua values per take() (0: all of them, at each feed). values: NULL
 * for the defaults. Raises on memory running out. */
la_decoder *la_decoder_push(lua_State *L, int gzip, enum la_decoder_mode mode, int on_row,
                            long batch, const la_value_options *values);
/* A stepped reader (client:rows): la_decoder_progress asks for no more of
 * the body once rows were made since la_decoder_begin_call. */
void la_decoder_set_pull(la_decoder *d, int pull);
/* Before each call of a transfer's: the thread the Lua values go to and
 * the decoder's slot on its stack (room for the replays is made here). */
void la_decoder_begin_call(la_decoder *d, lua_State *L, int idx);
/* A client's decoder: __gc and close leave its C parts to the client. */
void la_decoder_set_owned(la_decoder *d);
/* la_http_request callbacks, ud the decoder: on_body only parses (the
 * worker's thread may run it), progress makes the Lua values (the
 * caller's thread), cancel unblocks an on_body waiting for room. */
int la_decoder_on_body(void *ud, const char *data, size_t len);
int la_decoder_progress(void *ud);
void la_decoder_cancel(void *ud);
/* End of body: finishes the parse and makes the rest of the Lua values
 * (the decoder at index idx). 0, or -1 when a handler raised (the error
 * is kept: la_decoder_push_error). */
int la_decoder_end(lua_State *L, int idx, la_decoder *d);
/* Keeps the value on top of the stack (popped) as the decoder's error, for
 * an error raised around it (a host's interrupt between the steps). */
void la_decoder_fail(lua_State *L, int idx, la_decoder *d);
int la_decoder_failed(const la_decoder *d);
void la_decoder_push_error(lua_State *L, int idx);
/* Whether a handler stopped the rows (on_row returned false). */
int la_decoder_stopped(const la_decoder *d);
/* The parse's outcome: LA_PARSE_OK, STOPPED or ERROR (message, memory). */
la_parse_status la_decoder_status(const la_decoder *d);
const char *la_decoder_error(const la_decoder *d);
int la_decoder_out_of_memory(const la_decoder *d);
/* Pushes the result table (tables, members, stopped). */
void la_decoder_push_result(lua_State *L, int idx);
/* Frees the C memory now (the userdata stays, closed). */
void la_decoder_release(la_decoder *d);
/* Pushes a cell's Lua value as a row has it (the columns use it too). */
void la_push_cell(lua_State *L, const la_cell *cell);

/* ------------------------------------------------------- lua_columns.c */

/* A column of a result in shape = "columns": cells kept in C, a Lua value
 * made when one is read (see lua_columns.c). */
typedef struct la_column la_column;

/* Pushes a new empty column userdata for cells of the given type (a
 * datetime or guid column keeps its text compactly, by its value; raises
 * when memory ran out). */
la_column *la_column_push(lua_State *L, la_type type);
/* Append one cell (a string's bytes are copied), a null, or again the
 * string of cell `at` (1-based; its bytes shared). 0, or -1 when memory ran
 * out (nothing appended). */
int la_column_append(la_column *c, const la_cell *cell);
int la_column_append_null(la_column *c);
int la_column_append_repeat(la_column *c, size_t at);
/* Appends the Lua value on top of the stack (popped), kept in the user
 * value of the column at idx. -1 when memory ran out in C; raises when
 * Lua's ran out. */
int la_column_append_lua(lua_State *L, int idx, la_column *c);
size_t la_column_count(const la_column *c);
/* The column is complete: what only appending needs is freed. */
void la_column_done(la_column *c);

/* ------------------------------------------------------- lua_client.c */

/* ---------------------------------------- opening (each file's own) */

/* Each registers its classes and sets its functions in the module table
 * on top of the stack. */
void la_json_open(lua_State *L);
void la_decoder_open(lua_State *L);
void la_columns_open(lua_State *L);
void la_client_open(lua_State *L);
void la_credential_open(lua_State *L);

/* ------------------------------------------------------- lua_core.c */

/* Runs the host's hooks (lua.c's Ctrl-C): a pcall of a no-op function;
 * LUA_OK, or the error value on the stack. */
int la_let_hooks_run(lua_State *L);

/* Readers of option tables: a string field (left on the stack, which
 * keeps it alive; NULL when nil; raises when not a string), and a field of
 * seconds as milliseconds (0: none). */
const char *opt_string_field(lua_State *L, int t, const char *name, size_t *len);
long opt_ms_field(lua_State *L, int t, const char *name);

/* A userdata class: methods as __index, one idempotent close for __gc
 * and __close, and __tostring. */
void la_register_class(lua_State *L, const char *name, const luaL_Reg *methods,
                       lua_CFunction close, lua_CFunction tostring);

#endif
