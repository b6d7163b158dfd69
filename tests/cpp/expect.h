#pragma once
// The C++ tests' one check: counted, and printed when it fails; main returns
// report(), which prints the counts.

#include <cstdio>
#include <string>

namespace fastrnn::testing {

inline int checks = 0, failures = 0;

inline void expect(const std::string& what, bool ok) {
  ++checks;
  if (ok) return;
  ++failures;
  std::printf("FAIL %s\n", what.c_str());
}

inline int report() {
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace fastrnn::testing
