"""Boolean tasks for ±1 threshold networks, and a solved network read as logic gates, after "Learning with Boolean
threshold functions" (Elser, Lal): https://arxiv.org/abs/2602.17493

With the margin δ = √(m/3) every threshold function is a copy, a NOT or a majority of at most three literals
(And(p, q) = Maj(-1, p, q), Or(p, q) = Maj(1, p, q)). :func:`read_gates` names each node from its exact truth table
over all its input patterns, so the name never depends on rounding.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_choice
from core.learning_rules.rrr import infer

MAX_GATE_INPUTS = 12  # 2^12 patterns per node: wider nodes are reported as plain thresholds


def _bits(n: int, k: int) -> list[float]:
    return [1.0 if (n >> i) & 1 else -1.0 for i in range(k)]


def _xor() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    return x, -(x[:, :1] * x[:, 1:])


def _rule30() -> tuple[torch.Tensor, torch.Tensor]:
    """The rule-30 cellular automaton's local rule: new centre = left XOR (centre OR right), all 8 neighbourhoods."""
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)))
    left, centre_or_right = x[:, 0] > 0, (x[:, 1] > 0) | (x[:, 2] > 0)
    return x, torch.where(left ^ centre_or_right, 1.0, -1.0).unsqueeze(-1)


def _multiplier_2bit() -> tuple[torch.Tensor, torch.Tensor]:
    """All 16 products of two 2-bit numbers (least significant bit first): inputs (16, 4), targets (16, 4)."""
    rows = list(itertools.product(range(4), repeat=2))
    return torch.tensor([_bits(a, 2) + _bits(b, 2) for a, b in rows]), torch.tensor([_bits(a * b, 4) for a, b in rows])


@dataclass(frozen=True)
class BooleanTask:
    """A truth table to learn: its name, the hidden widths that solve it in seconds, and a builder of (inputs,
    targets) as ±1 tensors (I, n_0) and (I, n_L)."""

    label: str
    hidden: tuple[int, ...]
    build: Callable[[], tuple[torch.Tensor, torch.Tensor]]


BOOLEAN_TASKS = {
    "xor": BooleanTask("XOR", (3,), _xor),
    "rule30": BooleanTask("Rule-30 local rule", (3,), _rule30),
    "mult2": BooleanTask("2-bit multiplier", (4, 4), _multiplier_2bit),
}


def boolean_task(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ±1 (inputs, targets) of the task ``name`` (a key of ``BOOLEAN_TASKS``).

    >>> x, y = boolean_task("mult2")
    >>> tuple(x.shape), tuple(y.shape)
    ((16, 4), (16, 4))
    """
    return BOOLEAN_TASKS[check_choice("name", name, tuple(BOOLEAN_TASKS))].build()


@dataclass(frozen=True)
class Gate:
    """One node of a solved net: ``name`` (AND, OR, MAJ, COPY, NOT, TRUE, FALSE, or THR for any other threshold),
    the literals it reads (``¬`` marks a negated input), and its weights over √(m/3) rounded to {-1, 0, 1}
    (one per input, then the bias weight)."""

    layer: int
    node: int
    name: str
    literals: tuple[str, ...]
    rounded: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.name}({', '.join(self.literals)})" if self.literals else self.name


def node_names(widths: tuple[int, ...]) -> list[list[str]]:
    """x1.. for the inputs, h{layer}.{j} for hidden nodes, y1.. for the outputs."""
    last = len(widths) - 1
    prefix = ["x"] + [f"h{k}." for k in range(1, last)] + ["y"]
    return [[f"{prefix[k]}{j + 1}" for j in range(n)] for k, n in enumerate(widths)]


def read_gates(weights: tuple[torch.Tensor, ...]) -> list[list[Gate]]:
    """Each node of one run's net as a gate; ``weights[l]`` is (n_{l+1}, n_l + 1), the bias weight last.

    >>> w = torch.tensor([[1.0, 1.0, 1.0]])  # sgn(x1 + x2 - 1): true only when both are
    >>> read_gates((w,))[0][0].label
    'AND(x1, x2)'
    """
    _check_weights(weights)
    widths = (weights[0].shape[1] - 1, *(w.shape[0] for w in weights))
    names = node_names(widths)
    return [[_gate(k + 1, j, row, names[k]) for j, row in enumerate(w.double())] for k, w in enumerate(weights)]


def _check_weights(weights: tuple[torch.Tensor, ...]) -> None:
    """A net's layers chain (each row: its inputs' weights, then the bias) and hold finite real numbers."""
    inputs = None
    for k, w in enumerate(weights if isinstance(weights, (tuple, list)) and weights else (None,)):
        ok = isinstance(w, torch.Tensor) and w.ndim == 2 and w.is_floating_point() and bool(w.isfinite().all())
        if not ok or w.shape[1] < 2 or inputs not in (None, w.shape[1] - 1):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise OptiscopeError(
                f"Expected `weights[{k}]` to be a finite float (nodes, inputs + 1) matrix fed by the layer before, "
                f"but got {shape}"
            )
        inputs = w.shape[0]


def _gate(layer: int, node: int, w: torch.Tensor, inputs: list[str]) -> Gate:
    n = len(inputs)
    rounded = tuple(int(v) for v in (w / (len(w) / 3) ** 0.5).round().clamp(-1, 1))
    if n > MAX_GATE_INPUTS:
        return Gate(layer, node, "THR", tuple(inputs), rounded)
    patterns = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=w.dtype)  # (2^n, n)
    out = patterns @ w[:-1] - w[-1] >= 0  # the bias input is fixed at -1
    relevant = [i for i in range(n) if _depends_on(out, n, i)]
    literals = tuple(inputs[i] if w[i] > 0 else f"¬{inputs[i]}" for i in relevant)
    if not relevant:
        return Gate(layer, node, "TRUE" if bool(out[0]) else "FALSE", (), rounded)
    if len(relevant) == 1:
        return Gate(layer, node, "COPY" if w[relevant[0]] > 0 else "NOT", (inputs[relevant[0]],), rounded)
    signs = torch.sign(w[relevant]).to(w.dtype)
    true_literals = ((patterns[:, relevant] * signs) > 0).sum(-1)  # (2^n,)
    return Gate(layer, node, _symmetric_name(out, true_literals, len(relevant)), literals, rounded)


def _depends_on(out: torch.Tensor, n: int, i: int) -> bool:
    """Whether flipping input i (bit n-1-i of the pattern index, itertools.product order) ever changes the output."""
    index = torch.arange(len(out))
    return bool((out != out[index ^ (1 << (n - 1 - i))]).any())


def _symmetric_name(out: torch.Tensor, true_literals: torch.Tensor, k: int) -> str:
    """AND, OR or MAJ when the output depends only on how many literals are true; THR otherwise."""
    by_count = {int(c): set(out[true_literals == c].tolist()) for c in true_literals.unique()}
    if any(len(values) > 1 for values in by_count.values()):
        return "THR"
    threshold = min(c for c, values in by_count.items() if True in values)
    return {k: "AND", 1: "OR"}.get(threshold, "MAJ" if 2 * threshold - 1 == k else f"THR≥{threshold}")


def truth_table(weights: tuple[torch.Tensor, ...], inputs: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's ±1 values under sign inference for one run: [inputs (I, n_0), h1 (I, n_1), …, outputs]."""
    values = [inputs.to(weights[0].dtype)]
    for w in weights:
        values.append(infer((w.unsqueeze(0),), values[-1])[0])
    return values
