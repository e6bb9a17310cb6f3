"""Invertible multilayer perceptrons for GAIT-prop and target propagation (Ahmad et al. 2020; Dalm et al. 2021).

Layer l (l = 1..L, L = depth + 1) computes, on the first N_l units of the layer below (the input for l = 1)::

    a_l = W_l h_{l-1}[:N_l] + b_l,   h_l = f(a_l),   f = leaky-ReLU with slope 0.1

and, for l >= 2, has the exact inverse (used by ``gaitprop`` and ``tp``)::

    g_l(h_l) = W_l^{-1} (f^{-1}(h_l) - b_l)        (GAIT-prop 2020, section 2; repo ``inv_layer.py``)

Every layer l >= 2 is square (N_l x N_l). The output layer L is ``output_width`` wide: its first
``num_classes`` units are the readout (``forward`` returns them), the others are **auxiliary units**
whose target is their own activity. Layer 1 is square when the input has N_1 features (MNIST, width
784) and otherwise a non-square dense layer (CIFAR-10: 3072 -> 1024) that is never inverted; the
``input_layer`` option chooses. The **tower** variant (TowerInvNet of the 2020 code) shrinks the
width layer by layer (784 -> 784, 500, 200, 10): each layer reads the first N_l units below, and the
inverse pass re-appends the dropped units from the forward pass (the caller does that).

Inverses are kept current: each layer's inverse (``inverse_method="solve"``, the default: an LU
factorization, 2/3 N^3 flops, then a batched triangular solve per use, 2 B N^2; ``"inverse"``: the
explicit W^{-1} by ``torch.linalg.inv``, 2 N^3, then a product per use) is
refreshed in the post-step hook ``apply_constraints()`` for every layer whose inverse is in use, and
cached with a copy of the weight it was computed from: a use that finds the weight changed any other
way (``load_state_dict``, ``.to``, a loop that skips the hook) recomputes it first. (An exact
comparison, O(N^2), because torch's fused Adam updates weights in place without bumping version
counters.) Models trained by rules that never
ask for inverses (BP, FA) pay nothing for them. The cache is not part of the state dict (it is a
function of the weights), so checkpoints stay small and resume is exact.

Initialization (``init``): ``orthogonal`` (Haar-random orthogonal matrices, rows orthonormal for the
non-square first layer; the papers' setting, ``scipy.stats.ortho_group`` in the 2020 code) or
``xavier`` (Xavier-Gaussian, what the 2020 code used for lambda > 0 runs before its init-flag fix).
Biases start at zero. ``dtype`` is float64 by default: both codebases compute in double precision
(numpy defaults; the follow-up's README: "experiments are run in tf.float64") and GAIT-prop's
incremental targets vanish below float32 resolution within two layers. Inputs are cast to it.

Orthogonality regularizers (:func:`orthogonality_penalty_gradient`), both published forms, named:

    off-diagonal   R(W) = lambda sum_{i != j} ((W W^T)_ij)^2   dR/dW = 4 lambda ((W W^T) o (1 - I)) W
                   (nasiryahm/GAIT-prop ``ortho_gradients``: the 2020 paper's code; the default)
    frobenius      R(W) = lambda ||W W^T - I||_F^2              dR/dW = 4 lambda (W W^T - I) W
                   (artcogsys/GAIT_prop_scaling ``get_ortho_loss``: the 2021 follow-up's code)

Rules add lambda dR/dW to every square layer's update before the optimizer (the non-square first
layer is not regularized). Departure: the 2020 code gives the output layer the same seed as the last
hidden layer (identical initial weights); here every layer gets its own draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from creditlab.models import register_model
from creditlab.models.vnn import init_generator

#: leaky-ReLU slope of both GAIT-prop codebases (``utils.py::leaky_relu``)
SLOPE = 0.1
INITS = ("orthogonal", "xavier")
INVERSE_METHODS = ("inverse", "solve")
INPUT_LAYERS = ("auto", "square", "dense")
ORTHOGONALITY_FORMS = ("off-diagonal", "frobenius")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: the 2020 code's TowerInvNet hidden widths (input 784, output num_classes)
TOWER_WIDTHS = (784, 500, 200)


def leaky_relu(a: torch.Tensor, slope: float = SLOPE) -> torch.Tensor:
    """f(a) = a for a > 0, slope * a otherwise."""
    return torch.where(a > 0, a, slope * a)


def leaky_relu_inverse(h: torch.Tensor, slope: float = SLOPE) -> torch.Tensor:
    """f^{-1}(h) = h for h > 0, h / slope otherwise."""
    return torch.where(h > 0, h, h / slope)


def leaky_relu_derivative(a: torch.Tensor, slope: float = SLOPE) -> torch.Tensor:
    """f'(a): 1 for a > 0, slope otherwise (same dtype as ``a``). Equals f'(f^{-1}(h)) from h = f(a)."""
    return torch.where(a > 0, torch.ones_like(a), torch.full_like(a, slope))


#: rows per block of :func:`symmetric_gram` (measured: no gain below ~256 rows on a CPU core)
GRAM_BLOCK_ROWS = 256


def symmetric_gram(weight: torch.Tensor, block_rows: int = GRAM_BLOCK_ROWS) -> torch.Tensor:
    """G = W W^T (N, N) computing only its upper block triangle, then mirroring it (a blocked syrk).

    With k = ceil(N / block_rows) row blocks W_i, the products W_i W_j^T for i <= j cost (k + 1) / 2k of
    the full 2 N^2 M flops (5/8 at k = 4: N = 784); torch has no symmetric rank-k product. N <=
    block_rows: the plain product.
    """
    rows = weight.shape[0]
    blocks = math.ceil(rows / block_rows)
    if blocks <= 1:
        return weight @ weight.T
    edges = [rows * i // blocks for i in range(blocks + 1)]
    gram = torch.empty(rows, rows, dtype=weight.dtype, device=weight.device)
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        strip = weight[start:stop] @ weight[start:].T  # block row i: columns from the diagonal block on
        gram[start:stop, start:] = strip
        gram[stop:, start:stop] = strip[:, stop - start:].T  # the mirror below the diagonal block
    return gram


def orthogonality_penalty_gradient(weight: torch.Tensor, form: str) -> torch.Tensor:
    """dR/dW for lambda = 1 of the named orthogonality regularizer (see the module docstring).

    weight: (N, M) with N <= M; the result has its shape and dtype. W W^T by :func:`symmetric_gram`.
    """
    gram = symmetric_gram(weight)
    if form == "off-diagonal":
        gram.diagonal().zero_()
    elif form == "frobenius":
        gram.diagonal().sub_(1.0)
    else:
        raise ValueError(f"unknown orthogonality form {form!r}; valid: {', '.join(ORTHOGONALITY_FORMS)}")
    return 4.0 * gram @ weight


def orthogonality_penalty(weight: torch.Tensor, form: str) -> torch.Tensor:
    """R(W) for lambda = 1 of the named orthogonality regularizer (a scalar tensor)."""
    gram = weight @ weight.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    if form == "off-diagonal":
        return ((gram * (1 - eye)) ** 2).sum()
    if form == "frobenius":
        return ((gram - eye) ** 2).sum()
    raise ValueError(f"unknown orthogonality form {form!r}; valid: {', '.join(ORTHOGONALITY_FORMS)}")


def haar_orthogonal(rows: int, cols: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns, Haar-distributed.

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q (Mezzadri 2007), in float64.
    """
    big, small = max(rows, cols), min(rows, cols)
    gaussian = torch.randn(big, small, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return (q.T if rows < cols else q).to(dtype).contiguous()


@dataclass
class ForwardPass:
    """Activities of one forward pass, per layer l = 1..L (list index l - 1), all (batch, ...).

    ``inputs[l-1]``: what layer l reads (the first N_l units below); ``pre[l-1]``: a_l;
    ``post[l-1]``: h_l (N_l wide).
    """

    inputs: list[torch.Tensor]
    pre: list[torch.Tensor]
    post: list[torch.Tensor]

    @property
    def output(self) -> torch.Tensor:
        """h_L, the whole output layer (readout and auxiliary units)."""
        return self.post[-1]


class InvertibleMLP(nn.Module):
    """Leaky-ReLU MLP whose layers 2..L are square and exactly invertible.  x: (batch, *input_shape).

    ``layers[l-1]`` is layer l (a plain ``nn.Linear``, so FA/DFA can convert the model too);
    ``widths[l-1]`` = N_l. ``forward`` returns the readout h_L[:, :num_classes].
    """

    def __init__(self, in_features: int, widths: Sequence[int], output_width: int, num_classes: int,
                 input_layer: str = "auto", init: str = "orthogonal", dtype: torch.dtype = torch.float64,
                 inverse_method: str = "solve", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not widths:
            raise ValueError("an invertible MLP needs at least one hidden layer")
        all_widths = [*map(int, widths), int(output_width)]
        if any(w < 1 for w in all_widths):
            raise ValueError(f"layer widths must be positive, got {all_widths}")
        for below, above in zip(all_widths, all_widths[1:], strict=False):
            if above > below:
                raise ValueError(f"layer widths must not grow after the first layer (each square layer reads the "
                                 f"first N_l units below it), got {all_widths}")
        if not num_classes <= output_width:
            raise ValueError(f"output_width {output_width} is smaller than the {num_classes} classes it must hold")
        if input_layer not in INPUT_LAYERS:
            raise ValueError(f"unknown input_layer {input_layer!r}; valid: {', '.join(INPUT_LAYERS)}")
        if input_layer == "auto":
            input_layer = "square" if in_features == all_widths[0] else "dense"
        if input_layer == "square" and in_features != all_widths[0]:
            raise ValueError(f"input_layer='square' needs width {in_features} (the input size), got "
                             f"{all_widths[0]}; use input_layer='dense' for a non-square first layer")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
        if inverse_method not in INVERSE_METHODS:
            raise ValueError(f"unknown inverse_method {inverse_method!r}; valid: {', '.join(INVERSE_METHODS)}")
        generator = generator if generator is not None else init_generator(None)
        self.in_features, self.num_classes, self.slope = in_features, num_classes, SLOPE
        self.widths = all_widths
        self.input_layer, self.init, self.inverse_method = input_layer, init, inverse_method
        self.layers = nn.ModuleList()
        for index, width in enumerate(all_widths):
            fan_in = in_features if index == 0 else width  # square on its own width from layer 2 on
            layer = nn.Linear(fan_in, width, dtype=dtype)
            with torch.no_grad():
                if init == "orthogonal":
                    layer.weight.copy_(haar_orthogonal(width, fan_in, generator, dtype))
                else:
                    std = math.sqrt(2.0 / (fan_in + width))
                    layer.weight.copy_(torch.randn(width, fan_in, generator=generator, dtype=torch.float64) * std)
                layer.bias.zero_()
            self.layers.append(layer)
        self._inverse_cache: dict[int, tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]] = {}

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype (inputs are cast to it)."""
        return self.layers[0].weight.dtype

    @property
    def depth(self) -> int:
        """L: the number of weight layers (hidden layers + the output layer)."""
        return len(self.layers)

    def is_square(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) has a square weight."""
        weight = self.layers[index].weight
        return weight.shape[0] == weight.shape[1]

    def flatten_input(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, *input_shape) -> (batch, in_features) in the model's dtype."""
        return x.reshape(x.shape[0], -1).to(self.dtype)

    def forward_pass(self, x: torch.Tensor) -> ForwardPass:
        """Every layer's input, pre-activation and activity (see :class:`ForwardPass`)."""
        below = self.flatten_input(x)
        inputs, pre, post = [], [], []
        for index, layer in enumerate(self.layers):
            fed = below if index == 0 else below[:, :layer.in_features]
            a = layer(fed)
            below = leaky_relu(a, self.slope)
            inputs.append(fed)
            pre.append(a)
            post.append(below)
        return ForwardPass(inputs, pre, post)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Readout units h_L[:, :num_classes] (class scores)."""
        return self.forward_pass(x).output[:, :self.num_classes]

    # -- exact inverses ---------------------------------------------------------------------------
    def _inverse_entry(self, index: int, force: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        weight = self.layers[index].weight
        cached = self._inverse_cache.get(index)
        # keyed by the exact weight values: fused optimizers update in place without bumping version counters
        if not force and cached is not None and cached[0].shape == weight.shape and cached[0].device == weight.device \
                and torch.equal(cached[0], weight.detach()):
            return cached[1]
        if not self.is_square(index):
            raise ValueError(f"layer {index + 1} is not square ({tuple(weight.shape)}) and has no inverse")
        with torch.no_grad():
            entry: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
            if self.inverse_method == "inverse":
                entry = torch.linalg.inv(weight)
            else:
                entry = torch.linalg.lu_factor(weight)
        self._inverse_cache[index] = (weight.detach().clone(), entry)
        return entry

    def inverse_weight(self, index: int) -> torch.Tensor:
        """W^{-1} of layer ``index`` (0-based), current for the present weights."""
        entry = self._inverse_entry(index)
        if isinstance(entry, tuple):
            eye = torch.eye(self.layers[index].weight.shape[0], dtype=self.dtype, device=entry[0].device)
            return torch.linalg.lu_solve(entry[0], entry[1], eye)
        return entry

    def invert_layer(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """g_l(h) = W_l^{-1} (f^{-1}(h) - b_l) for layer ``index`` = l - 1; h: (batch, N_l) -> (batch, N_l)."""
        layer = self.layers[index]
        centered = leaky_relu_inverse(h, self.slope) - layer.bias.detach()
        entry = self._inverse_entry(index)
        if isinstance(entry, tuple):  # (W x^T = centered^T) by the LU factors
            return torch.linalg.lu_solve(entry[0], entry[1], centered.T).T
        return centered @ entry.T

    def refresh_inverses(self) -> None:
        """Recompute the inverse of every layer whose inverse is in use (no-op for unused inverses)."""
        for index in list(self._inverse_cache):
            self._inverse_entry(index, force=True)

    def apply_constraints(self) -> None:
        """Post-step hook: keep every inverse in use current after the optimizer changed the weights."""
        self.refresh_inverses()

    def forget_inverses(self) -> None:
        """Drop the inverse cache (e.g. before timing the first refresh)."""
        self._inverse_cache.clear()

    def __getstate__(self) -> dict:
        # deep copies and pickles start with an empty cache (it is a function of the weights)
        state = self.__dict__.copy()
        state["_inverse_cache"] = {}
        return state

    # -- orthogonality regularizer ----------------------------------------------------------------
    def orthogonality_gradients(self, strength: float, form: str) -> dict[str, torch.Tensor]:
        """{weight name: strength * dR/dW} for every square layer (see the module docstring)."""
        if strength == 0.0:
            return {}
        return {f"layers.{i}.weight": strength * orthogonality_penalty_gradient(layer.weight.detach(), form)
                for i, layer in enumerate(self.layers) if self.is_square(i)}


def is_invertible_mlp(model: nn.Module) -> bool:
    """True for an :class:`InvertibleMLP` (the models ``gaitprop``, ``tp`` and ``dtp`` train)."""
    return isinstance(model, InvertibleMLP)


@register_model("invertible-mlp",
                "invertible leaky-ReLU MLP (GAIT-prop): 4 hidden x 784, square layers, aux output units, float64",
                epochs=100, lr=1e-4, optimizer="adam", batch_size=60, schedule="none", normalization="unit")
def build_invertible_mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 784, depth: int = 4,
                         widths: Sequence[int] | None = None, output_width: int | None = None,
                         tower: bool = False, input_layer: str = "auto", init: str = "orthogonal",
                         dtype: str = "float64", inverse_method: str = "solve",
                         seed: int | None = None) -> InvertibleMLP:
    """``depth`` hidden layers of ``width`` (or explicit ``widths``), output layer ``output_width`` wide
    (default: the last hidden width, readout + auxiliary units). ``tower=True``: the 2020 code's
    TowerInvNet (hidden 784, 500, 200; output ``num_classes`` wide). CIFAR-10 (3072 inputs) with
    width 1024 gets a dense 3072 -> 1024 first layer automatically (``input_layer``)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if tower:
        if widths is not None:
            raise ValueError("give either tower=True or widths, not both")
        widths, output_width = TOWER_WIDTHS, num_classes if output_width is None else output_width
    if widths is None:
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        widths = (int(width),) * int(depth)
    widths = tuple(int(w) for w in widths)
    return InvertibleMLP(math.prod(input_shape), widths, widths[-1] if output_width is None else int(output_width),
                         num_classes, input_layer, init, DTYPES[dtype], inverse_method, init_generator(seed))


__all__ = ["DTYPES", "INITS", "ORTHOGONALITY_FORMS", "SLOPE", "ForwardPass", "InvertibleMLP",
           "build_invertible_mlp", "haar_orthogonal", "is_invertible_mlp", "leaky_relu", "leaky_relu_derivative",
           "leaky_relu_inverse", "orthogonality_penalty", "orthogonality_penalty_gradient", "symmetric_gram"]
