"""The command line of ``openai_ws``: ``python -m openai_ws chat`` and ``... ask``.

What it is for: talking to the Responses API from a shell over one WebSocket
session, either a single question (``ask``) or an interactive conversation
(``chat``) whose history a :class:`~openai_ws.Conversation` keeps. ``--emulator``
runs the bundled local emulator in-process, so both work offline and without
a key.

Streams and exit codes, as a shell user expects them: stdout carries only the
answers (or the JSON of ``ask --json``); prompts, notes, warnings and errors go
to stderr, except the prompt of a fully interactive chat (stdin and stdout both
a terminal), which ``input()`` shows on the terminal. Exit 0 on success, 1 when
the API or the connection failed, 2 on a usage or configuration error
(argparse, no API key), 130 after Ctrl-C outside a streaming chat answer. A
chat whose last turn failed (an error, or a failed response) exits 1 too, so a
script piping lines in can tell that its last message got no answer.
Ctrl-C while a chat answer streams stops only that answer: the stream is
closed, so the session abandons the request and drops its remaining events,
and the next turn chains from the last finished response.

What it must never do: print or log the API key (error text is redacted as a
second line of defence), print a Python traceback for an expected error
(anything from ``openai_ws.errors``, a failed response, Ctrl-C, a closed
pipe), or leave the emulator or the session running after it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import secrets
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Union

from ._version import __version__
from .client import OpenAI
from .conversation import Conversation
from .errors import (
    APIError,
    AuthenticationError,
    OpenAIWSError,
    SessionClosedError,
    TransportError,
)
from .events import (
    FINAL_RESPONSE_EVENTS,
    ResponseOutputTextDelta,
    ResponseRefusalDelta,
    ServerEvent,
)
from .models import Response, ResponseCreateRequest

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

PROG = "python -m openai_ws"
DEFAULT_MODEL = "gpt-4o-mini"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

_FINISHED_STATUSES = ("completed", "incomplete")
"""Statuses of a response the next chat turn may chain from."""


_CHAT_HELP = """\
commands:
  /new          start a new conversation (forget the previous turns)
  /exit, /quit  leave (so does Ctrl-D)
  /help         show this help
Ctrl-C stops an answer while it streams; at the prompt it leaves."""


_CHAT_STRAY_HINT = (
    " (chat takes no question: type messages once it starts, or pipe them in; "
    f"to ask one question, use: {PROG} ask QUESTION)"
)
"""Said after the unrecognized words of ``chat hello``."""


class CLIError(Exception):
    """An expected failure: ``message`` goes to stderr as one line, then exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Console:
    """Where the CLI writes, and the secrets it must never write there."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.secrets: List[str] = []

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def write(self, text: str) -> None:
        """Answer text to stdout, flushed at once (it streams)."""
        self.out.write(self.redact(text))
        self.out.flush()

    def note(self, text: str) -> None:
        """One line to stderr (errors, notes)."""
        line = " ".join(self.redact(text).split())
        self.err.write(line + "\n")
        self.err.flush()


# -- argument parsing ---------------------------------------------------------


def _metadata_pair(text: str) -> str:
    """argparse type of ``--metadata``: checks the ``KEY=VALUE`` shape."""
    key, sep, _ = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _positive(text: str, kind: Callable[[str], Any], noun: str) -> Any:
    """argparse type helper: ``text`` as a positive ``kind`` (``int`` or ``float``)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not value > 0:
        what = noun.rsplit(maxsplit=1)[-1]
        raise argparse.ArgumentTypeError(f"must be a positive {what}, got {text}")
    return value


def _positive_int(text: str) -> int:
    number: int = _positive(text, int, "an integer")
    return number


