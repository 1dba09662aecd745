"""The robust recipe's augmentations keep image and labels aligned, keep shapes, dtypes and
ranges, and repeat exactly for a seed.

Alignment is checked on synthetic images whose label is a function of the pixel colour: pet
pixels pure red, border pixels pure blue, background pixels green (in the images and the
backgrounds alike). After a geometric augmentation every pixel's colour must still name its
label (bilinear resizing mixes colours only along edges, so the check allows a thin seam).
"""

import pytest
import torch

from segedge.training.augment import (
    BACKGROUND,
    PET,
    color_jitter,
    copy_paste,
    gaussian_blur,
    pet_free_crops,
    robust_augment,
    zoom_out,
)

BORDER = 2
COLOURS = {PET: (1.0, 0.0, 0.0), BACKGROUND: (0.0, 1.0, 0.0), BORDER: (0.0, 0.0, 1.0)}


def synthetic(n=6, size=64, seed=0):
    """Images whose colour encodes the label: an ellipse of pet with a border ring, random
    size and place, on background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.full((n, size, size), BACKGROUND, dtype=torch.int64)
    for i in range(n):
        cy, cx = torch.randint(16, size - 16, (2,), generator=g).tolist()
        r = int(torch.randint(8, 12, (1,), generator=g))
        d = ((yy - cy) ** 2 + (xx - cx) ** 2).float().sqrt()
        labels[i][d < r + 4] = BORDER
        labels[i][d < r] = PET
    return paint(labels), labels


def paint(labels):
    palette = torch.tensor([COLOURS[c] for c in range(3)])  # (3 classes, 3 channels)
    return palette[labels].permute(0, 3, 1, 2).contiguous()


def label_from_colour(images):
    return images.argmax(1).where(images.amax(1) > 0, torch.full_like(images[:, 0], BACKGROUND, dtype=torch.int64))


def assert_aligned(images, labels, seam=0.08):
    """Colour and label agree on the pet and border pixels (of either) of a batch, but for a
    thin seam along resized edges (here under 4%; labels shifted by 3 pixels: 24-57%; labels
    resized with "nearest" instead of "nearest-exact", half a pixel off: 16% after zoom-out)."""
    colour = label_from_colour(images)
    objects = (colour != BACKGROUND) | (labels != BACKGROUND)
    disagree = float(((colour != labels) & objects).sum() / objects.sum())
    assert disagree <= seam, f"{100 * disagree:.1f}% of pet/border pixels have a colour that is not their label"


def green(n, size=64):
    return paint(torch.full((n, size, size), BACKGROUND, dtype=torch.int64))


@pytest.mark.parametrize("op", [copy_paste, zoom_out])
def test_geometry_moves_labels_with_pixels(op):
    images, labels = synthetic()
    g = torch.Generator().manual_seed(1)
    results = [op(images[i], labels[i], green(1)[0], g) for i in range(len(images))]
    for image, label in results:
        assert image.shape == images[0].shape and image.dtype == torch.float32
        assert label.shape == labels[0].shape and label.dtype == torch.int64
        assert set(label.unique().tolist()) <= {PET, BACKGROUND, BORDER}
    assert_aligned(torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results]))


def test_copy_paste_moves_and_rescales_the_pet():
    images, labels = synthetic(n=20)
    g = torch.Generator().manual_seed(2)
    before = (labels == PET).float().mean((1, 2))
    results = [copy_paste(images[i], labels[i], green(1)[0], g) for i in range(20)]
    after = torch.stack([(label == PET).float().mean() for _, label in results])
    assert (after > 0).all()  # the pet is kept
    assert (after / before).min() < 0.5 and (after / before).max() > 1.5  # shrunk and grown
    centres = torch.stack([torch.nonzero(label == PET).float().mean(0) for _, label in results])
    assert centres.std(0).min() > 5  # pasted at various places (pixels)


def test_pet_free_crops_hold_no_pet():
    images, labels = synthetic(n=8)
    crops = pet_free_crops(images, labels, torch.Generator().manual_seed(0), min_side=0.2)
    assert crops.ndim == 4 and crops.shape[1:] == images.shape[1:] and len(crops) > 0
    assert (label_from_colour(crops) == BACKGROUND).all()  # only green: no pet, no border


def test_colour_and_blur_change_only_the_image_and_stay_in_range():
    images = torch.rand(8, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    jittered = color_jitter(images, g)
    blurred = gaussian_blur(images, g, p=1.0)
    for out in (jittered, blurred):
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert not torch.equal(out, images)
    # a blur averages neighbours: it lowers the variance of white noise
    assert blurred.var() < 0.8 * images.var()


def test_robust_augment_is_aligned_and_deterministic_by_seed():
    images, labels = synthetic(n=16)  # recolouring off: colours must keep naming labels
    backgrounds = green(4)
    a = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(5), jitter=False, blur=False, p_recolour=0.0)
    b = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(5), jitter=False, blur=False, p_recolour=0.0)
    c = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(6), jitter=False, blur=False, p_recolour=0.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert a[0].shape == images.shape and a[1].shape == labels.shape and a[1].dtype == torch.int64
    assert_aligned(*a)
    jittered = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(5), p_recolour=0.0)
    assert torch.equal(jittered[1], a[1])  # colour and blur come after geometry, image only
    assert torch.equal(robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(5), p_recolour=0.0)[0], jittered[0])


def test_copy_paste_onto_another_image_keeps_both_pets_aligned():
    images, labels = synthetic(n=12, seed=3)
    g = torch.Generator().manual_seed(4)
    for i in range(0, 12, 2):
        image, label = copy_paste(images[i], labels[i], images[i + 1], g, background_label=labels[i + 1])
        assert_aligned(image[None], label[None])
        # the canvas's own pet survives wherever the pasted one does not cover it
        uncovered = (labels[i + 1] == PET) & (label == labels[i + 1])
        assert uncovered.sum() > 0
        assert (label == PET).sum() > 0


def test_copy_paste_squeezes_width_only():
    images, labels = synthetic(n=1, seed=5)
    g = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(30):
        _, label = copy_paste(images[0], labels[0], green(1)[0], g, aspect=(0.5, 0.5))
        rows, cols = torch.nonzero(label != BACKGROUND, as_tuple=True)
        ratios.append((cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1))
    # a round pet pasted with half its width comes out about half as wide as tall
    assert 0.35 < float(torch.tensor(ratios).float().median()) < 0.65


def test_recolour_rotates_hue_keeps_luma_and_can_drop_colour():
    from segedge.training.augment import recolour

    image = torch.rand(3, 8, 8) * 0.5 + 0.25
    luma = lambda x: (torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1) * x).sum(0)  # noqa: E731
    rotated = recolour(image, torch.Generator().manual_seed(0), hue=3.0, brightness=(1.0, 1.0), p_gray=0.0)
    assert not torch.allclose(rotated, image, atol=1e-3)  # the coat changed
    assert torch.allclose(luma(rotated), luma(image), atol=0.02)  # a hue rotation keeps brightness (up to clamping)
    darker = recolour(image, torch.Generator().manual_seed(0), hue=0.0, brightness=(0.5, 0.5), p_gray=0.0)
    assert torch.allclose(darker, image * 0.5, atol=1e-5)
    gray = recolour(image, torch.Generator().manual_seed(0), brightness=(1.0, 1.0), p_gray=1.0)
    assert torch.allclose(gray[0], gray[1], atol=1e-5) and torch.allclose(gray[1], gray[2], atol=1e-5)


def test_empty_scenes_are_backgrounds_labelled_background():
    images, labels = synthetic(n=32)
    backgrounds = green(3)
    out, out_labels = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(0), jitter=False, blur=False,
                                     p_recolour=0.0, p_empty=0.5)
    empty = (out_labels == BACKGROUND).flatten(1).all(1)
    assert 6 <= int(empty.sum()) <= 26  # about half of 32
    assert torch.equal(out[empty], green(int(empty.sum())))  # the scene is a background, unchanged
    none = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(0), p_empty=0.0)[1]
    assert not (none == BACKGROUND).flatten(1).all(1).any()  # without it every image keeps a pet


def test_dead_leaves_is_a_cluttered_scene_in_the_palette_and_repeats_by_seed():
    from segedge.training.augment import dead_leaves

    palette = torch.tensor([[0.2, 0.5, 0.1], [0.5, 0.35, 0.2]])  # grass green, bark brown
    a = dead_leaves(64, 96, torch.Generator().manual_seed(1), palette)
    assert a.shape == (3, 64, 96) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, dead_leaves(64, 96, torch.Generator().manual_seed(1), palette))
    assert not torch.equal(a, dead_leaves(64, 96, torch.Generator().manual_seed(2), palette))
    # colours stay near the palette: blue is the weakest channel of both entries
    assert float(a[2].mean()) < float(a[0].mean()) and float(a[2].mean()) < float(a[1].mean())
    # clutter: both colours cover a real share of the scene (one flat leaf would not)
    greener = (a[1] - a[0]) > 0
    assert 0.1 < float(greener.float().mean()) < 0.9
    # no pet-like blank: local variation everywhere (texture), unlike a flat fill
    assert float(a.std()) > 0.03


def test_mesh_overlay_keeps_labels_under_the_wire_and_labels_poles_background():
    from segedge.training.augment import mesh_overlay

    images, labels = synthetic(n=8, seed=2)
    changed_pixels, poles = 0.0, 0
    for i in range(8):
        image, label = mesh_overlay(images[i], labels[i], torch.Generator().manual_seed(i), p_pole=0.0)
        assert torch.equal(label, labels[i])  # a see-through mesh changes no label
        changed_pixels += float((image - images[i]).abs().amax(0).gt(0.05).float().mean())
        image, label = mesh_overlay(images[i], labels[i], torch.Generator().manual_seed(i), p_pole=1.0)
        hidden = (label != labels[i])
        assert (label[hidden] == BACKGROUND).all()  # poles only ever turn pixels into background
        poles += int(hidden.any())
        # where a pole hides the pet, the pixel shows the pole's colour, no longer the pet's pure red
        red = torch.tensor(COLOURS[PET]).view(3, 1)
        covered = hidden & (labels[i] == PET)
        assert bool(((image[:, covered] - red).abs().amax(0) > 0.15).all())
    assert changed_pixels / 8 > 0.1  # the mesh covers a real share of the image
    assert poles >= 3  # most synthetic pets sit where a pole can cross them


def test_scene_options_keep_alignment_of_geometry_and_stay_deterministic():
    images, labels = synthetic(n=16)
    backgrounds = green(4)
    kwargs = dict(jitter=False, blur=False, p_recolour=0.0, p_synthetic=1.0, p_mesh=0.0, p_scene_recolour=0.0)
    a = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(3), **kwargs)
    b = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # with synthetic backgrounds the pet's pixels still show the pet's red (but for resized seams)
    pet = a[1] == PET
    red = (a[0][:, 0] > 0.6) & (a[0][:, 1] < 0.4) & (a[0][:, 2] < 0.4)
    assert pet.any() and float(red[pet].float().mean()) > 0.92
    # and some composites are on synthetic scenes: textured, so most of their background pixels are not the
    # flat green of the backgrounds given (the scenes' palette), unlike composites on those backgrounds
    background = a[1] == BACKGROUND
    textured = background & ((a[0] - torch.tensor(COLOURS[BACKGROUND]).view(1, 3, 1, 1)).abs().amax(1) > 0.02)
    share = textured.flatten(1).sum(1) / background.flatten(1).sum(1)
    assert int((share > 0.4).sum()) >= 3
    recoloured = robust_augment(images, labels, backgrounds, torch.Generator().manual_seed(3), **{**kwargs, "p_scene_recolour": 1.0})
    assert torch.equal(recoloured[1], a[1]) and not torch.equal(recoloured[0], a[0])  # colour only, geometry kept
