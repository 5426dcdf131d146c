"""mace-qeq: charge equilibration and Ewald electrostatics for MACE."""

__version__ = "0.1.0"
