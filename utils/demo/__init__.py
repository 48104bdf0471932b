"""Demo: a generated world in the study's layout, and the `make demo` driver."""
