"""Ablation sweeps: the paper's Table 2 on the shapes dataset (see experiments/README.md)."""
