"""MACEQEq: MACE with charge equilibration and Ewald electrostatics.

    E = E_0 + E_SR + E_el,    E_el = E_QEq(q*)  (or E_Coulomb(q*)),

where q* minimises E_QEq under Σq = Q of each structure, with χ and J read out
from the scalar features of one MACE layer (the last one, or, with charge
feedback, the one before the last interaction, whose input then carries an
embedding of q*). Forces and stress are −∂E/∂r and ∂E/∂ε through autograd; the
electrostatic block sees MACE's strained positions *and* strained cell.

The class extends ScaleShiftMACE so that MACE's training, calculator,
fine-tuning and LAMMPS tools find the attributes they expect. Its forward is a
copy of ScaleShiftMACE.forward with the electrostatics added (TorchScript
cannot compile a call to ``super().forward``).
"""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from ase.data import covalent_radii
from e3nn import o3
from e3nn.util.jit import compile_mode
from mace.modules.models import ScaleShiftMACE
from mace.modules.utils import get_atomic_virials_stresses, get_outputs, prepare_graph
from mace.tools.scatter import scatter_sum
from torch import Tensor

from mace_qeq.electrostatics.iterative import IterativeSolver, response_energy

from .charge_embedding import ChargeEmbedding
from .charge_equilibration import ChargeEquilibrationBlock
from .contact_wall import ClosestContactWall
from .energy_floor import PerAtomEnergyFloor
from .overlaps import refuse_overlapping_atoms
from .readouts import ElectronegativityHardnessReadout, GaussianWidths
from .repulsion import UniversalRepulsion

#: The constructor options MACEQEq adds to ScaleShiftMACE's, with their defaults.
QEQ_OPTIONS: Dict[str, Any] = {
    "qeq_sigma": None,
    "qeq_learnable_sigma": False,
    "qeq_hardness": "element",
    "qeq_energy": "qeq",
    "qeq_charge_feedback": None,
    "qeq_accuracy": 1e-8,
    "qeq_charge_range": 1.0,
    "qeq_minimum_hardness": 1.0,
    "qeq_energy_floor": 5.0,
    "qeq_universal_repulsion": True,
    "qeq_contact_wall": 10.0,
}

#: What models saved before an option existed (mace-qeq 0.1.0 lacks them all) did, for the options they did not store.
LEGACY_OPTIONS: Dict[str, Any] = {"qeq_charge_range": 0.0, "qeq_minimum_hardness": 0.1,
                                  "qeq_energy_floor": None, "qeq_universal_repulsion": False,
                                  "qeq_contact_wall": None}


class BackwardSplit(NamedTuple):
    """Where inference with charge feedback splits its backward (see :meth:`MACEQEq.staged_energy`)."""

    features: Tensor  # h, the χ/J layer's features [N, F], attached to positions and strain
    features_leaf: Tensor  # h̃: their values as a leaf, read by everything after the χ/J layer
    potential: Tensor  # Φq̂ [N] (eV/e), attached
    potential_leaf: Tensor  # its values as a leaf, read by the electrostatic energy
    edges: List[Tensor]  # e: edge lengths, attributes, features (and cut-off), attached
    edge_leaves: List[Tensor]  # ẽ: their values as leaves, read by what comes after the χ/J layer


