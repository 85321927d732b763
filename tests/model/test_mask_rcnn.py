"""Mask R-CNN model: stage shapes, losses, a jitted train step, overfitting, empty images, switches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mrcnn_jax import build_model
from mrcnn_jax.model.mask_rcnn import RPN_LEVELS
from mrcnn_jax.model.resnet import stage_channels
from mrcnn_jax.model.roi_sampling import foreground_slots
from tolerance import network_rtol, reordered_sum_bound



ADAM = optax.adam(3e-3)  # one transform object, so tests with one config share one compiled step


def test_backbone_and_fpn_shapes(make_config, jit_features):
  config = make_config()
  model = build_model(config)
  image = jnp.zeros((2, 64, 64, 3), jnp.uint8)
  rpn_features, pool_features = jit_features(model, image)
  assert [f.shape for f in rpn_features] == [(2, 64 // s, 64 // s, 16) for s in (4, 8, 16, 32, 64)]
  assert len(pool_features) == 4
  logits, deltas = model.proposal_generator(rpn_features)
  for level, (lg, dl) in enumerate(zip(logits, deltas)):
    cells = (64 // 2 ** (level + 2)) ** 2
    assert lg.shape == (2, cells * 3) and dl.shape == (2, cells * 3, 4)
    assert lg.dtype == jnp.float32


def test_losses_and_detect_shapes(make_config, make_batch, jit_losses, jit_detect):
  config = make_config()
  model = build_model(config)
  batch = make_batch(config)
  losses = jit_losses(model, batch, jax.random.key(0))
  assert set(losses) == {"rpn_cls", "rpn_box", "cls", "box", "mask"}
  for name, value in losses.items():
    assert value.shape == () and value.dtype == jnp.float32 and np.isfinite(value), name
  det = jit_detect(model, batch["image"], batch["image_size"])
  d = config.model.roi.detections_per_image
  assert det["boxes"].shape == (2, d, 4) and det["scores"].shape == (2, d)
  assert det["classes"].dtype == jnp.int32 and det["masks"].shape == (2, d, 28, 28)
  assert det["valid"].dtype == jnp.bool_
  valid = np.asarray(det["valid"])
  classes = np.asarray(det["classes"])
  assert np.all((classes[valid] >= 1) & (classes[valid] <= config.num_classes))
  masks = np.asarray(det["masks"])
  assert np.all((masks >= 0) & (masks <= 1))
  boxes = np.asarray(det["boxes"])[valid]
  assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes <= 64)


def test_train_step_gradients_finite_and_loss_falls_on_repeated_batch(train_step, make_config, make_batch):
  config = make_config()
  model = build_model(config)
  batch = make_batch(config, num_instances=2)
  optimizer = nnx.Optimizer(model, ADAM, wrt=nnx.Param)
  history = []
  for step in range(40):  # the box loss rises from ~0 while foreground RoIs appear; 40 steps clear it
    losses, grads = train_step(model, optimizer, batch, jax.random.key(step))
    history.append({k: float(v) for k, v in losses.items()})
    if step == 0:
      assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  first, last = history[0], np.mean([sum(h.values()) for h in history[-3:]])
  assert last < 0.6 * sum(first.values()), (first, history[-1])
  assert np.mean([h["mask"] for h in history[-3:]]) < first["mask"]


def test_zero_instance_images_give_finite_losses_and_no_detections(train_step, make_config, make_batch, jit_detect):
  config = make_config()
  model = build_model(config)
  batch = make_batch(config, num_instances=0)
  optimizer = nnx.Optimizer(model, ADAM, wrt=nnx.Param)
  for step in range(15):
    losses, grads = train_step(model, optimizer, batch, jax.random.key(step))
    assert all(np.isfinite(float(v)) for v in losses.values()), losses
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(losses["box"]) == 0.0 and float(losses["mask"]) == 0.0 and float(losses["rpn_box"]) == 0.0
  # Trained only on background, the classifier rejects everything at the default threshold.
  det = jit_detect(model, batch["image"], batch["image_size"])
  assert int(np.asarray(det["valid"]).sum()) == 0


def test_padded_and_crowd_instances_do_not_change_losses(make_config, make_batch, jit_losses):
  config = make_config()
  model = build_model(config)
  batch = make_batch(config, num_instances=2)
  base = jit_losses(model, batch, jax.random.key(0))
  noisy = dict(batch)
  noisy["gt_boxes"] = batch["gt_boxes"].copy()
  noisy["gt_boxes"][:, 3] = [5, 5, 40, 40]  # a padded slot with garbage coordinates
  noisy["gt_classes"] = batch["gt_classes"].copy()
  noisy["gt_classes"][:, 3] = 3
  out = jit_losses(model, noisy, jax.random.key(0))
  for k in base:
    np.testing.assert_allclose(out[k], base[k], rtol=1e-5, err_msg=k)  # one program: the same sums
  crowd = dict(noisy, gt_valid=batch["gt_valid"].copy(), gt_crowd=batch["gt_crowd"].copy())
  crowd["gt_valid"][:, 3] = True
  crowd["gt_crowd"][:, 3] = True
  out = jit_losses(model, crowd, jax.random.key(0))
  assert all(np.isfinite(float(v)) for v in out.values())


def test_c4_training_runs_res5_once_and_matches_running_it_per_branch(make_config, make_batch, monkeypatch):
  """C4's mask branch reuses the box branch's res5 outputs of the foreground RoIs: same losses and
  gradients as pooling those RoIs again and running res5 on them a second time. (The RoI heads
  alone, on random res4 features and proposals: the backbone and RPN do not take part.)"""
  config = make_config(**{"head": "c4", "roi.pooler_resolution": 14, "anchor_sizes": (8, 16, 32),
                          "mask.rois_per_image": 3})
  batch = make_batch(config, num_instances=2)
  heads = build_model(config).roi_heads
  m, canvas = config.model, config.data.canvas
  res4 = jax.random.normal(jax.random.key(1), (2, canvas // 16, canvas // 16, stage_channels(m.backbone, 4, m.width)))
  corners = jax.random.uniform(jax.random.key(2), (2, 16, 2, 2), maxval=float(canvas))
  proposals = jnp.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1)  # [2,16,4] x1y1x2y2
  args = (res4, proposals, jnp.ones((2, 16), bool), batch, jax.random.key(0))
  calls = []
  res5 = type(heads)._res5
  monkeypatch.setattr(type(heads), "_res5", lambda self, f, rois: calls.append(rois.shape) or res5(self, f, rois))
  jax.eval_shape(lambda: heads.losses(*args))
  assert calls == [(2, config.model.roi.batch_per_image, 4)]

  def losses_and_grads():
    loss = lambda h: sum(h.losses(*args).values())
    return nnx.jit(lambda h: (h.losses(*args), nnx.grad(loss)(h)))(heads)

  shared, shared_grads = losses_and_grads()
  monkeypatch.setattr(type(heads), "train_logits", type(heads).__mro__[1].train_logits)  # res5 per branch
  twice, twice_grads = losses_and_grads()
  tol = network_rtol(heads)  # two programs: res5's sums may add in other orders
  for name in twice:
    np.testing.assert_allclose(shared[name], twice[name], rtol=tol, err_msg=name)
  assert float(shared["mask"]) > 0
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(nnx.state(shared_grads.res5)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max()),
               nnx.state(shared_grads), nnx.state(twice_grads))  # a gradient is a sum: its error scales with its terms


def test_c4_res5_width_narrows_res5_and_what_reads_it(make_config, make_batch):
  """model.c4_res5_width: C4's res5 takes res4's channels in and gives that width out, and the box
  predictor and mask head read it (traced, not compiled); a negative width is a clear error."""
  config = make_config(**{"head": "c4", "roi.pooler_resolution": 14, "anchor_sizes": (8, 16, 32),
                          "c4_res5_width": 8})
  batch, m, seen = make_batch(config), config.model, {}

  def losses():
    model = build_model(config)
    seen["res5"] = [(b.conv1.conv.kernel.shape, b.conv2.conv.kernel.shape) for b in model.roi_heads.res5]
    seen["box_in"] = model.roi_heads.box_predictor.cls_score.kernel.shape[0]
    return model.losses(batch, jax.random.key(0))

  assert all(v.shape == () for v in jax.eval_shape(losses).values())
  res4 = stage_channels(m.backbone, 4, m.width)
  assert seen["res5"] == [((3, 3, res4, 8), (3, 3, 8, 8)), ((3, 3, 8, 8), (3, 3, 8, 8))]
  assert seen["box_in"] == 8 < stage_channels(m.backbone, 5, m.width)
  config.model.c4_res5_width = -1
  with pytest.raises(ValueError, match="c4_res5_width"):
    build_model(config)


def test_mask_rois_per_image_caps_the_mask_branch_only(make_config, make_batch, jit_losses):
  roi = make_config().model.roi
  batch = make_batch(make_config(), num_instances=2)
  slots = foreground_slots(roi)
  losses = {}
  for cap in (0, 2):
    model = build_model(make_config(**{"mask.rois_per_image": cap}))
    seen = []
    head = model.roi_heads.mask_logits
    model.roi_heads.mask_logits = lambda features, rois: seen.append(rois.shape) or head(features, rois)
    jax.eval_shape(lambda: model.losses(batch, jax.random.key(0)))
    assert seen == [(2, cap or slots, 4)]
    del model.roi_heads.mask_logits
    losses[cap] = jit_losses(model, batch, jax.random.key(0))
  for name in ("rpn_cls", "rpn_box", "cls", "box"):  # same sampled RoIs: the box branch is untouched
    np.testing.assert_array_equal(losses[2][name], losses[0][name], err_msg=name)
  assert np.isfinite(float(losses[2]["mask"])) and float(losses[2]["mask"]) > 0
  with pytest.raises(ValueError, match="rois_per_image"):
    build_model(make_config(**{"mask.rois_per_image": slots + 1}))


def test_detection_masks_run_in_passes_that_stop_after_the_last_valid_detection(make_config, make_batch):
  batch = make_batch(make_config(), num_instances=2)
  detect = nnx.jit(lambda m, i, s, t: m.detect(i, s, score_threshold=t))
  model = build_model(make_config(**{"mask.detections_per_pass": 0}))
  graphdef, state = nnx.split(model)
  chunked = nnx.merge(nnx.graphdef(build_model(make_config(**{"mask.detections_per_pass": 3}))), state)
  run = lambda m, threshold: jax.tree.map(np.asarray, detect(m, batch["image"], batch["image_size"], threshold))
  every = run(model, 0.0)
  assert every["valid"].sum(axis=1).min() > 3   # more than one pass of 3
  # Keeps at most 3 detections per image (the 4th best score at most): all in the first pass.
  for threshold in (0.0, every["scores"][:, 3].max()):
    one, passes = run(model, threshold), run(chunked, threshold)
    valid = one["valid"]
    np.testing.assert_array_equal(passes["valid"], valid)
    np.testing.assert_allclose(passes["masks"][valid], one["masks"][valid], atol=network_rtol(model))
    assert np.all(valid[:, :-1] >= valid[:, 1:])   # valid first: what lets passes stop early
  assert 0 < valid.sum(axis=1).max() <= 3
  # Slots 3.. are never computed in passes of 3, while one pass computes them all.
  assert np.all(passes["masks"][:, 3:] == 0) and np.any(one["masks"][:, 3:] != 0)
  with pytest.raises(ValueError, match="detections_per_pass"):
    build_model(make_config(**{"mask.detections_per_pass": -1}))


@pytest.mark.parametrize("field,value,match", [
    ("head", "c3", "head"), ("pooler", "roi_magic", "pooler"), ("mask_loss", "dice", "mask_loss"),
    ("mask_head", "transformer", "mask_head"), ("backbone", "resnet7", "backbone"), ("dtype", "float16", "dtype"),
    ("input_format", "YUV", "input_format"),
    ("roi.sampling_ratio", -1, "sampling_ratio"), ("roi.max_sampling_ratio", -1, "max_sampling_ratio"),
])
def test_bad_config_values_raise_clear_errors(make_config, field, value, match):
  with pytest.raises(ValueError, match=match):
    build_model(make_config(**{field: value}))


def test_unset_num_classes_is_a_clear_error(make_config):
  config = make_config()
  config.num_classes = 0
  with pytest.raises(ValueError, match="num_classes must be at least 1"):
    build_model(config)


def test_wrong_image_shape_raises(make_config):
  model = build_model(make_config())
  with pytest.raises(ValueError, match="multiples of 32"):
    model.detect(jnp.zeros((1, 48, 64, 3), jnp.uint8), jnp.full((1, 2), 48))
  with pytest.raises(ValueError, match="image"):
    model.detect(jnp.zeros((1, 64, 64), jnp.uint8), jnp.full((1, 2), 64))


def test_bgr_input_format_flips_channels_before_normalising(make_config, monkeypatch):
  """A BGR model flips the channels, then normalises with BGR-ordered mean and std: its backbone gets
  the RGB model's input with the channels reversed, and its stem, given the RGB filter on the B, G, R
  planes, sums the RGB stem's products in another order. Past the stem the two models are one function
  with the same weights (the configs differ only in what ``features`` reads before the backbone)."""
  rgb = build_model(make_config(pixel_mean=(10.0, 20.0, 30.0), pixel_std=(1.0, 2.0, 3.0)))
  bgr = build_model(make_config(input_format="BGR", pixel_mean=(30.0, 20.0, 10.0), pixel_std=(3.0, 2.0, 1.0)))
  stem = bgr.backbone.bottom_up.stem.conv  # same seed, same weights: give it the RGB filter on B, G, R planes
  stem.kernel[...] = stem.kernel[...][:, :, ::-1]
  rgb_stem = rgb.backbone.bottom_up.stem.conv
  seen = []  # each model's normalised input, as its backbone gets it
  monkeypatch.setattr(type(rgb.backbone), "__call__", lambda self, x: seen.append(x) or {p: x for p in RPN_LEVELS})
  image = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3)), jnp.uint8)
  rgb.features(image)
  bgr.features(image)
  x_rgb, x_bgr = seen
  np.testing.assert_array_equal(x_bgr, x_rgb[..., ::-1])  # elementwise ops on equal values: bit-equal
  # The stems add the same 7x7x3 products in another order: within the bound for reordered sums.
  magnitude = nnx.clone(rgb_stem)
  magnitude.kernel[...] = jnp.abs(rgb_stem.kernel[...])
  bound = reordered_sum_bound(magnitude(jnp.abs(x_rgb)), terms=7 * 7 * 3)
  assert np.all(np.abs(np.asarray(stem(x_bgr), np.float64) - np.asarray(rgb_stem(x_rgb))) <= bound)
  rest = lambda model: {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree.leaves_with_path(nnx.state(model))
                        if "['stem']['conv']['kernel']" not in jax.tree_util.keystr(path)}
  rgb_rest, bgr_rest = rest(rgb), rest(bgr)
  assert rgb_rest.keys() == bgr_rest.keys()
  for path, value in rgb_rest.items():
    np.testing.assert_array_equal(bgr_rest[path], value, err_msg=path)


def test_stride_in_1x1_moves_the_bottleneck_stride_to_conv1(make_config, jit_features):
  model = build_model(make_config(backbone="resnet50", stride_in_1x1=True))
  first = model.backbone.bottom_up.res3[0]
  assert (first.conv1.conv.strides, first.conv2.conv.strides) == ((2, 2), (1, 1))
  default = build_model(make_config(backbone="resnet50")).backbone.bottom_up.res3[0]
  assert (default.conv1.conv.strides, default.conv2.conv.strides) == ((1, 1), (2, 2))
  rpn_features, _ = jit_features(model, jnp.zeros((1, 64, 64, 3), jnp.uint8))
  assert [f.shape[1] for f in rpn_features] == [16, 8, 4, 2, 1]
