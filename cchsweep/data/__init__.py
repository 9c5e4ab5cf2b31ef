"""Data sources: the synthetic Gaussian model, MNIST, MNIST-M (MNIST on BSDS500) and blur."""
