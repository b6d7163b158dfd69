"""RMSProp with momentum in TensorFlow 1's form (tf.train.RMSPropOptimizer),
the optimizer of the copy task's lab report.

    ms  <- decay * ms + (1 - decay) * g^2          ms starts at 1, not 0
    mom <- momentum * mom + lr * g / sqrt(ms + eps)
    p   <- p - mom

torch.optim.RMSprop differs in two places that matter early in training: its
mean square starts at 0, so with momentum 0.9 the first steps move every
weight by about sqrt(1 / (1 - decay)) * lr each and build up tenfold, where
TensorFlow's first steps are about lr * g; and its eps sits outside the square
root.
"""

import torch

__all__ = ["RMSPropTF"]


class RMSPropTF(torch.optim.Optimizer):
    def __init__(self, params, lr, decay=0.9, momentum=0.9, eps=1e-10):
        if lr <= 0 or not 0 <= decay < 1 or not 0 <= momentum < 1 or eps < 0:
            raise ValueError(f"bad RMSProp settings lr={lr} decay={decay} momentum={momentum}")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom, g = state["ms"], state["mom"], p.grad
                ms.mul_(group["decay"]).addcmul_(g, g, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(
                    g, ms.add(group["eps"]).sqrt_(), value=group["lr"]
                )
                p.sub_(mom)
        return loss
