"""`python -m modbus_mqtt_bridge` is the console script."""

import sys

from .cli import main

sys.exit(main())
