// The Python extension module fastrnn._C: importing it loads this library,
// whose static initialisers register the ops. It holds the cells' layout
// constants, so that fastrnn/fake.py's fake kernels
// take their shapes from the C++ and not from a second copy:
//   GATES            {cell: Cell::kGates}, gates per cell
//   SAVED            {cell: Cell::kSaved}, workspace planes saved for backward
//   LSTM_PROJ_SAVED  LSTMProjCell::kSaved (with proj_size: one more plane, o * tanh(c))
// and what the ops' kernels take on each device type, so that fastrnn/ops.py
// converts to float32 only where a kernel does not take the dtype itself:
//   NATIVE_DTYPES    {"cpu": names, "cuda": names}: the dtypes (torch's names)
//                    of the backend this build registers on that device type's
//                    keys (backend.h's taken_dtypes): the CPU backend's on
//                    the CPU, except in the emulated-device build
//                    (FASTRNN_EMULATED), which registers the CUDA backend there;
//                    the CUDA backend's on CUDA (used where this build has it)
// and one function, for the tests and the benchmark:
//   cpu_thread_counts()  {"split_calls", "serial_calls", "backoffs"}: how
//                    often the CPU backend's op calls split across threads,
//                    ran on one because the cores were shared, and judged
//                    them shared (cpu/threads.h); None in the emulated build

#include <Python.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "backend.h"
#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"
#include "cuda/dtypes.h"
#if !defined(FASTRNN_EMULATED)
#include "cpu/backend.h"
#include "cpu/threads.h"
#endif

namespace {

using Counts = std::initializer_list<std::pair<const char*, int>>;

// module.name = {cell: count}; -1 with a Python error set on failure.
int add_counts(PyObject* module, const char* name, Counts counts) {
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return -1;
  for (const auto& [cell, count] : counts) {
    PyObject* value = PyLong_FromLong(count);
    const int rc = value == nullptr ? -1 : PyDict_SetItemString(dict, cell, value);
    Py_XDECREF(value);
    if (rc < 0) {
      Py_DECREF(dict);
      return -1;
    }
  }
  // PyModule_AddObject takes the reference only when it succeeds.
  if (PyModule_AddObject(module, name, dict) < 0) {
    Py_DECREF(dict);
    return -1;
  }
  return 0;
}

// A tuple of the dtypes' names (torch's: "float32", ...); nullptr with a
// Python error set on failure.
PyObject* dtype_names(const std::vector<at::ScalarType>& types) {
  PyObject* names = PyTuple_New(static_cast<Py_ssize_t>(types.size()));
  for (size_t i = 0; names != nullptr && i < types.size(); ++i) {
    PyObject* name = PyUnicode_FromString(std::string(c10::getDtypeNames(types[i]).first).c_str());
    if (name == nullptr) {
      Py_CLEAR(names);
      break;
    }
    PyTuple_SET_ITEM(names, static_cast<Py_ssize_t>(i), name);  // steals the reference
  }
  return names;
}

// The dtypes a backend with or without float16/bfloat16 kernels takes (the
// CUDA backend's: every CUDA device takes what its kernels were built for).
std::vector<at::ScalarType> float_types(bool half) {
  if (!half) return {at::kFloat, at::kDouble};
  return {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16};
}

// module.NATIVE_DTYPES = {device type: (dtype names)}; -1 with a Python
// error set on failure.
int add_native_dtypes(PyObject* module) {
#if defined(FASTRNN_EMULATED)
  const std::vector<at::ScalarType> cpu = float_types(fastrnn::cuda::kHalfTypes);
#else
  // reads FASTRNN_CPU_ISA, FASTRNN_CPU_HALF and FASTRNN_CPU_THREADS, whose
  // bad values raise here
  std::vector<at::ScalarType> cpu;
  try {
    cpu = fastrnn::taken_dtypes<fastrnn::CPUBackend>();
    fastrnn::cpu::thread_mode();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return -1;
  }
#endif
  PyObject* dict = Py_BuildValue("{sNsN}", "cpu", dtype_names(cpu), "cuda",
                                 dtype_names(float_types(fastrnn::cuda::kHalfTypes)));
  if (dict == nullptr) return -1;
  if (PyModule_AddObject(module, "NATIVE_DTYPES", dict) < 0) {
    Py_DECREF(dict);
    return -1;
  }
  return 0;
}

PyObject* cpu_thread_counts(PyObject* /*self*/, PyObject* /*args*/) {
#if defined(FASTRNN_EMULATED)
  Py_RETURN_NONE;
#else
  const fastrnn::cpu::CoreSharing::Counts counts = fastrnn::cpu::core_sharing().counts();
  return Py_BuildValue("{sLsLsL}", "split_calls", static_cast<long long>(counts.split_calls),
                       "serial_calls", static_cast<long long>(counts.serial_calls), "backoffs",
                       static_cast<long long>(counts.backoffs));
#endif
}

PyMethodDef methods[] = {
    {"cpu_thread_counts", cpu_thread_counts, METH_NOARGS,
     "How often CPU op calls split across threads, ran on one, and judged the cores shared."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  using namespace fastrnn;
  // Every field named: the CUDA build's -Wextra rejects a short initialiser.
  static struct PyModuleDef module_def = {.m_base = PyModuleDef_HEAD_INIT,
                                          .m_name = "_C",
                                          .m_doc = nullptr,
                                          .m_size = -1,
                                          .m_methods = methods,
                                          .m_slots = nullptr,
                                          .m_traverse = nullptr,
                                          .m_clear = nullptr,
                                          .m_free = nullptr};
  PyObject* module = PyModule_Create(&module_def);
  if (module == nullptr) return nullptr;
  const Counts gates = {
      {"rnn", RNNCell::kGates}, {"lstm", LSTMCell::kGates}, {"gru", GRUCell::kGates}};
  const Counts saved = {
      {"rnn", RNNCell::kSaved}, {"lstm", LSTMCell::kSaved}, {"gru", GRUCell::kSaved}};
  if (add_counts(module, "GATES", gates) < 0 || add_counts(module, "SAVED", saved) < 0 ||
      PyModule_AddIntConstant(module, "LSTM_PROJ_SAVED", LSTMProjCell::kSaved) < 0 ||
      add_native_dtypes(module) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
