"""The station web app (``harness serve``): the operator's kiosk and the engineer's fleet
pages over the records database; thin, over :mod:`harness.run` and :mod:`harness.evidence`."""

__all__: list[str] = []
