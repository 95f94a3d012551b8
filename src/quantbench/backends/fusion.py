"""One matrix product where a decoder layer reads one input through several projections.

A Llama-style layer multiplies the same hidden state by q, k and v, and the same MLP input by
gate and up: five weight reads, five kernels (and, at batch 1, five split-K reductions) where
two would do. The decode limit (quantbench.scenarios.limit) already multiplies them fused, so
an unfused step can never reach it.

``fuse_projections`` concatenates each group's weights into one tensor and makes the modules'
own weights views into it (the same bytes, no copy kept: the model's memory is unchanged and
every other path, the eager prefill included, computes what it did). The first projection of a
group then computes the whole product once and hands its slices to the others, which return
them when called on the same input; called on another input, each computes its own slice
alone. The model's code is not changed: only the projections' ``forward``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (the module holding the group, its projections in the order the layer calls them)
GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj"), "mlp": ("gate_proj", "up_proj")}


class _Group:
    """The concatenated weight of one group and, between its first and last projection's
    calls, the product's slices with the input they came from."""

    def __init__(self, weight: torch.Tensor, sizes: list[int]):
        self.weight, self.sizes = weight, sizes
        self.input = self.parts = None

    def first(self, x: torch.Tensor) -> torch.Tensor:
        self.input, self.parts = x, F.linear(x, self.weight).split(self.sizes, dim=-1)
        return self.parts[0]

    def part(self, index: int, x: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        same = self.parts is not None and x is self.input
        out = self.parts[index] if same else F.linear(x, own)
        if index == len(self.sizes) - 1:
            self.input = self.parts = None  # nothing kept between steps
        return out


def _plain_linear(module) -> bool:
    return (isinstance(module, torch.nn.Linear) and module.bias is None
            and type(module.weight.data) is torch.Tensor
            and "forward" not in vars(module))  # not fused already


def fuse_projections(model: torch.nn.Module) -> int:
    """Fuse every group of GROUPS whose projections are plain bias-free linear layers of one
    dtype and device (quantised weights, tensor subclasses, are left alone). Returns how many
    groups were fused."""
    fused = 0
    for module in model.modules():
        for holder_name, names in GROUPS.items():
            holder = getattr(module, holder_name, None)
            projections = [getattr(holder, n, None) for n in names] if holder is not None else []
            if not projections or not all(_plain_linear(p) for p in projections):
                continue
            weights = [p.weight.data for p in projections]
            if len({(w.dtype, w.device, w.shape[1]) for w in weights}) != 1:
                continue
            sizes = [w.shape[0] for w in weights]
            with torch.no_grad():
                whole = torch.cat(weights, dim=0)
            group = _Group(whole, sizes)
            start = 0
            for index, (projection, size) in enumerate(zip(projections, sizes, strict=True)):
                own = whole[start:start + size]
                projection.weight.data = own  # a view: the copy above is the only one left
                start += size
                if index == 0:
                    projection.forward = group.first
                else:
                    projection.forward = (lambda x, i=index, w=own, g=group: g.part(i, x, w))
            fused += 1
    return fused
