"""The library's shape, read from its source (ast): data flows one way, nothing imports the command line, nothing
patches another module, and only the registry of objectives (losses.py) looks at method names."""
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / 'd2o_edu'
MODULES = {p.stem: ast.parse(p.read_text()) for p in sorted(LIB.glob('*.py')) if p.stem not in ('__init__', '_modidx')}
METHOD_NAMES = {'d2o', 'dpo', 'npo', 'ga', 'unlikelihood', 'kto_negative', 'ipo', 'simpo'}


def imports_of(tree) -> set:
    "The d2o_edu modules a module imports, at top level or inside functions."
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: found.add(node.module.split('.')[0])
            elif node.level == 1: found.update(a.name for a in node.names)
            elif node.module and node.module.startswith('d2o_edu.'): found.add(node.module.split('.')[1])
            elif node.module == 'd2o_edu': found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split('.')[1] for a in node.names if a.name.startswith('d2o_edu.'))
    return found & set(MODULES)


def test_the_import_graph_has_no_cycle():
    graph = {m: imports_of(t) - {m} for m, t in MODULES.items()}
    state = {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f'import cycle: {" -> ".join(path + [m])}'
        state[m] = 'open'
        for n in sorted(graph[m]): visit(n, path + [m])
        state[m] = 'done'
    for m in sorted(graph): visit(m, [])


def test_nothing_imports_the_command_line():
    assert 'cli' in MODULES and 'pipeline' in MODULES
    assert [m for m, t in MODULES.items() if 'cli' in imports_of(t) and m != 'cli'] == []


def test_no_module_patches_another():
    "No assignment to an attribute of an imported module (`models.score_examples = ...`)."
    offences = []
    for m, tree in MODULES.items():
        imported = {a.asname or a.name.split('.')[-1] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
            for t in targets:
                for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id in imported:
                        offences.append(f'{m}.py:{el.lineno} {el.value.id}.{el.attr}')
    assert offences == []


def test_only_the_registry_compares_method_names():
    "`x == 'd2o'`, `m in ('ga', 'unlikelihood')`, `arm.startswith('d2o')` belong in losses.py's registry entries."
    offences = []
    for m, tree in MODULES.items():
        if m == 'losses': continue
        for node in ast.walk(tree):
            consts = []
            if isinstance(node, ast.Compare):
                for c in [node.left, *node.comparators]:
                    if isinstance(c, ast.Constant): consts.append(c.value)
                    elif isinstance(c, (ast.Tuple, ast.List, ast.Set)): consts += [e.value for e in c.elts if isinstance(e, ast.Constant)]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'startswith':
                consts += [a.value for a in node.args if isinstance(a, ast.Constant)]
            if any(isinstance(c, str) and c in METHOD_NAMES for c in consts): offences.append(f'{m}.py:{node.lineno}')
    assert offences == []


def test_the_checks_can_fail():
    "Each check above flags a small module written to break it."
    bad = ast.parse("import d2o_edu.models as models\nfrom .cli import main\nmodels.score = None\nif method == 'd2o': pass\n")
    assert 'cli' in imports_of(bad)
    assert any(isinstance(n, ast.Compare) and getattr(n.comparators[0], 'value', None) == 'd2o' for n in ast.walk(bad))
    assert any(isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Attribute) for n in ast.walk(bad))
