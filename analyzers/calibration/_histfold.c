/* StreamingHistogram.update's two passes over a tensor, compiled: the range check and the fold into the counts.
 *
 * The numpy path (analyzers/calibration/histogram.py) makes about twelve passes per value per chunk and takes the
 * GIL back at every call, so two folding threads barely beat one. These read each value once per pass and release
 * the GIL, so the folding threads run in parallel beside onnxruntime.
 *
 * minmax(x, mask) -> (lo, hi, clean)
 *   x: a C-contiguous float32 or float64 buffer (not empty). clean: whether every value v has |v| < mask (no NaN,
 *   no infinity, no mask magnitude); when it is, lo and hi are x's smallest and largest values (numpy's x.min() and
 *   x.max(), up to the sign of a zero), and when it is not they mean nothing.
 *
 * fold(x, counts, exp, start) -> (zeros, sum, sum_sq)
 *   Adds every value v of x (float32 or float64, C-contiguous, all finite) to counts (int64, writable) at
 *   floor(v * 2**-exp) - start, computed in double: scaling a float32 or float64 value by a power of two is the same
 *   IEEE operation numpy does (exact for float32 values, as their exponents stay far from double's limits), floor
 *   is exact, and the subtraction is exact for in-range bins (checked as integers where the bin numbers outgrow 52
 *   bits). Returns the number of exact zeros and the float64 sums of v and v*v. A value outside the counts raises
 *   ValueError (numpy's bincount path fails loudly too; as there, the counts are then partly updated: the caller's
 *   _fit makes this a bug, not a state to recover from).
 * Both release the GIL while they run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* On x86-64 with GCC the hot loops are also built for AVX2 (vroundpd for floor, 4 doubles per op) and picked at
   load time; the default build is plain SSE2. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT __attribute__((noinline, target_clones("avx2", "default")))
#elif defined(__GNUC__)
#define HOT __attribute__((noinline))
#else
#define HOT
#endif
/* finite math lets GCC vectorize the min/max reductions; only for loops that see no NaN or infinity, or whose
   results are not used when they do */
#if defined(__GNUC__) && !defined(__clang__)
#define FINITE __attribute__((optimize("finite-math-only")))
#else
#define FINITE
#endif

#define BLOCK 1024    /* values per block: bin numbers are computed for a block, checked, then counted */
#define TABLES 4      /* interleaved uint32 count tables: a run of equal bins is four chains of increments, not one */
#define DIRECT 16384  /* calls with fewer values count straight into the int64 counts (no tables to clear and add) */

/* -- range check ---------------------------------------------------------------------------------------------- */

/* Min and max under finite math (a NaN makes them meaningless, but it also makes the array unclean, and the caller
   then takes numpy's path); NaN, infinities and mask magnitudes are counted on the bits, which finite math leaves
   alone: for |v| as an unsigned integer the order is the float order, and NaN lies above +inf. */
#define MINMAX_FN(NAME, T, U, ABSBITS)                                                                          \
    HOT FINITE static void NAME(const T *x, Py_ssize_t n, T mask, double *lo, double *hi, Py_ssize_t *bad)     \
    {                                                                                                           \
        T mn = x[0], mx = x[0];                                                                                 \
        U mbits;                                                                                                \
        memcpy(&mbits, &mask, sizeof mbits);                                                                    \
        Py_ssize_t nb = 0;                                                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                    \
            T v = x[i];                                                                                         \
            U b;                                                                                                \
            memcpy(&b, x + i, sizeof b);                                                                        \
            mn = v < mn ? v : mn;                                                                               \
            mx = v > mx ? v : mx;                                                                               \
            nb += (b & ABSBITS) >= mbits;                                                                       \
        }                                                                                                       \
        *lo = (double)mn;                                                                                       \
        *hi = (double)mx;                                                                                       \
        *bad = nb;                                                                                              \
    }

MINMAX_FN(minmax_f, float, uint32_t, UINT32_C(0x7fffffff))
MINMAX_FN(minmax_d, double, uint64_t, UINT64_C(0x7fffffffffffffff))

/* -- fold ----------------------------------------------------------------------------------------------------- */

/* One block: bin numbers (relative to start) into idx, zeros and sums added; returns whether all are in range.
   Only for grids whose absolute bin numbers fit 52 bits: then floor(v * scale) - startd is exact for every bin
   in range, and a value out of range stays out of range after rounding (rounding is monotonic and 0 and bins are
   representable). */
