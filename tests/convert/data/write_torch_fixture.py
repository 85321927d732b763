"""Writes torch_fixture.pth (and _legacy.pth: torch's format before 1.6) with real torch, and
torch_fixture.npz with the arrays they must read as.

    python tests/convert/data/write_torch_fixture.py   # needs torch (not a project dependency)

Both were written by torch 2.13.0 (CPU build) with numpy 2.4.6. Each is a Detectron2-style
training checkpoint ``{"model": state_dict, "cases": {...}, "optimizer": ..., "iteration": 7}``
whose "cases" are the layouts a reader must get right: views, shared storages, every dtype.
"""

import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  torch.manual_seed(0)
  net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                            torch.nn.Linear(2, 3))
  optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
  net(torch.randn(2, 3, 1, 1)).sum().backward()
  optimizer.step()
  base = torch.arange(12, dtype=torch.float32)
  cases = {
      "float32": torch.randn(2, 3),
      "transposed": torch.randn(3, 4).t(),
      "shared_a": base[2:5],
      "shared_b": base[6:12].view(2, 3),
      "every_third": base[::3],
      "expanded": torch.arange(3.0).expand(2, 3),
      "channels_last": torch.randn(1, 3, 2, 2).to(memory_format=torch.channels_last),
      "float16": torch.randn(5).half(),
      "bfloat16": torch.randn(5).bfloat16(),
      "float64": torch.randn(3).double(),
      "int64": torch.arange(-3, 3),
      "int32": torch.arange(4, dtype=torch.int32),
      "uint8": torch.arange(250, 256, dtype=torch.uint8),
      "bool": torch.tensor([True, False, True]),
      "empty": torch.zeros(0, 3),
      "scalar": torch.tensor(2.5),
      "parameter": torch.nn.Parameter(torch.randn(2)),
  }
  checkpoint = {"model": net.state_dict(), "cases": cases, "optimizer": optimizer.state_dict(),
                "iteration": 7}
  torch.save(checkpoint, os.path.join(HERE, "torch_fixture.pth"))
  torch.save(checkpoint, os.path.join(HERE, "torch_fixture_legacy.pth"), _use_new_zipfile_serialization=False)
  expected = {f"model/{k}": v for k, v in net.state_dict().items()}
  expected.update({f"cases/{k}": v for k, v in cases.items()})
  np.savez(os.path.join(HERE, "torch_fixture.npz"),
           **{k: v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
              for k, v in expected.items()})


if __name__ == "__main__":
  main()
