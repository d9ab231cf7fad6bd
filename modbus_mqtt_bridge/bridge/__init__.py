"""The `run` process: workers, publish path, write commands and extensions, assembled."""
