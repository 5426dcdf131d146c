"""Per-atom QEq parameters from MACE's invariant node features.

Electronegativity (eV/e), one value per head:

    χᵢ = χ⁰_{Zᵢ} + MLP_χ(hᵢ)

Hardness (eV/e²), positive by construction:

    Jᵢ = softplus(j_{Zᵢ} [+ MLP_J(hᵢ)]) + J_min

per element (``hardness="element"``, NequIP-LR's choice) or also environment
dependent (``hardness="environment"``). hᵢ are the scalar (0e) features of one
MACE layer. Gaussian widths σ_Z (Å) are per element, fixed (default: covalent
radii) or learnable (σ = exp(s), so σ > 0).
"""

import math
from typing import Callable, List, Optional, Tuple

import torch
from e3nn import o3
from mace.modules.blocks import NonLinearReadoutBlock
from torch import Tensor


def _inverse_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class ElectronegativityHardnessReadout(torch.nn.Module):
    """χ and J for every atom, per head, from scalar node features [N, F]."""

    def __init__(
        self,
        num_features: int,
        num_elements: int,
        num_heads: int,
        mlp_irreps: o3.Irreps,
        gate: Optional[Callable],
        hardness: str = "element",
        initial_hardness: float = 5.0,
        minimum_hardness: float = 0.1,
    ):
        super().__init__()
        if hardness not in ("element", "environment"):
            raise ValueError(f"hardness must be 'element' or 'environment'; got {hardness!r}")
        self.num_heads = num_heads
        self.minimum_hardness = minimum_hardness
        irreps_in = o3.Irreps(f"{num_features}x0e")
        irreps_out = o3.Irreps(f"{num_heads}x0e")
        hidden = (num_heads * o3.Irreps(mlp_irreps)).simplify()
        self.electronegativity_mlp = NonLinearReadoutBlock(irreps_in, hidden, gate, irreps_out, num_heads)
        self.electronegativity_offset = torch.nn.Parameter(torch.zeros(num_elements, num_heads))
        self.hardness_offset = torch.nn.Parameter(
            torch.full((num_elements, num_heads), _inverse_softplus(initial_hardness - minimum_hardness))
        )
        if hardness == "environment":
            self.hardness_mlp = NonLinearReadoutBlock(irreps_in, hidden, gate, irreps_out, num_heads)
        # Start from small environment-dependent parts: the per-element terms dominate.
        with torch.no_grad():
            for mlp in self.children():
                if isinstance(mlp, NonLinearReadoutBlock):
                    mlp.linear_2.weight.mul_(0.1)

    def forward(self, features: Tensor, node_attrs: Tensor, node_heads: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (χ [N] in eV/e, J [N] in eV/e²) for each atom's head."""
        atoms = torch.arange(features.shape[0], device=features.device)
        chi = self.electronegativity_mlp(features, node_heads) + node_attrs @ self.electronegativity_offset
        raw_hardness = node_attrs @ self.hardness_offset
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
