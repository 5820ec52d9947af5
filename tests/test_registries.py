"""Registries are leaves that refuse a taken name; plugins fill them from their package's __init__; models describe
what methods need (latent spaces, filter widths); a model folder is read through one typed reader."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from helpers import tiny_stylegan2_config

from fsgen_hub.folder import parse_metric_records, read_model_folder
from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, list_methods, register_method
from fsgen_hub.metrics.registry import list_metrics, register_metric
from fsgen_hub.models.dcgan import DCGANGenerator
from fsgen_hub.models.modeling_utils import list_architectures, model_class, register_model
from fsgen_hub.models.slim import slim_generator
from fsgen_hub.models.stylegan2 import StyleGAN2Generator
from fsgen_hub.utils.errors import FsgenError


def test_plugins_fill_the_registries_from_their_package_init():
    assert list_architectures() == ["dcgan", "stylegan2"]
    assert model_class("stylegan2", "generator") is StyleGAN2Generator
    assert {"finetune", "freezed", "ewc", "cdc", "rick", "dap", "adafm", "bsa", "d3t"} <= set(list_methods())
    assert {"swd", "msssim_diversity", "memorization", "fid5k", "kid5k", "intra_lpips1k"} <= set(list_metrics())


def test_a_taken_name_is_refused_with_one_line(tiny_dcgan):
    class OtherGenerator(DCGANGenerator):  # same (architecture, role) as DCGANGenerator
        pass

    with pytest.raises(FsgenError, match="already registered") as info:
        register_model(OtherGenerator)
    assert "\n" not in str(info.value) and model_class("dcgan", "generator") is DCGANGenerator
    register_model(DCGANGenerator)  # registering the same class again changes nothing

    @dataclass
    class OtherConfig(MethodConfig):
        pass

    class OtherMethod(AdaptationMethod):
        pass

    finetune = list_methods()["finetune"]
    with pytest.raises(FsgenError, match="'finetune' is already registered"):
        register_method("finetune", OtherConfig, OtherMethod)
    assert list_methods()["finetune"] is finetune and OtherMethod.name != "finetune"

    swd = list_metrics()["swd"]
    with pytest.raises(FsgenError, match="'swd' is already registered"):
        register_metric("swd", lambda *a, **k: None, 10, "an impostor")
    assert list_metrics()["swd"] is swd


def test_models_describe_their_latent_spaces(tiny_dcgan):
    torch.manual_seed(0)
    G = StyleGAN2Generator(tiny_stylegan2_config()).eval()
    z = torch.randn(2, G.z_dim)
    w = G.mapping(z)
    assert G.latent_spaces == ("z", "w", "w+")
    assert torch.equal(G.synthesize(w, "w"), G(w, input_space="w", noise_mode="const"))
    start = G.latent_start(3, "w+")
    assert start.shape == (3, G.n_latent, G.z_dim) and torch.equal(start[0, 0], G.latent_start(3, "w")[0])
    assert G.latent_start(3, "z") is None

    dcgan = tiny_dcgan[0].eval()
    assert dcgan.latent_spaces == ("z",) and dcgan.latent_start(2, "z") is None
    z = torch.randn(2, dcgan.z_dim)
    assert torch.equal(dcgan.synthesize(z, "z"), dcgan(z, noise_mode="const"))
    with pytest.raises(ValueError, match="takes latents in"):
        dcgan.synthesize(z, "w")


def test_slimming_writes_the_widths_into_the_field_the_model_names(tiny_dcgan):
    G = tiny_dcgan[0]
    layer = G.filter_layers()[1]
    mask = torch.zeros(layer.num_filters, dtype=torch.bool)
    mask[:2] = True
    slim = slim_generator(G, {layer.name: mask})
    assert getattr(slim.config, G.filter_widths_field)[1] == layer.num_filters - 2

    class Unsliceable(DCGANGenerator):
        filter_widths_field = ""

    with pytest.raises(FsgenError, match="slimming is not implemented"):
        slim_generator(Unsliceable(G.config), {})


def test_the_folder_reader_is_strict_on_files_and_lenient_on_downloaded_text(tmp_path, tiny_dcgan):
    G = tiny_dcgan[0]
    G.save_pretrained(tmp_path / "m", lineage={"kind": "trained", "base_model": {"id": None}})
    good = {"metric": "swd", "value": 1.5, "protocol": {}}
    (tmp_path / "m" / "metrics.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "value": 1.2}) + "\n")
    (tmp_path / "m" / "pruning.json").write_text("{broken")  # informative only: the folder stays readable
    folder = read_model_folder(tmp_path / "m")
    assert folder.kind == "trained" and folder.config["architecture"] == "dcgan" and folder.pruning is None
    assert folder.latest_metrics()["swd"]["value"] == 1.2 and len(folder.metrics) == 2
    config, lineage, records = folder  # the reader's earlier tuple shape still unpacks
    assert config is folder.config and lineage is folder.lineage and records is folder.metrics

    text = "\n".join([json.dumps(good), "not json", json.dumps({"metric": "kid", "value": True}), "[1]"])
    assert parse_metric_records(text) == [good]
    with pytest.raises(FsgenError, match=r"metrics.jsonl line 2 is not JSON"):
        parse_metric_records(text, "metrics.jsonl")
    with pytest.raises(FsgenError, match=r"line 3 has no metric name and numeric value"):
        parse_metric_records("\n".join([json.dumps(good), "", json.dumps({"metric": "kid", "value": True})]), "x")


def test_fetched_files_read_as_the_folder_reader_reads_the_folder_and_broken_ones_count_as_absent(tmp_path, tiny_dcgan):
    from fsgen_hub.folder import parse_model_files
    from fsgen_hub.utils.constants import CONFIG_NAME, LINEAGE_NAME, METRICS_NAME

    tiny_dcgan[0].save_pretrained(tmp_path / "m", lineage={"kind": "adapted", "base_model": {"id": "fsgen/src"}})
    good = {"metric": "swd", "value": 1.5, "protocol": {}}
    (tmp_path / "m" / METRICS_NAME).write_text(json.dumps(good) + "\n")
    texts = {name: (tmp_path / "m" / name).read_text() for name in (CONFIG_NAME, LINEAGE_NAME, METRICS_NAME)}
    fetched, strict = parse_model_files("alice/m", texts), read_model_folder(tmp_path / "m")
    assert (fetched.config, fetched.lineage, fetched.metrics) == (strict.config, strict.lineage, strict.metrics)
    assert fetched.base_model == {"id": "fsgen/src"}
    broken = parse_model_files("alice/m", {**texts, LINEAGE_NAME: '{"kind": ', METRICS_NAME: "not json\n" + texts[METRICS_NAME]})
    assert broken.lineage is None and broken.base_model == {} and broken.metrics == [good]
    assert parse_model_files("alice/m", {**texts, LINEAGE_NAME: "[1, 2]"}).lineage is None
    assert parse_model_files("alice/m", {**texts, CONFIG_NAME: "[1]"}) is None
    assert parse_model_files("alice/m", {LINEAGE_NAME: texts[LINEAGE_NAME]}) is None  # no config.json: no model
