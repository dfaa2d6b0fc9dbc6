"""A stand-in for one of Open WebUI's Socket.IO replicas run with WEBSOCKET_MANAGER=redis:
python-socketio 5.16.2's AsyncServer with its AsyncRedisManager (the manager Open WebUI
configures), served by aiohttp at /ws/socket.io. A socket connecting with auth {token} joins
room user:{token}: the stand-in takes the token for the user id, because what is under test is
the manager channel, not Open WebUI's login. Prints "listening PORT" once it serves; exits when
its stdin closes.
"""

import argparse
import asyncio
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
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
