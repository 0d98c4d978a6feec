"""odrun's version, in a module of its own: nothing imports it from the package."""

__version__ = "0.1.0"
