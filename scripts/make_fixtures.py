#!/usr/bin/env python3
"""Makes the fixture calls in fixtures/ from text, with espeak-ng and sox.

Each fixture is what Twilio would send on a Media Stream for one call (contract: JSON lines of
`{"t_ms": …, "msg": {…}}` after a header): `connected`, `start`, a 20 ms μ-law `media` frame every
20 ms (digital silence between utterances), `dtmf` where a key is pressed, and `stop`.

Usage: scripts/make_fixtures.py [OUT_DIR]   (needs: apt-get install espeak-ng sox)
The output depends only on the texts below and the espeak-ng/sox versions (espeak-ng 1.51,
sox 14.4.2 on Debian 12 made the committed files).
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

FRAME = 160  # bytes of μ-law per 20 ms at 8 kHz
SILENCE = b"\xff"

# A call is a timeline: ("quiet", ms) | ("say", text) | ("dtmf", digit).
CALLS = {
    "greeting-and-answer": (
        "The AI greets, the caller asks one thing, the AI answers.",
        [("quiet", 2500), ("say", "Hi, I would like to confirm my appointment for tomorrow morning."), ("quiet", 5500)],
    ),
    "several-turns": (
        "Three caller turns, each answered.",
        [
            ("quiet", 2500),
            ("say", "Hello, is this the dental office?"),
            ("quiet", 4500),
            ("say", "I need to move my cleaning to next week."),
            ("quiet", 5000),
            ("say", "Thursday afternoon works for me. Thank you."),
            ("quiet", 5000),
        ],
    ),
    "barge-in": (
        "The caller talks over the AI's answer about one second into it.",
        [
            ("quiet", 2500),
            ("say", "I would like to know your opening hours on Saturday and Sunday please."),
            ("quiet", 1700),
            ("say", "Sorry, wait, one more thing."),
            ("quiet", 4000),
        ],
    ),
    "dtmf": (
        "The caller speaks, then types an account number on the keypad.",
        [
            ("quiet", 2500),
            ("say", "I will enter my account number now."),
            ("quiet", 1000),
            ("dtmf", "4"),
            ("quiet", 300),
            ("dtmf", "2"),
            ("quiet", 300),
            ("dtmf", "7"),
            ("quiet", 300),
            ("dtmf", "#"),
            ("quiet", 3500),
        ],
    ),
}


def speak(text: str) -> bytes:
    """Raw μ-law 8 kHz mono for `text`."""
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "say.wav")
        raw = os.path.join(d, "say.ul")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", wav, text], check=True)
        subprocess.run(["sox", wav, "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", raw], check=True)
        with open(raw, "rb") as f:
            return f.read()


def build(timeline):
    audio = bytearray()
    dtmf_at = []  # (byte offset, digit)
    for kind, value in timeline:
        if kind == "quiet":
            audio += SILENCE * (8 * value)
        elif kind == "say":
            audio += speak(value)
        elif kind == "dtmf":
            dtmf_at.append((len(audio), value))
    audio += SILENCE * (-len(audio) % FRAME)
    return bytes(audio), dtmf_at


def lines(name, description, audio, dtmf_at):
    sid = "MZ" + name.encode().hex().ljust(32, "0")[:32]
    call = "CA" + "0" * 16 + format(len(name), "016x")
    yield {"fixture": 1, "provider": "twilio", "description": description}
    seq = 1
    yield {"t_ms": 0, "msg": {"event": "connected", "protocol": "Call", "version": "1.0.0"}}
    yield {"t_ms": 0, "msg": {"event": "start", "sequenceNumber": str(seq), "streamSid": sid, "start": {
        "accountSid": "AC" + "0" * 32, "streamSid": sid, "callSid": call, "tracks": ["inbound"],
        "customParameters": {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}}
    pending = list(dtmf_at)
    for i in range(len(audio) // FRAME):
        t = i * 20
        while pending and pending[0][0] <= i * FRAME:
            seq += 1
            yield {"t_ms": t, "msg": {"event": "dtmf", "sequenceNumber": str(seq), "streamSid": sid,
                                      "dtmf": {"track": "inbound_track", "digit": pending.pop(0)[1]}}}
        seq += 1
        payload = base64.b64encode(audio[i * FRAME:(i + 1) * FRAME]).decode()
        yield {"t_ms": t, "msg": {"event": "media", "sequenceNumber": str(seq), "streamSid": sid,
                                  "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(t), "payload": payload}}}
    seq += 1
    yield {"t_ms": len(audio) // FRAME * 20, "msg": {"event": "stop", "sequenceNumber": str(seq), "streamSid": sid,
                                                      "stop": {"accountSid": "AC" + "0" * 32, "callSid": call}}}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
    os.makedirs(out, exist_ok=True)
    for name, (description, timeline) in CALLS.items():
        audio, dtmf_at = build(timeline)
        path = os.path.join(out, name + ".jsonl")
        with open(path, "w") as f:
            for line in lines(name, description, audio, dtmf_at):
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
        print(f"{path}: {len(audio) / 8000:.1f} s")


if __name__ == "__main__":
    main()
