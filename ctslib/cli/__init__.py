"""Command line: python -m ctslib {info,train,evaluate,predict,reproduce} --help.

Every subcommand goes through `main`, the one error path: a user error prints one line ``ctslib: error: ...``
and exits 2, a runtime failure one line and exit 1, Ctrl-C one line and exit 130; ``--debug`` or
``CTS_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import errno
import os
import sys

from .common import EXIT_CODES, HELP_FMT, Parser, RuntimeFailure, UsageError, add_debug_flag
from .train import configs_from_args

EXIT_OK, EXIT_RUNTIME, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> Parser:
    from . import evaluate, info, predict, reproduce, train
    parser = Parser(prog="python -m ctslib", description=__doc__.split("\n\n")[0], epilog=EXIT_CODES,
                    formatter_class=HELP_FMT)
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,train,evaluate,predict,reproduce}")
    for module in (info, train, evaluate, predict, reproduce):
        p = module.add_parser(sub)
        p.epilog = EXIT_CODES
        add_debug_flag(p)
    return parser


def _one_line(text: str, limit: int = 2000) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) of an exception that ended a command."""
    from ..train import TrainingDiverged
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, _one_line(str(exc) or "interrupted; what was already written is kept")
    if isinstance(exc, TrainingDiverged):
        return EXIT_RUNTIME, _one_line(f"training diverged: {exc}")
    if isinstance(exc, RuntimeFailure):
        return EXIT_RUNTIME, _one_line(str(exc))
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError,
                                                          NotADirectoryError, PermissionError)):
        where = f"{exc.filename}: " if exc.filename else ""
        what = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC and "no space left" not in what.lower():
            what = f"no space left on device ({what})"
        elif exc.errno == errno.EROFS and "read-only" not in what.lower():
            what = f"read-only file system ({what})"
        return EXIT_RUNTIME, _one_line(f"{where}{what}")
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename and str(exc.filename) not in str(exc.strerror or "") else ""
        return EXIT_USER, _one_line(f"{where}{exc.strerror or exc}" if exc.strerror else str(exc))
    if isinstance(exc, (ValueError, UsageError)):
        return EXIT_USER, _one_line(str(exc))
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and
                                        any(t in str(exc) for t in ("can't allocate memory", "out of memory"))):
        return EXIT_RUNTIME, _one_line(f"out of memory ({str(exc).splitlines()[0][:200] if str(exc) else 'MemoryError'})")
    return EXIT_RUNTIME, _one_line(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the "
                                   "traceback and report it")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("CTS_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as exc:
        if debug:
            raise
        code, message = classify(exc)
        print(f"ctslib: error: {message}", file=sys.stderr)
        return code


__all__ = ["HELP_FMT", "UsageError", "build_parser", "classify", "configs_from_args", "main"]
