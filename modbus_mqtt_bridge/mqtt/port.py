"""The only module that imports paho: a paho client driven by the asyncio loop.

paho's network I/O runs on the event loop (socket readers/writers, as aiomqtt does)
instead of paho's own thread, so a publish is one buffered write on the loop and no
thread hand-off. Library errors become `MqttError`; reconnecting is the caller's visible
loop, not paho's hidden one.

`connected` cannot lie: it turns true in the CONNACK callback and false in the disconnect
callback (or when we close the socket), so a broker that hangs up right after CONNACK leaves
the port disconnected and `connect` raises. The QoS>0 messages paho still holds can be
taken back (`take_back`), so the publish pipeline, not paho's memory, owns what the broker
has not acknowledged.

The in-flight window is ours, not paho's. paho's own limit (`max_inflight_messages`)
queues the excess in its out dict and, on every PUBACK, `Client._update_inflight` walks
that dict from the start: O(n) per acknowledgement, so past ~1,000 messages in flight a
QoS 1 stream saturates a core (issue 16). So paho runs unlimited (0: it never queues and
never walks) and the port hands it at most `INFLIGHT` QoS>0 messages; the rest wait in
the port's own queue, fed to paho, in order, as acknowledgements free the window (after
each socket read) or a connection comes up. The ids `publish` returns are the port's own
(never reused), so a message keeps its id from our queue to the broker's PUBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..config.model import MqttConfig
from ..errors import MqttError
from .packets import QoS0Message, qos0_publishes

log = logging.getLogger(__name__)

MISC_PERIOD_S = 1.0
INFLIGHT = 1000  # QoS>0 messages handed to paho and not yet acknowledged, at most
WRITE_JOIN = 64 * 1024  # bytes of QoS>0 PUBLISH packets sent with one system call, at most
# what paho passes on_publish for a PUBACK without properties, by its reason code: Success
# (also a 2-byte PUBACK) and No matching subscribers, the two a delivered message gets
_PUBACK_PLAIN = {code: ReasonCode(PacketTypes.PUBACK, identifier=code) for code in (0x00, 0x10)}
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Message:
    """An incoming message, with the MQTT 5 properties commands need."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry_s: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


_Pending = tuple[
    str, bytes | bytearray | str, int, bool, Properties | None
]  # a publish's arguments
# what waits in the port's queue: a publish's arguments, or a batch of QoS 0 PUBLISH packets
# already encoded (publish_qos0) that must not overtake the QoS>0 messages queued before it
_Waiting = _Pending | bytes
OnMessage = Callable[[Message], None]
OnAck = Callable[[int], None]
OnDisconnected = Callable[[str], None]
PublishProperties = Properties  # MQTT 5 PUBLISH properties, built by message_properties()


