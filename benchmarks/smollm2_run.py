"""The committed real-model run of chapter 12 (§9b): SmolLM2-135M-Instruct, offline on CPU, with LoRA.

    python benchmarks/smollm2_run.py [--out runs/smollm2] [--result data/results/smollm2.json] [--small]

One seed, sizes fixed here before it ran (they are in the commit before its result):
1. SFT: the shipped model fine-tuned on the harm world's SFT corpus (safe and harmful answers), so that it opens
   some answers with harm, as Alpaca does in the paper (`SIZES['n_sft']` rows, `sft_epochs` epochs).
2. D²O: `n_train` negatives with K self-sampled anchors from the SFT model, `steps` steps of LoRA.
3. DPO: the same SFT model (its saved folder, no second SFT), noisy pairs (ε = 0.34), the same steps and LoRA.
4. Evaluation on `n_eval` held-out prompts: the sampled metrics of `d2o-edu run`, and the exact probability that an
   answer opens with a harm sentence (chapter 11c's judge), for the shipped model, SFT, D²O and DPO.

Writes one JSON file with the settings, the command, wall times, metrics, exact harm and a few samples. `--small`
runs the same path at toy sizes (a smoke test; it does not write `--result` unless asked).
"""
import argparse, json, os, platform, shlex, statistics, sys, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

# fixed before the run (see the docstring); learning rates for a pretrained model with LoRA (chapter 12 §9b)
SIZES = dict(n_sft=256, sft_epochs=2.0, sft_lr=2e-4, n_train=64, K=4, steps=48, batch_size=4, lr=5e-4,
             n_eval=64, max_new_tokens=32, checkpoint_every=0, lora=True, seed=0)
SMALL = dict(SIZES, n_sft=4, sft_epochs=1.0, n_train=4, K=2, steps=2, batch_size=2, n_eval=4, max_new_tokens=8)
NOISE = 0.34


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='runs/smollm2', help='folder of the two runs (default: runs/smollm2)')
    p.add_argument('--result', default=None, help='JSON result file (default: data/results/smollm2.json; none with --small)')
    p.add_argument('--small', action='store_true', help='toy sizes: a smoke test of the same path')
    args = p.parse_args()
    result = args.result or (None if args.small else 'data/results/smollm2.json')
    sizes = SMALL if args.small else SIZES

    import torch
    from peft import PeftModel
    from d2o_edu.core import package_versions
    from d2o_edu.pipeline import PipelineConfig, run_pipeline
    from d2o_edu.models import load_model
    from d2o_edu.sources import data_source
    from d2o_edu.study2 import harm_probability

    out, t0, wall = Path(args.out), time.time(), {}
    t = time.time()
    d2o = run_pipeline(PipelineConfig(model='smollm2-135m', method='d2o', **sizes), out / 'd2o', progress=True)
    wall['d2o_run_s'] = time.time() - t
    sft_folder = out / 'd2o' / 'sft'
    t = time.time()
    dpo = run_pipeline(PipelineConfig(model=str(sft_folder), method='dpo', noise=NOISE, **{**sizes, 'sft_epochs': 0}),
                       out / 'dpo', progress=True)
    wall['dpo_run_s'] = time.time() - t

    t = time.time()
    prompts = data_source('harm-world').eval_prompts(sizes['n_eval'], sizes['n_train'])
    sft_model, tok = load_model(str(sft_folder))
    exact = {'shipped': harm_probability(load_model('smollm2-135m')[0], tok, prompts), 'sft': harm_probability(sft_model, tok, prompts)}
    for name, r in (('d2o', d2o), ('dpo', dpo)):
        ckpt = sorted((r.out / 'checkpoints').iterdir())[-1]
        exact[name] = harm_probability(PeftModel.from_pretrained(load_model(str(sft_folder))[0], ckpt), tok, prompts)
    wall['exact_harm_s'] = time.time() - t
    wall['total_s'] = time.time() - t0

    logs = {name: [json.loads(line) for line in (r.out / 'train_log.jsonl').read_text().splitlines()] for name, r in (('d2o', d2o), ('dpo', dpo))}
    samples = {name: [json.loads(line) for line in (r.out / 'samples.jsonl').read_text().splitlines()][:6] for name, r in (('d2o', d2o), ('dpo', dpo))}
    record = {
        'command': 'python benchmarks/smollm2_run.py' + (' --small' if args.small else ''),
        'what': 'SmolLM2-135M-Instruct, offline on CPU with LoRA: SFT on the harm world, then D2O (K self-sampled anchors) '
                'and DPO (noisy pairs, the same SFT model); one seed',
        'sizes': sizes, 'dpo_noise': NOISE, 'prompts': len(prompts),
        'machine': {'cpus': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'platform': platform.platform()},
        'versions': package_versions(), 'wall_s': wall,
        'metrics': {'d2o': d2o.metrics, 'dpo': dpo.metrics},
        'exact_harm': exact, 'exact_harm_mean': {k: statistics.fmean(v) for k, v in exact.items()},
        'train_log': {k: [{f: r[f] for f in ('step', 'loss', 'rewards/margins', 'grad_norm') if f in r} for r in v] for k, v in logs.items()},
        'samples': samples,
        'argv': shlex.join(sys.argv),
    }
    print(json.dumps({'wall_s': wall, 'exact_harm_mean': record['exact_harm_mean']}, indent=1))
    if result:
        Path(result).parent.mkdir(parents=True, exist_ok=True)
        Path(result).write_text(json.dumps(record, indent=1) + '\n')
        print(f'wrote {result}')


if __name__ == '__main__':
    main()
