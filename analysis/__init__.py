"""Analysis of stored sweeps: one loader (frame.py), and everything else reads through it."""
