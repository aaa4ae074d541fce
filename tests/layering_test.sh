#!/usr/bin/env bash
# Fails when a module includes a module above it (see STYLE.md section 2).
set -u
root=${1:-.}
fail=0
check() {  # check DIR PATTERN WHY
  local hits
  hits=$(grep -rnE "$2" "$root/$1" --include='*.h' --include='*.cc' 2>/dev/null)
  if [ -n "$hits" ]; then echo "layering violation ($3):"; echo "$hits"; fail=1; fi
}
check storage '#include "(broker|cluster)/' 'storage must not include broker/ or cluster/'
check cluster '#include "broker/' 'cluster must not include broker/'
check common '#include "(broker|cluster|storage)/' 'common is a leaf'
check broker/codec '#include "(broker/(session|net|app)|cluster|storage)/|#include <(boost|grpcpp|rocksdb)' 'codec is pure'
check storage '#include <(grpcpp|boost)' 'storage needs no gRPC or sockets'
if [ $fail -eq 0 ]; then echo "layering OK"; fi
exit $fail
