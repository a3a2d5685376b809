#!/usr/bin/env python3
"""Where each token's time goes between the fake LLM and the client, from a loopback capture.

    python3 scripts/stream-legs.py CAPTURE.pcap LLM_PORT EMULATOR_PORT

Reads a pcap written by `tcpdump -i lo -w` during `scripts/stream-ttft.sh` (STREAM_TTFT_CAPTURE
does both) and finds, for every token `tN` of every run, the first segment carrying it on each
hop: the fake LLM's (`"content":"tN "`, from LLM_PORT), the function's to the emulator
(`"output_partial":"tN "`, to EMULATOR_PORT) and the emulator's to the client (the same, from
EMULATOR_PORT). Prints the medians and p95 of the function's leg (LLM segment -> function's
segment: our code and our socket) and of the emulator's leg (function's segment -> emulator's
segment to the client), for the first token and for the later ones. The first run in the capture
is left out (stream-ttft.sh's warm-up, or the first measured run when tcpdump attached after the
warm-up began), and so is a last run cut short by the capture's end: a few fewer runs than
stream-ttft.sh's. Kernel timestamps, one clock: no stamping inside the processes measured.
"""
import re
import struct
import sys

TOKEN_LLM = re.compile(rb'"content":"t(\d+) "')
TOKEN_OUT = re.compile(rb'"output_partial":"t(\d+) "')


def segments(path):
    """(time, src port, dst port, payload) of each IPv4 TCP segment with a payload."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        endian, scale = "<", 1e-6
    elif magic == 0xA1B23C4D:
        endian, scale = "<", 1e-9
    else:
        sys.exit(f"{path}: not a little-endian pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link_len is None:
        sys.exit(f"{path}: link type {linktype} is not Ethernet or Linux cooked")
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 0x0F) * 4:]
        if len(tcp) < 20:
            continue
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            src, dst = struct.unpack(">HH", tcp[:4])
            yield sec + frac * scale, src, dst, payload


def runs(path, llm_port, emulator_port):
    """Per run, {token: [llm time, function time, emulator time]} (first sighting on each hop)."""
    out, current = [], None
    for t, src, dst, payload in segments(path):
        if src == llm_port:
            for m in TOKEN_LLM.finditer(payload):
                n = int(m.group(1))
                if n == 0:
                    current = {}
                    out.append(current)
                if current is not None:
                    current.setdefault(n, [t, None, None])
        elif current is not None and (dst == emulator_port or src == emulator_port):
            hop = 1 if dst == emulator_port else 2
            for m in TOKEN_OUT.finditer(payload):
                row = current.get(int(m.group(1)))
                if row is not None and row[hop] is None:
                    row[hop] = t
    return out


def report(name, values):
    if not values:
        print(f"{name}: no samples")
        return
    values = sorted(values)

    def at(p):  # the rank stream_overhead's report() takes, so both lines mean the same
        return values[int((len(values) - 1) * p + 0.5)]

    print(f"{name}: median {at(0.5) * 1e3:.3f} ms, p95 {at(0.95) * 1e3:.3f} ms ({len(values)} samples)")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, llm_port, emulator_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    measured = runs(path, llm_port, emulator_port)[1:]
    # tcpdump stops before it has read the kernel's last packets: the last run may be cut short.
    if measured and any(None in row for row in measured[-1].values()) or len(measured) > 1 and len(measured[-1]) < len(measured[0]):
        print("(the last run is cut short by the capture's end: left out)")
        measured.pop()
    if not measured:
        sys.exit("no run found in the capture (wrong ports?)")
    legs = {k: [] for k in ("f1", "e1", "fn", "en")}
    for run in measured:
        if sorted(run) != list(range(len(run))):
            sys.exit(f"a run's tokens are not t0..t{len(run) - 1}: {sorted(run)}")
        for n, (llm, fn, emu) in run.items():
            if fn is None or emu is None:
                sys.exit(f"token t{n} of a run never reached the {'function' if fn is None else 'client'}")
            legs["f1" if n == 0 else "fn"].append(fn - llm)
            legs["e1" if n == 0 else "en"].append(emu - fn)
    print(f"{len(measured)} runs, from the capture:")
    report("first token, function's leg (LLM segment -> function's segment)", legs["f1"])
    report("first token, emulator's leg (function's segment -> segment to the client)", legs["e1"])
    report("later tokens, function's leg", legs["fn"])
    report("later tokens, emulator's leg", legs["en"])


if __name__ == "__main__":
    main()
