"""modbus-mqtt-bridge: Modbus TCP/RTU devices to MQTT, and MQTT readings to a Laravel API."""

__version__ = "0.1.0"
