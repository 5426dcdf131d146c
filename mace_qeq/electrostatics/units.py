"""Physical constants in the units of the package: eV, Å, elementary charge e."""


def coulomb_constant() -> float:
    """k_e = e² / (4π ε₀) in eV·Å/e² (CODATA 2018).

    A function because TorchScript cannot read module-level floats.
    """
    return 14.399645


#: k_e in eV·Å/e², for Python callers.
COULOMB_CONSTANT: float = coulomb_constant()
