"""`python -m modbus_mqtt_bridge` is the console script."""

import sys

from .cli.main import main

sys.exit(main())
