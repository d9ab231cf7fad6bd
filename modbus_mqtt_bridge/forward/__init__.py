"""The side-car: take reading messages from the broker and deliver them to the Laravel API.

broker (shared subscription, manual ack) -> outbox commit -> ack -> HTTP delivery ->
outcome (done / retry after / dead letter / pause). See docs/forwarding.md.
"""
