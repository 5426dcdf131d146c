"""RuNNer / n2p2 ``input.data`` to extxyz with MACE's keys.

The format of the 4G-HDNNP benchmark sets (Ko et al. 2021) and of the n2p2
data sets: blocks of

    begin
    comment ...
    lattice ax ay az            (three lines, periodic structures only)
    atom x y z element charge atomic_energy fx fy fz
    energy E
    charge Q
    end

in Bohr, Hartree and Hartree/Bohr (the default) or in Å/eV (``--units ase``).
Output keys: REF_energy (eV), REF_forces (eV/Å), REF_charges (e),
total_charge (e) and pbc/cell.

    mace_qeq_convert_runner input.data output.xyz
"""

import argparse
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import ase.io
import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree


def read_runner(path: Path, units: str = "atomic") -> Iterator[Atoms]:
    """Yield every structure of a RuNNer/n2p2 file as Atoms with MACE's keys."""
    if units not in ("atomic", "ase"):
        raise ValueError(f"units must be 'atomic' (Bohr, Hartree) or 'ase' (Å, eV); got {units!r}")
    length, energy = (Bohr, Hartree) if units == "atomic" else (1.0, 1.0)
    lattice, symbols, positions, charges, forces = [], [], [], [], []
    total_energy = total_charge = None
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            words = line.split()
            if not words:
                continue
            key = words[0]
            if key == "begin":
                lattice, symbols, positions, charges, forces = [], [], [], [], []
                total_energy = total_charge = None
            elif key == "lattice":
                lattice.append([float(w) for w in words[1:4]])
            elif key == "atom":
                positions.append([float(w) for w in words[1:4]])
                symbols.append(words[4])
                charges.append(float(words[5]))
                forces.append([float(w) for w in words[7:10]])
            elif key == "energy":
                total_energy = float(words[1])
            elif key == "charge":
                total_charge = float(words[1])
            elif key == "end":
                if total_energy is None or not symbols:
                    raise ValueError(f"{path}:{number}: structure without energy or atoms")
                if len(lattice) not in (0, 3):
                    raise ValueError(f"{path}:{number}: a structure needs 0 or 3 lattice lines")
                atoms = Atoms(symbols, positions=np.array(positions) * length)
                if lattice:
                    atoms.set_cell(np.array(lattice) * length)
                    atoms.pbc = True
                atoms.info["REF_energy"] = total_energy * energy
                atoms.info["total_charge"] = 0.0 if total_charge is None else total_charge
                atoms.arrays["REF_forces"] = np.array(forces) * energy / length
                atoms.arrays["REF_charges"] = np.array(charges)
                yield atoms


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--units", choices=["atomic", "ase"], default="atomic")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    structures = list(read_runner(args.input, args.units))
    ase.io.write(args.output, structures, format="extxyz")
    print(f"wrote {len(structures)} structures to {args.output}")


if __name__ == "__main__":
    main()
