"""The package's imports run one way: a module imports only from its own layer or the layers below.

Layers, bottom to top: ``core`` → ``model`` → ``plots`` → ``fitting`` → ``sim`` → ``analysis`` → the
top-level interface modules (``report``, ``cli``, ...). Every import counts, also one made inside a function;
only :mod:`cssim.cli` may import inside functions, and only to keep ``cssim --help`` fast.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cssim"
LAYERS = ["shipped", "core", "model", "plots", "fitting", "sim", "analysis", "interface"]
#: Modules allowed to import inside functions: the command line, to start fast (each such import says so).
LAZY = {"cssim.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    if module in ("cssim", "cssim._version") :
        return "core" if module == "cssim._version" else "interface"
    return "interface"  # cssim.cli, cssim.report, cssim.__main__, ...


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported cssim module, made inside a function, line) for every import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    guarded = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
               for n in ast.walk(i)}
    out = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cssim"):
                continue
            names = [f"{target}.{a.name}" for a in node.names]
            # ``from . import streams``: the name is a module.
            targets = [n for n in names if _is_module(n)] or [target]
            out += [(t, id(node) in nested, node.lineno) for t in targets]
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in nested, node.lineno) for a in node.names if a.name.startswith("cssim")]
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or (PACKAGE.parent / rel / "__init__.py").exists()


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer():
    for layer in LAYERS[:-1]:
        assert (PACKAGE / layer / "__init__.py").exists(), f"cssim.{layer} is missing"
    stray = [_module_name(p) for p in PACKAGE.glob("*/") if p.is_dir() and p.name not in LAYERS
             and p.name != "__pycache__" and (p / "__init__.py").exists()]
    assert not stray, f"subpackages outside the layer order {LAYERS}: {stray}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path):
    module = _module_name(path)
    if module == "cssim":
        return  # the public namespace re-exports from every layer
    rank = LAYERS.index(_layer(module))
    for target, inside, line in _imports(path):
        if target in ("cssim", "cssim.__init__"):
            pytest.fail(f"{module}:{line} imports the top-level package (use cssim._version or the module itself)")
        assert LAYERS.index(_layer(target)) <= rank, (
            f"{module}:{line} ({_layer(module)}) imports {target} ({_layer(target)}), a layer above it"
        )
        if inside:
            assert module in LAZY, f"{module}:{line} imports {target} inside a function; import it at the top"


def test_no_import_cycles():
    """Module-level imports form no cycle (so no import has to be hidden in a function to break one)."""
    graph = {_module_name(p): {t for t, inside, _ in _imports(p) if not inside} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state and node != "cssim":
            visit(node, [node])


def test_cli_lazy_imports_say_why():
    """Each import inside a function of cssim.cli is marked as one for start-up speed."""
    path = PACKAGE / "cli.py"
    lines = path.read_text(encoding="utf-8").splitlines()
    for target, inside, line in _imports(path):
        if inside:
            above = line - 2  # walk up over the rest of this block of imports to the line before it
            while above > 0 and (lines[above].strip().startswith(("from ", "import ", ")"))
                                 or lines[above].strip().rstrip(",").isidentifier()):
                above -= 1
            assert "lazy" in lines[above].lower(), f"cssim/cli.py:{line}: import of {target} inside a function without a 'lazy' comment"


def test_the_public_names_are_the_lazy_exports_and_resolve():
    """``cssim.*`` imports on first use; every name in ``__all__`` is one of those exports and resolves."""
    import cssim

    assert set(cssim.__all__) == set(cssim._EXPORTS)
    for name in cssim.__all__:
        assert getattr(cssim, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cssim.nope  # noqa: B018
