"""Inference engines: padding and patch gathering, the per-patch engine, the dense engine."""
