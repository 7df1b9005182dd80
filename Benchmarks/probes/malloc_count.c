/* Counts the process's malloc-family calls, for `cria bench`'s steady-state checks.
 *
 * glibc keeps no count of calls, so this library, preloaded, wraps malloc, calloc,
 * realloc and the aligned allocators around glibc's own (__libc_*) and counts every
 * call on every thread. `cria bench` looks up `cria_malloc_calls` at run time and,
 * when it is there, reports the calls made during the steady-state batches and steps.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/malloc_count.so Benchmarks/probes/malloc_count.c
 *   LD_PRELOAD=/tmp/malloc_count.so cria bench --repetitions 1
 */
#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long calls;

long cria_malloc_calls(void) { return atomic_load_explicit(&calls, memory_order_relaxed); }

static void count(void) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(); return __libc_calloc(n, size); }
void *realloc(void *pointer, size_t size) { count(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }

int posix_memalign(void **result, size_t alignment, size_t size) {
    count();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer && size) return ENOMEM;
    *result = pointer;
    return 0;
}