class MqttPort:
    """One MQTT session: connect, publish, subscribe, ack; callbacks land on the loop."""

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        *,
        will: Will | None = None,
        clean_start: bool = True,
        session_expiry_s: float | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._v5 = cfg.protocol == "5"
        self._client = _build_client(cfg, client_id, clean_start, manual_ack)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._connack: asyncio.Future[None] | None = None
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._misc_task: asyncio.Task[None] | None = None
        self._connected_once = False
        self.on_message: OnMessage | None = None
        # called on the loop, at once, each time a connection ends (whatever ended it)
        self.on_disconnected: OnDisconnected | None = None
        self._on_ack: OnAck | None = None
        # the window: id -> message not yet handed to paho (oldest first); id -> paho's
        # MQTTMessageInfo of a QoS>0 message handed over (pruned in order once published);
        # paho mid -> our id, for the acks
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._sent: dict[int, paho.MQTTMessageInfo] = {}
        self._ids: dict[int, int] = {}
        self._next_id = 0
        self._wire_callbacks()

    # -- connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self._disconnected.is_set()

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the session; raises MqttError with the broker's reason when refused."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._connack = self._loop.create_future()
        if self._client.connect_timeout != timeout_s:
            # paho refuses this setter after a lost connection (state CONNECTION_LOST), so
            # touch it only when it changes: reconnecting with the same timeout must work.
            self._client.connect_timeout = timeout_s
        try:
            await asyncio.wait_for(
                self._loop.run_in_executor(None, self._open_socket), timeout_s + 1
            )
            await asyncio.wait_for(asyncio.shield(self._connack), timeout_s)
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            self._abandon_connect()
            hint = _TLS_HINT if self.cfg.use_tls and _tls_refused(exc) else ""
            raise MqttError(f"cannot connect to {self._where()}: {_describe(exc)}{hint}") from exc
        except asyncio.CancelledError:  # the caller stops while we wait for CONNACK
            self._abandon_connect()
            raise
        self._connected_once = True
        if not self.connected:
            # CONNACK came, then the socket closed before this coroutine resumed
            self._client._sock_close()
            raise MqttError(f"{self._where()} closed the connection right after CONNACK")
        if self._misc_task is None or self._misc_task.done():
            self._misc_task = asyncio.create_task(self._misc_loop(), name="mqtt-keepalive")

    def _abandon_connect(self) -> None:
        self._client._sock_close()
        if self._connack is not None and not self._connack.done():
            self._connack.cancel()  # a late CONNACK or close must not resolve it

    def _open_socket(self) -> None:
        if self._connected_once:
            rc = self._client.reconnect()
        else:
            rc = self._client.connect(
                self.cfg.host,
                self.cfg.port,
                keepalive=max(5, int(self.cfg.keepalive_s)),
                clean_start=self._clean_start if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=self._connect_properties(),
            )
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise OSError(paho.error_string(rc))

    def _connect_properties(self) -> Properties | None:
        if not self._v5 or self._session_expiry_s is None:
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = int(self._session_expiry_s)
        return props

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    def abort(self, reason: str) -> None:
        """Drop the link now, without DISCONNECT (the broker sends our will): for a link
        that no longer acknowledges anything. The caller's loop reconnects."""
        self._client._sock_close()
        self._mark_disconnected(reason)

    async def disconnect(self) -> None:
        """Polite DISCONNECT (the will is not sent); flushes what paho has queued."""
        if self.connected:
            self._client.disconnect()
            # paho writes DISCONNECT from the loop; give the writer one turn to flush it
            for _ in range(50):
                if not self._client.want_write():
                    break
                await asyncio.sleep(0.01)
        self._client._sock_close()
        self._mark_disconnected("closed by us")
        if self._misc_task is not None:
            self._misc_task.cancel()

    def _where(self) -> str:
        return f"{'mqtts' if self.cfg.use_tls else 'mqtt'}://{self.cfg.host}:{self.cfg.port}"

    # -- traffic ---------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int,
        retain: bool,
        properties: Properties | None = None,
    ) -> int:
        """Queue one message; returns its id (acked later via on_ack when qos > 0).

        A QoS>0 message is kept while the broker is away and sent after the reconnect: not
        a failure. It goes to paho at once when the window has room and nothing older waits,
        else into our queue behind the older ones (a QoS 0 message too while connected, to
        keep the order; while disconnected paho refuses it, as before)."""
        ident = self._new_id()
        if qos > 0:
            queue = (
                self._waiting or not self.connected or len(self._client._out_messages) >= INFLIGHT
            )
        else:
            queue = bool(self._waiting) and self.connected
        if queue:
            self._waiting[ident] = (topic, payload, qos, retain, properties)
        else:
            self._hand_over(ident, (topic, payload, qos, retain, properties))
        return ident

    def _hand_over(self, ident: int, message: _Pending) -> None:
        topic, payload, qos, retain, properties = message
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not (
            qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN  # kept, sent after CONNACK
        ):
            raise MqttError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        if qos > 0:
            self._sent[ident] = info
            self._ids[info.mid] = ident

    def _feed(self) -> None:
        """Hand paho what waits, oldest first, while the window has room; forget what the
        broker acknowledged (paho acks QoS 1 in order, so the oldest go first)."""
        sent = self._sent
        while sent:
            ident = next(iter(sent))
            info = sent[ident]
            if not info._published:  # set on the PUBACK (is_published() raises for NO_CONN)
                break
            del sent[ident]
            if self._ids.get(info.mid) == ident:
                del self._ids[info.mid]
        waiting = self._waiting
        if not waiting or not self.connected:
            return
        out = self._client._out_messages
        while waiting:
            ident = next(iter(waiting))
            message = waiting[ident]
            if isinstance(message, bytes):  # QoS 0: no window to wait for
                del waiting[ident]
                self._queue_packets(message)
                continue
            if len(out) >= INFLIGHT:
                return
            del waiting[ident]
            try:
                self._hand_over(ident, message)
            except MqttError as exc:  # refused while connected: the link is not usable
                waiting[ident] = message
                waiting.move_to_end(ident, last=False)
                log.warning("%s", exc)
                self.abort(f"publish refused: {exc}")
                return

    def publish_qos0(self, messages: Sequence[QoS0Message]) -> None:
        """Queue QoS 0 messages as one write (mqtt/packets.py): the bytes paho would send,
        in order behind what paho already queued, for one queue entry instead of one each."""
        client = self._client
        if not messages:
            return
        if client._sock is None:  # as paho's publish: QoS 0 is never kept for later
            raise MqttError("publish failed: The client is not currently connected.")
        data = qos0_publishes(messages, v5=self._v5)
        if self._waiting:  # behind QoS>0 messages the window holds back: keep the order
            self._waiting[self._new_id()] = data
        else:
            self._queue_packets(data)

    def _queue_packets(self, data: bytes) -> None:
        # mid 0 is no message id paho hands out (1..65535) nor one of ours: never acked
        self._client._packet_queue(paho.PUBLISH, data, 0, 0, paho.MQTTMessageInfo(0))

    def subscribe(self, topic: str, qos: int = 1, *, retain_as_published: bool = False) -> None:
        """retain_as_published (MQTT 5): keep the retain flag on live messages too, so a
        command published retained is recognised as such even while we are connected."""
        if self._v5:
            options = SubscribeOptions(
                qos=qos, noLocal=False, retainAsPublished=retain_as_published
            )
            rc, _ = self._client.subscribe(topic, options=options)
        else:
            rc, _ = self._client.subscribe(topic, qos=qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"subscribe to {topic!r} failed: {paho.error_string(rc)}")

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message received with manual_ack (after it is stored safely)."""
        self._client.ack(mid, qos)

    async def wait_acked(self, timeout_s: float) -> bool:
        """Wait (bounded) until the broker has acknowledged every QoS>0 publish."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.pending_acks and self.connected:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return self.pending_acks == 0

    @property
    def pending_acks(self) -> int:
        """QoS>0 publishes not yet acknowledged by the broker (paho's and our queue's; a
        QoS 0 batch still queued behind them counts until it goes to paho)."""
        return len(self._client._out_messages) + len(self._waiting)

    def unacked(self, mid: int) -> bool:
        """Is this QoS>0 publish still waiting (in our queue) or for its acknowledgement?"""
        if mid in self._waiting:
            return True
        info = self._sent.get(mid)
        return info is not None and not info._published

    def oldest_unacked_age_s(self) -> float:
        """How long the oldest unacknowledged QoS>0 publish has waited (0: none waits).
        paho stamps each message with time.monotonic() when queued and again when it is
        re-sent after a CONNACK, so this is the wait on the current connection. Our queue
        is fed as soon as the window has room, so paho holds the oldest."""
        out = self._client._out_messages
        if not out:
            return 0.0
        oldest = next(iter(out.values()))
        return max(0.0, time.monotonic() - oldest.timestamp)

    def take_back(self, mids: Collection[int]) -> None:
        """Forget these unacknowledged publishes (ours and paho's): they are not sent or
        re-sent after a reconnect, since their owner keeps them (the buffer) and replays
        them itself. Other messages (command results) stay queued, in their order."""
        if not mids:
            return
        taken = set(mids)
        waiting, ids, sent = self._waiting, self._ids, self._sent
        for gone in taken.intersection(waiting):
            del waiting[gone]
        kept: list[tuple[int, _Pending]] = []
        for msg in self._client.drop_out_messages():
            ident = ids.pop(msg.mid, 0)  # ids start at 1
            sent.pop(ident, None)
            if ident not in taken:
                message: _Pending = (msg.topic, msg.payload, msg.qos, msg.retain, msg.properties)
                kept.append((ident or self._new_id(), message))
        for acked in taken.intersection(sent):
            del sent[acked]  # acknowledged meanwhile: nothing to drop
        # paho's were older than our queue's: they go first, under their own ids
        for ident, message in reversed(kept):
            waiting[ident] = message
            waiting.move_to_end(ident, last=False)
        self._feed()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- paho callbacks, all on the loop thread --------------------------------------

    def _wire_callbacks(self) -> None:
        c = self._client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        fut = self._connack
        if fut is None or fut.done():
            return
        if rc.is_failure:
            fut.set_exception(MqttError(f"broker {self._where()} refused the connection: {rc}"))
        else:
            # connected from this moment: a disconnect callback right behind it undoes it
            self._disconnected.clear()
            fut.set_result(None)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        fut = self._connack
        if fut is not None and not fut.done():
            # closed before CONNACK: connect() fails now, not after its timeout
            fut.set_exception(OSError(f"connection closed before CONNACK ({rc})"))
        self._mark_disconnected(str(rc))

    def _mark_disconnected(self, reason: str) -> None:
        if self._disconnected.is_set():
            return
        self._disconnected.set()
        log.debug("mqtt session ended: %s", reason)
        if self.on_disconnected is not None:
            self.on_disconnected(reason)

    @property
    def on_ack(self) -> OnAck | None:
        return self._on_ack

    @on_ack.setter
    def on_ack(self, callback: OnAck | None) -> None:
        """paho calls on_publish for every message and builds two objects per call (about
        15 µs): it is installed only while someone waits for acknowledgements."""
        self._on_ack = callback
        self._client.on_publish = self._on_publish if callback is not None else None

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        ident = self._ids.get(mid)
        if ident is not None and self._on_ack is not None:
            self._on_ack(ident)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        if self.on_message is None:
            return
        props = getattr(msg, "properties", None)
        self.on_message(
            Message(
                topic=msg.topic,
                payload=bytes(msg.payload),
                qos=msg.qos,
                retain=bool(msg.retain),
                mid=msg.mid,
                response_topic=getattr(props, "ResponseTopic", None),
                correlation_data=getattr(props, "CorrelationData", None),
                message_expiry_s=getattr(props, "MessageExpiryInterval", None),
                user_properties=tuple(getattr(props, "UserProperty", ()) or ()),
            )
        )

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn on the event loop; paho calls socket hooks from connect's executor too."""
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        _no_delay(sock)
        self._on_loop(self._add_reader, sock)

    def _add_reader(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        client = self._client
        rc = client.loop_read()
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.holds_input():
            rc = client.loop_read()  # packets already read, beyond paho's per-call count
        self._feed()  # PUBACKs (or a CONNACK) may have opened the window

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        self._on_loop(self._forget_socket, sock)

    def _forget_socket(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._on_loop(self._add_writer, sock)

    def _add_writer(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, self._client.loop_write)

    def _on_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._on_loop(self._remove_writer, sock)

    def _remove_writer(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        """Keepalive pings and dead-connection detection, which paho does in loop_misc."""
        while True:
            await asyncio.sleep(MISC_PERIOD_S)
            if self.connected:
                self._client.loop_misc()


READ_CHUNK = 65536  # bytes one socket read may take for paho's packet reader


class _Client(paho.Client):
    """paho's client with three costs of a QoS 1 stream taken out (bench, QoS 1).

    Reads: paho reads every packet with at least three `recv` calls (its type byte, each
    byte of its length, its body), each a system call: three per PUBACK, and `_sock_recv`
    with `_packet_read` were 19 % of the bridge's CPU (scenario B, QoS 1). Here one `recv`
    takes what the kernel holds, up to READ_CHUNK, and paho's small reads are served from
    it. paho handles a bounded number of packets per `loop_read`, so the port calls it
    again while bytes are held (`holds_input`): none wait for a socket event that will not
    come. Bytes of a closed socket are never served to the next one.

    PUBACKs: paho builds one Properties and one or two ReasonCodes for every PUBACK (12 %
    of the bridge's CPU in scenario A at QoS 1), also for the plain ones brokers send for
    a delivered message: the packet id alone (MQTT 5 3.4.2.1: no reason code means
    Success) or with reason 0x10 (no matching subscribers), no properties. Those are
    handled here as paho does, with shared reason code and properties objects; any other
    PUBACK (an error reason code, properties, MQTT 3.1.1) goes to paho.

    Writes: paho sends each queued packet with its own `send` call. A QoS>0 PUBLISH needs
    nothing once written (paho keeps the message until its PUBACK), so one queued right
    behind another QoS>0 PUBLISH not yet started joins it, up to WRITE_JOIN bytes: a
    request's readings go out in one system call, in their order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rx = b""
        self._rx_at = 0
        self._rx_sock: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rx_sock is not self._sock:  # a new connection: nothing held is its
            self._rx, self._rx_at, self._rx_sock = b"", 0, self._sock
        at = self._rx_at
        if at >= len(self._rx):
            data = super()._sock_recv(max(bufsize, READ_CHUNK))
            if len(data) <= bufsize:
                self._rx, self._rx_at = b"", 0
                return data  # EOF (b""), or no more than was asked for
            self._rx, at = data, 0
        self._rx_at = at + bufsize
        return self._rx[at : at + bufsize]

    def holds_input(self) -> bool:
        """Bytes read from the current socket that paho has not taken yet."""
        return self._rx_sock is self._sock and self._rx_at < len(self._rx)

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        body = self._in_packet["packet"]
        size = len(body)
        reason = _PUBACK_PLAIN.get(body[2] if size == 3 else 0) if size <= 3 else None
        if cmd != "PUBACK" or size < 2 or reason is None or self._protocol != paho.MQTTv5:
            return super()._handle_pubackcomp(cmd)
        mid = body[0] << 8 | body[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, reason, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: paho.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        queue = self._out_packet
        if command & 0xF0 == paho.PUBLISH and qos > 0 and queue:
            last = queue[-1]
            if (
                last["command"] & 0xF0 == paho.PUBLISH
                and last["qos"] > 0
                and last["pos"] == 0
                and last["to_process"] + len(packet) <= WRITE_JOIN
            ):
                joined = last["packet"]
                if not isinstance(joined, bytearray):  # paho's own bytes: copy once
                    joined = last["packet"] = bytearray(joined)
                joined += packet
                last["to_process"] += len(packet)
                self._call_socket_register_write()
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)


def _build_client(cfg: MqttConfig, client_id: str, clean_start: bool, manual_ack: bool) -> _Client:
    v5 = cfg.protocol == "5"
    client = _Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else clean_start,
        manual_ack=manual_ack,
    )
    # The bridge buffers on disk itself and the port keeps the in-flight window (INFLIGHT):
    # paho is unlimited on both, so it never queues a message it has not sent and never
    # walks its out dict on a PUBACK (_update_inflight runs only with a limit).
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.use_tls:
        client.tls_set(
            ca_certs=cfg.tls.ca_file,
            certfile=cfg.tls.cert_file,
            keyfile=cfg.tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(cfg.tls.insecure)
    return client


_TLS_HINT = " (is this a TLS port? mqtts:// needs the broker's TLS listener, often 8883)"


def _no_delay(sock: Any) -> None:
    """Send each write at once (TCP_NODELAY). With Nagle's algorithm on, a publish written
    while an earlier segment is still unacknowledged waits for that ACK, and the broker's
    kernel delays ACKs by up to 40 ms: the tail of a tick's readings reached the broker
    ~45 ms late (bench scenario A, p99). Our writes are whole packets, already batched."""
    # a websocket wrapper or a non-TCP socket stays as it is
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _tls_refused(exc: BaseException) -> bool:
    """The failures a plain listener causes when it gets a TLS hello: reset or garbage."""
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError):
        return True
    return isinstance(exc, ssl.SSLError) and "WRONG_VERSION" in str(exc).upper()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure ({exc.reason or exc})"
    return str(exc) or type(exc).__name__


def message_properties(
    *, expiry_s: int | None = None, correlation_data: bytes | None = None
) -> Properties:
    """PUBLISH properties for MQTT 5 (responses carry the request's correlation data)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    return props
