/* The fast student's whole BiLSTM recurrence, and its classifier, in C, exact fp32 (nothing reduced).

   Sequences are independent, so the kernel walks them in tiles of MR rows and runs each tile through ALL its
   time steps before the next: the tile's h, c and gate buffer (a few KB) live in L1 throughout, and W_hh of one
   direction (H x 4H, ~360 KB at H = 150) stays in L2 while every tile streams it. Per step t:
   1. G = h W_hh^T for the MR rows: a register-blocked FMA micro-kernel (MR x NV vector accumulators) over W_hh^T
      packed once per model in column panels (K x NR each, then one narrower panel). No product at step 0
      (h_0 = 0), nor at step 1: h_1 depends on the first token alone, so first_products computes h_1 W_hh^T once
      per vocabulary word (same code, same bits). Meanwhile the rows the next step reads from the tables (random
      rows of tables far larger than the caches) are prefetched into L2, spread over the panels.
   2. One gate pass per row: z = G + table[token] (i f o g), then c, h. W_hh and the table are packed pre-scaled
      by -1 (i f o) and -2 (g) (exact: powers of two), so z is already the exponent of
          sigmoid(x) = 1 / (1 + e^-x),  tanh(x) = (1 - e^-2x) / (1 + e^-2x),
      and two reciprocals per element (instead of five) come from putting
          c' = f c + i g = (c (1 + e_i)(1 + e_g) + (1 - e_g)(1 + e_f)) / ((1 + e_f)(1 + e_i)(1 + e_g)),
          h' = o tanh(c') = (1 - e_c) / ((1 + e_o)(1 + e_c))
      over common denominators. Exponents are clamped to [-86, 28]: the products stay finite, and a clamped
      sigmoid or tanh is off by < 1e-12.
   The classifier (mlp_head) reuses the micro-kernel: fc1, ReLU and fc2 per tile of rows.
   Compiled once per ISA: -DISA_AVX512 (16 lanes, 32 registers) or -DISA_AVX2 (8 lanes, 16 registers); the caller
   picks one at run time from the CPU's flags. */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(ISA_AVX512)
