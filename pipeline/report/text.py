"""The report's words, the same in the Markdown and the HTML: numbers and durations, the ranking's cells,
where the runs were made, the floor and baseline sentences, captions and each run's card."""

from __future__ import annotations

import re
from typing import Callable

from .. import records
from .collect import RunView, _number, baselines


def _fmt(value) -> str:
    """4 significant digits, thousands without exponent."""
    value = _number(value)
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _fmt_se(value, se) -> str:
    """A value with its standard error: "57.6 ± 0.8" (the error in the value's last shown decimal place,
    with more places where it would read 0: "133.0 ± 0.5", not "133 ± 0")."""
    text = _fmt(value)
    if se is None:
        return text
    decimals = shown = len(text.split(".")[1]) if "." in text else 0
    while se > 0 and round(se, decimals) == 0 and decimals < 6:
        decimals += 1
    if decimals > shown:
        text = f"{_number(value):,.{decimals}f}"
    return f"{text} ± {se:.{decimals}f}"


def _int(value) -> str | None:
    value = _number(value)
    return None if value is None else f"{int(round(value)):,}"


def duration(seconds) -> str | None:
    seconds = _number(seconds)
    if seconds is None:
        return None
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def kaggle_rank(view: RunView) -> str | None:
    """The public rank as 'R of N (top P%)', '(status)' before Kaggle scored it, or None."""
    standing = view.standing or {}
    rank = _number(view.row.get("public_rank")) or _number(standing.get("rank"))
    if rank is None:
        status = standing.get("status")
        return f"({status})" if isinstance(status, str) and status not in ("complete", "") else None
    text = f"{int(rank)}"
    if view.teams:
        text += f" of {view.teams:,}"
    top = _number(standing.get("top_percent"))
    if top is not None:
        text += f" (top {top:g}%)"
    return text


def arch_text(view: RunView) -> str | None:
    """The architecture, "(photos)" after it for a translation run: what it consumes, without a column."""
    arch = view.row.get("arch")
    if arch is None:
        return None
    return f"{arch} (photos)" if view.translates else str(arch)


# (key, header, numeric column?, cell text)
COLUMNS: list[tuple[str, str, bool, Callable[[RunView], str | None]]] = [
    ("rank", "rank", True, lambda v: "" if v.setting else str(v.rank)),  # a seed: under its setting's rank
    ("run", "run", False, lambda v: f"↳ {v.title}" if v.setting else v.title),
    ("where", "where", False, lambda v: v.where),
    ("arch", "arch", False, arch_text),
    ("resolution", "resolution", True, lambda v: None if _int(v.row.get("resolution")) is None
     else f"{_int(v.row.get('resolution'))} px"),
    ("steps", "steps", True, lambda v: _int(v.row.get("steps"))),
    ("train_time", "train time", True, lambda v: duration(v.row.get("train_seconds"))),
    ("swd", "SWD", True, lambda v: None if v.swd is None
     else ("≈ " if v.tied_by("swd") else "") + _fmt_se(v.swd, v.swd_se)),
    ("swd_finest", "SWD, finest level", True,
     lambda v: None if _number(v.row.get("swd_finest")) is None
     else _fmt_se(v.row["swd_finest"], _number(v.row.get("swd_finest_se")))),
    ("seeds", "seeds", False,
     lambda v: f"{v.row['seeds']} (sd {_fmt(v.row.get('seed_sd'))})" if v.seeds else None),
    ("fid", "FID", True, lambda v: None if _number(v.row.get("fid")) is None else _fmt(v.row["fid"])),
    ("kid", "KID", True, lambda v: None if _number(v.row.get("kid")) is None else _fmt(v.row["kid"])),
    ("mifid", "MiFID", True, lambda v: None if _number(v.row.get("mifid")) is None
     else ("≈ " if v.tied_by("mifid") else "") + _fmt_se(v.row["mifid"], _number(v.row.get("mifid_se")))),
    ("copies", "copies", True, lambda v: _int(v.row.get("copies"))),
    ("public_mifid", "Kaggle MiFID", True,
     lambda v: None if _number(v.row.get("public_mifid")) is None else _fmt(v.row["public_mifid"])),
    ("public_rank", "Kaggle rank", False, kaggle_rank),
    ("status", "status", False, lambda v: v.row.get("status")),
]


