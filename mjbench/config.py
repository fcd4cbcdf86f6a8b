"""Task, suite and judge configurations: YAML files validated into pydantic models.

Every validation problem becomes one ConfigError line naming the file and the field, e.g.
`judges/clip.yaml: batch_size: Input should be a valid integer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from mjbench import PERSPECTIVES
from mjbench.errors import ConfigError
from mjbench.labels import gold_label

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the file this config was read from (set by the loader, not written in YAML)
    path: Path | None = Field(default=None, exclude=True)


class SubcategorySpec(BaseModel):
    """Where an item's subcategory comes from: a fixed name, a column, or a key inside `info`."""

    model_config = ConfigDict(extra="forbid")

    fixed: str | None = None
    column: str | None = None
    info_key: str | None = None  # `info` holds a dict or JSON object; take this key
    map: dict[str, str] = Field(default_factory=dict)  # raw value -> subcategory name
    default: str | None = None  # used when the column/key is empty


class TaskConfig(_Config):
    """One named, versioned set of items from one source."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    version: str = "1"
    #: pair: two images, a gold label; bias: single images in groups; candidates: unlabelled image sets for
    #: `mjbench label`; caption_pair: one image, two texts, a gold label; group: N candidates with a gold
    #: ranking (see mjbench/sources/shapes.py)
    kind: Literal["pair", "bias", "candidates", "caption_pair", "group"] = "pair"
    #: kind group only: what the candidates are, `images` (for one prompt; the default) or `texts` (for one
    #: image, e.g. captions of a cartoon)
    candidates: Literal["images", "texts"] | None = None
    perspective: str
    source: dict[str, Any]  # {type: <source name>, ...options of that source}
    columns: dict[str, str] = Field(default_factory=dict)  # canonical field -> column in the data
    subcategory: SubcategorySpec = Field(default_factory=lambda: SubcategorySpec(fixed="all"))
    subcategories: list[str] = Field(default_factory=list)  # declared names, for listings
    label_map: dict[str, str] = Field(default_factory=dict)
    #: the gold classes this task uses, e.g. [0, 1, tie, both_bad]: pair prompts offer the judge the same
    #: choices (`both_bad` adds a BOTH_BAD answer); None: 0, 1 and tie
    labels: list[str] | None = None
    #: aspects VLM judges are asked about one at a time on this task when the command names none (`--aspects`;
    #: names are checked against the prompt files when a run starts)
    aspects: list[str] = Field(default_factory=list)
    citation: str = ""
    license: str = ""
    homepage: str = ""

    @field_validator("perspective")
    @classmethod
    def _perspective(cls, v: str) -> str:
        if v not in PERSPECTIVES:
            raise ValueError(f"unknown perspective {v!r}; expected one of {', '.join(PERSPECTIVES)}")
        return v

    @field_validator("label_map", mode="before")
    @classmethod
    def _label_map_text(cls, v: Any) -> Any:
        """YAML reads `{2: tie}` and `{"1": 0}` with numbers; labels are matched as text."""
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items()}
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        """Each class through the one label normaliser; 0 and 1 must be among them."""
        if not isinstance(v, list):
            return v
        labels = [gold_label(x, what="labels entry") for x in v]
        if None in labels or not {"0", "1"} <= set(labels):
            raise ValueError(f"expected a list of gold classes that includes 0 and 1, got {v!r}")
        return list(dict.fromkeys(labels))

    @field_validator("candidates")
    @classmethod
    def _candidates_only_for_groups(cls, v: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if v is not None and kind is not None and kind != "group":
            raise ValueError(f"only for kind group (this task is kind {kind})")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        return str(v)

    @field_validator("source")
    @classmethod
    def _source_type(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(v.get("type"), str):
            raise ValueError("needs a 'type' (e.g. synthetic, hub, parquet, table)")
        return v


class SuiteConfig(_Config):
    """A named list of tasks (or other suites)."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    tasks: list[str] = Field(min_length=1)


class Pricing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = 0.0  # USD per million input tokens
    output_per_mtok: float = 0.0


#: fields of a judge config that change what the judge answers (they key the result store)
IDENTITY_EXCLUDE = {
    "name", "description", "family", "citation", "license", "homepage", "device", "batch_size",
    "max_concurrency", "requests_per_minute", "max_retries", "timeout_s", "api_key_env", "pricing",
    "needs_network", "needs_gpu", "scales", "orders", "tie_threshold", "path",
}


#: adapter options that change how fast a judge runs, never what it answers
IDENTITY_EXCLUDE_OPTIONS = ("prefetch_workers",)


