"""Scorer adapters (open_clip, hf_clip, aesthetic, blip_itm, image_reward) on tiny models built here and
loaded back through the very calls a real run makes; plus the judge YAMLs and the errors users see."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")  # a stray hub call would otherwise retry for ~46 s

from mjbench.adapters.base import ScoreRequest, create_judge  # noqa: E402
from mjbench.catalog import Catalog  # noqa: E402
from mjbench.config import JudgeConfig, load_judge_file  # noqa: E402
from mjbench.errors import ConfigError, MjbenchError, UnknownNameError  # noqa: E402
from mjbench.images import ImageRef  # noqa: E402

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a red cat on a mat", "two dogs"]


# -- helpers ---------------------------------------------------------------------------------------
def noise_png(seed: int, size: tuple[int, int] = (72, 56)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def image(seed: int) -> ImageRef:
    return ImageRef(data=noise_png(seed), origin=f"noise-{seed}.png")


def req(ref: ImageRef, prompt: str) -> ScoreRequest:
    return ScoreRequest(image=ref, prompt=prompt, scale="score", perspective="quality")


def judge(adapter: str, **fields):
    fields.setdefault("device", "cpu")
    return create_judge(JudgeConfig(name=f"test-{adapter}", adapter=adapter, **fields))


def scores(j, requests) -> list[float]:
    out = j.score(requests)
    assert [r.status for r in out] == ["ok"] * len(requests), [r.error for r in out]
    return [r.score for r in out]


# -- tiny models -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny open_clip architecture registered under a name, and a checkpoint of random weights."""
    d = tmp_path_factory.mktemp("open_clip")
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    (d / "mjb-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / "mjb-tiny-clip.json")
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms("mjb-tiny-clip", pretrained=None)
    torch.save({"state_dict": model.state_dict()}, d / "tiny.pt")
    return types.SimpleNamespace(name="mjb-tiny-clip", ckpt=str(d / "tiny.pt"), dir=d)


def direct_open_clip(tiny, refs, prompts, resize_mode=None) -> list[float]:
    """The CLIP score computed with the library alone."""
    model, _, preprocess = open_clip.create_model_and_transforms(tiny.name, pretrained=tiny.ckpt,
                                                                 image_resize_mode=resize_mode)
    tokenizer = open_clip.get_tokenizer(tiny.name)
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(r.load()) for r in refs]), normalize=True)
        txt = model.encode_text(tokenizer(prompts), normalize=True)
        return (model.logit_scale.exp() * (img * txt).sum(-1)).tolist()


