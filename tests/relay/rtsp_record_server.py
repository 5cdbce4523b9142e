#!/usr/bin/python3
"""An RTSP server that takes a published stream (ANNOUNCE and RECORD), on
gst-rtsp-server: the relay of streamcam's publish tests.

    rtsp_record_server.py PORT PATH [USER PASSWORD] [--tls CERT KEY]

With USER and PASSWORD it asks for them by Digest; with --tls it speaks
RTSPS with the certificate and key of those PEM files. It decodes what it is
sent and prints one line per picture, "frame WIDTHxHEIGHT PTS_NS", then
"ready" is printed once it listens.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def on_frame(pad, info):
    caps = pad.get_current_caps().get_structure(0)
    buf = info.get_buffer()
    print(f"frame {caps.get_value('width')}x{caps.get_value('height')} {buf.pts}", flush=True)
    return Gst.PadProbeReturn.OK


def on_media(factory, media):
    sink = media.get_element().get_by_name("out")
    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_frame)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("path")
    parser.add_argument("credentials", nargs="*", metavar="USER PASSWORD")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    Gst.init(None)
    port, path = args.port, args.path
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_launch(
        "( rtph264depay name=depay0 ! h264parse ! avdec_h264 output-corrupt=false ! fakesink name=out sync=false )"
    )
    factory.connect("media-configure", on_media)
    publisher = GstRtspServer.RTSPToken()
    publisher.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "publisher")
    auth = GstRtspServer.RTSPAuth()
    if len(args.credentials) == 2:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(args.credentials[0], args.credentials[1], publisher)
    else:
        auth.set_default_token(publisher)
    if args.tls:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(*args.tls))
    server.set_auth(auth)
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            "publisher, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
