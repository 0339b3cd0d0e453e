"""The fingerprint of a feature contract: one stable hash of how rows were encoded, checked wherever data meets a model.

    fingerprint = "fc1-" + sha256(canonical JSON of {
        "features": [{name, type, role, vocab_size}, ...] in features.json order,
        "encoding": {vocab_mode, hash_buckets, hash_function, numeric_transform},
        "vocab_digests": {C1: sha256 of C1's values in id order, ...} or null (hash mode, toy data)})[:16 hex]

Only what decides the bytes of an encoded row goes in: two runs that reuse one vocabulary (`--vocab_dir`) share a
fingerprint, two vocabularies of the same size but other content do not. How the vocabulary was counted (min_count,
vocab_rows, counts) is left out: it shows in the vocabulary's content or not at all.

Where it lives (written by `pipelines.preprocess`, docs/architecture.md "Contracts"):
  * features.json and summary.json: key `feature_fingerprint`; features.json also holds `vocab_digests`, so the
    fingerprint can be recomputed from features.json alone (`recorded_fingerprint` refuses a hand-edited file);
  * every shard: the comment field of its gzip header (`gzip_header`), so one file can be checked on its own by
    reading its first bytes, with no per-row cost and no extra record that readers would have to skip;
  * every exported SavedModel: `assets.extra/features.json` (the trainer's) and `assets.extra/feature_fingerprint`.

Plain Python (no TensorFlow, no Beam): Beam workers and the server import it.
"""
from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

KEY = "feature_fingerprint"
VOCAB_DIGESTS_KEY = "vocab_digests"
PREFIX = "fc1-"
# The gzip comment of a shard: `feature_fingerprint=<fingerprint>`.
_COMMENT_PREFIX = KEY + "="
_ENCODING_KEYS = ("vocab_mode", "hash_buckets", "hash_function", "numeric_transform")
RERUN_PREPROCESS = "rerun pipelines.preprocess (with --vocab_dir of the run the model was trained on to keep its ids)"


class FingerprintError(ValueError):
    """A file or model has no feature fingerprint, or another one than the data or model it is used with."""


def vocabulary_digest(values: Sequence[str]) -> str:
    """sha256 of a vocabulary's values in id order (id k + 1 for line k), one per line."""
    return hashlib.sha256("".join(v + "\n" for v in values).encode("utf-8", "surrogateescape")).hexdigest()


def compute(features_json: Mapping[str, Any]) -> str:
    """The fingerprint of a features.json dict (its `features`, encoding keys and `vocab_digests`)."""
    content = {
        "features": [
            {k: f.get(k) for k in ("name", "type", "role", "vocab_size")} for f in features_json["features"]
        ],
        "encoding": {k: features_json.get(k) for k in _ENCODING_KEYS},
        "vocab_digests": features_json.get(VOCAB_DIGESTS_KEY),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return PREFIX + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def stamp(features_json: Mapping[str, Any], vocab_digests: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`features_json` with `vocab_digests` (if given) and its `feature_fingerprint` added."""
    out = dict(features_json)
    if vocab_digests is not None:
        out[VOCAB_DIGESTS_KEY] = dict(sorted(vocab_digests.items()))
    out.pop(KEY, None)
    out[KEY] = compute(out)
    return out


def recorded_fingerprint(features_json: Mapping[str, Any], path: str) -> str:
    """The fingerprint features.json records, checked against its content.

    Raises:
      FingerprintError: no fingerprint (written before fingerprints existed), or one that its content does not give
        (the file was edited after preprocessing).
    """
    recorded = features_json.get(KEY)
    if not recorded:
        raise FingerprintError(
            f"{path} has no {KEY} (written before feature fingerprints existed): {RERUN_PREPROCESS}")
    computed = compute(features_json)
    if recorded != computed:
        raise FingerprintError(
            f"{path} records {KEY} {recorded} but its content gives {computed} (edited after preprocessing?): "
            f"{RERUN_PREPROCESS}")
    return recorded


# --- Shards: the gzip header's comment field (RFC 1952) -------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b\x08"
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16
# Enough of a file to hold any header this project writes (the comment is ~40 bytes).
HEADER_BYTES = 512


def gzip_header(fingerprint: str | None, compresslevel: int = 6) -> bytes:
    """A gzip member header with no name and mtime 0 and, given a fingerprint, the comment naming it."""
    xfl = 2 if compresslevel == 9 else 4 if compresslevel == 1 else 0
    flags = _FCOMMENT if fingerprint else 0
    header = _GZIP_MAGIC + bytes([flags]) + struct.pack("<I", 0) + bytes([xfl, 255])
    if fingerprint:
        header += (_COMMENT_PREFIX + fingerprint).encode("latin-1") + b"\0"
    return header


def from_gzip_header(head: bytes) -> str | None:
    """The fingerprint in the comment of the gzip header that `head` (a file's first bytes) starts with; None when
    `head` is not gzip or its header has no fingerprint comment."""
    if len(head) < 10 or not head.startswith(_GZIP_MAGIC):
        return None
    flags, position = head[3], 10
    if flags & _FEXTRA:
        if len(head) < position + 2:
            return None
        position += 2 + struct.unpack("<H", head[position:position + 2])[0]
    if flags & _FNAME:
        end = head.find(b"\0", position)
        if end < 0:
            return None
        position = end + 1
    if not flags & _FCOMMENT:
        return None
    end = head.find(b"\0", position)
    if end < 0:
        return None
    comment = head[position:end].decode("latin-1")
    return comment[len(_COMMENT_PREFIX):] if comment.startswith(_COMMENT_PREFIX) else None


def mismatch_message(path: str, found: str | None, expected: str, expected_from: str, what_to_do: str) -> str:
    """The one line every consumer prints for a file or model of another (or no) feature contract."""
    if found is None:
        return (f"{path} carries no {KEY} (written before feature fingerprints existed, or not by "
                f"pipelines.preprocess); expected {expected} from {expected_from}: {what_to_do}")
    return (f"{path} was encoded with feature contract {found}, but {expected_from} has {expected}: "
            f"{what_to_do}")