def config_columns(views: list[RunView]) -> list[tuple[str, str, bool, Callable[[RunView], str | None]]]:
    """A column for each config key the leaderboard was asked to show (a sweep's settings): the table names
    those columns by the dotted key, which no other column name has."""
    keys = [key for key in (views[0].row if views else {}) if "." in key]
    return [(key, key, False, lambda v, key=key: _setting_text(v.row.get(key))) for key in keys]


def _setting_text(value) -> str | None:
    if isinstance(value, float):
        return None if _number(value) is None else _fmt(value)  # NaN: a baseline, or a run without that key
    return None if value is None else str(value)


def ranking(views: list[RunView]) -> tuple[list[tuple[str, str, bool]], list[list[str | None]]]:
    """The table's columns (key, header, numeric) and rows, without columns empty for every run
    ("where" only when some run is from Kaggle); a sweep's settings follow the architecture."""
    after_arch = [key for key, *_ in COLUMNS].index("arch") + 1
    columns = [*COLUMNS[:after_arch], *config_columns(views), *COLUMNS[after_arch:]]
    cells = [[get(v) for _, _, _, get in columns] for v in views]
    cells = [[None if cell is None else str(cell) for cell in row] for row in cells]
    keep = []
    for i, (key, header, numeric, _) in enumerate(columns):
        if key == "where" and all(v.where == "local" for v in views):
            continue
        if key in ("rank", "run") or any(row[i] is not None for row in cells):
            keep.append(i)
    return [columns[i][:3] for i in keep], [[row[i] for i in keep] for row in cells]


def provenance(views: list[RunView], machine: str | None = None) -> str | None:
    """One line: on what and when the runs were made, when the files say, and whether the untouched photos
    stand among them."""
    groups: dict[str, list[str | None]] = {}
    for view in views:
        if view.baseline or view.seeds:
            continue  # scored photos, not a run made anywhere; a setting's row, whose seeds are rows of their own
        if view.where == "kaggle":
            label = f"Kaggle {view.device}" if view.device else "Kaggle"
        else:
            label = f"{machine} ({view.device})" if machine and view.device else machine or view.device or "unknown device"
        groups.setdefault(label, []).append(view.date)
    if not groups or (set(groups) == {"unknown device"} and not any(sum(groups.values(), []))):
        return None
    parts = []
    for label, dates in groups.items():
        known = sorted(d for d in dates if d)
        when = "" if not known else f", {known[0]}" if known[0] == known[-1] else f", {known[0]} to {known[-1]}"
        parts.append(f"{label} ({len(dates)} run{'s' * (len(dates) != 1)}{when})")
    photos = sum(view.baseline for view in views)  # rows of the table too: the count says what they are
    them = "them" if sum(map(len, groups.values())) > 1 else "it"
    beside = "" if not photos else f"; beside {them}, the untouched photos" + (
        f" of {photos} data sources" if photos > 1 else "") + " as the baseline to beat"
    return "Runs from " + "; ".join(parts) + beside + "."


def floor_sentences(found: dict[float, list[str]], views: list[RunView]) -> list[str]:
    if not found:
        return ["No real-vs-real SWD floor in the runs' scores (they were scored before painter recorded it)."]
    errors = {v.floor: v.floor_se for v in views if v.floor is not None}

    def floor(value: float) -> str:
        return _fmt_se(value, errors.get(value))

    if len(found) == 1:
        value = next(iter(found))
        return [f"SWD of one half of the paintings against the other: {floor(value)}; a run at the floor is as "
                "close to the paintings as real paintings are."]
    each = "; ".join(f"{floor(value)} for {', '.join(runs)}" for value, runs in sorted(found.items()))
    return ["The runs' floors differ: SWD's floor depends on the paintings and on how many images each side "
            "compares (half the paintings, or fewer when a run has fewer images, as a small photo set).",
            f"SWD of one half of the paintings against the other, per run: {each}; a run at its floor is as "
            "close to the paintings as real paintings are."]


def _beside(view: RunView, photos: RunView) -> bool:
    """Whether a run was scored beside these photos: its score.json names them, or names none (a run
    scored before painter scored the photos)."""
    named = view.score.get("photos_baseline")
    name = named.get("name") if isinstance(named, dict) else None
    return name is None or name == photos.name


