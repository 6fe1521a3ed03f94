/* Per-value ``update`` of the concept-drift detectors in C: one compiled call per value.
 *
 * Optional: ``pip install`` builds it when a C compiler is there; without it the detectors run
 * their Python ``update`` (and ADWIN a Numba loop), with the same change points and state.
 *
 * ADWIN: ``Window`` holds the whole window (see adwin.py). The exponential histogram is kept as its bucket
 * boundaries, oldest first: ``positions`` (values read up to each boundary) and ``prefix`` (the
 * sum of the values minus the window's first value up to it); ``counts`` holds how many buckets
 * of each size 2**level there are. The arithmetic is that of ``adwin._scan``, operation by
 * operation, so both paths give the same change points and the same state. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <structmember.h>

#define LEVELS 64

typedef struct {
    PyObject_HEAD
    long long n_seen, n_nonfinite, n_detections;
    char drift_detected;
    double delta, min_len, grace;
    long long clock, max_buckets;
    long long n;
    double shift, total, squares;
    Py_ssize_t size, room;
    long long *positions;
    double *prefix;
    long long counts[LEVELS];
} Window;

static void window_clear(Window *w) {
    w->drift_detected = 0;
    w->n = 0;
    w->shift = w->total = w->squares = 0.0;
    w->size = 0;
    memset(w->counts, 0, sizeof(w->counts));
}

/* Insert one value (bucket merges as River's exponential histogram). */
static void window_push(Window *w, double value) {
    if (w->n == 0) w->shift = value;
    double x = value - w->shift;
    w->n += 1;
    w->total += x;
    w->squares += x * x;
    w->positions[w->size] = w->n;
    w->prefix[w->size] = w->total;
    w->size += 1;
    w->counts[0] += 1;
    int level = 0;
    Py_ssize_t start = w->size - w->counts[0];
    while (level < LEVELS - 1 && w->counts[level] == w->max_buckets + 1) {
        for (Py_ssize_t j = start; j < w->size - 1; j++) {
            w->positions[j] = w->positions[j + 1];
            w->prefix[j] = w->prefix[j + 1];
        }
        w->size -= 1;
        w->counts[level] -= 2;
        w->counts[level + 1] += 1;
        level += 1;
        start += 1 - w->counts[level];
    }
}

/* Whether the cut test is due after the last value and finds two sub-windows too different. */
static int window_cut(const Window *w) {
    if (w->n % w->clock || (double)w->n <= w->grace) return 0;
    double n = (double)w->n;
    double log_term = log(2.0 * log(n) / w->delta);
    double variance = (w->squares - w->total * w->total / n) / n;
    for (Py_ssize_t j = 0; j < w->size; j++) {
        double n_old = (double)w->positions[j];
        double n_new = n - n_old;
        if (n_old < w->min_len || n_new < w->min_len) continue;
        double old = w->prefix[j];
        double gap = fabs(old / n_old - (w->total - old) / n_new);
        double recip = 1.0 / (n_old - w->min_len + 1) + 1.0 / (n_new - w->min_len + 1);
        double linear = 2.0 / 3.0 * log_term * recip, square = 2.0 * recip * variance * log_term;
        /* no cut where the gap is clearly inside the bound: without the square root, and with a
         * margin (1e-9) far above rounding, so the decision is the exact formula's */
        if (gap <= linear) continue;
        double over = gap - linear;
        if (linear * linear < 1e10 * square && over * over < square * (1.0 - 1e-9)) continue;
        double bound = sqrt(square) + linear;
        if (gap > bound) return 1;
    }
    return 0;
}

static void window_recount(Window *w) {
    memset(w->counts, 0, sizeof(w->counts));
    for (Py_ssize_t j = 0; j < w->size; j++) {
        long long width = w->positions[j] - (j ? w->positions[j - 1] : 0);
        int level = 0;
        while (width > 1 && level < LEVELS - 1) {
            width >>= 1;
            level += 1;
        }
        w->counts[level] += 1;
    }
}

static int window_ready(Window *w) {
    if (w->positions == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ADWIN window used before _configure");
        return 0;
    }
    return 1;
}