def _positive_float(text: str) -> float:
    number: float = _positive(text, float, "a number")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m openai_ws`` (subcommands ``chat`` and ``ask``)."""
    default_model = os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-m",
        "--model",
        default=default_model,
        help="model to use (default: $OPENAI_MODEL or %(default)s)",
    )
    common.add_argument(
        "--instructions", metavar="TEXT", help="system/developer instructions for every turn"
    )
    common.add_argument(
        "--max-output-tokens", type=_positive_int, metavar="N", help="cap each answer at N tokens"
    )
    common.add_argument(
        "--no-store",
        dest="store",
        action="store_false",
        default=None,
        help="ask the server not to store the responses (store=false); a chat still keeps "
        "its whole history in the client",
    )
    common.add_argument(
        "--timeout",
        type=_positive_float,
        default=600.0,
        metavar="SECONDS",
        help="give up on a request after this long (default: %(default)g)",
    )
    common.add_argument(
        "--emulator",
        action="store_true",
        help="run the bundled local emulator in-process and use it (no API key needed; "
        "it echoes your input back)",
    )
    # Undocumented on purpose: request metadata, mainly to script the emulator
    # (e.g. --metadata emulator_token_interval=0.05). Repeatable.
    common.add_argument(
        "--metadata", action="append", type=_metadata_pair, default=[], help=argparse.SUPPRESS
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what openai_ws does (INFO) to stderr",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to the OpenAI Responses API over a persistent WebSocket.",
        epilog=(
            "The API key comes from OPENAI_API_KEY (OPENAI_BASE_URL, "
            "OPENAI_WEBSOCKET_BASE_URL, OPENAI_ORG_ID and OPENAI_PROJECT_ID are read too); "
            "--emulator needs none. Exit status: 0 ok, 1 API or connection error "
            "(chat: the last turn failed), "
            "2 usage or configuration error, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"openai_ws {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what openai_ws does (INFO) to stderr"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    chat = commands.add_parser(
        "chat",
        parents=[common],
        help="interactive conversation (one line per message)",
        description=(
            "Interactive chat on one WebSocket session. Each line you type is a\n"
            "message; the answer streams as it is generated, and the conversation\n"
            "is kept by the client: each turn continues the last answer with\n"
            "previous_response_id, or resends the history when the socket changed.\n"
            "Lines can be piped in too."
        ),
        epilog=_CHAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.set_defaults(handler=_run_chat, subparser=chat, stray_hint=_CHAT_STRAY_HINT)

    ask = commands.add_parser(
        "ask",
        parents=[common],
        help="ask one question and print the answer",
        description=(
            "Ask one question and print the answer (streamed as it is generated). "
            "Without QUESTION, the question is read from stdin."
        ),
    )
    ask.add_argument("question", nargs="*", metavar="QUESTION", help="the question (words joined)")
    ask.add_argument(
        "--no-stream", action="store_true", help="print the answer only once it is complete"
    )
    ask.add_argument(
        "--json",
        action="store_true",
        help="print the whole response object as JSON (implies --no-stream)",
    )
    ask.set_defaults(handler=_run_ask, subparser=ask, stray_hint="")
    return parser


# -- shared plumbing ------------------------------------------------------------


@contextlib.contextmanager
def _logging_to(err: TextIO, verbose: bool) -> Iterator[None]:
    """Route ``openai_ws`` log records to stderr: INFO with -v, else warnings only."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    package = logging.getLogger("openai_ws")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


@contextlib.contextmanager
def _open_client(args: argparse.Namespace, console: _Console) -> Iterator[OpenAI]:
    """The client to use: the in-process emulator's, or one built from the environment."""
    if args.emulator:
        try:
            from .emulator import Emulator
        except ImportError as exc:
            raise CLIError(
                f"--emulator needs the emulator extra (pip install 'openai-ws[emulator]'): {exc}",
                EXIT_USAGE,
            ) from None
        key = "sk-emulator-" + secrets.token_urlsafe(16)
        console.secrets.append(key)
        emulator = Emulator(api_key=key)
        try:
            emulator.start()
        except RuntimeError as exc:
            raise CLIError(f"error: {exc}") from None
        try:
            log.info("emulator listening on %s", emulator.base_url)
            yield OpenAI(api_key=key, base_url=emulator.base_url, timeout=args.timeout)
        finally:
            emulator.stop()
        return
    key = os.environ.get("OPENAI_API_KEY", "")
    if not key.strip():
        raise CLIError(
            "error: OPENAI_API_KEY is not set; set it to your API key, "
            "or pass --emulator to use the local emulator",
            EXIT_USAGE,
        )
    console.secrets.append(key)
    try:
        client = OpenAI.from_env(timeout=args.timeout)
    except (OpenAIWSError, ValueError) as exc:
        raise CLIError(f"error: bad configuration: {exc}", EXIT_USAGE) from None
    try:
        yield client
    finally:
        client.close()


