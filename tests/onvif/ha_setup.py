"""Adds a camera the way Home Assistant's ONVIF integration does, with
its own client library (onvif-zeep-async), and prints what it learnt,
one fact a line ("key value..."): the calls of the integration's set-up in its order
(update_xaddrs, capabilities, the clock, device information, network
interfaces, media capabilities, profiles, stream and snapshot URIs), then
its event subscription (a PullPoint: created, synchronized, pulled, renewed
and ended by the library's PullPointManager, as the integration's
EventManager drives it).

    python ha_setup.py HOST PORT USER PASSWORD

A SOAP fault ends the set-up; it is reported with whether Home Assistant
would take it for wrong credentials (onvif.util.is_auth_error).
"""

import asyncio
import datetime as dt
import os
import sys
import time

import onvif
from onvif import ONVIFCamera
from onvif.util import is_auth_error
from zeep.exceptions import Fault


async def setup(host, port, user, password):
    wsdl = f"{os.path.dirname(onvif.__file__)}/wsdl/"
    camera = ONVIFCamera(host, port, user, password, wsdl, no_cache=True)
    def say(key, *values):
        print(key, *values, flush=True)

    try:
        await camera.update_xaddrs()
        device = await camera.create_devicemgmt_service()
        capabilities = await device.GetCapabilities({"Category": "All"})
        say("media_xaddr", capabilities.Media.XAddr)
        say("events", capabilities.Events is not None)
        clock = await device.GetSystemDateAndTime()
        utc = clock.UTCDateTime
        say("clock", clock.DateTimeType, utc.Date.Year, utc.Date.Month, utc.Date.Day,
            utc.Time.Hour, utc.Time.Minute, utc.Time.Second)
        info = await device.GetDeviceInformation()
        say("manufacturer", info.Manufacturer)
        say("firmware", info.FirmwareVersion)
        say("serial", info.SerialNumber)
        interfaces = await device.GetNetworkInterfaces()
        for interface in interfaces:
            if interface.Enabled:
                say("mac", interface.Info.HwAddress)
        media = await camera.create_media_service()
        media_capabilities = await media.GetServiceCapabilities()
        say("snapshot", bool(media_capabilities.SnapshotUri))
        profiles = await media.GetProfiles()
        for profile in profiles:
            encoder = profile.VideoEncoderConfiguration
            request = media.create_type("GetStreamUri")
            request.ProfileToken = profile.token
            request.StreamSetup = {
                "Stream": "RTP-Unicast",
                "Transport": {"Protocol": "RTSP"},
            }
            uri = await media.GetStreamUri(request)
            say("profile", profile.token, encoder.Encoding,
                f"{encoder.Resolution.Width}x{encoder.Resolution.Height}",
                profile.VideoSourceConfiguration.SourceToken, uri.Uri)
        snapshot = await media.GetSnapshotUri({"ProfileToken": profiles[0].token})
        say("snapshot_uri", snapshot.Uri)
        await events(camera, say)
    except Fault as fault:
        say("fault", "auth" if is_auth_error(fault) else "other", fault)
    finally:
        await camera.close()


async def events(camera, say):
    """The integration's PullPoint: a subscription of 10 minutes, a
    synchronization point, pulls of up to 100 messages (the first at once,
    the next one waiting as long as the integration's 60 s poll would,
    here 2 s), a renewal, and Unsubscribe."""
    interval = dt.timedelta(minutes=10)
    manager = await camera.create_pullpoint_manager(interval, lambda: say("subscription_lost"))
    await manager.set_synchronization_point()
    service = manager.get_service()
    pulled = await service.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(seconds=60)})
    for message in pulled.NotificationMessage:
        state = message.Message._value_1
        say("event", message.Topic._value_1, state.Data.SimpleItem[0].Value,
            state.PropertyOperation, state.Source.SimpleItem[0].Value)
    started = time.monotonic()
    pulled = await service.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(seconds=2)})
    say("quiet_pull", len(pulled.NotificationMessage), f"{time.monotonic() - started:.1f}")
    subscription = await camera.create_subscription_service("PullPointSubscription")
    renewed = await subscription.Renew(camera.get_next_termination_time(interval))
    say("renewed", (renewed.TerminationTime - renewed.CurrentTime).total_seconds())
    await manager.shutdown()
    try:
        await service.PullMessages({"MessageLimit": 1, "Timeout": dt.timedelta(seconds=1)})
        say("after_unsubscribe", "answered")
    except Fault as fault:
        say("after_unsubscribe", "fault", fault)


if __name__ == "__main__":
    host, port, user, password = sys.argv[1:5]
    asyncio.run(setup(host, int(port), user, password))
