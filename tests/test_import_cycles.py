"""No import cycles among openfrp's modules, read from the source (nothing is imported).

The module-level imports (not those inside a function, nor under `if TYPE_CHECKING:`) must form
no cycle. Nor may any form with the deferred imports inside functions counted, between modules
(server/registry.py <-> redis_registry.py once did) or between subpackages (terminal <->
netcheck once did), so a cycle is not merely hidden behind a late import; and the terminal
side reaches the server through openfrp.api_client, never its package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "openfrp"

Graph = dict[str, set[str]]


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], deferred: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when imported: at module level (in if/try/with blocks and class
    bodies too, but not under TYPE_CHECKING); with `deferred` also those inside functions."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _imports(node.body, deferred)
            yield from _imports(node.orelse, deferred)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, deferred)
            for handler in node.handlers:
                yield from _imports(handler.body, deferred)
        elif isinstance(node, ast.With | ast.For | ast.While | ast.ClassDef) or (
            deferred and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            yield from _imports(node.body, deferred)


def import_graph(deferred: bool) -> Graph:
    """Module -> the openfrp modules it imports (`from a import b` names a.b when b is a
    module of its own, else a)."""
    known = modules()
    graph: Graph = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")).body, deferred):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in known)
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    targets.add(sub)
                elif base in known:
                    targets.add(base)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _explain(graph: Graph, found: list[list[str]]) -> str:
    lines = []
    for component in found:
        members = set(component)
        lines.append(" <-> ".join(component))
        lines += [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "\n".join(lines)


def test_the_graph_sees_the_imports() -> None:
    """The reader finds what it should, so an empty answer below means something."""
    graph = import_graph(deferred=False)
    assert len(graph) > 50
    assert "openfrp.server.registry" in graph["openfrp.server.registry.redis"]
    assert "openfrp.codes" in graph["openfrp.protocol.server_session"]
    redis, opener = "openfrp.server.registry.redis", "openfrp.server.registry.opener"
    assert redis not in graph[opener]  # imported inside open_registry
    assert redis in import_graph(deferred=True)[opener]
    planted = {**graph, "openfrp.codes": {"openfrp.protocol.server_session"}}
    assert ["openfrp.codes", "openfrp.protocol.server_session"] in cycles(planted)


def test_no_import_cycle_among_module_level_imports() -> None:
    graph = import_graph(deferred=False)
    found = cycles(graph)
    assert not found, "import cycles among openfrp's modules:\n" + _explain(graph, found)


def test_no_import_cycle_even_counting_imports_inside_functions() -> None:
    graph = import_graph(deferred=True)
    found = cycles(graph)
    assert not found, "import cycles (deferred imports counted):\n" + _explain(graph, found)


def package_graph(graph: Graph) -> Graph:
    """The same imports between openfrp's subpackages (and top-level modules): openfrp.server,
    openfrp.terminal, openfrp.cli..."""
    packages: Graph = {}
    for source, targets in graph.items():
        group = ".".join(source.split(".")[:2])
        packages.setdefault(group, set()).update(".".join(t.split(".")[:2]) for t in targets)
        packages[group].discard(group)
    return packages


def test_no_import_cycle_among_subpackages() -> None:
    """Counting deferred imports: the terminal and netcheck no longer need each other."""
    graph = package_graph(import_graph(deferred=True))
    found = cycles(graph)
    assert not found, "import cycles among openfrp's subpackages:\n" + _explain(graph, found)


def test_the_terminal_side_does_not_import_the_server() -> None:
    """The terminal and netcheck reach the server over HTTP (openfrp.api_client), not by
    importing its package."""
    graph = package_graph(import_graph(deferred=True))
    for client in ("openfrp.terminal", "openfrp.netcheck"):
        assert "openfrp.server" not in graph[client], client


def test_the_frp8_peer_and_admission_do_not_import_the_http_module() -> None:
    """FRP8 data channels are admitted as FRP7 WebSockets are, through server/admission.py;
    both reach the session service (server/sessions.py), never the HTTP API (server/app.py)."""
    graph = import_graph(deferred=True)
    assert "openfrp.server.admission" in graph["openfrp.server.frp8"]
    for module in ("openfrp.server.frp8", "openfrp.server.admission"):
        assert "openfrp.server.app" not in graph[module], module
        assert "openfrp.server.sessions" in graph[module], module
