/* The optimised inference graph of an absolute-pT model (l1refit/deploy/optimize.py) as one compiled pass.
 *
 * Loaded by l1refit/deploy/native.py, which compiles it on first use with the machine's C compiler and
 * -march=native. Muons are processed in tiles of TB x LANES; within a tile each feature of LANES muons is one
 * vector register (GCC/Clang vector extensions: AVX-512, AVX2 or SSE/NEON width), so every layer is a
 * block of JB x TB independent fused multiply-adds per input feature with the weights broadcast from memory:
 * the activations of a tile never leave the L1 cache and the multiply-add units stay busy, which no sequence of
 * library matrix products on (batch x 32) matrices achieves. Same graph, same float32 arithmetic up to the
 * order of the sums (and the contraction into fused multiply-adds); tests/deploy/test_native.py compares it with
 * onnxruntime.
 */
#include <math.h>
#include <stdint.h>

/* The vector width and the register block follow the instruction set: a block holds JB x TB accumulators and TB
 * inputs in registers (32 on AVX-512, 16 on AVX2 and SSE/NEON) and needs >= 8 independent multiply-adds in flight. */
#if defined(__AVX512F__)
#define LANES 16
#define BLOCK_UNITS 6
#define BLOCK_VECTORS 4
#elif defined(__AVX__)
#define LANES 8
#define BLOCK_UNITS 3
#define BLOCK_VECTORS 4
#else
#define LANES 4
#define BLOCK_UNITS 3
#define BLOCK_VECTORS 4
#endif
#ifndef JB
#define JB BLOCK_UNITS /* output units per block (at most 6: dense() handles remainders up to 5) */
#endif
#if JB < 1 || JB > 6
#error "JB must be 1 to 6: dense() handles a remainder of up to 5 rows"
#endif
#ifndef TB
#define TB BLOCK_VECTORS /* vectors of muons per tile */
#endif
#define TILE (TB * LANES)
#define MAX_WIDTH 256 /* widest hidden layer */
#define MAX_INPUTS 8

typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(float))));

typedef struct {
    int32_t n_inputs, n_hidden;
    const int32_t *widths;        /* n_hidden widths */
    const float *const *weights;  /* n_hidden matrices [width_l][width_{l-1}] (Gemm with transB = 1) */
    const float *const *biases;   /* n_hidden vectors [width_l] */
    const float *w_last;          /* [3][width_last]: the output layer, de-normalisation and sign folded in */
    const float *l1_scale;        /* [3][n_inputs]: the L1 values of the inputs, LSBs */
    const float *l1_offset;       /* [3] */
    const float *wrap_in;         /* [3]: turns = raw . wrap_in + half */
    float half;
    const float *wrap_out;        /* [3]: out = raw + floor(turns) * wrap_out */
} l1refit_model;

static inline vf splat(float a) { return (vf){0} + a; }

#if defined(__AVX512F__) && LANES == 16
#include <immintrin.h>
/* one max instead of a compare and an and: the ReLU shares its ports with the multiply-adds */
static inline vf relu(vf x) { return (vf)_mm512_max_ps((__m512)x, _mm512_setzero_ps()); }
#else
static inline vf relu(vf x)
{
    vi positive = x > 0;
    return (vf)((vi)x & positive);
}
#endif

/* rows j .. j+R-1 of a layer for the TB vectors of a tile: R x TB independent accumulators (R constant once
 * inlined, so they live in registers); in, out: [width][TB] */
static inline __attribute__((always_inline)) void dense_rows(int R, const float *w, const float *b, int n_in, int j,
                                                            const vf *in, vf *out, int use_relu)
{
    vf acc[JB][TB];
    for (int u = 0; u < R; u++)
        for (int t = 0; t < TB; t++) acc[u][t] = splat(b[j + u]);
    for (int k = 0; k < n_in; k++) {
        vf x[TB];
        for (int t = 0; t < TB; t++) x[t] = in[k * TB + t];
        for (int u = 0; u < R; u++) {
            float weight = w[(j + u) * n_in + k];
            for (int t = 0; t < TB; t++) acc[u][t] += weight * x[t];
        }
    }
    for (int u = 0; u < R; u++)
        for (int t = 0; t < TB; t++) out[(j + u) * TB + t] = use_relu ? relu(acc[u][t]) : acc[u][t];
}

/* out[j] = act(sum_k W[j][k] in[k] + b[j]) for all n_out rows: blocks of JB rows, then one block of the rest */
static void dense(const float *w, const float *b, int n_in, int n_out, const vf *in, vf *out, int use_relu)
{
    int j = 0;
    for (; j + JB <= n_out; j += JB) dense_rows(JB, w, b, n_in, j, in, out, use_relu);
    switch (n_out - j) { /* the remainder is below JB: only those blocks are compiled */
#if JB > 1
    case 1: dense_rows(1, w, b, n_in, j, in, out, use_relu); break;
#endif
#if JB > 2
    case 2: dense_rows(2, w, b, n_in, j, in, out, use_relu); break;
#endif
#if JB > 3
    case 3: dense_rows(3, w, b, n_in, j, in, out, use_relu); break;
#endif
#if JB > 4
    case 4: dense_rows(4, w, b, n_in, j, in, out, use_relu); break;
#endif
#if JB > 5
    case 5: dense_rows(5, w, b, n_in, j, in, out, use_relu); break;
#endif
    default: break;
    }
}

#if defined(__GNUC__) && !defined(__clang__) && LANES == 16
#define SHUFFLES 1
typedef float vf_unaligned __attribute__((vector_size(LANES * sizeof(float)), aligned(4)));

