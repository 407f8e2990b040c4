"""Simulators of the mail providers' wire protocols (Microsoft identity platform
and Graph mail; Google OAuth and Gmail later) plus a JSON control API.

Imports nothing from the rest of the project: it stands in for Microsoft and
Google in tests, benchmarks and the embedded demo.
"""

from sandbox.context import Sandbox, SandboxConfig
from sandbox.server import SandboxServer

__all__ = ["Sandbox", "SandboxConfig", "SandboxServer"]
