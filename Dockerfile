# faultloop service image. Build: docker build -t faultloop .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends snmp \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /srv/faultloop faultloop

WORKDIR /srv/faultloop
COPY pyproject.toml README.md ./
COPY faultloop ./faultloop
COPY snmpwire ./snmpwire
COPY devices ./devices
COPY inventory ./inventory
COPY collectors ./collectors
COPY alarms ./alarms
COPY ticketing ./ticketing
COPY provisioning ./provisioning
COPY northbound ./northbound
COPY api ./api
# The lab (a device simulator for the demo and the tests) stays out of the service image.
RUN pip install . && mkdir -p /srv/faultloop/var && chown faultloop /srv/faultloop/var

USER faultloop
ENV FAULTLOOP_HOST=0.0.0.0 FAULTLOOP_PORT=8000 FAULTLOOP_DATA_DIR=/srv/faultloop/var
EXPOSE 8000
# SNMP traps and syslog (FAULTLOOP_TRAP_PORT, FAULTLOOP_SYSLOG_PORT; docker-compose maps the host's 162
# and 514 here)
EXPOSE 1162/udp
EXPOSE 1514/udp
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
# Migrate, then serve: the service refuses to start on a schema it does not expect.
CMD ["sh", "-c", "faultloop db upgrade && exec faultloop serve"]