/* 16 muons of 4 features, row-major, into one vector per feature: two rounds of two-source shuffles */
static inline void transpose_in4(const float *hw, vf *f0, vf *f1, vf *f2, vf *f3)
{
    const vi even = {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29};
    const vi odd = {2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31};
    const vi low = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const vi high = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    const vf_unaligned *v = (const vf_unaligned *)hw;
    vf v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    vf a01 = __builtin_shuffle(v0, v1, even), a23 = __builtin_shuffle(v0, v1, odd);
    vf b01 = __builtin_shuffle(v2, v3, even), b23 = __builtin_shuffle(v2, v3, odd);
    *f0 = __builtin_shuffle(a01, b01, low);
    *f1 = __builtin_shuffle(a01, b01, high);
    *f2 = __builtin_shuffle(a23, b23, low);
    *f3 = __builtin_shuffle(a23, b23, high);
}

/* one vector per output column of 16 muons into 16 rows of 3, row-major */
static inline void transpose_out3(vf c0, vf c1, vf c2, float *out)
{
    const vi pick0 = {0, 16, 0, 1, 17, 0, 2, 18, 0, 3, 19, 0, 4, 20, 0, 5};
    const vi put0 = {0, 1, 16, 3, 4, 17, 6, 7, 18, 9, 10, 19, 12, 13, 20, 15};
    const vi pick1 = {21, 0, 6, 22, 0, 7, 23, 0, 8, 24, 0, 9, 25, 0, 10, 26};
    const vi put1 = {0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15};
    const vi pick2 = {0, 11, 27, 0, 12, 28, 0, 13, 29, 0, 14, 30, 0, 15, 31, 0};
    const vi put2 = {26, 1, 2, 27, 4, 5, 28, 7, 8, 29, 10, 11, 30, 13, 14, 31};
    vf_unaligned *v = (vf_unaligned *)out;
    v[0] = __builtin_shuffle(__builtin_shuffle(c0, c1, pick0), c2, put0);
    v[1] = __builtin_shuffle(__builtin_shuffle(c0, c1, pick1), c2, put1);
    v[2] = __builtin_shuffle(__builtin_shuffle(c0, c1, pick2), c2, put2);
}
#else
#define SHUFFLES 0
#endif

/* n (<= TILE) muons: hw [n][n_inputs] -> out [n][3] */
static void run_tile(const l1refit_model *m, const float *hw, float *out, int n)
{
    vf inputs[MAX_INPUTS * TB], ping[MAX_WIDTH * TB], pong[MAX_WIDTH * TB], l1[3 * TB], raw[3 * TB];
    const float zero[3] = {0.0f, 0.0f, 0.0f};
    float *lanes = (float *)inputs;
    const int n_in = m->n_inputs;
    if (SHUFFLES && n_in == 4 && n == TILE) {
#if SHUFFLES
        for (int t = 0; t < TB; t++)
            transpose_in4(hw + t * LANES * 4, &inputs[t], &inputs[TB + t], &inputs[2 * TB + t], &inputs[3 * TB + t]);
#endif
    } else {
        for (int f = 0; f < n_in; f++)
            for (int i = 0; i < TILE; i++) lanes[f * TILE + i] = i < n ? hw[i * n_in + f] : 0.0f;
    }

    const vf *in = inputs;
    vf *next = ping, *spare = pong;
    int width = n_in;
    for (int layer = 0; layer < m->n_hidden; layer++) {
        dense(m->weights[layer], m->biases[layer], width, m->widths[layer], in, next, 1);
        width = m->widths[layer];
        in = next;
        next = spare;
        spare = (vf *)in;
    }
    dense(m->l1_scale, m->l1_offset, n_in, 3, inputs, l1, 0);
    dense(m->w_last, zero, width, 3, in, raw, 0);

    for (int t = 0; t < TB; t++) {
        vf r0 = raw[t] + l1[t], r1 = raw[TB + t] + l1[TB + t], r2 = raw[2 * TB + t] + l1[2 * TB + t];
        vf turns = r0 * m->wrap_in[0] + r1 * m->wrap_in[1] + r2 * m->wrap_in[2] + m->half;
        vf k;
        for (int i = 0; i < LANES; i++) k[i] = floorf(turns[i]);
        vf o0 = k * m->wrap_out[0] + r0, o1 = k * m->wrap_out[1] + r1, o2 = k * m->wrap_out[2] + r2;
#if SHUFFLES
        if (n == TILE) {
            transpose_out3(o0, o1, o2, out + t * LANES * 3);
            continue;
        }
#endif
        for (int i = 0; i < LANES && t * LANES + i < n; i++) {
            float *row = out + (t * LANES + i) * 3;
            row[0] = o0[i];
            row[1] = o1[i];
            row[2] = o2[i];
        }
    }
}

/* 0, or -1 when the model does not fit the kernel's buffers (then nothing is written) */
int l1refit_mlp(const l1refit_model *m, const float *hw, float *out, int64_t n)
{
    if (m->n_inputs < 1 || m->n_inputs > MAX_INPUTS || m->n_hidden < 1) return -1;
    for (int l = 0; l < m->n_hidden; l++)
        if (m->widths[l] < 1 || m->widths[l] > MAX_WIDTH) return -1;
    for (int64_t start = 0; start < n; start += TILE) {
        int64_t left = n - start;
        run_tile(m, hw + start * m->n_inputs, out + start * 3, left < TILE ? (int)left : TILE);
    }
    return 0;
}

int l1refit_mlp_limits(int32_t *max_inputs, int32_t *max_width, int32_t *tile)
{
    *max_inputs = MAX_INPUTS;
    *max_width = MAX_WIDTH;
    *tile = TILE;
    return 0;
}