class JudgeConfig(_Config):
    """A configured adapter. Adapter-specific settings go under `options` (validated by the adapter)."""

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str
    description: str = ""
    family: Literal["score", "vlm", "api", "heuristic", "baseline", "precomputed", "jury"] = "score"
    model: str | None = None
    revision: str | None = None
    mode: Literal["single", "pair"] = "single"
    #: pair mode: the image orders asked for each item; `[random]` asks one order per item, drawn from
    #: the run's --seed (half the cost, no consistency metric, but no systematic position advantage)
    orders: list[Literal["01", "10", "random"]] = Field(default_factory=lambda: ["01", "10"], min_length=1)
    scales: list[str] = Field(default_factory=lambda: ["score"], min_length=1)
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "float32"
    batch_size: int = Field(default=16, ge=1)
    tie_threshold: float = Field(default=0.0, ge=0)
    # API and concurrency policy (applied by the runner, not by adapters)
    #: the server; a list names replicas of one deployment (data parallelism across machines): requests go
    #: round-robin, and the first address stands for all of them in the cache key (see `identity`)
    base_url: str | list[str] | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    requests_per_minute: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=4, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    parse_retries: int = Field(default=0, ge=0, le=3)
    pricing: Pricing = Field(default_factory=Pricing)
    # prompting and decoding
    prompts: dict[str, str] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    needs_network: bool | None = None
    needs_gpu: bool | None = None
    citation: str = ""
    license: str = ""
    homepage: str = ""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list; give one address or several replicas")
            if any(not u.strip() for u in v):
                raise ValueError("an empty address in the list")
            if len(set(v)) != len(v):
                raise ValueError("an address is listed twice")
        return v

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: list[str]) -> list[str]:
        if "random" in v and len(v) > 1:
            raise ValueError("'random' stands alone: [random], or a list of 01 and 10")
        if len(set(v)) != len(v):
            raise ValueError("an order is listed twice")
        return v

    def identity(self) -> dict[str, Any]:
        """What determines this judge's answers; hashed into every cache key. Local weights are named by a
        path, so their size and modification time join it: retrained weights at the same path are new."""
        identity = self.model_dump(mode="json", exclude=IDENTITY_EXCLUDE)
        for option in IDENTITY_EXCLUDE_OPTIONS:  # how fast, not what: they never change an answer
            identity["options"].pop(option, None)
        if isinstance(self.base_url, list):
            # replicas answer alike: which one answered, and how many there are, must not change the key
            identity["base_url"] = self.base_url[0]
        local = local_fingerprints([self.model, *_strings(self.options)], self.path)
        if local:
            identity["local_files"] = local
        return identity


#: a folder with more files than this is fingerprinted by its own stat only (it is data, not weights)
_MAX_FINGERPRINT_FILES = 2000


def _strings(value: Any) -> list[str]:
    """Every string inside nested options."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _stat(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def local_fingerprints(values: list[str | None], yaml_path: Path | None) -> dict[str, str]:
    """`size:mtime` of each value that names an existing local file (for a folder: a digest over its files'
    paths, sizes and mtimes). Relative paths are relative to the judge YAML, as the adapters read them. Hub
    ids, tags and URLs are not files and are identified by their name (and `revision`)."""
    import hashlib

    base = yaml_path.parent if yaml_path else Path.cwd()
    out: dict[str, str] = {}
    for value in values:
        if not value or value.startswith(("hf-hub:", "http://", "https://")):
            continue
        p = Path(value.removeprefix("local-dir:")).expanduser()
        p = p if p.is_absolute() else base / p
        try:
            if p.is_file():
                out[value] = _stat(p)
            elif p.is_dir():
                files = []
                for f in p.rglob("*"):  # stops early: a huge folder is data, not weights
                    if len(files) > _MAX_FINGERPRINT_FILES:
                        break
                    if f.is_file():
                        files.append(f)
                files.sort()
                if len(files) > _MAX_FINGERPRINT_FILES:
                    out[value] = _stat(p)
                    continue
                digest = hashlib.sha256()
                for f in files:
                    digest.update(f"{f.relative_to(p)}\0{_stat(f)}\n".encode())
                out[value] = digest.hexdigest()[:16]
        except OSError:
            continue
    return out


def _format_validation(path: Path | str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    return f"{path}: " + "; ".join(parts)


def validate(model: type[BaseModel], data: Any, path: Path | str) -> Any:
    """Validate `data` into `model`; a failure becomes one ConfigError naming the file and fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from None
    if isinstance(obj, _Config):
        obj.path = Path(path)
    return obj


def read_yaml(path: Path) -> Any:
    """Read one YAML file; a syntax error names the file, line and column."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from None


def load_task_file(path: Path) -> TaskConfig | SuiteConfig:
    data = read_yaml(path)
    if isinstance(data, dict) and "tasks" in data and "source" not in data:
        return validate(SuiteConfig, data, path)
    return validate(TaskConfig, data, path)


def load_judge_file(path: Path) -> JudgeConfig:
    return validate(JudgeConfig, read_yaml(path), path)
