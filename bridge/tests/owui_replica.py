"""A stand-in for one of Open WebUI's Socket.IO replicas run with WEBSOCKET_MANAGER=redis:
python-socketio 5.16.2's AsyncServer with its AsyncRedisManager (the manager Open WebUI
configures), served by aiohttp at /ws/socket.io. A socket connecting with auth {token} joins
room user:{token}: the stand-in takes the token for the user id, because what is under test is
the manager channel, not Open WebUI's login. Prints "listening PORT" once it serves; exits when
its stdin closes. Each stdin line `emit ROOM EVENT JSON` emits through the manager, as Open
WebUI's replicas do (then prints "emitted"); `burst ROOM EVENT JSON` emits it 50 times at
once, numbered in "n"; `call SID EVENT JSON` asks the socket SID, on
whichever server of the cluster holds it, and prints "reply JSON" ("timeout" after 10 s).
"""

import argparse
import asyncio
import json
import sys

import socketio
from aiohttp import web


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", default="socketio")
    args = parser.parse_args()

    manager = socketio.AsyncRedisManager(args.redis_url, channel=args.channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)

    @sio.event
    async def connect(sid, environ, auth):
        if not isinstance(auth, dict) or not auth.get("token"):
            return False
        await sio.enter_room(sid, f"user:{auth['token']}")
        return True

    app = web.Application()
    sio.attach(app, socketio_path="ws/socket.io")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"listening {port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        parts = line.strip().split(" ", 3)
        if len(parts) != 4:
            continue
        command, target, event, data = parts
        if command == "emit":
            await sio.emit(event, json.loads(data), room=target)
            print("emitted", flush=True)
        elif command == "burst":
            # 50 emits at once, as a streamed completion sends them, numbered in "n".
            for n in range(50):
                await sio.emit(event, {**json.loads(data), "n": n}, room=target)
            print("emitted", flush=True)
        elif command == "call":
            try:
                reply = await sio.call(event, json.loads(data), to=target, timeout=10)
            except socketio.exceptions.TimeoutError:
                reply = "timeout"
            print("reply " + json.dumps(reply), flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
