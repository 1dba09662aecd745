"""The ``robust`` training recipe's augmentations: teach a model trained on large, centred
Oxford-IIIT Pet photos that a pet can be small, anywhere, or absent.

Every function takes and returns a batch ``images`` ``(N, 3, H, W)`` float32 RGB in [0, 1]
with ``labels`` ``(N, H, W)`` int64 class ids (0 pet, 1 background, 2 border: trimap value - 1),
draws all randomness from the ``torch.Generator`` it is given (same seed, same output) and
moves label pixels exactly with image pixels (geometry uses the same integer placement for
both; labels are resized with nearest neighbour so no new class ids appear).

Sources:
- Recolouring the pasted pet (hue rotation in YIQ, brightness, grayscale): the colour
  distortion of SimCLR (Chen et al. 2020, appendix A) applied to the pasted object only.
- Copy-paste: Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
  Instance Segmentation", CVPR 2021 (objects cut out with their masks, pasted at random
  scale (large-scale jittering) and position, no blending: they found Gaussian blending of
  the edges does not help).
- Zoom-out: Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, section 2.2 (place
  the image, shrunk, at a random position on a larger canvas to create small objects); here
  the canvas is a real pet-free background instead of the mean colour.
- Colour jitter (brightness, contrast, saturation as torchvision's ``ColorJitter``
  ``adjust_*``) and Gaussian blur: Chen et al., "A Simple Framework for Contrastive Learning
  of Visual Representations" (SimCLR), ICML 2020, appendix A.
- Synthetic pet-free scenes (opt-in, measured worse on real video): the dead-leaves model of
  Lee, Mumford & Huang, IJCV 2001, as domain randomization (Tobin et al., IROS 2017).
- Wire mesh and poles in front of the scene (opt-in, measured worse): occlusion augmentation
  after Cutout (DeVries & Taylor 2017) and GridMask (Chen et al. 2020).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

PET, BACKGROUND = 0, 1  # class ids (PET_CLASSES order: pet, background, border)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as torchvision's rgb_to_grayscale


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))


def _resize_pair(image: torch.Tensor, label: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize ``(3, h0, w0)`` bilinearly and ``(h0, w0)`` by nearest neighbour to ``(h, w)``."""
    image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    label = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest-exact")[0, 0].long()  # pixel centres, as bilinear
    return image.clamp_(0, 1), label


def pet_free_crops(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, per_image: int = 2, min_side: float = 0.25,
    tries: int = 30,
) -> torch.Tensor:
    """Backgrounds without pets: rectangles of training images that hold only background
    pixels, resized to the image size (the "pet-free regions of other images" that
    copy-paste pastes onto).

    Args:
        images: ``(N, 3, H, W)`` float32 in [0, 1]; labels: ``(N, H, W)`` int64.
        generator: source of randomness.
        per_image: at most this many crops per image.
        min_side: smallest crop side as a fraction of the image side.
        tries: random rectangles tried per crop.

    Returns:
        ``(M, 3, H, W)`` float32, ``M <= N * per_image`` (images with no large pet-free
        rectangle give none).
    """
    n, _, h, w = images.shape
    crops = []
    for i in range(n):
        busy = (labels[i] != BACKGROUND).to(torch.int32)
        table = F.pad(busy.cumsum(0).cumsum(1), (1, 0, 1, 0))  # integral image (H + 1, W + 1)
        found = 0
        for _ in range(tries):
            ch, cw = _randint(int(min_side * h), h, generator), _randint(int(min_side * w), w, generator)
            y, x = _randint(0, h - ch, generator), _randint(0, w - cw, generator)
            inside = table[y + ch, x + cw] - table[y, x + cw] - table[y + ch, x] + table[y, x]
            if int(inside) == 0:
                crop = images[i, :, y : y + ch, x : x + cw]
                crops.append(F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False)[0])
                found += 1
                if found == per_image:
                    break
    return torch.stack(crops) if crops else images.new_zeros((0, 3, h, w))


