"""The http_endpoint kind: what zeroprobe loads through the entry point
`http_endpoint = "zeroprobe_http.kind:KIND"`.

The checks every uptime tool starts with, against the base URL of a connection label: the
status, a pattern in the body, the response time, the days left on the HTTPS certificate.
The spec is in spec.py, the measuring in probe.py, the grading in grade.py.
"""

from __future__ import annotations

from zeroprobe.plugin import Kind, KindMetric
from zeroprobe_http.grade import grade_http_endpoint
from zeroprobe_http.probe import EndpointObservation, probe_http_endpoint
from zeroprobe_http.spec import KIND_NAME, HttpEndpointSpec

RESPONSE_TIME_METRIC = KindMetric(
    name="zeroprobe_http_endpoint_response_time_seconds",
    documentation="Time of a check's request, from sending it (connecting included) until "
    "its body was read.",
    label="check",
)
CERTIFICATE_EXPIRY_METRIC = KindMetric(
    name="zeroprobe_http_endpoint_certificate_expiry_timestamp_seconds",
    documentation="When the certificate the endpoint presented expires (notAfter), in epoch "
    "seconds: alert on it minus time().",
    label="check",
)


def export_http_endpoint(
    observation: EndpointObservation, spec: HttpEndpointSpec
) -> dict[str, dict[str, float]]:
    """Each answered check's response time and, over HTTPS, its certificate's expiry."""
    answered = [check for check in observation.checks if check.error is None]
    return {
        RESPONSE_TIME_METRIC.name: {check.name: check.elapsed_s for check in answered},
        CERTIFICATE_EXPIRY_METRIC.name: {
            check.name: check.certificate_not_after_s
            for check in answered
            if check.certificate_not_after_s is not None
        },
    }


# /liveness is about the Mongo-backed probes: an endpoint that is down shows as a RED line of
# its own probe, not as a failing collector.
KIND = Kind(
    name=KIND_NAME,
    spec=HttpEndpointSpec,
    probe=probe_http_endpoint,
    grade=grade_http_endpoint,
    metrics=(RESPONSE_TIME_METRIC, CERTIFICATE_EXPIRY_METRIC),
    export=export_http_endpoint,
    liveness_needs_target=False,
    secret_env_fields=("bearer_token_env",),
)

__all__ = ["KIND", "HttpEndpointSpec", "export_http_endpoint"]
