"""Measurement families of the grounding checker, one module each; reporter.grounding.measure
runs them per level (definitions in its docstring)."""
