/* One pass over a layer's FP32 tensor and its integers: the statistics deployed-mode analysis folds.
 *
 * Hand-written because no library fuses dequantize, subtract and six reductions over two tensors held in different
 * memory layouts: onnxruntime and numpy stream every intermediate through memory (about ten passes per value,
 * docs/benchmarks.md), which made these statistics the bottleneck of `qwb analyze --kernels deployed`.
 *
 * pair_stats(x, m, q, geometry, scale, zero_point, lo, hi, xx, ee) -> (yy, emax, emin, esum, outside)
 *   x: a C-contiguous float32 buffer holding the FP32 layer tensor; m: None or a float32 buffer subtracted from x
 *   first (a fused residual Add read as out - sum); q: a buffer of the layer's integers (uint8, int8, uint16,
 *   int16), or float32 values compared as they are (the exact simulation's tensors: scale and zero point unused). geometry = (shape, x strides, x offset, m strides, m offset, q strides, q offset, group, group offset)
 *   walks the three together (byte strides and offsets, so each is read in its own layout; checked against the
 *   buffers); y = float(q - zero_point) * scale, e = y - (x - m), in float32 exactly as DequantizeLinear and Sub
 *   compute them. An element's index into the float64 sums xx and ee is group offset + sum(index[d] * group[d]).
 *   lo, hi: the layer's quantization range.
 *   Returns the sum of y*y, the largest and smallest e (NaN if any e is NaN), the sum of e, and how many values of
 *   x - m lie outside [lo, hi] (float32 bounds; NaN is never outside).
 *   Sums run in float32 over at most 1024 values (a value's lane: over at most 64 rows), then in float64.
 * The GIL is released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAXDIM 8

typedef struct {
    double yy, esum;
    float emax, emin;
    float lo, hi;           /* the layer's quantization range: values of x - m outside it are counted */
    long long outside;
    int nan;
} Totals;

typedef struct {
    const char *x, *m, *q;
    Py_ssize_t ndim, shape[MAXDIM], sx[MAXDIM], sm[MAXDIM], sq[MAXDIM], g[MAXDIM];
    Py_ssize_t offset, item; /* item: the integers' size in bytes */
    float scale;
    int zp;
    double *xx, *ee;
} Job;

/* The two innermost dimensions form a tile of rows; rows are cut into chunks of at most CHUNK values, strided ones
   gathered into contiguous buffers first, so every value goes through the same loops, which the compiler
   vectorizes. Sums run in float32 over at most CHUNK values (a chunk, or one value's lane over FLUSH rows) and
   are then added in float64: float32 throughput, float64 accuracy where it matters. */
#define CHUNK 256
#define SPAN 1024 /* values per chunk call where no gathering buffer bounds it */
#define FLUSH 64
#define LANES 4096 /* per-value sums of rows up to this long stay in float lanes */

/* Chunks may assume finite math (it lets the compiler vectorize the extremes): a NaN never reaches a result,
   as pair_stats reports NaN extremes from the e.e sums, and infinities compare as they should at run time.
   On x86-64 with GCC each chunk function is also built for AVX2 and picked at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CHUNK_ATTR __attribute__((noinline, optimize("finite-math-only"), target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define CHUNK_ATTR __attribute__((noinline, optimize("finite-math-only")))
#else
#define CHUNK_ATTR
#endif

/* the compared value: integers dequantized as DequantizeLinear does, float32 values as they are (the exact
   simulation's tensors) */
#define YVALUE(v) _Generic((v), float: (v), default: (float)((int)(v) - zp) * scale)

/* one contiguous chunk: x.x and e.e into lxx/lee per value (PER_VALUE) or into lxx[0]/lee[0] */
#define CHUNK_FN(NAME, T, HAS_M, PER_VALUE)                                                                   \
    CHUNK_ATTR static void NAME(const float *xp, const float *mp, const T *qp, Py_ssize_t n, float scale,     \
                                int zp, float *lxx, float *lee, Totals *t)                                    \
    {                                                                                                         \
        float sxx = 0, see = 0, yy = 0, es = 0, emax = t->emax, emin = t->emin;                               \
        const float lo = t->lo, hi = t->hi;                                                                   \
        int outside = 0;                                                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                  \
            float xv = HAS_M ? xp[i] - mp[i] : xp[i];                                                         \
            float y = YVALUE(qp[i]);                                                                          \
            float d = y - xv;                                                                                 \
            if (PER_VALUE) {                                                                                  \
                lxx[i] += xv * xv;                                                                            \
                lee[i] += d * d;                                                                              \
            } else {                                                                                          \
                sxx += xv * xv;                                                                               \
                see += d * d;                                                                                 \
            }                                                                                                 \
            yy += y * y;                                                                                      \
            es += d;                                                                                          \
            emax = d > emax ? d : emax;                                                                       \
            emin = d < emin ? d : emin;                                                                       \
            outside += (xv > hi) + (xv < lo);                                                                 \
        }                                                                                                     \
        if (!(PER_VALUE)) {                                                                                   \
            lxx[0] += sxx;                                                                                    \
            lee[0] += see;                                                                                    \
        }                                                                                                     \
        t->yy += yy;                                                                                          \
        t->esum += es;                                                                                        \
        t->emax = emax;                                                                                       \
        t->emin = emin;                                                                                       \
        t->outside += outside;                                                                                \
    }

