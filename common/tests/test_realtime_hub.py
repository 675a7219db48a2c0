"""The process's fan-out hub (``common.realtime.GroupHub``): one channel of the layer for all the
sockets of a process, in every group one of them is in, for as long as one of them is."""

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer

from common import realtime


class Recorder:
    """What a consumer would do with the hub's deliveries: keep them, per member, in order."""

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        self.arrived = asyncio.Event()

    async def deliver(
        self, group: str, events: list[tuple[str, dict[str, Any]]], members: list[Any]
    ) -> None:
        for member in members:
            self.received.setdefault(member, []).extend((group, e, d) for e, d in events)
        self.arrived.set()


async def _settled(hub: realtime.GroupHub, layer: Any, recorder: Recorder, *groups: str) -> None:
    """Every message of ``groups`` so far has been through the hub: a marker sent after them
    arrives (the channel delivers in order)."""
    marker = "hub.marker"
    await hub.join(marker, "marker")
    for group in groups:
        await layer.group_send(group, realtime.group_message(group, [{"event": "e", "data": {}}]))
    await layer.group_send(marker, realtime.group_message(marker, [{"event": "end", "data": {}}]))
    for _ in range(200):
        if any(e == "end" for _, e, _ in recorder.received.get("marker", [])):
            break
        await asyncio.sleep(0.01)
    await hub.leave(marker, "marker")
    recorder.received.pop("marker", None)


def _members_on_layer(layer: InMemoryChannelLayer, group: str) -> set[str]:
    return set(layer.groups.get(group, {}))


async def test_the_sockets_of_a_process_share_one_membership_of_a_group() -> None:
    layer = InMemoryChannelLayer()
    recorder = Recorder()
    hub = realtime.GroupHub(layer, recorder.deliver)

    for socket in ("ana", "bia", "caio"):
        await hub.join("department.1", socket)

    assert _members_on_layer(layer, "department.1") == {hub.channel}
    await layer.group_send(
        "department.1",
        realtime.group_message("department.1", [{"event": "new_message", "data": {"id": 1}}]),
    )
    await asyncio.wait_for(recorder.arrived.wait(), 2)
    assert recorder.received == {
        name: [("department.1", "new_message", {"id": 1})] for name in ("ana", "bia", "caio")
    }
    await hub.leave_all("ana")
    await hub.leave_all("bia")
    await hub.leave_all("caio")


async def test_a_socket_that_leaves_hears_nothing_more_and_the_last_one_discards_the_group() -> (
    None
):
    layer = InMemoryChannelLayer()
    recorder = Recorder()
    hub = realtime.GroupHub(layer, recorder.deliver)
    await hub.join("department.1", "ana")
    await hub.join("department.1", "bia")

    hub.leave_now("department.1", "ana")  # at once: no frame of it after this line
    await layer.group_send(
        "department.1", realtime.group_message("department.1", [{"event": "x", "data": {}}])
    )
    await asyncio.wait_for(recorder.arrived.wait(), 2)
    assert "ana" not in recorder.received
    assert recorder.received["bia"] == [("department.1", "x", {})]
    assert _members_on_layer(layer, "department.1") == {hub.channel}  # bia is still there

    await hub.leave("department.1", "bia")
    assert _members_on_layer(layer, "department.1") == set()
    assert hub.members == {}
    assert all(task.done() for task in hub._tasks)  # nobody left: it stopped reading


async def test_a_group_is_joined_again_after_its_last_member_left_and_a_new_one_came() -> None:
    layer = InMemoryChannelLayer()
    recorder = Recorder()
    hub = realtime.GroupHub(layer, recorder.deliver)
    await hub.join("user.7", "tab1")
    hub.leave_now("user.7", "tab1")  # the discard runs in the background…
    await hub.join("user.7", "tab2")  # …and a new tab of the same user comes at once
    await hub.leave("user.8", "nobody")
    assert _members_on_layer(layer, "user.7") == {hub.channel}
    await _settled(hub, layer, recorder, "user.7")
    assert recorder.received == {"tab2": [("user.7", "e", {})]}
    await hub.leave_all("tab2")
    assert _members_on_layer(layer, "user.7") == set()