def baseline_sentences(views: list[RunView]) -> list[str]:
    """Per baseline, how many scored runs are closer to the paintings (lower SWD, beyond the uncertainty) than
    the photos, and how many are level with them."""
    photos = baselines(views)
    sentences = []
    for base in photos:
        what = ("the " + base.title if len(photos) > 1 else "the untouched photos") + \
            f" (SWD {_fmt_se(base.swd, base.swd_se)})"
        runs = [v for v in views if not v.baseline and not v.setting and v.swd is not None and _beside(v, base)]
        if not runs:
            sentences.append(f"No scored run to compare with {what}, the baseline to beat.")
            continue
        verdicts = [records.compare(v.swd, v.swd_se, base.swd, base.swd_se) for v in runs]
        beat, level = verdicts.count("ahead"), verdicts.count("tied")
        verb = "scores" if beat == 1 or (beat == 0 and len(runs) == 1) else "score"
        text = f"{beat} of {len(runs)} run{'s' * (len(runs) != 1)} {verb} below {what}"
        if beat:
            text += ": closer to Monet than the photos themselves."
            if level:
                text += f" {level} more {'is' if level == 1 else 'are'} level with them within the uncertainty."
        elif level:
            text += (f" beyond the uncertainty; {level} {'is' if level == 1 else 'are'} level with them: none is "
                     "surely closer to Monet than the photos themselves.")
        else:
            text += ": submitting the photos themselves would be closer to Monet."
        sentences.append(text)
    return sentences


NUMBERS_NOTE = ("Lower is better for every number: SWD (×10³, sliced Wasserstein distance on Laplacian-pyramid "
                "patches), FID, KID and MiFID (Kaggle's metric) against the Monet paintings; copies are generated "
                "images that are near-copies of a painting. SWD is the mean over independent splits ± its standard "
                "error; FID's and MiFID's ± come from resampling the generated images. ≈ marks a run level with the "
                f"one above it by what ranks them, MiFID or else SWD (the two differ by less than {records.TIE_Z:g} "
                "standard errors of the difference). The finest level (256 px) is where blur "
                "shows: a run can win the mean on overall colour alone.")


def translation_note(views: list[RunView]) -> str:
    return (" \"(photos)\" after an architecture: the run translates photos into paintings instead of drawing "
            "from noise." if any(v.translates for v in views) else "")


EVAL_CAPTION = ("SWD during training is measured on a small sample at the training resolution, so its values "
                "are a guide to progress rather than the final score; the dashed line is the final score's floor.")
EVAL_PHOTOS = ("The dotted line is the untouched photos' final score (at 256 px, on the whole scoring sample): "
               "the level a run's final score must get below, not one its training curve can be read against.")


def eval_caption(views: list[RunView]) -> str:
    return EVAL_CAPTION + (" " + EVAL_PHOTOS if baselines(views) else "")


def final_swd_caption(views: list[RunView]) -> str:
    return ("Final SWD of each scored run (whiskers: ± 2 standard errors); the dashed line is the real-vs-real "
            "floor.") + (
        " The hatched bar and the dotted line are the untouched photos: the baseline to beat." if baselines(views)
        else "")


LEVELS_CAPTION = ("SWD per pyramid level. The finest level (256 px) holds the brushwork, and blur shows there; "
                  "the coarsest (16 px) holds overall colour and tone. A run can win the mean on colour alone, so "
                  "read a profile against the dashed floor (as close as real paintings get) and the photos' dotted "
                  "line.")


