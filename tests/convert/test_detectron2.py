"""Detectron2 -> mrcnn_jax: names, layouts (each checked against the PyTorch op it stands for), the
config, and clear errors. Names and shapes come from the Detectron2 oracles' ``param_shapes`` (307
tensors of mask_rcnn_R_50_FPN_3x; 279 of R_50_C4_3x and 562 of X_101_32x8d_FPN_3x); the end-to-end
parity tests are test_detectron2_parity.py (all three) and test_detectron2_natural_parity.py."""

import jax
import jax.numpy as jnp
import numpy as np
import oracles
import pytest
from flax import nnx

from mrcnn_jax.convert import detectron2
from mrcnn_jax.convert.__main__ import main
from mrcnn_jax.data.coco_classes import COCO_CLASSES, COCO_KEYPOINT_NAMES
from mrcnn_jax.errors import UserError
from mrcnn_jax.model.mask_head import Deconv2x
from mrcnn_jax.model.mask_rcnn import build_model
from tolerance import reordered_sum_bound


def zero_weights(num_classes=5):
  return {name: np.zeros(shape, np.float32) for name, shape in oracles.d2_weights().param_shapes(num_classes)}


def zoo_zero_weights(arch):
  """Zeros in the names and shapes of the zoo oracle's ``arch`` ("r50_c4" or "x101_fpn")."""
  return {name: np.zeros(shape, np.float32) for name, shape in oracles.d2_zoo_weights().param_shapes(arch)}


@pytest.fixture(scope="module")
def shapes():
  """{our path: shape} of the converted config's model (abstract: nothing is initialised)."""
  model = nnx.eval_shape(lambda: build_model(detectron2.detectron2_config(zero_weights())))
  return {"/".join(map(str, path)): v.shape for path, v in nnx.to_flat_state(nnx.state(model))}


@pytest.mark.parametrize("name,path", [
    ("backbone.bottom_up.stem.conv1.weight", "backbone/bottom_up/stem/conv/kernel"),
    ("backbone.bottom_up.stem.conv1.norm.weight", "backbone/bottom_up/stem/norm/scale"),
    ("backbone.bottom_up.res3.0.shortcut.norm.running_mean", "backbone/bottom_up/res3/0/shortcut/norm/mean"),
    ("backbone.bottom_up.res5.2.conv3.norm.running_var", "backbone/bottom_up/res5/2/conv3/norm/var"),
    ("backbone.bottom_up.res4.5.conv2.weight", "backbone/bottom_up/res4/5/conv2/conv/kernel"),
    ("backbone.fpn_lateral4.weight", "backbone/fpn_lateral4/kernel"),
    ("backbone.fpn_output2.bias", "backbone/fpn_output2/bias"),
    ("proposal_generator.rpn_head.anchor_deltas.weight", "proposal_generator/rpn_head/anchor_deltas/kernel"),
    ("roi_heads.box_predictor.cls_score.bias", "roi_heads/box_predictor/cls_score/bias"),
    ("roi_heads.mask_head.deconv.weight", "roi_heads/mask_head/deconv/kernel"),
    ("backbone.stem.conv1.weight", "backbone/stem/conv/kernel"),                                  # C4
    ("backbone.stem.conv1.norm.bias", "backbone/stem/norm/bias"),
    ("backbone.res4.5.conv2.weight", "backbone/res4/5/conv2/conv/kernel"),
    ("roi_heads.res5.0.shortcut.weight", "roi_heads/res5/0/shortcut/conv/kernel"),
    ("roi_heads.res5.2.conv3.norm.running_mean", "roi_heads/res5/2/conv3/norm/mean"),
])
def test_names(name, path):
  assert detectron2.our_path(name) == path


def test_every_tensor_lands_and_every_variable_is_filled(shapes):
  weights = zero_weights()
  converted = detectron2.convert_weights(weights, shapes)
  assert len(weights) == len(shapes) == len(converted) == 307


@pytest.mark.parametrize("change,message", [
    (lambda w: w.pop("roi_heads.box_head.fc2.bias"), "1 missing: roi_heads/box_head/fc2/bias"),
    (lambda w: w.update({"roi_heads.box_head.fc3.weight": np.zeros((2, 2))}), "1 unexpected: roi_heads.box_head.fc3"),
    (lambda w: w.update({"backbone.fpn_output3.bias": np.zeros(3)}),
     r"1 misshapen: backbone.fpn_output3.bias .* \(3,\) vs \(256,\)"),
])
def test_mismatches_are_listed(shapes, change, message):
  weights = zero_weights()
  change(weights)
  with pytest.raises(UserError, match=message):
    detectron2.convert_weights(weights, shapes)


