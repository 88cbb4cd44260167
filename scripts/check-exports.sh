#!/usr/bin/env bash
# check-exports.sh LIBMPXDP_SO: fails unless every dynamic symbol the library
# defines is public API (namespace mpxdp, outside the internal namespaces, or
# the typeinfo/vtable of a public class) under the MPXDP_0.1 version node, and
# the entry points an application needs are among them.
set -euo pipefail
lib=${1:?usage: check-exports.sh path/to/libmpxdp.so}
version_node=MPXDP_0.1

# "T mpxdp::openEndpoint(...)@@MPXDP_0.1" per line; the version node itself is
# an absolute symbol (A) named after it.
symbols=$(nm -D --defined-only --with-symbol-versions "$lib" | awk '$2 != "A"' | cut -d' ' -f3- | c++filt)
if [ -z "$symbols" ]; then
  echo "check-exports: $lib exports nothing" >&2
  exit 1
fi

internal='mpxdp::(wire|xsk|transport|conn|bpf|sched|reorder|path|detail|cli|testbed)::|\(anonymous namespace\)'
public='^((typeinfo|typeinfo name|vtable|VTT|construction vtable) for )?mpxdp::'
bad=$(echo "$symbols" | grep -Ev "$public" || true)
bad+=$(echo "$symbols" | grep -E "$internal" || true)
unversioned=$(echo "$symbols" | grep -v "@@${version_node}\$" || true)

status=0
if [ -n "$bad" ]; then
  echo "check-exports: symbols that are not mpxdp public API:" >&2
  echo "$bad" >&2
  status=1
fi
if [ -n "$unversioned" ]; then
  echo "check-exports: symbols not under version node $version_node:" >&2
  echo "$unversioned" >&2
  status=1
fi
for needed in 'mpxdp::openEndpoint(' 'mpxdp::Endpoint::create(' 'mpxdp::Error::message' \
  'mpxdp::IpAddress::parse(' 'mpxdp::parseReorderKind(' 'mpxdp::parseSchedulerKind('; do
  if ! echo "$symbols" | grep -qF "$needed"; then
    echo "check-exports: public API missing from $lib: $needed" >&2
    status=1
  fi
done
if [ $status -eq 0 ]; then
  echo "check-exports: $(echo "$symbols" | wc -l) symbols, all public API under $version_node"
  echo "$symbols" | sed 's/^/  /'
fi
exit $status
