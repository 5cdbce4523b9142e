"""Adds a camera the way Home Assistant's ONVIF integration does, with
its own client library (onvif-zeep-async), and prints what it learnt,
one fact a line ("key value..."): the calls of the integration's set-up in its order
(update_xaddrs, capabilities, the clock, device information, network
interfaces, media capabilities, profiles, stream and snapshot URIs).

    python ha_setup.py HOST PORT USER PASSWORD

A SOAP fault ends the set-up; it is reported with whether Home Assistant
would take it for wrong credentials (onvif.util.is_auth_error).
"""

import asyncio
import os
import sys

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
    except Fault as fault:
        say("fault", "auth" if is_auth_error(fault) else "other", fault)
    finally:
        await camera.close()


if __name__ == "__main__":
    host, port, user, password = sys.argv[1:5]
    asyncio.run(setup(host, int(port), user, password))
