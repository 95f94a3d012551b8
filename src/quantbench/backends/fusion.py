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

A torchao precision on the compiled path is loaded unquantised, fused, then quantised
(``quantise_fused``): each group's concatenated weight as one weight, the other linear layers
one by one. Its per-row (and per-row group) scales are those of the separate weights, so the
fused product computes what the separate ones would; the group's quantised weight is a
parameter of the module holding the group (``fused_weight``), the projections' own weights
are emptied (no bytes counted twice), and a projection called on another input takes its slice
of the whole product.
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
        self.quantised = False  # True once quantise_fused made the weight one quantised tensor
        self.input = self.parts = None

    def first(self, x: torch.Tensor) -> torch.Tensor:
        self.input, self.parts = x, F.linear(x, self.weight).split(self.sizes, dim=-1)
        return self.parts[0]

    def part(self, index: int, x: torch.Tensor, module: torch.nn.Linear) -> torch.Tensor:
        same = self.parts is not None and x is self.input
        if same:
            out = self.parts[index]
        elif self.quantised:  # the projection's own rows live only in the quantised whole
            out = F.linear(x, self.weight).split(self.sizes, dim=-1)[index]
        else:
            out = F.linear(x, module.weight)
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
            holder.fused_group = group
            start = 0
            for index, (projection, size) in enumerate(zip(projections, sizes, strict=True)):
                # a view: the copy above is the only one left
                projection.weight.data = whole[start:start + size]
                start += size
                if index == 0:
                    projection.forward = group.first
                else:
                    projection.forward = (lambda x, i=index, m=projection, g=group:
                                          g.part(i, x, m))
            fused += 1
    return fused


def fused_groups(model: torch.nn.Module) -> list[tuple[torch.nn.Module, list[str]]]:
    """(module holding a fused group, its projections' names) for every fused group."""
    return [(m, [n for n in GROUPS[name] if hasattr(m, n)])
            for module in model.modules() for name in GROUPS
            if (m := getattr(module, name, None)) is not None and hasattr(m, "fused_group")]


def quantise_fused(model: torch.nn.Module, config) -> None:
    """torchao's ``quantize_`` with ``config`` over a model whose groups ``fuse_projections``
    fused: each group's whole weight as one linear layer's, then every other linear layer but
    the output embedding (transformers' TorchAoConfig keeps it unquantised too)."""
    from torchao.quantization import quantize_

    groups = fused_groups(model)
    for holder, names in groups:
        group = holder.fused_group
        whole = torch.nn.Linear(group.weight.shape[1], group.weight.shape[0], bias=False,
                                device="meta")  # no weight of its own: it takes the group's
        whole.weight = torch.nn.Parameter(group.weight, requires_grad=False)
        quantize_(whole, config)
        holder.fused_weight = whole.weight  # a parameter of the holder: counted once
        group.weight, group.quantised = whole.weight, True
        for name in names:  # the views into the unquantised whole go with it
            own = getattr(holder, name)
            own.weight = torch.nn.Parameter(own.weight.new_empty(0, own.weight.shape[1]),
                                            requires_grad=False)
    grouped = {id(getattr(h, n)) for h, names in groups for n in names}
    head = model.get_output_embeddings()
    quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear)
              and m is not head and id(m) not in grouped)
