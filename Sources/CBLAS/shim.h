// OpenBLAS's cblas.h also declares openblas_set_num_threads, which Cria needs
// to keep BLAS threads and its own loops from oversubscribing the cores.
#include <cblas.h>
