"""What every subcommand shares: the help formatter, one-line usage errors, argument types that validate at parse
time, and checks of output paths made before any work starts."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..io_utils import output_problem, unwritable_reason

EXIT_CODES = """exit status:
  0    success
  1    a runtime failure: training diverged, the disk is full, an internal error
  2    a user error: bad option, bad input file or checkpoint, an output that would be lost or is not writable
  130  interrupted (Ctrl-C); what was already written is kept
Errors are one line on stderr ("ctslib: error: ..."); --debug or CTS_DEBUG=1 shows the traceback."""


class UsageError(ValueError):
    """A request that cannot be served as given (exit status 2)."""


class RuntimeFailure(RuntimeError):
    """A run that failed for a reason its message states (exit status 1, the message as it is)."""


class HELP_FMT(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows "(default: ...)" once: not on flags whose help already says what their default is; keeps the
    description's and epilog's line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if "default:" in text or "default)" in text.replace("(default)", "") else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ctslib: error: <command>: <problem> (see <command> --help)``, exit 2."""

    def error(self, message: str):
        command = self.prog.replace("python -m ctslib", "").strip()
        where = f"{command}: " if command else ""
        hint = f" (see python -m ctslib {command} --help)" if command else " (see python -m ctslib --help)"
        self.exit(2, f"ctslib: error: {where}{message}{hint}\n")


def add_debug_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the Python traceback of an error (also CTS_DEBUG=1)")


def note(message: str) -> None:
    """A notice for the user on stderr (not an error): ``ctslib: note: ...``."""
    print(f"ctslib: note: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------ argument types
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _int_at_least(low: int, high: float, meaning: str):
    """An argparse type for integers in [low, high); `meaning` completes '<value> is not ...'."""
    def parse(text: str) -> int:
        value = _integer(text)
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"{value} is not {meaning}")
        return value
    return parse


positive_int = _int_at_least(1, math.inf, "a positive integer (>= 1)")            # a count
nonnegative_int = _int_at_least(0, math.inf, "0 or more")                          # an interval where 0 means off
seed_int = _int_at_least(0, 2**32, "a seed in [0, 2^32)")
channel_count = _int_at_least(1, 65, "an image channel count in [1, 64]")
worker_count = _int_at_least(0, 65, "a worker count in [0, 64]")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not positive")
    return value


def nonnegative_float(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} is negative")
    return value


def number_list(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers ("" = none)."""
    try:
        return tuple(_finite(x.strip()) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers ({exc})") from None


def noise_levels(text: str) -> tuple[float, ...]:
    """Multistep levels: comma-separated noise levels inside (sigma_min, sigma_max)."""
    from ..precond import SIGMA_MAX, SIGMA_MIN
    levels = number_list(text)
    bad = [x for x in levels if not SIGMA_MIN < x < SIGMA_MAX]
    if bad:
        raise argparse.ArgumentTypeError(f"noise level {bad[0]:g} is outside ({SIGMA_MIN:g}, {SIGMA_MAX:g})")
    return levels


def device_name(text: str) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N', checked against the devices this machine has."""
    import torch
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return text
    if device.type != "cuda":
        raise argparse.ArgumentTypeError(f"device {text!r} is not supported (auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} requested, but CUDA is not available on this machine "
                                         f"(torch {torch.__version__}); use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"device {text!r} does not exist ({torch.cuda.device_count()} GPU(s))")
    return text


def choice_list(allowed: tuple[str, ...], what: str):
    """A type for comma-separated names out of `allowed` (at least one)."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(x.strip() for x in text.split(",") if x.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown[0]!r}; choose from {', '.join(allowed)}")
        if not names:
            raise argparse.ArgumentTypeError(f"give at least one {what} ({', '.join(allowed)})")
        return names
    return parse


# ------------------------------------------------------------------------------------- output paths
def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """An output folder: not an existing file, and it exists writable or can be made."""
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} {path} is an existing file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path} is not writable (read-only file system or no permission)")
        return path
    if (reason := unwritable_reason(path / "x")) is not None:
        raise UsageError(f"{flag} {path}: {reason}")
    return path


def check_output_file(path: str | Path, flag: str, force: bool = True) -> Path:
    """An output file: not a folder, its folder writable or makeable, and new unless `force`."""
    path = Path(path).expanduser()
    if (problem := output_problem(path, force)) is not None:
        raise UsageError(f"{flag} {path} {problem}")
    return path