def video_backgrounds(path: str, config, every: int = 5, per_frame: int = 2, seed: int = 0) -> torch.Tensor:
    """Random crops of the frames of a video that shows no animal, preprocessed like the
    training images (the copy-paste paper pastes onto other images; a street video adds
    scenes the pet photos lack).

    Args:
        path: video file OpenCV can decode.
        config: the training ``PreprocessConfig`` (size, interpolation).
        every: keep every n-th frame.
        per_frame: random crops (each side 50-100% of the frame's) per kept frame.
        seed: seed of the crop positions.

    Returns:
        ``(M, 3, H, W)`` float32 RGB in [0, 1].

    Raises:
        DataError: the video cannot be opened or holds no frame.
    """
    import cv2

    from segedge.data.transforms import preprocess
    from segedge.errors import DataError

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"cannot open background video {path}")
    rng = np.random.default_rng(seed)
    crops, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                fh, fw = frame.shape[:2]
                for _ in range(per_frame):
                    ch, cw = int(fh * rng.uniform(0.5, 1)), int(fw * rng.uniform(0.5, 1))
                    y, x = int(rng.integers(0, fh - ch + 1)), int(rng.integers(0, fw - cw + 1))
                    crops.append(np.ascontiguousarray(frame[y : y + ch, x : x + cw]))
            index += 1
    finally:
        capture.release()
    if not crops:
        raise DataError(f"background video {path} holds no frame")
    return torch.from_numpy(preprocess(crops, config))


def _paste(canvas: torch.Tensor, canvas_label: torch.Tensor, image: torch.Tensor, label: torch.Tensor,
           mask: torch.Tensor, y: int, x: int) -> None:
    """Write ``image``/``label`` where ``mask`` into ``canvas``/``canvas_label`` at ``(y, x)``, in place."""
    h, w = label.shape
    region = canvas[:, y : y + h, x : x + w]
    canvas[:, y : y + h, x : x + w] = torch.where(mask, image, region)
    canvas_label[y : y + h, x : x + w] = torch.where(mask, label, canvas_label[y : y + h, x : x + w])