#define VW 16
#ifndef MR
#define MR 8 /* micro-tile 8 x 48: 24 of the 32 zmm registers accumulate; 512-row batches split evenly */
#endif
#ifndef NV
#define NV 3
#endif
typedef __m512 vec;
#define vzero() _mm512_setzero_ps()
#define vset1(x) _mm512_set1_ps(x)
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps(p, v)
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vfmadd(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vfnmadd(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define vmin(a, b) _mm512_min_ps(a, b)
#define vmax(a, b) _mm512_max_ps(a, b)
static inline vec vrcp(vec x) {               /* 1/x: 14-bit estimate + one Newton step, about 1 ulp */
    vec r = _mm512_rcp14_ps(x);
    return vfmadd(r, vfnmadd(x, r, vset1(1.0f)), r);
}
#define TN 16 /* exp's table: 2^(j / 16), j = 0..15 */
static const float EXP_TABLE[16] = {1.0f, 1.0442737340927124f, 1.0905077457427979f, 1.1387885808944702f,
                                    1.1892070770263672f, 1.2418577671051025f, 1.2968395948410034f,
                                    1.3542555570602417f, 1.4142135381698608f, 1.4768261909484863f,
                                    1.5422108173370361f, 1.610490322113037f, 1.6817928552627563f,
                                    1.7562521696090698f, 1.8340080976486206f, 1.9152065515518188f};
#define EXP_C2 0.5000162124633789f
#define EXP_C3 0.16666074097156525f
static inline float vhsum(vec v) { return _mm512_reduce_add_ps(v); }
#define FN(name) name##_avx512
#elif defined(ISA_AVX2)
#define VW 8
#ifndef MR
#define MR 4 /* micro-tile 4 x 24: 12 accumulators, 3 of W, 1 broadcast = the 16 ymm registers */
#endif
#ifndef NV
#define NV 3
#endif
typedef __m256 vec;
#define vzero() _mm256_setzero_ps()
#define vset1(x) _mm256_set1_ps(x)
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps(p, v)
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vfmadd(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vfnmadd(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define vmin(a, b) _mm256_min_ps(a, b)
#define vmax(a, b) _mm256_max_ps(a, b)
static inline vec vrcp(vec x) { return _mm256_div_ps(vset1(1.0f), x); } /* AVX2's estimate has only 12 bits */
#define TN 8 /* exp's table: 2^(j / 8), j = 0..7 */
static const float EXP_TABLE[8] = {1.0f, 1.0905077457427979f, 1.1892070770263672f, 1.2968395948410034f,
                                   1.4142135381698608f, 1.5422108173370361f, 1.6817928552627563f,
                                   1.8340080976486206f};
#define EXP_C2 0.5000647902488708f
#define EXP_C3 0.16664297878742218f
static inline float vhsum(vec v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}
#define FN(name) name##_avx2
#else
#error "define ISA_AVX512 or ISA_AVX2"
#endif
#define NR (NV * VW)
#if defined(PREC_BF16) || defined(PREC_INT8)
#define REDUCED 1 /* the reduced-precision product below replaces the fp32 one (only there) */
#endif
#ifndef GU
#define GU 2 /* gate chunks interleaved */
#endif
#define INLINE static inline __attribute__((always_inline))
#define PF_HINT _MM_HINT_T1 /* into L2: the W panels stream through L1 meanwhile */
#define ZMIN -86.0f /* e^z stays a normal float */
#define ZMAX 28.0f  /* (1 + e^z)^3 stays finite */

/* e^z for z clamped to [ZMIN, ZMAX], within 3 ulp for |z| <= 28 (5 below, where e^z < 1e-12 only ever gets
   added to 1; measured against libm in the tests): with k = round(z TN / ln 2) (TN = the table's size),
   e^z = 2^floor(k / TN) * 2^((k mod TN) / TN) * e^r,  r = z - k ln2 / TN in [-ln2 / 2TN, ln2 / 2TN]:
   the middle factor from a TN-entry table (one register, one permute), e^r from a degree-3 minimax polynomial
   (relative error < 3e-8), the power of 2 added to the exponent (the result stays a normal float). */
#define EXP_MAGIC 12582912.0f /* 1.5 2^23: t = z TN / ln 2 + EXP_MAGIC holds k in its low mantissa bits */
INLINE vec vexp(vec z) {
    z = vmin(vmax(z, vset1(ZMIN)), vset1(ZMAX));
    vec t = vfmadd(z, vset1(TN * 1.44269504088896341f), vset1(EXP_MAGIC)), k = vsub(t, vset1(EXP_MAGIC));
    vec r = vfnmadd(k, vset1(0.693147180559945309f / TN), z);
    vec p = vfmadd(vfmadd(vfmadd(vset1(EXP_C3), r, vset1(EXP_C2)), r, vset1(1.0f)), r, vset1(1.0f));
#if defined(ISA_AVX512)
    __m512i ki = _mm512_castps_si512(t);
    vec m = vmul(p, _mm512_permutexvar_ps(ki, _mm512_loadu_ps(EXP_TABLE))); /* index: k's low 4 bits */
    __m512i e = _mm512_slli_epi32(_mm512_srai_epi32(_mm512_sub_epi32(ki, _mm512_set1_epi32(0x4B400000)), 4), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(m), e));
#else
    __m256i ki = _mm256_castps_si256(t);
    vec m = vmul(p, _mm256_permutevar8x32_ps(_mm256_loadu_ps(EXP_TABLE), ki)); /* index: k's low 3 bits */
    __m256i e = _mm256_slli_epi32(_mm256_srai_epi32(_mm256_sub_epi32(ki, _mm256_set1_epi32(0x4B400000)), 3), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(m), e));
#endif
}

/* g[r][0..width) = sum_k h[r][k] wp[k][.] for the tile's MR rows, width = nv VW (+ 8 with `half`, AVX-512 only:
   a last 8-column ymm vector); wp: one packed panel, K x width. */
INLINE void micro(int nv, int half, const float *restrict h, long hs, const float *restrict wp, long K,
                  float *restrict g, long gs, const char *const *pf, long npf) {
    long width = nv * VW + 8 * half;
    vec acc[MR][NV];
#if defined(ISA_AVX512)
    __m256 acc8[MR];
    for (int r = 0; r < MR; r++) acc8[r] = _mm256_setzero_ps();
#endif
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < nv; q++) acc[r][q] = vzero();
    for (long k = 0; k < K; k++) {
        if (k < npf) _mm_prefetch(pf[k], PF_HINT); /* one line per k step: spread, never a burst */
        vec w[NV];
        for (int q = 0; q < nv; q++) w[q] = vload(wp + k * width + q * VW);
#if defined(ISA_AVX512)
        __m256 w8 = half ? _mm256_loadu_ps(wp + k * width + nv * VW) : _mm256_setzero_ps();
#endif
        for (int r = 0; r < MR; r++) {
            vec b = vset1(h[r * hs + k]);
            for (int q = 0; q < nv; q++) acc[r][q] = vfmadd(b, w[q], acc[r][q]);
#if defined(ISA_AVX512)
            if (half) acc8[r] = _mm256_fmadd_ps(_mm512_castps512_ps256(b), w8, acc8[r]);
#endif
        }
    }
    for (int r = 0; r < MR; r++) {
        for (int q = 0; q < nv; q++) vstore(g + r * gs + q * VW, acc[r][q]);
#if defined(ISA_AVX512)
        if (half) _mm256_storeu_ps(g + r * gs + nv * VW, acc8[r]);
#endif
    }
}

#if !defined(REDUCED) /* the exact product (the reduced builds have lowp_product instead) */
/* G = h W (all panels); along the way the lines pf[0..npf) are prefetched, a share per panel (at most K per
   panel: any beyond are left to the hardware). */
static void matmul_tile(const float *restrict h, long hs, const float *restrict wp, long K, long np,
                        float *restrict g, long gs, const char *const *pf, long npf) {
    long full = np / NR, tail = np % NR, per = full ? (npf + full - 1) / full : 0; /* np: a multiple of 8 */
    if (per > K) per = K;
    for (long p = 0; p < full; p++) {
        long from = p * per < npf ? p * per : npf, cnt = from + per < npf ? per : npf - from;
        micro(NV, 0, h, hs, wp + p * K * NR, K, g + p * NR, gs, pf + from, cnt);
    }
    const float *wt = wp + full * K * NR;
    float *gt = g + full * NR;
    switch (tail) { /* a constant shape per case: each is its own unrolled kernel */
#if defined(ISA_AVX512)
        case 8: micro(0, 1, h, hs, wt, K, gt, gs, pf, 0); break;
        case 16: micro(1, 0, h, hs, wt, K, gt, gs, pf, 0); break;
        case 24: micro(1, 1, h, hs, wt, K, gt, gs, pf, 0); break;
#if NV > 2
        case 32: micro(2, 0, h, hs, wt, K, gt, gs, pf, 0); break;
        case 40: micro(2, 1, h, hs, wt, K, gt, gs, pf, 0); break;
#endif
#if NV > 3
        case 48: micro(3, 0, h, hs, wt, K, gt, gs, pf, 0); break;
        case 56: micro(3, 1, h, hs, wt, K, gt, gs, pf, 0); break;
#endif
#else
        case 8: micro(1, 0, h, hs, wt, K, gt, gs, pf, 0); break;
#if NV > 2
        case 16: micro(2, 0, h, hs, wt, K, gt, gs, pf, 0); break;
#endif
#if NV > 3
        case 24: micro(3, 0, h, hs, wt, K, gt, gs, pf, 0); break;
#endif
#endif
        default: break;
    }
}
#endif

/* One row's gate pass: z = g + x (pre-scaled exponents, order i f o g) -> c, h in place (see the top). GU chunks
   of VW lanes at a time, their steps interleaved: each chunk is one long dependency chain (5 exps, 2 reciprocals),
   and side by side the out-of-order core overlaps them (measured: ~9% faster gates with AVX2, even with AVX-512). */
INLINE void gates_row(const float *restrict g, const float *restrict x, float *restrict c, float *restrict h,
                      long H) {
    const vec one = vset1(1.0f);
    for (long j = 0; j < H; j += GU * VW) { /* the last chunks run into padding lanes, which nothing reads */
        vec ei[GU], ef[GU], eo[GU], eg[GU], ig[GU], fd[GU], cn[GU], ec[GU];
#define EACH for (int u = 0; u < GU; u++)
        EACH ei[u] = vexp(vadd(vload(g + j + u * VW), vload(x + j + u * VW)));
        EACH ef[u] = vexp(vadd(vload(g + H + j + u * VW), vload(x + H + j + u * VW)));
        EACH eo[u] = vexp(vadd(vload(g + 2 * H + j + u * VW), vload(x + 2 * H + j + u * VW)));
        EACH eg[u] = vexp(vadd(vload(g + 3 * H + j + u * VW), vload(x + 3 * H + j + u * VW)));
        EACH ig[u] = vmul(vadd(one, ei[u]), vadd(one, eg[u]));
        EACH fd[u] = vadd(one, ef[u]);
        /* c' = (c (1+e_i)(1+e_g) + (1-e_g)(1+e_f)) / ((1+e_f)(1+e_i)(1+e_g)) */
        EACH cn[u] = vmul(vfmadd(vload(c + j + u * VW), ig[u], vfnmadd(eg[u], fd[u], fd[u])), vrcp(vmul(fd[u], ig[u])));
        EACH vstore(c + j + u * VW, cn[u]);
        EACH ec[u] = vexp(vmul(cn[u], vset1(-2.0f)));
        EACH vstore(h + j + u * VW, vmul(vsub(one, ec[u]), vrcp(vmul(vadd(one, eo[u]), vadd(one, ec[u])))));
#undef EACH
    }
}

#if defined(REDUCED)
/* ---- The reduced-precision product (builds with -DPREC_BF16 or -DPREC_INT8: used only when asked for) ----
   Only G = h W_hh^T changes; the gates, step 1's per-word table and the classifier stay exact fp32. W_hh^T is
   packed in the fp32 panels' order, but each 32-bit word holds KW consecutive k of one column (bf16 pairs,
   KW = 2, or int8 quads, KW = 4), so one dot-product instruction does KW multiply-adds per lane.
   bf16: W and, per step, h rounded to bf16 (nearest even); _mm512_dpbf16_ps accumulates in fp32.
   int8: W symmetric per column (s_n = max_k |W_kn| / 127), h per row and step (s_r = max_k |h_rk| / QH); h is
   stored as hq + OFF >= 1 (the unsigned operand of the u8 x s8 products) and OFF sum_k Wq_kn is taken back out
   by starting the int32 accumulators at -OFF sum_k Wq_kn (precomputed per column); G_rn = s_r s_n acc_rn.
   VNNI's _mm512_dpbusd_epi32 adds 4 products straight into int32. AVX2 has _mm256_maddubs_epi16 (pairs into
   int16, saturating) then _mm256_madd_epi16: with h in 7 bits (QH 63, OFF 64) no pair exceeds
   2 * 127 * 127 < 2^15, so nothing saturates. */
#if defined(ISA_AVX512)
typedef __m512i ivec;
#define iload(p) _mm512_loadu_si512((const void *)(p))
#define iset1(x) _mm512_set1_epi32(x)
#define itof(v) _mm512_cvtepi32_ps(v)
#define vabs(x) _mm512_abs_ps(x)
static inline float vhmax(vec v) { return _mm512_reduce_max_ps(v); }
#else
typedef __m256i ivec;
#define iload(p) _mm256_loadu_si256((const __m256i *)(p))
#define iset1(x) _mm256_set1_epi32(x)
#define itof(v) _mm256_cvtepi32_ps(v)
#define vabs(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
static inline float vhmax(vec v) {
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_movehdup_ps(q)));
}
#endif
#if defined(PREC_BF16)
#if !defined(ISA_AVX512)
#error "bf16 needs ISA_AVX512"
#endif
#define KW 2
typedef vec acc_t;
#define ACC_INIT(ci) vzero()
#define DOT(acc, b, w) _mm512_dpbf16_ps(acc, (__m512bh)(b), (__m512bh)(w))
#define ACC_OUT(acc, cs, rs) (acc)
#define OFF 0 /* (no offset) */
#else
#define KW 4
typedef ivec acc_t;
#define ACC_INIT(ci) iload(ci)
#define ACC_OUT(acc, cs, rs) vmul(vmul(itof(acc), vload(cs)), vset1(rs))
#if defined(ISA_AVX512)
#define QH 127
#define OFF 128
/* vpdpbusd as asm: with the intrinsic gcc 12 keeps the accumulator array in memory (a store per product) */
static inline __attribute__((always_inline)) __m512i dpbusd(__m512i acc, __m512i b, __m512i w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(w));
    return acc;
}
#define DOT(acc, b, w) dpbusd(acc, b, w)
#else
#define QH 63
#define OFF 64
#define DOT(acc, b, w) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(b, w), _mm256_set1_epi16(1)))
#endif
#endif
#define KQ 64 /* h rows are converted 64 values at a time (zeros past K): hq's row length in values */

