"""The package's import graph (grimp, the graph import-linter checks): no module imports itself
through others, and only the doors import the Project. The layers themselves are checked by
``lint-imports`` (``make lint``, ``.ci/run``) from the contracts in ``pyproject.toml``."""

import grimp
import pytest

DOORS = (
    "retrainer.cli",
    "retrainer.service",
    "retrainer.replay",
    "retrainer.watch",
    "retrainer.backtest",
)  # the CLI and the service, and the drivers they hand a Project


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("retrainer", include_external_packages=False)


def circles(graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
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
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_module_imports_itself_through_others(graph):
    assert circles(graph) == []


def test_an_import_back_up_is_a_circle():  # the check above can see one
    graph = grimp.build_graph("retrainer", include_external_packages=False)
    graph.add_import(importer="retrainer.record", imported="retrainer.cycle")
    assert any({"retrainer.record", "retrainer.cycle"} <= c for c in circles(graph))


def test_only_the_doors_import_the_project(graph):
    importers = graph.find_modules_that_directly_import("retrainer.project")
    inside = {m for m in importers if m != "retrainer" and not m.startswith(DOORS)}
    assert inside == set()