def card_facts(view: RunView) -> list[tuple[str, str, str | None]]:
    """(label, text, link) lines of a run's card; text taken from files, unescaped."""
    facts: list[tuple[str, str, str | None]] = []
    if view.baseline:
        facts.append(("baseline", "the competition's photos as they are, scored like a run's images: a run "
                                  "must score below them to be worth submitting", None))
    swd = view.score.get("swd") if isinstance(view.score.get("swd"), dict) else {}
    if view.swd is not None:
        text = _fmt_se(view.swd, view.swd_se)
        if view.floor:
            text += f" ({view.swd / view.floor:.2f}× the floor of {_fmt_se(view.floor, view.floor_se)})"
        if _number(swd.get("splits")) is not None and swd["splits"] > 1:
            text += f", the mean of {_int(swd['splits'])} splits ± its standard error"
        if _number(swd.get("n_used")) is not None:
            text += f", sets of {_int(swd['n_used'])} images"
        facts.append(("SWD", text, None))
    else:
        facts.append(("SWD", "not scored" if not view.score else "-", None))
    inception = view.score.get("inception") if isinstance(view.score.get("inception"), dict) else {}
    if inception.get("computed"):
        parts = [f"{name} {_fmt(inception.get(key))}" for key, name in (("fid", "FID"), ("kid", "KID"),
                                                                        ("mifid", "MiFID"))
                 if _number(inception.get(key)) is not None]
        if _number(inception.get("memorization_distance")) is not None:
            parts.append(f"memorization distance {_fmt(inception['memorization_distance'])}")
        facts.append(("Inception", ", ".join(parts) or "computed", None))
    elif inception.get("reason"):
        facts.append(("Inception", f"not computed: {inception['reason']}", None))
    nearest = view.score.get("nearest") if isinstance(view.score.get("nearest"), dict) else {}
    if _number(nearest.get("n_copies")) is not None:
        threshold = _number(nearest.get("copy_threshold"))
        facts.append(("copies", f"{_int(nearest['n_copies'])}"
                      + (f" (nearest-painting distance under {threshold:g})" if threshold is not None else ""), None))
    if _number(view.score.get("n_scored")) is not None:
        images = "photos" if view.baseline else "generated images"
        facts.append(("scored", f"{_int(view.score['n_scored'])} of {_int(view.score.get('n_generated')) or '?'} "
                                f"{images} against {_int(view.score.get('n_reference')) or '?'} paintings"
                                + (f" on {view.score['device']}" if view.score.get("device") else ""), None))
    best = view.best or {}
    if _number(best.get("step")) is not None:
        text = f"step {_int(best['step'])}"
        if _number(view.row.get("steps")) is not None:
            text += f" of {_int(view.row['steps'])}"
        if _number(best.get("value")) is not None:
            text += f" ({str(best.get('metric', 'metric')).upper()} {_fmt(best['value'])} during training)"
        facts.append(("best checkpoint", text + ", kept as best.pt: what generate uses unless "
                                                "generate.checkpoint = \"final\"", None))
    if view.kernel:
        url = view.kernel.get("url")
        text = str(view.kernel.get("kernel") or "kernel") + (f" version {view.kernel['version']}"
                                                             if view.kernel.get("version") is not None else "")
        link = url if isinstance(url, str) and re.fullmatch(r"https?://[^\s<>\"'`]+", url) else None
        facts.append(("Kaggle kernel", text, link))
    standing = kaggle_rank(view)
    if standing or _number(view.row.get("public_mifid")) is not None:
        text = f"public MiFID {_fmt(view.row.get('public_mifid'))}" if _number(view.row.get("public_mifid")) \
            is not None else "no public score yet"
        if standing:
            text += f" {standing}" if standing.startswith("(") else f", rank {standing}"
        facts.append(("Kaggle", text, None))
    if view.metrics_note:
        facts.append(("evaluation", view.metrics_note, None))
    return facts


def card_subtitle(view: RunView) -> str:
    parts = [str(view.row["arch"]) if view.row.get("arch") else None,
             "photo → painting translation" if view.translates else None,
             f"{_int(view.row.get('resolution'))} px" if _int(view.row.get("resolution")) else None,
             f"{_int(view.row.get('steps'))} steps" if _int(view.row.get("steps")) else None]
    trained = duration(view.row.get("train_seconds"))
    if trained:
        parts.append(f"{trained} of training" + (f" on {view.device}" if view.device else ""))
    elif view.device:
        parts.append(f"on {view.device}")
    if view.date:
        parts.append({"kaggle": "pulled ", "baseline": "scored "}.get(view.where, "trained ") + view.date)
    return " · ".join(p for p in parts if p)


CAPTIONS = {"samples": "final samples (EMA generator; the grid's top half)", "losses": "loss curves",
            "nearest": "closest generated/painting pairs"}
PHOTOS_CAPTIONS = {"samples": "untouched photos (the baseline)", "nearest": "closest photo/painting pairs"}
# a translation run's train/samples.png alternates photo, painting along each row (4 pairs a row)
PAIRS_CAPTION = "photo → painting pairs (EMA generator; the grid's top half)"


def caption(view: RunView, role: str) -> str:
    if view.baseline:
        return PHOTOS_CAPTIONS.get(role, CAPTIONS[role])
    if role == "samples" and view.translates:
        return PAIRS_CAPTION
    return CAPTIONS[role]
