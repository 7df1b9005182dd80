/* Counts the process's malloc-family calls, for `cria bench`'s steady-state checks.
 *
 * glibc keeps no count of calls, so this library, preloaded, wraps malloc, calloc,
 * realloc and the aligned allocators around glibc's own (__libc_*) and counts every
 * call on every thread. `cria bench` looks up `cria_malloc_calls` at run time and,
 * when it is there, reports the calls made during the steady-state batches and steps.
 *
 * `cria_malloc_calls_from_openblas` counts the calls made directly by OpenBLAS's code
 * (the caller's address lies in the loaded segments of a library whose file name
 * contains "openblas", found once with dl_iterate_phdr; dladdr per call was ten times
 * slower than the whole run): its
 * AVX-512 small-matrix sgemm (SkylakeX, Cooperlake) mallocs a buffer on every call
 * whose M leaves a tail of 1 to 8 rows, which Cria cannot avoid.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/malloc_count.so Benchmarks/probes/malloc_count.c
 *   LD_PRELOAD=/tmp/malloc_count.so cria bench --repetitions 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <stdatomic.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long calls, openblas_calls;
static __thread int classifying;

long cria_malloc_calls(void) { return atomic_load_explicit(&calls, memory_order_relaxed); }
long cria_malloc_calls_from_openblas(void) { return atomic_load_explicit(&openblas_calls, memory_order_relaxed); }

/* Inlined into each wrapper, so that the return address is the wrapper's caller. */
#define count() count_from(__builtin_return_address(0))

/* The address range of OpenBLAS's loaded segments (0, 0 until found). */
static _Atomic(unsigned long) openblas_low, openblas_high;

static int find_openblas(struct dl_phdr_info *info, size_t size, void *unused) {
    (void)size; (void)unused;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "openblas") == NULL) return 0;
    unsigned long low = ~0UL, high = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_LOAD) continue;
        unsigned long start = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
        if (start < low) low = start;
        if (start + info->dlpi_phdr[i].p_memsz > high) high = start + info->dlpi_phdr[i].p_memsz;
    }
    atomic_store(&openblas_low, low);
    atomic_store(&openblas_high, high);
    return 1;
}

static void count_from(void *caller) {
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    if (atomic_load_explicit(&openblas_high, memory_order_relaxed) == 0) {
        if (classifying) return;
        classifying = 1;
        dl_iterate_phdr(find_openblas, NULL);
        classifying = 0;
    }
    unsigned long address = (unsigned long)caller;
    if (address >= atomic_load_explicit(&openblas_low, memory_order_relaxed) &&
        address < atomic_load_explicit(&openblas_high, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&openblas_calls, 1, memory_order_relaxed);
    }
}

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
