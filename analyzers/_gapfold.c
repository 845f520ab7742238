/* The deployed-vs-exact comparison of one layer's integers: how many differ and what the differing ones add to the
 * error power. `qwb analyze --kernels both` (the default) runs it per layer and batch.
 *
 * Hand-written because numpy needs five passes and four temporaries for it (compare, count, three gathers, float64
 * casts) and walks the deployed tensor through a transposed view: 9 s of a 22 s analysis at N = 128 on a 224-px
 * MobileNetV2 (docs/benchmarks.md). Here each value is read once, where it lies.
 *
 * gap_fold(d, e, x, scale, zero_point) -> (differing, extra, max_lsb)
 *   d: the deployed integers (uint8, int8, uint16 or int16), any strides (a transposed view of the kernel's layout);
 *   e: the exact simulation's integers, C-contiguous, same type and shape; x: the FP32 tensor, C-contiguous float32,
 *   same shape. differing: how many d != e; extra: the sum, over those, of (yd - x)^2 - (ye - x)^2 in float64 with
 *   y = (q - zero_point) * scale (what the deployed values add to the exact error power); max_lsb: the largest
 *   |d - e|. The GIL is released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXDIM 8

typedef struct {
    long long differing;
    double extra;
    long long max_lsb;
} Gap;

typedef struct {
    const char *d, *e;
    const float *x;
    Py_ssize_t ndim, shape[MAXDIM], sd[MAXDIM]; /* sd: d's byte strides; e and x are C-contiguous */
    double scale, zp;
} Walk;

#define CHUNK 4096

/* an AVX2 clone beside the baseline one where GCC builds for x86-64 (as _pairstats.c and _histfold.c do); elsewhere
 * (ARM64, clang) one build for the target */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* n contiguous values: counted first (most rows of a kernel that matches the simulation hold none), then, if any
 * differ, one branch-free pass: (yd - x)^2 - (ye - x)^2 = scale^2 (d - e)(d + e - 2 zp) - 2 scale (d - e) x, the
 * equal values selected out (so a NaN or inf x where they agree adds nothing, as in numpy's gather) */
#define ROW(NAME, T)                                                                                                  \
    CLONES static void NAME(const T *d, const T *e, const float *x,                                                 \
                                                                        Py_ssize_t n, double zp, double scale,      \
                                                                        Gap *g)                                      \
    {                                                                                                                 \
        long long k = 0;                                                                                              \
        for (Py_ssize_t i = 0; i < n; i++)                                                                            \
            k += d[i] != e[i];                                                                                        \
        if (!k)                                                                                                       \
            return;                                                                                                   \
        g->differing += k;                                                                                            \
        double acc = 0.0;                                                                                             \
        int mx = 0;                                                                                                   \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                          \
            int dv = d[i], ev = e[i], df = dv - ev, ad = df < 0 ? -df : df;                                           \
            double t = ((double)(dv + ev) - 2.0 * zp) * scale - 2.0 * (double)x[i];                                   \
            mx = ad > mx ? ad : mx;                                                                                   \
            acc += df ? (double)df * t : 0.0;                                                                         \
        }                                                                                                             \
        g->extra += acc * scale;                                                                                      \
        if (mx > g->max_lsb)                                                                                          \
            g->max_lsb = mx;                                                                                          \
    }                                                                                                                 \
    /* a row of d at any stride: gathered into a buffer first, CHUNK values at a time */                              \
    static void NAME##_row(const Walk *w, const char *dp, Py_ssize_t step, const char *ep, const float *x,           \
                           Py_ssize_t n, Gap *g)                                                                     \
    {                                                                                                                 \
        const T *e = (const T *)ep;                                                                                   \
        if (step == (Py_ssize_t)sizeof(T)) {                                                                         \
            NAME((const T *)dp, e, x, n, w->zp, w->scale, g);                                                         \
            return;                                                                                                   \
        }                                                                                                             \
        T buf[CHUNK];                                                                                                 \
        for (Py_ssize_t i0 = 0; i0 < n; i0 += CHUNK) {                                                                \
            Py_ssize_t m = n - i0 < CHUNK ? n - i0 : CHUNK;                                                           \
            const char *dc = dp + i0 * step;                                                                          \
            for (Py_ssize_t i = 0; i < m; i++)                                                                        \
                buf[i] = *(const T *)(dc + i * step);                                                                 \
            NAME(buf, e + i0, x + i0, m, w->zp, w->scale, g);                                                         \
        }                                                                                                             \
    }

