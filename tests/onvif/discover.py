"""Finds ONVIF cameras as Home Assistant's ONVIF integration does (its
config flow's WS-Discovery, with python-wsdiscovery), and hears their
Hello and Bye. Reads commands on stdin, prints a line per event:

  listening                     ready (printed once, first)
  hello EPR XADDRS              a camera said Hello
  found EPR XADDRS SCOPES...    a camera answered the probe ("probe")
  probed                        the probe's wait (3 s, as HA's) is over
  bye EPR                       a camera said Bye

Commands: "probe" probes for the Streaming scope, as HA does; end of
input ends it (after a second more of listening).
"""

import sys
import time

from wsdiscovery import Scope
from wsdiscovery.discovery import ThreadedWSDiscovery

STREAMING = "onvif://www.onvif.org/Profile/Streaming"


def say(*words):
    print(*words, flush=True)


def main():
    wsd = ThreadedWSDiscovery(ttl=4)
    wsd.setRemoteServiceHelloCallback(
        lambda s: say("hello", s.getEPR(), " ".join(s.getXAddrs()))
    )
    wsd.setRemoteServiceByeCallback(lambda epr: say("bye", epr))
    wsd.start()
    try:
        # The library joins the group on each address from a thread of its
        # own: wait until it has (at most 5 s).
        deadline = time.monotonic() + 5
        while not wsd._networkingThread_v4._multiOutUniInSockets and time.monotonic() < deadline:
            time.sleep(0.05)
        say("listening")
        for line in sys.stdin:
            if line.strip() == "probe":
                wsd.clearRemoteServices()
                for s in wsd.searchServices(scopes=[Scope(STREAMING)], timeout=3):
                    scopes = " ".join(sc.getQuotedValue() for sc in s.getScopes())
                    say("found", s.getEPR(), " ".join(s.getXAddrs()), scopes)
                say("probed")
        time.sleep(1)
    finally:
        wsd.stop()


if __name__ == "__main__":
    main()