def _bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """Tiny CLIPModel and SiglipModel folders, and a CLIP processor in a folder of its own (as PickScore)."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
        SiglipConfig,
        SiglipModel,
    )

    root = tmp_path_factory.mktemp("hf")
    chars = _bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    v = {t: i for i, t in enumerate(vocab)}
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=CLIPTokenizer(vocab=v, merges=[]),
    )
    text = dict(vocab_size=len(v), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=v["<|startoftext|>"], eos_token_id=v["<|endoftext|>"],
                pad_token_id=v["<|endoftext|>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(root / "clip")
    siglip = SiglipModel(SiglipConfig(text_config={**text, "max_position_embeddings": 16}, vision_config=vision))
    with torch.no_grad():
        siglip.logit_bias.fill_(-1.5)  # a visible bias, so the test sees whether it is added
    siglip.save_pretrained(root / "siglip")
    processor.save_pretrained(root / "processor")
    return root


# -- open_clip -------------------------------------------------------------------------------------
@pytest.mark.parametrize("resize_mode", [None, "longest"])
def test_open_clip_score_equals_the_library_computation(tiny_clip, resize_mode):
    refs = [image(i) for i in range(4)]  # 72x56: shortest-side crop and longest-side padding differ
    prompts = [PROMPTS[i % 2] for i in range(4)]
    options = {"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt, "resize_mode": resize_mode}
    j = judge("open_clip", options=options, batch_size=3)
    got = scores(j, [req(r, p) for r, p in zip(refs, prompts, strict=True)])
    assert got == pytest.approx(direct_open_clip(tiny_clip, refs, prompts, resize_mode), abs=1e-5)
    if resize_mode:
        assert got != pytest.approx(direct_open_clip(tiny_clip, refs, prompts), abs=1e-4)


def test_open_clip_checkpoint_is_applied_after_creation(tiny_clip):
    refs, prompts = [image(10), image(11)], PROMPTS
    requests = [req(r, p) for r, p in zip(refs, prompts, strict=True)]
    with_ckpt = judge("open_clip", options={"model_name": tiny_clip.name, "checkpoint": tiny_clip.ckpt})
    assert scores(with_ckpt, requests) == pytest.approx(direct_open_clip(tiny_clip, refs, prompts), abs=1e-5)
    random_init = judge("open_clip", options={"model_name": tiny_clip.name})
    assert scores(random_init, requests) != pytest.approx(scores(with_ckpt, requests), abs=1e-3)


def test_open_clip_score_scale_gives_plain_cosine(tiny_clip):
    requests = [req(image(20), PROMPTS[0])]
    base = {"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt}
    logit = scores(judge("open_clip", options=base), requests)[0]
    cosine = scores(judge("open_clip", options={**base, "score_scale": 1.0}), requests)[0]
    assert -1 <= cosine <= 1
    model, _, _ = open_clip.create_model_and_transforms(tiny_clip.name, pretrained=tiny_clip.ckpt)
    assert logit == pytest.approx(cosine * float(model.logit_scale.detach().exp()), abs=1e-5)


def test_each_distinct_image_and_prompt_is_encoded_once(tiny_clip):
    j = judge("open_clip", options={"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt}, batch_size=2)
    j.setup()
    model = j._clip.model
    seen = {"image_calls": 0, "images": 0, "texts": 0}
    encode_image, encode_text = model.encode_image, model.encode_text

    def count_image(x, **kw):
        seen["image_calls"] += 1
        seen["images"] += len(x)
        return encode_image(x, **kw)

    def count_text(x, **kw):
        seen["texts"] += len(x)
        return encode_text(x, **kw)

    model.encode_image, model.encode_text = count_image, count_text
    # three images, each arriving as two separate ImageRefs with equal bytes, each with both prompts
    requests = [req(ImageRef(data=noise_png(s), origin=f"copy{c}-{s}.png"), p)
                for s in (1, 2, 3) for c in (0, 1) for p in PROMPTS]
    first = scores(j, requests)
    assert seen == {"image_calls": 2, "images": 3, "texts": 2}
    assert scores(j, requests) == first  # answered from the caches: no model call at all
    assert seen == {"image_calls": 2, "images": 3, "texts": 2}
    assert first[0] == first[2] and first[0] != first[1]  # same image+prompt agree; prompts differ


def test_iter_score_streams_batches_and_decodes_ahead(tiny_clip):
    options = {"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt}
    j = judge("open_clip", options=options, batch_size=2)
    j.setup()
    events: list[tuple[str, str, float]] = []
    preprocess, encode = j._preprocess, j._encode_images

    def timed_preprocess(img):
        events.append(("prep", threading.current_thread().name, time.perf_counter()))
        return preprocess(img)

    def slow_encode(prepared, prompts):
        start = time.perf_counter()
        out = encode(prepared, prompts)
        time.sleep(0.15)  # the model is "busy": the next batch should be decoding meanwhile
        events.append(("encode", f"{start}", time.perf_counter()))
        return out

    j._preprocess, j._encode_images = timed_preprocess, slow_encode
    requests = [req(image(30 + i), PROMPTS[0]) for i in range(5)]
    batches = list(j.iter_score(requests))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(i for b in batches for i, _ in b) == list(range(5))
    preps = [e for e in events if e[0] == "prep"]
    encodes = [e for e in events if e[0] == "encode"]
    assert all(name != threading.main_thread().name for _, name, _ in preps)
    # images 3 and 4 (second batch) were decoded before the model finished the first batch
    assert preps[2][2] < encodes[0][2] and preps[3][2] < encodes[0][2]

    streamed = dict(pair for b in batches for pair in b)
    inline = judge("open_clip", options={**options, "prefetch_workers": 0}, batch_size=2)
    assert scores(inline, requests) == pytest.approx([streamed[i].score for i in range(5)], abs=1e-6)


def test_broken_and_missing_images_fail_alone(tiny_clip, tmp_path):
    j = judge("open_clip", options={"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt}, batch_size=4)
    requests = [
        req(image(40), PROMPTS[0]),
        req(ImageRef(data=b"this is not an image", origin="broken.png"), PROMPTS[0]),
        req(ImageRef(path=tmp_path / "gone.png"), PROMPTS[0]),
        req(image(41), PROMPTS[1]),
    ]
    out = j.score(requests)
    assert [r.status for r in out] == ["ok", "error", "error", "ok"]
    assert "broken.png" in out[1].error and "gone.png" in out[2].error
    assert out[1].score is None and out[2].score is None


# -- hf_clip ---------------------------------------------------------------------------------------
def test_hf_clip_matches_the_models_own_logits(tiny_hf):
    from transformers import AutoModel, AutoProcessor

    refs = [image(50), image(51)]
    j = judge("hf_clip", model=str(tiny_hf / "clip"), options={"processor": str(tiny_hf / "processor")})
    got = scores(j, [req(r, p) for r in refs for p in PROMPTS])
    model = AutoModel.from_pretrained(tiny_hf / "clip")
    processor = AutoProcessor.from_pretrained(tiny_hf / "processor")
    with torch.no_grad():
        logits = model(**processor(text=PROMPTS, images=[r.load() for r in refs], return_tensors="pt",
                                   padding=True)).logits_per_image
    assert got == pytest.approx(logits.flatten().tolist(), abs=1e-5)


def test_hf_siglip_adds_logit_bias_and_pads_to_max_length(tiny_hf):
    from transformers import AutoModel, AutoProcessor

    ref = image(52)
    j = judge("hf_clip", model=str(tiny_hf / "siglip"), options={"processor": str(tiny_hf / "processor")})
    got = scores(j, [req(ref, p) for p in PROMPTS])
    model = AutoModel.from_pretrained(tiny_hf / "siglip")
    processor = AutoProcessor.from_pretrained(tiny_hf / "processor")
    inputs = processor(text=PROMPTS, images=[ref.load()], return_tensors="pt", padding="max_length", max_length=16)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image[0]
    assert got == pytest.approx(logits.tolist(), abs=1e-5)
    plain = judge("hf_clip", model=str(tiny_hf / "siglip"),
                  options={"processor": str(tiny_hf / "processor"), "score_scale": 1.0})
    assert all(-1 <= s <= 1 for s in scores(plain, [req(ref, p) for p in PROMPTS]))


# -- aesthetic -------------------------------------------------------------------------------------
def laion_head(in_features: int) -> torch.nn.Sequential:
    """LAION's improved-aesthetic-predictor MLP layout (Linear layers at 0, 2, 4, 6, 7)."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(in_features, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


