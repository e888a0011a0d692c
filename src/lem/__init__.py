"""lem: ethical-kernel fine-tunes for small models with MLX, measured honestly."""

from lem import blas as _blas

# Must run before anything imports mlx: see lem/blas.py.
_blas.preload()

__version__ = "0.1.0"
