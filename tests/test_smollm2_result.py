"""data/results/smollm2.json, the committed real-model run that chapter 12 draws (fast tier: reads files only): it was
made with the sizes `benchmarks/smollm2_run.py` fixes, within the hour the issue allows, and its summary numbers follow
from its per-prompt and per-step records."""
import ast, json, math, statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = json.loads((ROOT / 'data' / 'results' / 'smollm2.json').read_text())


def _script_constant(name):
    "A module-level constant of benchmarks/smollm2_run.py, read from its source (the script is not imported: it runs)."
    tree = ast.parse((ROOT / 'benchmarks' / 'smollm2_run.py').read_text())
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, 'id', None) == name for t in n.targets))
    if isinstance(node, ast.Call):   # dict(n_sft=256, ...)
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return ast.literal_eval(node)


def test_made_with_the_scripts_sizes_within_an_hour():
    assert RESULT['command'] == 'python benchmarks/smollm2_run.py'
    assert RESULT['sizes'] == _script_constant('SIZES') and RESULT['dpo_noise'] == _script_constant('NOISE')
    assert RESULT['wall_s']['total_s'] <= 3600 and RESULT['machine']['cpus'] == 2


def test_summary_numbers_follow_from_the_records():
    n = RESULT['sizes']['n_eval']
    for model, per_prompt in RESULT['exact_harm'].items():
        assert len(per_prompt) == n and all(0 <= p <= 1 for p in per_prompt), model
        assert math.isclose(RESULT['exact_harm_mean'][model], statistics.fmean(per_prompt), rel_tol=1e-12), model
    for method, log in RESULT['train_log'].items():
        assert [r['step'] for r in log] == list(range(1, RESULT['sizes']['steps'] + 1)), method
        assert abs(log[0]['loss'] - math.log(2)) < 1e-4, method      # fresh adapters: policy = reference at step 1
    # both runs evaluated the same SFT model (DPO started from the D²O run's saved SFT folder)
    assert RESULT['metrics']['d2o']['sft'] == RESULT['metrics']['dpo']['sft']
    assert RESULT['metrics']['dpo']['config']['model'].endswith('d2o/sft')
