"""A griffe extension for the API reference (mkdocs.yml): forwarded keywords, and the docstrings' reST roles.

The hooks take their listing options as ``**options: Unpack[<TypedDict>]`` and the hook classes forward
``**kwargs`` to ``ModelRegistryHookBase.__init__``; their docstrings document each such keyword with ``:param:``.
griffe matches ``:param:`` fields against the signature only, so it would warn (and ``mkdocs build --strict``
fail) on every one of them. This extension adds the forwarded keywords to the signature griffe reads, each a
keyword-only parameter with its annotation (from the TypedDict's fields, or from the base class's ``__init__``),
before the ``**`` parameter, so a ``:param:`` naming a keyword that is not forwarded still fails the build.

The docstrings cross-reference with reST roles (``:class:`~airflow_provider_modelreg.errors.RegistryAuthError```),
which Markdown would show as typed. Each role becomes inline code (the last name with ``~``, the whole path
without), and a role naming a path of this package that does not exist (a class renamed or moved) is a warning,
which fails the strict build. Relative names and names outside the package are shown, not checked.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")


def _roles(pkg: griffe.Module, obj: Any) -> None:
    """Rewrite the reST roles of ``obj``'s docstring as inline code; warn about a path of ``pkg`` that is gone."""
    docstring = obj.docstring
    if docstring is None or ":`" not in docstring.value:
        return

    def code(match: re.Match[str]) -> str:
        target = re.sub(r"\s+", "", match.group(2))
        if target.startswith(pkg.path + ".") and _resolve(pkg, target) is None:
            griffe.logger.warning(f"{obj.relative_filepath}:{docstring.lineno}: {match.group(0)!r}: no such object")
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    docstring.value = ROLE.sub(code, docstring.value)


def _objects(obj: griffe.Object) -> Any:
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield member
        if member.is_module or member.is_class:
            yield from _objects(member)


def _resolve(pkg: griffe.Module, path: str) -> Any:
    prefix = pkg.path + "."
    if not path.startswith(prefix):
        return None
    try:
        found = pkg[path[len(prefix) :]]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return found.final_target if found.is_alias else found


def _forwarded(pkg: griffe.Module, func: griffe.Function, var: griffe.Parameter) -> list[griffe.Parameter]:
    annotation = var.annotation
    if isinstance(annotation, griffe.ExprSubscript) and str(annotation.left) == "Unpack":
        typed_dict = _resolve(pkg, getattr(annotation.slice, "canonical_path", ""))
        if typed_dict is None or not typed_dict.is_class:
            return []
        fields: dict[str, Any] = {}
        for cls in [typed_dict, *typed_dict.mro()]:  # a TypedDict's fields include its bases'
            for name, attr in cls.members.items():
                if not attr.is_alias and attr.is_attribute and not name.startswith("_"):
                    fields.setdefault(name, attr.annotation)
        keyword = griffe.ParameterKind.keyword_only
        return [griffe.Parameter(name, annotation=ann, kind=keyword, default="...") for name, ann in fields.items()]
    if func.name == "__init__" and func.parent is not None and func.parent.is_class:
        for base in func.parent.resolved_bases:
            init = base.members.get("__init__")
            if init is not None and not init.is_alias and init.is_function:
                return [p for p in init.parameters if p.kind is griffe.ParameterKind.keyword_only]
    return []


class ForwardedKeywords(griffe.Extension):
    """Adds the keywords a ``**`` parameter forwards to the function's signature, and rewrites the docstrings'
    reST roles (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _roles(pkg, pkg)
        for obj in _objects(pkg):
            _roles(pkg, obj)
            if not obj.is_function:
                continue
            params = list(obj.parameters)
            var = next((p for p in params if p.kind is griffe.ParameterKind.var_keyword), None)
            if var is None:
                continue
            names = {p.name for p in params}
            added = [p for p in _forwarded(pkg, obj, var) if p.name not in names]
            if added:
                at = params.index(var)
                obj.parameters = griffe.Parameters(*params[:at], *added, *params[at:])
