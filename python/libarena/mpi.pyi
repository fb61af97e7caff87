# SPDX-License-Identifier: MIT
import ctypes
from collections.abc import Callable, Iterable
from os import PathLike
from typing import Any, Literal

from . import Arena

_StrPath = str | bytes | PathLike[str] | PathLike[bytes]

def library() -> ctypes.CDLL: ...
def share(comm: Any, path: _StrPath | None = ...,
          build: Callable[[], Iterable[Any]] | None = ..., *,
          kind: Literal["bytes", "pickle", "ndarray"] | None = ...,
          timeout: float | None = ...) -> Arena: ...
