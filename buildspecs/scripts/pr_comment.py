"""The pull-request comment of a preview: the verdict and the end of the log that explains it.

    python3 pr_comment.py --stack dev --commit SHA --status 1 --setup-status 0 \
        --setup-log /tmp/setup.log --log /tmp/preview.txt --cost /tmp/cost.md > /tmp/comment.md

When the setup failed (the role could not be assumed, a dependency did not install, the stack has no
image yet) the comment shows the end of the setup log, since the preview never ran. The comment stays
within CodeCommit's limit for a comment, and it is cut between characters, never inside one.
"""

from __future__ import annotations

import argparse
import sys

# CodeCommit refuses comments over 10,240 characters; counting bytes keeps well inside it.
COMMENT_LIMIT_BYTES = 10_000
CUT_NOTE = "… (earlier lines cut)\n"


def tail(text: str, budget_bytes: int) -> str:
    """The end of `text` that fits in `budget_bytes` of UTF-8, starting on a whole character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= budget_bytes:
        return text
    budget = max(budget_bytes - len(CUT_NOTE.encode("utf-8")), 0)
    end = encoded[len(encoded) - budget :]
    # A UTF-8 continuation byte is 0b10xxxxxx: skip those to start on the first whole character.
    start = 0
    while start < len(end) and end[start] & 0xC0 == 0x80:
        start += 1
    return CUT_NOTE + end[start:].decode("utf-8")


def comment(
    *,
    stack: str,
    commit: str,
    status: int,
    setup_status: int,
    setup_log: str,
    log: str,
    cost: str = "",
    limit: int = COMMENT_LIMIT_BYTES,
) -> str:
    """The comment; `cost` (the pull request's change to the stack's monthly cost, cost/diff.py) goes
    before the log, whose tail is cut to fit."""
    verdict = "passed" if status == 0 else "FAILED"
    if setup_status != 0:
        head = (
            f"Preview of stack {stack} for commit {commit}: {verdict}\n\n"
            f"The preview did not run: its setup failed (exit {setup_status}). The end of the setup log:\n\n"
        )
        body = setup_log
    else:
        head = f"Preview of stack {stack} for commit {commit}: {verdict}\n\n"
        body = log
    if cost.strip():
        # At most a quarter of the comment: the log stays readable whatever the section holds.
        head += tail(cost.strip(), limit // 4) + "\n\n"
    # A fence inside the log would end the code block early.
    body = body.replace("```", "'''")
    fence_open, fence_close = "```\n", "\n```\n"
    budget = limit - len((head + fence_open + fence_close).encode("utf-8"))
    return head + fence_open + tail(body.rstrip("\n"), budget) + fence_close


def _read(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--status", type=int, required=True)
    parser.add_argument("--setup-status", type=int, default=0)
    parser.add_argument("--setup-log")
    parser.add_argument("--log")
    parser.add_argument("--cost", help="the cost section (python -m cost.diff), if any")
    args = parser.parse_args(argv)
    sys.stdout.write(
        comment(
            stack=args.stack,
            commit=args.commit,
            status=args.status,
            setup_status=args.setup_status,
            setup_log=_read(args.setup_log),
            log=_read(args.log),
            cost=_read(args.cost),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
