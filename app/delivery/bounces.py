"""Moved: bounce handling lives with the suppression list in `app.subscribers.bounces`.

Kept only while the delivery engine's import moves over (the engine is being split
into Store and Transport pieces at the same time); delete once nothing imports it.
"""

from app.subscribers.bounces import BounceKind, record_bounce

__all__ = ["BounceKind", "record_bounce"]
