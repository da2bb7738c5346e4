"""(being written for issue 9: pnn.Input, pnn.Model)"""

from __future__ import annotations

__all__: list[str] = []
