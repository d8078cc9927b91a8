"""Protocol simulators of the station's instruments, served on ptys and loopback TCP ports.

One module per instrument (``scpi_led``, ``gardasoft``, ``scpi_psu``, ``cs100a``,
``focus_stage``, ``chart_wheel``), the servers in ``base``, and ``hub.start_simulators``.
"""


__all__: list[str] = []
