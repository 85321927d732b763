"""Reference outputs of torchvision's maskrcnn_resnet50_fpn_v2, for the conversion's parity test (not part
of the package: torch is never a dependency of mrcnn_jax).

    <torch CPU venv>/bin/python scripts/oracles/tv_v2_oracle.py ../tv_oracle/v2 [--seed N] [--shared ../shared/oracles]

Runs in the private venv of ``../shared/oracles/torchvision_r50_fpn/tv_oracle.py`` (CPU torch and
torchvision 0.28 installed with --no-deps; read its docstring), whose CUDA-symbol shim and photographs
it imports. Builds ``maskrcnn_resnet50_fpn_v2(weights=None, num_classes=5, min_size=max_size=512)`` in
eval mode, draws every weight from one seeded generator and calibrates the random network on the three
512x512 photographs so that it behaves numerically like a trained one: every BatchNorm's statistics are
those of its own input on the photographs (BatchNorm2d in train mode with a cumulative average, one
module at a time in data order: stage outputs O(1)); residual branches end in a small BN scale; RPN
logits spread (std 1.5), deltas small; the background logit's bias set by bisection so that images get
about 50 detections; mask logits of both signs (std 3). Deterministic on one machine.

Writes into OUTDIR, with tv_oracle.py's names (tests/convert/test_torchvision_parity.py reads either):
  tv_maskrcnn_r50_fpn_v2_random.pth  model.state_dict() saved with torch.save (a user's checkpoint)
  img0.png img1.png img2.png         the photographs (astronaut, coffee, chelsea), RGB uint8
  tv_outputs.npz                     per image i: img{i}_boxes [n,4], img{i}_labels [n] (1..4),
                                     img{i}_scores [n], img{i}_masks [n,512,512] bool (pasted, > 0.5),
                                     img{i}_mask28 [n,28,28] (the predicted class's sigmoid); image 0:
                                     fpn_0..fpn_3, fpn_pool [1,256,h,w], anchors0, rpn_proposals0 [P,4],
                                     box_logits0 [P,5] and box_deltas0 [P,20] on those proposals
  meta.json                          versions, seed, checkpoint (file, sha256, shapes), images, detections
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys

import numpy as np

SEED = 20261207                 # the default; --seed draws other weights
SIZE = 512
NUM_CLASSES = 5                 # torchvision counts the background: labels 1..4
CHECKPOINT = "tv_maskrcnn_r50_fpn_v2_random.pth"
DETECTIONS_WANTED = 50          # per image (median), by the background bias
RESIDUAL_BN_SCALE = 0.3         # the BN closing each bottleneck branch: stage outputs grow slowly
HERE = os.path.dirname(os.path.abspath(__file__))


def load_tv_oracle(shared: str):
  """The v1 oracle's module: importing it makes torchvision's compiled ops load beside a CPU torch."""
  path = os.path.join(shared, "torchvision_r50_fpn", "tv_oracle.py")
  spec = importlib.util.spec_from_file_location("tv_oracle", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def draw_weights(model, seed: int, torch) -> None:
  """Every parameter from one seeded generator, in state_dict order: convs and linears He-normal, biases
  small, BN scales around 1 (RESIDUAL_BN_SCALE on each bottleneck's bn3)."""
  bn_names = {name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
  generator = torch.Generator().manual_seed(seed)
  normal = lambda shape: torch.randn(*shape, generator=generator)
  with torch.no_grad():
    for name, tensor in model.state_dict().items():
      if not tensor.is_floating_point() or name.endswith(("running_mean", "running_var")):
        continue
      is_bn = name.rsplit(".", 1)[0] in bn_names
      if tensor.ndim > 1:
        tensor.copy_(normal(tensor.shape) * (2.0 / np.prod(tensor.shape[1:])) ** 0.5)
      elif is_bn and name.endswith(".weight"):
        scale = RESIDUAL_BN_SCALE if ".bn3." in name else 1.0
        tensor.copy_(scale * (1.0 + 0.2 * normal(tensor.shape)))
      else:
        tensor.copy_(0.1 * normal(tensor.shape))


def calibrate_bn(module, run, torch) -> None:
  """Sets the BatchNorm2d statistics inside ``module`` to those of their inputs in ``run()``: train mode,
  cumulative average, one pass (each normalises with its batch statistics, as eval will)."""
  norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  for norm in norms:
    norm.reset_running_stats()
    norm.momentum = None
    norm.train()
  with torch.no_grad():
    run()
  for norm in norms:
    norm.eval()


def standardise(layer, inputs, std: float, torch) -> None:
  """Scales ``layer``'s weight so that its output (bias excluded) has standard deviation ``std``."""
  with torch.no_grad():
    out = layer(inputs) - (layer.bias.view(-1, *[1] * (inputs.ndim - 2)) if inputs.ndim > 2 else layer.bias)
    layer.weight.mul_(std / float(out.std()))


def calibrate(model, tensors, torch) -> None:
  """Backbone and FPN BN on the photographs; RPN outputs; box-head BN on the RPN's proposals; predictor
  scales; the background bias by bisection; mask-head BN and logits on the detections."""
  images, _ = model.transform(tensors)
  calibrate_bn(model.backbone, lambda: model.backbone(images.tensors), torch)
  with torch.no_grad():
    features = model.backbone(images.tensors)
    head = model.rpn.head
    trunk = head.conv(features["0"])
    standardise(head.cls_logits, trunk, 1.5, torch)
    standardise(head.bbox_pred, trunk, 0.1, torch)
    proposals, _ = model.rpn(images, features)
  heads = model.roi_heads
  pooled = heads.box_roi_pool(features, proposals, images.image_sizes)
  calibrate_bn(heads.box_head, lambda: heads.box_head(pooled), torch)
  with torch.no_grad():
    box_features = heads.box_head(pooled)
    standardise(heads.box_predictor.cls_score, box_features, 2.0, torch)
    standardise(heads.box_predictor.bbox_pred, box_features, 0.2, torch)
  low, high = -5.0, 15.0                             # background bias: more detections <- lower
  for _ in range(12):
    bias = (low + high) / 2
    with torch.no_grad():
      heads.box_predictor.cls_score.bias[0] = bias
      counts = [len(d["boxes"]) for d in heads(features, proposals, images.image_sizes)[0]]
    low, high = (bias, high) if np.median(counts) > DETECTIONS_WANTED else (low, bias)
  with torch.no_grad():
    boxes = [d["boxes"] for d in heads(features, proposals, images.image_sizes)[0]]
  mask_pooled = heads.mask_roi_pool(features, boxes, images.image_sizes)
  calibrate_bn(heads.mask_head, lambda: heads.mask_head(mask_pooled), torch)
  with torch.no_grad():
    predictor = heads.mask_predictor
    upsampled = predictor.relu(predictor.conv5_mask(heads.mask_head(mask_pooled)))
    standardise(predictor.mask_fcn_logits, upsampled, 3.0, torch)


def outputs(model, tensors, torch) -> dict[str, np.ndarray]:
  """Detections of every image and image 0's stages (tv_oracle.py's keys)."""
  out = {}
  with torch.no_grad():
    images, _ = model.transform(tensors)
    features = model.backbone(images.tensors)
    out.update({f"fpn_{name}": f[:1].numpy() for name, f in features.items()})
    out["anchors0"] = model.rpn.anchor_generator(images, list(features.values()))[0].numpy()
    proposals, _ = model.rpn(images, features)
    heads = model.roi_heads
    box_features = heads.box_head(heads.box_roi_pool(features, proposals[:1], images.image_sizes[:1]))
    logits, deltas = heads.box_predictor(box_features)
    out.update(rpn_proposals0=proposals[0].numpy(), box_logits0=logits.numpy(), box_deltas0=deltas.numpy())
    mask28 = [d["masks"][:, 0].numpy() for d in heads(features, proposals, images.image_sizes)[0]]
    for i, det in enumerate(model(tensors)):
      out.update({f"img{i}_boxes": det["boxes"].numpy(), f"img{i}_labels": det["labels"].numpy(),
                  f"img{i}_scores": det["scores"].numpy(), f"img{i}_masks": det["masks"][:, 0].numpy() > 0.5,
                  f"img{i}_mask28": mask28[i]})
  return out


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("outdir")
  parser.add_argument("--shared", default=os.path.join(HERE, "../../../shared/oracles"),
                      help="the shared oracles folder (holds torchvision_r50_fpn/tv_oracle.py)")
  parser.add_argument("--seed", type=int, default=SEED, help="of the random weights")
  args = parser.parse_args()
  tv_oracle = load_tv_oracle(args.shared)
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from torchvision.models.detection import maskrcnn_resnet50_fpn_v2  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(2)
  torch.manual_seed(args.seed)
  model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=NUM_CLASSES,
                                   min_size=SIZE, max_size=SIZE, box_score_thresh=0.05).eval()
  draw_weights(model, args.seed, torch)
  photos = tv_oracle.photographs()
  tensors = [tv_oracle.to_tensor(p) for p in photos]
  calibrate(model, tensors, torch)
  os.makedirs(args.outdir, exist_ok=True)
  checkpoint = os.path.join(args.outdir, CHECKPOINT)
  torch.save(model.state_dict(), checkpoint)
  for i, photo in enumerate(photos):
    Image.fromarray(photo).save(os.path.join(args.outdir, f"img{i}.png"))
  results = outputs(model, tensors, torch)
  np.savez_compressed(os.path.join(args.outdir, "tv_outputs.npz"), **results)
  with open(checkpoint, "rb") as f:
    sha256 = hashlib.sha256(f.read()).hexdigest()
  meta = {"model": "maskrcnn_resnet50_fpn_v2", "seed": args.seed, "size": SIZE, "num_classes": NUM_CLASSES,
          "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
          "checkpoint": {"file": CHECKPOINT, "sha256": sha256,
                         "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}},
          "images": [{"file": f"img{i}.png", "photo": name} for i, name in enumerate(tv_oracle.PHOTOS)],
          "detections": [len(results[f"img{i}_scores"]) for i in range(len(photos))],
          "score_range": [[float(results[f"img{i}_scores"].min()), float(results[f"img{i}_scores"].max())]
                          for i in range(len(photos)) if len(results[f"img{i}_scores"])]}
  with open(os.path.join(args.outdir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  print(json.dumps({k: meta[k] for k in ("detections", "score_range")}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
