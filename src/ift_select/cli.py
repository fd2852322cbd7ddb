"""The ``ift-select`` command line: a typer app over the same library the DVC stages call."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import ift_select.commands as commands_pkg

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

# Each module in ift_select.commands defines `register(app)`; adding a command module adds its commands.
for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
    module = importlib.import_module(f"ift_select.commands.{info.name}")
    module.register(app)

if __name__ == "__main__":
    app()