static PyObject *Window_update(Window *w, PyObject *arg) {
    double value = PyFloat_AsDouble(arg);
    if (value == -1.0 && PyErr_Occurred()) return NULL;
    if (!window_ready(w)) return NULL;
    w->n_seen += 1;
    if (!isfinite(value)) {
        w->n_nonfinite += 1;
        Py_RETURN_NONE;
    }
    if (w->drift_detected) window_clear(w);
    window_push(w, value);
    if (window_cut(w)) {
        w->drift_detected = 1;
        w->n_detections += 1;
    }
    Py_RETURN_NONE;
}

static PyObject *Window_scan(Window *w, PyObject *arg) {
    if (!window_ready(w)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    if (view.ndim != 1 || view.itemsize != 8 || view.format == NULL || strcmp(view.format, "d")) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "ADWIN reads a one-dimensional float64 array");
        return NULL;
    }
    Py_ssize_t k = -1, stride = view.strides[0];
    const char *data = (const char *)view.buf;
    for (Py_ssize_t i = 0; i < view.shape[0]; i++) {
        window_push(w, *(const double *)(data + i * stride));
        if (window_cut(w)) {
            k = i;
            break;
        }
    }
    PyBuffer_Release(&view);
    w->drift_detected = k >= 0;
    return PyLong_FromSsize_t(k);
}

static PyObject *Window_reset(Window *w, PyObject *Py_UNUSED(ignored)) {
    window_clear(w);
    Py_RETURN_NONE;
}

static PyObject *Window_flush(PyObject *Py_UNUSED(w), PyObject *Py_UNUSED(ignored)) {
    Py_RETURN_NONE;
}

static PyObject *Window_configure(Window *w, PyObject *args) {
    double delta, min_len, grace;
    long long clock, max_buckets;
    if (!PyArg_ParseTuple(args, "dLLdd", &delta, &clock, &max_buckets, &min_len, &grace))
        return NULL;
    if (clock < 1 || max_buckets < 1) {
        PyErr_SetString(PyExc_ValueError, "ADWIN needs clock >= 1 and max_buckets >= 1");
        return NULL;
    }
    Py_ssize_t room = LEVELS * (Py_ssize_t)(max_buckets + 1) + 2;
    long long *positions = PyMem_Calloc(room, sizeof(long long));
    double *prefix = PyMem_Calloc(room, sizeof(double));
    if (positions == NULL || prefix == NULL) {
        PyMem_Free(positions);
        PyMem_Free(prefix);
        return PyErr_NoMemory();
    }
    PyMem_Free(w->positions);
    PyMem_Free(w->prefix);
    w->positions = positions;
    w->prefix = prefix;
    w->room = room;
    w->delta = delta;
    w->clock = clock;
    w->max_buckets = max_buckets;
    w->min_len = min_len;
    w->grace = grace;
    window_clear(w);
    Py_RETURN_NONE;
}

static PyObject *Window_buckets(Window *w, PyObject *Py_UNUSED(ignored)) {
    if (!window_ready(w)) return NULL;
    PyObject *positions = PyList_New(w->size), *prefix = PyList_New(w->size);
    if (positions == NULL || prefix == NULL) goto fail;
    for (Py_ssize_t j = 0; j < w->size; j++) {
        PyObject *p = PyLong_FromLongLong(w->positions[j]), *s = PyFloat_FromDouble(w->prefix[j]);
        if (p == NULL || s == NULL) {
            Py_XDECREF(p);
            Py_XDECREF(s);
            goto fail;
        }
        PyList_SET_ITEM(positions, j, p);
        PyList_SET_ITEM(prefix, j, s);
    }
    return Py_BuildValue("(NN)", positions, prefix);
fail:
    Py_XDECREF(positions);
    Py_XDECREF(prefix);
    return NULL;
}