/* one row of the tile for one integer type: chunks, gathered where strided */
#define ROW(NAME, T)                                                                                          \
    CHUNK_FN(NAME##_s, T, 0, 0)                                                                               \
    CHUNK_FN(NAME##_sm, T, 1, 0)                                                                              \
    CHUNK_FN(NAME##_v, T, 0, 1)                                                                               \
    CHUNK_FN(NAME##_vm, T, 1, 1)                                                                              \
    static void NAME(const char *x, const char *m, const char *q, Py_ssize_t n, Py_ssize_t sx, Py_ssize_t sm, \
                     Py_ssize_t sq, int per_value, float scale, int zp, float *lxx, float *lee, Totals *t)    \
    {                                                                                                         \
        float xb[CHUNK], mb[CHUNK];                                                                 \
        T qb[CHUNK];                                                                                          \
        for (Py_ssize_t s = 0; s < n; s += CHUNK) {                                                           \
            Py_ssize_t k = n - s < CHUNK ? n - s : CHUNK;                                                     \
            const float *xp = (const float *)(x + s * sx), *mp = m ? (const float *)(m + s * sm) : NULL;      \
            const T *qp = (const T *)(q + s * sq);                                                            \
            if (sx != 4) {                                                                                    \
                for (Py_ssize_t i = 0; i < k; i++)                                                            \
                    xb[i] = *(const float *)(x + (s + i) * sx);                                               \
                xp = xb;                                                                                      \
            }                                                                                                 \
            if (m && sm != 4) {                                                                               \
                for (Py_ssize_t i = 0; i < k; i++)                                                            \
                    mb[i] = *(const float *)(m + (s + i) * sm);                                               \
                mp = mb;                                                                                      \
            }                                                                                                 \
            if (sq != (Py_ssize_t)sizeof(T)) {                                                                \
                for (Py_ssize_t i = 0; i < k; i++)                                                            \
                    qb[i] = *(const T *)(q + (s + i) * sq);                                                   \
                qp = qb;                                                                                      \
            }                                                                                                 \
            float *ax = per_value ? lxx + s : lxx, *ae = per_value ? lee + s : lee;                           \
            if (per_value && mp)                                                                              \
                NAME##_vm(xp, mp, qp, k, scale, zp, ax, ae, t);                                            \
            else if (per_value)                                                                               \
                NAME##_v(xp, mp, qp, k, scale, zp, ax, ae, t);                                             \
            else if (mp)                                                                                      \
                NAME##_sm(xp, mp, qp, k, scale, zp, ax, ae, t);                                            \
            else                                                                                              \
                NAME##_s(xp, mp, qp, k, scale, zp, ax, ae, t);                                             \
        }                                                                                                     \
    }

/* rows of n0 <= CHUNK / 2 values whose FP32 values follow each other (NCHWc blocks: one pixel's B channels per
   row, the next pixel right after): several rows per chunk, their integers gathered row by row; lane p of a chunk
   is value p % n0 of a row */
#define PACKED(NAME, T)                                                                                       \
    static void NAME##_packed(const char *x, const char *m, const char *q, Py_ssize_t n1, Py_ssize_t n0,      \
                              Py_ssize_t sq1, Py_ssize_t sq0, float scale, int zp, double *xx, double *ee,    \
                              Totals *t)                                                                      \
    {                                                                                                         \
        float lxx[CHUNK], lee[CHUNK];                                                               \
        T qb[CHUNK];                                                                                          \
        Py_ssize_t per = CHUNK / n0, width = per * n0, chunks = 0;                                            \
        memset(lxx, 0, sizeof lxx);                                                                           \
        memset(lee, 0, sizeof lee);                                                                           \
        for (Py_ssize_t r = 0; r < n1; r += per) {                                                            \
            Py_ssize_t k = n1 - r < per ? n1 - r : per;                                                       \
            for (Py_ssize_t i = 0; i < k; i++) {                                                              \
                const char *qr = q + (r + i) * sq1;                                                           \
                if (sq0 == (Py_ssize_t)sizeof(T) && sizeof(T) * n0 == 16)                                     \
                    memcpy(qb + i * n0, qr, 16); /* a constant size: one move, not a call */                 \
                else if (sq0 == (Py_ssize_t)sizeof(T) && sizeof(T) * n0 == 8)                                 \
                    memcpy(qb + i * n0, qr, 8);                                                               \
                else if (sq0 == (Py_ssize_t)sizeof(T) && sizeof(T) * n0 == 32)                                \
                    memcpy(qb + i * n0, qr, 32);                                                              \
                else if (sq0 == (Py_ssize_t)sizeof(T))                                                        \
                    memcpy(qb + i * n0, qr, sizeof(T) * n0);                                                  \
                else                                                                                          \
                    for (Py_ssize_t c = 0; c < n0; c++)                                                       \
                        qb[i * n0 + c] = *(const T *)(qr + c * sq0);                                          \
            }                                                                                                 \
            const float *xp = (const float *)x + r * n0, *mp = m ? (const float *)m + r * n0 : NULL;          \
            if (mp)                                                                                           \
                NAME##_vm(xp, mp, qb, k * n0, scale, zp, lxx, lee, t);                                     \
            else                                                                                              \
                NAME##_v(xp, mp, qb, k * n0, scale, zp, lxx, lee, t);                                      \
            if (++chunks == FLUSH || r + k >= n1) {                                                           \
                for (Py_ssize_t p = 0; p < width; p++) {                                                      \
                    xx[p % n0] += lxx[p];                                                                     \
                    ee[p % n0] += lee[p];                                                                     \
                }                                                                                             \
                memset(lxx, 0, sizeof lxx);                                                                   \
                memset(lee, 0, sizeof lee);                                                                   \
                chunks = 0;                                                                                   \
            }                                                                                                 \
        }                                                                                                     \
    }

ROW(row_u8, uint8_t)
ROW(row_i8, int8_t)
ROW(row_u16, uint16_t)
ROW(row_i16, int16_t)
PACKED(row_u8, uint8_t)
PACKED(row_i8, int8_t)
PACKED(row_u16, uint16_t)
PACKED(row_i16, int16_t)

typedef void (*PackedFn)(const char *, const char *, const char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                         float, int, double *, double *, Totals *);

static int block8_on = 0; /* the block kernel below is built, the CPU has AVX2, and block8(False) did not turn it off */

/* rows of 8 or 16 values (NCHWc blocks walked block by block: one pixel's block channels per row, the next pixel
   right after) against integers read 8 at a time from rows sq1 bytes apart: each 8 channels' sums held in one AVX2
   register across FLUSH rows. Written with intrinsics because GCC neither vectorized the plain loop with the lanes
   in registers (2.5 to 3.4 ns per value) nor widened 8 integers to 8 int32 in one instruction from its vector
   extensions; picked at run time where the CPU has AVX2 (elsewhere the packed rows above). */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_BLOCK8 1

#define BLOCK8(NAME, T, WIDEN)                                                                                \
    __attribute__((target("avx2"))) static void NAME##_block8(                                                \
        const float *x, const float *m, const char *q, Py_ssize_t n1, Py_ssize_t n0, Py_ssize_t sq1,          \
        float scale, int zp, double *xx, double *ee, Totals *t)                                               \
    {                                                                                                         \
        const __m256 sc = _mm256_set1_ps(scale), lo = _mm256_set1_ps(t->lo), hi = _mm256_set1_ps(t->hi);      \
        const __m256i z = _mm256_set1_epi32(zp);                                                              \
        __m256 emax = _mm256_set1_ps(t->emax), emin = _mm256_set1_ps(t->emin);                                \
        __m256i outside = _mm256_setzero_si256();                                                             \
        float lx[8], le[8], ly[8], ls[8];                                                                     \
        for (Py_ssize_t c = 0; c < n0; c += 8)                                                                \
            for (Py_ssize_t r0 = 0; r0 < n1; r0 += FLUSH) {                                                   \
                Py_ssize_t end = n1 - r0 < FLUSH ? n1 : r0 + FLUSH;                                           \
                __m256 sxx = _mm256_setzero_ps(), see = sxx, yy = sxx, es = sxx;                              \
                for (Py_ssize_t r = r0; r < end; r++) {                                                       \
                    __m256 xv = _mm256_loadu_ps(x + r * n0 + c);                                              \
                    if (m)                                                                                    \
                        xv = _mm256_sub_ps(xv, _mm256_loadu_ps(m + r * n0 + c));                              \
                    __m256i qi = WIDEN(q + r * sq1 + c * (Py_ssize_t)sizeof(T));                              \
                    __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(qi, z)), sc);                \
                    __m256 d = _mm256_sub_ps(y, xv);                                                          \
                    sxx = _mm256_add_ps(sxx, _mm256_mul_ps(xv, xv));                                          \
                    see = _mm256_add_ps(see, _mm256_mul_ps(d, d));                                            \
                    yy = _mm256_add_ps(yy, _mm256_mul_ps(y, y));                                              \
                    es = _mm256_add_ps(es, d);                                                                \
                    emax = _mm256_max_ps(d, emax); /* d > emax ? d : emax */                                  \
                    emin = _mm256_min_ps(d, emin);                                                            \
                    outside = _mm256_sub_epi32(outside,                                                       \
                                               _mm256_castps_si256(_mm256_cmp_ps(xv, hi, _CMP_GT_OQ)));       \
                    outside = _mm256_sub_epi32(outside,                                                       \
                                               _mm256_castps_si256(_mm256_cmp_ps(xv, lo, _CMP_LT_OQ)));       \
                }                                                                                             \
                _mm256_storeu_ps(lx, sxx);                                                                    \
                _mm256_storeu_ps(le, see);                                                                    \
                _mm256_storeu_ps(ly, yy);                                                                     \
                _mm256_storeu_ps(ls, es);                                                                     \
                for (int k = 0; k < 8; k++) {                                                                 \
                    xx[c + k] += lx[k];                                                                       \
                    ee[c + k] += le[k];                                                                       \
                    t->yy += ly[k];                                                                           \
                    t->esum += ls[k];                                                                         \
                }                                                                                             \
            }                                                                                                 \
        int32_t lo8[8];                                                                                       \
        _mm256_storeu_ps(lx, emax);                                                                           \
        _mm256_storeu_ps(le, emin);                                                                           \
        _mm256_storeu_si256((__m256i *)lo8, outside);                                                         \
        for (int k = 0; k < 8; k++) {                                                                         \
            t->emax = lx[k] > t->emax ? lx[k] : t->emax;                                                      \
            t->emin = le[k] < t->emin ? le[k] : t->emin;                                                      \
            t->outside += lo8[k];                                                                             \
        }                                                                                                     \
    }

