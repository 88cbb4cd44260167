#!/bin/sh
# Writes the man page of `mpxdp` or of one subcommand from its --help text
# (help2man), so the pages never drift from the program.
#   mpxdp-man.sh MPXDP VERSION OUT_DIR [SUBCOMMAND]
set -eu
mpxdp=$1
version=$2
out=$3
sub=${4:-}
mkdir -p "$out/bin"
if [ -z "$sub" ]; then
  name="mpxdp"
  # The first line of `mpxdp --help`: "mpxdp: WHAT IT DOES".
  what=$("$mpxdp" --help | head -n 1 | sed 's/^mpxdp: //')
else
  name="mpxdp-$sub"
  # The subcommand's line in `mpxdp --help`.
  what=$("$mpxdp" --help | awk -v s="$sub" '$1 == s { $1 = ""; sub(/^ +/, ""); print; exit }')
  if [ -z "$what" ]; then
    echo "mpxdp-man.sh: mpxdp has no subcommand '$sub'" >&2
    exit 1
  fi
fi
# help2man names the page after the program it runs: a wrapper named mpxdp-SUB.
wrapper="$out/bin/$name"
if [ -z "$sub" ]; then
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$mpxdp" >"$wrapper"
else
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$mpxdp" "$sub" >"$wrapper"
fi
chmod 755 "$wrapper"
help2man --no-info --no-discard-stderr --version-string="$version" --name="$what" \
  --output="$out/$name.1" "$wrapper"
