"""One exception tree for the whole bridge, so callers catch by meaning, not by library."""

from __future__ import annotations

from dataclasses import dataclass


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (path, YAML line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}" if where else self.message


class ConfigError(BridgeError):
    """The config is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CodecError(BridgeError):
    """Registers cannot be decoded to a value, or a value cannot be encoded."""


class ModbusError(BridgeError):
    """A Modbus request failed: the device, the link or the answer."""


class ModbusTimeout(ModbusError):
    """No answer within the connection's timeout."""


class ModbusConnectionError(ModbusError):
    """The transport is down: refused, reset, port gone."""


class ModbusExceptionResponse(ModbusError):
    """The device answered with a Modbus exception code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class ModbusBadResponse(ModbusError):
    """The device answered, but the answer is malformed (byte count, transaction id...)."""


class MqttError(BridgeError):
    """The broker refused us or cannot be reached."""


class StorageError(BridgeError):
    """A local store (the disk buffer) cannot be read or written: locked, full, read-only.
    Like a network error it is retried with backoff; what it holds is not dropped."""
