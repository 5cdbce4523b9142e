"""Follows a camera's motion events the way Home Assistant's ONVIF
integration does, with its own client library (onvif-zeep-async): a
PullPoint subscription made by the library's PullPointManager, then
PullMessages in a loop. Prints one line a message, as it comes:

    event TOPIC VALUE OPERATION

and ends once motion (tns1:VideoSource/MotionAlarm) has been seen to
start and end, or after 60 s.

    python ha_motion.py HOST PORT USER PASSWORD
"""

import asyncio
import datetime as dt
import os
import sys
import time

import onvif
from onvif import ONVIFCamera


async def follow(host, port, user, password):
    wsdl = f"{os.path.dirname(onvif.__file__)}/wsdl/"
    camera = ONVIFCamera(host, port, user, password, wsdl, no_cache=True)
    try:
        await camera.update_xaddrs()
        manager = await camera.create_pullpoint_manager(
            dt.timedelta(minutes=10), lambda: print("subscription_lost", flush=True))
        service = manager.get_service()
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen[-2:] != ["true", "false"]:
            pulled = await service.PullMessages(
                {"MessageLimit": 100, "Timeout": dt.timedelta(seconds=5)})
            for message in pulled.NotificationMessage:
                state = message.Message._value_1
                topic = message.Topic._value_1
                value = state.Data.SimpleItem[0].Value
                print("event", topic, value, state.PropertyOperation, flush=True)
                if topic == "tns1:VideoSource/MotionAlarm" and (not seen or seen[-1] != value):
                    seen.append(value)
        await manager.shutdown()
    finally:
        await camera.close()


if __name__ == "__main__":
    host, port, user, password = sys.argv[1:5]
    asyncio.run(follow(host, int(port), user, password))