async def test_each_socket_receives_its_groups_messages_in_the_order_they_were_sent() -> None:
    layer = InMemoryChannelLayer()
    recorder = Recorder()
    hub = realtime.GroupHub(layer, recorder.deliver)
    await hub.join("department.1", "ana")
    await hub.join("user.1", "ana")
    await hub.join("department.1", "bia")

    sent = []
    for i in range(30):
        group = "user.1" if i % 3 == 0 else "department.1"
        events = [{"event": f"e{i}", "data": {}}, {"event": f"e{i}b", "data": {}}]
        await layer.group_send(group, realtime.group_message(group, events))
        sent += [(group, f"e{i}"), (group, f"e{i}b")]
    await _settled(hub, layer, recorder)

    assert [(g, e) for g, e, _ in recorder.received["ana"]] == sent
    assert [(g, e) for g, e, _ in recorder.received["bia"]] == [
        s for s in sent if s[0] == "department.1"
    ]
    for socket in ("ana", "bia"):
        await hub.leave_all(socket)


async def test_a_message_without_its_group_or_for_nobody_here_is_dropped(caplog: Any) -> None:
    layer = InMemoryChannelLayer()
    recorder = Recorder()
    hub = realtime.GroupHub(layer, recorder.deliver)
    await hub.join("department.1", "ana")
    await layer.group_send("department.1", {"type": "desk.event", "event": "x", "data": {}})
    await hub.dispatch(realtime.group_message("department.2", [{"event": "y", "data": {}}]))
    await _settled(hub, layer, recorder)
    assert recorder.received == {}
    assert "without its group" in caplog.text
    await hub.leave_all("ana")


async def test_a_failing_delivery_does_not_stop_the_hub(caplog: Any) -> None:
    layer = InMemoryChannelLayer()
    calls: list[str] = []

    async def deliver(group: str, events: Any, members: Any) -> None:
        calls.append(events[0][0])
        if events[0][0] == "boom":
            raise RuntimeError("boom")

    hub = realtime.GroupHub(layer, deliver)
    await hub.join("department.1", "ana")
    for name in ("boom", "after"):
        await layer.group_send(
            "department.1", realtime.group_message("department.1", [{"event": name, "data": {}}])
        )
    for _ in range(100):
        if calls == ["boom", "after"]:
            break
        await asyncio.sleep(0.01)
    assert calls == ["boom", "after"]
    assert "could not deliver" in caplog.text
    await hub.leave_all("ana")


def test_broadcast_many_names_the_group_in_each_message() -> None:
    message = realtime.group_message("department.3", [{"event": "a", "data": {"id": 1}}])
    assert message == {
        "type": "desk.event",
        "group": "department.3",
        "event": "a",
        "data": {"id": 1},
    }
    batch = realtime.group_message(
        "user.2", [{"event": "a", "data": {}}, {"event": "b", "data": {}}]
    )
    assert batch["type"] == "desk.events"
    assert batch["group"] == "user.2"
    assert [e["event"] for e in batch["events"]] == ["a", "b"]


class FailingOnce(InMemoryChannelLayer):
    """A layer whose first read fails, as channels-redis does when Redis is unreachable."""

    failed = False

    async def receive(self, channel: str) -> dict[str, Any]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("Redis is unreachable")
        return await super().receive(channel)


async def test_a_channel_that_could_not_be_read_closes_the_sockets_and_reads_on(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(realtime, "RECEIVE_RETRY_SECONDS", 0.01)
    layer = FailingOnce()
    recorder = Recorder()
    lost: list[bool] = []

    async def on_lost() -> None:
        lost.append(True)

    hub = realtime.GroupHub(layer, recorder.deliver, on_lost=on_lost)
    await hub.join("department.1", "ana")
    await _settled(hub, layer, recorder, "department.1")
    assert lost == [True]  # what was broadcast meanwhile is lost: the owner closes its sockets
    assert recorder.received == {"ana": [("department.1", "e", {})]}  # and it reads on
    await hub.leave_all("ana")
