"""Every type, field, argument, input field and enum value of the schema is described."""

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
)

from api.schema import schema

BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def undescribed() -> list[str]:
    missing: list[str] = []
    for name, type_ in schema._schema.type_map.items():
        if name.startswith("__") or name in BUILTIN_SCALARS:
            continue
        if not (type_.description or "").strip():
            missing.append(name)
        if isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in type_.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if not (arg.description or "").strip():
                        missing.append(f"{name}.{field_name}({arg_name})")
        elif isinstance(type_, GraphQLInputObjectType):
            for field_name, field in type_.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
        elif isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                if not (value.description or "").strip():
                    missing.append(f"{name}.{value_name}")
        elif not isinstance(type_, (GraphQLScalarType, GraphQLUnionType)):
            raise AssertionError(f"unexpected kind of type {name}")
    return missing


def test_everything_is_described() -> None:
    assert undescribed() == []
