"""What it costs to put pixels on the wire, next to what inference costs, in one table.

    .venv/bin/python bench/encode.py [--model-dir models/gestalt-tsrn-synth-fast]

Rows, each as microseconds per crop, bytes per crop and share of one crop's inference time (raw ORT,
batch 16, measured in the same run): PNG encoding of a 32x128 SR crop at zlib levels 0-9
(`TEXTSR_PNG_COMPRESSION`, default 1) and of a tile-mode 128x512 output; the KServe v2 JSON output of
a batch of 16 (`tolist` + stdlib `json` vs `orjson` with numpy support) and its input parsing; the
v2 binary tensor output (no encoding: the raw format). Writes bench/results/encode-<device>.md|json.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import median, open_model, table, time_call, write_result  # noqa: E402

BATCH = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "gestalt-tsrn-synth-fast")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    from convert.verify import render_text_crops
    from service.images import encode_png, to_uint8

    eng = open_model(args.model_dir)
    lr = render_text_crops(BATCH, (16, 64), seed=3)
    sr = eng(lr)
    infer_us = 1e6 * median(time_call(lambda: eng(lr), max(3, args.repeat // 5))) / BATCH
    crop = to_uint8(sr[0])  # HWC uint8, 32x128
    line = np.concatenate([np.concatenate([to_uint8(s) for s in sr[r * 4 : r * 4 + 4]], axis=1) for r in range(4)], axis=0)  # 128x512

    rows: list[tuple[str, float, int]] = []

    def row(name: str, fn, per: int = 1) -> None:
        us = 1e6 * median(time_call(fn, args.repeat)) / per
        rows.append((name, us, len(fn()) // per))

    for level in (0, 1, 3, 6, 9):
        row(f"PNG level {level}{' (default)' if level == 1 else ''}, 32x128 crop", lambda lv=level: encode_png(crop, lv))
    row(f"PNG level 1, tile-mode output {line.shape[0]}x{line.shape[1]} (16 crops' worth)", lambda: encode_png(line, 1), BATCH)
    row("PNG level 1 + base64 (the /v1 JSON body)", lambda: base64.b64encode(encode_png(crop, 1)))
    row(f"v2 binary tensor output, batch {BATCH} (raw FP32)", lambda: sr.tobytes(), BATCH)
    row(f"v2 JSON output, batch {BATCH}: tolist + json", lambda: json.dumps({"data": sr.reshape(-1).tolist()}, separators=(",", ":")).encode(), BATCH)
    body = json.dumps({"data": lr.reshape(-1).tolist()}).encode()
    rows.append((f"v2 JSON input parse, batch {BATCH}: json + asarray", 1e6 * median(time_call(lambda: np.asarray(json.loads(body)["data"], np.float32), args.repeat)) / BATCH, len(body) // BATCH))
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None:
        row(f"v2 JSON output, batch {BATCH}: orjson (numpy)", lambda: orjson.dumps({"data": sr.reshape(-1)}, option=orjson.OPT_SERIALIZE_NUMPY), BATCH)
        rows.append((f"v2 JSON input parse, batch {BATCH}: orjson + asarray", 1e6 * median(time_call(lambda: np.asarray(orjson.loads(body)["data"], np.float32), args.repeat)) / BATCH, len(body) // BATCH))

    data = {"inference_us_per_crop": infer_us, "rows": [{"what": n, "us_per_crop": us, "bytes_per_crop": b, "share_of_inference": us / infer_us} for n, us, b in rows]}
    md = table(
        ["what", "us per crop", "bytes per crop", "share of inference"],
        [[n, f"{us:.0f}", b, f"{100 * us / infer_us:.2f}%"] for n, us, b in rows],
    )
    md += f"\n\nInference (raw ORT, batch {BATCH}, {args.model_dir.name}): {infer_us:.0f} us per crop."
    print(md)
    print("written:", write_result("encode", md, data))


if __name__ == "__main__":
    main()
