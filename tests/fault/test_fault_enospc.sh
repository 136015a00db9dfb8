#!/usr/bin/env bash
# ENOSPC at every write of the upload -> compress -> publish path (write_faults.sh).
ERRNO=ENOSPC ERRTEXT="No space left on device"
. "$(dirname "$0")/write_faults.sh"