/* The tile's h in the product's format: hq, hqs word rows of MR words (word k of row r at hq[k MR + r]: the
   micro-kernel's broadcasts then share one base register); rs: int8's row scales; row: one zero-padded row of
   floats (its tail past K stays 0), words: its conversion. */
struct lowp_h {
    int32_t *hq, *words;
    float *rs, *row;
    long hqs;
};

static int lowp_h_alloc(struct lowp_h *lp, long K) {
    long values = (K + KQ - 1) / KQ * KQ;
    lp->hqs = values / KW;
    size_t bytes = (sizeof(int32_t) * (MR + 1) * lp->hqs + sizeof(float) * (MR + values) + 63) / 64 * 64;
    lp->hq = aligned_alloc(64, bytes);
    if (!lp->hq) return -1;
    memset(lp->hq, 0, bytes);
    lp->words = lp->hq + MR * lp->hqs, lp->rs = (float *)(lp->words + lp->hqs), lp->row = lp->rs + MR;
    return 0;
}

static void lowp_h_free(struct lowp_h *lp) { free(lp->hq); }

/* h (MR rows of K floats, stride hs; lanes past K hold padding) -> lp's hq (and rs) */
INLINE void convert_h(struct lowp_h *lp, const float *restrict h, long hs, long K) {
    long values = lp->hqs * KW;
    float *row = lp->row;
    for (int r = 0; r < MR; r++) {
        memcpy(row, h + r * hs, sizeof(float) * K);
#if defined(PREC_BF16)
        uint16_t *dst = (uint16_t *)lp->words;
        for (long k = 0; k < values; k += VW)
            _mm256_storeu_si256((__m256i *)(dst + k), (__m256i)_mm512_cvtneps_pbh(vload(row + k)));
#else
        vec m = vzero();
        for (long k = 0; k < values; k += VW) m = vmax(m, vabs(vload(row + k)));
        float mx = vhmax(m);
        lp->rs[r] = mx / QH;
        vec inv = vset1(mx > 0.0f ? QH / mx : 0.0f);
        uint8_t *dst = (uint8_t *)lp->words;
#if defined(ISA_AVX512)
        for (long k = 0; k < values; k += VW) /* rounded to nearest, in [OFF - QH, OFF + QH]: no wrap */
            _mm_storeu_si128((__m128i *)(dst + k), _mm512_cvtepi32_epi8(_mm512_add_epi32(
                                                       _mm512_cvtps_epi32(vmul(vload(row + k), inv)), iset1(OFF))));
#else
#define Q(k) _mm256_add_epi32(_mm256_cvtps_epi32(vmul(vload(row + (k)), inv)), _mm256_set1_epi32(OFF))
        for (long k = 0; k < values; k += 4 * VW) { /* 32 values; packs work per 128-bit lane, the permute undoes it */
            __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(Q(k), Q(k + 8)), _mm256_packs_epi32(Q(k + 16), Q(k + 24)));
            _mm256_storeu_si256((__m256i *)(dst + k),
                                _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        }
#undef Q
#endif
#endif
        for (long k = 0; k < lp->hqs; k++) lp->hq[k * MR + r] = lp->words[k];
    }
}