@compile_mode("script")
class MACEQEq(ScaleShiftMACE):
    """ScaleShiftMACE plus a χ/J readout and a QEq + Ewald block.

    Args (besides ScaleShiftMACE's):
        qeq_sigma: Gaussian width σ (Å) of each element, in the order of
            ``atomic_numbers``; default: covalent radii.
        qeq_learnable_sigma: train σ (kept > 0).
        qeq_hardness: "element" (J per element) or "environment" (J per element
            plus a readout of the node features).
        qeq_energy: "qeq" adds E_QEq(q*); "coulomb" adds only ½ qᵀΦq.
        qeq_charge_feedback: embed q* into the node features of the last
            interaction (needs num_interactions ≥ 2); None (default): on
            whenever there are ≥ 2 interactions.
        qeq_accuracy: Ewald truncation tolerance.
        qeq_charge_range: Δq (e): the environment part of χ is bounded to
            ±Δq J_Z, i.e. it moves a charge by about Δq at most (0: unbounded).
        qeq_minimum_hardness: J_min > 0 (eV/e²), lower bound of the hardness.
        qeq_energy_floor: margin Δ (eV) of the lower bound on each atom's learned
            short-range energy below its training minimum (None or 0: no bound).
        qeq_universal_repulsion: with ``pair_repulsion``, the ZBL repulsion is
            :class:`~.repulsion.UniversalRepulsion` (universal screening, zero at
            bonding distances), added in eV, not multiplied by MACE's energy
            scale (False: mace's ZBL, scaled, as in models saved before this option).
        qeq_contact_wall: stiffness κ (eV/Å³) of the wall κ (0.85 r₀ − r)³ below
            0.85 of the closest approach r₀ of each pair of elements in training
            (:class:`~.contact_wall.ClosestContactWall`; None or 0: no wall).

    Overlapping atoms (closer than 0.01 Å) are refused with a ``ValueError``.
    """

    def __init__(
        self,
        qeq_sigma: Optional[Sequence[float]] = None,
        qeq_learnable_sigma: bool = False,
        qeq_hardness: str = "element",
        qeq_energy: str = "qeq",
        qeq_charge_feedback: Optional[bool] = None,
        qeq_accuracy: float = 1e-8,
        qeq_charge_range: float = 1.0,
        qeq_minimum_hardness: float = 1.0,
        qeq_energy_floor: Optional[float] = 5.0,
        qeq_universal_repulsion: bool = True,
        qeq_contact_wall: Optional[float] = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        atomic_numbers = [int(z) for z in kwargs["atomic_numbers"]]
        if qeq_sigma is None:
            qeq_sigma = [float(covalent_radii[z]) for z in atomic_numbers]
        qeq_sigma = [float(s) for s in qeq_sigma]
        if len(qeq_sigma) != len(atomic_numbers):
            raise ValueError(
                f"qeq_sigma needs one width per element {atomic_numbers}; got {len(qeq_sigma)} values"
            )
        num_interactions = int(kwargs["num_interactions"])
        if qeq_charge_feedback is None:
            qeq_charge_feedback = num_interactions >= 2
        if qeq_charge_feedback and num_interactions < 2:
            raise ValueError("qeq_charge_feedback needs num_interactions ≥ 2 (charges feed the last interaction)")
        hidden_irreps = o3.Irreps(kwargs["hidden_irreps"])
        self.num_qeq_features = hidden_irreps.count(o3.Irrep(0, 1))
        self.qeq_layer = num_interactions - 2 if qeq_charge_feedback else num_interactions - 1
        self.charge_feedback = qeq_charge_feedback
        self.qeq_sigma = qeq_sigma
        self.qeq_learnable_sigma = qeq_learnable_sigma
        self.qeq_hardness = qeq_hardness
        self.qeq_energy = qeq_energy
        self.qeq_accuracy = qeq_accuracy
        self.qeq_charge_range = qeq_charge_range
        self.qeq_minimum_hardness = qeq_minimum_hardness
        self.qeq_energy_floor = qeq_energy_floor if qeq_energy_floor else None
        self.qeq_universal_repulsion = qeq_universal_repulsion
        self.qeq_contact_wall = qeq_contact_wall if qeq_contact_wall else None
        if qeq_universal_repulsion and hasattr(self, "pair_repulsion_fn"):
            self.pair_repulsion_fn = UniversalRepulsion(p=int(self.pair_repulsion_fn.p))

        mlp_irreps = o3.Irreps(kwargs.get("MLP_irreps", "16x0e"))
        self.qeq_readout = ElectronegativityHardnessReadout(
            self.num_qeq_features,
            len(atomic_numbers),
            len(self.heads),
            mlp_irreps,
            kwargs.get("gate", torch.nn.functional.silu),
            hardness=qeq_hardness,
            minimum_hardness=qeq_minimum_hardness,
            charge_range=qeq_charge_range,
        )
        self.gaussian_widths = GaussianWidths(qeq_sigma, learnable=qeq_learnable_sigma)
        self.charge_equilibration = ChargeEquilibrationBlock(energy=qeq_energy, accuracy=qeq_accuracy)
        if qeq_charge_feedback:
            self.charge_embedding = ChargeEmbedding(self.num_qeq_features)
        if self.qeq_energy_floor is not None:
            self.energy_floor = PerAtomEnergyFloor(len(atomic_numbers), len(self.heads), self.qeq_energy_floor)
        if self.qeq_contact_wall is not None:
            self.contact_wall = ClosestContactWall(len(atomic_numbers), self.qeq_contact_wall)

    def __setstate__(self, state):
        for key, value in LEGACY_OPTIONS.items():
            state.setdefault(key, value)
        super().__setstate__(state)

    @torch.jit.unused
    def qeq_options(self) -> Dict[str, Any]:
        """The MACEQEq-specific constructor arguments of this model."""
        return {
            "qeq_sigma": list(self.qeq_sigma),
            "qeq_learnable_sigma": self.qeq_learnable_sigma,
            "qeq_hardness": self.qeq_hardness,
            "qeq_energy": self.qeq_energy,
            "qeq_charge_feedback": self.charge_feedback,
            "qeq_accuracy": self.qeq_accuracy,
            "qeq_charge_range": self.qeq_charge_range,
            "qeq_minimum_hardness": self.qeq_minimum_hardness,
            "qeq_energy_floor": self.qeq_energy_floor,
            "qeq_universal_repulsion": self.qeq_universal_repulsion,
            "qeq_contact_wall": self.qeq_contact_wall,
        }

    def staged_energy(
        self,
        energy: Tensor,
        positions: Tensor,
        displacement: Optional[Tensor],
        split: BackwardSplit,
        charges: Tensor,
        solver: IterativeSolver,
        node_attrs: Tensor,
        node_heads: Tensor,
        with_virials: bool,
    ) -> Tuple[Tensor, Tensor]:
        """The energy whose derivatives are those of inference with charge feedback, and the charges' response.

        With iterative (constant) charges the response term needs v = ∂E/∂q,
        which the layers after the χ/J layer give only by a backward. Instead
        of a backward for v followed by a whole one (which crosses those layers
        twice), everything after the χ/J layer reads leaf copies h̃ of its
        features h, Φ̃ of the potential Φq̂ and ẽ of the edge lengths, attributes
        and features e (see :class:`BackwardSplit`), and the backward runs in
        two stages that each cross a layer once:

        1. ∂E/∂r, ∂E/∂ε, ∂E/∂h̃, ∂E/∂Φ̃, ∂E/∂ẽ and v = ∂E/∂q through what reads
           the leaves;
        2. the derivatives of (∂E/∂r)·r + (∂E/∂ε)·ε + (∂E/∂h̃)·h + (∂E/∂Φ̃)·Φq̂ +
           (∂E/∂ẽ)·e + E_response(v), with h, Φq̂, e and χ, J read from h
           attached to r and ε: those of E(r, ε, q*(r, ε)) by the chain rule.

        Stage 1 then crosses nothing that stage 2 needs, so it frees the graph
        of the layers after the split as it goes, as a plain backward does.
        (With the edges read attached it had to keep that graph through stage
        2: energy, forces and stress of 21,952 NaCl atoms peaked 25 % above
        MACE's, now 5 %; ``benchmarks/scaling.py``.) Where a readout before
        the χ/J layer reads attached features (3 or more interactions), stage 1
        crosses those layers too and keeps the graph.

        Returns the stage-2 energy (differentiate it for forces, virials and
        stress; ``with_virials``: ε matters) and the per-atom response energy.
        """
        attached = [positions, split.features, split.potential] + split.edges
        leaves = [positions, split.features_leaf, split.potential_leaf] + split.edge_leaves
        if with_virials and displacement is not None:
            attached.append(displacement)
            leaves.append(displacement)
        leaves.append(charges)
        grads = torch.autograd.grad([energy.sum()], leaves, retain_graph=self.qeq_layer > 0, allow_unused=True)
        surrogate = torch.zeros(1, dtype=positions.dtype, device=positions.device)
        for k, tensor in enumerate(attached):
            gradient = grads[k]
            if gradient is None:
                gradient = torch.zeros_like(tensor)
            surrogate = surrogate + (tensor * gradient).sum()
        charge_gradient = grads[-1]
        if charge_gradient is None:
            charge_gradient = torch.zeros_like(charges)
        charge_gradient = charge_gradient + self.charge_equilibration.charge_gradient(split.potential)
        features = split.features[:, : self.num_qeq_features]
        electronegativity, hardness = self.qeq_readout(features, node_attrs, node_heads)
        response = response_energy(solver, electronegativity, hardness, charges, split.potential, charge_gradient)
        return surrogate + response.sum(), response

    def forward(
        self,
        data: Dict[str, Tensor],
        training: bool = False,
        compute_force: bool = True,
        compute_virials: bool = False,
        compute_stress: bool = False,
        compute_displacement: bool = False,
        compute_hessian: bool = False,
        compute_edge_forces: bool = False,
        compute_atomic_stresses: bool = False,
        lammps_mliap: bool = False,
    ) -> Dict[str, Optional[Tensor]]:
        ctx = prepare_graph(
            data,
            compute_virials=compute_virials,
            compute_stress=compute_stress,
            compute_displacement=compute_displacement,
            lammps_mliap=lammps_mliap,
        )
        if ctx.is_lammps:
            raise RuntimeError("MACEQEq needs absolute positions: LAMMPS ML-IAP is not supported")
        num_atoms_arange = ctx.num_atoms_arange.to(torch.int64)
        num_graphs = ctx.num_graphs
        displacement = ctx.displacement
        positions = ctx.positions
        vectors = ctx.vectors
        lengths = ctx.lengths
        cell = ctx.cell
        node_heads = ctx.node_heads.to(torch.int64)
        interaction_kwargs = ctx.interaction_kwargs
        batch = data["batch"]
        node_attrs = data["node_attrs"]
        refuse_overlapping_atoms(lengths, data["edge_index"], batch, data["ptr"])

        # The electrostatics must see the strained geometry: prepare_graph strains
        # data["positions"] but not the cell, so strain the cell here the same way.
        strained_positions = data["positions"]
        graph_cell = cell.view(-1, 3, 3)
        if displacement is not None and (compute_virials or compute_stress or compute_displacement):
            symmetric = 0.5 * (displacement + displacement.transpose(-1, -2))
            graph_cell = graph_cell + torch.matmul(graph_cell, symmetric)
        if "pbc" not in data or "total_charge" not in data:
            raise ValueError(
                "MACEQEq needs each structure's total charge and periodicity, and this input has no "
                "'total_charge' or 'pbc' (stock pair_style mace passes neither): export for LAMMPS with "
                "mace_qeq_create_lammps_model, which fixes both"
            )
        pbc = data["pbc"].view(-1, 3).to(torch.bool)
        total_charge = data["total_charge"].to(vectors.dtype).view(-1)

        node_e0 = self.atomic_energies_fn(node_attrs)[num_atoms_arange, node_heads]
        e0 = scatter_sum(src=node_e0, index=batch, dim=0, dim_size=num_graphs).to(vectors.dtype)

        # Inference with charge feedback and iterative charges splits its backward at the χ/J layer
        # (see staged_energy): what comes after that layer reads the edges as leaves.
        staged = self.charge_feedback and not training and torch.is_grad_enabled() and \
            (compute_force or compute_virials or compute_stress) and \
            not (compute_hessian or compute_edge_forces or compute_atomic_stresses)
        if staged:
            largest = int((data["ptr"][1:] - data["ptr"][:-1]).max())
            staged = self.charge_equilibration.solves_iteratively(largest, training)

        node_feats = self.node_embedding(node_attrs)
        edge_attrs = self.spherical_harmonics(vectors)
        edge_feats, cutoff = self.radial_embedding(lengths, node_attrs, data["edge_index"], self.atomic_numbers)
        split_lengths, split_edge_attrs, split_edge_feats, split_cutoff = lengths, edge_attrs, edge_feats, cutoff
        split_edges: List[Tensor] = []
        split_edge_leaves: List[Tensor] = []
        if staged:
            split_lengths = lengths.detach().requires_grad_(True)
            split_edge_attrs = edge_attrs.detach().requires_grad_(True)
            split_edge_feats = edge_feats.detach().requires_grad_(True)
            split_edges = [lengths, edge_attrs, edge_feats]
            split_edge_leaves = [split_lengths, split_edge_attrs, split_edge_feats]
            if cutoff is not None:
                split_cutoff = cutoff.detach().requires_grad_(True)
                split_edges.append(cutoff)
                split_edge_leaves.append(split_cutoff)
        if hasattr(self, "pair_repulsion"):
            pair_node_energy = self.pair_repulsion_fn(split_lengths, node_attrs, data["edge_index"],
                                                      self.atomic_numbers)
        else:
            pair_node_energy = torch.zeros_like(node_e0)

        if hasattr(self, "joint_embedding"):
            embedding_features: Dict[str, Tensor] = {}
            for name, _ in self.embedding_specs.items():
                embedding_features[name] = data[name]
            node_feats += self.joint_embedding(batch, embedding_features)
            if hasattr(self, "embedding_readout"):
                embedding_node_energy = torch.atleast_1d(
                    self.embedding_readout(node_feats, node_heads)[num_atoms_arange, node_heads].squeeze(-1)
                )
                e0 += scatter_sum(src=embedding_node_energy, index=batch, dim=0, dim_size=num_graphs)

        sigma = self.gaussian_widths(node_attrs)
        solver: Optional[IterativeSolver] = None
        electrostatic_potential = torch.zeros_like(sigma)
        electronegativity = torch.zeros_like(sigma)
        hardness = torch.zeros_like(sigma)
        charges = torch.zeros_like(sigma)
        chemical_potential = torch.zeros_like(total_charge)
        electrostatic_energy = torch.zeros_like(total_charge)
        electrostatic_node_energy = torch.zeros_like(sigma)

        empty = torch.zeros(0)
        split = BackwardSplit(empty, empty, empty, empty, split_edges, split_edge_leaves)  # the rest set when staged
        node_es_list = [pair_node_energy]
        node_feats_list: List[Tensor] = []
        for i, (interaction, product) in enumerate(zip(self.interactions, self.products)):
            node_feats, sc = interaction(
                node_attrs=node_attrs,
                node_feats=node_feats,
                edge_attrs=split_edge_attrs if i > self.qeq_layer else edge_attrs,
                edge_feats=split_edge_feats if i > self.qeq_layer else edge_feats,
                edge_index=data["edge_index"],
                cutoff=split_cutoff if i > self.qeq_layer else cutoff,
                first_layer=(i == 0),
                lammps_class=interaction_kwargs.lammps_class,
                lammps_natoms=interaction_kwargs.lammps_natoms,
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=node_attrs)
            if i == self.qeq_layer:
                features = node_feats
                if staged:
                    node_feats = node_feats.detach().requires_grad_(True)
                electronegativity, hardness = self.qeq_readout(
                    node_feats[:, : self.num_qeq_features], node_attrs, node_heads
                )
                initial_charges: Optional[Tensor] = None
                if "initial_charges" in data:  # warm start of the iterative solve (MD)
                    initial_charges = data["initial_charges"]
                electrostatics = self.charge_equilibration(
                    strained_positions, electronegativity, hardness, sigma, total_charge, graph_cell, pbc, batch,
                    training, training, initial_charges,
                )
                charges = electrostatics.charges
                chemical_potential = electrostatics.chemical_potential
                electrostatic_energy = electrostatics.energy
                electrostatic_node_energy = electrostatics.node_energy
                electrostatic_potential = electrostatics.potential
                solver = electrostatics.solver
                if staged:  # the electrostatic energy reads Φq̂ as a leaf too
                    potential_leaf = electrostatic_potential.detach().requires_grad_(True)
                    electrostatic_node_energy = self.charge_equilibration.node_energy(
                        charges, electronegativity, hardness, potential_leaf
                    )
                    electrostatic_energy = scatter_sum(electrostatic_node_energy, batch, dim=-1, dim_size=num_graphs)
                    split = BackwardSplit(features, node_feats, electrostatic_potential, potential_leaf, split_edges,
                                          split_edge_leaves)
                if solver is not None and self.charge_feedback and torch.is_grad_enabled():
                    charges = charges.detach().requires_grad_(True)  # the response is added below
                if hasattr(self, "charge_embedding"):
                    node_feats = self.charge_embedding(node_feats, charges)
            node_feats_list.append(node_feats)

        for i, readout in enumerate(self.readouts):
            feat_idx = -1 if len(self.readouts) == 1 else i
            node_es_list.append(readout(node_feats_list[feat_idx], node_heads)[num_atoms_arange, node_heads])

        node_feats_out = torch.cat(node_feats_list, dim=-1)
        learned = self.scale_shift(torch.sum(torch.stack(node_es_list[1:], dim=0), dim=0), node_heads)
        if hasattr(self, "energy_floor"):  # the learned part bounded below
            learned = self.energy_floor(learned, node_attrs, node_heads, training)
        if self.qeq_universal_repulsion:
            node_inter_es = learned + pair_node_energy
        else:  # ZBL scaled as mace scales it
            node_inter_es = learned + torch.atleast_1d(self.scale_shift.scale)[node_heads] * pair_node_energy
        if hasattr(self, "contact_wall"):  # a wall inside the closest pairs of the training data
            node_inter_es = node_inter_es + self.contact_wall(split_lengths, node_attrs, data["edge_index"], training)
        not_stationary = self.charge_feedback or self.charge_equilibration.coulomb_only
        respond = solver is not None and torch.is_grad_enabled() and not_stationary
        if respond and not staged:
            # Iterative charges are constants: add their response (see response_energy), so that forces and
            # stress are those of E(q*(R)) also where E is not stationary in q.
            charge_gradient = self.charge_equilibration.charge_gradient(electrostatic_potential)
            if self.charge_feedback:
                grads = torch.autograd.grad([node_inter_es.sum()], [charges], retain_graph=True, allow_unused=True)
                gradient = grads[0]
                if gradient is not None:
                    charge_gradient = charge_gradient + gradient
            assert solver is not None
            response = response_energy(solver, electronegativity, hardness, charges, electrostatic_potential,
                                       charge_gradient)
            electrostatic_node_energy = electrostatic_node_energy + response
            electrostatic_energy = electrostatic_energy + scatter_sum(response, batch, dim=-1, dim_size=num_graphs)
            charges = charges.detach()
        inter_e = scatter_sum(node_inter_es, batch, dim=-1, dim_size=num_graphs) + electrostatic_energy

        differentiated = inter_e
        if staged:
            assert solver is not None
            differentiated, response = self.staged_energy(
                inter_e, positions, displacement, split, charges, solver, node_attrs, node_heads,
                compute_virials or compute_stress,
            )
            electrostatic_node_energy = electrostatic_node_energy + response
            response_per_structure = scatter_sum(response, batch, dim=-1, dim_size=num_graphs)
            electrostatic_energy = electrostatic_energy + response_per_structure
            inter_e = inter_e + response_per_structure
            charges = charges.detach()
        forces, virials, stress, hessian, edge_forces = get_outputs(
            energy=differentiated,
            positions=positions,
            displacement=displacement,
            vectors=vectors,
            cell=cell,
            training=training,
            compute_force=compute_force,
            compute_virials=compute_virials,
            compute_stress=compute_stress,
            compute_hessian=compute_hessian,
            compute_edge_forces=compute_edge_forces or compute_atomic_stresses,
        )
        total_energy = e0 + inter_e
        node_energy = node_e0.double() + node_inter_es.double() + electrostatic_node_energy.double()
        dipole = scatter_sum(charges[:, None] * positions, batch, dim=0, dim_size=num_graphs)
        atomic_virials: Optional[Tensor] = None
        atomic_stresses: Optional[Tensor] = None
        if compute_atomic_stresses and edge_forces is not None:
            atomic_virials, atomic_stresses = get_atomic_virials_stresses(
                edge_forces=edge_forces,
                edge_index=data["edge_index"],
                vectors=vectors,
                num_atoms=positions.shape[0],
                batch=batch,
                cell=cell,
            )
        return {
            "energy": total_energy,
            "node_energy": node_energy,
            "interaction_energy": inter_e,
            "forces": forces,
            "edge_forces": edge_forces,
            "virials": virials,
            "stress": stress,
            "atomic_virials": atomic_virials,
            "atomic_stresses": atomic_stresses,
            "hessian": hessian,
            "displacement": displacement,
            "node_feats": node_feats_out,
            "charges": charges,
            "dipole": dipole,
            "electronegativity": electronegativity,
            "hardness": hardness,
            "sigma": sigma,
            "electrostatic_energy": electrostatic_energy,
            "chemical_potential": chemical_potential,
        }
