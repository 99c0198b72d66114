"""Benchmark of weight-space loss landscapes: a 21x21 filter-normalised slice of the D²O loss (and a 21-point 1-D slice)
of the default tiny GPT-2 on the default fixed batch (`landscape.landscape_batch`: 8 harm-world negatives with K=4
self-sampled anchors each, i.e. 40 sequences per evaluation).

    python benchmarks/landscape_bench.py [--sft-steps 40] [--n 21] [--threads 0] [--rows 8] [--K 4]

`--sft-steps` fine-tunes the model briefly first so the weights are not a random initialisation (0 = skip);
`--threads` sets torch's CPU threads (0 = torch's default). Prints seconds and points per second.
"""
import argparse, os, time

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sft-steps', type=int, default=40, help='optimizer steps of supervised fine-tuning first (0 = none)')
    p.add_argument('--n', type=int, default=21, help='points per axis')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = default)')
    p.add_argument('--rows', type=int, default=8, help='negatives in the fixed batch')
    p.add_argument('--K', type=int, default=4, help='anchors per negative')
    args = p.parse_args()

    import torch
    if args.threads: torch.set_num_threads(args.threads)
    from d2o_edu.core import set_seed
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model, n_params
    from d2o_edu.sft import sft, SFTConfig
    from d2o_edu.landscape import LossOnBatch, landscape_batch, random_direction, weight_slice_1d, weight_slice_2d

    set_seed(0)
    t0 = time.time()
    model, tokenizer = load_model('tiny-gpt2')
    if args.sft_steps:
        data = load_harm_world('sft')
        cfg = SFTConfig(batch_size=32)
        cfg.epochs = args.sft_steps * cfg.batch_size / len(data)
        sft(model, tokenizer, data, cfg, progress=False)
    batch = landscape_batch(model, tokenizer, n_rows=args.rows, K=args.K)
    loss_fn = LossOnBatch(tokenizer, batch['d2o'], 'd2o')
    n_tokens = int(loss_fn.batch['attention_mask'].sum())
    print(f'setup {time.time() - t0:.1f} s: tiny GPT-2 with {n_params(model):,} parameters, {args.sft_steps} SFT steps, '
          f'D²O batch of {args.rows} negatives x (K={args.K} anchors + 1) = {loss_fn.batch["input_ids"].shape[0]} sequences, '
          f'{n_tokens} tokens; torch threads {torch.get_num_threads()}')

    dirs = [random_direction(model, seed=0), random_direction(model, seed=1)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_fn(model)                                   # warm-up (first call moves the batch, allocates)

    t = time.time()
    s1 = weight_slice_1d(model, loss_fn, dirs[0], span=1.0, n=args.n)
    t1 = time.time() - t
    print(f'1-D slice, {args.n} points: {t1:.2f} s, {args.n / t1:.1f} points/s '
          f'(loss {s1["loss"].min():.3f} .. {s1["loss"].max():.3f})')

    t = time.time()
    s2 = weight_slice_2d(model, loss_fn, dirs, span=1.0, n=args.n)
    t2 = time.time() - t
    print(f'2-D slice, {args.n}x{args.n} = {args.n ** 2} points: {t2:.2f} s, {args.n ** 2 / t2:.1f} points/s '
          f'(loss {s2["z"].min():.3f} .. {s2["z"].max():.3f})')

    same = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    print(f'weights bit-identical afterwards: {same}')
    if not same: raise SystemExit('weights changed')


if __name__ == '__main__':
    main()
