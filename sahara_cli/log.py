"""Logging: a rotating file in ``<home>/logs/sahara.log`` and, with ``-v``, stderr.

The library logs to the ``sahara`` logger and never configures handlers itself; the CLI
calls :func:`setup_logging` once per invocation.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOGGER = "sahara"
LOG_FILE = "sahara.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _reset(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def setup_logging(
    logs_dir: Path,
    *,
    verbose: int = 0,
    debug: bool = False,
    level: str = "info",
    max_bytes: int = 1_048_576,
    backups: int = 3,
) -> logging.Logger:
    """Attach the file handler (only when the home exists) and, with ``verbose``, stderr."""
    logger = logging.getLogger(LOGGER)
    _reset(logger)
    logger.propagate = False
    file_level = logging.DEBUG if debug else _LEVELS.get(level, logging.INFO)
    stderr_level = {0: None, 1: logging.INFO}.get(verbose, logging.DEBUG)
    levels = [file_level]
    if logs_dir.parent.is_dir():
        try:
            logs_dir.mkdir(mode=0o700, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                logs_dir / LOG_FILE, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        except OSError:
            pass  # a read-only home still runs commands; doctor reports it
        else:
            handler.setLevel(file_level)
            handler.setFormatter(logging.Formatter(_FORMAT))
            logger.addHandler(handler)
    if stderr_level is not None:
        stream = logging.StreamHandler()
        stream.setLevel(stderr_level)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(stream)
        levels.append(stderr_level)
    logger.setLevel(min(levels))
    return logger
