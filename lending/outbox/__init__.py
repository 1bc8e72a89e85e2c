"""The transactional outbox: messages written with a change (messages.py), delivered later (relay.py)."""
