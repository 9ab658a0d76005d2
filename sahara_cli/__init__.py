"""sahara: a local-first toolchain for the Sahara AI platform.

The package is a library first; ``sahara_cli.commands`` is a thin CLI on top.
Importing this module must stay cheap: it is on the path of ``sahara --version``.
"""

__version__ = "0.1.0"
