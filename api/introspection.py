"""Schema introspection (``__schema``, ``__type``) as a setting: ``EMAILSYNC_INTROSPECTION``.

Off by default outside ``emailsync dev``: the committed ``schema.graphql`` is how clients
learn the schema, and a public endpoint need not describe itself to whoever asks.
``__typename`` is not introspection of the schema and always works. The refusal is a
validation rule, so it is an ordinary validation error, and the validation cache keys
on it (the same document is valid with the setting on and invalid with it off).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension


class IntrospectionSetting(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        # Requests over HTTP and WebSocket always carry our Context with its runtime;
        # code of this process calling the schema directly (``schema.introspect()`` for
        # tooling) has no runtime and is trusted.
        runtime = getattr(execution.context, "runtime", None)
        if runtime is not None and not runtime.settings.introspection:
            execution.validation_rules = (*execution.validation_rules, NoSchemaIntrospectionCustomRule)
        yield