#define BLOCK_FN(NAME, T)                                                                                       \
    HOT FINITE static int NAME(const T *x, Py_ssize_t n, double scale, double startd, double binsd, int32_t *idx,     \
                        Py_ssize_t *zeros, double *sum, double *sum_sq)                                         \
    {                                                                                                           \
        double s = 0, ss = 0, dmin = 0, dmax = 0;                                                               \
        Py_ssize_t z = 0;                                                                                       \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                    \
            double v = (double)x[i];                                                                            \
            s += v;                                                                                             \
            ss += v * v;                                                                                        \
            z += v == 0;                                                                                        \
            double d = floor(v * scale) - startd;                                                               \
            dmin = d < dmin ? d : dmin;                                                                         \
            dmax = d > dmax ? d : dmax;                                                                         \
            d = d < 0 ? 0 : d;                                                                                  \
            d = d < binsd ? d : 0; /* out-of-range values are caught by dmin/dmax, never counted */           \
            idx[i] = (int32_t)d;                                                                                \
        }                                                                                                       \
        *zeros += z;                                                                                            \
        *sum += s;                                                                                              \
        *sum_sq += ss;                                                                                          \
        return dmin >= 0 && dmax < binsd;                                                                       \
    }

BLOCK_FN(block_f, float)
BLOCK_FN(block_d, double)

/* The rare grids whose bin numbers outgrow 52 bits: integer subtraction after the (range-checked) cast, one value
   at a time, as numpy's cast-then-subtract path does. */
#define WIDE_FN(NAME, T)                                                                                        \
    static int NAME(const T *x, Py_ssize_t n, double scale, int64_t start, int64_t bins, int32_t *idx,         \
                    Py_ssize_t *zeros, double *sum, double *sum_sq)                                             \
    {                                                                                                           \
        double s = 0, ss = 0;                                                                                   \
        Py_ssize_t z = 0;                                                                                       \
        int ok = 1;                                                                                             \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                    \
            double v = (double)x[i];                                                                            \
            s += v;                                                                                             \
            ss += v * v;                                                                                        \
            z += v == 0;                                                                                        \
            double q = floor(v * scale);                                                                        \
            int64_t k = 0;                                                                                      \
            if (q >= -9.2e18 && q <= 9.2e18)                                                                    \
                k = (int64_t)q - start;                                                                         \
            else                                                                                                \
                ok = 0;                                                                                         \
            if (k < 0 || k >= bins) {                                                                           \
                ok = 0;                                                                                         \
                k = 0;                                                                                          \
            }                                                                                                   \
            idx[i] = (int32_t)k;                                                                                \
        }                                                                                                       \
        *zeros += z;                                                                                            \
        *sum += s;                                                                                              \
        *sum_sq += ss;                                                                                          \
        return ok;                                                                                              \
    }

WIDE_FN(wide_f, float)
WIDE_FN(wide_d, double)

typedef int (*BlockFn)(const void *, Py_ssize_t, double, double, double, int32_t *, Py_ssize_t *, double *,
                       double *);
typedef int (*WideFn)(const void *, Py_ssize_t, double, int64_t, int64_t, int32_t *, Py_ssize_t *, double *,
                      double *);

/* Counts the array into tables (or straight into counts when tables is NULL); 0 when a value is outside the grid
   (each block is checked before any of it is counted). */
static int fold_all(const char *x, Py_ssize_t n, size_t item, int wide, BlockFn block, WideFn widefn, double scale,
                    int64_t start, int64_t bins, uint32_t *tables, int64_t *counts, Py_ssize_t *zeros, double *sum,
                    double *sum_sq)
{
    int32_t idx[BLOCK];
    const Py_ssize_t stride = (Py_ssize_t)bins;
    const double startd = (double)start, binsd = (double)bins;
    for (Py_ssize_t b = 0; b < n; b += BLOCK) {
        Py_ssize_t k = n - b < BLOCK ? n - b : BLOCK;
        const void *xp = x + (size_t)b * item;
        int ok = wide ? widefn(xp, k, scale, start, bins, idx, zeros, sum, sum_sq)
                      : block(xp, k, scale, startd, binsd, idx, zeros, sum, sum_sq);
        if (!ok)
            return 0;
        if (tables) {
            Py_ssize_t i = 0;
            for (; i + TABLES <= k; i += TABLES) {
                tables[idx[i]]++;
                tables[stride + idx[i + 1]]++;
                tables[2 * stride + idx[i + 2]]++;
                tables[3 * stride + idx[i + 3]]++;
            }
            for (; i < k; i++)
                tables[idx[i]]++;
        } else {
            for (Py_ssize_t i = 0; i < k; i++)
                counts[idx[i]]++;
        }
    }
    return 1;
}

static const char *fmt(const Py_buffer *b)
{
    const char *f = b->format ? b->format : "B";
    return (f[0] == '<' || f[0] == '=' || f[0] == '@') ? f + 1 : f;
}

