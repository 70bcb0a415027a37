"""The one spelling of a FHIR base URL (registration and ``fhirServer`` compare it).

For every base: slashes at the end, the case of scheme and host and the default
port make no difference; the normal form is its own normal form; anything with
user info, a query or a fragment is refused, so no two different servers can
compare equal and no ambiguous URL is ever fetched.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.services.cds.servers import MAX_URL_LENGTH, fhir_base

_LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
_SEGMENT = st.from_regex(r"[A-Za-z0-9._~%-]{1,12}", fullmatch=True)
_PATH = st.lists(_SEGMENT, max_size=4).map(lambda parts: "".join("/" + p for p in parts))


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_HOST,
    port=st.none() | st.integers(1, 65535),
    path=_PATH,
    slashes=st.integers(0, 3),
)
def test_equal_bases_have_one_spelling(scheme, host, port, path, slashes):
    netloc = host if port is None else f"{host}:{port}"
    url = f"{scheme}://{netloc}{path}"
    normal = fhir_base(url)
    assert fhir_base(normal) == normal
    assert not normal.endswith("/")
    assert fhir_base(url + "/" * slashes) == normal
    assert fhir_base(f"{scheme.upper()}://{netloc.upper()}{path}") == normal
    if port is None:
        default = {"http": 80, "https": 443}[scheme]
        assert fhir_base(f"{scheme}://{host}:{default}{path}") == normal
    assert normal.endswith(path)  # the path keeps its case and its spelling


@given(
    host=_HOST,
    path=_PATH,
    extra=st.sampled_from(["?", "?a=b", "#", "#f", "/?x"]),
)
def test_a_query_or_fragment_is_refused(host, path, extra):
    with pytest.raises(ValueError, match="query or fragment"):
        fhir_base(f"https://{host}{path}{extra}")


@given(host=_HOST, user=st.from_regex(r"[a-z]{1,8}(:[a-z]{0,8})?", fullmatch=True))
def test_user_info_is_refused(host, user):
    with pytest.raises(ValueError, match="user info"):
        fhir_base(f"https://{user}@{host}/fhir")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://ehr.example/fhir", "http"),
        ("ehr.example/fhir", "http"),
        ("https://", "no host"),
        ("https://ehr.example:0x1/fhir", "port"),
        ("https://ehr.example/fh\nir", "control"),
        ("https://\u00e9hr.example/fhir", "non-ASCII"),
        ("https://ehr.example/" + "a" * MAX_URL_LENGTH, "longer"),
    ],
)
def test_what_is_no_fhir_base(url, why):
    with pytest.raises(ValueError, match=why):
        fhir_base(url)
