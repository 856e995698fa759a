/* The "c" cell's gate loop (distill/inference/kernels.py, compiled_cell): per step torch.bmm computes h W_hh^T for
   both directions, then this one pass does the gates. Built with -O3 -ffast-math and -march=native
   (-march=x86-64-v3, the AVX2 class, under BILSTM_DISTILL_CPU_ISA=avx2); sigmoid and tanh through expf, which gcc
   vectorizes. */
#include <math.h>
static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
/* g: (D, k, 4H) = h W_hh^T, gate order [i f o g]; the input part comes from the folded table (2V, 4H) by the
   step's ids (D, B) (backward ids already offset by V); c, h: (D, B, H); rows 0..k-1 are updated in place. */
void lstm_cell(const float *restrict g, const float *restrict table, const long *restrict ids, float *restrict c,
               float *restrict h, long D, long k, long B, long H) {  /* restrict: lets gcc vectorize */
    for (long d = 0; d < D; d++)
        for (long r = 0; r < k; r++) {
            const float *gr = g + (d * k + r) * 4 * H, *xr = table + ids[d * B + r] * 4 * H;
            float *cr = c + (d * B + r) * H, *hr = h + (d * B + r) * H;
            for (long j = 0; j < H; j++) {
                float i = sigm(gr[j] + xr[j]), f = sigm(gr[H + j] + xr[H + j]), o = sigm(gr[2 * H + j] + xr[2 * H + j]);
                float cand = 2.0f * sigm(2.0f * (gr[3 * H + j] + xr[3 * H + j])) - 1.0f;  /* tanh */
                float cn = f * cr[j] + i * cand;
                cr[j] = cn;
                hr[j] = o * (2.0f * sigm(2.0f * cn) - 1.0f);
            }
        }
}
