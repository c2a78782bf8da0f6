"""Numba kernels: explicit loops, no BLAS.  Inputs are trusted: validate before calling."""