#define WIDEN_U8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define WIDEN_I8(p) _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define WIDEN_U16(p) _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define WIDEN_I16(p) _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(p)))
BLOCK8(row_u8, uint8_t, WIDEN_U8)
BLOCK8(row_i8, int8_t, WIDEN_I8)
BLOCK8(row_u16, uint16_t, WIDEN_U16)
BLOCK8(row_i16, int16_t, WIDEN_I16)
#endif

typedef void (*Block8Fn)(const float *, const float *, const char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, float, int,
                         double *, double *, Totals *);

/* one value's elements gathered into a contiguous buffer: the FP32 or integer rows of one pixel */
#define GATHER(DST, SRC, TY, N1, N0, S1, S0)                                                                  \
    for (Py_ssize_t r_ = 0; r_ < (N1); r_++) {                                                                \
        const char *src_ = (SRC) + r_ * (S1);                                                                 \
        TY *dst_ = (DST) + r_ * (N0);                                                                         \
        if ((S0) == (Py_ssize_t)sizeof(TY) && sizeof(TY) * (N0) == 32)                                        \
            memcpy(dst_, src_, 32); /* a constant size: moves, not a call */                                  \
        else if ((S0) == (Py_ssize_t)sizeof(TY) && sizeof(TY) * (N0) == 64)                                   \
            memcpy(dst_, src_, 64);                                                                           \
        else if ((S0) == (Py_ssize_t)sizeof(TY))                                                              \
            memcpy(dst_, src_, sizeof(TY) * (N0));                                                            \
        else                                                                                                  \
            for (Py_ssize_t c_ = 0; c_ < (N0); c_++)                                                          \
                dst_[c_] = *(const TY *)(src_ + c_ * (S0));                                                   \
    }

