"""Why a tiny MIMDet trained at one sample ratio scores as it does at another: measurements inside it.

For a trained checkpoint and each inference ratio r it reports, on the validation images:

- ``attn_entropy``: the attention entropy of every encoder and decoder block, divided by log N (1 = the
  uniform attention over all N keys, 0 = one key), averaged over queries, heads and images;
- ``bn_shift``: for every BatchNorm in FPN and the heads, how far the batch statistics of its input at
  ratio r are from the running statistics it normalises with (those gathered while training):
  the mean over channels of |mean_r - running_mean| / running_std, and of std_r / running_std;
- ``same_tokens``: the encoder and decoder outputs of the tokens kept at 0.25, computed once with only
  those tokens as context and once with all of them: relative L2 distance and cosine similarity;
- with ``--ap``: the box AP at r, and with ``--recalibrate-bn N`` also the box AP after re-estimating
  every BatchNorm's running statistics at ratio r on N training batches, weights untouched. If that
  second AP is close to the AP of a model trained at r, the drop comes from the statistics, not from
  the features' content;
- with ``--ap --blank c4,c5``: the box AP at r with those backbone outputs replaced by their spatial
  mean per image and channel (their spatial information removed, their level kept): how much of the
  detector's AP comes through them. Repeat ``--blank`` for other sets (e.g. ``--blank c2,c3``).

    PYTHONPATH=. python scripts/tiny_ratio_probe.py --checkpoint RUN/model_final.pth \\
        --ratios 0.25 1.0 --ap --recalibrate-bn 40 [key=value ...]
    PYTHONPATH=. python scripts/tiny_ratio_probe.py --mae tiny-mae   # straight after MAE initialisation

Overrides (``key=value``) go to ``experiments/tiny_mimdet.py`` as they would to ``mimdet.train``.
Shapes: B batch, N tokens on the grid, K kept tokens, D encoder width, E decoder width, H heads.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.evaluation import inference_on_dataset
from omegaconf import DictConfig
from torch import nn

from mimdet.modeling.checkpoint import load_mae_checkpoint
from mimdet.run.config import build_model
from mimdet.run.precise_bn import recalibrate_batchnorm
from mimdet.run.resolve import resolve_run
from mimdet.train import register_datasets, resolve_mae_checkpoint

CONFIG = "experiments/tiny_mimdet.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--checkpoint", help="a trained detector (model_final.pth)")
    start.add_argument(
        "--mae", help="an MAE checkpoint ('tiny-mae' = the cached one): the detector before fine-tuning"
    )
    parser.add_argument("--config-file", default=CONFIG)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--images", type=int, default=16, help="validation images for the statistics")
    parser.add_argument("--ap", action="store_true", help="also evaluate box AP at each ratio")
    parser.add_argument("--recalibrate-bn", type=int, default=0, metavar="N")
    parser.add_argument("--blank", action="append", default=[], metavar="LEVELS", help="e.g. c4,c5")
    parser.add_argument("--output", help="write the results as JSON here too")
    parser.add_argument("opts", nargs="*")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = resolve_run(args.config_file, args.opts).cfg
    register_datasets(cfg)
    model = build_model(cfg, "cpu")
    if args.checkpoint:
        DetectionCheckpointer(model).load(args.checkpoint)
    else:
        load_mae_checkpoint(backbone_of(model), resolve_mae_checkpoint(args.mae))
    model.eval()
    batches = list(_val_batches(cfg, args.images))
    results: dict[str, object] = {"checkpoint": args.checkpoint or args.mae, "overrides": args.opts}
    results["same_tokens"] = same_token_drift(model, batches)
    for ratio in args.ratios:
        row: dict[str, object] = {}
        set_ratio(model, ratio)
        row["attn_entropy"] = attention_entropy(model, batches)
        row["bn_shift"] = bn_shift(model, batches)
        if args.ap:
            row["box_ap"] = box_ap(cfg, model)
        if args.recalibrate_bn:
            recalibrated = copy.deepcopy(model)
            recalibrate_batchnorm(recalibrated, instantiate(cfg.dataloader.train), args.recalibrate_bn)
            row["box_ap_bn_recalibrated"] = box_ap(cfg, recalibrated)
        for levels in args.blank if args.ap else []:
            with blanked(model, levels.split(",")):
                row[f"box_ap_blank_{levels.replace(',', '+')}"] = box_ap(cfg, model)
        results[f"r={ratio}"] = row
        print(f"ratio {ratio}: {json.dumps(row)}", flush=True)
    print(json.dumps(results["same_tokens"]))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)


def _val_batches(cfg: DictConfig, images: int) -> Iterator[list[dict]]:
    loader = instantiate(cfg.dataloader.test)
    for index, batch in enumerate(loader):
        if index >= images:
            return
        yield batch


def backbone_of(model: nn.Module) -> nn.Module:
    """The MIMDet backbone inside the detector (FPN's bottom-up part)."""
    return model.get_submodule("backbone.bottom_up")


def set_ratio(model: nn.Module, ratio: float) -> None:
    """The ratio the backbone uses in both modes (its eval generator re-seeded, as at evaluation)."""
    backbone = backbone_of(model)
    backbone.train_sample_ratio = ratio
    backbone.test_sample_ratio = ratio
    backbone.train(backbone.training)


@torch.no_grad()
def attention_entropy(model: nn.Module, batches: list[list[dict]]) -> dict[str, float]:
    """Mean attention entropy / log N of each ViT block, keyed ``encoder.i`` / ``decoder.i``."""
    backbone = backbone_of(model)
    sums: dict[str, list[float]] = defaultdict(list)

    def hook(name: str) -> Callable[..., None]:
        def record(attn: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0]  # (B, N, C)
            b, n, c = x.shape
            qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
            q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # (B, H, N, C/H)
            p = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, H, N, N)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
            sums[name].append(float(entropy) / math.log(n))

        return record

    handles = [
        block.attn.register_forward_hook(hook(f"{part}.{i}"))
        for part in ("encoder", "decoder")
        for i, block in enumerate(getattr(backbone, part).blocks)
    ]
    _forward_with_hooks(model, batches, handles)
    return {name: round(sum(v) / len(v), 4) for name, v in sums.items()}


