"""The archive of many stations on a Dask cluster: re-judging and re-analysing stored runs
(``harness rejudge --all``)."""

__all__: list[str] = []
