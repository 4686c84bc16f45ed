"""Helpers of the tests: mock datasets, fake ILSVRC tars, a tiny model, scripts the CLI tests start.

No test module imports another; what two of them share lives here.
"""