def test_aesthetic_head_on_clip_embedding_ignores_the_prompt(tiny_clip, tmp_path):
    torch.manual_seed(1)
    head = laion_head(32).eval()
    # saved like LAION's file: the state dict of a module whose Sequential is called `layers`
    torch.save({f"layers.{k}": v for k, v in head.state_dict().items()}, tmp_path / "head.pth")
    options = {"clip_model": tiny_clip.name, "clip_pretrained": tiny_clip.ckpt, "head_path": str(tmp_path / "head.pth")}
    j = judge("aesthetic", options=options)
    j.setup()
    calls = []
    encode = j._clip.model.encode_image
    j._clip.model.encode_image = lambda x, **kw: calls.append(len(x)) or encode(x, **kw)
    ref = image(60)
    got = scores(j, [req(ref, PROMPTS[0]), req(ref, PROMPTS[1])])
    assert got[0] == got[1] and calls == [1]
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip.name, pretrained=tiny_clip.ckpt)
    with torch.no_grad():
        expected = head(model.encode_image(preprocess(ref.load())[None], normalize=True)).item()
    assert got[0] == pytest.approx(expected, abs=1e-5)


def test_aesthetic_rejects_missing_and_foreign_head_files(tiny_clip, tmp_path):
    options = {"clip_model": tiny_clip.name, "clip_pretrained": tiny_clip.ckpt, "head_path": "heads/none.pth"}
    cfg = JudgeConfig(name="aes", adapter="aesthetic", device="cpu", options=options, path=tmp_path / "aes.yaml")
    missing = str(tmp_path / "heads" / "none.pth")  # relative to the judge YAML's folder
    assert missing in create_judge(cfg).check_available(cfg)
    with pytest.raises(ConfigError, match="none.pth"):
        create_judge(cfg).setup()
    torch.save({"fc.weight": torch.zeros(1, 32)}, tmp_path / "other.pth")
    cfg.options["head_path"] = str(tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="not a LAION aesthetic head"):
        create_judge(cfg).setup()


