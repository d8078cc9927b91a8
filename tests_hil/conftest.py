"""The qualification suites run with the harness plugin (``--station``)."""
