"""Built-in offline demo data: procedurally painted landscapes in Kaggle's layout.

Each picture is one small scene (sky, sun or moon, hills, trees, water with a
reflection) rendered either as a "monet" (short coloured brush strokes over a
softened base) or as a "photo" (crisp edges, fine sensor-like noise). Everything
derives from integer seeds, so the pipeline runs with no network and no image
files in the repository.
"""
from __future__ import annotations

import hashlib
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEMO_VERSION: int = 1  # bump when the pictures change, so caches re-run

SIZE = 256
STYLES = ("monet", "photo")
_TIMES = ("dawn", "day", "dusk", "night")
_TIME_ODDS = (0.25, 0.4, 0.23, 0.12)  # mostly daylight, like Monet's own subjects
# Two sky palettes per time of day (top, middle, horizon); a scene mixes them.
_SKIES = {
    "dawn": [[(52, 60, 120), (200, 130, 160), (250, 190, 130)],
             [(80, 100, 160), (235, 170, 165), (255, 225, 165)]],
    "day": [[(40, 100, 190), (110, 165, 225), (205, 225, 240)],
            [(75, 135, 205), (150, 195, 230), (235, 235, 215)]],
    "dusk": [[(30, 30, 80), (150, 60, 110), (250, 140, 60)],
             [(70, 45, 110), (205, 95, 95), (255, 185, 95)]],
    "night": [[(5, 8, 25), (15, 25, 60), (40, 60, 100)],
              [(12, 12, 35), (30, 40, 80), (70, 75, 115)]],
}
_LIGHT = {"dawn": (255, 215, 160), "day": (255, 250, 225),
          "dusk": (255, 140, 70), "night": (235, 235, 210)}  # sun / moon colour
_LEVEL = {"dawn": 0.75, "day": 1.0, "dusk": 0.55, "night": 0.28}  # how lit the land is
_LANDS = np.array([(70, 105, 60), (85, 95, 125), (105, 85, 115), (115, 115, 70),
                   (60, 90, 85)], np.float32)  # hill colours before fog and light

_Y = np.arange(SIZE, dtype=np.float32)[:, None]  # row coordinate (column vector)
_X = np.arange(SIZE, dtype=np.float32)[None, :]  # column coordinate (row vector)


def _rng(key: int, stream: int) -> np.random.Generator:
    # Separate streams so the brush strokes never change the scene itself.
    return np.random.default_rng([key % 2**64, stream])


