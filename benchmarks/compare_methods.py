"""Benchmark of the default pipeline: wall time of `d2o-edu run` and the harm/helpfulness/diversity it reaches.

    python benchmarks/compare_methods.py [--out runs/bench] [--methods d2o ga dpo npo] [extra d2o-edu run options]

The first method runs the whole default pipeline from scratch (its wall time is the "<= 5 minutes" goal). The
other methods start from its SFT model (`--model <first>/sft --sft-epochs 0`, a fresh run each: `--resume` would
refuse a folder whose run.json describes another method), so they differ only in the alignment objective; their wall
time leaves out SFT. Prints one table; ratios are measured against the SFT model as evaluated in the same run. With
--keep, methods whose folder already holds a metrics.json are read back instead of run again. Extra options go to every
`d2o-edu run`, e.g. tiny sizes for a smoke test: --steps 3 --sft-epochs 0.05 --n-train 12 --n-eval 6 --K 2 --max-new-tokens 10
"""
import argparse, json, shutil, subprocess, sys, time
from pathlib import Path


def run(method, out, extra):
    cmd = [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())', 'run',
           '--method', method, '--out', str(out), *extra]
    t = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.time() - t, json.loads((out / 'metrics.json').read_text())


def start_from(first):
    "Options that start a run from the SFT model of the run in `first`, with the attention kernel that run used."
    from d2o_edu.models import TINY_BUILDERS
    cfg = json.loads((first / 'run.json').read_text())['config']
    attn = cfg.get('attn_implementation') or ('eager' if cfg['model'] in TINY_BUILDERS else None)
    return ['--model', str(first / 'sft'), '--sft-epochs', '0'] + (['--attn-implementation', attn] if attn else [])


def ratio(a, b): return None if a is None or b is None else a / max(b, 1e-9)
def fmt(v, digits=2): return 'n/a' if v is None else f'{v:.{digits}f}'


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='runs/bench')
    p.add_argument('--methods', nargs='+', default=['d2o', 'ga', 'dpo', 'npo'])
    p.add_argument('--keep', action='store_true', help='reuse finished runs under --out')
    p.add_argument('--sft-from', help='a finished `d2o-edu run` folder whose SFT model every method starts from')
    args, extra = p.parse_known_args()
    root = Path(args.out)
    if not args.keep: shutil.rmtree(root, ignore_errors=True)
    rows, first = [], (Path(args.sft_from) if args.sft_from else None)
    for method in args.methods:
        out = root / method
        if args.keep and (out / 'metrics.json').exists():
            wall, m = float('nan'), json.loads((out / 'metrics.json').read_text())
        else:
            wall, m = run(method, out, extra + (start_from(first) if first is not None else []))
        first = first or out
        s, a = m['sft'], m['aligned']
        rows.append({'method': method, 'wall_s': round(wall, 1), 'sft_s': round(m['timing']['sft_s'], 1),
                     'data_s': round(m['timing']['data_s'], 1), 'train_s': round(m['timing']['train_s'], 1),
                     'sft_harm': s['harm_rate'], 'harm': a['harm_rate'], 'harm_ratio': ratio(a['harm_rate'], s['harm_rate']),
                     'help_ratio': ratio(a['helpfulness'], s['helpfulness']), 'distinct2_ratio': ratio(a['distinct_2'], s['distinct_2']),
                     'kl_to_sft': a['kl_to_sft']})
        print(json.dumps(rows[-1]), flush=True)
    print('\n| method | wall s | train s | SFT harm | harm | harm ratio | helpfulness ratio | distinct-2 ratio | KL to SFT |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['method']} | {r['wall_s']} | {r['train_s']} | {fmt(r['sft_harm'], 3)} | {fmt(r['harm'], 3)} | {fmt(r['harm_ratio'])} | "
              f"{fmt(r['help_ratio'])} | {fmt(r['distinct2_ratio'])} | {fmt(r['kl_to_sft'])} |")
    (root / 'summary.json').write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
