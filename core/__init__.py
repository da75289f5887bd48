"""Optiscope's headless core: the algorithms behind every lab, usable from a notebook.

Nothing in this package imports streamlit. Long computations are iterators of small frozen
state objects, one per step.
"""
