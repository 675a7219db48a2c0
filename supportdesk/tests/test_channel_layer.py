"""The channel layer on a Redis that answers late: channels-redis waits for a frame with a
blocking 5 s ``BZPOPMIN``, and redis-py 8 gives up reading after 5 s by default, so a reply a
moment late (a loaded or briefly stalled Redis) raised inside every idle console's consumer and
closed its socket (1011). With our settings the socket keeps listening. A private Redis, stalled
with ``DEBUG SLEEP``, stands in for the late one; the machine's Redis is never touched."""

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from supportdesk.tests.test_redis_down import _closed_port

DEBUG_ON = ("--enable-debug-command", "local")  # DEBUG SLEEP, from this machine only


@pytest.fixture
def stallable_redis(tmp_path: Any) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = _closed_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no", *DEBUG_ON],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def test_a_listening_socket_survives_a_redis_that_answers_late(stallable_redis: str) -> None:
    ours = RedisChannelLayer(
        hosts=[{"address": stallable_redis, **settings.CHANNEL_LAYER_REDIS_OPTIONS}]
    )
    library_default = RedisChannelLayer(hosts=[stallable_redis])
    channel, other = await ours.new_channel(), await library_default.new_channel()
    waiting = asyncio.create_task(ours.receive(channel))
    failing = asyncio.create_task(library_default.receive(other))
    await asyncio.sleep(3)
    # Redis stalls from 3 s to 7 s: the 5 s pops' empty answers come 2 s late.
    stall = redis.Redis.from_url(stallable_redis)
    await asyncio.to_thread(stall.execute_command, "DEBUG", "SLEEP", "4")

    with pytest.raises(redis.exceptions.TimeoutError):
        await asyncio.wait_for(failing, 10)  # what every idle consumer used to die of
    assert not waiting.done()
    await ours.send(channel, {"type": "conversation.updated", "id": 1})
    assert await asyncio.wait_for(waiting, 10) == {"type": "conversation.updated", "id": 1}
    await ours.flush()
