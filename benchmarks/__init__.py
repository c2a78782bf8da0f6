"""asv benchmarks for fastbp; see docs/benchmarks.md."""
