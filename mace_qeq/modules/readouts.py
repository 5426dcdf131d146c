"""Per-atom QEq parameters from MACE's invariant node features.

Electronegativity (eV/e), one value per head, bounded around a per-element value:

    χᵢ = χ⁰_{Zᵢ} + Δq J_{Zᵢ} tanh(MLP_χ(hᵢ) / (Δq J_{Zᵢ})),    J_Z = J_min + softplus(j_Z)

Hardness (eV/e²), bounded below:

    Jᵢ = J_min + softplus(j_{Zᵢ} [+ MLP_J(hᵢ)])

per element (``hardness="element"``, NequIP-LR's choice) or also environment
dependent (``hardness="environment"``). hᵢ are the scalar (0e) features of one
MACE layer. Gaussian widths σ_Z (Å) are per element, fixed (default: covalent
radii) or learnable (σ = exp(s), so σ > 0).

Why the bounds: the QEq energy at the charges, min_q Σ[χq + ½Jq²] + ½qᵀΦq, is
≥ −Σᵢ(χᵢ − μ)²/(2Jᵢ) because Φ is positive semi-definite; an unbounded χ
readout, extrapolating at close contact, opens holes of thousands of eV with
charges of tens of e. The environment term can shift χ by less than Δq J_Z,
i.e. move an atom's charge from its element value by about Δq (e) at most
(a charge responds to χ as 1/J), whatever the geometry and however large or
small the fitted J_Z; with Jᵢ ≥ J_min > 0 the energy stays bounded too.
"""

import math
from typing import Callable, List, Optional, Tuple

import torch
from e3nn import o3
from mace.modules.blocks import NonLinearReadoutBlock
from torch import Tensor


def inverse_softplus(x: float) -> float:
    """y with softplus(y) = x (x > 0), without overflow: y = x + ln(1 − e⁻ˣ)."""
    return x + math.log(-math.expm1(-x))


class ElectronegativityHardnessReadout(torch.nn.Module):
    """χ and J for every atom, per head, from scalar node features [N, F].

    ``charge_range`` Δq (e) bounds the environment part of χ to ±Δq J_Z
    (0: unbounded, as in models saved by mace-qeq 0.1.0); ``minimum_hardness``
    is J_min (eV/e²).
    """

    def __init__(
        self,
        num_features: int,
        num_elements: int,
        num_heads: int,
        mlp_irreps: o3.Irreps,
        gate: Optional[Callable],
        hardness: str = "element",
        initial_hardness: float = 5.0,
        minimum_hardness: float = 1.0,
        charge_range: float = 1.0,
    ):
        super().__init__()
        if hardness not in ("element", "environment"):
            raise ValueError(f"hardness must be 'element' or 'environment'; got {hardness!r}")
        if not minimum_hardness > 0.0:
            raise ValueError(f"minimum_hardness must be > 0 eV/e²; got {minimum_hardness}")
        if not initial_hardness > minimum_hardness:
            raise ValueError(f"initial_hardness {initial_hardness} must exceed minimum_hardness {minimum_hardness}")
        if not charge_range >= 0.0:
            raise ValueError(f"charge_range must be ≥ 0 e (0: unbounded); got {charge_range}")
        self.num_heads = num_heads
        self.minimum_hardness = minimum_hardness
        self.charge_range = charge_range
        irreps_in = o3.Irreps(f"{num_features}x0e")
        irreps_out = o3.Irreps(f"{num_heads}x0e")
        hidden = (num_heads * o3.Irreps(mlp_irreps)).simplify()
        self.electronegativity_mlp = NonLinearReadoutBlock(irreps_in, hidden, gate, irreps_out, num_heads)
        self.electronegativity_offset = torch.nn.Parameter(torch.zeros(num_elements, num_heads))
        self.hardness_offset = torch.nn.Parameter(
            torch.full((num_elements, num_heads), inverse_softplus(initial_hardness - minimum_hardness))
        )
        if hardness == "environment":
            self.hardness_mlp = NonLinearReadoutBlock(irreps_in, hidden, gate, irreps_out, num_heads)
        # Start from small environment-dependent parts: the per-element terms dominate.
        with torch.no_grad():
            for mlp in self.children():
                if isinstance(mlp, NonLinearReadoutBlock):
                    mlp.linear_2.weight.mul_(0.1)

    def __setstate__(self, state):
        # Models saved by mace-qeq 0.1.0 had an unbounded χ: keep their predictions.
        state.setdefault("charge_range", 0.0)
        super().__setstate__(state)

    @torch.no_grad()
    def set_element_values(self, electronegativity: List[float], hardness: List[float]) -> None:
        """Set χ⁰_Z (eV/e) and the per-element J_Z (eV/e², > J_min) of every head (e.g. fitted to data)."""
        chi = torch.tensor(electronegativity, dtype=self.electronegativity_offset.dtype)
        raw = [inverse_softplus(max(j - self.minimum_hardness, 1e-3)) for j in hardness]
        self.electronegativity_offset.copy_(chi[:, None].expand_as(self.electronegativity_offset))
        self.hardness_offset.copy_(torch.tensor(raw, dtype=chi.dtype)[:, None].expand_as(self.hardness_offset))

    def forward(self, features: Tensor, node_attrs: Tensor, node_heads: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (χ [N] in eV/e, J [N] in eV/e²) for each atom's head."""
        atoms = torch.arange(features.shape[0], device=features.device)
        environment = self.electronegativity_mlp(features, node_heads)
        raw_hardness = node_attrs @ self.hardness_offset
        if self.charge_range > 0.0:
            span = self.charge_range * (torch.nn.functional.softplus(raw_hardness) + self.minimum_hardness)
            environment = span * torch.tanh(environment / span)
        chi = environment + node_attrs @ self.electronegativity_offset
        if hasattr(self, "hardness_mlp"):
            raw_hardness = raw_hardness + self.hardness_mlp(features, node_heads)
        hardness = torch.nn.functional.softplus(raw_hardness) + self.minimum_hardness
        return chi[atoms, node_heads], hardness[atoms, node_heads]


class GaussianWidths(torch.nn.Module):
    """Per-element Gaussian charge widths σ_Z (Å), fixed or learnable (σ = exp(s))."""

    def __init__(self, sigma: List[float], learnable: bool = False):
        super().__init__()
        if len(sigma) == 0 or min(sigma) <= 0:
            raise ValueError(f"Gaussian widths must be > 0 Å for every element; got {sigma}")
        log_sigma = torch.log(torch.tensor(sigma, dtype=torch.get_default_dtype()))
        if learnable:
            self.log_sigma = torch.nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def forward(self, node_attrs: Tensor) -> Tensor:
        """σ [N] (Å) of each atom from its one-hot element encoding."""
        return node_attrs @ torch.exp(self.log_sigma)
