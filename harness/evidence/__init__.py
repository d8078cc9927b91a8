"""Evidence: measurement model, crash-safe journal, records database, Allure, plots, report."""

__all__: list[str] = []
