"""The command-line parser of every subcommand: flags are spelt out, and a mistyped one gets its closest match;
argument checks the benchmark scripts share (:func:`positive_int`, :func:`writable_dir`).

argparse accepts any unambiguous prefix of a flag (``--gpu 0`` for ``--gpus``), so a command that works
today stops working the day a flag with the same prefix is added (``--gpu-memory``); without prefixes, the
mistyped flag is an error that names the flag it was probably meant to be.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from .run_dirs import unusable_dir


#: The console script ``pyproject.toml`` installs: usage lines name it when the command was started by it.
SCRIPT = "rapids-engage"


def command_name(subcommand: str | None = None) -> str:
    """How the user started the tool (``rapids-engage`` or ``python -m rapids_engage.pipeline``), with ``subcommand``."""
    base = SCRIPT if Path(sys.argv[0]).name == SCRIPT else "python -m rapids_engage.pipeline"
    return f"{base} {subcommand}" if subcommand else base


class Parser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` without prefix matching, suggesting a known flag for an unknown one."""

    def __init__(self, **kwargs: Any) -> None:
        self.flags: list[str] = []  # before argparse adds --help
        self.not_here: dict[str, str] = {}  # a flag of another subcommand -> why this one takes none
        super().__init__(allow_abbrev=False, **kwargs)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*names, **kwargs)
        self.flags += action.option_strings  # with the --no-x of a BooleanOptionalAction
        return action

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.argv = list(sys.argv[1:] if args is None else args)  # for error(): what the words followed
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> None:  # type: ignore[override] - argparse's exits (status 2)
        if message.startswith("unrecognized arguments: "):
            unknown = message.removeprefix("unrecognized arguments: ").split()
            reasons = dict.fromkeys(self.not_here[t.split("=", 1)[0]] for t in unknown if t.split("=", 1)[0] in self.not_here)
            others = [t for t in unknown if t.split("=", 1)[0] not in self.not_here]
            message += "".join(f" ({why})" for why in reasons)
            message += suggestion(others, self.flags) + split_setting(getattr(self, "argv", []), others)
        super().error(message)


def split_setting(argv: list[str], unknown: list[str]) -> str:
    """`` (--set takes KEY=VALUE as one word: --set train.max_depth=3)`` where ``--set KEY VALUE`` left VALUE unknown."""
    for flag, key, value in zip(argv, argv[1:], argv[2:]):
        if flag == "--set" and "=" not in key and value in unknown:
            return f" (--set takes KEY=VALUE as one word: --set {key}={value})"
    return ""


def suggestion(unknown: list[str], flags: list[str]) -> str:
    """`` (did you mean --gpus?)`` for the unknown flags close to a known one, else ``""``."""
    pairs = []
    for token in unknown:
        name = token.split("=", 1)[0]
        # compared without the dashes they all share: --bogus is not like --gpus
        close = difflib.get_close_matches(name.lstrip("-"), [f.lstrip("-") for f in flags], n=1, cutoff=0.7)
        pairs += [(name, f"--{close[0]}")] if close and name.startswith("--") else []
    if len(pairs) == 1:
        return f" (did you mean {pairs[0][1]}?)"
    return f" (did you mean {', '.join(f'{flag} for {name}' for name, flag in pairs)}?)" if pairs else ""


def _whole_number(text: str, lowest: int) -> int:
    """``text`` as a whole number >= ``lowest``, else an argparse usage error (exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {lowest}, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {lowest}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1 (rows, batch sizes, repeats)."""
    return _whole_number(text, 1)


def seed_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 0 (a seed: numpy refuses a negative one with a traceback)."""
    return _whole_number(text, 0)


def writable_dir(parser: argparse.ArgumentParser, flag: str, path: str | Path) -> Path:
    """``path``, made with its parents and writable, before any work is done; else ``parser.error`` naming
    ``flag`` (one line, exit status 2) instead of a traceback when the results are written at the end."""
    path = Path(path).expanduser()
    problem = unusable_dir(path)
    if problem:
        parser.error(f"{flag}: cannot make the directory {path} ({problem}); give a writable one")
    path.mkdir(parents=True, exist_ok=True)
    return path
