"""Every code example in README.md and docs/*.md runs, and the site builds.

How the examples are run:

- each ```python (or ```py) fenced block is an example; ```text, ```sh,
  ```console and any other language are shown, never run;
- a page's blocks run in order, in one fresh module namespace per page, against
  the test connection of ``conftest.py`` (mongomock, or the server named by
  ``MONGODB_URI``), with a clean database and default settings per page;
- ``mongoengine.connect(...)`` and ``mongoengine.disconnect(...)`` are no-ops
  while a page runs, so an example may show how to connect and still run on the
  test connection;
- comment lines right after a top-level statement that prints (a
  ``print(...)``, or a ``with``, ``for``, ``try`` or call whose code prints)
  are its expected output, compared as doctest does with ``ELLIPSIS`` and
  ``NORMALIZE_WHITESPACE`` (write ``ObjectId('...')`` for values that change);
  put prose above such a statement, not below it;
- an error fails the test with the page and line of the example;
- in ```console blocks of ``docs/cli.md``, each ``$ mongoengine-activity ...``
  line runs through click's test runner (same sandbox); it must exit with
  status 0 and print what the lines below it show (``...`` as above);
- receivers a page connects to our signals and documents it declares are
  removed when the page ends, so pages cannot affect other tests.

The site: ``mkdocs.yml`` lists every page, including pages other features
write. The strict build here uses that nav minus the pages that do not exist
yet, and lets links to those missing pages pass; every other link must
resolve, and ``test_every_page_is_in_the_nav_and_every_link_resolves`` checks
that each link points to a written or listed page. Once every listed page
exists, nothing is filtered and the build is as strict as ``mkdocs build
--strict`` (which the CI docs job runs unfiltered).
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import re
import shlex
import subprocess
import sys
import traceback
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mongoengine
import pytest
from mongoengine.base import common as mongoengine_registry

from mongoengine_activity import ActivityOptions, Settings, options, signals

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNABLE = frozenset({"python", "py"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_LINK = re.compile(r"\]\((?P<target>[^)#\s]+\.md)(?:#[^)]*)?\)")
_OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_MODULE_PREFIX = "docs_example_"


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, first code line (1-based) and text."""

    language: str
    line: int
    source: str


def fenced_blocks(text: str) -> list[Block]:
    """Return the fenced code blocks of a Markdown text, dedented."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        words = opening["info"].split()
        language = words[0].lower() if words else ""
        body: list[str] = []
        start = index + 1
        while index < len(lines):
            line = lines[index]
            index += 1
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(
                fence[0]
            ):
                break
            margin = len(line) - len(line.lstrip())
            body.append(line[min(indent, margin) :])
        blocks.append(Block(language, start, "\n".join(body) + "\n"))

    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [
        block
        for block in fenced_blocks(path.read_text(encoding="utf-8"))
        if block.language in RUNNABLE
    ]


class ExampleError(AssertionError):
    """An example failed; the message names the page and line."""


def _where(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _is_print(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Name)
        and statement.value.func.id == "print"
    )


def _expected_output(
    statement: ast.stmt, lines: list[str], first_line: int
) -> str | None:
    """The comment lines right after a top-level statement, if any."""
    if statement.end_lineno is None:
        return None

    expected: list[str] = []
    for line in lines[statement.end_lineno - first_line + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        expected.append(stripped[1:].removeprefix(" "))

    return "\n".join(expected) + "\n" if expected else None


def _error_line(error: BaseException, filename: str, default: int) -> int:
    line = default
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno

    return line


def run_page(path: Path, blocks: list[Block] | None = None) -> dict[str, Any]:
    """Run a page's python blocks in order in one namespace; return it."""
    filename = str(path)
    name = _MODULE_PREFIX + re.sub(r"\W", "_", _where(path))
    module = types.ModuleType(name)
    module.__file__ = filename
    namespace = module.__dict__
    sys.modules[name] = module
    try:
        for block in python_blocks(path) if blocks is None else blocks:
            _run_block(path, block, namespace)
    finally:
        sys.modules.pop(name, None)

    return namespace


def _run_block(path: Path, block: Block, namespace: dict[str, Any]) -> None:
    filename = str(path)
    try:
        tree = ast.parse(block.source, filename=filename)
    except SyntaxError as error:
        line = block.line + (error.lineno or 1) - 1
        raise ExampleError(f"{_where(path)}:{line}: SyntaxError: {error.msg}") from None
    ast.increment_lineno(tree, block.line - 1)
    lines = block.source.splitlines()

    for statement in tree.body:
        code = compile(ast.Module([statement], type_ignores=[]), filename, "exec")
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                exec(code, namespace)
        except Exception as error:
            line = _error_line(error, filename, statement.lineno)
            details = "".join(traceback.format_exception(error))
            raise ExampleError(
                f"{_where(path)}:{line}: {type(error).__name__}: {error}\n\n{details}"
            ) from error
        finally:
            sys.stdout.write(output.getvalue())

        got = output.getvalue()
        if not (got or _is_print(statement)):
            continue
        expected = _expected_output(statement, lines, block.line)
        if expected is not None and not doctest.OutputChecker().check_output(
            expected, got, _OUTPUT_FLAGS
        ):
            raise ExampleError(
                f"{_where(path)}:{statement.lineno}: printed output differs from "
                f"the comment below it\nexpected:\n{expected}got:\n{got}"
            )


