"""`lem train`."""

from __future__ import annotations

from pathlib import Path

import click

P = click.Path(path_type=Path)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=P,
    help="Experiment file; its [train] table sets defaults that flags override.",
)
@click.option("--model", help="Base model: MLX directory or hub id (mlx/ prefix optional).")
@click.option("--data", type=P, help="Directory with train.jsonl and valid.jsonl [training].")
@click.option("--out", type=P, help="Output directory [runs/train].")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last checkpoint.")
@click.option("--fine-tune-type", type=click.Choice(["lora", "dora", "full"]), help="[lora]")
@click.option("--iters", type=int, help="Optimizer steps [200].")
@click.option("--epochs", type=int, help="Full passes over train.jsonl (replaces --iters).")
@click.option("--batch-size", type=int, help="Examples per step [2].")
@click.option("--learning-rate", type=float, help="Peak learning rate [1e-5].")
@click.option(
    "--lr-schedule", type=click.Choice(["constant", "cosine", "linear"]), help="[constant]"
)
@click.option("--warmup", type=int, help="Linear warmup steps before the schedule [0].")
@click.option("--min-learning-rate", type=float, help="End of the cosine/linear decay [0].")
@click.option("--optimizer", type=click.Choice(["adam", "adamw"]), help="[adam]")
@click.option("--num-layers", type=int, help="Top layers to train, -1 for all [16].")
@click.option("--lora-rank", type=int, help="LoRA/DoRA rank [8].")
@click.option("--lora-scale", type=float, help="LoRA scale, mlx-lm's convention [20].")
@click.option("--lora-alpha", type=float, help="Sets scale = alpha / rank (PEFT convention).")
@click.option("--lora-dropout", type=float, help="[0]")
@click.option("--mask-prompt/--no-mask-prompt", default=None, help="Train the answer only [on].")
@click.option("--max-seq-length", type=int, help="Longest example in tokens [2048].")
@click.option("--truncate/--no-truncate", default=None, help="Cut longer examples [error].")
@click.option("--grad-checkpoint/--no-grad-checkpoint", default=None, help="Save memory [off].")
@click.option("--steps-per-report", type=int, help="Steps between progress lines [10].")
@click.option("--steps-per-eval", type=int, help="Steps between validation losses [50].")
@click.option("--val-batches", type=int, help="Validation batches, -1 for all [25].")
@click.option("--save-every", type=int, help="Steps between checkpoints [50].")
@click.option("--keep-checkpoints", type=int, help="Checkpoints kept, 0 for all [2].")
@click.option("--seed", type=int, help="LoRA init, data order and dropout seed [0].")
@click.option("--resume-adapter", type=P, help="Start from an earlier stage's adapter directory.")
@click.option("--fuse/--no-fuse", default=None, help="Fuse into OUT/model after training [on].")
@click.option("--dequantize/--no-dequantize", default=None, help="Fused model unquantized.")
@click.option(
    "--gguf/--no-gguf", "export_gguf", default=None, help="Also write OUT/model/model.gguf."
)
def train(config_path: Path | None, resume: bool, **flags) -> None:
    """Fine-tune a model on chat data with mlx-lm (LoRA by default), then fuse it.

    \b
    Writes OUT/adapter (last), OUT/adapter-best (lowest validation loss),
    OUT/checkpoints, OUT/metrics.jsonl, OUT/loss.png, OUT/settings.json,
    OUT/manifest.json and OUT/model (the fused model, unless --no-fuse).
    Example:  lem train --model mlx/path/to/base --data training --out runs/ethics
    Stage 2:  lem train ... --resume-adapter runs/ethics/adapter --out runs/composure
    """
    from lem.config import resolve, section
    from lem.train import TrainSettings
    from lem.train import train as run

    settings = resolve(
        TrainSettings,
        section(config_path, "train"),
        flags,
        where=f"{config_path} [train]" if config_path else "train",
    )
    r = run(settings, resume=resume)
    if r.resumed_from is not None:
        click.echo(f"resumed from step {r.resumed_from}")
    losses = f"train loss {_num(r.first_train_loss)} -> {_num(r.final_train_loss)}"
    click.echo(f"{r.steps} steps, {r.trained_tokens} trained tokens; {losses}")
    click.echo(f"adapter: {r.adapter}  (val loss {_num(r.final_val_loss)})")
    click.echo(f"best adapter: {r.best_adapter}  (step {r.best_step}, val {_num(r.best_val_loss)})")
    if r.model is not None:
        click.echo(f"model: {r.model}")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