def _noise(rng: np.random.Generator, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid, upscaled bicubically."""
    grid = Image.fromarray(rng.random((cells_y, cells_x), dtype=np.float32))
    return np.asarray(grid.resize((SIZE, SIZE), Image.BICUBIC)).clip(0, 1)


def _ridge(rng: np.random.Generator, sharp: bool) -> np.ndarray:
    """A random silhouette profile in [0, 1] over x: a few sines of rising frequency."""
    x = np.arange(SIZE, dtype=np.float32) / SIZE
    prof = np.zeros(SIZE, np.float32)
    for j in range(4):
        wave = np.sin(2 * np.pi * rng.uniform(0.4, 1.4) * (j + 1) * x + rng.uniform(0, 2 * np.pi))
        # 1 - |sin| has cusps at its peaks: mountains; a plain sine rolls: hills.
        # Cusped waves fade faster with frequency, else ridges look like saw teeth.
        prof += rng.uniform(0.4, 1.0) * ((1 - np.abs(wave)) / (j + 1) ** 2 if sharp else wave / (j + 1))
    return (prof - prof.min()) / (np.ptp(prof) + 1e-6)


def _blend(img: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    # float32 throughout: half the memory traffic of float64, and precise enough for 8-bit output.
    return img + (np.asarray(colour, np.float32) - img) * alpha.astype(np.float32)[..., None]


def _render_scene(rng: np.random.Generator):
    """Returns (float RGB array, region map 0=sky 1=land 2=water, horizon row)."""
    time = _TIMES[rng.choice(len(_TIMES), p=_TIME_ODDS)]
    pal = np.array(_SKIES[time], np.float32)
    sky = (pal[0] + (pal[1] - pal[0]) * rng.random() + rng.normal(0, 10, (3, 3))).astype(np.float32)
    light, level = np.array(_LIGHT[time], np.float32), _LEVEL[time]
    horizon = int(rng.uniform(0.35, 0.65) * SIZE)

    # Sky: piecewise-linear gradient top -> middle -> horizon colour.
    t = np.clip(_Y / horizon, 0, 1)
    split = rng.uniform(0.35, 0.7)
    img = (sky[0] + (sky[1] - sky[0]) * np.clip(t / split, 0, 1)[..., None]
           + (sky[2] - sky[1]) * np.clip((t - split) / (1 - split), 0, 1)[..., None])
    img = np.broadcast_to(img, (SIZE, SIZE, 3)).copy()
    if time == "night":  # a sprinkle of stars; hills drawn later cover the low ones
        sy, sx = rng.integers(0, horizon, 120), rng.integers(0, SIZE, 120)
        img[sy, sx] = _blend(img[sy, sx], light, rng.uniform(0.3, 0.9, 120))

    # Sun or moon: a hard disc plus a soft glow; low in the sky at dawn and dusk.
    low = time in ("dawn", "dusk")
    sun_x = rng.uniform(0.12, 0.88) * SIZE
    sun_y = horizon * (rng.uniform(0.5, 0.95) if low else rng.uniform(0.15, 0.65))
    radius = rng.uniform(6, 10) if time == "night" else rng.uniform(8, 18)
    dist = np.hypot(_X - sun_x, _Y - sun_y)
    img = _blend(img, light, 0.65 * np.exp(-(dist / (radius * rng.uniform(2.5, 5))) ** 2))
    img = _blend(img, light, np.clip(radius + 0.5 - dist, 0, 1))

    # Soft clouds: horizontally stretched noise, fading out towards the horizon.
    if rng.random() < 0.7:
        cloud = _noise(rng, 8, 3) * 0.7 + _noise(rng, 16, 6) * 0.3
        alpha = np.clip((cloud - rng.uniform(0.45, 0.6)) * 3, 0, 1) * np.clip(1.1 - t, 0, 1)
        cloud_colour = (0.5 * light + 0.5 * sky[2]) * (0.5 + 0.5 * level)
        img = _blend(img, cloud_colour, alpha * rng.uniform(0.5, 0.9))

    # Hills / mountains, far to near; far layers are taller and fade into the sky.
    region = np.zeros((SIZE, SIZE), np.uint8)
    above = _Y < horizon
    layers = int(rng.integers(1, 4))
    texture = _noise(rng, 24, 24)
    for k in range(layers):
        near = (k + 1) / layers
        height = horizon * (rng.uniform(0.15, 0.45) if k == 0 else rng.uniform(0.05, 0.2))
        top = horizon - 2 - height * _ridge(rng, sharp=k == 0 and rng.random() < 0.5)
        mask = np.clip(_Y - top + 0.5, 0, 1) * above
        land = _LANDS[rng.integers(len(_LANDS))] * level * (0.6 + 0.4 * light / 255)
        fog = 0.7 * (1 - near) + 0.15
        colour = (land * (1 - fog) + sky[2] * fog) * (0.85 + 0.3 * texture[..., None])
        img = img + (colour - img) * mask[..., None]
        region[mask > 0.5] = 1

    # A row of trees on the far shore, sometimes: rounded crowns or pointed firs.
    if rng.random() < 0.55:
        n = int(rng.integers(5, 30))
        start = rng.uniform(-0.2, 0.6) * SIZE
        centres = start + rng.uniform(0, rng.uniform(0.3, 0.8) * SIZE, (n, 1))
        width, tall = rng.uniform(3, 9, (n, 1)), rng.uniform(6, 24, (n, 1))
        u = np.clip(1 - np.abs(_X - centres) / width, 0, 1)
        crowns = tall * (u if rng.random() < 0.4 else np.sqrt(1 - (1 - u) ** 2))
        top = horizon - crowns.max(axis=0).astype(np.float32)
        mask = np.clip(_Y - top + 0.5, 0, 1) * above * (top < horizon - 0.5)
        colour = np.array([35, 60, 35], np.float32) * (0.4 + 0.6 * level)
        img = _blend(img, colour * (0.8 + 0.4 * texture[..., None]), mask)
        region[mask > 0.5] = 1

    # Water: the scene above mirrored, shifted sideways in thin ripple bands,
    # darkened and tinted towards the viewer.
    rows = np.arange(horizon, SIZE)
    depth = ((rows - horizon) / (SIZE - horizon)).astype(np.float32)[:, None]
    bands, shade = _noise(rng, 64, 4)[horizon:], _noise(rng, 96, 8)[horizon:]
    dx = (bands - 0.5) * rng.uniform(6, 16) * (0.2 + depth)
    src_x = np.clip(np.rint(_X + dx), 0, SIZE - 1).astype(np.intp)
    src_y = np.clip(2 * horizon - 1 - rows, 0, horizon - 1)[:, None]
    water = img[src_y, src_x]
    tint = sky[0] * 0.45 + np.array([15, 40, 45], np.float32) * level
    water = water * (0.75 - 0.25 * depth[..., None]) + tint * (0.25 + 0.25 * depth[..., None])
    water *= 0.88 + 0.24 * shade[..., None]
    glitter = np.exp(-((_X - sun_x) / (radius * (1 + 3 * depth))) ** 2)
    water = _blend(water, light, glitter * np.clip((shade - 0.55) * 4, 0, 1) * 0.8)
    img[horizon:] = water
    region[horizon:] = 2

    # A grassy bank in a bottom corner, sometimes, for a foreground.
    if rng.random() < 0.4:
        dist_side = _X if rng.random() < 0.5 else SIZE - 1 - _X
        reach = rng.uniform(0.2, 0.55) * SIZE
        bank = rng.uniform(0.08, 0.3) * SIZE * np.sqrt(np.clip(1 - (dist_side / reach) ** 2, 0, 1))
        bank = bank + 3 * np.sin(_X / rng.uniform(4, 9))
        mask = np.clip(_Y - (SIZE - bank) + 0.5, 0, 1)
        grass = np.array([(70, 110, 45), (120, 115, 55)][rng.integers(2)], np.float32)
        img = _blend(img, grass * level * (0.75 + 0.5 * texture[..., None]), mask)
        region[mask > 0.5] = 1
    return img, region, horizon


def _brush_strokes(scene: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Covers a softened copy of the scene with short strokes coloured from it."""
    canvas = Image.fromarray(scene).filter(ImageFilter.GaussianBlur(1.5))
    n = 4200  # ~30 px per stroke: covers the canvas about twice, so little base shows
    cy, cx = rng.uniform(0, SIZE, n), rng.uniform(0, SIZE, n)
    where = region[cy.astype(np.intp), cx.astype(np.intp)]
    # Orientation flow: swirling about a tilt in the sky, gently tilted on land, flat on water.
    phase, tilt = rng.uniform(0, 2 * np.pi, 2), rng.uniform(-0.8, 0.8)
    swirl = 0.5 * np.sin(cx / 31 + phase[0]) + 0.4 * np.cos(cy / 23 + phase[1]) + tilt
    angle = np.select([where == 0, where == 1],
                      [swirl + rng.normal(0, 0.3, n), rng.normal(0, 0.45, n)],
                      rng.normal(0, 0.08, n))
    length = rng.uniform(4, 14, n) * np.where(where == 2, 1.3, 1.0)
    width = rng.integers(2, 6, n)
    half_x, half_y = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    # Colours come from the softened copy: area averages, so stars don't become confetti.
    soft = np.asarray(canvas, np.float32)
    colour = (soft[cy.astype(np.intp), cx.astype(np.intp)]
              + rng.normal(0, 9, (n, 3)) + rng.normal(0, 7, (n, 1)))
    colour = np.clip(colour, 0, 255).astype(np.uint8)
    order = np.argsort(-width, kind="stable")  # broad strokes first, fine ones on top
    ends = np.stack([cx - half_x, cy - half_y, cx + half_x, cy + half_y], 1)[order]
    draw = ImageDraw.Draw(canvas)
    for xy, w, rgb in zip(ends.tolist(), width[order].tolist(), colour[order].tolist()):
        draw.line(xy, fill=tuple(rgb), width=w)
    return canvas


def paint_landscape(seed: int, style: str) -> Image.Image:
    """One 256x256 RGB landscape. style is "monet" (impressionist brush strokes) or
    "photo" (the same scene, smooth/sharp, photographic). Same (seed, style) ->
    identical pixels."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    scene, region, _ = _render_scene(_rng(seed, 0))
    if style == "monet":
        return _brush_strokes(np.clip(scene, 0, 255).astype(np.uint8), region, _rng(seed, 1))
    noise_rng = _rng(seed, 2)  # fine grain: mostly luminance, a little colour
    grain = (2.5 * noise_rng.standard_normal((SIZE, SIZE, 1), np.float32)
             + 1.2 * noise_rng.standard_normal((SIZE, SIZE, 3), np.float32))
    return Image.fromarray(np.clip(scene + grain, 0, 255).astype(np.uint8))


def _digest(*parts) -> str:
    return hashlib.sha256(":".join(map(str, ("painter-demo", DEMO_VERSION, *parts))).encode()).hexdigest()


def write_demo_set(out_dir: pathlib.Path, seed: int, n_paintings: int, n_photos: int,
                   progress: bool = True) -> dict:
    """Writes out_dir/monet_jpg/<name>.jpg (n_paintings) and out_dir/photo_jpg/<name>.jpg
    (n_photos) as baseline RGB JPEGs, quality 95, 256x256, in Kaggle's layout.
    Paintings and photos are different scenes. Deterministic: the same arguments
    give byte-identical files. Returns {"monet_jpg": n_paintings, "photo_jpg": n_photos}."""
    from .progress import progress_bar

    out_dir = pathlib.Path(out_dir)
    jobs = [("monet_jpg", "monet", i) for i in range(n_paintings)]
    jobs += [("photo_jpg", "photo", i) for i in range(n_photos)]
    names: set[str] = set()
    for folder, style, index in progress_bar(jobs, desc="demo data", disable=not progress):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        # Scene key differs per folder, so paintings and photos show different scenes.
        scene_key = int(_digest(seed, folder, index, "scene")[:16], 16)
        name, salt = _digest(seed, folder, index, "name")[:10], 0
        while name in names:  # 40-bit names practically never collide; stay safe anyway
            salt += 1
            name = _digest(seed, folder, index, "name", salt)[:10]
        names.add(name)
        image = paint_landscape(scene_key, style)
        image.save(out_dir / folder / f"{name}.jpg", "JPEG", quality=95, progressive=False)
    return {"monet_jpg": n_paintings, "photo_jpg": n_photos}
