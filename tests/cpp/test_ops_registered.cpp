// A program linked to libfastrnn, as a libtorch user's would be, must find
// every op and its CPU kernel in the dispatcher, and get torch's answer from one.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>
#include <optional>
#include <tuple>

int main() {
  int failures = 0;
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const char* name : {"rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
                           "gru_forward", "gru_backward"}) {
    const auto op = dispatcher.findSchema({std::string("fastrnn::") + name, ""});
    if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CPU)) {
      std::printf("FAIL fastrnn::%s: %s\n", name, op ? "no CPU kernel" : "not registered");
      ++failures;
    }
  }
  if (failures) return 1;

  using at::Tensor;
  using Opt = std::optional<Tensor>;
  const auto rnn = dispatcher.findSchemaOrThrow("fastrnn::rnn_forward", "")
                       .typed<std::tuple<Tensor, Tensor, Tensor>(
                           const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Opt&,
                           const Opt&, const Opt&, bool, bool, bool)>();

  const int64_t T = 4, B = 3, I = 5, H = 6;
  at::manual_seed(0);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const Tensor x = at::randn({T, B, I}, opts), hx = at::randn({B, H}, opts);
  const Tensor w_ih = at::randn({H, I}, opts), w_hh = at::randn({H, H}, opts);
  const Tensor b_ih = at::randn({H}, opts), b_hh = at::randn({H}, opts);
  const auto [out, h_n, ws] = rnn.call(x, hx, w_ih, w_hh, b_ih, b_hh, std::nullopt,
                                       /*reverse=*/false, /*relu=*/false, /*training=*/false);

  Tensor h = hx;
  for (int64_t t = 0; t < T; ++t) {
    h = at::tanh(at::addmm(b_ih, x[t], w_ih.t()) + at::addmm(b_hh, h, w_hh.t()));
    if (!at::allclose(out[t], h, 1e-10, 1e-12)) {
      std::printf("FAIL rnn_forward output[%lld] differs from the reference\n", (long long)t);
      ++failures;
    }
  }
  if (!at::allclose(h_n, h, 1e-10, 1e-12)) {
    std::printf("FAIL rnn_forward h_n differs from the reference\n");
    ++failures;
  }
  std::printf("test_ops_registered: 6 ops found with CPU kernels, rnn_forward %s\n",
              failures ? "WRONG" : "matches the reference");
  return failures ? 1 : 0;
}
