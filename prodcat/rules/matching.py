"""The legacy rule-based categoriser, made traceable: YAML rules -> category labels with the rules that fired.

A rule set is a YAML list of rules::

    - id: shorts
      category: Clothing > Shorts          # a category id or a path "A > B"
      all:  [{field: title, word: shorts}]  # every condition must hold
      any:  [{field: gender, equals: men}, {field: title, any_words: [men, boys]}]  # one must hold
      none: [{field: title, phrase: board shorts}]  # no condition may hold

Conditions (``field`` defaults to ``title``; fields: title, description, brand, category,
gender, size, retailer, network):

* ``word``: a whole word, case-insensitive, singular or plural ("shorts" matches "short" and
  "Shorts", not "shortbread"); a hyphenated word also matches written together or apart
  ("t-shirt" matches "T-Shirt", "tshirt", "t shirt").
* ``phrase``: consecutive words, the last one singular or plural.
* ``any_words``: any of several words or phrases.
* ``regex``: a Python regular expression searched case-insensitively in the raw field text.
* ``equals``: the whole field equals the value, ignoring case and surrounding spaces.

Words and phrases are matched against a set of the record's word n-grams, and rules are
indexed by a word they require, so a record only evaluates the few rules whose words it
contains: thousands of rules cost about as much as a dozen.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from prodcat.cleaning import split_category_path
from prodcat.errors import DataError
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy, normalise_name

__all__ = ["Condition", "FieldName", "Rule", "RuleMatch", "RuleSet"]


FieldName = Literal["title", "description", "brand", "category", "gender", "size", "retailer", "network"]
_KINDS = ("word", "phrase", "any_words", "regex", "equals")

# --------------------------------------------------------------------------------------------
# Words, plural forms and n-grams
# --------------------------------------------------------------------------------------------

# Possessives go before tokenising so "Men's" and "Kids'" are the words "men" and "kids".
_POSSESSIVE = re.compile(r"['’`´]s?(?!\w)")
_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "foot": "feet", "tooth": "teeth",
    "mouse": "mice", "person": "people", "knife": "knives", "shelf": "shelves", "leaf": "leaves",
    "half": "halves", "wife": "wives", "life": "lives", "loaf": "loaves", "scarf": "scarves",
    "thief": "thieves", "wolf": "wolves", "calf": "calves",
}
_IRREGULAR_SINGULARS = {p: s for s, p in _IRREGULAR_PLURALS.items()}
_ES_STEMS = ("ch", "sh", "ss", "x", "z", "o")


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """Two word sequences of ``text``: hyphenated words split into parts, and joined into one word."""
    text = _POSSESSIVE.sub("", text.casefold())
    parts: list[str] = []
    joined: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if "-" in token:
            pieces = token.split("-")
            parts.extend(pieces)
            joined.append("".join(pieces))
        else:
            parts.append(token)
            joined.append(token)
    return parts, joined


def _singulars(word: str) -> set[str]:
    """Plausible singulars of ``word`` (over-generating is harmless: non-words never match)."""
    if word in _IRREGULAR_SINGULARS:
        return {_IRREGULAR_SINGULARS[word]}
    if len(word) < 4 or not word.isalpha():
        return set()
    if word.endswith("ies"):
        return {word[:-3] + "y", word[:-1]}
    if word.endswith("es"):
        out = {word[:-1]}
        if word[:-2].endswith(_ES_STEMS):
            out.add(word[:-2])
        return out
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return {word[:-1]}
    return set()


def _plural(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _number_forms(word: str) -> set[str]:
    """``word`` with its singular and plural forms: "shorts" -> {"shorts", "short"}."""
    if len(word) < 3 or not word.isalpha():
        return {word}
    singulars = _singulars(word)
    forms = {word} | singulars
    for base in singulars or {word}:
        forms.add(_plural(base))
    return forms


def _pattern_keys(text: str) -> frozenset[str]:
    """The n-gram keys that a word or phrase matches (last word in every number form)."""
    parts, joined = _tokens(text)
    keys: set[str] = set()
    for seq in (parts, joined):
        if seq:
            keys.update(" ".join([*seq[:-1], form]) for form in _number_forms(seq[-1]))
    return frozenset(keys)


def _grams(text: str, max_n: int) -> set[str]:
    """Every run of 1..max_n consecutive words of ``text``, for both hyphen treatments."""
    parts, joined = _tokens(text)
    out: set[str] = set()
    for seq in (parts, joined) if joined != parts else (parts,):
        for n in range(1, min(max_n, len(seq)) + 1):
            out.update(" ".join(seq[i:i + n]) for i in range(len(seq) - n + 1))
    return out


# --------------------------------------------------------------------------------------------
# The YAML schema
# --------------------------------------------------------------------------------------------


class Condition(BaseModel):
    """One test on one field of a record; exactly one of word, phrase, any_words, regex, equals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: FieldName = "title"
    word: str | None = None
    phrase: str | None = None
    any_words: list[str] | None = None
    regex: str | None = None
    equals: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a condition needs exactly one of {', '.join(_KINDS)}; received {given or 'none of them'}"
            )
        return self

    @field_validator("word")
    @classmethod
    def _single_word(cls, value: str | None) -> str | None:
        if value is not None and len(_tokens(value)[1]) != 1:
            raise ValueError(f"word {value!r} must be a single word; use phrase or any_words for several")
        return value

    @field_validator("phrase")
    @classmethod
    def _has_words(cls, value: str | None) -> str | None:
        if value is not None and not _tokens(value)[0]:
            raise ValueError(f"phrase {value!r} has no words")
        return value

    @field_validator("any_words")
    @classmethod
    def _all_have_words(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("any_words is empty; list at least one word or phrase")
            empty = [v for v in value if not _tokens(v)[0]]
            if empty:
                raise ValueError(f"any_words entries {empty!r} have no words")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from None
        return value

    @property
    def kind(self) -> str:
        """Which test this is: word, phrase, any_words, regex or equals."""
        return next(k for k in _KINDS if getattr(self, k) is not None)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The condition as it is written in YAML (field first)."""
        return {"field": self.field, self.kind: getattr(self, self.kind)}


class Rule(BaseModel):
    """Label ``category`` when every ``all``, at least one ``any`` and no ``none`` condition holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    category: str
    all: list[Condition] = []
    any: list[Condition] = []
    none: list[Condition] = []

    @field_validator("id", "category")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _has_positive(self) -> Rule:
        if not self.all and not self.any:
            raise ValueError(
                "a rule needs at least one 'all' or 'any' condition (a 'none'-only rule fires on everything)"
            )
        return self

    def to_yaml_dict(self) -> dict[str, Any]:
        """The rule as it is written in YAML (empty lists left out)."""
        out: dict[str, Any] = {"id": self.id, "category": self.category}
        for key in ("all", "any", "none"):
            conditions = getattr(self, key)
            if conditions:
                out[key] = [c.to_yaml_dict() for c in conditions]
        return out


# --------------------------------------------------------------------------------------------
# Compiled rules and matching
# --------------------------------------------------------------------------------------------

_KEYS, _REGEX, _EQUALS = 0, 1, 2
_Compiled = tuple[int, str, Any]  # (kind, field, frozenset of keys | compiled regex | folded value)


def _compile(condition: Condition) -> _Compiled:
    if condition.word is not None:
        return _KEYS, condition.field, _pattern_keys(condition.word)
    if condition.phrase is not None:
        return _KEYS, condition.field, _pattern_keys(condition.phrase)
    if condition.any_words is not None:
        return _KEYS, condition.field, frozenset().union(*map(_pattern_keys, condition.any_words))
    if condition.regex is not None:
        return _REGEX, condition.field, re.compile(condition.regex, re.IGNORECASE)
    return _EQUALS, condition.field, normalise_name(condition.equals or "")


def _field_text(record: ProductRecord, field: str) -> str:
    value = getattr(record, field, None)
    if field == "category" and not value:
        value = " > ".join(getattr(record, "category_path", None) or [])
    if value is None:
        return ""
    value = getattr(value, "value", value)  # enums
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


class _RecordView:
    """One record's field texts and n-gram sets, computed once per field and only if a rule asks."""

    __slots__ = ("record", "max_n", "_text", "_grams")

    def __init__(self, record: ProductRecord, max_n: Mapping[str, int]) -> None:
        self.record = record
        self.max_n = max_n
        self._text: dict[str, str] = {}
        self._grams: dict[str, set[str]] = {}

    def text(self, field: str) -> str:
        text = self._text.get(field)
        if text is None:
            text = self._text[field] = _field_text(self.record, field)
        return text

    def grams(self, field: str) -> set[str]:
        grams = self._grams.get(field)
        if grams is None:
            grams = self._grams[field] = _grams(self.text(field), self.max_n.get(field, 1))
        return grams

    def holds(self, condition: _Compiled) -> bool:
        kind, field, payload = condition
        if kind == _KEYS:
            return not payload.isdisjoint(self.grams(field))
        if kind == _REGEX:
            return payload.search(self.text(field)) is not None
        return normalise_name(self.text(field)) == payload


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    category: str
    all: tuple[_Compiled, ...]
    any: tuple[_Compiled, ...]
    none: tuple[_Compiled, ...]

    def fires(self, view: _RecordView) -> bool:
        holds = view.holds
        return (all(holds(c) for c in self.all)
                and (not self.any or any(holds(c) for c in self.any))
                and not any(holds(c) for c in self.none))


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as "where: what was expected; received what"."""
    where = ".".join(map(str, error["loc"])) or "rule"
    received = error.get("input")
    shown = "" if isinstance(received, (dict, list)) else f"; received {received!r}"
    return f"{where}: {error['msg']}{shown}"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML without anchors: a rule file is read by people, "&id001" / "*id001" confuse them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """What the rules decided for one record: labels closed under ancestors, and which rule gave what."""

    labels: set[str]
    fired: list[tuple[str, str]]  # (rule id, category id), in rule order


class RuleSet:
    """Rules resolved against a taxonomy and compiled for matching; immutable once built."""

    def __init__(self, rules: Sequence[Rule], taxonomy: Taxonomy) -> None:
        """Resolve every rule's category (id or path) and compile it; DataError names the bad rule."""
        self.taxonomy = taxonomy
        self.rules: tuple[Rule, ...] = tuple(rules)
        seen: set[str] = set()
        compiled: list[_CompiledRule] = []
        max_n: dict[str, int] = defaultdict(lambda: 1)
        for rule in self.rules:
            if rule.id in seen:
                raise DataError(f"rule {rule.id!r} is defined twice; rule ids must be unique")
            seen.add(rule.id)
            groups = [tuple(_compile(c) for c in getattr(rule, key)) for key in ("all", "any", "none")]
            for kind, field, payload in (c for group in groups for c in group):
                if kind == _KEYS and payload:
                    max_n[field] = max(max_n[field], max(k.count(" ") + 1 for k in payload))
            compiled.append(_CompiledRule(rule.id, self._resolve(rule), *groups))
        self._compiled = tuple(compiled)
        self._max_n = dict(max_n)
        # Index each rule under the keys of one word condition it needs (the one with fewest
        # keys), so a record evaluates only rules whose words it contains. Rules needing no
        # word (regex/equals only) are evaluated for every record.
        self._index: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self._always: list[int] = []
        for i, rule in enumerate(compiled):
            trigger = self._trigger(rule)
            if trigger is None:
                self._always.append(i)
                continue
            for field, keys in trigger:
                for key in keys:
                    self._index[field][key].append(i)
        self._index = {f: dict(keys) for f, keys in self._index.items()}

    @staticmethod
    def _trigger(rule: _CompiledRule) -> list[tuple[str, frozenset[str]]] | None:
        """(field, keys) pairs of which a firing record must match at least one."""
        words = [c for c in rule.all if c[0] == _KEYS]
        if words:
            best = min(words, key=lambda c: len(c[2]))
            return [(best[1], best[2])]
        if rule.any and all(c[0] == _KEYS for c in rule.any):
            return [(c[1], c[2]) for c in rule.any]
        return None

    def _resolve(self, rule: Rule) -> str:
        if rule.category in self.taxonomy:
            return rule.category
        found = self.taxonomy.find(split_category_path(rule.category))
        if found is None:
            raise DataError(
                f"rule {rule.id!r}: unknown category {rule.category!r}; expected a category id or a "
                "path 'A > B' of the taxonomy the rules are loaded with"
            )
        return found

    # --- reading and writing ---------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, taxonomy: Taxonomy, *, source: str = "<rules>") -> RuleSet:
        """Parse YAML text (a list of rules); DataError names the source, the rule id and the problem."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise DataError(f"{source}: not valid YAML: {exc}") from exc
        if data is None:
            data = []
        if not isinstance(data, list):
            raise DataError(f"{source}: expected a YAML list of rules. Received: a {type(data).__name__}")
        rules: list[Rule] = []
        for n, item in enumerate(data, start=1):
            rule_id = item.get("id") if isinstance(item, dict) else None
            where = f"{source}: rule {rule_id!r}" if rule_id else f"{source}: rule #{n}"
            if not isinstance(item, dict):
                raise DataError(
                    f"{where}: expected a mapping with id, category and conditions. Received: {item!r}"
                )
            try:
                rules.append(Rule.model_validate(item))
            except ValidationError as exc:
                problems = "; ".join(_problem(e) for e in exc.errors())
                raise DataError(f"{where}: {problems}") from None
        try:
            return cls(rules, taxonomy)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, taxonomy: Taxonomy) -> RuleSet:
        """Read a YAML rule file and resolve its categories in ``taxonomy``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read rules file {path}: {exc}") from exc
        return cls.from_yaml(text, taxonomy, source=str(path))

    def to_yaml(self) -> str:
        """The rules as YAML that :meth:`from_yaml` reads back."""
        return yaml.dump([r.to_yaml_dict() for r in self.rules], Dumper=_Dumper, sort_keys=False,
                         allow_unicode=True, width=120, default_flow_style=None)

    def save(self, path: str | Path) -> None:
        """Write the rules as YAML."""
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @property
    def digest(self) -> str:
        """sha1 of the YAML form: identifies this rule set in model versions and Elasticsearch."""
        return hashlib.sha1(self.to_yaml().encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self)} rules over {len(self.taxonomy)} categories)"

    # --- matching --------------------------------------------------------------------------

    def apply(self, record: ProductRecord) -> RuleMatch:
        """The rules that fire on ``record`` and the labels they give, closed under ancestors."""
        view = _RecordView(record, self._max_n)
        candidates: set[int] = set(self._always)
        for field, index in self._index.items():
            for gram in view.grams(field):
                hit = index.get(gram)
                if hit:
                    candidates.update(hit)
        fired: list[tuple[str, str]] = []
        for i in sorted(candidates):
            rule = self._compiled[i]
            if rule.fires(view):
                fired.append((rule.id, rule.category))
        return RuleMatch(labels=self.taxonomy.close(c for _, c in fired), fired=fired)

    def apply_many(self, records: Iterable[ProductRecord]) -> list[RuleMatch]:
        """:meth:`apply` for each record, in order."""
        return [self.apply(r) for r in records]
