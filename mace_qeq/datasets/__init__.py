"""Data: the embedded default set and the xTB generator that made it."""

from pathlib import Path

#: GFN2-xTB Ag3± and Na/Cl clusters of total charge −1, 0, +1 (made by ``xtb_sets``).
DEFAULT_DATASET = Path(__file__).resolve().parent.parent / "data" / "charged_clusters.xyz"

__all__ = ["DEFAULT_DATASET"]
