"""The package version, read by setup.cfg and exposed as ``openai_ws.__version__``."""

__version__ = "0.1.0"
