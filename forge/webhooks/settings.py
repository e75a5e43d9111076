"""Settings of the GitLab webhook receiver.

The shared secret is not a setting: it comes from ``CREWLINE_WEBHOOK_SECRET`` and is
handed to :class:`forge.webhooks.WebhookReceiver` as a ``SecretStr``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from forge.metrics import HEALTH_PATH, METRICS_PATH

__all__ = ["HEALTH_PATH", "WebhookSettings"]


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the receiver (polling alone still works)")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on")
    port: int = Field(
        default=8930, ge=0, le=65535, description="TCP port to listen on; 0 picks a free one"
    )
    path: str = Field(default="/webhooks/gitlab", description="URL path GitLab posts to")
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="Larger request bodies are logged and dropped (answered 200, so GitLab keeps the hook)",
    )
    queue_size: int = Field(
        default=1000, ge=1, description="Events waiting for the engine; beyond it GitLab gets 503"
    )
    dedupe_window: int = Field(
        default=10_000,
        ge=1,
        description="How many recent deliveries are remembered to drop redeliveries",
    )
    drain_timeout_seconds: float = Field(
        default=10.0, ge=0, description="On stop, how long queued events may still be handed over"
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected a URL path starting with '/', e.g. /webhooks/gitlab")
        # The receiver serves these too: a hook on one of them would never be reached.
        served = {HEALTH_PATH: "the health check", METRICS_PATH: "the metrics"}
        if value in served:
            raise ValueError(f"{value} is {served[value]}; choose another path")
        return value