ROW(row_u8, uint8_t)
ROW(row_i8, int8_t)
ROW(row_u16, uint16_t)
ROW(row_i16, int16_t)

/* d = e's [outer..., C, S...] with C contiguous in d and S... evenly strided (channels last against channels first):
 * each [C, S] slab moved into e's layout through 64 x 64 tiles (both sides read or written a cache line at a time),
 * then compared as one contiguous run. Returns 0 when d is not laid out so (the row walk then takes it). */
#define SLAB(NAME, T, KERNEL)                                                                                         \
    static int NAME(const Walk *w, Gap *g)                                                                            \
    {                                                                                                                 \
        Py_ssize_t last = w->ndim - 1, c = -1;                                                                        \
        for (Py_ssize_t k = 0; k < last; k++)                                                                         \
            if (w->sd[k] == (Py_ssize_t)sizeof(T) && w->shape[k] > 1)                                                \
                c = k;                                                                                                \
        if (c < 0)                                                                                                    \
            return 0;                                                                                                 \
        Py_ssize_t S = 1, C = w->shape[c], step = w->sd[last];                                                        \
        for (Py_ssize_t k = last; k > c; k--) {                                                                       \
            if (w->shape[k] > 1 && w->sd[k] != step * S)                                                              \
                return 0;                                                                                             \
            S *= w->shape[k];                                                                                         \
        }                                                                                                             \
        if (step < C * (Py_ssize_t)sizeof(T) && S > 1)                                                                \
            return 0;                                                                                                 \
        T *buf = malloc((size_t)(C * S) * sizeof(T));                                                                 \
        if (!buf)                                                                                                     \
            return 0;                                                                                                 \
        Py_ssize_t slabs = 1, idx[MAXDIM] = {0};                                                                      \
        for (Py_ssize_t k = 0; k < c; k++)                                                                            \
            slabs *= w->shape[k];                                                                                     \
        const T *e = (const T *)w->e;                                                                                 \
        for (Py_ssize_t r = 0; r < slabs; r++) {                                                                      \
            const char *dp = w->d;                                                                                    \
            for (Py_ssize_t k = 0; k < c; k++)                                                                        \
                dp += idx[k] * w->sd[k];                                                                              \
            for (Py_ssize_t s0 = 0; s0 < S; s0 += 64)                                                                 \
                for (Py_ssize_t c0 = 0; c0 < C; c0 += 64) {                                                           \
                    Py_ssize_t s1 = s0 + 64 < S ? s0 + 64 : S, c1 = c0 + 64 < C ? c0 + 64 : C;                        \
                    for (Py_ssize_t si = s0; si < s1; si++) {                                                         \
                        const T *src = (const T *)(dp + si * step);                                                   \
                        for (Py_ssize_t ci = c0; ci < c1; ci++)                                                       \
                            buf[ci * S + si] = src[ci];                                                               \
                    }                                                                                                 \
                }                                                                                                     \
            KERNEL(buf, e + r * C * S, w->x + r * C * S, C * S, w->zp, w->scale, g);                                  \
            for (Py_ssize_t k = c - 1; k >= 0; k--) {                                                                 \
                if (++idx[k] < w->shape[k])                                                                           \
                    break;                                                                                            \
                idx[k] = 0;                                                                                           \
            }                                                                                                         \
        }                                                                                                             \
        free(buf);                                                                                                    \
        return 1;                                                                                                     \
    }

SLAB(slab_u8, uint8_t, row_u8)
SLAB(slab_i8, int8_t, row_i8)
SLAB(slab_u16, uint16_t, row_u16)
SLAB(slab_i16, int16_t, row_i16)

typedef int (*SlabFn)(const Walk *, Gap *);

typedef void (*RowFn)(const Walk *, const char *, Py_ssize_t, const char *, const float *, Py_ssize_t, Gap *);

/* every row of e's last dimension, the rows taken in d's memory order (outer dimensions by d's stride, largest
 * first): a transposed d (channels last against e's channels first) is then read within a few kB between rows, so
 * from L1, instead of across the whole tensor once per channel */
