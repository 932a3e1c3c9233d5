#!/usr/bin/env bash
# Fetch what bench/gpu_check.sh needs on a GPU machine without internet. Run it where pip reaches the
# package registry, from anywhere in the repository; then carry bench/wheels/ (and bench/data/) there.
#
# Wheels: painter's dependencies (pyproject.toml, with the test extra), and theirs, for the GPU machine's
# Python and for manylinux x86-64, binary wheels only. Left out: torch, torchvision, triton, nvidia-*,
# cuda-* (the GPU machine's own builds are what gpu_check.sh checks), and every package the GPU image
# already has (--have). gpu_check.sh installs only the wheels whose package the machine lacks anyway.
# Ray's wheel goes into DEST-ray/ (bench/wheels-ray/) without its Java workers' jar: 46 MB instead of
# 79, so that each folder fits one transfer of this project's device tool (64 MiB).
#
# Usage: bench/fetch_wheels.sh [--python-version 3.12] [--dest bench/wheels] [--have FILE]
#                              [--data-copy N [--data-from ../shared/data]]
#   --python-version V  the GPU machine's Python, major.minor (default 3.12: the image this workplace lends
#                       runs Python 3.12.3; `python3 --version` there tells)
#   --dest DIR          where the wheels go (default bench/wheels, ignored by git)
#   --have FILE         the GPU machine's packages, one per line (`python3 -m pip list --format=freeze`
#                       there); default: the scientific stack the GPU image is known to ship (HAVE below)
#   --data-copy N       also copy the 300 paintings and the first N photos (by name) into bench/data/
#                       (ignored by git): a copy small enough to carry (N = 2000 is about 36 MB in all)
#   --data-from DIR     the full data set for --data-copy (default ../shared/data)
# env: PYTHON (default python3), the Python whose pip downloads.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VERSION=3.12
DEST=$REPO/bench/wheels
HAVE_FILE=""
DATA_COPY=""
DATA_FROM=$REPO/../shared/data
while (($#)); do
    case $1 in
        --python-version) VERSION=$2; shift 2 ;;
        --dest) DEST=$2; shift 2 ;;
        --have) HAVE_FILE=$2; shift 2 ;;
        --data-copy) DATA_COPY=$2; shift 2 ;;
        --data-from) DATA_FROM=$2; shift 2 ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "fetch_wheels: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# What the GPU image ships among the packages painter's dependencies reach (its package list of 2026-11;
# --have replaces it with the machine's own list).
HAVE="numpy scipy pillow pandas matplotlib click tqdm six tensorboard pytest torchmetrics requests urllib3
certifi idna charset-normalizer packaging protobuf python-dateutil pyyaml attrs markdown-it-py mdurl jinja2
markupsafe setuptools typing-extensions filelock fsspec sympy networkx contourpy cycler fonttools kiwisolver
pyparsing iniconfig pluggy pygments lightning-utilities werkzeug markdown grpcio absl-py msgpack pyarrow
aiohappyeyeballs aiosignal frozenlist multidict propcache yarl"

mkdir -p "$DEST"
"$PYTHON" - "$REPO/pyproject.toml" "$DEST" "$VERSION" "$HAVE_FILE" "$HAVE" <<'EOF'
import email.parser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip's own copy
    from pip._vendor import tomli as tomllib
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

pyproject, dest, version, have_file, have_default = sys.argv[1:]
dest = Path(dest)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


machine_owned = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
if have_file:
    have = {normalize(re.split(r"[=<>!~ @]", line.strip(), maxsplit=1)[0])
            for line in Path(have_file).read_text().splitlines() if line.strip() and not line.startswith("#")}
else:
    have = {normalize(name) for name in have_default.split()}
# Environment markers as the GPU machine evaluates them.
target = {"python_version": version, "python_full_version": version + ".0", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
          "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
platforms = ["manylinux2014_x86_64", "manylinux1_x86_64", "manylinux2010_x86_64"] + \
    [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35, 39)]