def recolour(image: torch.Tensor, generator: torch.Generator, hue: float = math.pi, brightness: tuple[float, float] = (0.25, 1.3),
             p_gray: float = 0.2) -> torch.Tensor:
    """A new coat for a pasted pet: rotate its hue by an angle drawn from ``[-hue, hue]``
    (rotation of the chroma plane of YIQ, the NTSC colour space), scale its brightness by a
    factor drawn log-uniformly from ``brightness`` (down to dark coats) and, with probability
    ``p_gray``, drop its colour.

    The sample's three breeds are ruddy, spotted or white, so without this a model learns
    "pet = ruddy or white fur" and misses black or brown dogs in real video; only the pet is
    recoloured, so the colour stops naming the class while the shape and texture still do.

    Args:
        image: ``(3, H, W)`` float32 RGB in [0, 1]; generator: source of randomness.

    Returns:
        ``(3, H, W)`` float32 in [0, 1].
    """
    rgb_to_yiq = image.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    angle = _uniform(-hue, hue, generator)
    c, s = math.cos(angle), math.sin(angle)
    rotate = image.new_tensor([[1, 0, 0], [0, c, -s], [0, s, c]])
    if float(torch.rand(1, generator=generator)) < p_gray:
        rotate = image.new_tensor([[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    transform = torch.linalg.inv(rgb_to_yiq) @ rotate @ rgb_to_yiq
    scale = math.exp(_uniform(math.log(brightness[0]), math.log(brightness[1]), generator))
    return (torch.einsum("ij,jhw->ihw", transform, image) * scale).clamp(0, 1)


def copy_paste(image: torch.Tensor, label: torch.Tensor, background: torch.Tensor, generator: torch.Generator,
               scale: tuple[float, float] = (0.08, 0.9), aspect: tuple[float, float] = (0.5, 1.4),
               background_label: torch.Tensor | None = None, p_recolour: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the pet (its pet and border pixels) out of one image and paste it, resized, at a
    random position on ``background`` (Ghiasi et al. 2021).

    Args:
        image: ``(3, H, W)`` float32; label: ``(H, W)`` int64; background: ``(3, H, W)``.
        generator: source of randomness.
        scale: range of the pasted pet's longer side as a fraction of the image side, drawn
            log-uniformly (small pets as often as large ones).
        aspect: range of the factor applied to the pet's width only, drawn log-uniformly: a
            16:9 frame squeezed into the square input makes everything in it narrower (0.56x).
        background_label: ``(H, W)`` labels of ``background`` when it is another training
            image (its own pet stays, as in the paper, which pastes onto other images);
            ``None``: a pet-free background, all background.
        p_recolour: probability that the pasted pet gets a new coat (:func:`recolour`).

    Returns:
        ``(image, label)``: the composite and its labels. An image without pet pixels returns
        the background with its labels.
    """
    _, h, w = image.shape
    canvas = background.clone()
    canvas_label = torch.full_like(label, BACKGROUND) if background_label is None else background_label.clone()
    rows, cols = torch.nonzero(label != BACKGROUND, as_tuple=True)
    if len(rows) == 0:
        return canvas, canvas_label
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    side = math.exp(_uniform(math.log(scale[0]), math.log(scale[1]), generator)) * max(h, w)
    factor = side / max(y1 - y0, x1 - x0)
    squeeze = math.exp(_uniform(math.log(aspect[0]), math.log(aspect[1]), generator))
    ph, pw = max(1, min(h, round((y1 - y0) * factor))), max(1, min(w, round((x1 - x0) * factor * squeeze)))
    piece, piece_label = _resize_pair(image[:, y0:y1, x0:x1], label[y0:y1, x0:x1], ph, pw)
    if p_recolour and float(torch.rand(1, generator=generator)) < p_recolour:
        piece = recolour(piece, generator)
    y, x = _randint(0, h - ph, generator), _randint(0, w - pw, generator)
    _paste(canvas, canvas_label, piece, piece_label, piece_label != BACKGROUND, y, x)
    return canvas, canvas_label


def zoom_out(image: torch.Tensor, label: torch.Tensor, background: torch.Tensor, generator: torch.Generator,
             scale: tuple[float, float] = (0.35, 0.9)) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink the whole image by a factor drawn from ``scale`` and place it at a random
    position on ``background`` (SSD's zoom-out, Liu et al. 2016, with a real background).

    Args:
        image: ``(3, H, W)``; label: ``(H, W)``; background: ``(3, H, W)``.

    Returns:
        ``(image, label)``: outside the shrunk image the labels are background.
    """
    _, h, w = image.shape
    s = _uniform(*scale, generator)
    ph, pw = max(1, round(h * s)), max(1, round(w * s))
    piece, piece_label = _resize_pair(image, label, ph, pw)
    canvas, canvas_label = background.clone(), torch.full_like(label, BACKGROUND)
    y, x = _randint(0, h - ph, generator), _randint(0, w - pw, generator)
    _paste(canvas, canvas_label, piece, piece_label, torch.ones_like(piece_label, dtype=torch.bool), y, x)
    return canvas, canvas_label


def color_jitter(images: torch.Tensor, generator: torch.Generator, brightness: float = 0.3, contrast: float = 0.3,
                 saturation: float = 0.3) -> torch.Tensor:
    """Per-image brightness, contrast and saturation factors drawn from ``[1 - v, 1 + v]``,
    applied as torchvision's ``adjust_brightness/contrast/saturation`` (SimCLR's colour
    distortion without hue). Image only; ``(N, 3, H, W)`` in, same shape in [0, 1] out."""
    n = images.shape[0]
    luma = images.new_tensor(_LUMA).view(1, 3, 1, 1)

    def factor(v: float) -> torch.Tensor:
        return (1 + (torch.rand(n, generator=generator) * 2 - 1) * v).view(n, 1, 1, 1)

    images = (images * factor(brightness)).clamp(0, 1)
    mean = (images * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    f = factor(contrast)
    images = (f * images + (1 - f) * mean).clamp(0, 1)
    gray = (images * luma).sum(1, keepdim=True)
    f = factor(saturation)
    return (f * images + (1 - f) * gray).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, generator: torch.Generator, p: float = 0.3,
                  sigma: tuple[float, float] = (0.1, 1.5), kernel: int = 5) -> torch.Tensor:
    """Blur each image with probability ``p`` by a separable Gaussian of standard deviation
    drawn from ``sigma`` (pixels), reflect padding (SimCLR appendix A; video frames are
    softer than photos). Image only; shape and range kept."""
    n = images.shape[0]
    chosen = torch.rand(n, generator=generator) < p
    sigmas = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(n, generator=generator)
    out = images.clone()
    offsets = torch.arange(kernel, dtype=torch.float32) - kernel // 2
    for i in torch.nonzero(chosen).flatten().tolist():
        weights = torch.exp(-0.5 * (offsets / sigmas[i]) ** 2)
        weights = (weights / weights.sum()).to(images.dtype)
        x = F.pad(images[i : i + 1], (kernel // 2,) * 4, mode="reflect")
        x = F.conv2d(x, weights.view(1, 1, 1, kernel).expand(3, 1, 1, kernel), groups=3)
        out[i] = F.conv2d(x, weights.view(1, 1, kernel, 1).expand(3, 1, kernel, 1), groups=3)[0]
    return out


def dead_leaves(h: int, w: int, generator: torch.Generator, palette: torch.Tensor | None = None, shapes: int = 300,
                r_min: float = 3.0, elongated: float = 0.4) -> torch.Tensor:
    """A synthetic pet-free scene from the dead-leaves model: discs and ellipses with sizes
    drawn from ``p(r) ~ r^-3`` (scale invariance, as natural images) painted over each other,
    largest first, each in one colour; then a fine multiplicative noise texture over the whole
    scene and a Gaussian blur.

    Source: Lee, Mumford, Huang, "Occlusion Models for Natural Images: A Statistical Study of a
    Scale-Invariant Dead Leaves Model", IJCV 2001; used as training images without any real
    content by Baradad et al., "Learning to See by Looking at Noise", NeurIPS 2021. Here it is
    domain randomization (Tobin et al., IROS 2017) of the backgrounds pets are pasted onto:
    textured, cluttered scenes with trunk-like ellipses (``elongated`` of the shapes, aspect up to
    8) that hold no pet, so clutter and fur-like texture alone stop meaning "pet".

    Args:
        h, w: size in pixels.
        generator: source of randomness.
        palette: ``(K, 3)`` float32 RGB colours in [0, 1] to draw from (e.g. pixels of real
            backgrounds, so the scenes keep natural colours); ``None``: uniform random colours.
        shapes: number of shapes painted.
        r_min: smallest radius in pixels; the largest is half the longer side.
        elongated: share of the shapes that are thin, rotated ellipses.

    Returns:
        ``(3, h, w)`` float32 RGB in [0, 1].
    """
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    r_max = max(h, w) / 2
    u = torch.rand(shapes, generator=generator)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5  # inverse CDF of p(r) ~ r^-3 on [r_min, r_max]
    radii = radii.sort(descending=True).values  # large leaves first: small ones stay visible on top
    if palette is not None and len(palette):
        colours = palette[torch.randint(0, len(palette), (shapes,), generator=generator)]
        colours = (colours + 0.08 * torch.randn(shapes, 3, generator=generator)).clamp(0, 1)
    else:
        colours = torch.rand(shapes, 3, generator=generator)
    image = colours[0].view(3, 1, 1).expand(3, h, w).clone()
    for k in range(1, shapes):
        cy, cx = _uniform(-0.1 * h, 1.1 * h, generator), _uniform(-0.1 * w, 1.1 * w, generator)
        angle = _uniform(0, math.pi, generator)
        aspect = math.exp(_uniform(math.log(2), math.log(8), generator)) if float(torch.rand(1, generator=generator)) < elongated else 1.0
        a, b = float(radii[k]) * math.sqrt(aspect), float(radii[k]) / math.sqrt(aspect)
        dy, dx = ys - cy, xs - cx
        u_, v_ = dx * math.cos(angle) + dy * math.sin(angle), -dx * math.sin(angle) + dy * math.cos(angle)
        inside = (u_ / a) ** 2 + (v_ / b) ** 2 <= 1
        image[:, inside] = colours[k].view(3, 1)
    texture = F.interpolate(torch.randn(1, 1, h // 2 + 1, w // 2 + 1, generator=generator), size=(h, w), mode="bilinear",
                            align_corners=False)[0]
    image = image * (1 + _uniform(0.05, 0.3, generator) * texture)
    return gaussian_blur(image.clamp(0, 1)[None], generator, p=1.0, sigma=(0.3, 1.2))[0].clamp(0, 1)


def mesh_overlay(image: torch.Tensor, label: torch.Tensor, generator: torch.Generator, p_pole: float = 0.5
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Look at the scene through a fence: a semi-transparent diagonal wire mesh over the whole
    image (labels kept: a pet behind a see-through mesh is still the pet, as video ground truth
    marks it) and, with probability ``p_pole``, one or two opaque poles in front (labelled
    background, they hide what is behind them).

    Occlusion augmentation in the spirit of Cutout (DeVries & Taylor 2017) and GridMask
    (Chen et al. 2020), shaped as the occluders of garden and street video.

    Args:
        image: ``(3, H, W)`` float32 in [0, 1]; label: ``(H, W)`` int64; generator: randomness.

    Returns:
        New ``(image, label)``.
    """
    _, h, w = image.shape
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    spacing = _uniform(3.0, 10.0, generator)
    angle = _uniform(math.pi / 6, math.pi / 3, generator)
    width = _uniform(0.25, 0.8, generator)
    wire = torch.zeros(h, w)
    for direction in (angle, math.pi - angle):
        d = (xs * math.cos(direction) + ys * math.sin(direction) + _uniform(0, spacing, generator)) % spacing
        wire = torch.maximum(wire, (1 - (torch.minimum(d, spacing - d) / width)).clamp(0, 1))
    alpha = _uniform(0.15, 0.6, generator) * wire
    colour = torch.full((3, 1, 1), _uniform(0.2, 0.8, generator)) + 0.1 * torch.randn(3, 1, 1, generator=generator)
    image = image * (1 - alpha) + colour.clamp(0, 1) * alpha
    label = label.clone()
    if float(torch.rand(1, generator=generator)) < p_pole:
        for _ in range(_randint(1, 2, generator)):
            half = _uniform(0.5, 0.04 * w, generator)
            x0 = _uniform(0, w, generator)
            tilt = _uniform(-0.15, 0.15, generator)
            pole = ((xs - x0 - tilt * ys).abs() <= half).expand(h, w)
            shade = (torch.rand(3, 1, generator=generator) * 0.6 + 0.2)
            image[:, pole] = shade
            label[pole] = BACKGROUND
    return image.clamp(0, 1), label


def robust_augment(images: torch.Tensor, labels: torch.Tensor, backgrounds: torch.Tensor, generator: torch.Generator,
                   p_paste: float = 0.5, p_zoom: float = 0.25, jitter: bool = True, blur: bool = True,
                   p_onto_image: float = 0.5, p_recolour: float = 0.5, p_empty: float = 0.0, p_synthetic: float = 0.0,
                   p_mesh: float = 0.0, p_scene_recolour: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The robust recipe on one batch: each image becomes a copy-paste composite (``p_paste``),
    a zoomed-out copy (``p_zoom``) or stays as it is; then colour jitter and blur over the batch.

    A composite's canvas is, with probability ``p_onto_image``, another image of the batch with
    its labels (its pet stays: two pets, one usually small, as the copy-paste paper pastes
    between images), else a pet-free background drawn from ``backgrounds``. Zoom-out always
    uses a pet-free background. A pasted pet gets a new coat with probability ``p_recolour``
    (:func:`recolour`). With probability ``p_empty`` an image is replaced by a pet-free background
    labelled background throughout (a scene without a pet: the sample has no such photo).
    Each pet-free background drawn is, with probability ``p_synthetic``, a fresh synthetic
    scene (:func:`dead_leaves`, coloured from the real backgrounds' pixels) instead. Last, with
    probability ``p_mesh`` an image is seen through a fence (:func:`mesh_overlay`) and with
    probability ``p_scene_recolour`` the whole image is recoloured (:func:`recolour` on the
    scene, so no colour of pet or background names its class).

    Args:
        images: ``(N, 3, H, W)`` float32 [0, 1]; labels: ``(N, H, W)`` int64.
        backgrounds: ``(M, 3, H, W)`` pet-free images (:func:`pet_free_crops`,
            :func:`video_backgrounds`); ``M == 0`` skips zoom-out and pastes onto batch images only.
        generator: source of randomness.

    Returns:
        New ``(images, labels)`` of the same shapes and dtypes.
    """
    source_images, source_labels = images, labels
    images, labels = images.clone(), labels.clone()
    n, _, h, w = images.shape
    palette = None
    if p_synthetic and len(backgrounds):
        picks = torch.randint(0, len(backgrounds) * h * w, (4096,), generator=generator)  # random background pixels
        palette = backgrounds[picks // (h * w), :, (picks % (h * w)) // w, picks % w]  # (4096, 3), no copy of the pool

    def pet_free() -> torch.Tensor:
        if p_synthetic and float(torch.rand(1, generator=generator)) < p_synthetic:
            return dead_leaves(h, w, generator, palette)
        return backgrounds[_randint(0, len(backgrounds) - 1, generator)]

    draws = torch.rand(n, generator=generator)
    for i, d in enumerate(draws.tolist()):
        if p_empty and len(backgrounds) and float(torch.rand(1, generator=generator)) < p_empty:
            images[i] = pet_free()
            labels[i] = BACKGROUND
            continue
        onto_image = n > 1 and (len(backgrounds) == 0 or float(torch.rand(1, generator=generator)) < p_onto_image)
        if d < p_paste and (onto_image or len(backgrounds)):
            if onto_image:
                j = (i + _randint(1, n - 1, generator)) % n  # any other image of the batch
                images[i], labels[i] = copy_paste(source_images[i], source_labels[i], source_images[j], generator,
                                                  background_label=source_labels[j], p_recolour=p_recolour)
            else:
                images[i], labels[i] = copy_paste(source_images[i], source_labels[i], pet_free(), generator, p_recolour=p_recolour)
        elif d < p_paste + p_zoom and len(backgrounds):
            images[i], labels[i] = zoom_out(source_images[i], source_labels[i], pet_free(), generator)
    for i in range(n):
        if p_mesh and float(torch.rand(1, generator=generator)) < p_mesh:
            images[i], labels[i] = mesh_overlay(images[i], labels[i], generator)
        if p_scene_recolour and float(torch.rand(1, generator=generator)) < p_scene_recolour:
            images[i] = recolour(images[i], generator, brightness=(0.6, 1.2))
    if jitter:
        images = color_jitter(images, generator)
    if blur:
        images = gaussian_blur(images, generator)
    return images, labels
