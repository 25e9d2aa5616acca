"""The provider's error classes: the one place for the class hierarchy callers rely on.

Callers catch ``AirflowException`` (Airflow fails the task), ``ModelRegistryError`` (any provider error),
``ValueError`` (bad input, nothing sent) and ``LookupError`` (a name matching several versions). Other tests
assert the specific class a behaviour raises; they need not repeat what the class is.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_modelreg import errors
from airflow_provider_modelreg.credentials.base import CredentialSourceError
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAmbiguousVersionError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryConnectionConfigError,
    RegistryInputError,
    RegistryInvalidRequestError,
    RegistryNotFoundError,
    RegistryPagingLimitError,
    RegistryResponseError,
    RegistryServerError,
    RegistryStateError,
    RegistryThrottledError,
    RegistryTransportError,
    RegistryVersionFailedError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.validation import check_pai_model_id

#: every public error class and its direct bases, in order
BASES: dict[type[Exception], tuple[type[Exception], ...]] = {
    ModelRegistryError: (AirflowException,),
    RegistryInputError: (ModelRegistryError, ValueError),
    RegistryConnectionConfigError: (RegistryInputError,),
    RegistryAPIError: (ModelRegistryError,),
    RegistryNotFoundError: (RegistryAPIError,),
    RegistryAuthError: (RegistryAPIError,),
    RegistryThrottledError: (RegistryAPIError,),
    RegistryInvalidRequestError: (RegistryAPIError,),
    RegistryStateError: (RegistryAPIError,),
    RegistryServerError: (RegistryAPIError,),
    RegistryTransportError: (ModelRegistryError,),
    RegistryResponseError: (ModelRegistryError,),
    RegistryPagingLimitError: (RegistryResponseError,),
    RegistryAmbiguousVersionError: (ModelRegistryError, LookupError),
    RegistryVersionFailedError: (ModelRegistryError,),
    RegistryWaitTimeoutError: (ModelRegistryError,),
}


def test_error_hierarchy() -> None:
    exported = {getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)}
    assert exported == set(BASES)  # a new public error gets its place here
    for cls, bases in BASES.items():
        assert cls.__bases__ == bases, cls
        assert issubclass(cls, AirflowException) and issubclass(cls, ModelRegistryError), cls
    # only bad input is a ValueError, only an ambiguous name a LookupError
    assert {cls for cls in BASES if issubclass(cls, ValueError)} == {RegistryInputError, RegistryConnectionConfigError}
    assert {cls for cls in BASES if issubclass(cls, LookupError)} == {RegistryAmbiguousVersionError}
    # a credential source that fails is a refusal of the credentials
    assert CredentialSourceError.__bases__ == (RegistryAuthError,)


@pytest.mark.parametrize("catch", [ValueError, RegistryInputError, ModelRegistryError, AirflowException])
def test_a_refused_input_is_caught_by_each_of_its_classes(catch: type[Exception]) -> None:
    with pytest.raises(catch) as err:
        check_pai_model_id("a/b")
    assert type(err.value) is RegistryInputError and err.value.field == "model_id"