project = tomllib.loads(Path(pyproject).read_text())["project"]
todo = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"].get("test", [])]
fetched, skipped, extras = {}, set(), {}
while todo:
    wanted = {}
    for req in todo:
        name = normalize(req.name)
        if req.marker is not None and not req.marker.evaluate(target):
            continue
        extras.setdefault(name, set()).update(req.extras)  # ray[tune]: tune's requirements are wanted too
        if machine_owned.match(name) or name in have:
            skipped.add(name)
        elif name not in fetched and name not in wanted:
            wanted[name] = f"{req.name}{req.specifier}"
    todo = []
    if not wanted:
        break
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               version, "--implementation", "cp", "--disable-pip-version-check", "-d", str(dest)]
    for platform in platforms:
        command += ["--platform", platform]
    print("fetch_wheels: " + " ".join(wanted.values()), flush=True)
    subprocess.run(command + list(wanted.values()), check=True)
    for wheel in dest.glob("*.whl"):
        name = normalize(wheel.name.split("-")[0])
        if name in wanted and name not in fetched:
            fetched[name] = wheel
            with zipfile.ZipFile(wheel) as archive:
                metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
                message = email.parser.Parser().parsestr(archive.read(metadata).decode())
            for text in message.get_all("Requires-Dist") or []:
                req = Requirement(text)
                if req.marker is None or any(req.marker.evaluate({**target, "extra": extra})
                                             for extra in {"", *extras[name]}):
                    req.marker = None
                    todo.append(req)
    missing = set(wanted) - set(fetched)
    if missing:
        raise SystemExit(f"fetch_wheels: pip downloaded no wheel for {', '.join(sorted(missing))}")

def slim_ray(wheel: Path) -> Path:
    """Ray's wheel less ray/jars/ (the Java workers' 32 MB; painter's trials are Python), RECORD to match, in
    a folder of its own beside dest."""
    folder = dest.parent / f"{dest.name}-ray"
    folder.mkdir(exist_ok=True)
    slim = folder / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w") as target:
        for info in source.infolist():
            if info.filename.startswith("ray/jars/"):
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"ray/jars/"))
            target.writestr(info, data)
    wheel.unlink()
    return slim


if "ray" in fetched:
    fetched["ray"] = slim_ray(fetched["ray"])
size = sum(w.stat().st_size for w in fetched.values())
print(f"\nfetch_wheels: {len(fetched)} wheels for Python {version} in {dest} ({size / 2**20:.1f} MiB):")
for name in sorted(fetched):
    print(f"  {fetched[name].relative_to(dest.parent)} ({fetched[name].stat().st_size / 2**20:.1f} MiB)")
print(f"left to the GPU machine: {', '.join(sorted(skipped))}")
EOF

if [[ -n $DATA_COPY ]]; then
    for sub in monet_jpg photo_jpg; do
        [[ -d $DATA_FROM/$sub ]] || { echo "fetch_wheels: no $DATA_FROM/$sub" >&2; exit 1; }
    done
    rm -rf "$REPO/bench/data"
    mkdir -p "$REPO/bench/data/monet_jpg" "$REPO/bench/data/photo_jpg"
    cp "$DATA_FROM"/monet_jpg/*.jpg "$REPO/bench/data/monet_jpg/"
    (cd "$DATA_FROM/photo_jpg" && find . -maxdepth 1 -name '*.jpg' -printf '%P\n' | sort | sed -n "1,${DATA_COPY}p" \
        | xargs cp -t "$REPO/bench/data/photo_jpg/")
    echo "fetch_wheels: bench/data: $(ls "$REPO/bench/data/monet_jpg" | wc -l) paintings," \
         "$(ls "$REPO/bench/data/photo_jpg" | wc -l) photos, $(du -sh "$REPO/bench/data" | cut -f1)"
fi
