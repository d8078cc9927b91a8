"""Camera drivers: GenICam over harvesters (:mod:`.genicam`), replay of capture sets."""

__all__: list[str] = []
