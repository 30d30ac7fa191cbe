/*
 * init.c — process-wide set-up of the kernels' libraries (after starpu_init,
 * before starpu_shutdown).
 */
#include "sp_codelets.h"

#include <cblas.h>
#ifdef SP_HAVE_CUDA
#include <starpu_cublas.h>
#endif

void sp_codelets_init(void)
{
    /* StarPU runs one worker per core; a multi-threaded BLAS inside each
     * worker would fight the other workers for the same cores. */
    openblas_set_num_threads(1);
#ifdef SP_HAVE_CUDA
    starpu_cublas_init(); /* one cuBLAS handle per CUDA worker, bound to its stream */
#endif
}

void sp_codelets_shutdown(void)
{
#ifdef SP_HAVE_CUDA
    starpu_cublas_shutdown();
#endif
}
