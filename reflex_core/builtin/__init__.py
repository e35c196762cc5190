"""The core's default plugins, registered through the same hooks a third party uses."""
