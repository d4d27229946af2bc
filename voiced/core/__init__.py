"""The daemon's core: one thread (the turn owner) that alone decides what happens next.

Inputs become frozen messages on one queue (messages.py); the owner takes them in order and
looks up what to do in one table (owner.py); slow work runs in workers (turns.py) that post
their results back; readers see frozen snapshots (health.py). docs/architecture.md has the map.
"""
