"""Feeding the equilibrated charges back into MACE's node features.

The charge qᵢ of each atom is expanded in Gaussians centred on a grid of
charges (as NequIP-LR bins its charges) and mapped linearly onto the scalar
channels, which are added to the node features before the next interaction:

    hᵢ ← hᵢ + W · [exp(−(qᵢ − c_k)² / (2 w²))]_k
"""

import torch
from torch import Tensor


class ChargeEmbedding(torch.nn.Module):
    """Adds a learned embedding of the atomic charge to the first ``num_scalars`` feature channels."""

    def __init__(self, num_scalars: int, num_basis: int = 8, charge_range: float = 2.0):
        super().__init__()
        self.num_scalars = num_scalars
        self.register_buffer("centres", torch.linspace(-charge_range, charge_range, num_basis))
        self.width = 2.0 * charge_range / (num_basis - 1)
        self.linear = torch.nn.Linear(num_basis, num_scalars, bias=False)
        torch.nn.init.normal_(self.linear.weight, std=0.1 / num_basis**0.5)

    def forward(self, node_feats: Tensor, charges: Tensor) -> Tensor:
        basis = torch.exp(-0.5 * ((charges[:, None] - self.centres) / self.width) ** 2)
        scalars = node_feats[:, : self.num_scalars] + self.linear(basis.to(node_feats.dtype))
        return torch.cat([scalars, node_feats[:, self.num_scalars :]], dim=1)
