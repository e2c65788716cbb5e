# zeroprobe's image: `docker build -t zeroprobe:0.1.0 .`
# Stage one builds the wheels (zeroprobe and its HTTP endpoint kind); stage two installs them with its runtime dependencies only
# (no dev tools, no compiler, no source tree) and runs it as an unprivileged user.

FROM python:3.11-slim-trixie AS build
WORKDIR /src
# Exactly what the wheels are built from; tests, docs and deploy files stay out. The HTTP
# endpoint kind is a plugin distribution of its own (the shipped contexts use it).
COPY pyproject.toml README.md ./
COPY zeroprobe/ zeroprobe/
COPY probes/ probes/
COPY schemas/ schemas/
COPY plugins/zeroprobe-http/ plugins/zeroprobe-http/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . ./plugins/zeroprobe-http

FROM python:3.11-slim-trixie
LABEL org.opencontainers.image.title="zeroprobe" \
      org.opencontainers.image.description="Scheduled health probes served as Zero Problem documents" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
# Its data directory (the notification outbox) is its own: a volume is mounted there in
# Kubernetes; without one the outbox lives as long as the container.
RUN useradd --system --no-log-init --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin zeroprobe \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/zeroprobe
COPY --from=build /wheels/ /wheels/
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The example contexts; in Kubernetes a ConfigMap is mounted over this folder.
COPY contexts/ /etc/zeroprobe/contexts/
ENV ZEROPROBE_CONTEXTS=/etc/zeroprobe/contexts \
    ZEROPROBE_DATA_DIR=/var/lib/zeroprobe \
    ZEROPROBE_HOST=0.0.0.0 \
    ZEROPROBE_PORT=8080
USER 10001:10001
EXPOSE 8080
# /livez, not /liveness: an unhealthy *target* must not mark the prober unhealthy.
# The slim image has no curl: Python's urllib fails (exit 1) on any answer but 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('ZEROPROBE_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["zeroprobe"]
CMD ["serve"]
