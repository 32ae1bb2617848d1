/*
 * What nginx's thread pool does to the module, under ThreadSanitizer
 * (`make check-tsan`, spec/races_spec.lua): N threads, released together by
 * a barrier so they collide, each with its own lua_State (liblua5.4, not
 * instrumented: no state is shared), each loading loganalytics.core (its
 * luaopen runs curl_global_init, once per process) and, given a URL, running
 * queries through `require "loganalytics"` on its own client: small and
 * large responses (the JSON tokenizer's tables, gzip, the body worker).
 *
 *   threads_host [-n THREADS] [-c CPATH] [-p PATH] [--https URL CA_FILE] [--race] [URL]
 *
 * CPATH (default build/tsan/?.so) points at the module built with
 * -fsanitize=thread (cmake -DTSAN=ON); PATH (default lua/?.lua) at the Lua
 * layer. --https adds a query over TLS (libcurl and OpenSSL in every thread
 * at once), trusting CA_FILE. Prints "THREADS threads: L loaded, Q queries, R rows" and exits 0,
 * or prints each thread's Lua error and exits 1. TSan's reports go to stderr;
 * run it with TSAN_OPTIONS=halt_on_error=1 so one is also a non-zero exit.
 * --race makes the threads race on a counter of this host: the check that
 * TSan is live in the build (it must report it).
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

/* Each thread's whole work: load the core, then the queries (url given). */
static const char THREAD_SCRIPT[] =
    "local cpath, path, url, https_url, ca_file = ...\n"
    "package.cpath = cpath\n"
    "package.path = path\n"
    "local core = require 'loganalytics.core'\n"
    "assert(type(core) == 'table', 'loganalytics.core: no module table')\n"
    "loaded = true\n"
    "if url == nil then return 0, 0 end\n"
    "local la = require 'loganalytics'\n"
    "local queries, rows = 0, 0\n"
    "local function run(endpoint, workspace, kql, threads, at_least)\n"
    "  local client = la.new { endpoint = endpoint, workspace = workspace, api_key = 'DEMO_KEY',\n"
    "                          max_retries = 0, threads = threads, ca_file = ca_file }\n"
    "  local result, err = client:query(kql)\n"
    "  client:close()\n"
    "  if not result then error(kql .. ': ' .. tostring(err), 0) end\n"
    "  if result.status ~= 'success' then error(kql .. ': status ' .. tostring(result.status), 0) end\n"
    "  local n = #result.tables[1].rows\n"
    "  if n < at_least then error(('%s: %d rows, expected %d or more'):format(kql, n, at_least), 0) end\n"
    "  queries, rows = queries + 1, rows + n\n"
    "end\n"
    "run(url, 'DEMO_WORKSPACE', 'Heartbeat | take 3', false, 3)\n"
    "run(url, 'FAULTS', 'big:1', true, 2000)\n"  /* gzip, decoded by the body worker */
    "if https_url then run(https_url, 'DEMO_WORKSPACE', 'Heartbeat | take 3', false, 3) end\n"
    "return queries, rows\n";

struct job {
    pthread_t thread;
    int index;
    int loaded, queries, rows;
    char error[512];
};

static pthread_barrier_t start_together, all_done;
static const char *cpath = "build/tsan/?.so";
static const char *path = "lua/?.lua";
static const char *url;
static const char *https_url, *ca_file;
static int race;
static long unguarded_counter;  /* --race only: written by every thread, no lock */

static void *run_thread(void *arg)
{
    struct job *job = arg;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(job->error, sizeof job->error, "luaL_newstate failed");
        pthread_barrier_wait(&start_together);
        pthread_barrier_wait(&all_done);
        return NULL;
    }
    luaL_openlibs(L);
    int status = luaL_loadbufferx(L, THREAD_SCRIPT, sizeof THREAD_SCRIPT - 1, "=threads_host", "t");
    pthread_barrier_wait(&start_together);  /* every state ready: now collide */
    if (race)
        unguarded_counter++;
    if (status == LUA_OK) {
        lua_pushstring(L, cpath);
        lua_pushstring(L, path);
        lua_pushstring(L, url);  /* NULL pushes nil */
        lua_pushstring(L, https_url);
        lua_pushstring(L, ca_file);
        status = lua_pcall(L, 5, 2, 0);
    }
    if (status == LUA_OK) {
        job->queries = (int)lua_tointeger(L, -2);
        job->rows = (int)lua_tointeger(L, -1);
    } else {
        const char *msg = lua_tostring(L, -1);
        snprintf(job->error, sizeof job->error, "%s", msg ? msg : "(an error that is not a string)");
    }
    lua_getglobal(L, "loaded");
    job->loaded = lua_toboolean(L, -1);
    /* like an nginx worker's states, which live on: no state closes (and
     * dlcloses the module) while another may still be loading it */
    pthread_barrier_wait(&all_done);
    lua_close(L);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: threads_host [-n THREADS] [-c CPATH] [-p PATH] [--https URL CA_FILE] [--race] [URL]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct job jobs[MAX_THREADS];
    int nthreads = 8, i, failed = 0, loaded = 0, queries = 0, rows = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cpath = argv[++i];
        else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--https") == 0 && i + 2 < argc) {
            https_url = argv[++i];
            ca_file = argv[++i];
        } else if (strcmp(argv[i], "--race") == 0)
            race = 1;
        else if (argv[i][0] != '-' && url == NULL)
            url = argv[i];
        else
            return usage();
    }
    if (nthreads < 2 || nthreads > MAX_THREADS || (https_url && !url))
        return usage();

    pthread_barrier_init(&start_together, NULL, (unsigned)nthreads);
    pthread_barrier_init(&all_done, NULL, (unsigned)nthreads);
    for (i = 0; i < nthreads; i++) {
        jobs[i].index = i;
        if (pthread_create(&jobs[i].thread, NULL, run_thread, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;  /* the others wait at the barrier for ever: exit */
        }
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(jobs[i].thread, NULL);
        if (jobs[i].error[0]) {
            fprintf(stderr, "thread %d: %s\n", i, jobs[i].error);
            failed++;
        }
        loaded += jobs[i].loaded;
        queries += jobs[i].queries;
        rows += jobs[i].rows;
    }
    pthread_barrier_destroy(&start_together);
    pthread_barrier_destroy(&all_done);
    printf("%d threads: %d loaded, %d queries, %d rows\n", nthreads, loaded, queries, rows);
    return failed ? 1 : 0;
}