static PyObject *Window_load_buckets(Window *w, PyObject *args) {
    PyObject *positions, *prefix;
    if (!window_ready(w)) return NULL;
    if (!PyArg_ParseTuple(args, "OO", &positions, &prefix)) return NULL;
    PyObject *pos = PySequence_Fast(positions, "positions must be a sequence");
    if (pos == NULL) return NULL;
    PyObject *pre = PySequence_Fast(prefix, "prefix must be a sequence");
    if (pre == NULL) {
        Py_DECREF(pos);
        return NULL;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(pos);
    if (size != PySequence_Fast_GET_SIZE(pre) || size > w->room) {
        PyErr_SetString(PyExc_ValueError, "ADWIN buckets: positions and prefix do not fit");
        goto fail;
    }
    for (Py_ssize_t j = 0; j < size; j++) {
        long long p = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(pos, j));
        double s = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(pre, j));
        if (PyErr_Occurred()) goto fail;
        w->positions[j] = p;
        w->prefix[j] = s;
    }
    w->size = size;
    window_recount(w);
    Py_DECREF(pos);
    Py_DECREF(pre);
    Py_RETURN_NONE;
fail:
    Py_DECREF(pos);
    Py_DECREF(pre);
    return NULL;
}

static void Window_dealloc(Window *w) {
    PyTypeObject *type = Py_TYPE(w);
    PyMem_Free(w->positions);
    PyMem_Free(w->prefix);
    type->tp_free((PyObject *)w);
    Py_DECREF(type);
}