# -- blip_itm --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        BlipProcessor,
    )

    d = tmp_path_factory.mktemp("blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "cat", "on", "mat", "two", "dogs"]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=BertTokenizer(str(d / "vocab.txt")))
    cfg = BlipConfig(
        text_config=dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32, pad_token_id=0,
                         bos_token_id=2, sep_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16, image_text_hidden_size=16,
    )
    torch.manual_seed(0)
    BlipForImageTextRetrieval(cfg).save_pretrained(d)
    processor.save_pretrained(d)
    return d


@pytest.mark.parametrize("head", ["itm", "cosine"])
def test_blip_itm_matches_the_model(tiny_blip, head):
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    refs = [image(70), image(71)]
    j = judge("blip_itm", model=str(tiny_blip), options={"head": head}, batch_size=3)
    got = scores(j, [req(r, p) for r in refs for p in PROMPTS])
    model = BlipForImageTextRetrieval.from_pretrained(tiny_blip).eval()
    processor = BlipProcessor.from_pretrained(tiny_blip)
    expected = []
    with torch.no_grad():
        for r in refs:
            for p in PROMPTS:
                x = processor(images=r.load(), text=p, return_tensors="pt")
                out = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                            pixel_values=x["pixel_values"], use_itm_head=head == "itm").itm_score
                expected.append(out.softmax(-1)[0, 1].item() if head == "itm" else out[0, 0].item())
    assert got == pytest.approx(expected, abs=1e-5)
    if head == "itm":
        assert all(0 <= s <= 1 for s in got)


# -- image_reward ----------------------------------------------------------------------------------
def test_image_reward_without_its_package_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "ImageReward", None)  # import ImageReward now fails
    cfg = JudgeConfig(name="ir", adapter="image_reward", model="ImageReward-v1.0", device="cpu")
    j = create_judge(cfg)
    reason = j.check_available(cfg)
    assert "ImageReward" in reason and "timm==0.6.13" in reason
    with pytest.raises(MjbenchError, match="ImageReward"):
        j.setup()


def test_image_reward_uses_the_package_api(monkeypatch):
    loaded = {}

    class FakeModel:
        def score(self, prompt, img):
            return len(prompt) + img.size[0] / 1000

    def load(name, device="cpu", **kw):
        loaded.update(name=name, device=device, **kw)
        return FakeModel()

    monkeypatch.setitem(sys.modules, "ImageReward", types.SimpleNamespace(load=load))
    cfg = JudgeConfig(name="ir", adapter="image_reward", model="ImageReward-v1.0", device="cpu")
    assert create_judge(cfg).check_available(cfg) is None
    ref = image(80)
    got = scores(create_judge(cfg), [req(ref, "ab"), req(ref, "abcd")])
    assert got == pytest.approx([2.072, 4.072])
    assert loaded == {"name": "ImageReward-v1.0", "device": "cpu"}


# -- errors users see ------------------------------------------------------------------------------
def test_unknown_adapter_and_judge_suggest_close_names():
    with pytest.raises(UnknownNameError, match="open_clip"):
        judge("open_clp")
    with pytest.raises(UnknownNameError, match="clip-v1"):
        Catalog().judge("clip-v3")


