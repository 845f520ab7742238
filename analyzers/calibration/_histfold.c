/* StreamingHistogram.update's passes over a tensor, compiled: the range check and the fold into the counts.
 *
 * The numpy path (analyzers/calibration/histogram.py) makes about twelve passes per value per chunk and takes the
 * GIL back at every call, so two folding threads barely beat one. Here each block of values is read from memory
 * once (checked, then binned while it is in L1) and the GIL is released, so the folding threads run beside each
 * other and beside onnxruntime.
 *
 * minmax(x, mask) -> (lo, hi, clean)
 *   x: a C-contiguous float32 or float64 buffer (not empty). clean: whether every value v has |v| < mask (no NaN,
 *   no infinity, no mask magnitude); when it is, lo and hi are x's smallest and largest values (numpy's x.min() and
 *   x.max(), up to the sign of a zero), and when it is not they mean nothing.
 *
 * fold(x, counts, exp, start, mask) -> (done, zeros, sum, sum_sq, lo, hi)
 *   Adds the values v of x (float32 or float64, C-contiguous) to counts (int64, writable) at floor(v * 2**-exp) -
 *   start, block by block, and stops before the first block holding a value that is not clean (see minmax) or
 *   whose bin lies outside counts: the caller then widens the grid (or filters) and folds the rest, x[done:].
 *   Returns how many values were counted (a prefix of x), how many of them are exact zeros, their float64 sum and
 *   sum of squares, and their min and max (+inf and -inf when done is 0).
 *   Bin numbers equal numpy's (histogram.py): float32 values with -126 <= exp <= 0 on grids whose bin numbers fit
 *   24 bits are binned in float32 as numpy does (exact: power-of-two scaling, floor, and an integer subtraction
 *   within the mantissa); other values in double, the same IEEE operations numpy runs in float64 (for float32
 *   values also exact); grids whose bin numbers outgrow 52 bits subtract in int64 after the cast, as numpy does.
 *   A block is checked through the bins of its min and max, which bound every other value's: the binning is
 *   monotonic.
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

#define BLOCK 1024    /* values per block: checked, binned and counted while in L1 */
/* interleaved uint32 count tables: a run of equal bins (ReLU zeros) is four chains of increments, not one (1.7 vs
   0.8 ns/value on 130k ReLU outputs); uint16 tables (a quarter of L1) measured slower, 1.07 */
#define TABLES 4
#define DIRECT 16384 /* calls with fewer values count straight into the int64 counts (no tables to clear and add) */

/* the smallest float32 >= mask: a float32 value v has |v| < mask exactly when |v| < float_mask(mask) */
static float float_mask(double mask)
{
    float m = (float)mask;
    return (double)m < mask ? nextafterf(m, INFINITY) : m;
}

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

enum { IN_FLOAT, IN_DOUBLE, IN_INT64 }; /* the arithmetic bins are computed in */

typedef struct {
    int mode;
    float sf, stf;               /* IN_FLOAT: 2**-exp and start as float32 */
    double scale, startd, binsd; /* IN_DOUBLE */
    int64_t start, bins;         /* IN_INT64 */
} Grid;

/* the bin of one value, computed exactly as the block passes below compute it; 0 when outside the counts (a value
   outside stays outside after rounding: rounding is monotonic and 0 and bins are representable) */
static int bin_in_range(const Grid *g, double v)
{
    if (g->mode == IN_FLOAT) {
        float f = floorf((float)v * g->sf) - g->stf;
        return f >= 0 && f < (float)g->bins;
    }
    if (g->mode == IN_DOUBLE) {
        double d = floor(v * g->scale) - g->startd;
        return d >= 0 && d < g->binsd;
    }
    double q = floor(v * g->scale);
    if (!(q >= -9.2e18 && q <= 9.2e18))
        return 0;
    int64_t k = (int64_t)q - g->start;
    return k >= 0 && k < g->bins;
}

