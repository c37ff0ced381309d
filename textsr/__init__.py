"""textsr: the command line and the HTTP client, on top of the service, converter and trainer.

This package is the roof: nothing below it (``core``, ``service``, ``training``, ``convert``) imports it.
"""

from core import __version__

__all__ = ["__version__"]
