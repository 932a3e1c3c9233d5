from pathlib import Path

import pytest

from pipeline.config import Config, describe_keys, load_config, parse_override
from pipeline.errors import PainterError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_preset_loads_and_names_its_run(preset):
    cfg = load_config(preset)
    assert cfg.run.name == preset.stem


def test_preset_values_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "[train]\nsteps = 10\nlr_g = 1\n"), ["train.steps=20", "data.source=../x/y"])
    assert cfg.train.steps == 20            # the override wins over the file
    assert cfg.train.lr_g == 1.0 and isinstance(cfg.train.lr_g, float)  # int accepted for a float key
    assert cfg.data.source == "../x/y"      # a bare word is a string
    assert cfg.model.arch == "dcgan"        # untouched keys keep their defaults


@pytest.mark.parametrize("text, message", [
    ("[train]\nstepz = 3\n", "unknown config key train.stepz (did you mean train.steps?); keys of [train] are steps"),
    ("[train]\nwarp = 3\n", "unknown config key train.warp; keys of [train] are steps"),  # nothing close
    ("[trian]\nsteps = 3\n", "unknown config section [trian] (did you mean train?)"),
    ("[train]\nsteps = \"many\"\n", "train.steps: expected an integer, got 'many'"),
    ("[train]\nsteps = true\n", "train.steps: expected an integer, got True"),
    ("[train]\nsteps = 0\n", "train.steps: 0 is out of range; allowed 1..inf"),
    ("[data]\nresolution = 48\n", "data.resolution: 48 must be a power of two"),
    ("[data]\nresolution = 512\n", "data.resolution: 512 is out of range; allowed 32..256"),
    ("[model]\narch = \"stylegan9\"\n", "model.arch: 'stylegan9' is not allowed; choose one of 'dcgan'"),
    ("[score]\ninception = 1\n", "score.inception: expected true or false, got 1"),
    ("[run]\nname = \"../escape\"\n", "run.name: '../escape' must be a folder name"),
    ("[train\nsteps = 3\n", "is not valid TOML"),
    ("[train]\ndiffaugment = \"color,zoom\"\n",
     "train.diffaugment: unknown DiffAugment policy 'zoom'; allowed: color, translation, cutout"),
])
def test_bad_config_names_the_key_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(PainterError, match=None) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_bad_overrides():
    with pytest.raises(PainterError, match="expected section.key=value"):
        load_config(None, ["steps=3"])
    with pytest.raises(PainterError, match="train.batch_size: 0 is out of range"):
        load_config(None, ["train.batch_size=0"])
    with pytest.raises(PainterError, match="does not exist"):
        load_config("no/such/file.toml")


def test_override_values_use_toml_syntax():
    assert parse_override("score.inception=false") == {"score": {"inception": False}}
    assert parse_override("train.lr_g=1e-3") == {"train": {"lr_g": 0.001}}
    assert parse_override('run.name="a b"') == {"run": {"name": "a b"}}


def test_resolved_config_round_trips_through_toml(tmp_path):
    cfg = load_config(REPO / "configs" / "demo.toml", ["train.steps=7", "data.source=some dir/with \"quotes\""])
    again = load_config(write(tmp_path, cfg.to_toml()))
    assert again == cfg
    assert "train.steps = 5000" in describe_keys()
    assert Config().run.device == "auto"


def test_keys_of_a_preset_show_its_values_and_the_defaults_they_replace():
    listed = describe_keys(load_config(REPO / "configs" / "cut.toml", ["train.steps=7"])).splitlines()
    steps = next(line for line in listed if line.startswith("train.steps = "))
    assert steps.startswith("train.steps = 7  # ") and steps.endswith("; default 5000")
    arch = next(line for line in listed if line.startswith("model.arch = "))
    assert arch.startswith('model.arch = "cut"') and arch.endswith('default "dcgan"')
    seed = next(line for line in listed if line.startswith("train.seed = "))
    assert "default" not in seed.split("#")[-1]  # unchanged keys say nothing more


def test_a_key_of_another_architecture_is_ignored_with_a_warning(painter):
    result = painter("config", "--set", "cut.crop=64", "--set", "train.steps=5")  # DCGAN by default
    assert "warning" not in result.output  # `painter config` only shows; the stages warn
    result = painter("download", "--source", "demo", "--set", "data.demo_paintings=16", "--set", "cut.crop=64",
                     "--set", "train.steps=5")
    warnings = [line for line in result.output.splitlines() if line.startswith("warning")]
    assert warnings == ["warning: --set cut.crop is ignored: this run's model.arch is dcgan"]
    result = painter("download", "--source", "demo", "--set", "data.demo_paintings=16", "--set", "model.arch=cut",
                     "--set", "cut.crop=64")
    assert "warning" not in result.output
