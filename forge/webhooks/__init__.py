"""GitLab webhook receiver: typed issue, note, merge request and pipeline events,
delivered to a callback from a bounded queue (SPEC §8)."""

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