/* the three innermost dimensions [pixels, blocks, channels of a block] of NCHWc FP32 against channels-last
   integers: the channels of up to LANES / channels pixels at a time in one row of float lanes (lane i holds
   channel i % channels; the integers read in order, once; the FP32 blocks gathered), folded every FLUSH rows */
#define PIXELS(NAME, T)                                                                                       \
    static void NAME##_pixels(const Job *j, const char *x, const char *m, const char *q, Py_ssize_t gbase,   \
                              Totals *t)                                                                      \
    {                                                                                                         \
        Py_ssize_t d2 = j->ndim - 3, d1 = j->ndim - 2, d0 = j->ndim - 1;                                      \
        Py_ssize_t n2 = j->shape[d2], n1 = j->shape[d1], n0 = j->shape[d0], lanes = n1 * n0;                 \
        Py_ssize_t per = LANES / lanes, width = per * lanes, rows = 0;                                       \
        float xb[LANES], mb[LANES], lxx[LANES], lee[LANES];                                                   \
        T qb[LANES];                                                                                          \
        /* one pixel's values in order, and pixels one after another: no gathering */                         \
        int xc = j->sx[d0] == 4 && (n1 == 1 || j->sx[d1] == 4 * n0) && j->sx[d2] == 4 * lanes;               \
        int mc = !m || (j->sm[d0] == 4 && (n1 == 1 || j->sm[d1] == 4 * n0) && j->sm[d2] == 4 * lanes);       \
        Py_ssize_t ts = (Py_ssize_t)sizeof(T);                                                                \
        int qc = j->sq[d0] == ts && (n1 == 1 || j->sq[d1] == ts * n0) && j->sq[d2] == ts * lanes;            \
        memset(lxx, 0, sizeof(float) * width);                                                                \
        memset(lee, 0, sizeof(float) * width);                                                                \
        for (Py_ssize_t p = 0; p < n2; p += per) {                                                            \
            Py_ssize_t k = n2 - p < per ? n2 - p : per;                                                       \
            const float *xp = (const float *)(x + p * j->sx[d2]);                                             \
            const float *mp = m ? (const float *)(m + p * j->sm[d2]) : NULL;                                  \
            const T *qp = (const T *)(q + p * j->sq[d2]);                                                     \
            for (Py_ssize_t i = 0; i < k; i++) {                                                              \
                if (!xc)                                                                                      \
                    GATHER(xb + i * lanes, x + (p + i) * j->sx[d2], float, n1, n0, j->sx[d1], j->sx[d0]);     \
                if (!mc)                                                                                      \
                    GATHER(mb + i * lanes, m + (p + i) * j->sm[d2], float, n1, n0, j->sm[d1], j->sm[d0]);     \
                if (!qc)                                                                                      \
                    GATHER(qb + i * lanes, q + (p + i) * j->sq[d2], T, n1, n0, j->sq[d1], j->sq[d0]);         \
            }                                                                                                 \
            if (!xc)                                                                                          \
                xp = xb;                                                                                      \
            if (!mc)                                                                                          \
                mp = mb;                                                                                      \
            if (!qc)                                                                                          \
                qp = qb;                                                                                      \
            for (Py_ssize_t s = 0; s < k * lanes; s += SPAN) {                                                \
                Py_ssize_t c = k * lanes - s < SPAN ? k * lanes - s : SPAN;                                   \
                if (mp)                                                                                       \
                    NAME##_vm(xp + s, mp + s, qp + s, c, j->scale, j->zp, lxx + s, lee + s, t);               \
                else                                                                                          \
                    NAME##_v(xp + s, NULL, qp + s, c, j->scale, j->zp, lxx + s, lee + s, t);                  \
            }                                                                                                 \
            if (++rows == FLUSH || p + k >= n2) {                                                             \
                for (Py_ssize_t i = 0; i < width; i += lanes)                                                 \
                    for (Py_ssize_t c = 0; c < lanes; c++) {                                                  \
                        j->xx[gbase + c] += lxx[i + c];                                                       \
                        j->ee[gbase + c] += lee[i + c];                                                       \
                    }                                                                                         \
                memset(lxx, 0, sizeof(float) * width);                                                        \
                memset(lee, 0, sizeof(float) * width);                                                        \
                rows = 0;                                                                                     \
            }                                                                                                 \
        }                                                                                                     \
    }

