"""Optiscope's headless core: the algorithms behind every lab, usable from a notebook.

Nothing in this package imports streamlit. The contract every lab follows (``run(...)`` iterators
validated when called, frozen states, one name per concept, ``OptiscopeError`` for bad input, budgets,
devices, read-only shared models) is written down in ``core/README.md`` and checked by
``tests/test_contract.py``.
"""