def _forward_with_hooks(model: nn.Module, batches: list[list[dict]], handles: list) -> None:
    """Run ``model`` over ``batches`` for its hooks' sake, then remove the hooks whatever happens."""
    try:
        for batch in batches:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def bn_shift(model: nn.Module, batches: list[list[dict]]) -> dict[str, list[float]]:
    """Per BatchNorm: [mean |mu_r - mu_run| / sigma_run, mean sigma_r / sigma_run] over its channels."""
    stats: dict[str, list[torch.Tensor]] = defaultdict(list)

    def hook(name: str) -> Callable[..., None]:
        def record(bn: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].transpose(0, 1).flatten(1)  # (C, everything else)
            stats[name].append(torch.stack([x.mean(1), x.var(1)]))

        return record

    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    handles = [m.register_forward_hook(hook(n)) for n, m in bns.items()]
    _forward_with_hooks(model, batches, handles)
    out = {}
    for name, bn in bns.items():
        if not stats[name]:
            continue
        mean, var = torch.stack(stats[name]).mean(0)  # (C,), (C,): averaged over batches
        run_std = (bn.running_var + bn.eps).sqrt()
        out[name] = [
            round(float(((mean - bn.running_mean).abs() / run_std).mean()), 3),
            round(float(((var + bn.eps).sqrt() / run_std).mean()), 3),
        ]
    return out


@torch.no_grad()
def same_token_drift(model: nn.Module, batches: list[list[dict]]) -> dict[str, float]:
    """The kept-at-0.25 tokens' encoder/decoder outputs with 25 % vs 100 % context: rel. L2 and cosine."""
    backbone = backbone_of(model)
    rel: dict[str, list[float]] = defaultdict(list)
    for batch in batches:
        images = model.preprocess_image(batch).tensor
        stem = backbone.stem(images)
        hw = tuple(stem[16].shape[-2:])
        tokens = stem[16].flatten(2).transpose(1, 2)  # (B, N, D)
        set_ratio(model, 0.25)
        ids = backbone.sample(images)  # (B, K)
        part, _ = backbone.encoder(tokens, hw, ids)  # (B, K, D)
        full, _ = backbone.encoder(tokens, hw, None)  # (B, N, D)
        full_at = full.gather(1, ids[..., None].expand(-1, -1, full.shape[-1]))
        dec_part = backbone.decoder(part, ids, hw, tokens)  # (B, N, E)
        dec_full = backbone.decoder(full, None, hw, tokens)  # (B, N, E)
        kept = torch.zeros(dec_full.shape[:2], dtype=torch.bool).scatter(1, ids, True)  # (B, N)
        pairs = {
            "encoder_kept": (part, full_at),
            "decoder_kept": (dec_part[kept], dec_full[kept]),
            "decoder_filled": (dec_part[~kept], dec_full[~kept]),
        }
        for name, (a, b) in pairs.items():
            rel[f"{name}_rel_l2"].append(float((a - b).norm() / b.norm()))
            rel[f"{name}_cos"].append(float(nn.functional.cosine_similarity(a, b, dim=-1).mean()))
            rel[f"{name}_norm_ratio"].append(float(a.norm(dim=-1).mean() / b.norm(dim=-1).mean()))
    return {name: round(sum(v) / len(v), 4) for name, v in rel.items()}


@contextlib.contextmanager
def blanked(model: nn.Module, levels: list[str]) -> Iterator[None]:
    """Inside: the backbone's outputs at ``levels`` are their spatial mean (per image, channel)."""

    def blank(_module: nn.Module, _args: object, features: dict[str, torch.Tensor]) -> dict:
        return {
            name: f.mean(dim=(2, 3), keepdim=True).expand_as(f) if name in levels else f
            for name, f in features.items()
        }

    handle = backbone_of(model).register_forward_hook(blank)
    try:
        yield
    finally:
        handle.remove()


def box_ap(cfg: DictConfig, model: nn.Module) -> float:
    """COCO box AP on the config's test split, as ``mimdet.train`` evaluates it."""
    model.eval()
    backbone_of(model).train(False)  # re-seed the evaluation draw
    results = inference_on_dataset(
        model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    return round(float(results["bbox"]["AP"]), 2)


if __name__ == "__main__":
    main()
