#!/usr/bin/env sh
# The test suite talks to real peers: Debian's net-snmp tools (snmpget, snmpbulkwalk,
# snmptrap, snmpd, snmptrapd), util-linux's logger and, for the dashboard's browser tests,
# Debian's chromium (driven by Playwright through executable_path) and Prometheus (promtool
# checks the shipped config and queries; a real prometheus scrapes the app) and nats-server (the scale-out
# tests start private servers; .ci/run also starts the shared one on 4222). Install them when missing and we
# can (root with apt-get); otherwise say exactly what is missing and stop.
missing=""
for pair in snmpget:snmp snmpbulkwalk:snmp snmptrap:snmp snmpd:snmpd snmptrapd:snmptrapd logger:bsdutils chromium:chromium promtool:prometheus prometheus:prometheus nats-server:nats-server; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
  fi
done
# chromium needs one font to lay out text (screenshots); it does not depend on any
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$missing fonts-dejavu-core"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null && exit 0
fi
echo "test-deps: the tests need Debian packages:$missing (apt-get install$missing)" >&2
exit 1