static void walk(const Walk *w, RowFn row, Py_ssize_t item, Gap *g)
{
    Py_ssize_t last = w->ndim - 1, n = w->shape[last], rows = 1, idx[MAXDIM] = {0}, order[MAXDIM], es[MAXDIM];
    if (n == 0)
        return;
    for (Py_ssize_t k = 0; k < last; k++) {
        rows *= w->shape[k];
        order[k] = k;
    }
    es[last] = 1; /* e's and x's strides in elements */
    for (Py_ssize_t k = last - 1; k >= 0; k--)
        es[k] = es[k + 1] * w->shape[k + 1];
    for (Py_ssize_t a = 1; a < last; a++) { /* insertion sort, stable: by |d stride| descending */
        Py_ssize_t v = order[a], b = a;
        Py_ssize_t sv = w->sd[v] < 0 ? -w->sd[v] : w->sd[v];
        while (b > 0) {
            Py_ssize_t u = order[b - 1], su = w->sd[u] < 0 ? -w->sd[u] : w->sd[u];
            if (su >= sv)
                break;
            order[b] = u;
            b--;
        }
        order[b] = v;
    }
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t doff = 0, eoff = 0;
        for (Py_ssize_t k = 0; k < last; k++) {
            doff += idx[k] * w->sd[k];
            eoff += idx[k] * es[k];
        }
        row(w, w->d + doff, w->sd[last], w->e + eoff * item, w->x + eoff, n, g);
        for (Py_ssize_t a = last - 1; a >= 0; a--) { /* the next row: the innermost of d's order first */
            Py_ssize_t k = order[a];
            if (++idx[k] < w->shape[k])
                break;
            idx[k] = 0;
        }
    }
}

static const char *fmt(const Py_buffer *b)
{
    const char *f = b->format ? b->format : "B";
    return (f[0] == '<' || f[0] == '=' || f[0] == '@') ? f + 1 : f;
}

static PyObject *gap_fold(PyObject *self, PyObject *args)
{
    PyObject *d_o, *e_o, *x_o;
    double scale, zp;
    if (!PyArg_ParseTuple(args, "OOOdd", &d_o, &e_o, &x_o, &scale, &zp))
        return NULL;
    Py_buffer db = {0}, eb = {0}, xb = {0};
    PyObject *res = NULL;
    if (PyObject_GetBuffer(d_o, &db, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(e_o, &eb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done_d;
    if (PyObject_GetBuffer(x_o, &xb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done_e;
    const char *df = fmt(&db);
    RowFn row = NULL;
    SlabFn slab = NULL;
    if (strcmp(df, "B") == 0)
        row = row_u8_row, slab = slab_u8;
    else if (strcmp(df, "b") == 0)
        row = row_i8_row, slab = slab_i8;
    else if (strcmp(df, "H") == 0)
        row = row_u16_row, slab = slab_u16;
    else if (strcmp(df, "h") == 0)
        row = row_i16_row, slab = slab_i16;
    if (!row || strcmp(df, fmt(&eb)) != 0 || strcmp(fmt(&xb), "f") != 0) {
        PyErr_SetString(PyExc_TypeError, "gap_fold: d and e of one (u)int8/16 type, x float32");
        goto done_x;
    }
    if (db.ndim < 1 || db.ndim > MAXDIM || eb.ndim != db.ndim || xb.ndim != db.ndim) {
        PyErr_Format(PyExc_ValueError, "gap_fold: d, e and x of 1 to %d dimensions, the same for all", MAXDIM);
        goto done_x;
    }
    Walk w;
    memset(&w, 0, sizeof w);
    w.ndim = db.ndim;
    for (Py_ssize_t k = 0; k < w.ndim; k++) {
        if (db.shape[k] != eb.shape[k] || db.shape[k] != xb.shape[k]) {
            PyErr_SetString(PyExc_ValueError, "gap_fold: d, e and x differ in shape");
            goto done_x;
        }
        w.shape[k] = db.shape[k];
        w.sd[k] = db.strides[k];
    }
    w.d = db.buf; /* numpy's strided buffer: buf points at element 0 whatever the strides' signs */
    w.e = eb.buf;
    w.x = xb.buf;
    w.scale = scale;
    w.zp = zp;
    Gap g = {0, 0.0, 0};
    Py_BEGIN_ALLOW_THREADS
    if (!slab(&w, &g))
        walk(&w, row, db.itemsize, &g);
    Py_END_ALLOW_THREADS
    res = Py_BuildValue("LdL", g.differing, g.extra, g.max_lsb);
done_x:
    PyBuffer_Release(&xb);
done_e:
    PyBuffer_Release(&eb);
done_d:
    PyBuffer_Release(&db);
    return res;
}

static PyMethodDef methods[] = {
    {"gap_fold", gap_fold, METH_VARARGS, "How many deployed integers differ from the exact ones, and what they add."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gapfold", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gapfold(void) { return PyModule_Create(&module); }