@contextlib.contextmanager
def example_sandbox() -> Iterator[None]:
    """Keep the test connection and undo a page's receivers and documents."""
    registry = dict(mongoengine_registry._document_registry)
    connected = {signal: set(signal.receivers) for signal in signals.namespace.values()}
    patch = pytest.MonkeyPatch()
    patch.setattr(mongoengine, "connect", _already_connected)
    patch.setattr(mongoengine.connection, "connect", _already_connected)
    patch.setattr(mongoengine, "disconnect", _keep_connection)
    patch.setattr(mongoengine.connection, "disconnect", _keep_connection)
    try:
        yield
    finally:
        patch.undo()
        _restore_registry(registry)
        for signal, before in connected.items():
            for receiver_id in set(signal.receivers) - before:
                receiver = signal.receivers[receiver_id]
                if isinstance(receiver, weakref.ref):
                    receiver = receiver()
                if receiver is not None:
                    signal.disconnect(receiver)


def _restore_registry(before: dict[str, Any]) -> None:
    """Forget the documents pages declared; keep those imported from modules."""
    current = mongoengine_registry._document_registry
    for name, document in list(current.items()):
        if name in before:
            current[name] = before[name]
        elif document.__module__.startswith(_MODULE_PREFIX):
            del current[name]


def _already_connected(*args: Any, **kwargs: Any) -> Any:
    return mongoengine.get_connection()


def _keep_connection(*args: Any, **kwargs: Any) -> None:
    return None


PAGES = [
    path
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    if python_blocks(path)
]


@pytest.mark.parametrize("page", PAGES, ids=[_where(path) for path in PAGES])
def test_examples_on_page_run(page: Path) -> None:
    with example_sandbox():
        run_page(page)


CLI_PAGE = DOCS / "cli.md"


def run_console(path: Path) -> None:
    """Run the ``$ mongoengine-activity ...`` lines of ```console blocks."""
    from click.testing import CliRunner

    from mongoengine_activity.cli import main

    for block in fenced_blocks(path.read_text(encoding="utf-8")):
        if block.language != "console":
            continue
        commands: list[tuple[int, str, list[str]]] = []
        for offset, line in enumerate(block.source.splitlines()):
            if line.startswith("$ "):
                commands.append((block.line + offset, line[2:], []))
            elif commands:
                commands[-1][2].append(line)
        for line_number, command, expected_lines in commands:
            program, *arguments = shlex.split(command)
            if program != "mongoengine-activity":
                continue
            result = CliRunner().invoke(main, arguments, prog_name=program)
            where = f"{_where(path)}:{line_number}: {command}"
            if result.exit_code != 0:
                raise ExampleError(
                    f"{where}: exit status {result.exit_code}\n{result.output}"
                ) from result.exception
            expected = "\n".join(expected_lines) + "\n"
            if expected_lines and not doctest.OutputChecker().check_output(
                expected, result.output, _OUTPUT_FLAGS
            ):
                raise ExampleError(
                    f"{where}: output differs\nexpected:\n{expected}"
                    f"got:\n{result.output}"
                )


@pytest.mark.skipif(not CLI_PAGE.is_file(), reason="docs/cli.md is not written")
def test_commands_on_the_cli_page_run() -> None:
    pytest.importorskip("click")
    with example_sandbox():
        run_console(CLI_PAGE)


def test_cli_page_names_every_command() -> None:
    pytest.importorskip("click")
    from mongoengine_activity.cli import main

    page = CLI_PAGE.read_text(encoding="utf-8")

    assert [
        name for name in main.commands if f"`mongoengine-activity {name}`" not in page
    ] == []


# --- the harness itself


def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_only_python_blocks_run_with_their_markdown_lines(tmp_path: Path) -> None:
    text = (
        "# Title\n"  # 1
        "```python\n"  # 2
        "x = 1\n"  # 3
        "```\n"  # 4
        "```sh\n"  # 5
        "rm -rf /\n"  # 6
        "```\n"  # 7
        "- item\n"  # 8
        "    ```py title='two'\n"  # 9
        "    y = x + 1\n"  # 10
        "    ```\n"  # 11
        "````text\n"  # 12
        "```python\n"  # 13
        "````\n"  # 14
    )
    blocks = python_blocks(_page(tmp_path, text))

    assert [(b.line, b.source) for b in blocks] == [(3, "x = 1\n"), (10, "y = x + 1\n")]
    assert run_page(_page(tmp_path, text))["y"] == 2


