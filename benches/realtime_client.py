"""Socket.IO clients of the realtime benchmark: many python-socketio AsyncClient connections
(the library and version Open WebUI pins) in one asyncio process.

The first stdin line is a JSON spec:
  {"url": "http://127.0.0.1:PORT", "prefix": "rt...", "connect_concurrency": 32,
   "sockets": [{"token": "...", "record": true}, ...]}
Every socket connects over the websocket transport with auth {token}. Then stdout gets, one
per line:
  ready CONNECTED FAILED            all connection attempts finished
  count N                           receipts so far (every 100 ms while it changes)
  r SOCKET CHAT_ID NS               one receipt on a recording socket, after `dump`
  dumped N                          the end of a dump; N receipts in all so far
An `events` envelope counts when its chat_id starts with the prefix; its receipt time is
time.time_ns() (CLOCK_REALTIME) taken first thing in the handler. The line `dump` on stdin
prints the receipts recorded since the last dump; `stop` (or the end of stdin) disconnects
every socket and exits.
"""

import asyncio
import json
import sys
import time

import socketio


class Tally:
    def __init__(self):
        self.count = 0
        self.records = []


async def connect_one(index, spec, url, prefix, tally, gate):
    sio = socketio.AsyncClient(reconnection=False)
    record = spec.get("record", True)

    @sio.on("events")
    def on_events(data):
        now = time.time_ns()
        chat_id = data.get("chat_id") if isinstance(data, dict) else None
        if not chat_id or not chat_id.startswith(prefix):
            return
        tally.count += 1
        if record:
            tally.records.append((index, chat_id, now))

    async with gate:
        try:
            await sio.connect(
                url,
                socketio_path="/ws/socket.io",
                auth={"token": spec["token"]},
                transports=["websocket"],
                wait_timeout=30,
            )
            return sio
        except Exception as e:  # noqa: BLE001 - any failure counts as a failed socket
            sys.stderr.write(f"socket {index}: {e}\n")
            return None


async def read_line(loop):
    return await loop.run_in_executor(None, sys.stdin.readline)


async def main():
    loop = asyncio.get_running_loop()
    spec = json.loads(await read_line(loop))
    tally = Tally()
    gate = asyncio.Semaphore(spec.get("connect_concurrency", 32))
    clients = await asyncio.gather(
        *(
            connect_one(i, s, spec["url"], spec["prefix"], tally, gate)
            for i, s in enumerate(spec["sockets"])
        )
    )
    connected = [c for c in clients if c is not None]
    print(f"ready {len(connected)} {len(clients) - len(connected)}", flush=True)

    async def report():
        shown = -1
        while True:
            await asyncio.sleep(0.1)
            if tally.count != shown:
                shown = tally.count
                print(f"count {shown}", flush=True)

    reporter = asyncio.create_task(report())
    while True:
        line = await read_line(loop)
        if not line or line.strip() == "stop":
            break
        if line.strip() == "dump":
            records, tally.records = tally.records, []
            out = sys.stdout
            for index, chat_id, ns in records:
                out.write(f"r {index} {chat_id} {ns}\n")
            out.write(f"dumped {tally.count}\n")
            out.flush()
    reporter.cancel()
    await asyncio.gather(*(c.disconnect() for c in connected), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
