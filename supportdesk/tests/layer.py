"""Listening on the channel layer in tests, as a consumer would: ``listen`` joins groups with a
fresh channel, ``drain`` returns the events received so far, ``desk.events`` batches unpacked."""

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def listen(*groups: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return channel


def drain(channel: str, *, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every event (``{"type", "event", "data"}``) until nothing arrives for ``quiet`` seconds."""
    layer = get_channel_layer()
    received: list[dict[str, Any]] = []

    async def receive_all() -> None:
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=quiet)
            except TimeoutError:
                return
            if message.get("type") == "desk.events":
                received.extend({"type": "desk.event", **item} for item in message["events"])
            else:
                received.append(message)

    async_to_sync(receive_all)()
    return received
