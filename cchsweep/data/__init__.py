"""Data sources: the synthetic Gaussian model (Appendix B); real data sets come later."""
