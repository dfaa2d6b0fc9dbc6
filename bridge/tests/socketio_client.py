"""A real Socket.IO client for the bridge tests (python-socketio, as Open WebUI pins it).

Connects to URL with auth {token} (none when --token is absent), joins the chats given with
--join through `events:chat` (waiting for the ack), then prints one JSON line per thing that
happens: {"event": "connect"}, {"event": "connect_error", "data": ...}, {"event": "joined",
"data": {...}}, {"event": "ready", "data": {"sid"}}, {"event": "events", "data": ENVELOPE},
{"event": "disconnect"}. An `events` emit that asks for an ack is answered {"heard": TYPE}.
It stays connected until its stdin closes. Each stdin line
`heartbeat` emits a `heartbeat` as Open WebUI's web client does (then {"event": "sent"});
`heartbeat-ack` asks for its ack and prints {"event": "heartbeat", "data": {"reply": ...}};
`emit EVENT JSON` sends that event (then {"event": "sent"}). `events:channel` emits received are
printed as {"event": "events:channel", "data": ...}.

With --in-order, messages are handled one after the other, in the order they arrived (as a
browser does). With --flood N, each chat is joined N times at once without waiting for the answers, and one
line {"event": "flooded", "data": {"chat_id", "replies": [...]}} follows once all answered.
"""

import argparse
import json
import sys
import threading

import socketio


def say(kind, data=None):
    line = {"event": kind}
    if data is not None:
        line["data"] = data
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    parser.add_argument("--transport", choices=["websocket", "polling"], default="websocket")
    parser.add_argument("--join", action="append", default=[])
    parser.add_argument("--flood", type=int, default=0)
    parser.add_argument("--in-order", action="store_true")
    args = parser.parse_args()

    sio = socketio.Client(reconnection=False)
    if args.in_order:
        # python-engineio's client hands each message to a thread of its own, so two emits
        # in a row may be handled in either order; a browser handles them in the order they
        # came. Handled here on the reading thread, in order.
        trigger = sio.eio._trigger_event

        def in_order(event, *a, **kw):
            if event == "message":
                kw["run_async"] = False
            return trigger(event, *a, **kw)

        sio.eio._trigger_event = in_order

    @sio.on("events")
    def on_events(data):
        say("events", data)
        # The ack of a server that asked for one (Open WebUI's `call`).
        return {"heard": data.get("data", {}).get("type") if isinstance(data, dict) else None}

    @sio.on("events:channel")
    def on_channel_events(data):
        say("events:channel", data)

    @sio.event
    def connect():
        say("connect")

    @sio.event
    def connect_error(data):
        say("connect_error", str(data))

    @sio.event
    def disconnect(*_):
        say("disconnect")

    auth = {"token": args.token} if args.token is not None else None
    try:
        sio.connect(
            args.url,
            socketio_path="/ws/socket.io",
            auth=auth,
            transports=[args.transport],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as e:
        say("connect_error", str(e))
        return
    for chat_id in args.join:
        if args.flood > 0:
            replies = []
            answered = threading.Event()

            def on_reply(*reply):
                replies.append(reply[0] if reply else None)
                if len(replies) == args.flood:
                    answered.set()

            for _ in range(args.flood):
                sio.emit("events:chat", {"type": "join", "chat_id": chat_id}, callback=on_reply)
            answered.wait(30)
            say("flooded", {"chat_id": chat_id, "replies": list(replies)})
            continue
        reply = sio.call("events:chat", {"type": "join", "chat_id": chat_id}, timeout=10)
        say("joined", {"chat_id": chat_id, "reply": reply})
    say("ready", {"sid": sio.get_sid()})
    done = threading.Event()

    def wait_stdin():
        for line in sys.stdin:
            command = line.strip()
            if command == "heartbeat":
                # As Open WebUI's web client sends it: no ack asked for.
                sio.emit("heartbeat", {})
                say("sent", "heartbeat")
            elif command.startswith("emit "):
                # emit EVENT JSON: an event as the web client sends it.
                _, event, data = command.split(" ", 2)
                sio.emit(event, json.loads(data))
                say("sent", event)
            elif command == "heartbeat-ack":
                try:
                    reply = sio.call("heartbeat", {}, timeout=10)
                    say("heartbeat", {"reply": reply})
                except socketio.exceptions.TimeoutError:
                    say("heartbeat", {"timeout": True})
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    while not done.is_set() and sio.connected:
        done.wait(0.2)
    if sio.connected:
        sio.disconnect()


if __name__ == "__main__":
    main()
