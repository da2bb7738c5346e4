"""(being written for issue 9)"""

from __future__ import annotations

__all__: list[str] = []
