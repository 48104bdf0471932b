"""Glacier facies classification toolkit: a reproduction of Maslov et al."""