static PyMethodDef Window_methods[] = {
    {"update", (PyCFunction)Window_update, METH_O,
     "Read one value; a NaN or inf is counted in ``n_nonfinite`` and skipped."},
    {"_scan", (PyCFunction)Window_scan, METH_O,
     "Read a float64 array up to and including the first drift; its index or -1."},
    {"_reset", (PyCFunction)Window_reset, METH_NOARGS, "Empty the window."},
    {"_flush", (PyCFunction)Window_flush, METH_NOARGS, "Nothing to do: no value waits here."},
    {"_configure", (PyCFunction)Window_configure, METH_VARARGS,
     "Set delta, clock, max_buckets, min_window_length, grace_period; empty the window."},
    {"_buckets", (PyCFunction)Window_buckets, METH_NOARGS,
     "The bucket boundaries and the shifted sum up to each, as two lists."},
    {"_load_buckets", (PyCFunction)Window_load_buckets, METH_VARARGS,
     "Set the bucket boundaries and their sums (as returned by ``_buckets``)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Window_members[] = {
    {"n_seen", T_LONGLONG, offsetof(Window, n_seen), 0, "values read, NaN and inf included"},
    {"n_nonfinite", T_LONGLONG, offsetof(Window, n_nonfinite), 0, "NaN and inf skipped"},
    {"n_detections", T_LONGLONG, offsetof(Window, n_detections), 0, "drifts signalled"},
    {"drift_detected", T_BOOL, offsetof(Window, drift_detected), 0,
     "whether the last finite value made it signal a drift"},
    {"_n", T_LONGLONG, offsetof(Window, n), 0, "values in the window"},
    {"_shift", T_DOUBLE, offsetof(Window, shift), 0, "the window's first value"},
    {"_sum", T_DOUBLE, offsetof(Window, total), 0, "sum of the shifted values"},
    {"_sumsq", T_DOUBLE, offsetof(Window, squares), 0, "sum of their squares"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Window_slots[] = {
    {Py_tp_doc, "ADWIN's window and cut test, compiled (the base of ``ADWIN``)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Window_dealloc},
    {Py_tp_methods, Window_methods},
    {Py_tp_members, Window_members},
    {0, NULL},
};

static PyType_Spec Window_spec = {
    "retrainer.checks.concept._native.ADWINWindow",
    sizeof(Window),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    Window_slots,
};

/* DDM, EDDM, Page-Hinkley: the C type holds the parameters and state the step reads, as members
 * named like the Python attributes, so the Python class (reset, batch scan, state_dict) reads and
 * writes the same fields. ``update`` steps in C; the rare paths (a NaN or a value a binary
 * detector refuses, the reset after a drift) call the Python methods. Each step is the Python
 * ``_step`` of the class, operation by operation. */
#define HEAD                                 \
    PyObject_HEAD long long n_seen, n_nonfinite, n_detections; \
    char drift_detected, warning_detected;

typedef struct {
    HEAD
} Head;

typedef void (*step_fn)(PyObject *self, double x);

static PyObject *update_with(PyObject *self, PyObject *arg, step_fn step, int binary) {
    Head *h = (Head *)self;
    double value = PyFloat_AsDouble(arg);
    if (value == -1.0 && PyErr_Occurred()) return NULL;
    if (!isfinite(value) || (binary && value != 0.0 && value != 1.0))
        return PyObject_CallMethod(self, "_refuse_or_skip", "d", value);
    h->n_seen += 1;
    if (h->drift_detected) {
        PyObject *done = PyObject_CallMethod(self, "_reset", NULL);
        if (done == NULL) return NULL;
        Py_DECREF(done);
    }
    step(self, value);
    if (h->drift_detected) h->n_detections += 1;
    Py_RETURN_NONE;
}

/* A batch (float64, finite, checked by the caller) up to and including the first drift: the
 * index of that value or -1; the same steps as ``update``, without a Python call per value. */
static PyObject *scan_with(PyObject *self, PyObject *arg, step_fn step) {
    Head *h = (Head *)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    if (view.ndim != 1 || view.itemsize != 8 || view.format == NULL || strcmp(view.format, "d")) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "a detector reads a one-dimensional float64 array");
        return NULL;
    }
    Py_ssize_t k = -1, stride = view.strides[0];
    const char *data = (const char *)view.buf;
    h->drift_detected = 0;
    for (Py_ssize_t i = 0; i < view.shape[0]; i++) {
        step(self, *(const double *)(data + i * stride));
        if (h->drift_detected) {
            k = i;
            break;
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(k);
}

#define HEAD_MEMBERS(T)                                                                          \
    {"n_seen", T_LONGLONG, offsetof(T, n_seen), 0, "values read, NaN and inf included"},        \
    {"n_nonfinite", T_LONGLONG, offsetof(T, n_nonfinite), 0, "NaN and inf skipped"},             \
    {"n_detections", T_LONGLONG, offsetof(T, n_detections), 0, "drifts signalled"},              \
    {"drift_detected", T_BOOL, offsetof(T, drift_detected), 0,                                    \
     "whether the last finite value made it signal a drift"},                                    \
    {"_warning_detected", T_BOOL, offsetof(T, warning_detected), 0, "warning zone"}

static void plain_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

/* DDM */
typedef struct {
    HEAD
    long long warm_start, n, errors;
    double warning_threshold, drift_threshold, p_min, s_min, ps_min;
} DDMStep;

static void ddm_step(PyObject *self, double x) {
    DDMStep *d = (DDMStep *)self;
    long long n = d->n + 1, errors = d->errors + (x == 1.0);
    d->n = n;
    d->errors = errors;
    if (n <= d->warm_start) return;
    double p = (double)errors / (double)n;
    double s = sqrt(p * (1.0 - p) / (double)n);
    double level = p + s;
    if (level <= d->ps_min) {
        d->p_min = p;
        d->s_min = s;
        d->ps_min = level;
    }
    if (level > d->p_min + d->drift_threshold * d->s_min) {
        d->drift_detected = 1;
        d->warning_detected = 0;
    } else {
        d->warning_detected = level > d->p_min + d->warning_threshold * d->s_min;
    }
}

static PyObject *DDM_update(PyObject *self, PyObject *arg) {
    return update_with(self, arg, ddm_step, 1);
}

static PyObject *DDM_scan(PyObject *self, PyObject *arg) {
    return scan_with(self, arg, ddm_step);
}

static PyMethodDef DDM_methods[] = {
    {"_native_scan", DDM_scan, METH_O, "Read a float64 array up to the first drift; its index or -1."},
    {"update", DDM_update, METH_O, "Read one 0/1 value (1 = error); NaN and inf are skipped."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef DDM_members[] = {
    HEAD_MEMBERS(DDMStep),
    {"warm_start", T_LONGLONG, offsetof(DDMStep, warm_start), 0, NULL},
    {"warning_threshold", T_DOUBLE, offsetof(DDMStep, warning_threshold), 0, NULL},
    {"drift_threshold", T_DOUBLE, offsetof(DDMStep, drift_threshold), 0, NULL},
    {"_n", T_LONGLONG, offsetof(DDMStep, n), 0, NULL},
    {"_errors", T_LONGLONG, offsetof(DDMStep, errors), 0, NULL},
    {"_p_min", T_DOUBLE, offsetof(DDMStep, p_min), 0, NULL},
    {"_s_min", T_DOUBLE, offsetof(DDMStep, s_min), 0, NULL},
    {"_ps_min", T_DOUBLE, offsetof(DDMStep, ps_min), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* EDDM */
typedef struct {
    HEAD
    long long warm_start, n, last_error, n_errors, dist_sum, dist_sq;
    double alpha, beta, p2s_max;
} EDDMStep;

static void eddm_step(PyObject *self, double x) {
    EDDMStep *e = (EDDMStep *)self;
    e->n += 1;
    if (x != 1.0) return;
    long long distance = e->n - e->last_error;
    e->last_error = e->n;
    e->n_errors += 1;
    e->dist_sum += distance;
    e->dist_sq += distance * distance;
    if (e->n <= e->warm_start) return;
    double m = (double)e->n_errors, total = (double)e->dist_sum;
    double spread = m * (m - 1.0);
    double var = (m * (double)e->dist_sq - total * total) / (spread >= 1.0 ? spread : 1.0);
    double p2s = var >= 0.0 ? total / m + 2.0 * sqrt(var) : NAN;
    if (p2s > e->p2s_max) {
        e->p2s_max = p2s;
    } else if (e->n_errors > e->warm_start) {
        double level = p2s / e->p2s_max;
        if (level < e->beta)
            e->drift_detected = 1;
        else
            e->warning_detected = level < e->alpha;
    }
}

static PyObject *EDDM_update(PyObject *self, PyObject *arg) {
    return update_with(self, arg, eddm_step, 1);
}

static PyObject *EDDM_scan(PyObject *self, PyObject *arg) {
    return scan_with(self, arg, eddm_step);
}

static PyMethodDef EDDM_methods[] = {
    {"_native_scan", EDDM_scan, METH_O, "Read a float64 array up to the first drift; its index or -1."},
    {"update", EDDM_update, METH_O, "Read one 0/1 value (1 = error); NaN and inf are skipped."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef EDDM_members[] = {
    HEAD_MEMBERS(EDDMStep),
    {"warm_start", T_LONGLONG, offsetof(EDDMStep, warm_start), 0, NULL},
    {"alpha", T_DOUBLE, offsetof(EDDMStep, alpha), 0, NULL},
    {"beta", T_DOUBLE, offsetof(EDDMStep, beta), 0, NULL},
    {"_n", T_LONGLONG, offsetof(EDDMStep, n), 0, NULL},
    {"_last_error", T_LONGLONG, offsetof(EDDMStep, last_error), 0, NULL},
    {"_n_errors", T_LONGLONG, offsetof(EDDMStep, n_errors), 0, NULL},
    {"_dist_sum", T_LONGLONG, offsetof(EDDMStep, dist_sum), 0, NULL},
    {"_dist_sq", T_LONGLONG, offsetof(EDDMStep, dist_sq), 0, NULL},
    {"_p2s_max", T_DOUBLE, offsetof(EDDMStep, p2s_max), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* Page-Hinkley */
typedef struct {
    HEAD
    long long min_instances, n;
    int mode_code; /* 0 up, 1 down, 2 both (MODES in page_hinkley.py) */
    double delta, threshold, alpha, total, up, down, up_min, down_max;
} PageHinkleyStep;

static void page_hinkley_step(PyObject *self, double x) {
    PageHinkleyStep *h = (PageHinkleyStep *)self;
    long long n = h->n + 1;
    h->n = n;
    h->total += x;
    double dev = x - h->total / (double)n;
    double up = h->alpha * h->up + (dev - h->delta);
    double down = h->alpha * h->down + (dev + h->delta);
    h->up = up;
    h->down = down;
    if (up < h->up_min) h->up_min = up;
    if (down > h->down_max) h->down_max = down;
    if (n >= h->min_instances) {
        int rise = up - h->up_min > h->threshold, fall = h->down_max - down > h->threshold;
        h->drift_detected = h->mode_code == 0 ? rise : h->mode_code == 1 ? fall : (rise || fall);
    }
}

static PyObject *PageHinkley_update(PyObject *self, PyObject *arg) {
    return update_with(self, arg, page_hinkley_step, 0);
}

static PyObject *PageHinkley_scan(PyObject *self, PyObject *arg) {
    return scan_with(self, arg, page_hinkley_step);
}

static PyMethodDef PageHinkley_methods[] = {
    {"_native_scan", PageHinkley_scan, METH_O, "Read a float64 array up to the first drift; its index or -1."},
    {"update", PageHinkley_update, METH_O, "Read one value; NaN and inf are skipped."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef PageHinkley_members[] = {
    HEAD_MEMBERS(PageHinkleyStep),
    {"min_instances", T_LONGLONG, offsetof(PageHinkleyStep, min_instances), 0, NULL},
    {"delta", T_DOUBLE, offsetof(PageHinkleyStep, delta), 0, NULL},
    {"threshold", T_DOUBLE, offsetof(PageHinkleyStep, threshold), 0, NULL},
    {"alpha", T_DOUBLE, offsetof(PageHinkleyStep, alpha), 0, NULL},
    {"_mode_code", T_INT, offsetof(PageHinkleyStep, mode_code), 0, NULL},
    {"_n", T_LONGLONG, offsetof(PageHinkleyStep, n), 0, NULL},
    {"_sum", T_DOUBLE, offsetof(PageHinkleyStep, total), 0, NULL},
    {"_up", T_DOUBLE, offsetof(PageHinkleyStep, up), 0, NULL},
    {"_down", T_DOUBLE, offsetof(PageHinkleyStep, down), 0, NULL},
    {"_up_min", T_DOUBLE, offsetof(PageHinkleyStep, up_min), 0, NULL},
    {"_down_max", T_DOUBLE, offsetof(PageHinkleyStep, down_max), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

#define STEP_SPEC(NAME, T, DOC)                                                     \
    static PyType_Slot NAME##_slots[] = {                                            \
        {Py_tp_doc, DOC},                                                            \
        {Py_tp_new, PyType_GenericNew},                                              \
        {Py_tp_dealloc, plain_dealloc},                                              \
        {Py_tp_methods, NAME##_methods},                                             \
        {Py_tp_members, NAME##_members},                                             \
        {0, NULL},                                                                   \
    };                                                                               \
    static PyType_Spec NAME##_spec = {                                               \
        "retrainer.checks.concept._native." #NAME "Step", sizeof(T), 0,              \
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, NAME##_slots,                      \
    };

STEP_SPEC(DDM, DDMStep, "DDM's per-value step, compiled (a base of ``DDM``).")
STEP_SPEC(EDDM, EDDMStep, "EDDM's per-value step, compiled (a base of ``EDDM``).")
STEP_SPEC(PageHinkley, PageHinkleyStep, "Page-Hinkley's per-value step (a base of ``PageHinkley``).")

static int add_type(PyObject *module, PyType_Spec *spec, const char *name) {
    PyObject *type = PyType_FromSpec(spec);
    if (type == NULL) return -1;
    if (PyModule_AddObject(module, name, type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static int module_exec(PyObject *module) {
    if (add_type(module, &Window_spec, "ADWINWindow") < 0) return -1;
    if (add_type(module, &DDM_spec, "DDMStep") < 0) return -1;
    if (add_type(module, &EDDM_spec, "EDDMStep") < 0) return -1;
    if (add_type(module, &PageHinkley_spec, "PageHinkleyStep") < 0) return -1;
    return 0;
}

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_native",
    "Per-value detector steps in C (optional: the detectors fall back to Python and Numba).",
    0, NULL, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&module_def); }
