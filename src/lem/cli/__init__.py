"""The `lem` command line: a thin layer over the library, one module per command.

Commands are imported only when run, so `lem --help` stays fast and a command's heavy
dependencies (mlx, datasets, SDKs) load only where they are used.
"""

from __future__ import annotations

import errno
import importlib

import click

from lem import __version__
from lem.errors import LemError

# name -> "module:attribute"; the help text is each command's docstring.
COMMANDS = {
    "doctor": "lem.cli.doctor:doctor",
    "kernel": "lem.cli.kernel:kernel",
    "model": "lem.cli.model:model",
    "chat": "lem.cli.chat:chat",
    "generate": "lem.cli.generate:generate",
    "verify": "lem.cli.verify:verify",
    "bench": "lem.cli.bench:bench",
    "train": "lem.cli.train:train",
    "fuse": "lem.cli.fuse:fuse",
    "abliterate": "lem.cli.abliterate:abliterate",
    "score": "lem.cli.score:score",
    "report": "lem.cli.report:report",
    "run": "lem.cli.run:run",
    "init": "lem.cli.run:init",
}

ORDER = [
    "init",
    "run",
    "kernel",
    "generate",
    "train",
    "fuse",
    "abliterate",
    "bench",
    "score",
    "report",
    "verify",
    "model",
    "chat",
    "doctor",
]


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class UserError(click.ClickException):
    """A LemError on its way out: one line on stderr, exit code 2."""

    exit_code = 2


class LemGroup(click.Group):
    """Loads commands lazily; a LemError or a usage error becomes one line, exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(COMMANDS)
        return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LemError as e:
            raise UserError(str(e)) from None
        except OSError as e:
            # A full or read-only disk met by a write lem does not make itself (a library
            # saving a plot or weights): still one line naming the path. Other OSErrors
            # may be bugs and keep their traceback.
            if e.errno not in DISK_FULL:
                raise
            from lem.store import write_error

            raise UserError(str(write_error(e.filename or "an output file", e))) from None
        except click.UsageError as e:
            if e.ctx is None:
                raise
            # click would print the usage and a hint on lines of their own: fold them in.
            message = e.format_message().rstrip(".")
            raise click.UsageError(f"{message} (`{e.ctx.command_path} -h` for help)") from None


@click.group(cls=LemGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lem")
def main() -> None:
    """lem: turn an ethical kernel into a fine-tuned small model, and measure what changed.

    \b
    Pipeline:  kernel + seeds --generate--> training data --train--> fused model
               --bench--> results --score--> scores --report--> tables, plots

    Every stage writes a manifest and resumes where it stopped. Run `lem COMMAND --help`
    for a command's options.
    """