/* float32 ('f') -> 4, float64 ('d') -> 8, anything else -> 0 */
static size_t float_item(const Py_buffer *b)
{
    const char *f = fmt(b);
    if (strcmp(f, "f") == 0 && b->itemsize == 4)
        return 4;
    if (strcmp(f, "d") == 0 && b->itemsize == 8)
        return 8;
    return 0;
}

static PyObject *minmax(PyObject *self, PyObject *args)
{
    PyObject *xo;
    double mask;
    if (!PyArg_ParseTuple(args, "Od", &xo, &mask))
        return NULL;
    Py_buffer xb;
    if (PyObject_GetBuffer(xo, &xb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    size_t item = float_item(&xb);
    if (!item || xb.len == 0) {
        PyBuffer_Release(&xb);
        PyErr_SetString(PyExc_TypeError, "minmax: x must be non-empty float32 or float64");
        return NULL;
    }
    Py_ssize_t n = xb.len / (Py_ssize_t)item, bad = 0;
    double lo = INFINITY, hi = -INFINITY;
    Py_BEGIN_ALLOW_THREADS
    if (item == 4)
        minmax_f((const float *)xb.buf, n, (float)mask, &lo, &hi, &bad);
    else
        minmax_d((const double *)xb.buf, n, mask, &lo, &hi, &bad);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&xb);
    return Py_BuildValue("ddO", lo, hi, bad ? Py_False : Py_True);
}

static PyObject *fold(PyObject *self, PyObject *args)
{
    PyObject *xo, *co;
    int exp;
    long long start_ll;
    if (!PyArg_ParseTuple(args, "OOiL", &xo, &co, &exp, &start_ll))
        return NULL;
    Py_buffer xb, cb;
    if (PyObject_GetBuffer(xo, &xb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(co, &cb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&xb);
        return NULL;
    }
    PyObject *res = NULL;
    size_t item = float_item(&xb);
    const char *cf = fmt(&cb);
    if (!item || cb.itemsize != 8 || (strcmp(cf, "l") != 0 && strcmp(cf, "q") != 0)) {
        PyErr_SetString(PyExc_TypeError, "fold: x must be float32 or float64 and counts int64");
        goto done;
    }
    Py_ssize_t n = xb.len / (Py_ssize_t)item;
    int64_t bins = cb.len / 8, start = start_ll;
    if (bins < 1 || bins > INT32_MAX || exp < -1100 || exp > 1100) {
        PyErr_SetString(PyExc_ValueError, "fold: 1 to 2**31 - 1 bins, |exp| <= 1100");
        goto done;
    }
    /* exact in double: the absolute bin numbers of the grid fit 52 bits (numpy's exact_sub reasoning) */
    int wide = !(start > -(INT64_C(1) << 52) && start < (INT64_C(1) << 52) - bins);
    double scale = ldexp(1.0, -exp);
    BlockFn block = item == 4 ? (BlockFn)block_f : (BlockFn)block_d;
    WideFn widefn = item == 4 ? (WideFn)wide_f : (WideFn)wide_d;
    uint32_t *tables = NULL;
    int64_t *counts = cb.buf;
    if (n >= DIRECT && !(tables = calloc((size_t)TABLES * (size_t)bins, sizeof(uint32_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t zeros = 0;
    double sum = 0, sum_sq = 0;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    /* uint32 tables: at most 2**30 values per round (2**28 per table) */
    const Py_ssize_t round = (Py_ssize_t)1 << 30;
    for (Py_ssize_t r = 0; ok && r < n; r += round) {
        Py_ssize_t k = n - r < round ? n - r : round;
        ok = fold_all((const char *)xb.buf + (size_t)r * item, k, item, wide, block, widefn, scale, start, bins,
                      tables, counts, &zeros, &sum, &sum_sq);
        if (ok && tables) {
            for (int64_t j = 0; j < bins; j++) {
                counts[j] += (int64_t)tables[j] + tables[bins + j] + tables[2 * bins + j] + tables[3 * bins + j];
            }
            if (r + k < n)
                memset(tables, 0, (size_t)TABLES * (size_t)bins * sizeof(uint32_t));
        }
    }
    Py_END_ALLOW_THREADS
    free(tables);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "fold: a value lies outside the histogram's grid");
        goto done;
    }
    res = Py_BuildValue("ndd", zeros, sum, sum_sq);
done:
    PyBuffer_Release(&cb);
    PyBuffer_Release(&xb);
    return res;
}

static PyMethodDef methods[] = {
    {"minmax", minmax, METH_VARARGS, "(min, max ignoring NaN, whether every |value| < mask) of a float buffer."},
    {"fold", fold, METH_VARARGS, "Count a float buffer into int64 bins of width 2**exp from start: (zeros, sum, sum_sq)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_histfold", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__histfold(void) { return PyModule_Create(&module); }
