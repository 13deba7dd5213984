"""Process entry point of an engine: title, logging, signals, exit codes.

Runs in the child the forkserver forked; the heavy lifting is ``backend.src.engine.engine.Engine``.
"""

from __future__ import annotations

import logging
import os
import signal
from multiprocessing.connection import Connection
from types import FrameType

from backend.src.core.errors import EXIT_CRASH, EXIT_FATAL, EXIT_OK, EXIT_SIGNALLED, FatalError
from backend.src.core.exit_notes import write_note
from backend.src.engine import forkserver_init
from backend.src.engine.engine import Engine
from backend.src.engine.spec import EngineSpec


def run_engine(spec: EngineSpec, lifeline: Connection | None = None) -> None:
    """Process entry point (runs in the forked child; never returns)."""
    import setproctitle  # noqa: PLC0415 - only engine processes retitle themselves

    from backend.src.core import logging_setup  # noqa: PLC0415
    from backend.src.core.redis_url import connect  # noqa: PLC0415

    role = "engine" if spec.mode == "trade" else "liquidate"
    setproctitle.setproctitle(f"levibot {role}-{spec.symbol}")
    s = spec.settings
    logging_setup.configure(
        s.log_dir, f"{role}-{spec.symbol}", level=s.log_level, retention_days=s.log_retention_days,
        static={"symbol": spec.symbol},
    )
    log = logging.getLogger(__name__)
    engine: Engine | None = None
    signalled: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signalled.append(signum)
        if engine is not None:
            engine.stop_requested = True  # the loop stops before its next candle: no new order
        else:
            raise SystemExit(EXIT_SIGNALLED)

    # SIGTERM, from the manager or from anyone else (systemd's control-group kill, `timeout`, a container
    # init, an operator): a clean stop, and EXIT_SIGNALLED tells the manager it was not a crash.
    signal.signal(signal.SIGTERM, on_signal)
    if forkserver_init.PENDING:  # a SIGTERM came between the fork and the line above: nothing began yet
        logging.shutdown()
        os._exit(EXIT_SIGNALLED)
    # Ctrl+C in the manager's terminal reaches the whole process group: only the manager
    # decides when engines stop (it sends SIGTERM), like supervisord's children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = EXIT_CRASH
    try:
        if not s.redis_url:
            raise FatalError("no redis URL: engines are started by the manager, which always sets one")
        engine = Engine(spec, connect(s.redis_url), lifeline=lifeline)
        if spec.mode == "liquidate":
            from backend.src.engine.liquidate import liquidate  # noqa: PLC0415

            code = liquidate(engine)
        else:
            code = engine.run()
        if signalled and code == EXIT_OK:
            code = EXIT_SIGNALLED
    except FatalError as exc:
        log.error("fatal: %s", exc, extra={"error_kind": type(exc).__name__})
        write_note(s.data_dir, spec.symbol, f"{type(exc).__name__}: {exc}")
        code = EXIT_FATAL
    except SystemExit as exc:
        code = int(exc.code or 0)
    except BaseException as exc:
        log.exception("engine crashed")
        write_note(s.data_dir, spec.symbol, f"{type(exc).__name__}: {exc}")
        code = EXIT_CRASH
    finally:
        logging.shutdown()
    os._exit(code)
