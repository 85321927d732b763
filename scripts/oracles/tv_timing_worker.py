"""torchvision's ``model([image])``, timed on request: the torchvision side of ``scripts/benchmark.py
natural``, run in the private torch venv (see tv_natural_oracle.py; torch is not a project dependency).

    <venv>/bin/python scripts/oracles/tv_timing_worker.py CHECKPOINT

Builds tv_natural_oracle's model (maskrcnn_resnet50_fpn, 5 classes, frozen BN, the default transform
800 / 1333) from CHECKPOINT, prints ``ready``, then for each image path read from stdin runs
``model([image])`` once (2 threads, float32, no grad) and prints its wall and process CPU seconds.
"""

import sys
import time

import numpy as np
import torch
from PIL import Image

import tv_natural_oracle


def main(checkpoint: str) -> int:
  torch.set_num_threads(tv_natural_oracle.THREADS)
  model = tv_natural_oracle.build_model(checkpoint)
  print("ready", flush=True)
  for line in sys.stdin:
    x = tv_natural_oracle.tv_oracle.to_tensor(np.asarray(Image.open(line.strip()).convert("RGB")))
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
      model([x])
    print(f"{time.perf_counter() - wall} {time.process_time() - cpu}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