def _defaults(args: argparse.Namespace) -> Dict[str, Any]:
    """The request fields every turn carries, from the command line."""
    metadata: Dict[str, str] = {}
    for pair in args.metadata:
        key, _, value = pair.partition("=")
        metadata[key] = value
    fields: Dict[str, Any] = {
        "model": args.model,
        "instructions": args.instructions,
        "max_output_tokens": args.max_output_tokens,
        "metadata": metadata or None,
        "store": args.store,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _request(args: argparse.Namespace, text: str) -> ResponseCreateRequest:
    return ResponseCreateRequest(input=text, **_defaults(args))


def _close_events(events: Iterator[ServerEvent]) -> None:
    """Close a stream of events; an unfinished request is abandoned by the session."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


def _stream_answer(events: Iterator[ServerEvent], console: _Console) -> Response:
    """Print the answer's text as it streams; return the final response.

    The event stream is closed on every way out (Ctrl-C included), so an
    unfinished request is abandoned and its later events are dropped.
    """
    last = ""
    final: Optional[Response] = None
    try:
        for event in events:
            if isinstance(event, (ResponseOutputTextDelta, ResponseRefusalDelta)):
                if event.delta:
                    console.write(event.delta)
                    last = event.delta
            elif isinstance(event, FINAL_RESPONSE_EVENTS):
                final = event.response
    finally:
        _close_events(events)
        if last and not last.endswith("\n"):
            console.write("\n")
    if final is None:  # pragma: no cover - the session raises before this
        raise CLIError("error: the answer ended without a final response")
    if not last:
        # Nothing streamed (no deltas were sent): show what the response holds.
        _print_answer(final, console)
    return final


def _print_answer(response: Response, console: _Console) -> None:
    text = response.output_text or response.refusal or ""
    if text:
        console.write(text if text.endswith("\n") else text + "\n")


def _describe_failure(response: Response) -> str:
    if response.error is not None:
        code = f"{response.error.code}: " if response.error.code else ""
        return f"the response failed: {code}{response.error.message or 'no message'}"
    return f"the response ended with status {response.status!r}"


def _report_end(response: Response, console: _Console) -> bool:
    """Notes on an answer that did not simply complete; False if it failed."""
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        console.note(f"note: the answer is incomplete ({reason or 'no reason given'})")
    elif response.status not in _FINISHED_STATUSES:
        console.note(f"error: {_describe_failure(response)}")
        return False
    return True


# -- ask ------------------------------------------------------------------------


def _question(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.question:
        text = " ".join(args.question)
    elif _isatty(stdin):
        raise CLIError(
            f"{PROG} ask: error: a QUESTION is required (or pipe it on stdin)", EXIT_USAGE
        )
    else:
        text = stdin.read()
    text = text.strip()
    if not text:
        raise CLIError(f"{PROG} ask: error: the question is empty", EXIT_USAGE)
    return text


def _run_ask(args: argparse.Namespace, console: _Console, stdin: TextIO) -> int:
    question = _question(args, stdin)
    with _open_client(args, console) as client, client.ws_session() as session:
        request = _request(args, question)
        if args.json:
            response = session.send(request)
            console.write(json.dumps(response.to_dict(), indent=2, ensure_ascii=False) + "\n")
            if response.status not in _FINISHED_STATUSES:
                console.note(f"error: {_describe_failure(response)}")
                return EXIT_FAILURE
            return EXIT_OK
        if args.no_stream:
            response = session.send(request)
            _print_answer(response, console)
        else:
            response = _stream_answer(session.stream(request), console)
        return EXIT_OK if _report_end(response, console) else EXIT_FAILURE


# -- chat -----------------------------------------------------------------------


class _LineReader:
    """Reads chat lines; shows the prompt only when a person is typing."""

    PROMPT = "> "

    def __init__(self, stdin: TextIO, console: _Console) -> None:
        self.stdin = stdin
        self.console = console
        self.interactive = _isatty(stdin)
        # input() gives line editing and history, but writes its prompt to
        # stdout: use it only when stdout is the terminal too.
        self.use_input = (
            self.interactive
            and stdin is sys.stdin
            and console.out is sys.stdout
            and _isatty(console.out)
        )
        if self.use_input:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (enables editing in input())

    def read(self) -> Optional[str]:
        """The next line without its newline, or None at end of input."""
        if self.use_input:
            try:
                return input(self.PROMPT)
            except EOFError:
                return None
        if self.interactive:
            self.console.err.write(self.PROMPT)
            self.console.err.flush()
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def _run_chat(args: argparse.Namespace, console: _Console, stdin: TextIO) -> int:
    reader = _LineReader(stdin, console)
    with _open_client(args, console) as client, client.ws_session() as session:
        if reader.interactive:
            console.note(f"chatting with {args.model}; /help for commands, Ctrl-D to leave")
        conversation = session.conversation(**_defaults(args))
        # Whether the last turn got no answer: it decides the exit status.
        failed = False
        while True:
            try:
                line = reader.read()
            except KeyboardInterrupt:
                console.err.write("\n")
                return EXIT_INTERRUPTED
            if line is None:
                if reader.interactive:
                    console.err.write("\n")
                return EXIT_FAILURE if failed else EXIT_OK
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                command = text.split()[0].lower()
                if command in ("/exit", "/quit"):
                    return EXIT_FAILURE if failed else EXIT_OK
                if command == "/new":
                    conversation = session.conversation(**_defaults(args))
                    console.note("(new conversation)")
                elif command == "/help":
                    console.err.write(_CHAT_HELP + "\n")
                else:
                    console.note(f"unknown command {command}; /help lists the commands")
                continue
            failed = _chat_turn(conversation, console, text)


def _chat_turn(conversation: Conversation, console: _Console, text: str) -> bool:
    """Run one turn of the conversation; return whether it failed.

    The conversation keeps the history in the client, so a lost socket or an
    HTTP fallback loses no turn, even with ``store=False``. A turn stopped with
    Ctrl-C is not a failure (the user chose to stop it): the history keeps the
    last complete answer.
    """
    try:
        response = _stream_answer(conversation.stream(text), console)
    except KeyboardInterrupt:
        console.note("(interrupted; the next message continues from the last complete answer)")
        return False
    except SessionClosedError:
        raise
    except OpenAIWSError as exc:  # the session stays usable: report, go on
        console.note(_error_line(exc))
        return True
    log.info(
        "response %s %s (previous_response_id=%s)",
        response.id,
        response.status,
        response.previous_response_id,
    )
    return not _report_end(response, console)


# -- entry point ----------------------------------------------------------------


def _prepare_stream(stream: TextIO) -> None:
    """Never fail on a character the terminal's encoding cannot show."""
    if isinstance(stream, io.TextIOWrapper):
        with contextlib.suppress(Exception):
            stream.reconfigure(errors="backslashreplace")


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    stdin: Optional[TextIO] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = _parse(parser, argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return _exit_code(exc.code)
    _prepare_stream(out)
    _prepare_stream(err)
    console = _Console(out, err)
    try:
        with _logging_to(err, bool(getattr(args, "verbose", False))):
            code: int = args.handler(args, console, stdin)
        return code
    except CLIError as exc:
        console.note(exc.message)
        return exc.code
    except OpenAIWSError as exc:
        console.note(_error_line(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            err.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): stop quietly, and keep the
        # interpreter from failing again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        return EXIT_FAILURE


def _parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse ``argv``; a stray argument is reported by its subcommand's parser.

    ``parse_args`` would blame the top-level parser, whose usage says nothing
    about the options of ``chat`` or ``ask``; the subcommand's parser prints its
    own usage (and, for ``chat``, a hint) and exits 2 like any usage error.
    """
    args, extras = parser.parse_known_args(None if argv is None else list(argv))
    if extras:
        subparser = getattr(args, "subparser", None)
        message = f"unrecognized arguments: {' '.join(extras)}"
        if isinstance(subparser, argparse.ArgumentParser):
            if any(not extra.startswith("-") for extra in extras):
                message += str(getattr(args, "stray_hint", ""))
            subparser.error(message)
        parser.error(message)
    return args


def _error_line(exc: OpenAIWSError) -> str:
    """The one stderr line for an expected error.

    A refused key is named as such whichever transport saw it (a 401 on the
    WebSocket upgrade is an ``AuthenticationError`` too, and is checked before
    the generic connection failure it also is).
    """
    if isinstance(exc, AuthenticationError):
        return f"error: authentication failed: {exc}"
    if isinstance(exc, APIError):
        return f"error: {exc}"
    if isinstance(exc, TransportError):
        return f"error: connection failed: {exc}"
    return f"error: {exc}"


def _exit_code(code: Union[str, int, None]) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    return EXIT_FAILURE