PIXELS(row_u8, uint8_t)
PIXELS(row_i8, int8_t)
PIXELS(row_u16, uint16_t)
PIXELS(row_i16, int16_t)
ROW(row_f32, float)
PACKED(row_f32, float)
PIXELS(row_f32, float)

typedef void (*PixelsFn)(const Job *, const char *, const char *, const char *, Py_ssize_t, Totals *);

/* whether the three innermost dimensions are [pixels, blocks, block channels] whose sums fill consecutive lanes */
static int pixel_tiles(const Job *j)
{
    if (j->ndim < 3)
        return 0;
    Py_ssize_t d2 = j->ndim - 3, d1 = j->ndim - 2, d0 = j->ndim - 1;
    return j->g[d2] == 0 && j->g[d0] == 1 && (j->shape[d1] == 1 || j->g[d1] == j->shape[d0]) &&
           j->shape[d1] * j->shape[d0] <= LANES;
}

typedef void (*RowFn)(const char *, const char *, const char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, int,
                      float, int, float *, float *, Totals *);

/* the tile of the two innermost dimensions (one row when the tensor has one dimension) at gbase */
static void tile(const Job *j, RowFn row, PackedFn packed, Block8Fn block8, const char *x, const char *m, const char *q, Py_ssize_t gbase, Totals *t)
{
    Py_ssize_t d0 = j->ndim - 1, d1 = j->ndim - 2;
    Py_ssize_t n0 = j->shape[d0], g0 = j->g[d0];
    Py_ssize_t n1 = d1 >= 0 ? j->shape[d1] : 1, g1 = d1 >= 0 ? j->g[d1] : 0;
    Py_ssize_t sx1 = d1 >= 0 ? j->sx[d1] : 0, sm1 = d1 >= 0 ? j->sm[d1] : 0, sq1 = d1 >= 0 ? j->sq[d1] : 0;
    float one_x = 0, one_e = 0;
    if (g0 == 1 && g1 == 0 && n0 <= CHUNK / 2 && j->sx[d0] == 4 && sx1 == 4 * n0 &&
        (!m || (j->sm[d0] == 4 && sm1 == 4 * n0))) {
        if (block8 && n0 % 8 == 0 && n0 <= 16 && j->sq[d0] == j->item)
            block8((const float *)x, (const float *)m, q, n1, n0, sq1, j->scale, j->zp, j->xx + gbase,
                   j->ee + gbase, t);
        else
            packed(x, m, q, n1, n0, sq1, j->sq[d0], j->scale, j->zp, j->xx + gbase, j->ee + gbase, t);
        return;
    }
    if (g0 <= 1 && (g0 == 0 || n0 <= LANES)) { /* float lanes, flushed every FLUSH rows that share them */
        float lxx[LANES], lee[LANES];
        Py_ssize_t lanes = g0 ? n0 : 1, every = g1 ? 1 : FLUSH;
        for (Py_ssize_t r = 0; r < n1; r += every) {
            Py_ssize_t rows = n1 - r < every ? n1 - r : every;
            memset(lxx, 0, sizeof(float) * lanes);
            memset(lee, 0, sizeof(float) * lanes);
            for (Py_ssize_t i = r; i < r + rows; i++)
                row(x + i * sx1, m ? m + i * sm1 : NULL, q + i * sq1, n0, j->sx[d0], j->sm[d0], j->sq[d0], (int)g0,
                    j->scale, j->zp, lxx, lee, t);
            double *xx = j->xx + gbase + r * g1, *ee = j->ee + gbase + r * g1;
            for (Py_ssize_t i = 0; i < lanes; i++) {
                xx[i] += lxx[i];
                ee[i] += lee[i];
            }
        }
        return;
    }
    for (Py_ssize_t i1 = 0; i1 < n1; i1++) { /* any other grouping: one value at a time */
        for (Py_ssize_t i0 = 0; i0 < n0; i0++) {
            one_x = one_e = 0;
            row(x + i1 * sx1 + i0 * j->sx[d0], m ? m + i1 * sm1 + i0 * j->sm[d0] : NULL,
                q + i1 * sq1 + i0 * j->sq[d0], 1, 4, 4, 1, 0, j->scale, j->zp, &one_x, &one_e, t);
            j->xx[gbase + i1 * g1 + i0 * g0] += one_x;
            j->ee[gbase + i1 * g1 + i0 * g0] += one_e;
        }
    }
}

