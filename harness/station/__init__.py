"""Station files, the driver registry, the station lifecycle and its lock."""

from harness.station.registry import (
    DriverContext,
    driver_class,
    register_driver,
    registered_drivers,
)
from harness.station.schema import StationConfig, load_station_file
from harness.station.station import Station

__all__ = [
    "DriverContext",
    "Station",
    "StationConfig",
    "driver_class",
    "load_station_file",
    "register_driver",
    "registered_drivers",
]
