"""Modbus: the pymodbus port and the one-worker-per-connection poller."""