/* IN_FLOAT blocks in one loop: checked (as minmax_f) and binned at once; the bins of a block that turns out not
   clean or not inside the grid are thrown away (they are clamped into the counts first, so nothing reads outside
   them whatever the values). */
HOT FINITE static void check_bins_ff(const float *x, Py_ssize_t n, const Grid *g, float mask, int32_t *idx,
                                     int *zeros, double *sum, double *sum_sq, double *lo, double *hi,
                                     Py_ssize_t *bad)
{
    const float sf = g->sf, stf = g->stf, top = (float)(g->bins - 1);
    uint32_t mbits;
    memcpy(&mbits, &mask, sizeof mbits);
    float mn = x[0], mx = x[0];
    double s = 0, ss = 0;
    int z = 0, nb = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        float v = x[i];
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        nb += (b & UINT32_C(0x7fffffff)) >= mbits;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        double d = (double)v;
        s += d;
        ss += d * d;
        z += v == 0;
        float f = floorf(v * sf) - stf;
        f = f > 0 ? f : 0;
        f = f < top ? f : top;
        idx[i] = (int32_t)f;
    }
    *zeros = z, *sum = s, *sum_sq = ss, *lo = mn, *hi = mx, *bad = nb;
}

/* The other grids: a checked block's bin numbers into idx (BIN, of v), exact zeros and the float64 sums of v and
   v*v. Most grids subtract in double; the rare ones whose bin numbers outgrow 52 bits cast, then subtract in int64
   (in range: the block was checked). */
#define BINS(NAME, T, ATTRS, BIN)                                                                               \
    ATTRS static void NAME(const T *x, Py_ssize_t n, const Grid *g, int32_t *idx, int *zeros, double *sum,      \
                           double *sum_sq)                                                                      \
    {                                                                                                           \
        const double scale = g->scale, startd = g->startd;                                                      \
        const int64_t start = g->start;                                                                         \
        double s = 0, ss = 0;                                                                                   \
        int z = 0;                                                                                              \
        (void)startd, (void)start;                                                                              \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                    \
            double v = (double)x[i];                                                                            \
            s += v;                                                                                             \
            ss += v * v;                                                                                        \
            z += v == 0;                                                                                        \
            idx[i] = (int32_t)(BIN);                                                                            \
        }                                                                                                       \
        *zeros = z, *sum = s, *sum_sq = ss;                                                                     \
    }

BINS(bins_fd, float, HOT FINITE, floor(v * scale) - startd)
BINS(bins_dd, double, HOT FINITE, floor(v * scale) - startd)
BINS(bins_fi, float, , (int64_t)floor(v * scale) - start)
BINS(bins_di, double, , (int64_t)floor(v * scale) - start)

typedef void (*BinsFn)(const void *, Py_ssize_t, const Grid *, int32_t *, int *, double *, double *);

typedef struct {
    Py_ssize_t done, zeros;
    double sum, sum_sq, lo, hi;
} Folded;

/* Folds blocks of x until one is not clean or not inside the grid, into tables (TABLES interleaved uint32 tables of
   g->bins counts, at most 2**30 values) or, when tables is NULL, straight into counts. */
