"""From a reply to a module (harness/evolve/extract.py): the first ```python block, the header after the docstring."""

from __future__ import annotations

import ast

import pytest

from harness.evolve.extract import add_header, extract_code

pytestmark = pytest.mark.sandbox


def test_extract_and_header():
    reply = "plan\n```py\n'''Doc.'''\nfrom __future__ import annotations\nx = 1\n```\n```python\ny = 2\n```\n"
    got = extract_code(reply)
    assert got.code == "'''Doc.'''\nfrom __future__ import annotations\nx = 1\n" and got.blocks == 2
    assert extract_code("no fences here").problem.startswith("reply has no code")
    cut = extract_code("```python\n'''Doc.'''\nx = [\n", stop_reason="max_tokens")
    assert cut.code is None and "max_tokens" in cut.problem
    text = add_header('"""First line.\n\nMore."""\nfrom __future__ import annotations\n\nx = 1\n', ["parent: p", "model: m"])
    tree = ast.parse(text)  # `from __future__` must stay the first statement after the docstring
    assert ast.get_docstring(tree) == "First line.\n\nMore."
    assert text.splitlines()[3:5] == ["# parent: p", "# model: m"]
    with pytest.raises(ValueError):
        add_header("x = 1\n", ["h"])