static void run(const Job *j, RowFn row, PackedFn packed, Block8Fn block8, PixelsFn pixels, Totals *t)
{
    Py_ssize_t idx[MAXDIM] = {0};
    int pix = pixel_tiles(j);
    /* dimensions [0, outer) are walked here, the last three by pixels() or the last two (or one) by tile() */
    Py_ssize_t outer = j->ndim - (pix ? 3 : 2);
    for (Py_ssize_t d = 0; d < j->ndim; d++)
        if (j->shape[d] == 0)
            return;
    const char *x = j->x, *m = j->m, *q = j->q;
    Py_ssize_t gbase = j->offset;
    for (;;) {
        if (pix)
            pixels(j, x, m, q, gbase, t);
        else
            tile(j, row, packed, block8, x, m, q, gbase, t);
        Py_ssize_t d = outer - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < j->shape[d]) {
                x += j->sx[d];
                m = m ? m + j->sm[d] : NULL;
                q += j->sq[d];
                gbase += j->g[d];
                break;
            }
            idx[d] = 0;
            x -= j->sx[d] * (j->shape[d] - 1);
            m = m ? m - j->sm[d] * (j->shape[d] - 1) : NULL;
            q -= j->sq[d] * (j->shape[d] - 1);
            gbase -= j->g[d] * (j->shape[d] - 1);
        }
        if (d < 0)
            return;
    }
}

