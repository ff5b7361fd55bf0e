"""The import graph of src/ganforge: no cycles, and no module reads the package face (``ganforge/__init__.py``)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ganforge"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def module_level_imports(path: Path, known: set[str]) -> set[str]:
    """The ganforge modules ``path`` imports when it is imported (imports inside functions are left out)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ganforge")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ganforge"):
            for alias in node.names:  # `from ganforge.x import y` may name the submodule ganforge.x.y
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: module_level_imports(path, known) & known for name, path in modules().items()}


def test_no_module_reads_the_package_face():
    """``from ganforge import __version__`` inside the package was a hidden cycle through ``__init__``."""
    graph = import_graph()
    back_edges = sorted(name for name, imports in graph.items() if "ganforge" in imports and name != "ganforge")
    assert not back_edges


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    graph["ganforge"] = set()  # the face imports everything (lazily); nothing imports it back (above)
    done, path = set(), []

    def visit(name: str) -> None:
        if name in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(name) :] + [name])}")
        if name in done:
            return
        path.append(name)
        for imported in sorted(graph[name]):
            parents = [imported.rsplit(".", k)[0] for k in range(1, imported.count(".") + 1)]
            for package in [p for p in parents if p in graph and p != "ganforge"] + [imported]:
                if package != name and not name.startswith(package + "."):  # a package's own modules
                    visit(package)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_check_sees_a_cycle(tmp_path, monkeypatch):
    """The cycle check can fail: two modules importing each other are caught."""
    import pytest

    package = tmp_path / "ganforge"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ganforge.b import x\n")
    (package / "b.py").write_text("from ganforge.a import y\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    with pytest.raises(AssertionError, match="import cycle"):
        test_the_import_graph_has_no_cycles()
