"""The image catalog (images/catalog.yaml + lock) and which image serves a record's environment."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from odrun._yaml import load_yaml
from odrun.errors import ConfigError, NotFoundError
from odrun.records.model import Environment, Record
from odrun.specs import load_spec

#: version of the ``odrun env --json`` document
ENV_FORMAT_VERSION = 1
LOCK_FORMAT_VERSION = 1

_HERE = Path(__file__).parent
CATALOG_NAME = "catalog.yaml"
LOCK_NAME = "catalog.lock.json"
#: record types whose experiment and year alone say which release they need
_EVENT_DATA = {"Collision", "Simulated"}
#: a CMSSW release named in a software record's title ("CMS Software Version 5_3_32 (CMSSW_5_3_32)")
_TITLE_RELEASE = re.compile(r"\bCMSSW_\d+_\d+_\d+\b")


@dataclass(frozen=True, slots=True)
class Serves:
    """What records an image is an environment for (empty: a tool image)."""

    experiments: tuple[str, ...] = ()
    years: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    #: file formats (extensions, lower case, no dot) the image reads, e.g. root
    formats: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.releases or self.images or self.titles or self.years or self.formats)


@dataclass(frozen=True, slots=True)
class CatalogImage:
    """One image of the catalog, with its base digest from the lock."""

    name: str
    path: str
    tag: str
    purpose: str
    base: str
    roles: tuple[str, ...]
    serves: Serves
    cvmfs: tuple[str, ...]
    build_args: Mapping[str, str] = field(default_factory=dict)
    base_digest: str | None = None
    base_ref: str | None = None
    digest_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "tag": self.tag,
            "purpose": self.purpose,
            "base": self.base,
            "base_digest": self.base_digest,
            "base_ref": self.base_ref,
            "build_args": dict(self.build_args),
            "cvmfs": list(self.cvmfs),
        }


@dataclass(frozen=True)
class Catalog:
    images: tuple[CatalogImage, ...]
    source: Path

    def get(self, name: str) -> CatalogImage:
        for image in self.images:
            if image.name == name:
                return image
        known = ", ".join(i.name for i in self.images)
        raise NotFoundError(f"no image {name!r} in {self.source}: known images are {known}")


def catalog_dir() -> Path:
    """Where the catalog is: shipped in the package (odrun/_images) or the checkout's images/."""
    for folder in (_HERE / "_images", _HERE.parent / "images"):
        if (folder / CATALOG_NAME).is_file():
            return folder
    raise ConfigError(
        f"the image catalog ({CATALOG_NAME}) is missing from this odrun installation",
        hint="reinstall odrun, or pass --catalog FILE",
    )


