/*
 * team.c — the barrier the ranks of a parallel stage task meet at after
 * each op (sp_team in sp_codelets.h).
 *
 * A sense-reversing barrier: the last rank to arrive resets the count and
 * moves the generation on; the others wait for the generation to change.
 * They spin first (the ranks of one task arrive within microseconds of each
 * other when nothing disturbs them), then sleep on a futex (an op that only
 * rank 0 runs, a rank descheduled): the
 * application's thread has no core of its own and takes one from a worker
 * while it submits the next step, and a rank spinning on the other core
 * would keep that core busy doing nothing while its partner waits to be
 * scheduled again. Sleeping lets the kernel run the application's thread
 * there instead.
 */
#include "sp_codelets.h"

#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* How long a rank spins before it sleeps: a futex wake-up costs tens of
 * microseconds, which small ops notice (the 784-512-256-10 MLP, K = 2, M = 2
 * under pheft: 44.4k samples/s with 30 µs, 49.3k with 300 µs, 48.5k with 3
 * ms; the 1024-wide one: the same with all three). */
#define SPIN_NS 300000L

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void sp_team_barrier(const struct sp_team *t)
{
    if (t->size <= 1)
        return;
    struct sp_team_sync *s = t->sync;
    const int gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&s->count, 1, __ATOMIC_ACQ_REL) == t->size) {
        __atomic_store_n(&s->count, 0, __ATOMIC_RELAXED);
        /* sequentially consistent, with the sleepers' side below: this
         * store and the load after it must not be reordered (x86 would let
         * the load overtake a release store), or both sides could read the
         * old values and a sleeper miss its wake-up */
        __atomic_store_n(&s->gen, gen + 1, __ATOMIC_SEQ_CST);
#ifdef __linux__
        if (__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST))
            syscall(SYS_futex, &s->gen, FUTEX_WAKE_PRIVATE, t->size, NULL, NULL, 0);
#endif
        return;
    }
    const long t0 = now_ns();
    int spins = 0;
    while (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) == gen) {
        cpu_relax();
        if (++spins % 256 || now_ns() - t0 < SPIN_NS)
            continue;
#ifdef __linux__
        /* the waker reads sleepers after moving gen on, we read gen after
         * counting ourselves (all sequentially consistent): either it sees
         * us, or we see the new gen (and the futex call returns at once
         * when gen has moved by then). The 1 ms timeout is a second guard:
         * the loop checks gen again. */
        static const struct timespec guard = {0, 1000000};
        __atomic_add_fetch(&s->sleepers, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) == gen)
            syscall(SYS_futex, &s->gen, FUTEX_WAIT_PRIVATE, gen, &guard, NULL, 0);
        __atomic_sub_fetch(&s->sleepers, 1, __ATOMIC_SEQ_CST);
#endif
    }
}