static void fold_blocks(const char *x, Py_ssize_t n, int f32, double mask, const Grid *g, BinsFn bins_fn,
                        uint32_t *tables, int64_t *counts, Folded *out)
{
    int32_t idx[BLOCK];
    const Py_ssize_t stride = (Py_ssize_t)g->bins;
    const size_t item = f32 ? 4 : 8;
    for (Py_ssize_t b = 0; b < n; b += BLOCK) {
        Py_ssize_t k = n - b < BLOCK ? n - b : BLOCK, bad;
        const void *xp = x + (size_t)b * item;
        double lo, hi, s, ss;
        int z;
        if (g->mode == IN_FLOAT) {
            check_bins_ff((const float *)xp, k, g, float_mask(mask), idx, &z, &s, &ss, &lo, &hi, &bad);
            if (bad || !bin_in_range(g, lo) || !bin_in_range(g, hi))
                return;
        } else {
            if (f32)
                minmax_f((const float *)xp, k, float_mask(mask), &lo, &hi, &bad);
            else
                minmax_d((const double *)xp, k, mask, &lo, &hi, &bad);
            if (bad || !bin_in_range(g, lo) || !bin_in_range(g, hi))
                return;
            bins_fn(xp, k, g, idx, &z, &s, &ss);
        }
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
        out->done += k;
        out->zeros += z;
        out->sum += s;
        out->sum_sq += ss;
        out->lo = lo < out->lo ? lo : out->lo;
        out->hi = hi > out->hi ? hi : out->hi;
    }
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
        minmax_f((const float *)xb.buf, n, float_mask(mask), &lo, &hi, &bad);
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
    double mask;
    if (!PyArg_ParseTuple(args, "OOiLd", &xo, &co, &exp, &start_ll, &mask))
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
    int f32 = item == 4;
    Grid g = {0};
    g.scale = ldexp(1.0, -exp), g.startd = (double)start, g.binsd = (double)bins, g.start = start, g.bins = bins;
    g.sf = (float)g.scale, g.stf = (float)start;
    /* numpy's choice (histogram.py): float32 where exact, else double; integers where the bin numbers outgrow the
       mantissa */
    if (f32 && exp >= -126 && exp <= 0 && start > -(INT64_C(1) << 24) + bins && start < (INT64_C(1) << 24) - bins)
        g.mode = IN_FLOAT;
    else if (start > -(INT64_C(1) << 52) + bins && start < (INT64_C(1) << 52) - bins)
        g.mode = IN_DOUBLE;
    else
        g.mode = IN_INT64;
    BinsFn bins_fn = g.mode == IN_FLOAT    ? NULL /* check_bins_ff */
                     : g.mode == IN_DOUBLE ? (f32 ? (BinsFn)bins_fd : (BinsFn)bins_dd)
                                           : (f32 ? (BinsFn)bins_fi : (BinsFn)bins_di);
    uint32_t *tables = NULL;
    int64_t *counts = cb.buf;
    if (n >= DIRECT && !(tables = calloc((size_t)TABLES * (size_t)bins, sizeof(uint32_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    Folded out = {0, 0, 0.0, 0.0, INFINITY, -INFINITY};
    Py_BEGIN_ALLOW_THREADS
    /* uint32 tables: at most 2**30 values per round, then added into counts */
    const Py_ssize_t round = (Py_ssize_t)1 << 30;
    for (Py_ssize_t r = 0; r < n; r += round) {
        Py_ssize_t k = n - r < round ? n - r : round, before = out.done;
        fold_blocks((const char *)xb.buf + (size_t)r * item, k, f32, mask, &g, bins_fn, tables, counts, &out);
        if (tables) {
            for (int64_t j = 0; j < bins; j++)
                counts[j] += (int64_t)tables[j] + tables[bins + j] + tables[2 * bins + j] + tables[3 * bins + j];
            memset(tables, 0, (size_t)TABLES * (size_t)bins * sizeof(uint32_t));
        }
        if (out.done - before < k)
            break;
    }
    Py_END_ALLOW_THREADS
    free(tables);
    res = Py_BuildValue("nndddd", out.done, out.zeros, out.sum, out.sum_sq, out.lo, out.hi);
done:
    PyBuffer_Release(&cb);
    PyBuffer_Release(&xb);
    return res;
}

static PyMethodDef methods[] = {
    {"minmax", minmax, METH_VARARGS, "(min, max ignoring NaN, whether every |value| < mask) of a float buffer."},
    {"fold", fold, METH_VARARGS,
     "Count a float buffer's clean, in-grid leading blocks into int64 bins of width 2**exp from start: "
     "(done, zeros, sum, sum_sq, min, max)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_histfold", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__histfold(void) { return PyModule_Create(&module); }
