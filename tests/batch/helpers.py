"""Input files and output readers shared by the batch tests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def openai_row(i: int, model: str = "claude-haiku-4-5", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"row-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": f"Classify ticket {i}"}],
            "max_tokens": 20,
            **body,
        },
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_batch(path: Path, n: int, **body: Any) -> Path:
    return write_rows(path, [openai_row(i, **body) for i in range(n)])


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ids_once(path: Path) -> Counter[str]:
    return Counter(line["custom_id"] for line in read_lines(path))
