#!/usr/bin/python3
"""Peer server for bench/run: Debian's gst-rtsp-server streaming an Annex-B
H.264 file (no re-encoding), one shared media for all clients, like streamcam.

    gst_rtsp_server.py FILE PORT
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    path, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # identity sync=true paces the file at its frame rate (from the SPS).
    factory.set_launch(
        f'( filesrc location="{path}" ! h264parse ! identity sync=true '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/stream", factory)
    server.attach(None)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
