/*
 * A thread that consumes a response body while the caller's thread goes on
 * receiving it. The caller pushes bytes into a bounded ring; the worker
 * hands them, in order, to a consume function (gunzip and parse, for the
 * HTTP transport). Why: on a large result, inflating and tokenizing cost
 * about as much as building the Lua values, and those can only be built on
 * the caller's thread; with two cores the two halves overlap.
 *
 * Waits on the caller's side are bounded (WAIT_MS) and call back `progress`
 * each time round, so the caller keeps draining whatever the worker
 * produced (the worker may be waiting for exactly that).
 */
#include "la_core.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONSUME_MAX (64 * 1024)   /* bytes handed to consume at a time */
#define WAIT_MS 1

struct la_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* any state change, for both sides */
    la_body_fn consume;         /* on the worker */
    void *consume_ud;
    la_progress_fn progress;    /* on the caller's thread, while it waits */
    void (*cancel)(void *ud);   /* on the caller's thread: unblock consume */
    void *ud;                   /* of progress and cancel */
    char *ring;
    size_t ring_size;
    size_t head, tail;          /* read and write positions, wrapping */
    size_t used;
    int eof, cancelled, failed, exited;
};

static void *run(void *arg)
{
    la_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        size_t n;
        while (!w->used && !w->eof && !w->cancelled)
            pthread_cond_wait(&w->changed, &w->lock);
        if (w->cancelled || w->failed || !w->used)
            break;  /* cancelled, failed, or eof with nothing left */
        n = w->used;
        if (n > w->ring_size - w->head)
            n = w->ring_size - w->head;
        if (n > CONSUME_MAX)
            n = CONSUME_MAX;
        /* the bytes [head, head + n) are ours until head moves */
        pthread_mutex_unlock(&w->lock);
        if (w->consume(w->consume_ud, w->ring + w->head, n) != 0) {
            pthread_mutex_lock(&w->lock);
            w->failed = 1;
            break;
        }
        pthread_mutex_lock(&w->lock);
        w->head = (w->head + n) % w->ring_size;
        w->used -= n;
        pthread_cond_broadcast(&w->changed);
    }
    w->exited = 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* The thread takes no signals: they stay with the host's threads (lua.c's
 * SIGINT handler, for one, expects to run on the Lua thread). */
static int start_thread(la_worker *w)
{
    sigset_t all, old;
    int rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Timed waits measure on CLOCK_MONOTONIC: a wall clock set back (NTP, an
 * operator) would stretch a 1 ms wait into however far it went back. */
static int init_monotonic_cond(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

la_worker *la_worker_start(size_t ring_size, la_body_fn consume, void *consume_ud,
                           la_progress_fn progress, void (*cancel)(void *ud), void *ud)
{
    la_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->ring_size = ring_size;
    w->ring = malloc(ring_size);
    w->consume = consume;
    w->consume_ud = consume_ud;
    w->progress = progress;
    w->cancel = cancel;
    w->ud = ud;
    if (w->ring && pthread_mutex_init(&w->lock, NULL) == 0) {
        if (init_monotonic_cond(&w->changed) == 0) {
            if (start_thread(w) == 0)
                return w;
            pthread_cond_destroy(&w->changed);
        }
        pthread_mutex_destroy(&w->lock);
    }
    free(w->ring);
    free(w);
    return NULL;
}

/* Waits (lock held) for a change, at most WAIT_MS. */
static void wait_briefly(la_worker *w)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);  /* the clock of w->changed */
    until.tv_nsec += WAIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->changed, &w->lock, &until);
}

/* The caller's side gave up (progress failed): the worker stops at once. */
static void give_up(la_worker *w)
{
    if (w->cancel)
        w->cancel(w->ud);
    pthread_mutex_lock(&w->lock);
    w->cancelled = 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

int la_worker_push(la_worker *w, const char *data, size_t len)
{
    pthread_mutex_lock(&w->lock);
    while (len > 0) {
        size_t room, n;
        if (w->failed || w->exited) {
            pthread_mutex_unlock(&w->lock);
            return -1;
        }
        room = w->ring_size - w->used;
        if (room == 0) {
            /* the worker may be waiting for the caller to drain its output */
            pthread_mutex_unlock(&w->lock);
            if (w->progress(w->ud) < 0) {
                give_up(w);
                return -1;
            }
            pthread_mutex_lock(&w->lock);
            if (w->used == w->ring_size)
                wait_briefly(w);
            continue;
        }
        n = len < room ? len : room;
        if (n > w->ring_size - w->tail)
            n = w->ring_size - w->tail;
        /* [tail, tail + n) is free: the worker does not read it until used grows */
        memcpy(w->ring + w->tail, data, n);
        w->tail = (w->tail + n) % w->ring_size;
        w->used += n;
        data += n;
        len -= n;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static void join_and_free(la_worker *w)
{
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w->ring);
    free(w);
}

int la_worker_finish(la_worker *w)
{
    int failed;
    pthread_mutex_lock(&w->lock);
    w->eof = 1;
    pthread_cond_broadcast(&w->changed);
    while (!w->exited && !w->cancelled) {
        pthread_mutex_unlock(&w->lock);
        if (w->progress(w->ud) < 0) {
            give_up(w);
            pthread_mutex_lock(&w->lock);
            break;
        }
        pthread_mutex_lock(&w->lock);
        if (!w->exited)
            wait_briefly(w);
    }
    failed = w->failed || w->cancelled;
    pthread_mutex_unlock(&w->lock);
    join_and_free(w);
    return failed ? -1 : 0;
}

void la_worker_stop(la_worker *w)
{
    give_up(w);
    join_and_free(w);
}
