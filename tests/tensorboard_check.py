#!/usr/bin/env python3
"""Load a generated project's run folder with TensorBoard's own reader and print what it found.

    python3 tests/tensorboard_check.py saved/<name>/<timestamp>

Prints one JSON object on stdout: {tag: number of points}, for every scalar tag and every text
tag (such as "config"), e.g. {"config": 1, "train/loss": 2, "train_step/loss": 18, ...}.
Every events.out.tfevents.* file of the folder is read, in name order, as TensorBoard does.
TensorBoard itself stops at a damaged record and silently keeps what came before, so each file is
first read record by record with TensorBoard's record reader, which checks the framing and both
CRCs: a damaged or truncated record is an error here (exit 1) naming the file.
Exits 2 when the tensorboard package is missing (pip install tensorboard), 1 on any other problem.
"""

import json
import os
import sys


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} RUN_DIR", file=sys.stderr)
        return 1
    run_dir = argv[1]
    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
    except ImportError as e:
        print(
            f"tensorboard is not importable ({e}); install it with `pip install tensorboard` "
            "in the Python that runs this script",
            file=sys.stderr,
        )
        return 2
    if not os.path.isdir(run_dir):
        print(f"{run_dir} is not a folder; pass a run folder such as saved/<name>/<timestamp>", file=sys.stderr)
        return 1
    files = sorted(f for f in os.listdir(run_dir) if "tfevents" in f)
    if not files:
        print(f"{run_dir} holds no events.out.tfevents.* file; was trainer.tensorboard false?", file=sys.stderr)
        return 1
    for name in files:
        reader = pywrap_tensorflow.PyRecordReader_New(os.path.join(run_dir, name))
        records = 0
        try:
            while True:
                reader.GetNext()
                records += 1
        except errors.OutOfRangeError:
            pass
        except errors.DataLossError as e:
            print(f"record {records} of {name} is damaged: {e.message}", file=sys.stderr)
            return 1
    # 0: keep every point (the default samples scalars down to 10,000 and tensors to 10).
    accumulator = event_accumulator.EventAccumulator(
        run_dir,
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
    )
    try:
        accumulator.Reload()
    except Exception as e:  # a file that cannot be opened or parsed
        print(f"TensorBoard could not read {run_dir}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    points = {tag: len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"]}
    for tag in accumulator.Tags()["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        points[tag] = len(accumulator.Tensors(tag))
    print(json.dumps(points, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
