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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from prodcat.categoriser import Categorisation, Categoriser
from prodcat.cleaning import split_category_path
from prodcat.errors import DataError
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy, normalise_name

__all__ = [
    "GENERIC_NAMES",
    "Condition",
    "Rule",
    "RuleCategoriser",
    "RuleMatch",
    "RuleSet",
    "generate_rules",
]


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


# --------------------------------------------------------------------------------------------
# The categoriser
# --------------------------------------------------------------------------------------------


class RuleCategoriser(Categoriser):
    """The legacy system behind the :class:`~prodcat.categoriser.Categoriser` interface.

    Every label scores 1.0; the explanation maps each label to the rules that gave it or one of
    its descendants.
    """

    def __init__(self, ruleset: RuleSet, version: str | None = None) -> None:
        self.ruleset = ruleset
        self.taxonomy = ruleset.taxonomy
        self.version = version or f"rules-{ruleset.digest[:12]}"

    def categorise(self, record: ProductRecord) -> Categorisation:
        """Categorise one record."""
        taxonomy = self.ruleset.taxonomy
        match = self.ruleset.apply(record)
        explanation: dict[str, list[str]] = defaultdict(list)
        for rule_id, category in match.fired:
            for label in (*taxonomy.ancestors(category), category):
                if rule_id not in explanation[label]:
                    explanation[label].append(rule_id)
        categories = sorted(match.labels, key=taxonomy.index)
        return Categorisation(
            categories=categories,
            scores=dict.fromkeys(categories, 1.0),
            explanation={c: explanation[c] for c in categories},
        )

    def categorise_batch(self, records: Sequence[ProductRecord],
                         image_vectors: Mapping[str, np.ndarray] | None = None) -> list[Categorisation]:
        """Categorise each record (rules read text only); a failure raises, never "no category"."""
        return [self.categorise(record) for record in records]


# --------------------------------------------------------------------------------------------
# Generating a starter rule set from category names
# --------------------------------------------------------------------------------------------

GENERIC_NAMES: frozenset[str] = frozenset({
    "other", "others", "general", "misc", "miscellaneous", "more", "accessories", "accessory",
    "combo", "combos", "set", "sets", "kit", "kits", "essentials", "supplies", "products", "items",
    "parts", "spare parts", "gift", "gifts", "free gifts", "free items", "new", "sale", "collection",
    "home", "wear", "care", "free", "all", "best", "special", "featured", "top", "personal",
    "unisex", "apparel", "lifestyle", "needs", "festive needs", "others accessories", "store",
    "shop", "deals", "offers", "brands", "gift sets", "value packs", "packs",
})
# A style, not a kind of product: no rule for a name that is only this ("Designer" notebooks),
# though the word still tells branches apart ("Formal Wear" vs "Ethnic Wear").
_STYLE_WORDS = frozenset({
    "designer", "fancy", "premium", "classic", "basic", "regular", "standard", "digital", "printed",
    "plain", "casual", "formal", "ethnic", "traditional", "modern", "branded", "smart",
})
# Words that say nothing about the category on their own; left out of context words.
_STOPWORDS = frozenset({"and", "or", "the", "of", "for", "with", "in", "on", "by", "a", "an", "to", "s"})
# Who a product is for, not what it is: a name made only of these says nothing on its own.
_AUDIENCE = frozenset({"men", "man", "women", "woman", "boys", "boy", "girls", "girl", "kids", "kid", "baby",
                       "babies", "infant", "infants", "unisex", "ladies", "lady", "gents", "children", "child",
                       "teens", "teen", "toddler", "toddlers", "adults", "adult"})
_NAME_SPLIT = re.compile(r"\s*(?:&|,|\+|/|\band\b)\s*", re.IGNORECASE)


def _split_name(name: str) -> list[str]:
    """A name's alternatives: "Sofa Beds & Futons" -> ["sofa beds", "futons"].

    A one-word piece before a multi-word last piece shares its head noun:
    "Door & Windows Fittings" -> ["door fittings", "windows fittings"], not "door".
    """
    raw = [p for p in (_POSSESSIVE.sub("", p.casefold()).strip() for p in _NAME_SPLIT.split(name)) if p]
    last = raw[-1].split() if raw else []
    return [f"{piece} {last[-1]}" if n < len(raw) - 1 and len(piece.split()) == 1 and len(last) >= 2 else piece
            for n, piece in enumerate(raw)]


