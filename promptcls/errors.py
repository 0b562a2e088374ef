"""The error every entry point reports as one line with exit code 2 (`config.run_cli`); its own module so that
the schemas (promptcls/schemas.py) and the arg dataclasses (promptcls/config.py) both use it without an import loop.
"""


class UsageError(ValueError):
    """Bad input or a refused operation: entry points report it as one line and exit with code 2."""
