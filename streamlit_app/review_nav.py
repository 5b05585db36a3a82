"""The review queue's navigation, without Streamlit: pages of the queue, the card in focus, and the keyboard.

Pure functions and constants, so that tests (and the docs' legend) read them without running a page.
"""

from __future__ import annotations

from dataclasses import dataclass

CARDS_PER_PAGE = 10
CELLS_PER_PAGE = 24

# One key per action; Streamlit reserves C and R. Digits pick the labels in their listed order (1-9, then 0).
APPROVE, REJECT, NEXT_CARD, PREVIOUS_CARD, NEXT_PAGE, PREVIOUS_PAGE, GRID, UNDO = "A", "X", "J", "K", "N", "P", "G", "U"
LABEL_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")

LEGEND: tuple[tuple[str, str], ...] = (
    (APPROVE, "approve the card in focus as predicted (in the grid: the ticked cards)"),
    (REJECT, "reject it (in the grid: the ticked cards)"),
    ("1–9, 0", "approve it as the 1st … 10th label listed on the card"),
    (f"{NEXT_CARD} / {PREVIOUS_CARD}", "focus the next / previous card"),
    (f"{NEXT_PAGE} / {PREVIOUS_PAGE}", "next / previous page of the queue"),
    (GRID, "switch between cards and the grid"),
    (UNDO, "undo your last decision (for a few minutes)"),
)


@dataclass(frozen=True)
class Pager:
    """Page ``number`` (1-based) of a queue of ``count`` samples shown ``size`` at a time."""

    number: int
    size: int
    count: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    def clamped(self) -> Pager:
        """The same pager on a page that exists (the queue may have shrunk since the page was chosen)."""
        return Pager(min(max(1, self.number), self.pages), self.size, self.count)

    def words(self, shown: int) -> str:
        """'Page 2 of 4: samples 11–20 of 37'."""
        if not shown:
            return f"Page {self.number} of {self.pages}"
        return (f"Page {self.number} of {self.pages}: samples {self.offset + 1}–{self.offset + shown} "
                f"of {self.count}")


def page_number(raw: str | None) -> int:
    """The page asked for in the URL (``?page=2``); anything else than a positive integer is page 1."""
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def label_keys(labels: list[str]) -> list[tuple[str, str]]:
    """(key, label) for the first ten labels, in order: 1 … 9, then 0."""
    return list(zip(LABEL_KEYS, labels, strict=False))


def focus_index(ids: list[int], *, wanted_id: int | None, position: int) -> int:
    """Which card of the page has the focus: the wanted sample if it is on the page, else the card now at the
    position the focus had (the next one, once the focused card was decided), clamped to the page."""
    if not ids:
        return 0
    if wanted_id in ids:
        return ids.index(wanted_id)
    return min(max(0, position), len(ids) - 1)


def legend_markdown() -> str:
    """The keyboard legend as one Markdown line, the way the Review page shows it."""
    return " · ".join(f"**{keys}** {what}" for keys, what in LEGEND)