def test_failing_example_names_page_and_line(tmp_path: Path) -> None:
    path = _page(tmp_path, "Intro\n\n```python\nx = 1\n\nx.missing\n```\n")

    with pytest.raises(ExampleError, match=r"page\.md:6: AttributeError"):
        run_page(path)


def test_syntax_error_names_page_and_line(tmp_path: Path) -> None:
    path = _page(tmp_path, "```python\nok = 1\nif True print(ok)\n```\n")

    with pytest.raises(ExampleError, match=r"page\.md:3: SyntaxError"):
        run_page(path)


@pytest.mark.parametrize(
    ("comment", "passes"),
    [
        ("# [1, 2]", True),
        ("# [1,\n#  2]", True),
        ("# [1, ...]", True),
        ("# [2, 1]", False),
    ],
    ids=["exact", "whitespace", "ellipsis", "wrong"],
)
def test_comment_after_print_is_checked_output(
    tmp_path: Path, comment: str, passes: bool
) -> None:
    path = _page(tmp_path, f"```python\nprint([1, 2])\n{comment}\n```\n")

    if passes:
        run_page(path)
    else:
        with pytest.raises(ExampleError, match=r"page\.md:2: printed output differs"):
            run_page(path)


def test_comments_after_a_silent_statement_are_prose(tmp_path: Path) -> None:
    path = _page(
        tmp_path,
        "```python\nx = [1]\n# prose about x\nfor i in x:\n    print(i)\n# 2\n```\n",
    )

    with pytest.raises(ExampleError, match=r"page\.md:4: printed output differs"):
        run_page(path)


def test_sandbox_keeps_connection_and_removes_receivers(tmp_path: Path) -> None:
    path = _page(
        tmp_path,
        "```python\n"
        "import mongoengine as me\n"
        "from mongoengine_activity import activity_logged\n"
        "me.connect('elsewhere', host='mongodb://127.0.0.1:9')\n"
        "def seen(sender, **kw):\n"
        "    pass\n"
        "activity_logged.connect(seen)\n"
        "class DocsOnly(me.Document):\n"
        "    name = me.StringField()\n"
        "DocsOnly(name='x').save()\n"
        "```\n",
    )
    connection = mongoengine.get_connection()
    receivers = dict(signals.activity_logged.receivers)

    with example_sandbox():
        run_page(path)

    assert mongoengine.get_connection() is connection
    assert signals.activity_logged.receivers == receivers
    assert "DocsOnly" not in mongoengine_registry._document_registry


class _RecordingEnviron(dict[str, str]):
    """An empty environment that records which variables were looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.append(key)
        return default


def test_configuration_page_lists_every_option_setting_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    environ = _RecordingEnviron()
    monkeypatch.setattr(options.os, "environ", environ)
    options._settings_from_env()
    names = [*ActivityOptions.model_fields, *Settings.model_fields]

    assert [name for name in names if f"| `{name}` |" not in page] == []
    assert len(environ.asked) > 1
    assert [name for name in environ.asked if f"| `{name}` |" not in page] == []


# --- the site


def _nav_pages(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


def _existing_nav(nav: Any, docs_dir: Path) -> Any:
    """``nav`` without the pages that do not exist (yet) in ``docs_dir``."""
    if isinstance(nav, str):
        return nav if (docs_dir / nav).is_file() else None
    if isinstance(nav, list):
        kept = [_existing_nav(item, docs_dir) for item in nav]
        return [item for item in kept if item not in (None, [], {})]
    if isinstance(nav, dict):
        kept_items = {
            title: _existing_nav(value, docs_dir) for title, value in nav.items()
        }
        return {k: v for k, v in kept_items.items() if v not in (None, [], {})}

    return nav


def test_every_page_is_in_the_nav_and_every_link_resolves() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = set(_nav_pages(config["nav"]))
    pages = {path.name for path in DOCS.glob("*.md")}

    assert pages - nav == set(), "pages missing from the mkdocs nav"
    broken = [
        f"{page}: {match['target']}"
        for page in sorted(pages)
        for match in _LINK.finditer((DOCS / page).read_text(encoding="utf-8"))
        if "://" not in match["target"] and match["target"] not in nav
    ]
    assert broken == [], "links to pages that are neither written nor in the nav"


@pytest.mark.slow
def test_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    planned = set(_nav_pages(config["nav"]))
    config["nav"] = _existing_nav(config["nav"], DOCS)
    missing = planned - set(_nav_pages(config["nav"]))
    if missing:
        # Pages other features have yet to write are listed in the nav; links
        # to them are checked by the test above, so mkdocs may let them pass.
        config["validation"] = {"links": {"not_found": "info"}}
    config["docs_dir"] = str(DOCS)
    config["site_dir"] = str(tmp_path / "site")
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
