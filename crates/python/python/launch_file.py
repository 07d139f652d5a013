"""Reads the runner file DataKit renders for an [[inputs.pythond]] block,
without running it: the string arguments of its sys.path.append/insert,
sys.path.extend and main(...) calls, in source order.

The file is parsed with Python's own grammar (ast), so quoting, escapes,
comments, line breaks, tabs and the encoding cookie mean exactly what they
meant to the python3 that DataKit used to run it with.
"""

import ast


def _is_sys_path(node):
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def read(source, filename):
    """-> (path_appends, path_extends, main_args or None)"""
    tree = ast.parse(source, filename)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    appends, extends, main_args = [], [], None
    for call in calls:
        f = call.func
        if isinstance(f, ast.Attribute) and _is_sys_path(f.value):
            if f.attr == "append" and len(call.args) == 1:
                v = _literal(call.args[0])
                if isinstance(v, str):
                    appends.append(v)
            elif f.attr == "insert" and len(call.args) == 2:
                v = _literal(call.args[1])
                if isinstance(v, str):
                    appends.append(v)
            elif f.attr == "extend" and len(call.args) == 1:
                v = _literal(call.args[0])
                if isinstance(v, (list, tuple)):
                    extends.extend(x for x in v if isinstance(x, str))
        elif isinstance(f, ast.Name) and f.id == "main" and call.args and not call.keywords:
            vals = [_literal(a) for a in call.args]
            if all(isinstance(v, str) for v in vals):
                main_args = vals
    return appends, extends, main_args
