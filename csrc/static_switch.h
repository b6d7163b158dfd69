#pragma once
// Turns a runtime bool into a compile-time one, once, at the top of a call:
//   bool_switch(training, [&](auto kTraining) { run<kTraining>(...); });
// so the loops inside carry no branch on it (after mamba's static_switch.h).

#include <type_traits>

namespace fastrnn {

template <class F>
decltype(auto) bool_switch(bool value, F&& f) {
  if (value) return f(std::true_type{});
  return f(std::false_type{});
}

}  // namespace fastrnn
