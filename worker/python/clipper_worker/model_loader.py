"""Loads the model given by --module: a .py file (its directory joins
sys.path, so the model may import its sibling modules) or an importable
module name, optionally followed by :FUNCTION (default ``predict``). An
optional ``setup(runtime)`` in the same module runs once before the worker
registers."""
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_NAME = re.compile(rf"^{_IDENT}(\.{_IDENT})*$")


@dataclass(frozen=True)
class LoadedModel:
    predict: Callable[[list], Any]
    setup: Optional[Callable[[Any], Any]]
    #: What was loaded, for operators: the file's absolute path or the module's name.
    where: str


def split_target(spec: str):
    """(module part, function name) of PATH_OR_MODULE[:FUNCTION]."""
    head, sep, tail = spec.rpartition(":")
    if sep and head != "" and re.fullmatch(_IDENT, tail):
        return head, tail
    return spec, "predict"


def is_file_target(module: str) -> bool:
    """A file when it names one (a path with a separator or ending in .py); an importable module name otherwise."""
    return "/" in module or module.endswith(".py") or not _MODULE_NAME.match(module)


def load_model(spec: str, cwd: Optional[str] = None) -> Union[LoadedModel, str]:
    """The model, or what to fix (the caller exits 2). Never raises."""
    if spec.strip() == "":
        return "no model module given: pass --module PATH_OR_MODULE (or CLIPPER_MODULE)"
    module, function = split_target(spec)
    if is_file_target(module):
        path = os.path.abspath(os.path.join(cwd or os.getcwd(), module))
        if not os.path.isfile(path):
            return f"model module {path} does not exist (--module {spec}, resolved against {cwd or os.getcwd()})"
        name = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0]) or "model"
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        try:
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                return f"model module {path} cannot be loaded as Python (is it a .py file?)"
            mod = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = mod
            loader_spec.loader.exec_module(mod)
        except BaseException as err:  # a model's import-time failure, even SystemExit, is reported, not fatal here
            return f"model module {path} failed to load: {type(err).__name__}: {err}"
        where = path
    else:
        try:
            mod = importlib.import_module(module)
        except BaseException as err:
            return f"model module '{module}' failed to import: {type(err).__name__}: {err} (sys.path: {os.pathsep.join(sys.path)})"
        where = module
    predict = getattr(mod, function, None)
    if not callable(predict):
        names = ", ".join(n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))) or "none"
        return f"model module {where} has no function {function}: define predict(inputs) -> outputs, or name one with --module {module}:FUNCTION (functions found: {names})"
    setup = getattr(mod, "setup", None)
    return LoadedModel(predict=predict, setup=setup if callable(setup) else None, where=where)
