"""The bot process: composition root, CLI and the human surfaces."""