def _name_pieces(name: str, generic: Collection[str], parent: str | None = None) -> list[str]:
    """The word patterns a category name stands for, without generic or audience-only ones.

    A name that extends its parent's name is not split inside the parent's part:
    "Mobile Makeup Cases & Covers" under "Cases & Covers" -> ["mobile makeup cases",
    "mobile makeup covers"], never plain "covers".
    """
    full, parent_name = normalise_name(name), normalise_name(parent or "")
    if parent_name and full.endswith(" " + parent_name):
        prefix = full[: -len(parent_name)].strip()
        pieces = [f"{p} {q}" for p in _split_name(prefix) for q in _split_name(parent_name)]
    else:
        pieces = _split_name(name)
    out: list[str] = []
    for piece in pieces:
        words = _tokens(piece)[0]
        if not words or len(piece) < 3 or normalise_name(piece) in generic or piece in _STYLE_WORDS:
            continue
        if all(w in _STOPWORDS or w in generic or w in _AUDIENCE for w in words):
            continue  # "Others", "For Boys", "Baby Girls": no product type in it
        if piece not in out:
            out.append(piece)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _POSSESSIVE.sub("", text.casefold())).strip("-") or "category"


def _words_condition(pieces: Sequence[str], field: FieldName) -> Condition:
    if len(pieces) > 1:
        return Condition(field=field, any_words=list(pieces))
    if len(_tokens(pieces[0])[1]) == 1:
        return Condition(field=field, word=pieces[0])
    return Condition(field=field, phrase=pieces[0])


def _brand_like(taxonomy: Taxonomy, *, min_share: float = 0.8, min_count: int = 5) -> set[str]:
    """Ids of nodes named "<brand> <parent name>" (Flipkart's "Nucode T-Shirts" under "T-Shirts").

    A node is a brand node when most of its siblings (``min_share``, at least ``min_count``)
    are named "<something> <parent name>" too, and a word of its prefix occurs in no other kind
    of category name: "Casual Shoes" beside "Flats" and "Heels" stays, and so does "Wall
    Clocks" ("wall" is in "Wall Decor").
    """
    suffixed: dict[str, list[str]] = {}
    vocabulary: set[str] = set()
    for cid in taxonomy.ids:
        name = normalise_name(taxonomy.name(cid))
        parent = taxonomy.parent(cid)
        parent_name = normalise_name(taxonomy.name(parent)) if parent else ""
        if parent_name and name.endswith(" " + parent_name):
            suffixed[cid] = _tokens(name[: -len(parent_name)])[0]
        else:
            vocabulary.update(_tokens(name)[0])
    brand_like: set[str] = set()
    for cid, prefix in suffixed.items():
        siblings = taxonomy.children(taxonomy.parent(cid) or "")
        patterned = sum(s in suffixed for s in siblings)
        if (patterned >= min_count and patterned >= min_share * len(siblings)
                and not all(w in vocabulary for w in prefix)):
            brand_like.add(cid)
    return brand_like


def generate_rules(
    taxonomy: Taxonomy,
    *,
    min_depth: int = 1,
    max_depth: int | None = None,
    field: FieldName = "title",
    generic: Collection[str] = GENERIC_NAMES,
    skip_brand_like: bool = True,
    support: Mapping[str, int] | None = None,
    default_share: float = 0.6,
) -> RuleSet:
    """A starter rule set from category names: "Shorts" -> title has the word "shorts".

    * Names split on "&", ",", "/" and "and" into alternatives ("Sofa Beds & Futons" -> any of
      "sofa beds", "futons"); multi-word names become phrases; plurals match singulars.
    * Generic names ("Others", "General", "Accessories" alone, see :data:`GENERIC_NAMES`),
      audience-only names ("Baby Girls", "For Boys") and, with ``skip_brand_like``, brand nodes
      ("Alisha Shorts" under "Shorts") get no rule.
    * A rule only uses the category's own name, so a deep category never fires because its
      parent's word appears ("Cycling Shorts" needs "cycling shorts", not "shorts").
    * An alternative used by several categories ("Shirts" under Men's, Women's and Kids'
      clothing and under Baby Care) is resolved down the tree: it labels the categories'
      lowest common ancestor (Clothing), and a branch below only when a word of that branch's
      own ancestors appears too ("men", "women", "kids boys"). A branch holding at least
      ``default_share`` of the alternative's categories (or of their items, with ``support``:
      category id -> item count) is the default: it fires unless another branch's words appear.
      Categories that use a one-word alternative inside a phrase ("car" in "Car Mats") compete
      for it the same way, at half weight, without getting a rule of their own.
    * A one-word alternative that ends a longer word ("shirts" in "T-Shirts", "rings" in
      "Earrings") does not fire inside it: the rule excludes the compound.

    Measured on the shared datasets (title only, taxonomy only): Flipkart 20k at depth <= 4,
    level-1 precision 0.86 / recall 0.75; Myntra, level-1 0.99 / 0.91, level-3 0.93 / 0.79.
    """
    return _Generator(taxonomy, min_depth=min_depth, max_depth=max_depth, field=field, generic=generic,
                      skip_brand_like=skip_brand_like, support=support, default_share=default_share).run()