def test_old_buffers_are_ignored(shapes):
  weights = {**zero_weights(), "pixel_mean": np.zeros((3, 1, 1)),
             "proposal_generator.anchor_generator.cell_anchors.0": np.zeros((3, 4))}
  assert len(detectron2.convert_weights(weights, shapes)) == 307


def test_conv_layout_matches_pytorchs_nchw_oihw_conv():
  rng = np.random.default_rng(0)
  weight, x = rng.standard_normal((4, 3, 3, 3), np.float32), rng.standard_normal((1, 3, 8, 8), np.float32)
  torch_like = jax.lax.conv_general_dilated(x, weight, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
  conv = nnx.Conv(3, 4, (3, 3), use_bias=False, rngs=nnx.Rngs(0))
  conv.kernel[...] = detectron2.to_ours("backbone.fpn_output2.weight", weight)
  abs_sum = jax.lax.conv_general_dilated(np.abs(x), np.abs(weight), (1, 1), "SAME",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
  difference = np.abs(conv(x.transpose(0, 2, 3, 1)) - torch_like.transpose(0, 2, 3, 1))
  assert np.all(difference <= reordered_sum_bound(abs_sum.transpose(0, 2, 3, 1), terms=3 * 3 * 3))


def test_cls_score_background_moves_from_last_to_first():
  weight = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
  ours = detectron2.to_ours("roi_heads.box_predictor.cls_score.weight", weight)
  np.testing.assert_array_equal(ours, weight[[5, 0, 1, 2, 3, 4]].T)
  bias = detectron2.to_ours("roi_heads.box_predictor.cls_score.bias", np.arange(6, dtype=np.float32))
  np.testing.assert_array_equal(bias, [5, 0, 1, 2, 3, 4])


def test_deconv_layout_matches_pytorchs_conv_transpose_2x2_stride_2():
  rng = np.random.default_rng(0)
  weight = rng.standard_normal((3, 4, 2, 2), np.float32)                   # ConvTranspose2d: [in, out, kh, kw]
  x = rng.standard_normal((1, 3, 2, 3), np.float32)
  expected = np.zeros((1, 4, 4, 6), np.float32)                            # out[2i+a, 2j+b] = sum_c x[c,i,j] W[c,o,a,b]
  for a in range(2):
    for b in range(2):
      expected[:, :, a::2, b::2] = np.einsum("nchw,co->nohw", x, weight[:, :, a, b])
  deconv = Deconv2x(3, 4, rngs=nnx.Rngs(0))
  deconv.kernel[...] = detectron2.to_ours("roi_heads.mask_head.deconv.weight", weight)
  np.testing.assert_allclose(deconv(jnp.asarray(x.transpose(0, 2, 3, 1))), expected.transpose(0, 2, 3, 1), atol=1e-5)


def test_keypoint_rcnn_converts_whole_with_coco_persons_keypoints():
  generator = oracles.d2_weights(oracles.DETECTRON2_KEYPOINTS, "d2_kp_weights")
  weights = {name: np.zeros(shape, np.float32) for name, shape in generator.param_shapes()}
  config = detectron2.detectron2_config(weights)
  k, data = config.model.keypoint, config.data
  assert (k.num_keypoints, k.num_convs, k.conv_dim, config.model.mask_on) == (17, 8, 512, False)
  assert config.class_names == ("person",) and data.keypoint_names == COCO_KEYPOINT_NAMES
  assert data.keypoint_flip_map[0] == (1, 2) and len(data.keypoint_sigmas) == 17
  model = nnx.eval_shape(lambda: build_model(config))
  shapes = {"/".join(map(str, path)): v.shape for path, v in nnx.to_flat_state(nnx.state(model))}
  assert len(detectron2.convert_weights(weights, shapes)) == len(weights) == len(shapes) == 313
  assert detectron2.our_path("roi_heads.keypoint_head.conv_fcn8.bias") == "roi_heads/keypoint_head/conv_fcn8/bias"
  weight = np.arange(512 * 17 * 16, dtype=np.float32).reshape(512, 17, 4, 4)  # ConvTranspose2d [in, out, kh, kw]
  ours = detectron2.to_ours("roi_heads.keypoint_head.score_lowres.weight", weight)
  np.testing.assert_array_equal(ours, weight.transpose(2, 3, 0, 1))  # Deconv4x4's [kh, kw, in, out]


def test_config_reproduces_detectron2s_inference_settings():
  config = detectron2.detectron2_config(zero_weights(), {"data.canvas": 1024, "data.max_size": 1024})
  m = config.model
  assert (config.num_classes, config.class_names) == (5, ("class_1", "class_2", "class_3", "class_4", "class_5"))
  assert (m.backbone, m.norm, m.head_norm) == ("resnet50", "frozen_bn", "")
  assert (m.stride_in_1x1, m.input_format) == (True, "BGR")
  assert (m.pixel_mean, m.pixel_std) == ((103.53, 116.28, 123.675), (1.0, 1.0, 1.0))
  assert (m.roi.candidates_per_image, m.mask.paste_border) == (5000, "zeros")
  assert (m.roi.sampling_ratio, m.roi.max_sampling_ratio) == (0, 8)
  assert (config.data.canvas, config.data.min_size, config.data.max_size) == (1024, 800, 1024)
  assert detectron2.detectron2_config(zero_weights()).data.canvas == 1344  # 1333 rounded up to 32
  assert (config.data.size_divisibility, config.data.resize, m.padding) == (32, "pil", "normalized")
  coco = detectron2.detectron2_config(zero_weights(80))
  assert coco.class_names == COCO_CLASSES and coco.model.roi.candidates_per_image == 80_000


def test_sizes_past_the_canvas_are_refused():
  with pytest.raises(UserError, match=r"max_size \(1333\) must be <= the longest side of config.data.canvas \(512\)"):
    detectron2.detectron2_config(zero_weights(), {"data.canvas": 512})
  with pytest.raises(UserError, match="size_divisibility must be 0 .* or a multiple of 32"):
    detectron2.detectron2_config(zero_weights(), {"data.size_divisibility": 48})


@pytest.mark.parametrize("arch,tensors", [("r50_c4", 279), ("x101_fpn", 562)])
def test_zoo_models_convert_every_tensor(arch, tensors):
  weights = zoo_zero_weights(arch)
  model = nnx.eval_shape(lambda: build_model(detectron2.detectron2_config(weights)))
  shapes = {"/".join(map(str, path)): v.shape for path, v in nnx.to_flat_state(nnx.state(model))}
  assert len(detectron2.convert_weights(weights, shapes)) == len(shapes) == tensors


def test_c4_config_reproduces_detectron2s():
  """mask_rcnn_R_50_C4_3x: RPN and 14x14 RoIAlign on res4 (exact adaptive grid), 6000 proposals into NMS,
  MSRA's input; the mask head has no convs (Res5ROIHeads), so mask.num_convs does not matter."""
  config = detectron2.detectron2_config(zoo_zero_weights("r50_c4"))
  m = config.model
  assert (config.data.size_divisibility, m.padding) == (32, "normalized")     # natural-size canvases
  assert (m.head, m.backbone, m.num_groups, m.roi.pooler_resolution) == ("c4", "resnet50", 1, 14)
  assert (m.rpn.pre_nms_topk_test, m.rpn.post_nms_topk_test, m.roi.sampling_ratio, m.roi.max_sampling_ratio) == (
      6000, 1000, 0, 0)
  assert (m.stride_in_1x1, m.pixel_std, m.anchor_sizes) == (True, (1.0, 1.0, 1.0), (32, 64, 128, 256, 512))


def test_x101_config_reproduces_detectron2s():
  """mask_rcnn_X_101_32x8d_FPN_3x: ResNeXt-101 32x8d read from the weights, stride in the 3x3 convs,
  FAIR's pixel std."""
  config = detectron2.detectron2_config(zoo_zero_weights("x101_fpn"))
  m = config.model
  assert (config.data.size_divisibility, m.padding) == (32, "normalized")     # natural-size canvases
  assert (m.head, m.backbone, m.num_groups, m.width_per_group, m.width) == ("fpn", "resnet101", 32, 8, 64)
  assert (m.stride_in_1x1, m.input_format, m.pixel_std) == (False, "BGR", (57.375, 57.120, 58.395))


def test_dc5_and_unknown_depths_are_refused():
  c4 = zoo_zero_weights("r50_c4")
  dc5 = {name.replace("roi_heads.res5.", "backbone.res5."): array for name, array in c4.items()}
  with pytest.raises(UserError, match=r"a DC5 / C5 Mask R-CNN \(res5 in the backbone, no FPN\)"):
    detectron2.detectron2_config(dc5)
  weights = zero_weights()
  weights = {k: v for k, v in weights.items() if not k.startswith("backbone.bottom_up.res4.5.")}
  with pytest.raises(UserError, match=r"bottleneck blocks, \(3, 4, 5, 3\) in res2..res5: none of resnet18"):
    detectron2.detectron2_config(weights)


def test_cli_user_errors_are_one_line_exit_2(tmp_path, capsys):
  assert main(["detectron2", str(tmp_path / "nothing.pkl"), "--out", str(tmp_path / "w")]) == 2
  assert main(["detectron2", "x.pkl", "--out", str(tmp_path / "w"), "--canvas=3"]) == 2
  errors = capsys.readouterr().err.splitlines()
  assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
