#!/usr/bin/env python3
"""Reads the test pattern's timecode (the bottom row of 48 squares: Unix
milliseconds at capture) from every frame ffmpeg decodes from an RTSP URL
and prints, as one JSON line, how old each frame was when decoded:
capture-to-decoded latency of an RTSP viewer (ffmpeg with its low-delay
flags), p50/p95.

    bench/rtsp_timecode.py URL SECONDS
"""
import json
import subprocess
import sys
import time

WIDTH, HEIGHT, BITS = 1280, 720, 48
CELL = (WIDTH // BITS) & ~1


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    # The bottom row only, as grey levels.
    crop = f"crop={WIDTH}:{CELL}:0:{(HEIGHT - CELL) & ~1},format=gray"
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-fflags", "nobuffer", "-flags", "low_delay",
         "-rtsp_transport", "udp", "-i", url, "-vf", crop, "-f", "rawvideo", "-"],
        stdout=subprocess.PIPE)
    size = WIDTH * CELL
    ages = []
    warm_until = time.time() + 4
    stop_at = warm_until + seconds
    while time.time() < stop_at:
        frame = ffmpeg.stdout.read(size)
        if len(frame) < size:
            break
        now = time.time() * 1000
        row = frame[(CELL // 2) * WIDTH:(CELL // 2 + 1) * WIDTH]
        ms = 0
        for bit in range(BITS):
            ms = ms * 2 + (1 if row[bit * CELL + CELL // 2] > 128 else 0)
        if time.time() > warm_until and -100 < now - ms < 60000:
            ages.append(now - ms)
    ffmpeg.kill()
    ages.sort()
    pick = lambda q: round(ages[min(len(ages) - 1, int(q * len(ages)))]) if ages else None
    print(json.dumps({"transport": "rtsp", "frames": len(ages), "p50": pick(0.5), "p95": pick(0.95)}))


if __name__ == "__main__":
    main()
