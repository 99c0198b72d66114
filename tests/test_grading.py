"The instructor's edition end to end, as an instructor uses it: `d2o-edu student`, then `d2o-edu grade`."
import json, re, subprocess, sys
from pathlib import Path

from d2o_edu.grading import GRADED, answer_cells

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'


def _cli(*args):
    cmd = [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT, timeout=600)


def _score(stdout):
    m = re.search(r'^(\d+) / (\d+)$', stdout.strip().splitlines()[-1])
    return int(m.group(1)), int(m.group(2))


def test_every_graded_exercise_names_its_functions_in_the_chapter():
    assert len(GRADED) >= 6
    sessions = {'01_preferences', '03_losses', '04d_batches', '09_evaluation', '10_landscapes'}
    assert sessions <= {e.chapter for e in GRADED}                     # sessions 1, 3 and 4 have graded work
    for ex in GRADED:
        cells = json.loads((NBS / f'{ex.chapter}.ipynb').read_text())['cells']
        i = answer_cells({'cells': cells})[ex.number]
        text = ''.join(cells[i - 1]['source'])
        assert text.startswith(f'### Exercise {ex.number}'), (ex.chapter, ex.number)
        for f in ex.functions: assert f'`{f}(' in text, (ex.chapter, ex.number, f)   # the student is told what to write


def test_solutions_score_full_marks_stubs_zero_and_one_mistake_costs_one_exercise(tmp_path):
    full = _cli('grade', str(NBS))
    assert full.returncode == 0, full.stdout + full.stderr
    score, out_of = _score(full.stdout)
    assert score == out_of == len(GRADED)

    made = _cli('student', '--out', str(tmp_path / 'class'))
    assert made.returncode == 0, made.stderr
    blank = _cli('grade', str(tmp_path / 'class'), '--json', str(tmp_path / 'blank.json'))
    assert blank.returncode == 1 and _score(blank.stdout) == (0, out_of)
    results = json.loads((tmp_path / 'blank.json').read_text())['results']
    assert all(not r['passed'] and 'NotImplementedError' in r['reason'] for r in results)
    for nb in (tmp_path / 'class').glob('*.ipynb'):                # no solution survives, every answer cell is visible
        for cell in json.loads(nb.read_text())['cells']:
            src = ''.join(cell['source'])
            assert not src.startswith('#| hide\n# Solution to exercise'), nb.name

    again = _cli('student', '--out', str(tmp_path / 'class'))    # a second run never overwrites a student's work
    assert again.returncode == 2 and 'already holds notebooks' in again.stderr

    wrong = tmp_path / 'one-wrong'; wrong.mkdir()
    for p in NBS.glob('*.ipynb'): (wrong / p.name).write_text(p.read_text())
    nb = json.loads((wrong / '10_landscapes.ipynb').read_text())
    i = answer_cells(nb)[3]
    src = ''.join(nb['cells'][i]['source'])
    assert '/ K / 8' in src
    nb['cells'][i]['source'] = src.replace('/ K / 8', '/ K / 4')       # the classic slip: (log σ)'' is 1/4, the gap 1/8
    (wrong / '10_landscapes.ipynb').write_text(json.dumps(nb))
    one = _cli('grade', str(wrong))
    assert one.returncode == 1 and _score(one.stdout) == (out_of - 1, out_of)
    assert [l for l in one.stdout.splitlines() if l.startswith('FAIL')] == [
        next(l for l in one.stdout.splitlines() if '10_landscapes exercise 3' in l)]


def test_grade_names_a_broken_answer_instead_of_crashing(tmp_path):
    made = _cli('student', '--out', str(tmp_path / 'c'))
    assert made.returncode == 0
    p = tmp_path / 'c' / '01_preferences.ipynb'
    nb = json.loads(p.read_text())
    nb['cells'][answer_cells(nb)[2]]['source'] = '# Solution to exercise 2\ndef d2o_population_loss(theta, a, b, mu, alpha, beta:\n    pass\n'
    p.write_text(json.dumps(nb))
    res = _cli('grade', str(tmp_path / 'c'))
    line = next(l for l in res.stdout.splitlines() if '01_preferences exercise 2' in l)
    assert line.startswith('FAIL') and 'syntax error on line 2' in line and 'Traceback' not in res.stdout + res.stderr
