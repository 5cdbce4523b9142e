"""Checks the camera's ONVIF answers against ONVIF's own schemas: those
that Home Assistant's client library (onvif-zeep-async) ships, taken from
its WSDLs at run time (the device, media and event services' types, and
the ONVIF, WS-BaseNotification and WS-Addressing schemas they import),
with libxml2's validator (lxml, which zeep brings; offline: a schema that
is not shipped cannot be fetched).

    python schema_check.py HTTP_URL

Sends each operation the camera answers, without a login (the camera has
no users), and prints one line an answer: "valid SERVICE OPERATION" or
"invalid SERVICE OPERATION: why". An answer that is a fault is invalid.
"""

import copy
import os
import re
import sys
import tempfile
import urllib.request

from lxml import etree

import onvif

XS = "http://www.w3.org/2001/XMLSchema"
ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TEV = "http://www.onvif.org/ver10/events/wsdl"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
TT = "http://www.onvif.org/ver10/schema"

WSDLS = ["devicemgmt.wsdl", "media.wsdl", "events.wsdl"]

PROFILE = "<o:ProfileToken>main</o:ProfileToken>"
ENCODER = "<o:ConfigurationToken>main</o:ConfigurationToken>"
SOURCE = "<o:ConfigurationToken>source</o:ConfigurationToken>"
STREAM = (f"<o:StreamSetup><s:Stream xmlns:s=\"{TT}\">RTP-Unicast</s:Stream>"
          f"<s:Transport xmlns:s=\"{TT}\"><s:Protocol>RTSP</s:Protocol></s:Transport></o:StreamSetup>")

# (path, namespace, operation, arguments)
OPERATIONS = [
    ("/onvif/device_service", TDS, op, args) for op, args in [
        ("GetSystemDateAndTime", ""),
        ("GetCapabilities", "<o:Category>All</o:Category>"),
        ("GetServices", "<o:IncludeCapability>true</o:IncludeCapability>"),
        ("GetServiceCapabilities", ""),
        ("GetDeviceInformation", ""),
        ("GetNetworkInterfaces", ""),
        ("GetScopes", ""),
        ("GetHostname", ""),
        ("GetNTP", ""),
        ("GetDNS", ""),
        ("GetNetworkProtocols", ""),
        ("GetDiscoveryMode", ""),
        ("GetNetworkDefaultGateway", ""),
        ("GetEndpointReference", ""),
        ("GetWsdlUrl", ""),
    ]
] + [
    ("/onvif/media_service", TRT, op, args) for op, args in [
        ("GetServiceCapabilities", ""),
        ("GetProfiles", ""),
        ("GetProfile", PROFILE),
        ("GetVideoSources", ""),
        ("GetVideoSourceConfigurations", ""),
        ("GetVideoSourceConfiguration", SOURCE),
        ("GetCompatibleVideoSourceConfigurations", PROFILE),
        ("GetVideoEncoderConfigurations", ""),
        ("GetVideoEncoderConfiguration", ENCODER),
        ("GetCompatibleVideoEncoderConfigurations", PROFILE),
        ("GetVideoEncoderConfigurationOptions", ENCODER + PROFILE),
        ("GetGuaranteedNumberOfVideoEncoderInstances", SOURCE),
        ("GetStreamUri", STREAM + PROFILE),
        ("GetSnapshotUri", PROFILE),
    ]
] + [
    ("/onvif/events_service", TEV, op, args) for op, args in [
        ("GetServiceCapabilities", ""),
        ("GetEventProperties", ""),
        ("CreatePullPointSubscription",
         "<o:InitialTerminationTime>PT60S</o:InitialTerminationTime>"),
    ]
]

# On the subscription just created, in this order.
SUBSCRIPTION = [
    (TEV, "SetSynchronizationPoint", ""),
    (TEV, "PullMessages", "<o:Timeout>PT1S</o:Timeout><o:MessageLimit>10</o:MessageLimit>"),
    (WSNT, "Renew", "<o:TerminationTime>PT120S</o:TerminationTime>"),
    (WSNT, "Unsubscribe", ""),
]


def schema():
    """One schema for the three services' namespaces: each WSDL's types
    written out as a schema beside the library's own files (which they
    import by relative paths), and a schema that imports them all."""
    shipped = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
    work = tempfile.mkdtemp(prefix="onvif-schema-")
    for name in os.listdir(shipped):
        os.symlink(os.path.join(shipped, name), os.path.join(work, name))
    imports = []
    for wsdl in WSDLS:
        tree = etree.parse(os.path.join(shipped, wsdl))
        for i, types in enumerate(tree.iter(f"{{{XS}}}schema")):
            # The WSDL's namespace declarations go with it: the types'
            # QNames (type="trt:...") use them.
            standalone = etree.Element(types.tag, attrib=dict(types.attrib), nsmap=types.nsmap)
            standalone.extend(copy.deepcopy(child) for child in types)
            path = os.path.join(work, f"{wsdl}.{i}.xsd")
            etree.ElementTree(standalone).write(path)
            imports.append((types.get("targetNamespace"), path))
    top = "".join(f'<xs:import namespace="{ns}" schemaLocation="{path}"/>'
                  for ns, path in imports)
    wrapper = os.path.join(work, "all.xsd")
    with open(wrapper, "w") as f:
        f.write(f'<xs:schema xmlns:xs="{XS}">{top}</xs:schema>')
    parser = etree.XMLParser(no_network=True)
    return etree.XMLSchema(etree.parse(wrapper, parser))


def call(url, ns, op, args):
    body = (f'<?xml version="1.0" encoding="UTF-8"?><e:Envelope xmlns:e="{ENV}"><e:Body>'
            f'<o:{op} xmlns:o="{ns}">{args}</o:{op}></e:Body></e:Envelope>')
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/soap+xml"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read()
    except urllib.error.HTTPError as error:
        return error.read()


def check(validator, label, xml):
    """Prints whether the answer's body element is valid; returns it."""
    document = etree.fromstring(xml)
    body = document.find(f"{{{ENV}}}Body")
    answer = body[0] if body is not None and len(body) else None
    if answer is None or answer.tag == f"{{{ENV}}}Fault":
        print(f"invalid {label}: not an answer: {xml[:400]!r}", flush=True)
        return None
    if validator.validate(answer):
        print(f"valid {label}", flush=True)
    else:
        errors = "; ".join(str(e.message) for e in validator.error_log)
        print(f"invalid {label}: {errors}", flush=True)
    return answer


def main(base):
    validator = schema()
    address = None
    for path, ns, op, args in OPERATIONS:
        answer = check(validator, f"{path} {op}", call(base + path, ns, op, args))
        if op == "CreatePullPointSubscription" and answer is not None:
            address = answer.findtext(".//{http://www.w3.org/2005/08/addressing}Address")
    if not address or not re.match(r"^https?://", address):
        print(f"invalid subscription address: {address!r}", flush=True)
        return
    for ns, op, args in SUBSCRIPTION:
        check(validator, f"subscription {op}", call(address, ns, op, args))


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
