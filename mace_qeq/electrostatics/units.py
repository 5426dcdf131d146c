"""Physical constants in the units of the package: eV, Å, elementary charge e."""


def coulomb_constant() -> float:
    """k_e = e² / (4π ε₀) = E_h a₀ in eV·Å/e², CODATA 2018, every digit.

    (``ase.units.create_units("2018")``: Hartree × Bohr agrees to 4e-14.) A
    truncated k_e shifts Madelung energies by its relative error. A function
    because TorchScript cannot read module-level floats.
    """
    return 14.399645478425668


#: k_e in eV·Å/e², for Python callers.
COULOMB_CONSTANT: float = coulomb_constant()