def read_catalog_document(path: Path) -> dict[str, Any]:
    """The catalog YAML, checked against specs/catalog.schema.json."""
    doc = load_yaml(path, "image catalog", error=ConfigError)
    _check(doc, "catalog.schema.json", path)
    names = [image["name"] for image in doc["images"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"image catalog {path}: duplicate image names {', '.join(duplicates)}")
    return dict(doc)


def _check(doc: Any, schema: str, path: Path) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(load_spec(schema)).iter_errors(doc)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ConfigError(f"{path} at {where}: {error.message} (schema: specs/{schema})")


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog and its lock (``catalog.lock.json`` next to it), consistent with each other."""
    path = path or catalog_dir() / CATALOG_NAME
    doc = read_catalog_document(path)
    lock_path = path.with_name(LOCK_NAME)
    lock = read_lock(lock_path)
    images = []
    for entry in doc["images"]:
        locked = lock["images"].get(entry["name"])
        if locked is None or any(locked[k] != v for k, v in _lock_keys(entry).items()):
            raise ConfigError(
                f"{lock_path} is out of date for image {entry['name']!r}",
                hint="run `python3 images/lock.py` after editing images/catalog.yaml",
            )
        images.append(_image(entry, locked))
    return Catalog(tuple(images), path)


def read_lock(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hint="run `python3 images/lock.py`"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    _check(doc, "catalog-lock.schema.json", path)
    return dict(doc)


def _lock_keys(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "path": entry["path"],
        "tag": entry["tag"],
        "base": entry["base"],
        "build_args": dict(entry.get("build_args", {})),
    }


def _image(entry: Mapping[str, Any], locked: Mapping[str, Any]) -> CatalogImage:
    serves = entry.get("serves", {})
    return CatalogImage(
        name=entry["name"],
        path=entry["path"],
        tag=entry["tag"],
        purpose=" ".join(entry["purpose"].split()),
        base=entry["base"],
        roles=tuple(entry["roles"]),
        serves=Serves(**{k: tuple(str(v) for v in serves.get(k, ())) for k in _SERVES_KEYS}),
        cvmfs=tuple(entry["cvmfs"]),
        build_args=dict(entry.get("build_args", {})),
        base_digest=locked["base_digest"],
        base_ref=locked["base_ref"],
        digest_source=locked["digest_source"],
    )


_SERVES_KEYS = ("experiments", "years", "releases", "images", "titles", "formats")


def pinned_ref(base: str, digest: str) -> str:
    return f"{base}@{digest}"


def lock_document(
    catalog: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    resolve: Callable[[str], tuple[str, str] | None] | None = None,
) -> dict[str, Any]:
    """The lock for ``catalog``: digests from ``resolve(base)`` (digest, source) or kept.

    A previous digest is kept only while the image's base is unchanged.
    """
    old = (previous or {}).get("images", {})
    images: dict[str, Any] = {}
    for entry in catalog["images"]:
        keys = _lock_keys(entry)
        before = old.get(entry["name"], {})
        digest, source = None, "unresolved: run `python3 images/lock.py --resolve` online"
        if before.get("base") == entry["base"] and before.get("base_digest"):
            digest, source = before["base_digest"], before["digest_source"]
        found = resolve(entry["base"]) if resolve else None
        if found:
            digest, source = found
        images[entry["name"]] = {
            **keys,
            "base_digest": digest,
            "base_ref": pinned_ref(entry["base"], digest) if digest else None,
            "digest_source": source,
        }
    return {"format_version": LOCK_FORMAT_VERSION, "images": images}


@dataclass(frozen=True)
class EnvironmentPlan:
    """The environment a record needs, and the catalog image that provides it."""

    recid: str
    title: str
    experiments: tuple[str, ...]
    years: tuple[str, ...]
    declared: Environment | None
    image: CatalogImage | None
    #: why this image: which rule matched
    match: str | None
    cvmfs: tuple[str, ...]
    alternatives: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def run_command(self) -> str | None:
        if self.image is None:
            return None
        binds = " ".join(f"-v /cvmfs/{r}:/cvmfs/{r}:ro" for r in self.cvmfs)
        return " ".join(p for p in ("podman run --rm -it", binds, self.image.tag) if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": ENV_FORMAT_VERSION,
            "recid": self.recid,
            "title": self.title,
            "experiments": list(self.experiments),
            "years": list(self.years),
            "declared": self.declared.to_dict() if self.declared else None,
            "image": self.image.to_dict() if self.image else None,
            "match": self.match,
            "cvmfs": list(self.cvmfs),
            "alternatives": list(self.alternatives),
            "build": f"images/build.sh {self.image.name}" if self.image else None,
            "run": self.run_command,
            "notes": list(self.notes),
        }


def _repository(image: str) -> str:
    """An image reference without its tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def _formats(record: Record) -> set[str]:
    """The file formats of a record's data files: their extensions (``root``, ``csv``...)."""
    names = (f.filename for f in record.files)
    return {n.rsplit(".", 1)[1].lower() for n in names if "." in n.rsplit("/", 1)[-1]}


def _release(record: Record) -> tuple[str | None, str]:
    """The release a record declares, or a software record names in its title; and where from."""
    env = record.environment or Environment()
    if env.release:
        return env.release, ""
    found = _TITLE_RELEASE.search(record.title) if record.type_primary == "Software" else None
    return (found.group(0), " (from the title)") if found else (None, "")


def _rules(record: Record) -> list[Callable[[Serves], str | None]]:
    """The matching rules, strongest first; each says why an image serves the record, or None."""
    env = record.environment or Environment()
    repos = {_repository(i.name) for i in env.container_images}
    secondary = set(record.type_secondary)
    # event data, and the conditions data of a year (read by that year's release)
    event_data = (record.type_primary == "Dataset" and bool(_EVENT_DATA & secondary)) or (
        record.type_primary == "Environment" and "Condition" in secondary
    )
    formats = _formats(record)
    release, source = _release(record)

    def experiment_ok(serves: Serves) -> bool:
        return not serves.experiments or bool(set(serves.experiments) & set(record.experiments))

    def by_release(serves: Serves) -> str | None:
        if release and any(fnmatch.fnmatchcase(release, g) for g in serves.releases):
            return f"release {release}{source}"
        return None

    def by_image(serves: Serves) -> str | None:
        named = sorted(repos & set(serves.images))
        return f"container image {named[0]}" if named else None

    def by_title(serves: Serves) -> str | None:
        if not experiment_ok(serves):
            return None
        found = next((m for p in serves.titles if (m := re.search(p, record.title))), None)
        return f"title ({found.group(0)})" if found else None

    def by_year(serves: Serves) -> str | None:
        years = sorted(set(serves.years) & set(record.years))
        if event_data and serves.experiments and experiment_ok(serves) and years:
            return f"experiment and year ({record.experiment} {', '.join(years)})"
        return None

    def by_format(serves: Serves) -> str | None:
        # only for records that declare nothing: a declared release the catalog lacks
        # is not served by an image that merely reads the file format
        declared = bool(env.release or env.container_images)
        found = sorted(formats & set(serves.formats))
        if record.type_primary == "Dataset" and not declared and experiment_ok(serves) and found:
            return f"file format ({', '.join(found)})"
        return None

    return [by_release, by_image, by_title, by_year, by_format]


def plan_environment(record: Record, catalog: Catalog) -> EnvironmentPlan:
    """Which catalog image provides ``record``'s environment, and the CVMFS repositories it reads.

    Rules, first that matches wins: the declared release (or a software record's title),
    a declared container image, the title (e.g. NanoAOD), the experiment and year of
    collision/simulated datasets and condition data, the format of the files (e.g. ROOT).
    A record that declares nothing and matches no rule needs no catalog image: ``image``
    is None and a note says so.
    """
    env = record.environment
    candidates = [i for i in catalog.images if not i.serves.empty]
    chosen: list[CatalogImage] = []
    match = None
    for rule in _rules(record):
        reasons = [(i, why) for i in candidates if (why := rule(i.serves))]
        if reasons:
            chosen = [i for i, _ in reasons]
            match = reasons[0][1]
            break
    image = chosen[0] if chosen else None
    notes = list(_notes(record, image))
    if image is None and env is None:
        notes = [no_environment_note(record)]
    return EnvironmentPlan(
        recid=record.recid,
        title=record.title,
        experiments=record.experiments,
        years=record.years,
        declared=env,
        image=image,
        match=match,
        cvmfs=image.cvmfs if image else (),
        alternatives=tuple(i.name for i in chosen[1:]),
        notes=tuple(notes),
    )


def no_environment_note(record: Record) -> str:
    """The one line for a record that declares no environment and matches no catalog image."""
    where = ", ".join(p for p in (record.experiment, ", ".join(record.years)) if p)
    return (
        f"record {record.recid} ({where or 'no experiment'}) declares no environment "
        "(no system_details) and no catalog image serves it: as far as odrun knows its files "
        f"need no particular software (`odrun fetch {record.recid}`)"
    )


def _notes(record: Record, image: CatalogImage | None) -> list[str]:
    env = record.environment or Environment()
    notes = []
    moving = [i.name for i in env.container_images if "@" not in i.name]
    if moving:
        notes.append(
            f"the record names {len(moving)} image(s) by a moving tag ({moving[0]}): "
            "the catalog pins the base by digest"
        )
    if image is None:
        notes.append(
            "no image in the catalog provides this environment: use the record's own images "
            "or the description"
        )
    elif image.base_digest is None:
        notes.append(
            f"the base of {image.name} ({image.base}) is not yet pinned in catalog.lock.json: "
            "`python3 images/lock.py --resolve` (needs the registry) before building"
        )
    if env.recid:
        notes.append(
            f"the record describes its environment in record {env.recid} (`odrun info {env.recid}`)"
        )
    if image is not None and env.global_tag and "cms-opendata-conddb.cern.ch" in image.cvmfs:
        notes.append(
            f"conditions for global tag {env.global_tag} are read from "
            "/cvmfs/cms-opendata-conddb.cern.ch"
        )
    return notes


@cache
def default_catalog() -> Catalog:
    return load_catalog()
