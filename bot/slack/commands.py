"""The `/deploy` command language: text in, a command or a helpful error out (no I/O).

Like Atlantis' comment parser, this only turns words into data; whether the
person may do it, and whether the repository exists, is decided later.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_ENVIRONMENT = "production"
MAX_REASON = 300

# GitHub's own limits: logins are 1-39 of [A-Za-z0-9-], repository names 1-100 of [A-Za-z0-9._-].
OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
ENVIRONMENT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
# What `git check-ref-format` refuses, minus the rare corners: no spaces, controls, ~^:?*[\ or "..".
REF_RE = re.compile(r"(?!-)(?!.*\.\.)(?!.*@\{)[^\s~^:?*\[\\\x00-\x1f\x7f]{1,200}(?<![./])")


class CommandKind(StrEnum):
    """What a `/deploy` command asks for."""

    HELP = "help"
    DEPLOY = "deploy"
    STATUS = "status"
    HISTORY = "history"
    ROLLBACK = "rollback"
    LOCK = "lock"
    UNLOCK = "unlock"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    LINK = "link"
    UNLINK = "unlink"


# Commands that change what runs need write access; the others only read.
WRITE_COMMANDS = frozenset({CommandKind.DEPLOY, CommandKind.ROLLBACK, CommandKind.LOCK, CommandKind.UNLOCK})

USAGE: dict[CommandKind, str] = {
    CommandKind.DEPLOY: "/deploy owner/repo[@ref] [to <environment>]",
    CommandKind.STATUS: "/deploy status owner/repo",
    CommandKind.HISTORY: "/deploy history owner/repo [in <environment>]",
    CommandKind.ROLLBACK: "/deploy rollback owner/repo [to <sha>] [in <environment>]",
    CommandKind.LOCK: "/deploy lock owner/repo [to <environment>] [reason…]",
    CommandKind.UNLOCK: "/deploy unlock owner/repo [to <environment>]",
    CommandKind.SUBSCRIBE: "/deploy subscribe owner/repo",
    CommandKind.UNSUBSCRIBE: "/deploy unsubscribe owner/repo",
    CommandKind.LINK: "/deploy link",
    CommandKind.UNLINK: "/deploy unlink",
    CommandKind.HELP: "/deploy help",
}

HELP_LINES: dict[CommandKind, str] = {
    CommandKind.DEPLOY: "deploy a branch, tag or SHA (default branch, production when omitted)",
    CommandKind.STATUS: "what runs where, and the locks",
    CommandKind.HISTORY: "the last 10 deploys",
    CommandKind.ROLLBACK: "go back to the previous successful deploy, or to a given SHA",
    CommandKind.LOCK: "stop deploys to an environment (pushes are held until unlock)",
    CommandKind.UNLOCK: "release a lock; the newest held deploy starts",
    CommandKind.SUBSCRIBE: "post this repository's deploys in this channel",
    CommandKind.UNSUBSCRIBE: "stop posting them here",
    CommandKind.LINK: "link your GitHub account (needed for everything else)",
    CommandKind.UNLINK: "forget the link",
    CommandKind.HELP: "this help",
}


@dataclass(frozen=True)
class RepoName:
    """A repository as typed: `owner/name`, or a bare `name` to look up."""

    owner: str | None
    name: str

    @property
    def full_name(self) -> str | None:
        """`owner/name`, or None for a bare name."""
        return f"{self.owner}/{self.name}" if self.owner else None

    def __str__(self) -> str:
        return self.full_name or self.name


@dataclass(frozen=True)
class Command:
    """A parsed `/deploy` command."""

    kind: CommandKind
    repo: RepoName | None = None
    ref: str | None = None
    environment: str | None = None  # None: not given (production, or every environment for history)
    sha: str | None = None
    reason: str = ""

    @property
    def target_environment(self) -> str:
        """The environment the command acts on: the one given, else production."""
        return self.environment or DEFAULT_ENVIRONMENT

    @property
    def needs_write(self) -> bool:
        """True when the command changes what runs (deploy, rollback, lock, unlock)."""
        return self.kind in WRITE_COMMANDS


@dataclass(frozen=True)
class ParseResult:
    """Either a command or an error message that says how to use it."""

    command: Command | None = None
    error: str | None = None


def help_text() -> str:
    """The full usage, one line per command."""
    lines = ["*Easy Deploy* — what `/deploy` can do:"]
    for kind, usage in USAGE.items():
        lines.append(f"• `{usage}` — {HELP_LINES[kind]}")
    lines.append("A bare repository name works when it is unambiguous among your repositories.")
    return "\n".join(lines)


def _usage_error(kind: CommandKind, problem: str) -> ParseResult:
    return ParseResult(error=f"{problem}\nUsage: `{USAGE[kind]}` (see `/deploy help`)")


def unescape(text: str) -> str:
    """Undo Slack's text escaping: `<url|label>` becomes the label, `&amp;` becomes `&`."""
    text = re.sub(r"<(?:[^|>]*)\|([^>]*)>", r"\1", text)
    text = re.sub(r"<((?:https?|mailto):[^>]*)>", r"\1", text)
    return html.unescape(text)


