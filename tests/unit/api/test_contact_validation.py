import pytest

from sync_engine.services.contacts import validate_display_name, validate_email_address
from sync_engine.services.errors import ServiceError


@pytest.mark.parametrize("good", ["a@b.test", " Mixed.Case+tag@Sub.Example.com ", "o'brien@x.ie"])
def test_valid_addresses(good: str) -> None:
    assert validate_email_address(good) == good.strip()


@pytest.mark.parametrize(
    "bad",
    ["", "plain", "a@b", "a b@c.test", "a@b.test\r\nBcc: x@y.test", "a@b.test\n", "<a@b.test>", "a@b.test, c@d.test", "a\x00@b.test"],
)
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(ServiceError) as err:
        validate_email_address(bad)
    assert err.value.code == "INVALID_EMAIL"
    assert err.value.field == "email"


def test_names() -> None:
    assert validate_display_name("  Dana  ") == "Dana"
    assert validate_display_name("   ") is None
    assert validate_display_name(None) is None
    for bad in ["Eve\r\nBcc: x@y.test", "tab\tname", "x" * 201]:
        with pytest.raises(ServiceError) as err:
            validate_display_name(bad)
        assert err.value.code == "INVALID_NAME"
