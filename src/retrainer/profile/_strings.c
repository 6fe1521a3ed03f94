/* Counting the distinct values of a column of Python strings without holding the GIL.
 *
 * Optional: ``pip install`` builds it when a C compiler is there; without it (or for a column
 * that holds anything but str, None and float NaN) column.py counts with pandas. A CPython str
 * is immutable and stored in its narrowest kind (1, 2 or 4 bytes a character), so two strings
 * are equal exactly when their kind, length and bytes are: those are hashed and compared here,
 * with the GIL released (the list handed in is the caller's own and keeps every string alive),
 * so the profile's other threads run meanwhile. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    Py_ssize_t first; /* index of the first occurrence, -1 for an empty slot */
    Py_ssize_t count;
} Slot;

static uint64_t hash_bytes(const unsigned char *data, Py_ssize_t size, int kind) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind; /* FNV-1a */
    for (Py_ssize_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int same(PyObject *a, PyObject *b) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(a);
    int kind = PyUnicode_KIND(a);
    return length == PyUnicode_GET_LENGTH(b) && kind == (int)PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)length * kind) == 0;
}

static Slot *new_table(Py_ssize_t capacity) {
    Slot *table = PyMem_RawMalloc((size_t)capacity * sizeof(Slot));
    if (table != NULL)
        for (Py_ssize_t j = 0; j < capacity; j++) table[j].first = -1;
    return table;
}

/* ``count(owner, address, n)``: for the ``n`` object pointers at ``address`` (the data of the
 * contiguous object array ``owner``, which keeps them alive), all str, None or float NaN, the
 * index of the first occurrence of each distinct string and its count, as two lists in order of
 * first occurrence (None and NaN skipped); None when an item is anything else (the caller
 * counts another way). Only immutable fields are read, and the GIL is released throughout. */
static PyObject *count(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *owner;
    unsigned long long address;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OKn", &owner, &address, &n)) return NULL;
    PyObject **items = (PyObject **)(uintptr_t)address;
    int other = 0;
    Py_ssize_t capacity = 1024, size = 0;
    Slot *table = new_table(capacity);
    Py_ssize_t *order = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)(capacity / 2 + 1));
    int failed = table == NULL || order == NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && !failed && !other; i++) {
        PyObject *o = items[i];
        if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_READY(o)) {
            other = o != Py_None && !(PyFloat_CheckExact(o) && isnan(PyFloat_AS_DOUBLE(o)));
            continue;
        }
        int kind = PyUnicode_KIND(o);
        uint64_t h = hash_bytes(PyUnicode_DATA(o), PyUnicode_GET_LENGTH(o) * kind, kind);
        Py_ssize_t mask = capacity - 1, j = (Py_ssize_t)(h & (uint64_t)mask);
        while (table[j].first >= 0) {
            if (table[j].hash == h && same(o, items[table[j].first])) break;
            j = (j + 1) & mask;
        }
        if (table[j].first >= 0) {
            table[j].count += 1;
            continue;
        }
        table[j].hash = h;
        table[j].first = i;
        table[j].count = 1;
        order[size++] = j;
        if (2 * size > capacity) { /* grow: rehash into twice the room */
            Py_ssize_t bigger = 2 * capacity;
            Slot *grown = new_table(bigger);
            Py_ssize_t *more = PyMem_RawRealloc(order, sizeof(Py_ssize_t) * (size_t)(bigger / 2 + 1));
            if (grown == NULL || more == NULL) {
                PyMem_RawFree(grown);
                if (more != NULL) order = more;
                failed = 1;
                break;
            }
            order = more;
            for (Py_ssize_t k = 0; k < size; k++) {
                Slot slot = table[order[k]];
                Py_ssize_t m = (Py_ssize_t)(slot.hash & (uint64_t)(bigger - 1));
                while (grown[m].first >= 0) m = (m + 1) & (bigger - 1);
                grown[m] = slot;
                order[k] = m;
            }
            PyMem_RawFree(table);
            table = grown;
            capacity = bigger;
        }
    }
    Py_END_ALLOW_THREADS
    PyObject *firsts = NULL, *counts = NULL, *result = NULL;
    if (other) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    firsts = PyList_New(size);
    counts = PyList_New(size);
    if (firsts == NULL || counts == NULL) goto done;
    for (Py_ssize_t k = 0; k < size; k++) {
        PyObject *first = PyLong_FromSsize_t(table[order[k]].first);
        PyObject *many = PyLong_FromSsize_t(table[order[k]].count);
        if (first == NULL || many == NULL) {
            Py_XDECREF(first);
            Py_XDECREF(many);
            goto done;
        }
        PyList_SET_ITEM(firsts, k, first);
        PyList_SET_ITEM(counts, k, many);
    }
    result = PyTuple_Pack(2, firsts, counts);
done:
    Py_XDECREF(firsts);
    Py_XDECREF(counts);
    PyMem_RawFree(table);
    PyMem_RawFree(order);
    return result;
}

static PyMethodDef methods[] = {
    {"count", count, METH_VARARGS,
     "count(owner, address, n) -> (first indices, counts) of the distinct str, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_strings",
    "Counting a column of Python strings without the GIL (optional: pandas counts without it).",
    0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__strings(void) { return PyModule_Create(&module_def); }
