"""`workstream` entry point: parse, run one command, map failures to exit codes.

Exit codes (commands.EXIT_*; also in `workstream --help` and the README): 0 success, 1 API
error (`error: <code>: <message>`), 2 usage error or a destructive command refused without
--yes, 3 API unreachable (`error: cannot reach API at URL: ...`); with --wait: 0 completed,
4 failed, 5 cancelled, 6 still unfinished; 130 interrupted."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from workstream.cli.commands import (
    EXIT_API_ERROR,
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    UsageError,
    build_parser,
    context_from_args,
)
from workstream.client.errors import ApiError, TransportError


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    ctx = context_from_args(args, env)
    try:
        code: int = args.handler(args, ctx)
        ctx.out.flush()
        return code
    except ApiError as ex:
        ctx.err.write(f"error: {ex.code}: {ex.message}\n")
        return EXIT_API_ERROR
    except TransportError as ex:
        ctx.err.write(f"error: {ex}\n")
        return EXIT_UNREACHABLE
    except UsageError as ex:
        ctx.err.write(f"workstream {args.command}: error: {ex}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        ctx.err.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`workstream jobs | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_API_ERROR
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(main())