class _Generator:
    """The state of one :func:`generate_rules` run."""

    def __init__(self, taxonomy: Taxonomy, *, min_depth: int, max_depth: int | None, field: FieldName,
                 generic: Collection[str], skip_brand_like: bool, support: Mapping[str, int] | None,
                 default_share: float) -> None:
        self.taxonomy = taxonomy
        self.min_depth, self.max_depth = min_depth, max_depth
        self.field: FieldName = field
        self.generic = frozenset(normalise_name(g) for g in generic)
        self.skipped = _brand_like(taxonomy) if skip_brand_like else set()
        self.support, self.default_share = support, default_share
        self.compounds = _compounds(taxonomy)
        self.rules: list[tuple[str, Rule]] = []  # (category id, rule)

    def pieces(self, cid: str) -> list[str]:
        parent = self.taxonomy.parent(cid)
        return _name_pieces(self.taxonomy.name(cid), self.generic,
                            self.taxonomy.name(parent) if parent else None)

    def run(self) -> RuleSet:
        taxonomy = self.taxonomy
        # Group equal alternatives across categories ("cover" and "covers" are one).
        group_of_key: dict[str, int] = {}
        groups: list[list[tuple[str, str]]] = []  # group -> [(category id, piece)]
        for cid in taxonomy.ids:
            depth = taxonomy.depth(cid)
            if depth < self.min_depth or (self.max_depth is not None and depth > self.max_depth):
                continue
            if cid in self.skipped:
                continue
            for piece in self.pieces(cid):
                keys = _pattern_keys(piece)
                g = next((group_of_key[k] for k in keys if k in group_of_key), None)
                if g is None:
                    g = len(groups)
                    groups.append([])
                groups[g].append((cid, piece))
                for k in keys:
                    group_of_key.setdefault(k, g)
        modified = self.modifiers()
        plain: dict[str, list[str]] = defaultdict(list)  # category -> pieces that label it alone
        for members in groups:
            cids = list(dict.fromkeys(cid for cid, _ in members))
            piece = members[0][1]
            # A category named like its ancestor ("Watches > Watches") needs no disambiguation:
            # the deeper one implies the other.
            deepest = [c for c in cids if not any(d in cids for d in taxonomy.descendants(c))]
            decoys = self.decoys(piece, deepest, modified)
            if len(deepest) == 1 and not decoys:
                plain[deepest[0]].append(piece)
            else:
                self.resolve(piece, [*deepest, *decoys], None, [_words_condition([piece], self.field)],
                             _compound_exclusions([piece], self.compounds, self.field), decoys, set(cids))
        for cid, pieces in plain.items():
            self.add(f"{_slug(taxonomy.name(cid))}-{cid}", cid, [_words_condition(pieces, self.field)],
                     _compound_exclusions(pieces, self.compounds, self.field))
        self.rules.sort(key=lambda pair: (taxonomy.index(pair[0]), pair[1].id))
        unique: dict[str, Rule] = {}
        for _, rule in self.rules:  # two alternatives may slug alike ("T-Shirt" / "T Shirt")
            rule_id, n = rule.id, 1
            while rule_id in unique:
                n += 1
                rule_id = f"{rule.id}-{n}"
            unique[rule_id] = rule if rule_id == rule.id else rule.model_copy(update={"id": rule_id})
        return RuleSet(list(unique.values()), taxonomy)

    def add(self, rule_id: str, category: str, all_: list[Condition], none: list[Condition]) -> None:
        # Rules name their category by path: readable, and valid for any tree with that path.
        if self.taxonomy.depth(category) >= self.min_depth:
            self.rules.append((category, Rule(id=rule_id, category=self.taxonomy.path_str(category), all=all_,
                                              none=none)))

    def modifiers(self) -> dict[str, set[str]]:
        """Word -> categories with a several-word alternative containing it ("car" in "Car Mats",
        "containers" in "Plant Containers")."""
        out: dict[str, set[str]] = defaultdict(set)
        for cid in self.taxonomy.ids:
            if cid in self.skipped:
                continue
            for piece in self.pieces(cid):
                words = _tokens(piece)[1]
                if len(words) > 1:
                    for word in words:
                        out[word].add(cid)
        return out

    def decoys(self, piece: str, members: Sequence[str], modified: Mapping[str, set[str]]) -> list[str]:
        """Categories elsewhere whose names use a one-word piece inside a longer phrase.

        "Cars, Trains & Bikes" (toys) must not take every title with "car": "Car Mats" and
        "Car Chargers" compete for the word, so the toy category needs a word of its own branch
        unless it holds most of the word's categories.
        """
        words = _tokens(piece)[1]
        if len(words) != 1:
            return []
        taxonomy = self.taxonomy
        related = set(members)
        for m in members:
            related.update(taxonomy.ancestors(m))
            related.update(taxonomy.descendants(m))
        found = {c for form in _number_forms(words[0]) for c in modified.get(form, ())} - related
        return sorted((c for c in found if not any(a in found for a in taxonomy.ancestors(c))),
                      key=taxonomy.index)

    def resolve(self, piece: str, members: Sequence[str], node: str | None,
                required: list[Condition], none: list[Condition], decoys: Collection[str] = (),
                named: Collection[str] = ()) -> None:
        """Rules for ``piece`` shared by ``members`` below ``node`` (``None``: above the top level).

        ``decoys`` compete for the piece (they weigh in and their words exclude) but get no rule;
        ``named`` are all categories with the piece in their name, members' ancestors included.
        """
        taxonomy = self.taxonomy
        if node is not None:
            self.add(f"{_slug(piece)}-{node}", node, required, none)
        depth = 0 if node is None else taxonomy.depth(node)
        branches: dict[str, list[str]] = defaultdict(list)  # child of node -> members below it
        for m in members:
            branches[(*taxonomy.ancestors(m), m)[depth]].append(m)
        piece_forms = {f for w in _tokens(piece)[1] for f in _number_forms(w)}
        heads: dict[str, str] = {}  # branch -> its members' lowest common ancestor
        weight: dict[str, float] = {}
        words: dict[str, set[str]] = {}  # branch -> words naming it, from node down to its head
        forms: dict[str, set[str]] = {}  # branch -> every form of every word anywhere in it
        for child, below in branches.items():
            head = below[0] if len(below) == 1 else _common_ancestor(taxonomy, below)
            chain = (*taxonomy.ancestors(head), head)[depth:]
            if len(below) == 1 and below[0] not in decoys:
                chain = chain[:-1]  # a member's own name is the piece itself
            heads[child] = head
            words[child] = {w for c in chain for w in self.words(c)} - piece_forms
            bucket = self.bucket(chain, below, decoys)
            weight[child] = 0.0 if bucket else self.weight(below, named, child, decoys)
            inside = {c for m in below for c in (*taxonomy.ancestors(m), m)[depth:]}
            forms[child] = {f for c in inside for w in self.words(c) for f in _number_forms(w)} - piece_forms
        total = sum(weight.values())
        default = max(branches, key=lambda c: weight[c])
        if not total or weight[default] < self.default_share * total:
            default = None
        for child, below in branches.items():
            if all(m in decoys for m in below):
                continue
            others = set().union(*(forms[o] for o in branches if o != child))
            own = sorted(w for w in words[child] if not (_number_forms(w) & others))
            if child == default:
                mine = forms[child]
                rivals = sorted({w for o in branches if o != child for w in words[o]
                                 if not (_number_forms(w) & mine)})
                branch_required = required
                branch_none = none + ([Condition(field=self.field, any_words=rivals)] if rivals else [])
            elif own:
                branch_required = [*required, Condition(field=self.field, any_words=own)]
                branch_none = none
            else:
                continue  # nothing in a title can tell this branch from the others
            head = heads[child]
            if len(below) == 1:
                self.add(f"{_slug(piece)}-{below[0]}", below[0], branch_required, branch_none)
            else:
                self.resolve(piece, below, head, branch_required, branch_none, decoys, named)

    def bucket(self, chain: Sequence[str], members: Sequence[str], decoys: Collection[str]) -> bool:
        """Whether a branch is a catch-all bucket ("Free Items > Free Gifts > Handbags"): its names
        down to every member's parent are generic, so nothing says what the branch is about."""
        parents = {self.taxonomy.parent(m) for m in members if m not in decoys}
        return bool(chain) and not any(self.pieces(c) for c in chain) and all(
            p is not None and not self.pieces(p) for p in parents)

    def weight(self, members: Sequence[str], named: Collection[str], branch: str,
               decoys: Collection[str]) -> float:
        """How likely a title with the piece belongs to this branch: its members' items with
        ``support``; else how many categories in it use the piece (a department that names many
        of its categories with a word owns the word), a decoy counting half (a category that
        only uses the word inside a phrase claims the title only if the phrase's other words
        appear). Buckets weigh nothing (see :meth:`bucket`).
        """
        if self.support:
            return sum(self.support.get(m, 0) for m in members)
        real = [m for m in members if m not in decoys]
        inside = {c for m in real for c in self.taxonomy.ancestors(m)}
        ancestors_named = sum(1 for c in named if c in inside and branch in (*self.taxonomy.ancestors(c), c))
        return len(real) + 0.5 * (len(members) - len(real)) + ancestors_named

    def words(self, cid: str) -> list[str]:
        """The telling words of a category's name (no generic, audience-neutral or stop words)."""
        out: list[str] = []
        for piece in self.pieces(cid):
            out.extend(w for w in _tokens(piece)[0]
                       if w not in _STOPWORDS and w not in self.generic and len(w) > 2 and w not in out)
        return out