/* g[r][0..nv VW) = the tile's MR rows of h times one packed panel (kw word rows x nv VW columns); cs, ci: the
   panel's column scales and accumulator starts (int8), rs: the rows' scales. */
INLINE void micro_lp(int nv, const int32_t *restrict hq, const int32_t *restrict wp, long kw,
                     float *restrict g, long gs, const float *restrict cs, const int32_t *restrict ci,
                     const float *restrict rs, const char *const *pf, long npf) {
#if defined(PREC_BF16)
    (void)cs, (void)ci, (void)rs; /* bf16: no scales, the accumulators start at 0 */
#endif
    long width = nv * VW;
    acc_t acc[MR][NV];
    for (int q = 0; q < nv; q++) {
        acc_t init = ACC_INIT(ci + q * VW);
        for (int r = 0; r < MR; r++) acc[r][q] = init;
    }
    for (long k = 0; k < kw; k++) {
        if (k < npf) _mm_prefetch(pf[k], PF_HINT);
        ivec w[NV];
        for (int q = 0; q < nv; q++) w[q] = iload(wp + k * width + q * VW);
        for (int r = 0; r < MR; r++) {
            ivec b = iset1(hq[k * MR + r]);
            for (int q = 0; q < nv; q++) acc[r][q] = DOT(acc[r][q], b, w[q]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < nv; q++) vstore(g + r * gs + q * VW, ACC_OUT(acc[r][q], cs + q * VW, rs[r]));
}

/* G = h W in reduced precision (the tile's h converted first), with matmul_tile's prefetch schedule; aux: the
   direction's column scales (np floats) then accumulator starts (np int32); np: a multiple of VW. */
static void lowp_product(struct lowp_h *lp, const float *h, long hs, long K, const char *w, const float *aux,
                         long np, float *g, long gs, const char *const *pf, long npf) {
    convert_h(lp, h, hs, K);
    const int32_t *wp = (const int32_t *)w, *ci = (const int32_t *)(aux + np);
    long kw = (K + KW - 1) / KW, full = np / NR, tail = np % NR, per = full ? (npf + full - 1) / full : 0;
    if (per > kw) per = kw;
    for (long p = 0; p < full; p++) {
        long from = p * per < npf ? p * per : npf, cnt = from + per < npf ? per : npf - from;
        micro_lp(NV, lp->hq, wp + p * kw * NR, kw, g + p * NR, gs, aux + p * NR, ci + p * NR, lp->rs,
                 pf + from, cnt);
    }
    long o = full * NR;
    switch (tail / VW) { /* a constant shape per case */
        case 1: micro_lp(1, lp->hq, wp + o * kw, kw, g + o, gs, aux + o, ci + o, lp->rs, pf, 0); break;
#if NV > 2
        case 2: micro_lp(2, lp->hq, wp + o * kw, kw, g + o, gs, aux + o, ci + o, lp->rs, pf, 0); break;
#endif
#if NV > 3
        case 3: micro_lp(3, lp->hq, wp + o * kw, kw, g + o, gs, aux + o, ci + o, lp->rs, pf, 0); break;
#endif
        default: break;
    }
}
#endif

/* Both directions of the BiLSTM over the n sequences rows[0..n), taken in that order, MR at a time (longest
   first is best: a tile runs as many steps as its longest row). ids: flat token ids; starts, lens: per sequence
   (lens >= 1). wp: per direction the packed, pre-scaled W_hh^T (panels of K = H rows), dir_stride floats apart;
   np: its column count, padded to a multiple of 8. table: (2V, 4H) pre-scaled input gates, backward rows from V
   on; g1 (or NULL): (2V, 4H), first_products' G_1 of every word, which replaces step 1's product; both readable
   2 VW floats past their ends. out: row dest[i] (dest NULL: rows[i]) of out (., 2H) gets sequence rows[i]'s
   [forward last h, backward last h]. Returns 0, or -1 when out of memory. */
static int recurrence(const char *wp, long dir_bytes, const float *aux, long np, const float *table,
                      const float *g1, long V, const int64_t *ids, const int64_t *starts, const int64_t *lens,
                      const int64_t *rows, long n, long H, float *out, const int64_t *dest) {
#if !defined(REDUCED)
    (void)aux; /* the reduced product's scales: none in the exact build */
#endif
    long hs = (H + GU * VW - 1) / (GU * VW) * (GU * VW), gs = np + hs - H; /* row strides: room for the last chunks */
    long H4 = 4 * H, lines = ((3 * H + hs) * (long)sizeof(float) + 63) / 64 + 1; /* a table row as read */
    size_t floats = 2 * MR * hs + (MR + 1) * gs, bytes = (sizeof(float) * floats + 63) / 64 * 64;
    float *buf = aligned_alloc(64, bytes);
    const char **pf = malloc(sizeof(char *) * 3 * MR * lines);
    if (!buf || !pf) {
        free(buf), free(pf);
        return -1;
    }
    memset(buf, 0, bytes);
    float *hb = buf, *cb = buf + MR * hs, *zero = buf + 2 * MR * hs, *gb = zero + gs; /* zero: G of step 0 */
#if defined(REDUCED)
    struct lowp_h lp;
    if (lowp_h_alloc(&lp, H)) {
        free(buf), free(pf);
        return -1;
    }
#endif
    for (int d = 0; d < 2; d++) {
        const char *w = wp + d * dir_bytes;
        const float *tab = table + d * V * H4, *g1d = g1 ? g1 + d * V * H4 : 0;
#define TOKEN(q, t) ids[starts[q] + (d ? lens[q] - 1 - (t) : (t))]
        long npf = 0;
        /* queue the lines that step t of rows[s + r] (r < m) reads: its table row, at step 1 also its G_1 row */
#define PREFETCH_STEP(s, m, t)                                                                                    \
    for (long r = 0; r < (m); r++) {                                                                              \
        long q_ = rows[(s) + r];                                                                                  \
        if ((t) >= lens[q_]) continue;                                                                            \
        for (long l = 0; l < lines; l++) pf[npf++] = (const char *)(tab + H4 * TOKEN(q_, t)) + 64 * l;            \
        if ((t) == 1 && g1d)                                                                                      \
            for (long l = 0; l < lines; l++) pf[npf++] = (const char *)(g1d + H4 * TOKEN(q_, 0)) + 64 * l;        \
    }
        for (long s = 0; s < n; s += MR) {
            long m = n - s < MR ? n - s : MR, T = 0;
            for (long r = 0; r < m; r++)
                if (lens[rows[s + r]] > T) T = lens[rows[s + r]];
            memset(buf, 0, sizeof(float) * 2 * MR * hs); /* h, c; a short last tile's spare rows stay 0 */
            for (long t = 0; t < T; t++) {
                /* prefetch (into L2) what the next step reads; after the last step, the next tile's steps 0 and
                   1 (neither has a product to hide them behind) */
                npf = 0;
                if (t + 1 < T) {
                    if (t > 0 || s == 0) PREFETCH_STEP(s, m, t + 1) /* else the previous tile did */
                } else if (s + MR < n) {
                    long m2 = n - s - MR < MR ? n - s - MR : MR;
                    PREFETCH_STEP(s + MR, m2, 0)
                    PREFETCH_STEP(s + MR, m2, 1)
                }
                int product = t > 1 || (t == 1 && !g1d); /* h_0 = 0: step 0 has none; step 1's is in g1 */
                if (product)
#if defined(REDUCED)
                    lowp_product(&lp, hb, hs, H, w, aux + 2 * d * np, np, gb, gs, pf, npf);
#else
                    matmul_tile(hb, hs, (const float *)w, H, np, gb, gs, pf, npf);
#endif
                else
                    for (long i = 0; i < npf; i++) _mm_prefetch(pf[i], PF_HINT);
                for (long r = 0; r < m; r++) {
                    long q = rows[s + r];
                    if (t >= lens[q]) continue; /* finished: its last h is already in out */
                    const float *g = product ? gb + r * gs : t ? g1d + H4 * TOKEN(q, 0) : zero;
                    gates_row(g, tab + H4 * TOKEN(q, t), cb + r * hs, hb + r * hs, H);
                    if (t == lens[q] - 1)
                        memcpy(out + (dest ? dest[s + r] : q) * 2 * H + d * H, hb + r * hs, sizeof(float) * H);
                }
            }
        }
#undef TOKEN
#undef PREFETCH_STEP
    }
#if defined(REDUCED)
    lowp_h_free(&lp);
#endif
    free(buf), free(pf);
    return 0;
}

#if !defined(REDUCED)
int FN(lstm_fused)(const float *wp, int64_t dir_stride, int64_t np, const float *table, const float *g1, int64_t V,
                   const int64_t *ids, const int64_t *starts, const int64_t *lens, const int64_t *rows, int64_t n,
                   int64_t H, float *out, const int64_t *dest) {
    return recurrence((const char *)wp, dir_stride * (long)sizeof(float), 0, np, table, g1, V, ids, starts, lens,
                      rows, n, H, out, dest);
}
#else
/* The same recurrence with the reduced product: wp, per direction dir_bytes apart, W_hh^T packed in KW-value
   words (kw = ceil(H / KW) word rows per panel); aux, per direction 2 np floats: the columns' scales, then
   (as int32) their accumulators' starting values. */
int FN(lstm_lowp)(const void *wp, int64_t dir_bytes, const float *aux, int64_t np, const float *table,
                  const float *g1, int64_t V, const int64_t *ids, const int64_t *starts, const int64_t *lens,
                  const int64_t *rows, int64_t n, int64_t H, float *out, const int64_t *dest) {
    return recurrence((const char *)wp, dir_bytes, aux, np, table, g1, V, ids, starts, lens, rows, n, H, out, dest);
}

void FN(lowp_layout)(int64_t *out) { out[0] = VW, out[1] = NR, out[2] = MR, out[3] = KW, out[4] = OFF; }
#endif

#if !defined(REDUCED)
/* Step 1's product G_1 = h_1 W_hh^T of every word w and direction, into g1 (2V, 4H): a sequence's h_1 depends on
   its first token alone (h_0 = c_0 = 0), so this is done once per model instead of once per sequence. Computed
   by the same gate pass and micro-kernel as in lstm_fused, so bit for bit what lstm_fused would compute. */
int FN(first_products)(const float *wp, int64_t dir_stride, int64_t np, const float *table, int64_t V, int64_t H,
                       float *g1) {
    long hs = (H + GU * VW - 1) / (GU * VW) * (GU * VW), gs = np + hs - H, H4 = 4 * H;
    size_t floats = 2 * MR * hs + (MR + 1) * gs, bytes = (sizeof(float) * floats + 63) / 64 * 64;
    float *buf = aligned_alloc(64, bytes);
    if (!buf) return -1;
    memset(buf, 0, bytes);
    float *hb = buf, *cb = buf + MR * hs, *zero = buf + 2 * MR * hs, *gb = zero + gs;
    for (long d = 0; d < 2; d++)
        for (long s = 0; s < V; s += MR) {
            long m = V - s < MR ? V - s : MR;
            memset(buf, 0, sizeof(float) * 2 * MR * hs);
            for (long r = 0; r < m; r++) gates_row(zero, table + (d * V + s + r) * H4, cb + r * hs, hb + r * hs, H);
            matmul_tile(hb, hs, wp + d * dir_stride, H, np, gb, gs, 0, 0);
            for (long r = 0; r < m; r++) memcpy(g1 + (d * V + s + r) * H4, gb + r * gs, sizeof(float) * H4);
        }
    free(buf);
    return 0;
}

/* The classifier, fc2(relu(fc1(x))), over n rows x (n, K) -> out (n, L), MR rows at a time with the hidden
   layer in L1: w1p: fc1's W^T (K x n1) packed like W_hh (n1p = n1 padded to 8 columns), b1: n1p floats
   (zero-padded); w2: (L, n1p) zero-padded rows, b2: L. Returns 0, or -1 when out of memory. */
int FN(mlp_head)(const float *x, int64_t n, int64_t K, const float *w1p, int64_t n1p, const float *b1,
                 const float *w2, const float *b2, int64_t L, float *out) {
    long gs = (n1p + VW - 1) / VW * VW;
    float *buf = aligned_alloc(64, (sizeof(float) * MR * (gs + K) + 63) / 64 * 64);
    if (!buf) return -1;
    float *g = buf, *pad = buf + MR * gs;
    memset(buf, 0, sizeof(float) * MR * gs);
    for (long s = 0; s < n; s += MR) {
        long m = n - s < MR ? n - s : MR;
        const float *xt = x + s * K;
        if (m < MR) { /* a short last tile: its rows, then zeros */
            memset(pad, 0, sizeof(float) * MR * K);
            memcpy(pad, xt, sizeof(float) * m * K);
            xt = pad;
        }
        matmul_tile(xt, K, w1p, K, n1p, g, gs, 0, 0);
        for (long r = 0; r < m; r++) {
            float *gr = g + r * gs;
            long j = 0;
            for (; j + VW <= n1p; j += VW) vstore(gr + j, vmax(vadd(vload(gr + j), vload(b1 + j)), vzero()));
            for (; j < n1p; j++) gr[j] = gr[j] + b1[j] > 0.0f ? gr[j] + b1[j] : 0.0f;
            for (long l = 0; l < L; l++) {
                vec acc = vzero();
                for (j = 0; j + VW <= n1p; j += VW) acc = vfmadd(vload(gr + j), vload(w2 + l * n1p + j), acc);
                float sum = vhsum(acc);
                for (; j < n1p; j++) sum += gr[j] * w2[l * n1p + j];
                out[(s + r) * L + l] = sum + b2[l];
            }
        }
    }
    free(buf);
    return 0;
}

/* The core's FMA peak for this build, timed by the caller: 12 independent FMA chains of iters steps each (2 VW 12
   iters flop), nothing else; the result depends on every chain, so none is optimised away. */
float FN(fma_loop)(int64_t iters, float x, float y) {
    vec a[12], vx = vset1(x), vy = vset1(y);
    for (int q = 0; q < 12; q++) a[q] = vset1((float)q);
    for (int64_t i = 0; i < iters; i++)
        for (int q = 0; q < 12; q++) a[q] = vfmadd(a[q], vx, vy);
    vec sum = a[0];
    for (int q = 1; q < 12; q++) sum = vadd(sum, a[q]);
    return vhsum(sum);
}

/* The layout this build packs W_hh in: lanes per vector, panel width, rows per tile, column multiple. */
void FN(fused_layout)(int64_t *out) { out[0] = VW, out[1] = NR, out[2] = MR, out[3] = 8; }

/* e^z elementwise (for tests of the vector exp against libm). */
void FN(vexp_array)(const float *z, float *out, int64_t n) {
    long i = 0;
    for (; i + VW <= n; i += VW) vstore(out + i, vexp(vload(z + i)));
    for (; i < n; i++) {
        float a[VW] = {0}, b[VW];
        a[0] = z[i];
        vstore(b, vexp(vload(a)));
        out[i] = b[0];
    }
}
#endif