def parse_repo(token: str) -> RepoName | None:
    """`owner/repo` or a bare `repo`; None when it is not a valid GitHub name."""
    owner, slash, name = token.partition("/")
    if not slash:
        owner, name = "", token
    if slash and not OWNER_RE.fullmatch(owner):
        return None
    if not REPO_RE.fullmatch(name) or name in (".", ".."):
        return None
    return RepoName(owner or None, name)


def _environment(kind: CommandKind, value: str) -> str | ParseResult:
    env = value.lower()
    if not ENVIRONMENT_RE.fullmatch(env):
        return _usage_error(kind, f"`{value}` is not an environment name (lowercase letters, digits and dashes).")
    return env


def parse_command(text: str) -> ParseResult:
    """Turn the text after `/deploy` into a command, or an error with the usage."""
    words = unescape(text or "").split()
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return ParseResult(Command(CommandKind.HELP))
    head = words[0].lower()
    if head in ("link", "unlink"):
        kind = CommandKind(head)
        if len(words) > 1:
            return _usage_error(kind, f"`/deploy {head}` takes no arguments.")
        return ParseResult(Command(kind))
    try:
        kind = CommandKind(head)
        rest = words[1:]
    except ValueError:
        kind, rest = CommandKind.DEPLOY, words
    if kind in (CommandKind.HELP, CommandKind.LINK, CommandKind.UNLINK):  # pragma: no cover - handled above
        return ParseResult(Command(kind))
    if not rest:
        return _usage_error(kind, f"Which repository? `{USAGE[kind]}`" if kind is not CommandKind.DEPLOY else "Which repository?")
    target, rest = rest[0], rest[1:]
    ref = None
    if kind is CommandKind.DEPLOY and "@" in target:
        target, _, ref = target.partition("@")
        if not ref or not REF_RE.fullmatch(ref):
            return _usage_error(kind, f"`{ref}` is not a branch, tag or SHA.")
    repo = parse_repo(target)
    if repo is None:
        if kind is CommandKind.DEPLOY and "/" not in target:
            return ParseResult(error=f"I don't know the command `{words[0]}`.\n" + help_text())
        return _usage_error(kind, f"`{target}` is not a repository name (`owner/repo`).")
    result = _parse_options(kind, repo, ref, rest)
    if result.error and kind is CommandKind.DEPLOY and repo.owner is None and ref is None:
        # "/deploy statsu acme/web": a typo of a command reads better than a strange deploy.
        return ParseResult(error=f"I don't know the command `{words[0]}`.\n" + help_text())
    return result


def _parse_options(kind: CommandKind, repo: RepoName, ref: str | None, rest: list[str]) -> ParseResult:
    environment, sha, reason_words = None, None, []
    seen: set[str] = set()
    i = 0
    while i < len(rest):
        word = rest[i].lower()
        takes_env = kind in (CommandKind.DEPLOY, CommandKind.LOCK, CommandKind.UNLOCK) and word in ("to", "in")
        takes_env = takes_env or (kind in (CommandKind.ROLLBACK, CommandKind.HISTORY) and word == "in")
        takes_sha = kind is CommandKind.ROLLBACK and word == "to"
        if (takes_env or takes_sha) and not reason_words:
            if i + 1 >= len(rest):
                return _usage_error(kind, f"`{rest[i]}` needs a value.")
            slot = "sha" if takes_sha else "environment"
            if slot in seen:
                return _usage_error(kind, f"The {slot} is given twice.")
            seen.add(slot)
            value = rest[i + 1]
            if takes_sha:
                if not SHA_RE.fullmatch(value):
                    return _usage_error(kind, f"`{value}` is not a commit SHA (7 to 40 hex digits).")
                sha = value.lower()
            else:
                env = _environment(kind, value)
                if isinstance(env, ParseResult):
                    return env
                environment = env
            i += 2
            continue
        if kind is CommandKind.LOCK:
            reason_words.append(rest[i])
            i += 1
            continue
        return _usage_error(kind, f"I don't understand `{' '.join(rest[i:])}`.")
    reason = " ".join(reason_words)
    if len(reason) > MAX_REASON:
        return _usage_error(kind, f"The reason is too long ({len(reason)} characters, at most {MAX_REASON}).")
    return ParseResult(Command(kind, repo, ref, environment, sha, reason))