def test_malformed_judge_yaml_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nadapter: open_clip\nbatch_size: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: batch_size"):
        load_judge_file(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\nadapter: open_clip\noptions: {model_name: ViT-B-32, pretrianed: openai}\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: options\.pretrianed: unknown field"):
        create_judge(load_judge_file(typo))


def test_missing_checkpoint_and_unknown_architecture_are_named(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gone = tmp_path / "nope" / "HPS_v2.1.pt"
    cfg = JudgeConfig(name="hps", adapter="open_clip", device="cpu",
                      options={"model_name": tiny_clip.name, "checkpoint": str(gone)})
    assert str(gone) in create_judge(cfg).check_available(cfg)
    with pytest.raises(ConfigError, match=r"options\.checkpoint: file not found: .*HPS_v2\.1\.pt"):
        create_judge(cfg).setup()
    cfg = JudgeConfig(name="x", adapter="open_clip", device="cpu", options={"model_name": "ViT-B-33"})
    with pytest.raises(ConfigError, match=r"options\.model_name: unknown open_clip model 'ViT-B-33'; did you mean"):
        create_judge(cfg).setup()
    cfg = JudgeConfig(name="x", adapter="hf_clip", device="cpu", model=str(tmp_path / "no" / "such" / "model"))
    assert "model folder not found" in create_judge(cfg).check_available(cfg)
    cfg = JudgeConfig(name="x", adapter="hf_clip", device="cpu", model="org/not-cached-here")
    assert "HF_HUB_OFFLINE" in create_judge(cfg).check_available(cfg)


# -- the shipped judge YAMLs -----------------------------------------------------------------------
SHIPPED = {
    "clip-v1": "open_clip", "clip-v2": "open_clip", "hps-v2": "open_clip", "hps-v2.1": "open_clip",
    "pickscore-v1": "hf_clip", "blip-itm": "blip_itm", "image-reward-v1": "image_reward",
    "aesthetic-v2": "aesthetic", "random": "random", "sharpness": "sharpness", "brisque": "brisque",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_judge_yaml_validates_with_its_adapter(name):
    cfg = Catalog().judge(name)
    assert cfg.adapter == SHIPPED[name]
    create_judge(cfg)  # the adapter validates `options`
    assert cfg.description and cfg.license
    downloads = cfg.adapter not in ("random", "sharpness", "brisque")
    assert cfg.needs_network is downloads
    if downloads:
        assert cfg.citation and cfg.homepage
    if name.startswith("hps"):
        assert cfg.options["checkpoint"].startswith("hf-hub:xswu/HPSv2/HPS_v2")
        assert Path(cfg.options["checkpoint"]).name == ("HPS_v2.1_compressed.pt" if "2.1" in name
                                                        else "HPS_v2_compressed.pt")


# -- usable here, dtype per device, identity of local weights --------------------------------------
def _fake_hub_file(cache: Path, repo_id: str, filename: str) -> None:
    """A file in the hub cache layout (`models--org--name/snapshots/<rev>/<file>` + `refs/main`)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / filename).write_bytes(b"weights")


def test_open_clip_pretrained_tag_is_usable_only_when_cached_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's URL cache is ~/.cache/clip
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = Catalog().judge("clip-v1")
    why = create_judge(cfg).check_available(cfg)
    assert why and "'openai' weights of ViT-B-32 are not in the local cache" in why
    _fake_hub_file(tmp_path / "hub", "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    assert create_judge(cfg).check_available(cfg) is None
    bad = cfg.model_copy(update={"options": {**cfg.options, "pretrained": "no-such-tag"}})
    assert "has no pretrained tag 'no-such-tag'" in create_judge(bad).check_available(bad)


def test_float16_on_cpu_falls_back_to_float32_with_a_notice(tiny_clip, caplog):
    """The README's example YAML (device auto, dtype float16) failed every request on a CPU machine."""
    refs, prompts = [image(1), image(2)], PROMPTS
    cfg = JudgeConfig(name="half", adapter="open_clip", device="cpu", dtype="float16",
                      options={"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt})
    with caplog.at_level("WARNING", logger="mjbench"):
        half = scores(create_judge(cfg), [req(r, p) for r, p in zip(refs, prompts, strict=True)])
    assert "judge half: dtype float16 is not supported on cpu; using float32" in caplog.text
    full = scores(create_judge(cfg.model_copy(update={"dtype": "float32"})),
                  [req(r, p) for r, p in zip(refs, prompts, strict=True)])
    assert half == full
    explicit = cfg.model_copy(update={"dtype": "float32", "options": {**cfg.options, "precision": "fp16"}})
    assert scores(create_judge(explicit), [req(r, p) for r, p in zip(refs, prompts, strict=True)]) == full


def test_local_weights_are_part_of_the_identity(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"v1")
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    cfg = JudgeConfig(name="mine", adapter="open_clip", model=str(folder),
                      options={"model_name": "ViT-B-32", "pretrained": str(weights)})
    first = cfg.identity()
    assert set(first["local_files"]) == {str(weights), str(folder)}
    assert cfg.identity() == first  # stable while nothing changes
    os.utime(weights, ns=(1, 1))  # retrained at the same path (same size, new mtime)
    assert cfg.identity()["local_files"][str(weights)] != first["local_files"][str(weights)]
    (folder / "model.safetensors").write_bytes(b"new")
    assert cfg.identity()["local_files"][str(folder)] != first["local_files"][str(folder)]
    tag = JudgeConfig(name="clip", adapter="open_clip", options={"model_name": "ViT-B-32", "pretrained": "openai"})
    assert "local_files" not in tag.identity()  # a tag or hub id is identified by its name (and revision)


# -- decoding no more than the model uses ------------------------------------------------------------
def jpeg(seed: int, size: tuple[int, int]) -> ImageRef:
    """A smooth photo-like JPEG (noise would make draft decoding look worse than it is on photos)."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 64 + 2, w // 64 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return ImageRef(data=buf.getvalue(), origin=f"photo-{seed}.jpg")


@pytest.fixture
def decode_spy(monkeypatch):
    """The min_side every scorer decoded with, and the sizes handed to its preprocessing."""
    from mjbench.adapters import _scoring

    seen: list[tuple[int, tuple[int, int]]] = []
    real = _scoring.decode_at_least

    def spy(ref, min_side):
        img = real(ref, min_side)
        seen.append((min_side, img.size))
        return img

    monkeypatch.setattr(_scoring, "decode_at_least", spy)
    return seen


def test_open_clip_decodes_with_twice_its_input_side(tiny_clip, decode_spy):
    """The tiny model takes 64 px: images are decoded no smaller than 128 px on their shortest side, and a
    large JPEG scores (nearly) as its full decode does."""
    options = {"model_name": tiny_clip.name, "pretrained": tiny_clip.ckpt}
    j = judge("open_clip", options=options, batch_size=4)
    big, small = jpeg(1, (1024, 768)), image(2)
    got = scores(j, [req(big, PROMPTS[0]), req(small, PROMPTS[1])])
    assert sorted(decode_spy) == [(128, (72, 56)), (128, (256, 192))]  # 1024x768 drafted to 1/4
    expected = direct_open_clip(tiny_clip, [big, small], PROMPTS)
    assert got[1] == pytest.approx(expected[1], abs=1e-5)  # below the bound: exactly the full decode
    assert got[0] == pytest.approx(expected[0], abs=0.02 * abs(expected[0]) + 0.05)
    assert j.identity()["adapter_version"] == "2"  # pixels changed for large images: no stale cache reuse


def test_aesthetic_decodes_with_twice_the_clip_input_side(tiny_clip, tmp_path, decode_spy):
    torch.save(laion_head(32).state_dict(), tmp_path / "head.pth")
    j = judge("aesthetic", options={"head_path": str(tmp_path / "head.pth"), "clip_model": tiny_clip.name,
                                    "clip_pretrained": tiny_clip.ckpt})
    scores(j, [req(jpeg(3, (600, 600)), "x")])
    assert decode_spy == [(128, (150, 150))]
    assert j.identity()["adapter_version"] == "2"


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_hf_clip_decodes_with_twice_the_processor_side(tiny_hf, kind, decode_spy):
    j = judge("hf_clip", model=str(tiny_hf / kind), options={"processor": str(tiny_hf / "processor")})
    scores(j, [req(jpeg(4, (512, 256)), PROMPTS[0])])
    assert decode_spy == [(64, (128, 64))]  # 1/4 draft: the shortest side stays >= 64
    assert j.identity()["adapter_version"] == "2"


def test_blip_itm_decodes_with_twice_the_processor_side(tiny_blip, decode_spy):
    j = judge("blip_itm", model=str(tiny_blip))
    scores(j, [req(jpeg(5, (400, 300)), PROMPTS[0])])
    assert decode_spy == [(64, (100, 75))]
    assert j.identity()["adapter_version"] == "2"


def test_heuristic_scorers_decode_every_pixel(decode_spy):
    """Sharpness reads fine detail: it declares no bound, so nothing is drafted away."""
    j = judge("sharpness")
    scores(j, [req(jpeg(6, (1024, 768)), "x")])
    assert decode_spy == []


def test_speed_options_are_not_part_of_the_identity():
    """prefetch_workers changes how fast a scorer runs, not what it answers: the cache must not miss."""
    base = JudgeConfig(name="c", adapter="open_clip", options={"model_name": "ViT-B-32", "pretrained": "openai"})
    faster = base.model_copy(update={"options": {**base.options, "prefetch_workers": 8}})
    assert base.identity() == faster.identity()
    assert "prefetch_workers" in faster.options  # still passed to the adapter
