"""`lem train`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.cli.options import config_option, processes_option
from lem.config import cli_options
from lem.train import TrainSettings


@click.command()
@config_option
@click.option("--resume", is_flag=True, help="Continue a killed run from its last checkpoint.")
@processes_option
@cli_options(TrainSettings)
def train(config_path: Path | None, resume: bool, processes: int | None, **flags) -> None:
    """Fine-tune a model on chat data with mlx-lm (LoRA by default), then fuse it.

    \b
    Writes OUT/adapter (last), OUT/adapter-best (lowest validation loss),
    OUT/checkpoints, OUT/metrics.jsonl, OUT/loss.png, OUT/settings.json,
    OUT/manifest.json and OUT/model (the fused model, unless --no-fuse).
    Example:  lem train --model mlx/path/to/base --data training --out runs/ethics
    Stage 2:  lem train ... --resume-adapter runs/ethics/adapter --out runs/composure
    Several processes (data parallel; --batch-size is the global batch, shared out):
              lem train -n 2 ...   or   mlx.launch --hostfile hosts.json lem train ...
    """
    from lem.distributed import is_primary, launch_if_asked
    from lem.experiment import settings_for
    from lem.train import train as run

    settings = settings_for("train", config_path, flags)  # bad settings: one error, not N
    launch_if_asked(processes)
    r = run(settings, resume=resume)
    if not is_primary():
        return  # rank 0 reports for the group
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
