"""Every public name has a docstring, and the type stubs (shmbus/__init__.pyi, shipped with the
package) name exactly what the module has: classes, their public members, functions."""
import ast
import inspect
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import shmbus

STUB = pathlib.Path(shmbus.__file__).with_name("__init__.pyi")


def public_classes():
    for name in shmbus.__all__:
        obj = getattr(shmbus, name)
        if inspect.isclass(obj):
            yield name, obj


def members(cls):
    """Public members defined by the class itself (not inherited from Exception/object)."""
    names = set()
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins",) or klass is shmbus.Error:
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")}
    if issubclass(cls, BaseException):
        return set()
    return names


# pybind11's own members of every enum, documented by pybind11 as a whole.
ENUM_BUILTINS = {("PublishResult", "name"), ("PublishResult", "value")}
# Instance attributes set in __init__ (not visible on the class).
INSTANCE_ATTRS = {"Dispatcher": {"exception"}}


def test_every_public_name_has_a_docstring():
    missing = []
    for name in shmbus.__all__:
        obj = getattr(shmbus, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for m in members(obj) | {"__enter__", "__exit__", "__iter__", "__next__", "__len__"}:
                attr = inspect.getattr_static(obj, m, None)
                if attr is None or isinstance(attr, obj) or (name, m) in ENUM_BUILTINS:
                    continue
                if not (getattr(attr, "__doc__", None) or "").strip():
                    missing.append(f"{name}.{m}")
    assert not missing, f"public names without a docstring: {missing}"


def stub_tree():
    tree = ast.parse(STUB.read_text())
    top, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            classes[node.name] = {
                n.name if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else n.target.id
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.AnnAssign))}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            top.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module is None:
            top |= {a.asname or a.name for a in node.names}
    return top, classes


def test_stub_is_shipped_with_py_typed():
    assert STUB.is_file() and STUB.with_name("py.typed").is_file()


def test_stub_names_match_the_module():
    top, classes = stub_tree()
    assert set(shmbus.__all__) == {n for n in top if not n.startswith("_")}
    for name, cls in public_classes():
        if issubclass(cls, BaseException):
            continue
        stubbed = {n for n in classes[name] if not n.startswith("_")}
        actual = members(cls) | INSTANCE_ATTRS.get(name, set())
        if name == "PublishResult":  # pybind11 enums: the values, plus name/value
            actual -= {"name", "value"}
        assert stubbed == actual, f"{name}: stub-only {stubbed - actual}, module-only {actual - stubbed}"


@pytest.mark.skipif(shutil.which("mypy") is None and
                    subprocess.run([sys.executable, "-c", "import mypy"]).returncode != 0,
                    reason="mypy (Debian python3-mypy) is not installed")
def test_mypy_checks_a_client_against_the_stubs(tmp_path):
    client = tmp_path / "client.py"
    client.write_text(
        "import shmbus\n"
        "bus = shmbus.Bus.open_or_create('x')\n"
        "pub = bus.publisher('t', policy='lossy')\n"
        "r: shmbus.PublishResult = pub.publish(b'x')\n"
        "sub = bus.subscriber('t', start='oldest')\n"
        "for m in sub.poll(8):\n"
        "    n: int = m.meta.seq\n"
        "bad: str = sub.drops\n")
    env = dict(os.environ, MYPYPATH=str(STUB.parent.parent))
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
                        "--follow-imports=silent", str(client)], capture_output=True, text=True,
                       timeout=240, cwd=tmp_path, env=env)
    # One error only: the deliberate one, found through the stubs.
    assert "client.py:8: error: Incompatible types in assignment" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("error:") == 1, r.stdout
