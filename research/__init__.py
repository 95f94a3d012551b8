"""One-off studies (see README.md): run from the project root as ``python -m research.NAME``."""
