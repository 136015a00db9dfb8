/* srv_limits.h - the server's fixed limits, each named once.  (The
 * configurable ones are config/config.h's settings.) */
#ifndef BCT_SRV_LIMITS_H
#define BCT_SRV_LIMITS_H

#define SRV_MIB (1024LL * 1024LL)

/* A body refused from its headers is still read and dropped (so that
 * keep-alive connections survive the answer) up to twice its route's
 * limit plus this slack; past it the connection is closed. */
#define SRV_DROP_SLACK SRV_MIB

/* An admin upload without a valid token is answered without reading it
 * and the connection closed, except a body of at most this many bytes
 * (Content-Length), which is read and dropped first: closing with unread
 * bytes resets the connection, and a proxy still streaming the body to
 * us (nginx) then answers 502 instead of passing the 401 on. */
#define SRV_UNAUTH_DRAIN (8 * SRV_MIB)

/* A request body must be complete body_timeout_s after its headers, plus
 * one second per this many bytes it announces (Content-Length; a chunked
 * body: its route's limit), so that a large admin upload on a slow link
 * gets time in proportion (2 GiB: 34 min) while a /classify body (at most
 * max_body_bytes, 1 MiB) gets body_timeout_s + 1 s.  1 MiB/s is 8 Mbit/s,
 * a slow office uplink; slower clients raise body_timeout_s. */
#define SRV_BODY_MIN_RATE SRV_MIB

/* The largest calibration part of an admin upload (text lines; the job
 * reads calib_n of them). */
#define SRV_CALIB_MAX_BYTES (64 * SRV_MIB)

/* A JSON request body may hold at most this many values per input it may
 * carry (max_inputs_per_request) plus a slack for the options, nested at
 * most this deep: checked on the raw text before cJSON builds a tree of
 * ~64 bytes per value, which took a 1 MiB body of 512k zeros to ~32 MB and
 * ~50 ms of the HTTP thread (issue 17, memory bounds).  A real request
 * needs < 8 values per input and 4 levels. */
#define SRV_JSON_VALUES_PER_INPUT 16
#define SRV_JSON_VALUES_SLACK 256
#define SRV_JSON_MAX_DEPTH 16

/* The longest X-Request-Id taken from a client; longer ones are replaced
 * by a generated id. */
#define SRV_REQUEST_ID_MAX 64

/* The request path kept for routing and the access log, with its NUL
 * (a longer one is cut, and matches no route). */
#define SRV_PATH_LEN 256


/* Accuracy-guarded publishing (issue 16).  A compression job runs the
 * fp32 checkpoint and the compressed model over every row of the upload's
 * evaluation set (each truncated to max_seq_len) on its runner thread, so
 * these bound its time and memory: SST-2 dev (872 rows), MRPC (408) and
 * RTE (277) fit. */
#define SRV_EVAL_MAX_BYTES (16 * SRV_MIB)
#define SRV_EVAL_MAX_ROWS 2000
/* Without an evaluation set, the last 1/SRV_HOLDOUT_DIV of the calibration
 * lines (at least SRV_HOLDOUT_MIN, at most SRV_EVAL_MAX_ROWS) is held back
 * from calibration and used to compare the compressed model with fp32;
 * text of fewer than 2 * SRV_HOLDOUT_MIN lines is all used to calibrate. */
#define SRV_HOLDOUT_DIV 8
#define SRV_HOLDOUT_MIN 8
/* Sequences per forward pass while evaluating. */
#define SRV_EVAL_BATCH 16

#endif
