"""Wire-faithful provider emulators for development and tests. Nothing in ``src/`` imports this package."""
