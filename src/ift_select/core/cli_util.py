"""Helpers every CLI command uses: the closing JSON line and one-line errors."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ift_select.core.errors import IftSelectError

F = TypeVar("F", bound=Callable[..., Any])


def emit(result: dict[str, Any]) -> None:
    """Print the command's key figures as one JSON object on the last stdout line."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True, default=str), flush=True)


def command(fn: F) -> F:
    """Wrap a typer command: IftSelectError -> one line on stderr, exit 1; adds ``seconds`` to the result
    when the command returns a dict, and emits it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except IftSelectError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if isinstance(result, dict):
            result.setdefault("seconds", round(time.perf_counter() - start, 3))
            emit(result)

    return wrapper  # type: ignore[return-value]
