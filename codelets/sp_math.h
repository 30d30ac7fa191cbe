/*
 * sp_math.h — elementary functions for the CPU kernels' element-wise loops,
 * written in plain float arithmetic (no libm call) so that the compiler
 * vectorises the loops that use them, and so that a vectorised element and
 * a scalar one (a loop's remainder) get the same bits: the same operations
 * in the same order, no reassociation (the project builds without
 * -ffast-math and, on baseline x86-64, without FMA contraction).
 *
 *   sp_exp(x)  e^x, relative error below 2e-7 on [−87, 88] (test_gradcheck
 *              measures it against exp in double); x is clamped to that range
 *   sp_erfc_pos(a)  erfc(a) for a ≥ 0, relative error below 2e-6 up to a = 4
 *   sp_erf(x)  erf(x) from it, absolute error below 3e-7
 */
#ifndef SP_MATH_H
#define SP_MATH_H

#include <stdint.h>
#include <string.h>

/* A hot element-wise loop built twice, for x86-64-v3 (AVX2, FMA) and for
 * the baseline, the loader picking the one the CPU runs (GCC's function
 * multi-versioning): 8-wide vectors where the CPU has them, and a binary
 * that still runs where it has not. The two clones may round differently
 * (FMA); a machine always runs the same one, so runs stay bit-identical. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SP_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SP_VECTOR_CLONES
#endif

static inline float sp_exp(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float t = x * 1.44269504089f; /* x / ln 2 */
    const int n = (int)(t >= 0.0f ? t + 0.5f : t - 0.5f);
    /* x − n·ln 2 in two parts (Cody–Waite), |f| ≤ ln 2 / 2 */
    const float f = (x - (float)n * 0.693145751953125f) - (float)n * 1.42860682030941723e-6f;
    /* e^f: minimax-quality Taylor polynomial of degree 7 on |f| ≤ 0.347 */
    float p = 1.98412698e-4f;
    p = p * f + 1.38888889e-3f;
    p = p * f + 8.33333333e-3f;
    p = p * f + 4.16666667e-2f;
    p = p * f + 1.66666667e-1f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const int32_t bits = (n + 127) << 23; /* 2^n, n in [−126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* erfc(a) for a ≥ 0: Numerical Recipes' Chebyshev fit (erfcc), relative
 * error below 1.2e-7 in exact arithmetic; in float the rounding of −a² in
 * the exponent adds up to ulp(a²)/2: 1.5e-6 at a = 4 (erfc(4) = 1.5e-8). */
static inline float sp_erfc_pos(float a)
{
    const float t = 1.0f / (1.0f + 0.5f * a);
    const float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
                    t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
                    t * (-0.82215223f + t * 0.17087277f))))))));
    return t * sp_exp(p - a * a);
}

/* erf(x) = ±(1 − erfc(|x|)); 1 + erf(x) without cancellation is
 * x ≥ 0 ? 2 − erfc(x) : erfc(−x) (see gelu.c). */
static inline float sp_erf(float x)
{
    const float e = 1.0f - sp_erfc_pos(x < 0.0f ? -x : x);
    return x < 0.0f ? -e : e;
}

#endif /* SP_MATH_H */
