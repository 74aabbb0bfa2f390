"""Every ```python block of docs/feeds.md runs as written."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import pytest

from mongoengine_activity import templates

PAGE = pathlib.Path(__file__).parent.parent / "docs" / "feeds.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


@pytest.fixture(autouse=True)
def no_templates_left() -> Iterator[None]:
    yield
    templates._templates.clear()


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_feeds_page_examples_run(code: str) -> None:
    exec(compile(code, str(PAGE), "exec"), {})
