"""Station files, the station lifecycle and its lock (drivers register in
:mod:`harness.registry`)."""

from harness.station.schema import StationConfig, load_station_file
from harness.station.station import Station

__all__ = [
    "Station",
    "StationConfig",
    "load_station_file",
]