def _common_ancestor(taxonomy: Taxonomy, cids: Sequence[str]) -> str | None:
    chains = [(*taxonomy.ancestors(c), c) for c in cids]
    common: str | None = None
    for level in zip(*chains):
        if len(set(level)) != 1:
            break
        common = level[0]
    return common


# Compounds whose ending is another product, excluded even when the tree lacks them: a tree
# with "Shirts" but no "T-Shirts" must not call every T-shirt a shirt.
_KNOWN_COMPOUNDS = frozenset({"tshirts", "teeshirts", "sweatshirts", "earrings", "sunglasses", "panties"})


def _compounds(taxonomy: Taxonomy) -> dict[str, set[str]]:
    """Word ending -> category words that end with it: "shirts" -> {"t-shirts", "sweat-shirts"}.

    A compound whose beginning is a word or a letter is returned hyphenated at the ending, so as
    a pattern it matches the word written together, apart or hyphenated ("tshirt", "t shirt",
    "t-shirt").
    """
    words = {w for cid in taxonomy.ids for w in _tokens(taxonomy.name(cid))[1]} | _KNOWN_COMPOUNDS
    out: dict[str, set[str]] = defaultdict(set)
    for word in words:
        for i in range(1, len(word) - 2):
            prefix, ending = word[:i], word[i:]
            # Split only where a reader would ("t-shirts", "ear-rings"), not "swea-tshirts".
            out[ending].add(f"{prefix}-{ending}" if len(prefix) <= 2 or prefix in words else word)
    return out


def _compound_exclusions(pieces: Sequence[str], compounds: Mapping[str, set[str]],
                         field: FieldName) -> list[Condition]:
    """A ``none`` condition that keeps a one-word piece from firing inside a longer category word:
    "shirts" must not fire on "T-Shirt", "rings" on "Earrings", "ties" on "Panties"."""
    excluded: set[str] = set()
    for piece in pieces:
        words = _tokens(piece)[1]
        if len(words) == 1:
            for form in _number_forms(words[0]):
                excluded.update(compounds.get(form, ()))
    return [Condition(field=field, any_words=sorted(excluded))] if excluded else []
