"""Phrase: a message and its parameters kept apart until shown, so pure code can be translated.

Pure Python (no Django): the geometry rules and the stopping rules build phrases; the web layer
renders them with gettext in the reader's language, and ``str()`` gives the English text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def gettext_noop(message: str) -> str:
    """Marks a message for the translation catalogue (``makemessages`` finds this name) without
    importing Django: the messages are translated where they are shown (``Phrase.render``)."""
    return message


@dataclass(frozen=True)
class Phrase:
    """A message with %-style named parameters, kept apart until shown, so that the web layer
    can translate the message (and any phrase among its parameters) into the reader's
    language; ``str()`` is the English text."""

    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = gettext_noop) -> str:
        text = translate(self.message)
        if not self.params:
            return text
        return text % {k: _render(v, translate) for k, v in self.params.items()}

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (stored beside results, so they can be shown in a later reader's language)."""
        return {"message": self.message, "params": {k: _dump(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, data: object) -> Phrase | None:
        """The phrase :meth:`to_dict` wrote, or None for anything else (older stored results)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("message"), str):
            return None
        raw = data.get("params")
        items = raw.items() if isinstance(raw, Mapping) else ()
        return cls(data["message"], {str(k): _load(v) for k, v in items})


# A parameter may also be a list (of phrases or values): it is shown joined by LIST_SEPARATOR,
# itself translated (Chinese lists take "、").
LIST_SEPARATOR = gettext_noop(", ")


def _render(value: object, translate: Callable[[str], str]) -> object:
    if isinstance(value, Phrase):
        return value.render(translate)
    if isinstance(value, list | tuple):
        return translate(LIST_SEPARATOR).join(str(_render(v, translate)) for v in value)
    return value


def _dump(value: object) -> object:
    if isinstance(value, Phrase):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


def _load(value: object) -> object:
    if isinstance(value, list):
        return [_load(v) for v in value]
    return Phrase.from_dict(value) if isinstance(value, Mapping) else value
