"""Parsed and validated documents, cached by the SHA-256 of their text and bounded by size.

strawberry's ``ParserCache``/``ValidationCache`` are ``lru_cache``s keyed by the whole
query text and bounded by count only: 512 unique documents of a megabyte each stay in
memory as text and as syntax trees. Here an entry is keyed by a digest, the cache is
bounded by the total size of the texts it holds as well as by count (least recently
used first out), and a document larger than ``max_document_chars`` is never cached
(a client's real documents are small; a large one is parsed, used and dropped).
A document that does not parse is never cached either: parsing it again costs what
the token limit allows, and keeps strawberry's own error reporting.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

# Counted per entry on top of its text: the key, the tree's fixed part, the LRU links.
_ENTRY_OVERHEAD = 512


def document_digest(query: str) -> bytes:
    # "surrogatepass": a lone surrogate in the text (JSON allows "\ud800") must not
    # turn hashing into an exception; parsing then reports the document as it is.
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).digest()


class BoundedCache:
    """An LRU mapping bounded by entry count and by the sum of the entries' sizes."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        size += _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


class DocumentCaches:
    """The two caches of one schema, and the extensions that use them (pass
    ``parser_extension`` and ``validation_extension`` as schema extension factories)."""

    def __init__(self, *, max_entries: int, max_bytes: int, max_document_chars: int) -> None:
        self.max_document_chars = max_document_chars
        self.parsed = BoundedCache(max_entries=max_entries, max_bytes=max_bytes)
        self.validated = BoundedCache(max_entries=max_entries, max_bytes=max_bytes)

    def cacheable(self, query: str | None) -> bool:
        return query is not None and len(query) <= self.max_document_chars

    def parser_extension(self) -> SchemaExtension:
        return _CachedParse(self)

    def validation_extension(self) -> SchemaExtension:
        return _CachedValidation(self)


class _CachedParse(SchemaExtension):
    def __init__(self, caches: DocumentCaches) -> None:
        self._caches = caches

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if self._caches.cacheable(query) and context.graphql_document is None:
            assert query is not None
            options = context.parse_options
            # The parse options (the token limit) are part of the key: the same text
            # parsed under other options may not even parse.
            key = (document_digest(query), tuple(sorted(options.items())))
            document = self._caches.parsed.get(key)
            if document is None:
                try:
                    document = parse(query, **options)
                except GraphQLError:
                    document = None  # strawberry parses it again and reports the error
                else:
                    self._caches.parsed.put(key, document, len(query))
            context.graphql_document = document
        yield


class _CachedValidation(SchemaExtension):
    def __init__(self, caches: DocumentCaches) -> None:
        self._caches = caches

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        query, document = context.query, context.graphql_document
        if self._caches.cacheable(query) and document is not None and context.validation_rules:
            assert query is not None
            # The result depends on the schema and the rules as much as on the text
            # (introspection is refused by a rule that is there or not).
            key = (document_digest(query), id(context.schema._schema), context.validation_rules)
            errors = self._caches.validated.get(key)
            if errors is None:
                errors = validate_document(context.schema._schema, document, context.validation_rules)
                self._caches.validated.put(key, errors, len(query))
            # A copy: whoever handles the errors may extend the list.
            context.pre_execution_errors = list(errors)
        yield

