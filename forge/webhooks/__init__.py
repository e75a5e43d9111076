"""GitLab webhook receiver: typed issue, note, merge request and pipeline events,
delivered to a callback from a bounded queue (SPEC §8).

The receiver is imported on first use: it brings the HTTP listener (``forge.http_serve``),
which a host that serves no webhooks (a `crewline worker`, webhooks off) never needs; the
events, their parsing and the settings come without it."""

from typing import TYPE_CHECKING

from forge.webhooks.events import (
    BaseWebhookEvent,
    BuildSummary,
    IssueEvent,
    MergeRequestEvent,
    NoteEvent,
    PipelineEvent,
    WebhookEvent,
)
from forge.webhooks.parse import HANDLED_KINDS, Ignored, PayloadError, parse_event

if TYPE_CHECKING:
    from forge.webhooks.receiver import EventCallback, WebhookReceiver
from forge.webhooks.settings import WebhookSettings

__all__ = [
    "HANDLED_KINDS",
    "BaseWebhookEvent",
    "BuildSummary",
    "EventCallback",
    "Ignored",
    "IssueEvent",
    "MergeRequestEvent",
    "NoteEvent",
    "PayloadError",
    "PipelineEvent",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookSettings",
    "parse_event",
]


def __getattr__(name: str) -> object:
    if name in ("EventCallback", "WebhookReceiver"):
        from forge.webhooks import receiver

        return getattr(receiver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
