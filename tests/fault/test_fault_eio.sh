#!/usr/bin/env bash
# EIO at every write of the upload -> compress -> publish path (write_faults.sh).
ERRNO=EIO ERRTEXT="Input/output error"
. "$(dirname "$0")/write_faults.sh"
