"""Notifications: published colour changes pushed to Alertmanager, webhooks and chat.

Between the HTTP layer and the engine: the engine publishes colour changes through a hook
(`Engine.on_change`) without knowing who listens; this package subscribes, keeps a durable
SQLite outbox (outbox.py), delivers each sink's messages with retries (notifier.py, one module
per sink type under sinks/, Gatus-style), and pushes alerts to every Alertmanager with
Prometheus' resend semantics (alertmanager.py). The status page reads its sinks' health.
"""
