/*
 * init.c — process-wide set-up of the kernels' libraries.
 */
#include "sp_codelets.h"

#include <cblas.h>

void sp_codelets_init(void)
{
    /* StarPU runs one worker per core; a multi-threaded BLAS inside each
     * worker would fight the other workers for the same cores. */
    openblas_set_num_threads(1);
}
