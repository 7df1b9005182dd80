#define _GNU_SOURCE
#include "COpenBLASCore.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* Looked up at run time rather than linked: gotoblas_dynamic_init and _quit exist only
   in DYNAMIC_ARCH builds, and an OpenBLAS built for one CPU has nothing to correct. */
typedef void (*void_function)(void);
typedef char *(*name_function)(void);

const char *cria_openblas_core(void) {
    name_function corename = (name_function)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    const char *name = corename ? corename() : NULL;
    return name ? name : "unknown";
}

/* The core OpenBLAS 0.3.21's own feature fallback would pick, by a name its
   OPENBLAS_CORETYPE parser finds ("Cooperlake" it does not: its loop stops one short). */
static const char *core_for_features(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
    return NULL;
}

int cria_openblas_match_cpu(void) {
    if (getenv("OPENBLAS_CORETYPE") != NULL) return 0;
    if (strcmp(cria_openblas_core(), "Prescott") != 0) return 0;
    const char *wanted = core_for_features();
    if (wanted == NULL) return 0;
    void_function quit = (void_function)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void_function init = (void_function)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (quit == NULL || init == NULL) return 0;
    /* quit only forgets the chosen table; init chooses again (reading the variable) and
       runs the new table's own initialisation. Buffers and threads are not touched. */
    setenv("OPENBLAS_CORETYPE", wanted, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    return strcmp(cria_openblas_core(), wanted) == 0;
}
