"""Benchmark suite: the paper's kernel table with its peers, mask cost, sparsity sweep (``flashmask bench``)."""