static const char *fmt(const Py_buffer *b)
{
    const char *f = b->format ? b->format : "B";
    return (f[0] == '<' || f[0] == '=' || f[0] == '@') ? f + 1 : f;
}

/* n ints from a sequence into out (out of range: a Python error) */
static int ints(PyObject *seq, Py_ssize_t n, Py_ssize_t *out, const char *what)
{
    if (!PySequence_Check(seq) || PySequence_Size(seq) != n) {
        PyErr_Format(PyExc_ValueError, "pair_stats: %s needs %zd ints", what, n);
        return -1;
    }
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *v = PySequence_GetItem(seq, d);
        out[d] = v ? PyLong_AsSsize_t(v) : -1;
        Py_XDECREF(v);
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* whether every element the geometry reaches lies inside the buffer */
static int inside(const Py_buffer *b, Py_ssize_t ndim, const Py_ssize_t *shape, const Py_ssize_t *strides,
                  Py_ssize_t off, Py_ssize_t item)
{
    Py_ssize_t lo = off, hi = off;
    for (Py_ssize_t d = 0; d < ndim; d++) {
        if (shape[d] == 0)
            return 1;
        if (strides[d] > 0)
            hi += strides[d] * (shape[d] - 1);
        else
            lo += strides[d] * (shape[d] - 1);
    }
    return lo >= 0 && hi + item <= b->len;
}

static PyObject *pair_stats(PyObject *self, PyObject *args)
{
    PyObject *xo, *mo, *qo, *geo, *xxo, *eeo;
    PyObject *shape_o, *xs_o, *ms_o, *qs_o, *g_o;
    Py_ssize_t xo_off, mo_off, qo_off, goff;
    double scale, lo, hi;
    int zp;
    if (!PyArg_ParseTuple(args, "OOOO!diddOO", &xo, &mo, &qo, &PyTuple_Type, &geo, &scale, &zp, &lo, &hi, &xxo,
                          &eeo))
        return NULL;
    if (!PyArg_ParseTuple(geo, "OOnOnOnOn", &shape_o, &xs_o, &xo_off, &ms_o, &mo_off, &qs_o, &qo_off, &g_o, &goff))
        return NULL;
    Py_buffer xb = {0}, mb = {0}, qb = {0}, xxb = {0}, eeb = {0};
    int have_m = mo != Py_None, ok = 0;
    PyObject *res = NULL;
    Job j;
    memset(&j, 0, sizeof j);
    const int base = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    if (PyObject_GetBuffer(xo, &xb, base) < 0)
        return NULL;
    if (have_m && PyObject_GetBuffer(mo, &mb, base) < 0)
        goto done_x;
    if (PyObject_GetBuffer(qo, &qb, base) < 0)
        goto done_m;
    if (PyObject_GetBuffer(xxo, &xxb, base | PyBUF_WRITABLE) < 0)
        goto done_q;
    if (PyObject_GetBuffer(eeo, &eeb, base | PyBUF_WRITABLE) < 0)
        goto done_xx;
    RowFn row = NULL;
    PackedFn packed = NULL;
    Block8Fn block8 = NULL;
    PixelsFn pixels = NULL;
    const char *qf = fmt(&qb);
    Py_ssize_t qitem = 1;
    if (strcmp(qf, "B") == 0)
        row = row_u8, packed = row_u8_packed, pixels = row_u8_pixels;
    else if (strcmp(qf, "b") == 0)
        row = row_i8, packed = row_i8_packed, pixels = row_i8_pixels;
    else if (strcmp(qf, "H") == 0)
        row = row_u16, packed = row_u16_packed, pixels = row_u16_pixels, qitem = 2;
    else if (strcmp(qf, "h") == 0)
        row = row_i16, packed = row_i16_packed, pixels = row_i16_pixels, qitem = 2;
    else if (strcmp(qf, "f") == 0)
        row = row_f32, packed = row_f32_packed, pixels = row_f32_pixels, qitem = 4;
#ifdef HAVE_BLOCK8
    if (block8_on && qitem == 1)
        block8 = strcmp(qf, "B") == 0 ? row_u8_block8 : row_i8_block8;
    else if (block8_on && qitem == 2)
        block8 = strcmp(qf, "H") == 0 ? row_u16_block8 : row_i16_block8;
#endif
    j.item = qitem;
    if (!row || strcmp(fmt(&xb), "f") != 0 || (have_m && strcmp(fmt(&mb), "f") != 0) ||
        strcmp(fmt(&xxb), "d") != 0 || strcmp(fmt(&eeb), "d") != 0) {
        PyErr_SetString(PyExc_TypeError, "pair_stats: x and m float32, q (u)int8/16 or float32, xx and ee float64");
        goto done_ee;
    }
    Py_ssize_t ndim = PySequence_Check(shape_o) ? PySequence_Size(shape_o) : -1;
    if (ndim < 1 || ndim > MAXDIM) {
        PyErr_Format(PyExc_ValueError, "pair_stats: 1 to %d dimensions", MAXDIM);
        goto done_ee;
    }
    j.ndim = ndim;
    if (ints(shape_o, ndim, j.shape, "shape") < 0 || ints(xs_o, ndim, j.sx, "x strides") < 0 ||
        (have_m && ints(ms_o, ndim, j.sm, "m strides") < 0) || ints(qs_o, ndim, j.sq, "q strides") < 0 ||
        ints(g_o, ndim, j.g, "group") < 0)
        goto done_ee;
    Py_ssize_t groups = xxb.len / (Py_ssize_t)sizeof(double), top = goff;
    for (Py_ssize_t d = 0; d < ndim; d++) {
        if (j.shape[d] < 0 || j.g[d] < 0) {
            PyErr_SetString(PyExc_ValueError, "pair_stats: negative shape or group step");
            goto done_ee;
        }
        top += j.g[d] * (j.shape[d] > 0 ? j.shape[d] - 1 : 0);
    }
    if (!inside(&xb, ndim, j.shape, j.sx, xo_off, 4) || (have_m && !inside(&mb, ndim, j.shape, j.sm, mo_off, 4)) ||
        !inside(&qb, ndim, j.shape, j.sq, qo_off, qitem)) {
        PyErr_SetString(PyExc_ValueError, "pair_stats: the geometry reaches outside x, m or q");
        goto done_ee;
    }
    if (goff < 0 || top >= groups || eeb.len != xxb.len) {
        PyErr_SetString(PyExc_ValueError, "pair_stats: xx and ee too small for the group indices");
        goto done_ee;
    }
    j.x = (const char *)xb.buf + xo_off;
    j.m = have_m ? (const char *)mb.buf + mo_off : NULL;
    j.q = (const char *)qb.buf + qo_off;
    j.offset = goff;
    j.scale = (float)scale;
    j.zp = zp;
    j.xx = xxb.buf;
    j.ee = eeb.buf;
    Totals t = {0, 0, -INFINITY, INFINITY, (float)lo, (float)hi, 0, 0};
    Py_BEGIN_ALLOW_THREADS
    run(&j, row, packed, block8, pixels, &t);
    for (Py_ssize_t i = 0; i < groups; i++) /* e.e is NaN exactly where some e is (inf.inf is not) */
        t.nan |= isnan(j.ee[i]);
    Py_END_ALLOW_THREADS
    if (t.nan)
        t.emax = t.emin = NAN;
    ok = 1;
    res = Py_BuildValue("ddddL", t.yy, (double)t.emax, (double)t.emin, t.esum, t.outside);
done_ee:
    PyBuffer_Release(&eeb);
done_xx:
    PyBuffer_Release(&xxb);
done_q:
    PyBuffer_Release(&qb);
done_m:
    if (have_m)
        PyBuffer_Release(&mb);
done_x:
    PyBuffer_Release(&xb);
    return ok ? res : NULL;
}

/* block8([on]) -> whether NCHWc rows of 8 or 16 integers take the AVX2 block kernel (then a blocked tensor is best
   walked block by block at any image size); on: turn it off (tests of the other walks) or back on where the CPU
   has AVX2 */
static PyObject *block8(PyObject *self, PyObject *args)
{
    int on = -1;
    if (!PyArg_ParseTuple(args, "|p", &on))
        return NULL;
#ifdef HAVE_BLOCK8
    if (on >= 0)
        block8_on = on && __builtin_cpu_supports("avx2");
#endif
    return PyBool_FromLong(block8_on);
}

static PyMethodDef methods[] = {
    {"block8", block8, METH_VARARGS, "Whether the AVX2 block kernel is used; block8(False) turns it off."},
    {"pair_stats", pair_stats, METH_VARARGS, "x.x and e.e per group, y.y, max, min and sum of e in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pairstats", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pairstats(void)
{
#ifdef HAVE_BLOCK8
    block8_on = __builtin_cpu_supports("avx2") != 0;
#endif
    return PyModule_Create(&module);
}
